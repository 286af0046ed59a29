"""The train / evaluate / sample CLIs end to end on a tiny config and the shipped real digits, and the NaN guard."""

import hashlib
import importlib.util
import json
import math
import os
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from test_app_evaluate import fake_cifar

import draw_core.evaluate as evaluate_module
import draw_core.sample as sample_module
import draw_core.train as train_module
import draw_core.training.objectives as objectives_module
from draw_core.config import DrawConfig, TrainConfig
from draw_core.data import get_dataset, load_sample, mnist, registry
from draw_core.data.cluttered import fixed_cluttered_test_set
from draw_core.io.checkpoint import load_checkpoint, save_checkpoint
from draw_core.nn.classifier import ClassifierConfig
from draw_core.nn.elbo import LossTerms
from draw_core.nn.kinds import KINDS
from draw_core.nn.model import DRAW
from draw_core.nn.ram import RamConfig
from draw_core.training.evaluation import evaluate
from draw_core.training.trainer import TrainingDiverged, train

ROOT = Path(__file__).resolve().parents[1]
T = 4
TINY_ARGS = ["--preset", "mnist-small", "--dataset", "mnist-sample", "--T", str(T), "--enc-size", "32",
             "--dec-size", "32", "--z-size", "8", "--batch-size", "16", "--eval-limit", "50"]  # fmt: skip


def run_cli(module: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", f"draw_core.{module}", *map(str, args)]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Train 6 steps, then resume to 9: returns (checkpoint path, first run, resumed run, step-6 checkpoint)."""
    out = tmp_path_factory.mktemp("cli") / "tiny.safetensors"
    first = run_cli("train", *TINY_ARGS, "--steps", 6, "--eval-every", 3, "--checkpoint-every", 3, "--out", out)
    assert first.returncode == 0, first.stderr
    after_first = load_checkpoint(out)
    resumed = run_cli("train", *TINY_ARGS, "--steps", 9, "--eval-every", 3, "--checkpoint-every", 3, "--out", out,
                      "--resume")  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    return out, first, resumed, after_first


def test_train_cli_writes_a_checkpoint(trained):
    _, first, _, ckpt = trained
    assert ckpt.config == DrawConfig(T=T, enc_size=32, dec_size=32, z_size=8)
    assert ckpt.meta["step"] == 6 and ckpt.meta["dataset"] == "mnist-sample" and ckpt.meta["finished"]
    assert math.isfinite(ckpt.meta["test_elbo_nats"])
    assert ckpt.optimizer_state is not None
    assert "step 3: test ELBO" in first.stdout and "step 6: test ELBO" in first.stdout  # tqdm.write prints to stdout
    assert "done: 6 steps" in first.stdout


def test_resume_continues_from_the_saved_step(trained):
    out, _, resumed, after_first = trained
    ckpt = load_checkpoint(out)
    assert ckpt.meta["step"] == 9
    # A resumed run evaluates only at step 9; a run started over would evaluate at 3 and 6 again.
    assert "step 9: test ELBO" in resumed.stdout
    assert "step 3: test ELBO" not in resumed.stdout and "step 6: test ELBO" not in resumed.stdout
    # Adam's own step counter went on from 6 to 9, and the weights moved on from the step-6 weights.
    steps = {float(state["step"]) for state in ckpt.optimizer_state["state"].values()}
    assert steps == {9.0}
    first_weights = after_first.model.state_dict()
    assert any(not torch.equal(v, first_weights[k]) for k, v in ckpt.model.state_dict().items())


def test_resume_with_another_config_is_refused(trained, tmp_path, capsys):
    out, *_ = trained
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(out.read_bytes())
    args = [*TINY_ARGS, "--steps", "12", "--z-size", "4", "--out", str(copy), "--resume"]
    assert train_module.main(args) == 2
    assert "cannot resume" in capsys.readouterr().err
    assert load_checkpoint(copy).meta["step"] == 9


class _SavedState:
    """Stands in for an optimizer when saving a hand-mangled optimizer state."""

    def __init__(self, state: dict):
        self.state = state

    def state_dict(self) -> dict:
        return self.state


@pytest.mark.parametrize(
    ("mangle", "why"),
    [
        (lambda state: state["state"][0].update(exp_avg=torch.tensor(0.0)), "has moments"),
        (lambda state: state["state"][0].pop("exp_avg_sq"), "parameter 0 holds ['exp_avg', 'step']"),
        (lambda state: state["param_groups"][0].update(eps="x"), "must be finite numbers"),
        (lambda state: state["param_groups"][0].update(betas=[0.9]), "betas must be two numbers"),
        (lambda state: state["param_groups"][0].update(capturable=True), "['capturable'] must be off"),
    ],
    ids=["moment-shape", "missing-moment", "eps", "betas", "capturable"],
)
def test_resume_with_an_optimizer_state_adam_would_choke_on_is_refused(trained, tmp_path, capsys, mangle, why):
    # Adam loads such a state without a word and fails at its first step with a traceback.
    out, *_ = trained
    ckpt = load_checkpoint(out)
    state = ckpt.optimizer_state
    mangle(state)
    copy = save_checkpoint(ckpt.model, tmp_path / "copy.safetensors", meta=ckpt.meta, optimizer=_SavedState(state))
    before = copy.read_bytes()
    assert train_module.main([*TINY_ARGS, "--steps", "12", "--out", str(copy), "--resume"]) == 2
    error = capsys.readouterr().err
    assert "its optimizer state is not Adam's" in error and why in error and "Traceback" not in error
    assert copy.read_bytes() == before


def test_evaluate_cli_prints_json_bounds(trained):
    out, *_ = trained
    result = run_cli("evaluate", out, "--samples", 4, "--limit", 50, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["n"] == 50 and report["k"] == 4 and report["dataset"] == "mnist-sample"
    for key in ("elbo_nats", "recon_nats", "kl_nats", "iwae_nats", "bits_per_dim"):
        assert math.isfinite(report[key]), key
    assert report["elbo_nats"] == pytest.approx(report["recon_nats"] + report["kl_nats"], rel=1e-6)
    assert report["bits_per_dim"] == pytest.approx(report["elbo_nats"] / (784 * math.log(2)), rel=1e-6)
    again = evaluate(load_checkpoint(out).model, get_dataset("mnist-sample").test_set(limit=50), k=4, seed=0)
    assert report["iwae_nats"] == pytest.approx(again.iwae_nats, rel=1e-6)  # the same seed: the same draws
    assert report["elbo_nats"] == pytest.approx(again.elbo_nats, rel=1e-6)
    assert len(report["kl_per_step"]) == T and all(v >= 0 for v in report["kl_per_step"])
    assert sum(report["kl_per_step"]) == pytest.approx(report["kl_nats"], rel=1e-4)


def test_sample_cli_writes_gif_and_png(trained, tmp_path):
    out, *_ = trained
    gif, png = tmp_path / "g.gif", tmp_path / "out" / "p.png"
    result = run_cli("sample", out, "--n", 4, "--gif", gif, "--png", png, "--seed", 1)
    assert result.returncode == 0, result.stderr
    animation = Image.open(gif)
    assert animation.format == "GIF" and animation.n_frames == T and animation.is_animated
    animation.seek(T - 1)
    frame = animation.convert("RGB")
    assert (255, 0, 0) in {colour for _, colour in frame.getcolors(1 << 16)}, "the write window is drawn"
    grid = Image.open(png)
    assert grid.format == "PNG" and grid.size == (2 * (28 * 4 + 2) + 2,) * 2  # 4 samples, 2 per row, scale 4
    # The same seed gives the same pictures (in-process this time).
    again = tmp_path / "again.png"
    assert sample_module.main([str(out), "--n", "4", "--png", str(again), "--seed", "1"]) == 0
    assert again.read_bytes() == png.read_bytes()


def test_a_sample_write_that_fails_keeps_the_earlier_file_whole(trained, tmp_path, monkeypatch, capsys):
    out, *_ = trained
    png = tmp_path / "p.png"
    assert sample_module.main([str(out), "--n", "4", "--png", str(png), "--seed", "1"]) == 0
    before = png.read_bytes()

    def disk_full(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)  # the rename that would put the new file in place
    assert sample_module.main([str(out), "--n", "9", "--png", str(png), "--seed", "2", "--force"]) == 2
    assert "cannot write" in capsys.readouterr().err
    assert png.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["p.png"]


@pytest.mark.parametrize("main", [sample_module.main, evaluate_module.main], ids=["sample", "evaluate"])
def test_clis_refuse_a_bad_checkpoint_clearly(tmp_path, capsys, main):
    png = tmp_path / "p.png"
    missing = tmp_path / "missing.safetensors"
    assert main([str(missing), "--png", str(png)] if main is sample_module.main else [str(missing)]) == 2
    error = capsys.readouterr().err
    assert str(missing) in error and "does not exist" in error
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a checkpoint at all")
    assert main([str(garbage), "--png", str(png)] if main is sample_module.main else [str(garbage)]) == 2
    assert "not a DRAW Studio checkpoint" in capsys.readouterr().err
    assert not png.exists()


@pytest.mark.parametrize("existing", ["gif", "png"])
def test_sample_refuses_an_existing_output_without_force_before_loading(tmp_path, capsys, existing):
    torch.manual_seed(0)
    path = save_checkpoint(DRAW(DrawConfig(T=2, enc_size=8, dec_size=8, z_size=2)), tmp_path / "g.safetensors")
    outputs = {"gif": tmp_path / "g.gif", "png": tmp_path / "p.png"}
    outputs[existing].write_text("an earlier picture")
    flags = ["--gif", outputs["gif"], "--png", outputs["png"], "--n", 4]
    # a checkpoint that is not there: the existing output is what the command is refused for, before any loading
    assert exit_code(sample_module.main, [tmp_path / "missing.safetensors", *flags]) == 2
    error = capsys.readouterr().err
    assert f"{outputs[existing]} already exists: add --force to replace it" in error and "missing" not in error, error
    assert outputs[existing].read_text() == "an earlier picture" and len(list(tmp_path.iterdir())) == 2
    assert exit_code(sample_module.main, [path, *flags, "--force"]) == 0
    assert Image.open(outputs["gif"]).format == "GIF" and Image.open(outputs["png"]).format == "PNG"


def test_sample_cli_process_exit_code_for_a_bad_path(tmp_path):
    missing = tmp_path / "missing.safetensors"
    result = run_cli("sample", missing, "--png", tmp_path / "p.png")
    assert result.returncode == 2
    assert str(missing) in result.stderr and "Traceback" not in result.stderr


def nan_after(calls: int, monkeypatch) -> None:
    """Make the training loop's loss NaN from its (calls + 1)-th batch on."""
    real = objectives_module.loss_terms
    count = {"n": 0}

    def poisoned(result, x):
        terms = real(result, x)
        count["n"] += 1
        if count["n"] > calls:
            return LossTerms(recon=terms.recon * math.nan, kl=terms.kl, kl_per_step=terms.kl_per_step)
        return terms

    monkeypatch.setattr(objectives_module, "loss_terms", poisoned)


TINY_TRAIN = dict(dataset="mnist-sample", batch_size=8, steps=10, warmup_steps=0, eval_every=0, eval_limit=20,
                  checkpoint_every=2, sample_every=0, device="cpu")  # fmt: skip


def test_nan_loss_stops_training_and_saves_the_last_good_weights(tmp_path, monkeypatch):
    """The non-finite step 6 is not applied: the weights of step 5 are saved, though the last checkpoint was at 4."""
    out = tmp_path / "run.safetensors"
    nan_after(5, monkeypatch)
    with pytest.raises(TrainingDiverged, match=rf"diverged at step 6.*last good weights \(step 5\) are saved at {out}"):
        train(DrawConfig(T=T, enc_size=32, dec_size=32, z_size=8), TrainConfig(**TINY_TRAIN), out)
    ckpt = load_checkpoint(out)
    assert ckpt.meta["step"] == 5 and ckpt.meta["stopped"] and not ckpt.meta["finished"]
    assert all(torch.isfinite(v).all() for v in ckpt.model.state_dict().values())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.safetensors"]


def test_nan_before_any_checkpoint_says_so(tmp_path, monkeypatch, capsys):
    nan_after(0, monkeypatch)
    out = tmp_path / "run.safetensors"
    args = [*TINY_ARGS, "--steps", "5", "--eval-every", "0", "--checkpoint-every", "2", "--out", str(out)]
    assert train_module.main(args) == 1
    error = capsys.readouterr().err
    assert "diverged at step 1" in error and "no checkpoint was written yet" in error
    assert not out.exists()


# Issue 11: nothing overwritten by accident, late failures found early, bad flags are `error: ...` with exit code 2.


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def exit_code(main, args: list[str]) -> int:
    """What `python -m ...` would exit with: argparse's errors raise SystemExit(2)."""
    try:
        return main([str(a) for a in args])
    except SystemExit as leaving:
        return leaving.code


@pytest.mark.parametrize("what", ["checkpoint", "text"])
def test_an_existing_out_is_refused_without_resume_or_force(trained, tmp_path, capsys, what):
    out = tmp_path / "precious.safetensors"
    if what == "checkpoint":
        out.write_bytes(trained[0].read_bytes())
    else:
        out.write_text("notes that are not a checkpoint\n")
    before = sha256(out)
    assert exit_code(train_module.main, [*TINY_ARGS, "--steps", 2, "--out", out]) == 2
    error = capsys.readouterr().err
    assert "error:" in error and "already exists: add --resume" in error and "--force" in error
    assert sha256(out) == before


def test_force_replaces_an_existing_out_and_says_so(tmp_path, capsys):
    out = tmp_path / "scratch.safetensors"
    out.write_text("an old experiment\n")
    args = [*TINY_ARGS, "--steps", 2, "--eval-every", 0, "--checkpoint-every", 0, "--out", out, "--force"]
    assert exit_code(train_module.main, args) == 0
    assert f"replacing {out} (--force)" in capsys.readouterr().err
    assert load_checkpoint(out).meta["step"] == 2


def test_resume_and_force_together_are_refused(tmp_path, capsys):
    args = [*TINY_ARGS, "--steps", 2, "--out", tmp_path / "x.safetensors", "--resume", "--force"]
    assert exit_code(train_module.main, args) == 2
    assert "give one of them" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--init-from", "{tmp}/missing.safetensors"], "missing.safetensors does not exist"),
        (["--init-from", "{tmp}/garbage.safetensors"], "not a DRAW Studio checkpoint"),
        (["--out", "{tmp}/garbage.safetensors", "--resume"], "not a DRAW Studio checkpoint"),
    ],
    ids=["missing-init-from", "corrupt-init-from", "corrupt-resume"],
)
def test_a_checkpoint_train_cannot_read_exits_2_as_evaluate_and_sample_do(tmp_path, capsys, flags, message):
    (tmp_path / "garbage.safetensors").write_bytes(b"not a checkpoint at all")
    args = [*TINY_ARGS, "--steps", 1, "--out", tmp_path / "run.safetensors"]
    assert exit_code(train_module.main, [*args, *(str(flag).format(tmp=tmp_path) for flag in flags)]) == 2
    error = capsys.readouterr().err
    assert "error: " in error and message in error and "Traceback" not in error, error


@pytest.mark.parametrize(
    "flags",
    [["--batch-size", "0"], ["--z-size", "0"], ["--preset", "bogus"], ["--compile", "--compile-glimpses", "99"]],
    ids=["train-config", "override", "preset", "compile-glimpses"],
)
def test_the_flags_are_checked_before_the_out_folder_is_made(tmp_path, capsys, flags):
    out = tmp_path / "new" / "runs" / "run.safetensors"
    assert exit_code(train_module.main, [*TINY_ARGS, "--steps", 1, "--out", out, *flags]) == 2
    assert "error: " in capsys.readouterr().err and not (tmp_path / "new").exists()


@pytest.mark.parametrize("case", ["under-a-file", "a-folder", "a-fifo", "a-dangling-link"])
def test_an_unusable_out_is_refused_before_the_first_step(tmp_path, capsys, case):
    blocker = tmp_path / "plain-file"
    blocker.write_text("x")
    out = {
        "under-a-file": blocker / "runs" / "run.safetensors",
        "a-folder": tmp_path,
        "a-fifo": tmp_path / "pipe.safetensors",
        "a-dangling-link": tmp_path / "link.safetensors",
    }[case]
    if case == "a-fifo":
        os.mkfifo(out)
    if case == "a-dangling-link":
        out.symlink_to(tmp_path / "nowhere")
    # Without the check, a blocked path would fail only at the first checkpoint, after training, with exit code 1.
    assert exit_code(train_module.main, [*TINY_ARGS, "--steps", 2, "--out", out, "--force"]) == 2
    error = capsys.readouterr().err
    expected = {
        "under-a-file": "cannot write to",
        "a-folder": "is a folder",
        "a-fifo": "not a regular file",
        "a-dangling-link": "not a regular file",
    }
    assert "error:" in error and expected[case] in error


def test_the_train_cli_removes_stale_temporary_files_beside_out(tmp_path, capsys):
    stale = tmp_path / ".run.safetensors.x1y2z3.tmp"
    stale.write_bytes(b"half a checkpoint")
    os.utime(stale, (1_000_000, 1_000_000))
    args = [*TINY_ARGS, "--steps", 1, "--eval-every", 0, "--checkpoint-every", 0, "--out", tmp_path / "run.safetensors"]
    assert exit_code(train_module.main, args) == 0
    assert not stale.exists() and "left by a save that was killed" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.safetensors"]


@pytest.mark.parametrize(
    ("main", "flags", "message"),
    [
        (train_module.main, ["--device", "bogus"], "unknown device 'bogus'"),
        (train_module.main, ["--device", "meta"], "unknown device 'meta'"),
        (train_module.main, ["--threads", "-3"], "argument --threads: expected a whole number >= 1, got -3"),
        (train_module.main, ["--threads", "0"], "argument --threads: expected a whole number >= 1, got 0"),
        (train_module.main, ["--steps", "many"], "invalid int value: 'many'"),
        (train_module.main, ["--batch-size", "0"], "batch_size=0 is out of range"),
        (evaluate_module.main, ["--samples", "0"], "argument --samples/-k: expected a whole number >= 1, got 0"),
        (evaluate_module.main, ["--limit", "-1"], "argument --limit: expected a whole number >= 1, got -1"),
        (evaluate_module.main, ["--batch-size", "0"], "argument --batch-size: expected a whole number >= 1, got 0"),
        (
            sample_module.main,
            ["--png", "p.png", "--scale", "1000"],
            "argument --scale: expected a whole number from 1 to 32",
        ),
        (
            sample_module.main,
            ["--png", "p.png", "--n", "0"],
            "argument --n: expected a whole number from 1 to 1024, got 0",
        ),
        (sample_module.main, ["--png", "p.png", "--nrow", "0"], "argument --nrow: expected a whole number >= 1, got 0"),
        (
            sample_module.main,
            ["--gif", "g.gif", "--frame-ms", "700000"],
            "argument --frame-ms: expected a whole number from 1 to 60000",
        ),
        (sample_module.main, ["--gif", "g.gif", "--frame-ms", "15"], "--frame-ms must be a multiple of 10"),
        (sample_module.main, ["--gif", "g.gif", "--frame-ms", "10"], "and at least 20 (browsers"),
        (train_module.main, ["--dataset", "bogus"], "unknown dataset 'bogus': expected one of"),
        (sample_module.main, ["--gif", "g.gif", "--n", "1024", "--scale", "32"], "too large to hold"),
        (
            sample_module.main,
            ["--png", "p.png", "--seed", str(10**23)],
            "argument --seed: expected a whole number from 0 to",
        ),
        (
            evaluate_module.main,
            ["--seed", "-1"],
            "argument --seed: expected a whole number from 0 to 9223372036854775807",
        ),
        (evaluate_module.main, ["--samples", str(10**10)], "--samples must be at most 5000"),
        (train_module.main, ["--time-budget", "0"], "argument --time-budget: '0' minutes: expected 0.017 to 43200"),
        (train_module.main, ["--time-budget", "nan"], "argument --time-budget: 'nan' minutes: expected 0.017"),
        (train_module.main, ["--seed", str(2**64)], "argument --seed: expected a whole number from 0 to"),
        (
            train_module.main,
            ["--compile", "--compile-glimpses", str(T + 1)],
            f"--compile-glimpses must be at most T={T}, got 5",
        ),
    ],
)
def test_bad_flags_are_an_error_line_and_exit_code_2(tmp_path, capsys, main, flags, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    checkpoint = ["--out", tmp_path / "run.safetensors", *TINY_ARGS] if main is train_module.main else ["x"]
    assert exit_code(main, [*checkpoint, *flags]) == 2
    error = capsys.readouterr().err
    assert "error: " in error and message in error and "Traceback" not in error


@pytest.mark.parametrize(
    "command",
    [
        ["train", "--out", "{tmp}/run.safetensors", "--device", "bogus"],
        ["train", "--out", "{tmp}/run.safetensors", "--threads", "-3"],
        ["evaluate", "{bad}"],
        ["sample", "{bad}", "--png", "{tmp}/p.png"],
    ],
    ids=["train-device", "train-threads", "evaluate-bad-optimizer", "sample-bad-optimizer"],
)
def test_no_cli_prints_a_traceback(trained, tmp_path, command):
    """As processes: an `error: ...` line and exit code 2 (a checkpoint whose optimizer header is `{bad` included)."""
    bad = tmp_path / "bad-optimizer.safetensors"
    data = load_safetensors_bytes(trained[0].read_bytes())
    with safe_open(str(trained[0]), framework="pt") as handle:
        metadata = {**handle.metadata(), "optimizer": "{bad"}
    bad.write_bytes(save_safetensors_bytes(data, metadata=metadata))
    result = run_cli(command[0], *(part.format(tmp=tmp_path, bad=bad) for part in command[1:]))
    assert result.returncode == 2, result.stderr
    assert "error: " in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("kind", [kind for kind in KINDS.values() if not kind.generates], ids=lambda kind: kind.name)
def test_sample_refuses_a_model_that_does_not_generate(tmp_path, capsys, kind):
    path = save_checkpoint(kind.model_class(kind.config_class()), tmp_path / "classifier.safetensors")
    png = tmp_path / "p.png"
    assert exit_code(sample_module.main, [path, "--png", png]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and f"holds a '{kind.name}' model" in error and "Traceback" not in error
    assert not png.exists()


# Issue 13: evaluate measures a classifier (sec. 4.1) by its test error on the fixed cluttered test set.

TINY_CLASSIFIERS = {  # 4 glimpses: Table 1 has a row for each kind
    "draw-classifier": ClassifierConfig(glimpses=4, read_n=4, hidden=16),
    "ram": RamConfig(glimpses=4, patch=6, scales=2, glimpse_hidden=8, location_hidden=8, glimpse_size=16, hidden=16),
}


@pytest.fixture
def sample_as_mnist(monkeypatch):
    """The cluttered test set made from the shipped MNIST sample instead of the 10,000 test digits (no data files)."""
    monkeypatch.setattr(registry, "MNIST_SPEC", registry.DATASETS["mnist-sample"])
    digits, labels = load_sample()
    return fixed_cluttered_test_set(digits, labels, limit=40)


def tiny_classifier(tmp_path: Path, kind_name: str) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    kind = KINDS[kind_name]
    model = kind.model_class(TINY_CLASSIFIERS[kind_name]).eval()
    meta = {"dataset": "mnist-cluttered"}
    return save_checkpoint(model, tmp_path / f"{kind_name}.safetensors", meta=meta), model


@pytest.mark.parametrize("kind_name", list(TINY_CLASSIFIERS))
def test_evaluate_reports_a_classifiers_test_error_beside_table_1(tmp_path, capsys, sample_as_mnist, kind_name):
    path, model = tiny_classifier(tmp_path, kind_name)
    images, labels = sample_as_mnist
    with torch.no_grad():  # RAM is judged at its policy's mean, as in training's test
        result = model.classify(images) if kind_name == "draw-classifier" else model.classify(images, sample=False)
    wrong = int((result.logits.argmax(-1) != labels).sum())
    assert evaluate_module.main([str(path), "--limit", "40", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == kind_name and report["dataset"] == "mnist-cluttered" and report["n"] == 40
    assert report["test_error"] == pytest.approx(wrong / 40)
    assert report["glimpses"] == 4 and report["table_1_error"] == {"draw-classifier": 0.0418, "ram": 0.0941}[kind_name]
    assert evaluate_module.main([str(path), "--limit", "40"]) == 0
    table = capsys.readouterr().out
    assert f"test error      {100 * wrong / 40:.2f}%" in table and "Table 1, 4 glimpses" in table


@pytest.mark.parametrize(
    ("what", "flags", "message"),
    [
        ("classifier", ["--samples", "4"], "--samples is for a generator's bound"),
        ("classifier", ["--dataset", "mnist-sample"], "no labels"),
        ("generator", ["--dataset", "mnist-cluttered"], "is a classification dataset"),
    ],
)
def test_evaluate_refuses_a_dataset_or_flag_that_does_not_fit_the_model(tmp_path, capsys, what, flags, message):
    if what == "classifier":
        path, _ = tiny_classifier(tmp_path, "draw-classifier")
    else:
        path = save_checkpoint(DRAW(DrawConfig(T=2, enc_size=8, dec_size=8, z_size=2)), tmp_path / "g.safetensors")
    assert exit_code(evaluate_module.main, [path, *flags]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error


def test_pretrain_says_which_run_failed_and_exits_non_zero():
    done = subprocess.run(
        ["bash", "tools/pretrain.sh", "no-such-preset:1"],
        cwd=ROOT,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "pretrain: no-such-preset:1 failed" in done.stderr
    assert "unknown preset 'no-such-preset'" in (ROOT / "artifacts" / "no-such-preset.log").read_text()


def test_evaluate_measures_an_autoencoder_as_it_was_trained_with_no_bound(tmp_path, capsys):
    torch.manual_seed(0)
    model = DRAW(DrawConfig(T=3, enc_size=16, dec_size=16, z_size=4))
    meta = {"dataset": "mnist-sample", "train_config": {"kl_weight": 0.0}}
    path = save_checkpoint(model, tmp_path / "ae.safetensors", meta=meta)
    assert evaluate_module.main([str(path), "--limit", "20"]) == 0
    out = capsys.readouterr().out
    expected = evaluate(model.eval(), registry.get_dataset("mnist-sample").test_set(None, 20), sample=False)
    assert "(test, 20 images, fixed binarisation)" in out and "ELBO" not in out
    assert f"reconstruction  {expected.recon_nats:.2f} nats with z = mu" in out
    assert evaluate_module.main([str(path), "--samples", "5"]) == 2
    assert "an autoencoder (kl_weight 0) has a reconstruction cost only" in capsys.readouterr().err


def test_evaluate_names_a_colour_models_levels_and_cifar_copy(tmp_path, capsys, monkeypatch):
    data = fake_cifar(tmp_path / "data")
    torch.manual_seed(0)
    cfg = DrawConfig(channels=3, height=32, width=32, T=2, read_n=2, write_n=3, enc_size=8, dec_size=8, z_size=2,
                     likelihood="logistic")  # fmt: skip
    path = save_checkpoint(DRAW(cfg), tmp_path / "colour.safetensors", meta={"dataset": "cifar10"})
    assert evaluate_module.main([str(path), "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    assert "(test, 10 images, 8-bit levels)" in out and "binarisation" not in out
    assert "measured on     the JPEG (quality 75) re-encoded copy" in out


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--n", "0"], "argument --n: expected a whole number from 1 to 10000, got 0"),
        (["--data-dir", "{tmp}"], "Dataset not found"),
    ],
)
def test_make_mnist_sample_refuses_without_touching_the_shipped_sample(tmp_path, capsys, flags, message):
    before = mnist.SAMPLE_PATH.read_bytes()
    tool = runpy.run_path(str(ROOT / "tools" / "make_mnist_sample.py"))["main"]
    with pytest.raises(SystemExit) as stopped:
        tool([flag.format(tmp=tmp_path) for flag in flags])
    assert stopped.value.code == 2 and message in capsys.readouterr().err
    assert mnist.SAMPLE_PATH.read_bytes() == before


def colour_sample_tool(monkeypatch, sample: Path):
    """tools/make_colour_sample.py writing to `sample` instead of the shipped asset."""
    spec = importlib.util.spec_from_file_location("make_colour_sample", ROOT / "tools" / "make_colour_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "CIFAR_SAMPLE_PATH", sample)
    return module.main


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--n", "0"], "argument --n: expected a whole number from 1 to 10000, got 0"),
        (["--data-dir", "{tmp}/nowhere"], "can't be read as <class>/<image> folders"),
        (["--data-dir", "{tmp}/data", "--n", "11"], "the copy holds 5 test images of its rarest class"),
    ],
)
def test_make_colour_sample_refuses_with_one_line_and_keeps_the_sample(tmp_path, capsys, monkeypatch, flags, message):
    fake_cifar(tmp_path / "data")  # 10 test images, 5 of each of two classes
    sample = tmp_path / "sample.npz"
    sample.write_bytes(b"the shipped sample")
    with pytest.raises(SystemExit) as stopped:
        colour_sample_tool(monkeypatch, sample)([flag.format(tmp=tmp_path) for flag in flags])
    error = capsys.readouterr().err
    assert stopped.value.code == 2 and message in error and "Traceback" not in error, error
    assert sample.read_bytes() == b"the shipped sample"


def test_make_colour_sample_replaces_the_sample_whole_or_not_at_all(tmp_path, capsys, monkeypatch):
    data = fake_cifar(tmp_path / "data")
    sample = tmp_path / "sample.npz"
    colour_sample_tool(monkeypatch, sample)(["--data-dir", str(data), "--n", "10"])
    with np.load(sample) as written:
        assert written["images"].shape == (10, 3, 32, 32) and list(written["labels"]) == [0, 1] * 5
    before = sample.read_bytes()

    def disk_full(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OSError, match="No space left"):
        colour_sample_tool(monkeypatch, sample)(["--data-dir", str(data), "--n", "4"])
    assert sample.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["data", "sample.npz"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--preset", "mnist-cluttered-ram"], "invalid choice: 'mnist-cluttered-ram'"),  # no generator pages
        (["--repeats", "0"], "argument --repeats: expected a whole number >= 1, got 0"),
        (["--checkpoint", "/no/such.safetensors"], "--checkpoint /no/such.safetensors is not a file"),
    ],
)
def test_bench_app_refuses_bad_flags_before_starting_the_app(capsys, flags, message):
    tool = runpy.run_path(str(ROOT / "tools" / "bench_app.py"))["main"]
    with pytest.raises(SystemExit) as stopped:
        tool(flags)
    assert stopped.value.code == 2 and message in capsys.readouterr().err


def load_test_tool(monkeypatch, report: dict | None):
    """tools/load_test.py with its server run replaced by one that returns `report` at once (None: that fails the
    test, since the command should have been refused)."""
    spec = importlib.util.spec_from_file_location("load_test", ROOT / "tools" / "load_test.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "load_test", module)  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "run", lambda args: report if report is not None else pytest.fail("the test ran"))
    return module.main


LOAD_REPORT = {"sessions": 1, "moves": 1, "think_s": 0.0, "cpus": 2, "rss_mib_started": 100.0, "rss_mib_before": 100.0,
               "rounds": [], "problems": [], "memory_back_within_10pct": True}  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--moves", "-1"], "argument --moves: expected a whole number >= 1, got -1"),
        (["--think", "-1"], "argument --think: expected a finite number >= 0, got '-1'"),
        (["--think", "nan"], "argument --think: expected a finite number >= 0, got 'nan'"),
        (["--time-limit", "0"], "argument --time-limit: expected a finite number > 0, got '0'"),
        (["--presses", "-3"], "argument --presses: expected a whole number >= 1, got -3"),
        (["--sessions", "101"], "argument --sessions: expected a whole number from 0 to 100, got 101"),
        (["--rounds", "0"], "argument --rounds: expected a whole number from 1 to 5, got 0"),
        (["--json", "{tmp}"], "is a folder"),
        (["--json", "{tmp}/earlier.json"], "earlier.json already exists: add --force to replace it"),
        (["--json", "{tmp}/a-file/report.json"], "cannot write to"),
    ],
)
def test_load_test_refuses_bad_flags_and_reports_before_starting_the_server(
    tmp_path, capsys, monkeypatch, flags, message
):
    (tmp_path / "earlier.json").write_text("{}")
    (tmp_path / "a-file").write_text("x")
    main = load_test_tool(monkeypatch, None)
    with pytest.raises(SystemExit) as stopped:
        main([flag.format(tmp=tmp_path) for flag in flags])
    assert stopped.value.code == 2 and message in capsys.readouterr().err
    assert (tmp_path / "earlier.json").read_text() == "{}"


def test_load_test_writes_its_report_whole_and_replaces_one_only_with_force(tmp_path, monkeypatch, capsys):
    main = load_test_tool(monkeypatch, LOAD_REPORT)
    report = tmp_path / "load" / "class.json"
    assert main(["--json", str(report)]) == 0
    assert json.loads(report.read_text()) == LOAD_REPORT
    report.write_text("{}")
    assert main(["--json", str(report), "--force"]) == 0
    assert json.loads(report.read_text()) == LOAD_REPORT and sorted(p.name for p in report.parent.iterdir()) == [
        "class.json"
    ]
