"""The GPU path and its one-command recipe. On the CPU: bfloat16 autocast trains on the plain hot path, the options
reach the checkpoint, and tools/gpu_recipe.py runs end to end with tiny settings. The tests marked `cuda` need a GPU
(they skip without one); the recipe runs them first on a GPU machine.
"""

import argparse
import hashlib
import importlib.util
import json
import runpy
import shutil
from pathlib import Path

import pytest
import torch
from test_distributed import torchrun

from draw_core.config import DrawConfig, TrainConfig
from draw_core.data import get_dataset
from draw_core.io.checkpoint import load_checkpoint, read_header, save_checkpoint
from draw_core.nn.classifier import ClassifierConfig, DrawClassifier
from draw_core.nn.elbo import loss_terms
from draw_core.nn.hot_path import choose_hot_path
from draw_core.nn.model import DRAW, standard_normal
from draw_core.nn.ram import RAM, RamConfig
from draw_core.train import main as train_main
from draw_core.training.trainer import Trainer, precision

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "checkpoints"
TINY = DrawConfig(T=3, enc_size=16, dec_size=16, z_size=4)
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (tools/gpu_recipe.sh)")


def load_recipe():
    spec = importlib.util.spec_from_file_location("gpu_recipe", ROOT / "tools" / "gpu_recipe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_train(**changes) -> TrainConfig:
    settings = dict(
        dataset="mnist-sample", batch_size=8, steps=3, warmup_steps=0, eval_every=0, sample_every=0, device="cpu"
    )
    return TrainConfig(**{**settings, **changes})


def test_bf16_autocast_runs_the_plain_path_and_trains_finite_steps(tmp_path):
    x = torch.zeros(2, 1, 28, 28)
    with precision("bf16", torch.device("cpu")):
        assert choose_hot_path(x) == "plain"  # the fused autograd Functions are float32 code
    with precision("off", torch.device("cpu")):
        assert choose_hot_path(x) == "fused"
    first = {}
    for amp in ("off", "bf16"):  # same seed: same weights, batches and noise
        trainer = Trainer.create(TINY, tiny_train(amp=amp), tmp_path / f"{amp}.safetensors")
        losses = [trainer.train_step()[0].loss.item() for _ in range(3)]
        assert all(torch.isfinite(torch.tensor(losses))), losses
        assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # autocast keeps float32 weights
        first[amp] = losses[0]
    assert first["bf16"] != first["off"]  # autocast did run the matmuls in bfloat16 ...
    assert first["bf16"] == pytest.approx(first["off"], rel=0.02)  # ... at bfloat16's precision (8 bits)


def test_amp_and_compile_options_reach_the_checkpoint(tmp_path):
    out = tmp_path / "run.safetensors"
    args = ["--preset", "mnist", "--T", "2", "--enc-size", "8", "--dec-size", "8", "--z-size", "2", "--steps", "2"]
    args += ["--dataset", "mnist-sample", "--batch-size", "4", "--device", "cpu", "--eval-limit", "4", "--amp", "bf16"]
    assert train_main([*args, "--out", str(out)]) == 0
    config = load_checkpoint(out).meta["train_config"]
    assert (config["amp"], config["compile"]) == ("bf16", False)
    with pytest.raises(ValueError, match=r"amp='fp8' is not a precision: expected one of \('off', 'bf16'\)"):
        TrainConfig(amp="fp8")


def test_the_learning_rate_scales_with_the_square_root_or_linearly():
    scaled_lr = load_recipe().scaled_lr
    assert scaled_lr(1e-3, 64, 1024, "sqrt") == pytest.approx(4e-3)  # 16x the batch, 4x the rate
    assert scaled_lr(1e-3, 64, 1024, "linear") == pytest.approx(1.6e-2)
    assert scaled_lr(8e-4, 64, 16, "sqrt") == pytest.approx(4e-4)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_recipe_runs_end_to_end_on_cpu(tmp_path):
    """The recipe with tiny settings over stand-ins of the shipped files (their meta, tiny weights: the same code
    path in seconds; test_the_recipe_continues_the_real_shipped_files runs the real ones, slowly)."""
    shipped = tmp_path / "checkpoints"
    for name, attention in (("mnist", True), ("mnist-noattn", False)):
        torch.manual_seed(0)
        config = DrawConfig(T=3, enc_size=16, dec_size=16, z_size=4, read_attn=attention, write_attn=attention)
        save_checkpoint(
            DRAW(config), shipped / f"{name}.safetensors", meta=load_checkpoint(SHIPPED / f"{name}.safetensors").meta
        )
    repository = {p.name: digest(p) for p in SHIPPED.iterdir()}
    work = tmp_path / "work"
    argv = ["0.5", "--device", "cpu", "--dataset", "mnist-sample", "--batch-size", "16", "--steps", "3"]
    argv += ["--warmup-steps", "1", "--log-every", "1", "--eval-limit", "20", "--k", "2", "--no-compile"]
    argv += ["--checkpoints-dir", str(shipped), "--work-dir", str(work), "--tests", str(Path(__file__))]
    argv += ["--bench-batches", "8", "16", "--bench-preset", "mnist-small", "--bench-steps", "1", "--bench-warmup", "0"]
    assert load_recipe().main(argv) == 0
    (run,) = work.iterdir()  # the call's own folder
    summary = json.loads((run / "summary.json").read_text())
    assert summary["device"]["device"] == "cpu" and summary["tests"]["returncode"] == 0
    assert [b["batch_size"] for b in summary["bench"]] == [8, 16]
    assert all({row["path"] for row in b["rows"]} == {"fused", "plain"} for b in summary["bench"])
    for model in summary["models"]:
        name, real = model["name"], load_checkpoint(SHIPPED / f"{model['name']}.safetensors").meta
        assert model["steps"] == 3 and model["continued_from"]["step"] == real["step"]
        base = real["train_config"]
        assert model["lr"] == pytest.approx(base["lr"] * (16 / base["batch_size"]) ** 0.5)
        card = json.loads((run / "export" / f"{name}.json").read_text())
        assert card["dataset"] == "mnist-sample" and card["steps"] == 3 and card["test_n"] == 20
        assert card["world_size"] == 1 and card["continued_from"]["step"] == real["step"]
        assert model["dataset"] == "mnist-sample" and model["after"]["metric"] == "test_elbo_nats"
        assert model["after"]["value"] < model["before"]["value"]  # 3 steps from random weights do better
        assert model["shipped"] and digest(shipped / f"{name}.safetensors") == digest(
            run / "export" / f"{name}.safetensors"
        )
        assert digest(shipped / f"{name}.json") == digest(run / "export" / f"{name}.json")
    assert {p.name: digest(p) for p in SHIPPED.iterdir()} == repository  # the repository's files are untouched


def test_a_compiler_that_fails_costs_the_recipe_its_compiling_not_the_model(tmp_path, monkeypatch):
    def failing_compile(model, **options):
        def compiled(*args, **kwargs):
            raise RuntimeError("inductor could not build a kernel")

        model.compiled_glimpses = compiled

    monkeypatch.setattr(DRAW, "compile_step", failing_compile)
    shipped = tmp_path / "checkpoints"
    torch.manual_seed(0)
    meta = load_checkpoint(SHIPPED / "mnist.safetensors").meta
    save_checkpoint(DRAW(TINY), shipped / "mnist.safetensors", meta=meta)
    work = tmp_path / "work"
    argv = ["0.5", "--device", "cpu", "--dataset", "mnist-sample", "--batch-size", "8", "--steps", "3", "--compile"]
    argv += ["--models", "mnist", "--eval-limit", "20", "--k", "2", "--tests", "--bench-batches"]
    argv += ["--checkpoints-dir", str(shipped), "--work-dir", str(work)]
    assert load_recipe().main(argv) == 0
    (run,) = work.iterdir()  # the call's own folder
    (model,) = json.loads((run / "summary.json").read_text())["models"]
    assert model["compile_error"] == "RuntimeError: inductor could not build a kernel"
    assert model["steps"] == 3 and model["after"]["value"] < model["before"]["value"]
    assert load_checkpoint(run / "mnist.safetensors").meta["train_config"]["compile"] is False


def test_model_entries_take_their_own_minutes_and_refuse_what_the_recipe_cannot_continue():
    recipe = load_recipe()
    args = recipe.build_parser().parse_args(["3", "--models", "mnist-cluttered-ram:1.5", "cifar10"])
    assert args.models == [("mnist-cluttered-ram", 1.5), ("cifar10", None)]
    assert recipe.build_parser().parse_args(["3"]).models == [("mnist", None), ("mnist-noattn", None)]
    for entry, message in (
        ("mnist-ae", "'mnist-ae' is not a model the recipe continues"),
        ("mnist:soon", "'soon' minutes: expected a number"),
        ("mnist:0", "'0' minutes: expected 0.017 to 43200"),
    ):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            recipe.model_and_minutes(entry)
    for minutes in ("0", "-5", "nan"):  # refused before the tests, the bench or any file is touched
        with pytest.raises(SystemExit):
            recipe.build_parser().parse_args([minutes])


def test_counts_below_one_are_refused_before_any_stage_runs(tmp_path, capsys):
    work = tmp_path / "work"
    for flag in ("--k", "--compile-glimpses", "--eval-limit"):
        with pytest.raises(SystemExit) as stopped:
            load_recipe().main(["1", "--device", "cpu", flag, "0", "--work-dir", str(work)])
        error = capsys.readouterr().err
        assert stopped.value.code == 2 and f"argument {flag}: expected a whole number >= 1, got 0" in error
    assert not work.exists(), "nothing was started"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--warmup-steps", "-1"], "argument --warmup-steps: expected a whole number >= 0, got -1"),
        (["--steps", "0"], "argument --steps: expected a whole number >= 1, got 0"),
        (["--seed", "-1"], "argument --seed: expected a whole number from 0 to 9223372036854775807, got -1"),
        (["--checkpoint-every", "-5"], "argument --checkpoint-every: expected a whole number >= 0, got -5"),
        (["--log-every", "0"], "argument --log-every: expected a whole number >= 1, got 0"),
        (["--lr", "0"], "argument --lr: expected a finite number > 0, got '0'"),
        (["--lr", "nan"], "argument --lr: expected a finite number > 0, got 'nan'"),
        (["--tests-timeout", "-1"], "argument --tests-timeout: expected a finite number > 0, got '-1'"),
        (["--tests-timeout", "inf"], "argument --tests-timeout: expected a finite number > 0, got 'inf'"),
        (["--bench-batches", "128", "0"], "argument --bench-batches: expected a whole number >= 1, got 0"),
        (["--bench-steps", "0"], "argument --bench-steps: expected a whole number >= 1, got 0"),
        (["--bench-warmup", "-1"], "argument --bench-warmup: expected a whole number >= 0, got -1"),
        (["--bench-preset", "mnist-cluttered-ram"], "argument --bench-preset: invalid choice"),
    ],
)
def test_bad_numbers_are_refused_while_parsing_before_any_stage_runs(tmp_path, capsys, flags, message):
    work = tmp_path / "work"
    argv = ["0.02", "--device", "cpu", "--tests", "--bench-batches", "--bench-preset", "mnist-small"]
    argv += ["--bench-steps", "1", "--bench-warmup", "0", "--checkpoints-dir", str(tmp_path / "none")]
    with pytest.raises(SystemExit) as stopped:
        load_recipe().main([*argv, "--work-dir", str(work), *flags])
    assert stopped.value.code == 2 and message in capsys.readouterr().err
    assert not work.exists(), "nothing was started"


def stand_in(folder: Path, name: str = "mnist") -> None:
    """A tiny model with the shipped file's meta at folder/name.safetensors."""
    torch.manual_seed(0)
    meta = read_header(SHIPPED / f"{name}.safetensors").meta
    save_checkpoint(DRAW(TINY), folder / f"{name}.safetensors", meta=meta)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--models", "mnist-noattn"], "mnist-noattn.safetensors does not exist"),
        (["--models", "mnist", "mnist:2"], "--models names mnist twice"),
        (["--compile", "--compile-glimpses", "4"], "--compile-glimpses must be at most mnist's T=3, got 4"),
        (["--compile", "--compile-glimpses", "65", "--bench-batches", "8"], "at most the bench preset's T=64, got 65"),
        (["--steps", "20000000"], "steps=20000000 is out of range"),
        (["--lr", "2"], "lr=2.0 is out of range"),
        (["--dataset", "bogus"], "unknown dataset 'bogus'"),
        (["--device", "bogus"], "unknown device 'bogus'"),
        (["--work-dir", "{tmp}/a-file/work"], "cannot make a folder"),
    ],
    ids=["missing", "twice", "glimpses-over-T", "bench-glimpses", "steps", "lr", "dataset", "device", "work-dir"],
)
def test_the_shipped_files_and_the_training_settings_are_checked_before_any_stage_runs(
    tmp_path, capsys, flags, message
):
    shipped, work = tmp_path / "checkpoints", tmp_path / "work"
    stand_in(shipped)
    (tmp_path / "a-file").write_text("x")
    argv = ["0.02", "--device", "cpu", "--models", "mnist", "--dataset", "mnist-sample", "--batch-size", "8"]
    argv += ["--steps", "1", "--eval-limit", "10", "--k", "1", "--tests", "--bench-batches"]
    argv += ["--checkpoints-dir", str(shipped), "--work-dir", str(work)]
    with pytest.raises(SystemExit) as stopped:
        load_recipe().main([*argv, *(flag.format(tmp=tmp_path) for flag in flags)])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and message in err and "Traceback" not in err, err
    assert not work.exists(), "no stage ran"


def test_each_call_keeps_its_own_folder(tmp_path):
    """A second call (e.g. after a lease cut the first one off) writes beside the first call's files, not over them."""
    shipped, work = tmp_path / "checkpoints", tmp_path / "work"
    stand_in(shipped)
    argv = ["0.5", "--device", "cpu", "--dataset", "mnist-sample", "--batch-size", "8", "--steps", "1"]
    argv += ["--models", "mnist", "--eval-limit", "10", "--k", "1", "--no-compile", "--tests", "--bench-batches"]
    argv += ["--checkpoints-dir", str(shipped), "--work-dir", str(work)]
    recipe = load_recipe()
    assert recipe.main(argv) == 0 and recipe.main(argv) == 0
    first, second = sorted(work.iterdir())
    for run in (first, second):
        assert {p.name for p in run.iterdir()} == {"summary.json", "mnist.safetensors", "export"}
    assert json.loads((first / "summary.json").read_text())["work_dir"] == str(first)


def test_a_bench_that_refuses_its_arguments_is_recorded_and_the_recipe_goes_on(capsys):
    recipe = load_recipe()
    args = recipe.build_parser().parse_args(["1", "--device", "cpu", "--no-compile"])
    args.bench_steps = 0  # a value draw_core.bench refuses (the recipe's own parser refuses it first)
    report = recipe.run_bench(args, 8)  # draw_core.bench exits with a usage error (SystemExit 2) inside
    assert report["returncode"] == 1 and report["rows"] == []
    assert "bench failed: SystemExit" in capsys.readouterr().out


@pytest.mark.skipif(not get_dataset("mnist-cluttered").available(), reason="needs MNIST under $DRAW_DATA_DIR")
def test_the_recipe_continues_the_classifiers_on_their_own_dataset(tmp_path):
    """Stand-ins of the two shipped classifiers (their meta, tiny weights) continue on cluttered MNIST, the dataset
    their meta names, judged by test error; each NAME:MINUTES entry keeps its own minutes."""
    shipped = tmp_path / "checkpoints"
    tiny = {
        "mnist-cluttered-draw": DrawClassifier(ClassifierConfig(glimpses=2, read_n=4, hidden=8)),
        "mnist-cluttered-ram": RAM(
            RamConfig(glimpses=2, patch=4, scales=2, glimpse_hidden=8, location_hidden=8, glimpse_size=8, hidden=8)
        ),
    }
    for name, model in tiny.items():
        save_checkpoint(model, shipped / f"{name}.safetensors", meta=read_header(SHIPPED / f"{name}.safetensors").meta)
        shutil.copyfile(SHIPPED / f"{name}.json", shipped / f"{name}.json")
    work = tmp_path / "work"
    argv = ["0.5", "--device", "cpu", "--batch-size", "8", "--steps", "2", "--eval-limit", "20", "--no-compile"]
    argv += ["--models", "mnist-cluttered-draw", "mnist-cluttered-ram:0.25", "--tests", "--bench-batches"]
    argv += ["--checkpoints-dir", str(shipped), "--work-dir", str(work)]
    assert load_recipe().main(argv) == 0
    (run,) = work.iterdir()  # the call's own folder
    summary = json.loads((run / "summary.json").read_text())
    assert [(m["name"], m["minutes"]) for m in summary["models"]] == [
        ("mnist-cluttered-draw", 0.5),
        ("mnist-cluttered-ram", 0.25),
    ]
    for model in summary["models"]:
        assert model["dataset"] == "mnist-cluttered" and model["steps"] == 2
        assert model["before"]["metric"] == model["after"]["metric"] == "test_error"
        assert model["before"]["n"] == model["after"]["n"] == 20
        card = json.loads((run / "export" / f"{model['name']}.json").read_text())
        assert card["test_error"] == pytest.approx(model["after"]["value"]) and card["test_n"] == 20
        assert card["kind"] == ("ram" if model["name"].endswith("ram") else "draw-classifier")
        assert model["shipped"] == (model["after"]["value"] < model["before"]["value"])
        assert (digest(shipped / f"{model['name']}.json") == digest(run / "export" / f"{model['name']}.json")) == (
            model["shipped"]
        )


def test_an_export_keeps_the_hand_written_notes_of_the_card_it_replaces(tmp_path, capsys, monkeypatch):
    torch.manual_seed(0)
    source = tmp_path / "run.safetensors"
    save_checkpoint(DRAW(TINY), source, meta={"step": 3, "dataset": "mnist-sample", "train_config": {}})
    notes = {"preset": "mnist-small", "gaussian_bits_per_dim": 4.29, "gaussian_note": "yardstick"}
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps({"dataset": "mnist-sample", "test_elbo_nats": 1.0, **notes}))
    export = runpy.run_path(str(ROOT / "tools" / "export_checkpoint.py"))["main"]
    argv = [str(source), "--name", "tiny", "--out-dir", str(tmp_path / "out"), "--k", "2", "--limit", "10"]
    export([*argv, "--command", "train", "--notes-from", str(earlier)])
    card = json.loads((tmp_path / "out" / "tiny.json").read_text())
    assert card["dataset"] == "mnist-sample"  # the run's own, from its meta
    assert {key: card[key] for key in notes} == notes and card["test_elbo_nats"] != 1.0  # notes kept, figures new
    earlier.write_text(json.dumps({"dataset": "cifar10", **notes}))
    shipped = {path.name: path.read_bytes() for path in (tmp_path / "out").iterdir()}
    monkeypatch.setenv("DRAW_DATA_DIR", str(tmp_path / "no-data"))
    argv.append("--force")  # each try would replace the pair exported above
    for bad, why in (
        (["--notes-from", str(earlier)], "a card of a model on 'cifar10', not on 'mnist-sample'"),
        (["--dataset", "svhn"], "svhn is not on this server"),  # found missing after the weights were saved
        (["--dataset", "bogus"], "bogus"),
    ):
        with pytest.raises(SystemExit) as stopped:
            export([*argv, "--command", "train", *bad])
        assert stopped.value.code == 2 and why in capsys.readouterr().err
        # the shipped pair is as it was, and no half-made export is left beside it
        assert {path.name: path.read_bytes() for path in (tmp_path / "out").iterdir()} == shipped, bad


def test_an_export_refuses_bad_names_limits_and_missing_notes_with_one_line(tmp_path, capsys):
    torch.manual_seed(0)
    source = tmp_path / "run.safetensors"
    save_checkpoint(DRAW(TINY), source, meta={"step": 3, "dataset": "mnist-sample", "train_config": {}})
    export = runpy.run_path(str(ROOT / "tools" / "export_checkpoint.py"))["main"]
    argv = [str(source), "--out-dir", str(tmp_path / "out"), "--command", "train", "--k", "2"]
    not_a_card = tmp_path / "list.json"
    not_a_card.write_text("[]")
    for bad, why in (
        (["--name", "../escaped"], "--name must be a plain file name (no folders), got '../escaped'"),
        (["--name", "tiny", "--limit", "0"], "argument --limit: expected a whole number >= 1, got 0"),
        (["--name", "tiny", "--threads", "0"], "argument --threads: expected a whole number >= 1, got 0"),
        (["--name", "tiny", "--notes-from", str(tmp_path / "missing.json")], "missing.json"),
        (["--name", "tiny", "--notes-from", str(not_a_card)], "is not a model card: expected a JSON object, got list"),
    ):
        with pytest.raises(SystemExit) as stopped:
            export([*argv, *bad])
        err = capsys.readouterr().err
        assert stopped.value.code == 2 and why in err and "Traceback" not in err, err
    assert not (tmp_path / "escaped.safetensors").exists() and not (tmp_path / "out" / "tiny.safetensors").exists()


@pytest.mark.parametrize("existing", [".safetensors", ".json"])
def test_an_export_replaces_an_existing_file_only_with_force(tmp_path, capsys, existing):
    torch.manual_seed(0)
    source = tmp_path / "run.safetensors"
    save_checkpoint(DRAW(TINY), source, meta={"step": 3, "dataset": "mnist-sample", "train_config": {}})
    out = tmp_path / "out"
    (out / f"tiny{existing}").parent.mkdir()
    (out / f"tiny{existing}").write_text("a shipped file")
    export = runpy.run_path(str(ROOT / "tools" / "export_checkpoint.py"))["main"]
    argv = [str(source), "--name", "tiny", "--out-dir", str(out), "--command", "train", "--k", "2", "--limit", "10"]
    with pytest.raises(SystemExit) as stopped:
        export([*argv, "--data-dir", str(tmp_path / "no-data")])  # refused before anything is measured
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and f"{out / 'tiny'}{existing} already exists: add --force to replace it" in err, err
    assert [p.name for p in out.iterdir()] == [f"tiny{existing}"]
    export([*argv, "--force"])
    assert json.loads((out / "tiny.json").read_text())["test_n"] == 10
    assert load_checkpoint(out / "tiny.safetensors").meta["step"] == 3


@pytest.mark.slow
def test_the_recipe_continues_the_real_shipped_files(tmp_path):
    shipped = tmp_path / "checkpoints"
    shutil.copytree(SHIPPED, shipped)
    work = tmp_path / "work"
    argv = ["0.1", "--device", "cpu", "--dataset", "mnist-sample", "--batch-size", "8", "--steps", "2"]
    argv += ["--eval-limit", "20", "--k", "2", "--no-compile", "--tests", "--bench-batches"]
    argv += ["--checkpoints-dir", str(shipped), "--work-dir", str(work)]
    assert load_recipe().main(argv) == 0
    (run,) = work.iterdir()  # the call's own folder
    summary = json.loads((run / "summary.json").read_text())
    for model in summary["models"]:
        assert model["steps"] >= 1 and (model["shipped"] == (model["after"]["value"] < model["before"]["value"]))
        stays = digest(shipped / f"{model['name']}.safetensors") == digest(SHIPPED / f"{model['name']}.safetensors")
        assert stays != model["shipped"]


def same_batch_and_noise(cfg: DrawConfig, n: int):
    generator = torch.Generator().manual_seed(0)
    x = torch.bernoulli(torch.full((n, 1, 28, 28), 0.3), generator=generator)
    return x, standard_normal((cfg.T, n, cfg.z_size), generator, torch.device("cpu"))


@pytest.mark.cuda
@needs_cuda
def test_the_plain_path_on_cuda_is_as_close_to_float64_as_the_cpu():
    # Against a float64 pass of the same batch and noise, the float32 loss and gradients on CUDA (plain path) and on
    # the CPU (fused) differ by rounding alone: T = 64 recurrent steps sum it up differently on each device, so the
    # comparison is per parameter and normwise (an elementwise tolerance fails on near-zero entries).
    torch.set_float32_matmul_precision("highest")
    cfg = DrawConfig.preset("mnist")
    torch.manual_seed(0)
    model = DRAW(cfg)
    x, noise = same_batch_and_noise(cfg, 32)

    def loss_and_grads(device: str, dtype: torch.dtype):
        model.to(device, dtype).zero_grad()
        loss = loss_terms(model.run(x.to(device, dtype), noise.to(device, dtype)), x.to(device, dtype)).total.mean()
        loss.backward()
        return loss.item(), {k: p.grad.double().cpu() for k, p in model.named_parameters()}

    reference_loss, reference = loss_and_grads("cpu", torch.float64)
    for device in ("cpu", "cuda"):
        loss, grads = loss_and_grads(device, torch.float32)
        assert loss == pytest.approx(reference_loss, rel=1e-5), device
        errors = {k: ((g - reference[k]).norm() / reference[k].norm()).item() for k, g in grads.items()}
        print(device, "largest normwise relative gradient error:", max(errors.items(), key=lambda item: item[1]))
        assert max(errors.values()) < 1e-4, (device, errors)  # float32 on our CPU: 2e-7


@pytest.mark.cuda
@needs_cuda
def test_bf16_training_on_cuda_stays_finite_and_near_float32(tmp_path):
    first = {}
    for amp in ("off", "bf16"):
        train_cfg = tiny_train(amp=amp, device="cuda", batch_size=256, steps=20)
        trainer = Trainer.create(DrawConfig.preset("mnist"), train_cfg, tmp_path / f"{amp}.safetensors")
        losses = [trainer.train_step()[0].loss.item() for _ in range(20)]
        assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0], losses
        first[amp] = losses[0]
    assert first["bf16"] == pytest.approx(first["off"], rel=0.02)


@pytest.mark.cuda
@pytest.mark.slow
@needs_cuda
def test_compile_trains_on_cuda(tmp_path):
    train_cfg = tiny_train(compile=True, device="cuda", amp="bf16", batch_size=256)
    trainer = Trainer.create(DrawConfig.preset("mnist"), train_cfg, tmp_path / "run.safetensors")
    losses = [trainer.train_step()[0].loss.item() for _ in range(3)]
    assert all(torch.isfinite(torch.tensor(losses))), losses


@pytest.mark.cuda
@needs_cuda
def test_torchrun_on_cuda_uses_nccl_one_gpu_per_process(tmp_path):
    out = tmp_path / "run.safetensors"
    processes = min(2, torch.cuda.device_count())
    args = ["--preset", "mnist", "--T", "3", "--enc-size", "16", "--dec-size", "16", "--z-size", "4", "--steps", "3"]
    args += ["--dataset", "mnist-sample", "--batch-size", "8", "--device", "cuda", "--eval-limit", "16"]
    launched = torchrun("-m", "draw_core.train", *args, "--out", str(out), processes=processes)
    assert launched.returncode == 0, launched.stderr[-3000:]
    meta = load_checkpoint(out).meta
    assert (meta["backend"], meta["world_size"], meta["device"]) == ("nccl", processes, "cuda:0")
