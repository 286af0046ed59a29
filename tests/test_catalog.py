"""draw_core.catalog: where the checkpoint picker looks, and in which order it lists."""

import json
import os

import pytest
from safetensors import safe_open
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from draw_core.config import DrawConfig
from draw_core.io import catalog
from draw_core.io.checkpoint import save_checkpoint
from draw_core.nn.model import DRAW

TINY = DrawConfig(T=2, enc_size=8, dec_size=8, z_size=2)


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    shipped, runs = tmp_path / "shipped", tmp_path / "runs"
    shipped.mkdir()
    runs.mkdir()
    monkeypatch.setenv("DRAW_CHECKPOINTS_DIR", str(shipped))
    monkeypatch.setenv("DRAW_RUNS_DIR", str(runs))
    return shipped, runs


def test_env_overrides_and_defaults(dirs, monkeypatch):
    shipped, runs = dirs
    assert catalog.shipped_dir() == shipped
    assert catalog.runs_dir() == runs
    monkeypatch.delenv("DRAW_CHECKPOINTS_DIR")
    monkeypatch.delenv("DRAW_RUNS_DIR")
    assert catalog.shipped_dir() == catalog.REPO_ROOT / "checkpoints"
    assert catalog.runs_dir() == catalog.REPO_ROOT / "runs"


def test_empty_or_missing_folders_list_nothing(dirs, monkeypatch, tmp_path):
    assert catalog.list_checkpoints() == []
    monkeypatch.setenv("DRAW_RUNS_DIR", str(tmp_path / "absent"))
    assert catalog.list_checkpoints() == []


def test_shipped_first_with_mnist_leading_then_runs_newest_first(dirs):
    shipped, runs = dirs
    model = DRAW(TINY)
    for name in ("mnist-small", "mnist", "mnist-noattn"):
        save_checkpoint(model, shipped / f"{name}.safetensors", meta={"dataset": "mnist"})
        (shipped / f"{name}.json").write_text(json.dumps({"title": name, "test_elbo_nats": 80.0}))
    old = save_checkpoint(model, runs / "old.safetensors", meta={"step": 5, "dataset": "mnist-sample"})
    new = save_checkpoint(model, runs / "new.safetensors", meta={"step": 9, "dataset": "mnist-sample"})
    os.utime(old, (1_000_000, 1_000_000))
    os.utime(new, (2_000_000, 2_000_000))
    (runs / ".new.safetensors.abc.tmp").write_bytes(b"partial")  # a save in progress is not offered
    entries = catalog.list_checkpoints()
    assert [(e.name, e.kind) for e in entries] == [
        ("mnist", "shipped"),
        ("mnist-noattn", "shipped"),
        ("mnist-small", "shipped"),
        ("new", "run"),
        ("old", "run"),
    ]
    assert entries[0].card == {"title": "mnist", "test_elbo_nats": 80.0}
    assert entries[0].path == shipped / "mnist.safetensors"
    assert entries[3].card["step"] == 9
    assert entries[3].card["config"] == TINY.to_dict()
    assert entries[3].label == "new (run)"
    assert {e.model_kind for e in entries} == {"draw"}  # read from each header


def test_entries_record_the_model_kind_of_their_header(dirs):
    shipped, runs = dirs
    path = save_checkpoint(DRAW(TINY), runs / "draw-run.safetensors")
    header = dict(safe_open(str(path), framework="pt").metadata())
    tensors = load_safetensors_bytes(path.read_bytes())
    for name, kind in (("old", None), ("future", "diffusion")):  # written before kinds existed; an unknown kind
        metadata = {k: v for k, v in {**header, "kind": kind}.items() if v is not None}
        (runs / f"{name}.safetensors").write_bytes(save_safetensors_bytes(tensors, metadata=metadata))
    kinds = {entry.name: entry.model_kind for entry in catalog.list_checkpoints()}
    assert kinds == {"draw-run": "draw", "old": "draw", "future": None}  # None: the header can't be used


def test_broken_card_and_broken_run_still_listed_with_empty_card(dirs):
    shipped, runs = dirs
    (shipped / "mnist.safetensors").write_bytes(b"not a checkpoint")
    (shipped / "mnist.json").write_text("{not json")
    (runs / "broken.safetensors").write_bytes(b"\x80\x04garbage")
    entries = catalog.list_checkpoints()
    assert [(e.name, e.card, e.model_kind) for e in entries] == [("mnist", {}, None), ("broken", {}, None)]


def test_module_constants_follow_the_environment(dirs):
    shipped, runs = dirs
    assert catalog.RUNS_DIR == runs
    assert catalog.SHIPPED_DIR == shipped
