"""tools/average_checkpoints.py: the mean of fine-tunes' weights, the training seconds behind it counted once each,
and refusals of what cannot be averaged."""

import dataclasses
import runpy
from pathlib import Path

import pytest
import torch

from draw_core.config import DrawConfig
from draw_core.io.checkpoint import load_checkpoint, save_checkpoint
from draw_core.nn.model import DRAW

ROOT = Path(__file__).resolve().parents[1]
TINY = DrawConfig(T=2, enc_size=8, dec_size=8, z_size=3)


def tool():
    return runpy.run_path(str(ROOT / "tools" / "average_checkpoints.py"))["main"]


def tiny_file(path: Path, seed: int, meta: dict, cfg: DrawConfig = TINY) -> Path:
    torch.manual_seed(seed)
    return save_checkpoint(DRAW(cfg), path, meta={"dataset": "mnist-sample", **meta})


def fine_tunes(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A start (100 s of training behind it: 40 s of its own, fine-tuned from an earlier file of the same name with
    60 s behind it, as a shipped file is) and two fine-tunes of it (30 s and 50 s of their own)."""
    earlier = {"checkpoint": str(tmp_path / "start.safetensors"), "step": 4, "total_train_seconds": 60.0}
    start = tiny_file(tmp_path / "start.safetensors", 0, {"step": 10, "train_seconds": 40.0, "init_from": earlier})
    began = {"checkpoint": str(start), "step": 10, "train_seconds": 100.0, "total_train_seconds": 100.0}
    a = tiny_file(tmp_path / "a.safetensors", 1, {"step": 7, "train_seconds": 30.0, "init_from": began})
    b = tiny_file(tmp_path / "b.safetensors", 2, {"step": 9, "train_seconds": 50.0, "init_from": began})
    return start, a, b


def test_the_mean_of_the_weights_and_every_run_counted_once(tmp_path):
    start, a, b = fine_tunes(tmp_path)
    for inputs, own, total in (([a, b], 80.0, 180.0), ([a, b, start], 80.0, 180.0)):
        out = tmp_path / f"soup{len(inputs)}.safetensors"
        assert tool()([*map(str, inputs), "--out", str(out)]) == 0
        soup = load_checkpoint(out)
        weights = [load_checkpoint(path).model.state_dict() for path in inputs]
        for key, value in soup.model.state_dict().items():
            torch.testing.assert_close(value, sum(w[key] for w in weights) / len(inputs))
        # the fine-tunes' own seconds (30 + 50), and once the 100 s behind the start they share
        assert soup.meta["train_seconds"] == own and soup.meta["total_train_seconds"] == total
        assert [entry["checkpoint"] for entry in soup.meta["averaged_from"]] == list(map(str, inputs))
        assert soup.meta["step"] == 7 and soup.meta["init_from"]["checkpoint"] == str(start)


def test_models_of_another_config_or_too_few_inputs_or_an_existing_out_are_refused(tmp_path, capsys):
    start, a, _ = fine_tunes(tmp_path)
    other = tiny_file(tmp_path / "other.safetensors", 3, {"step": 1}, dataclasses.replace(TINY, z_size=4))
    assert tool()([str(a), str(other), "--out", str(tmp_path / "x.safetensors")]) == 2
    assert "only one model's weights average" in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()
    for argv, message in (
        ([str(a), "--out", str(tmp_path / "y.safetensors")], "at least 2 checkpoints, got 1"),
        ([str(a), str(start), "--out", str(start)], "exists: choose another path"),
    ):
        with pytest.raises(SystemExit) as stopped:
            tool()(argv)
        assert stopped.value.code == 2 and message in capsys.readouterr().err
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a checkpoint")
    assert tool()([str(a), str(broken), "--out", str(tmp_path / "z.safetensors")]) == 2
    assert "broken.safetensors" in capsys.readouterr().err and not (tmp_path / "z.safetensors").exists()


@pytest.mark.parametrize(
    ("start", "message"),
    [
        ({"checkpoint": 5, "total_train_seconds": "x"}, "init_from's checkpoint=5 must be a file path"),
        ({"checkpoint": "start.safetensors", "total_train_seconds": "x"}, "total_train_seconds='x' must be a finite"),
        ({"checkpoint": "start.safetensors", "total_train_seconds": float("nan")}, "total_train_seconds=nan must be"),
        ({"checkpoint": "start.safetensors", "step": [1]}, "init_from's step=[1] must be a whole number"),
        ("start.safetensors", "init_from='start.safetensors' must be an object"),
    ],
    ids=["checkpoint-not-a-path", "seconds-not-a-number", "seconds-nan", "step-a-list", "not-an-object"],
)
def test_a_start_record_of_the_wrong_types_is_refused_with_one_line(tmp_path, capsys, start, message):
    _, a, _ = fine_tunes(tmp_path)
    hostile = tiny_file(tmp_path / "hostile.safetensors", 4, {"step": 3, "train_seconds": 1.0, "init_from": start})
    out = tmp_path / "soup.safetensors"
    assert tool()([str(a), str(hostile), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and str(hostile) in error and message in error, error
    assert not out.exists()


def test_an_unwritable_out_is_refused_before_any_input_is_loaded(tmp_path, capsys):
    _, a, _ = fine_tunes(tmp_path)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a checkpoint")  # loading it would be the first error
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(SystemExit) as stopped:
        tool()([str(a), str(broken), "--out", str(blocker / "soup.safetensors")])
    error = capsys.readouterr().err
    assert stopped.value.code == 2 and "cannot write" in error and "broken.safetensors" not in error, error
