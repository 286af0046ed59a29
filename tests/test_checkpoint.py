"""draw_core.checkpoint: round trips, hostile and broken files, atomic writes, float16 storage."""

import builtins
import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from safetensors.torch import save_file

from draw_core.config import DrawConfig
from draw_core.io.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from draw_core.nn.elbo import loss_terms
from draw_core.nn.kinds import DEFAULT_KIND, KINDS, kind_names
from draw_core.nn.model import DRAW

TINY = DrawConfig(T=4, enc_size=32, dec_size=32, z_size=8)


def tiny_model(seed: int = 0, cfg: DrawConfig = TINY) -> DRAW:
    torch.manual_seed(seed)
    return DRAW(cfg)


def batch(B: int = 8) -> torch.Tensor:
    return (torch.rand(B, 1, 28, 28, generator=torch.Generator().manual_seed(0)) > 0.7).float()


def adam_step(model: DRAW, optimizer: torch.optim.Optimizer) -> None:
    x = batch()
    loss = loss_terms(model(x, generator=torch.Generator().manual_seed(1)), x).total.mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def assert_same_weights(a: DRAW, b: DRAW) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_round_trip_gives_identical_outputs(tmp_path):
    model = tiny_model().eval()
    path = save_checkpoint(model, tmp_path / "m.safetensors", meta={"step": 7, "dataset": "mnist-sample", "note": "hi"})
    ckpt = load_checkpoint(path)
    assert ckpt.config == TINY
    assert ckpt.meta["step"] == 7 and ckpt.meta["dataset"] == "mnist-sample" and ckpt.meta["note"] == "hi"
    assert "created" in ckpt.meta
    assert ckpt.optimizer_state is None
    assert not ckpt.model.training
    assert ckpt.path == path
    a = model.generate(4, generator=torch.Generator().manual_seed(3))
    b = ckpt.model.generate(4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.canvases, b.canvases)
    x = batch(4)
    with torch.no_grad():
        ra = model(x, generator=torch.Generator().manual_seed(4))
        rb = ckpt.model(x, generator=torch.Generator().manual_seed(4))
    assert torch.equal(ra.canvas_logits, rb.canvas_logits)
    # The same bytes load the same model (the app's upload path).
    from_bytes = load_checkpoint(path.read_bytes())
    assert_same_weights(from_bytes.model, ckpt.model)
    assert from_bytes.meta == ckpt.meta


def test_optimizer_state_round_trips(tmp_path):
    model = tiny_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    adam_step(model, optimizer)
    save_checkpoint(model, tmp_path / "m.safetensors", meta={"step": 1}, optimizer=optimizer)
    ckpt = load_checkpoint(tmp_path / "m.safetensors")
    assert ckpt.optimizer_state is not None
    restored_model = ckpt.model.train()
    restored = torch.optim.Adam(restored_model.parameters(), lr=1.0)
    restored.load_state_dict(ckpt.optimizer_state)
    assert restored.param_groups[0]["lr"] == pytest.approx(2e-3)
    original_state, restored_state = optimizer.state_dict()["state"], restored.state_dict()["state"]
    assert original_state.keys() == restored_state.keys() and len(original_state) == len(list(model.parameters()))
    for index, values in original_state.items():
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(torch.as_tensor(values[key]), torch.as_tensor(restored_state[index][key])), (index, key)
    # One more identical step on both gives identical weights (the moments were really restored).
    adam_step(model, optimizer)
    adam_step(restored_model, restored)
    for p, q in zip(model.parameters(), restored_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


class Hostile:
    """Unpickling this opens (creates) the marker file: code from the file would run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.open, (self.marker, "w")


def test_the_hostile_payload_really_runs_when_unpickled(tmp_path):
    marker = tmp_path / "proof"
    pickle.loads(pickle.dumps(Hostile(marker)))
    assert marker.exists()  # so the next test's marker would appear if anything unpickled the file


@pytest.mark.parametrize("how", ["pickle.dumps", "torch.save"])
def test_hostile_pickle_is_refused_and_not_executed(tmp_path, how):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.safetensors"
    if how == "pickle.dumps":
        path.write_bytes(pickle.dumps({"model": Hostile(marker)}))
    else:
        torch.save({"model": Hostile(marker)}, path)
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(path.read_bytes())
    assert not marker.exists()


@pytest.fixture
def good_file(tmp_path):
    return save_checkpoint(tiny_model(), tmp_path / "good.safetensors", meta={"step": 3})


def test_truncated_file_is_refused(good_file, tmp_path):
    data = good_file.read_bytes()
    for cut in (len(data) // 2, len(data) - 1, 40, 5):
        broken = tmp_path / f"cut{cut}.safetensors"
        broken.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="truncated"):
            load_checkpoint(broken)


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.safetensors"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(path)


def test_random_bytes_are_refused(tmp_path):
    path = tmp_path / "noise.safetensors"
    data = bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0), dtype=torch.uint8).tolist())
    assert data[:1] != b"\x80"
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match="not a DRAW Studio checkpoint"):
        load_checkpoint(path)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors")


def test_foreign_safetensors_file_is_refused(tmp_path):
    path = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(3, 3)}, str(path), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="format tag"):
        load_checkpoint(path)


def rewrite_header(src, dst, edit) -> None:
    """Copy a checkpoint with its safetensors metadata changed by `edit(metadata)`."""
    data = src.read_bytes()
    tensors = load_safetensors_bytes(data)
    with safe_open(str(src), framework="pt") as handle:
        metadata = dict(handle.metadata())
    edit(metadata)
    dst.write_bytes(save_safetensors_bytes(tensors, metadata=metadata))


def test_config_that_does_not_fit_the_weights_is_refused(good_file, tmp_path):
    def smaller_encoder(metadata):
        metadata["config"] = json.dumps({**json.loads(metadata["config"]), "enc_size": 16})

    path = tmp_path / "wrong.safetensors"
    rewrite_header(good_file, path, smaller_encoder)
    with pytest.raises(CheckpointError, match="don't fit its config") as error:
        load_checkpoint(path)
    assert "wrong shapes" in str(error.value) and "encoder.weight" in str(error.value)

    def no_attention(metadata):
        metadata["config"] = json.dumps({**json.loads(metadata["config"]), "read_attn": False, "write_attn": False})

    rewrite_header(good_file, path, no_attention)
    with pytest.raises(CheckpointError, match="don't fit its config"):
        load_checkpoint(path)


def test_invalid_config_in_header_is_refused(good_file, tmp_path):
    def out_of_range(metadata):
        metadata["config"] = json.dumps({**json.loads(metadata["config"]), "T": 0})

    path = tmp_path / "bad.safetensors"
    rewrite_header(good_file, path, out_of_range)
    with pytest.raises(CheckpointError, match="invalid config.*T=0"):
        load_checkpoint(path)

    rewrite_header(good_file, path, lambda metadata: metadata.pop("config"))
    with pytest.raises(CheckpointError, match="invalid config"):
        load_checkpoint(path)


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_interrupted_save_keeps_the_old_file(tmp_path, monkeypatch, failing):
    path = tmp_path / "m.safetensors"
    old = tiny_model(seed=0)
    save_checkpoint(old, path, meta={"step": 10})

    def crash(*args, **kwargs):
        raise OSError("simulated crash mid-save")

    monkeypatch.setattr(os, failing, crash)
    with pytest.raises(OSError, match="simulated crash"):
        save_checkpoint(tiny_model(seed=1), path, meta={"step": 20})
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]  # no temporary file left behind
    ckpt = load_checkpoint(path)
    assert ckpt.meta["step"] == 10
    assert_same_weights(ckpt.model, old)


def test_float16_storage_loads_back_as_float32(tmp_path):
    model = tiny_model()
    path = save_checkpoint(model, tmp_path / "half.safetensors", dtype=torch.float16)
    with safe_open(str(path), framework="pt") as handle:
        assert handle.get_tensor("model.encoder.weight").dtype == torch.float16
    ckpt = load_checkpoint(path)
    for key, value in ckpt.model.state_dict().items():
        assert value.dtype == torch.float32
        torch.testing.assert_close(value, model.state_dict()[key], rtol=1e-3, atol=1e-4)


def test_the_header_records_the_model_kind(good_file):
    with safe_open(str(good_file), framework="pt") as handle:
        assert handle.metadata()["kind"] == "draw"
    assert load_checkpoint(good_file).kind == "draw"


def test_a_file_written_before_kinds_existed_loads_as_draw(good_file, tmp_path):
    path = tmp_path / "old.safetensors"
    rewrite_header(good_file, path, lambda metadata: metadata.pop("kind"))
    ckpt = load_checkpoint(path)
    assert ckpt.kind == DEFAULT_KIND == "draw" and type(ckpt.model) is DRAW and ckpt.config == TINY
    assert_same_weights(ckpt.model, load_checkpoint(good_file).model)


# Both were re-exported with their kind; a file from before kinds existed is the test above.
@pytest.mark.parametrize("name", ["mnist", "mnist-noattn"])
def test_the_shipped_generators_name_their_kind_and_rebuild_their_preset(name):
    path = Path(__file__).resolve().parents[1] / "checkpoints" / f"{name}.safetensors"
    assert path.exists(), f"shipped checkpoint {path} is missing"
    with safe_open(str(path), framework="pt") as handle:
        assert handle.metadata()["kind"] == "draw"
    ckpt = load_checkpoint(path)
    assert ckpt.kind == "draw" and type(ckpt.model) is DRAW and ckpt.config == DrawConfig.preset(name)


def test_an_unknown_kind_is_refused_naming_the_known_ones(good_file, tmp_path):
    path = tmp_path / "future.safetensors"
    rewrite_header(good_file, path, lambda metadata: metadata.update(kind="diffusion"))
    with pytest.raises(CheckpointError, match="kind 'diffusion'") as error:
        load_checkpoint(path)
    assert str(kind_names()) in str(error.value)


@pytest.mark.parametrize("kind", list(KINDS.values()), ids=list(KINDS))
def test_every_registered_kind_round_trips_as_its_own_class(kind, tmp_path):
    torch.manual_seed(0)
    model = kind.model_class(kind.config_class())
    ckpt = load_checkpoint(save_checkpoint(model, tmp_path / f"{kind.name}.safetensors", meta={"step": 2}))
    assert ckpt.kind == kind.name and type(ckpt.model) is kind.model_class
    assert ckpt.config == model.cfg
    assert_same_weights(ckpt.model, model)


def test_saving_a_model_of_no_registered_kind_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not a registered model kind"):
        save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "linear.safetensors")
    assert list(tmp_path.iterdir()) == []
