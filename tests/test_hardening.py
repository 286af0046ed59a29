"""Issue 11: hostile and broken checkpoint files made here (truncated, random, huge config with tiny weights, bad
optimizer and meta headers, NaN weights, symlinks, a FIFO, sparse huge files) each get a CheckpointError of exactly
that class, naming the part at fault, and cost little memory; the good file beside them never changes. Then the
memory estimate that training jobs are checked against. (The jobs' limits are tested in test_jobs.py, the CLIs' in
test_cli.py, the Train page's in test_app_train.py.)"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from draw_core import settings
from draw_core.config import DrawConfig
from draw_core.io import catalog
from draw_core.io.checkpoint import (
    MAX_CHECKPOINT_BYTES,
    MAX_HEADER_BYTES,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from draw_core.nn.elbo import loss_terms
from draw_core.nn.model import DRAW
from draw_core.training import devices

ROOT = Path(__file__).resolve().parents[1]
TINY = DrawConfig(T=2, enc_size=8, dec_size=8, z_size=2)
HUGE = dict(height=256, width=256, channels=4, T=256, enc_size=4096, dec_size=4096, z_size=1024, read_n=2,
            write_n=5, read_attn=False, write_attn=False)  # fmt: skip  # ~10 G parameters, ~40 GB as float32


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def good(tmp_path):
    """A tiny checkpoint with Adam state; the test fails if anything changed it by the end."""
    torch.manual_seed(0)
    model = DRAW(TINY)
    optimizer = torch.optim.Adam(model.parameters())
    x = torch.zeros(2, 1, 28, 28)
    model(x).canvas_steps[-1].sum().backward()
    optimizer.step()
    path = save_checkpoint(model, tmp_path / "good.safetensors", meta={"step": 1}, optimizer=optimizer)
    before = digest(path)
    yield path
    assert digest(path) == before, "the good checkpoint changed"


def refused(source, match: str) -> str:
    """The message of the CheckpointError (that class exactly) that loading `source` raises."""
    with pytest.raises(CheckpointError, match=match) as error:
        load_checkpoint(source)
    assert error.type is CheckpointError
    assert "malformed header (CheckpointError" not in str(error.value), "a checked message wrapped again"
    return str(error.value)


def metadata_of(path: Path) -> dict:
    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata())


def rewritten(good: Path, dst: Path, *, metadata: dict | None = None, tensors: dict | None = None) -> Path:
    """A copy of `good` with some header entries and tensors replaced (None as a value removes the entry)."""
    new_metadata = {k: v for k, v in {**metadata_of(good), **(metadata or {})}.items() if v is not None}
    new_tensors = {k: v for k, v in {**load_safetensors_bytes(good.read_bytes()), **(tensors or {})}.items()
                   if v is not None}  # fmt: skip
    dst.write_bytes(save_safetensors_bytes(new_tensors, metadata=new_metadata))
    return dst


def raw_file(path: Path, header: dict, data: bytes = b"") -> Path:
    """A file laid out like safetensors (8-byte little-endian length, JSON header, data) with any header at all."""
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + data)
    return path


def test_truncated_files_are_refused_from_path_and_bytes(good, tmp_path):
    data = good.read_bytes()
    header_end = 8 + int.from_bytes(data[:8], "little")
    for cut in (0, 3, 8, 20, header_end - 1, header_end, header_end + 10, len(data) - 1):
        broken = tmp_path / f"cut{cut}.safetensors"
        broken.write_bytes(data[:cut])
        message = refused(broken, "truncated|empty")
        assert "pickle" not in message
        refused(data[:cut], "truncated|empty")


@pytest.mark.parametrize("seed", range(6))
def test_random_bytes_are_refused(tmp_path, seed):
    noise = torch.randint(0, 256, (2048,), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    data = bytes(noise.tolist())
    path = tmp_path / "noise.safetensors"
    path.write_bytes(data)
    assert "pickle" not in refused(path, "not a DRAW Studio checkpoint")
    data = b"\x80" + data[1:]  # starts with a pickle's PROTO byte, but nothing after it parses as a pickle
    assert "pickle" not in refused(data, "not a DRAW Studio checkpoint")


def test_a_header_length_starting_with_0x80_is_not_called_a_pickle(tmp_path):
    """A header of 0x280-0x580 bytes starts the file with 80 02..80 05, like a pickle's PROTO opcode; such a file
    loads, and cut short it is reported as truncated, not as a pickle."""
    model = DRAW(TINY)
    for padding in range(2000):
        path = save_checkpoint(model, tmp_path / "x80.safetensors", meta={"pad": "." * padding})
        if path.read_bytes()[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05"):
            break
    else:
        pytest.fail("could not make a header whose length starts with 80 02..80 05")
    assert load_checkpoint(path).meta["pad"] == "." * padding
    message = refused(path.read_bytes()[:-5], "truncated")
    assert "pickle" not in message


def test_headers_claiming_huge_lengths_are_refused_without_reading(tmp_path):
    claims = tmp_path / "claims.safetensors"
    claims.write_bytes((2**63).to_bytes(8, "little") + b"{}")
    refused(claims, "truncated or not safetensors")
    big_header = tmp_path / "big-header.safetensors"
    with open(big_header, "wb") as handle:  # sparse: 8 MB of header that is never written
        handle.write((8 * 1024 * 1024).to_bytes(8, "little"))
        handle.truncate(8 + 8 * 1024 * 1024)
    refused(big_header, f"over the {MAX_HEADER_BYTES} limit")


def test_a_sparse_file_over_the_size_limit_is_refused_before_reading(tmp_path):
    path = tmp_path / "sparse.safetensors"
    with open(path, "wb") as handle:
        handle.truncate(MAX_CHECKPOINT_BYTES + 1)
    refused(path, "byte limit")


def test_a_good_header_on_a_long_sparse_tail_is_refused_from_the_header(good, tmp_path):
    path = tmp_path / "long-tail.safetensors"
    path.write_bytes(good.read_bytes())
    with open(path, "r+b") as handle:
        handle.truncate(200 * 1024 * 1024)
    refused(path, "truncated or corrupted: the header describes")


def test_a_huge_config_with_tiny_weights_is_refused_by_the_parameter_cap(good, tmp_path):
    path = rewritten(good, tmp_path / "huge.safetensors", metadata={"config": json.dumps(HUGE)})
    assert path.stat().st_size < 64 * 1024  # the tiny model's weights
    message = refused(path, "over the limit of .* \\(DRAW_MAX_PARAMS\\)")
    assert f"{settings.max_params():,}" in message
    refused(path.read_bytes(), "DRAW_MAX_PARAMS")


def test_the_parameter_cap_is_a_setting(good, tmp_path, monkeypatch):
    parameters = sum(p.numel() for p in DRAW(TINY).parameters())
    monkeypatch.setenv("DRAW_MAX_PARAMS", str(parameters - 1))
    refused(good, f"{parameters:,} parameters, over the limit of {parameters - 1:,}")
    monkeypatch.setenv("DRAW_MAX_PARAMS", str(parameters))
    assert load_checkpoint(good).config == TINY
    monkeypatch.setenv("DRAW_MAX_PARAMS", "lots")
    with pytest.raises(settings.SettingError, match="DRAW_MAX_PARAMS='lots' must be a whole number"):
        load_checkpoint(good)


def test_the_default_parameter_cap_is_a_few_times_the_largest_preset():
    from draw_core.nn.kinds import get_kind
    from draw_core.presets import PRESETS

    def count(preset) -> int:
        return sum(p.numel() for p in get_kind(preset.kind).model_class(preset.build()).parameters())

    largest = max(count(preset) for preset in PRESETS.values())
    assert largest == count(PRESETS["svhn"])  # today's largest: Table 3's SVHN row, 11.6 M parameters
    assert settings.max_params() == settings.PARAMS_CAP_FACTOR * largest and 2 <= settings.PARAMS_CAP_FACTOR <= 10


def test_a_config_within_the_cap_that_does_not_fit_the_weights_is_refused_from_the_header(good, tmp_path):
    bigger = {**TINY.to_dict(), "enc_size": 256, "dec_size": 256}
    path = rewritten(good, tmp_path / "bigger.safetensors", metadata={"config": json.dumps(bigger)})
    message = refused(path, "the weights don't fit its config")
    assert "encoder.weight: file (32, 24) vs config (1024, 520)" in message


PEAK_SCRIPT = textwrap.dedent(
    """
    import re, sys
    import torch
    torch.set_num_threads(1)
    from draw_core.io.checkpoint import CheckpointError, load_checkpoint

    def status_mb(key):
        return int(re.search(key + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024

    def peak_growth_mb(work):
        "How far resident memory's high-water mark rises above the current use while work() runs."
        open("/proc/self/clear_refs", "w").write("5")  # resets VmHWM to the current VmRSS
        before = status_mb("VmRSS")
        work()
        return status_mb("VmHWM") - before

    def refuse_all():
        for path in sys.argv[2:]:
            for source in (path, open(path, "rb").read(1 << 20)):  # the path, and an upload of its first MB
                try:
                    load_checkpoint(source)
                except CheckpointError:
                    continue
                raise SystemExit(f"{path} was loaded")

    def control():  # 150 MB really touched: the measurement must see it
        block = bytearray(150 << 20)
        block[:: 1 << 12] = b"x" * len(block[:: 1 << 12])

    load_checkpoint(sys.argv[1])  # imports and first-use allocations happen here, not below
    print(peak_growth_mb(refuse_all), peak_growth_mb(control))
    """
)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc/self/clear_refs")
def test_refusing_a_huge_config_or_a_huge_file_costs_under_100_mb(good, tmp_path):
    """Peak resident memory (Linux's VmHWM, reset before, in a fresh process) grows by less than 100 MB while the
    huge-config file and three 500 MB sparse files (behind a good header, a bogus header and a short foreign header)
    are refused."""
    huge = rewritten(good, tmp_path / "huge.safetensors", metadata={"config": json.dumps(HUGE)})
    tail = tmp_path / "tail.safetensors"
    tail.write_bytes(good.read_bytes())
    bogus = tmp_path / "bogus.safetensors"
    bogus.write_bytes((12345).to_bytes(8, "little") + b"{not json")
    short = raw_file(tmp_path / "short-header.safetensors", {"__metadata__": {}})  # a header shorter than 56 bytes
    for path in (tail, bogus, short):
        with open(path, "r+b") as handle:
            handle.truncate(500 * 1024 * 1024)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, str(good), str(huge), str(tail), str(bogus), str(short)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    growth_mb, control_mb = map(float, result.stdout.split())
    assert control_mb > 140, f"the measurement missed a 150 MB allocation ({control_mb:.0f} MB)"
    assert growth_mb < 100, f"peak memory grew by {growth_mb:.0f} MB"


@pytest.mark.parametrize(
    ("optimizer", "why"),
    [
        ("{bad", "not valid JSON"),
        ("[1]", "expected a JSON object, got list"),
        ('{"state": {}}', "expected the keys"),
        ('{"state": [], "param_groups": []}', "'state' must be an object"),
        ('{"state": {"x": {}}, "param_groups": [{"params": [0]}]}', "state entry 'x'"),
        ('{"state": {}, "param_groups": [{"params": "all"}]}', "'params' is an array"),
        ('{"state": {}, "param_groups": [{"params": [0], "lr": {"x": 1}}]}', "param group settings"),
        ('{"state": {}, "param_groups": [{"params": [0, 1]}]}', "parameters 0, 1, ... once each"),
    ],
)
def test_a_bad_optimizer_header_is_an_invalid_optimizer(good, tmp_path, optimizer, why):
    path = rewritten(good, tmp_path / "opt.safetensors", metadata={"optimizer": optimizer})
    message = refused(path, "has an invalid optimizer")
    assert why in message and "invalid config" not in message
    refused(path.read_bytes(), "has an invalid optimizer")


def test_a_header_whose_dtype_is_no_string_is_refused_and_the_catalog_still_lists(good, tmp_path, monkeypatch):
    # Such a file in the runs folder used to break every page's checkpoint picker (a TypeError, not refused).
    data = good.read_bytes()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    name = next(key for key in header if key != "__metadata__")
    header[name]["dtype"] = ["F32"]
    runs = tmp_path / "runs"
    runs.mkdir()
    path = raw_file(runs / "listy.safetensors", header, data[8 + length :])
    assert "stored as ['F32']" in refused(path, "weights and optimizer state must be floats")
    refused(path.read_bytes(), "must be floats")
    monkeypatch.setenv("DRAW_RUNS_DIR", str(runs))
    assert [entry.name for entry in catalog.list_checkpoints() if entry.kind == "run"] == ["listy"]


def test_a_parameter_index_in_another_scripts_digits_is_refused(good, tmp_path):
    optimizer = json.loads(metadata_of(good)["optimizer"])
    optimizer["state"] = {"²" if key == "0" else key: value for key, value in optimizer["state"].items()}
    path = rewritten(good, tmp_path / "opt.safetensors", metadata={"optimizer": json.dumps(optimizer)})
    assert "state entry '²'" in refused(path, "has an invalid optimizer")
    path = rewritten(good, tmp_path / "t.safetensors", tensors={"optimizer.².exp_avg": torch.zeros(1)})
    refused(path, "neither a weight of the model nor the optimizer state")


def test_optimizer_tensors_that_fit_no_parameter_are_refused(good, tmp_path):
    for name, value in (("optimizer.999.exp_avg", torch.zeros(1)), ("optimizer.0.exp_avg", torch.zeros(7, 7))):
        path = rewritten(good, tmp_path / "opt.safetensors", tensors={name: value})
        refused(path, f"tensor '{name}'.*neither a weight of the model nor the optimizer state")
    path = rewritten(good, tmp_path / "no-header.safetensors", metadata={"optimizer": None})
    refused(path, "optimizer.0.exp_avg")  # optimizer tensors without the optimizer header


@pytest.mark.parametrize(
    ("meta", "why"),
    [
        ("[1, 2]", "expected a JSON object, got list"),
        ("{bad", "not valid JSON"),
        ('"text"', "got str"),
        ('{"step": "ten"}', "step='ten' must be of type int"),
        ('{"step": true}', "step=True must be of type int"),
        ('{"step": -3}', "step=-3 must be >= 0"),
        ('{"dataset": 5}', "dataset=5 must be of type str"),
        ('{"test_elbo_nats": "low"}', "test_elbo_nats='low'"),
        ('{"test_error": "x"}', "test_error='x'"),
        ('{"test_recon_nats": [1]}', "test_recon_nats=[1]"),
    ],
)
def test_a_bad_meta_is_an_invalid_meta_not_an_invalid_config(good, tmp_path, meta, why):
    path = rewritten(good, tmp_path / "meta.safetensors", metadata={"meta": meta})
    message = refused(path, "has an invalid meta")
    assert why in message and "invalid config" not in message


@pytest.mark.parametrize(
    ("config", "why"),
    [("{bad", "not valid JSON"), ("[1]", "got list"), ('{"T": 0}', "T=0 is out of range"), (None, "has none")],
)
def test_a_bad_config_is_an_invalid_config(good, tmp_path, config, why):
    path = rewritten(good, tmp_path / "config.safetensors", metadata={"config": config})
    assert why in refused(path, "has an invalid config")


def test_deeply_nested_json_is_an_invalid_part_not_a_recursion_error(good, tmp_path):
    path = rewritten(good, tmp_path / "deep.safetensors", metadata={"meta": "[" * 100_000 + "]" * 100_000})
    refused(path, "has an invalid meta")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused(good, tmp_path, value):
    weight = load_safetensors_bytes(good.read_bytes())["model.encoder.weight"].clone()
    weight[0, 0] = value
    path = rewritten(good, tmp_path / "nan.safetensors", tensors={"model.encoder.weight": weight})
    refused(path, r"NaN or infinite weights in \['encoder.weight'\]")
    refused(path.read_bytes(), "NaN or infinite weights")
    moment = load_safetensors_bytes(good.read_bytes())["optimizer.0.exp_avg"].clone()
    moment.view(-1)[0] = value
    path = rewritten(good, tmp_path / "nan-adam.safetensors", tensors={"optimizer.0.exp_avg": moment})
    refused(path, r"NaN or infinite optimizer state in \['optimizer.0.exp_avg'\]")


def test_weights_stored_as_integers_are_refused(good, tmp_path):
    weight = torch.zeros(load_safetensors_bytes(good.read_bytes())["model.encoder.weight"].shape, dtype=torch.int32)
    path = rewritten(good, tmp_path / "int.safetensors", tensors={"model.encoder.weight": weight})
    refused(path, "stored as 'I32'; weights and optimizer state must be floats")


def test_overlapping_tensor_spans_are_refused(tmp_path):
    header = {
        "__metadata__": {"format": "draw-studio/1", "config": json.dumps(TINY.to_dict()), "meta": "{}"},
        "model.a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "model.b": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
    }
    refused(raw_file(tmp_path / "overlap.safetensors", header, bytes(16)), "overlap or leave gaps")
    header["model.b"] = {"dtype": "F32", "shape": [3], "data_offsets": [8, 16]}
    refused(raw_file(tmp_path / "short.safetensors", header, bytes(16)), r"shape \(3,\) \(F32\) does not fill")


def test_symlinks_are_followed_to_regular_files_only(good, tmp_path):
    link = tmp_path / "link.safetensors"
    link.symlink_to(good)
    assert load_checkpoint(link).meta["step"] == 1
    to_device = tmp_path / "zero.safetensors"
    to_device.symlink_to("/dev/zero")
    refused(to_device, "not a regular file")
    dangling = tmp_path / "dangling.safetensors"
    dangling.symlink_to(tmp_path / "nowhere")
    refused(dangling, "does not exist")
    loop = tmp_path / "loop.safetensors"
    loop.symlink_to(loop)
    refused(loop, "cannot be opened")
    refused(tmp_path, "not a regular file")  # a folder


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    outcome = {}

    def load() -> None:
        try:
            load_checkpoint(fifo)
        except CheckpointError as error:
            outcome["error"] = error

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():  # unblock it before failing
        with open(fifo, "wb"):
            pass
        pytest.fail("load_checkpoint blocked on a FIFO")
    assert type(outcome["error"]) is CheckpointError and "not a regular file" in str(outcome["error"])


# Training memory: the estimate a job is checked against (draw_core.training.devices).


def count_saved_bytes(cfg: DrawConfig, batch: int) -> int:
    """Bytes of the distinct non-parameter storages autograd saves for one full forward pass of the loss."""
    model = DRAW(cfg)
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages = {}

    def pack(tensor):
        if tensor.untyped_storage().data_ptr() not in parameters:
            storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    x = torch.zeros(batch, cfg.channels, cfg.height, cfg.width)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss_terms(model(x), x).total.sum()
    return sum(storages.values())


@pytest.mark.parametrize(
    "cfg",
    [
        DrawConfig(T=7, enc_size=32, dec_size=24, z_size=6),
        DrawConfig(T=5, height=20, width=16, channels=3, read_attn=False, write_attn=False, enc_size=16, dec_size=16),
    ],
    ids=["attention", "colour-no-attention"],
)
def test_saved_bytes_from_two_and_three_steps_equal_a_full_count(cfg):
    assert devices.saved_bytes_per_image(cfg) == count_saved_bytes(cfg, 1)
    assert count_saved_bytes(cfg, 4) <= 4 * devices.saved_bytes_per_image(cfg)  # per image, batch-independent parts too


def test_the_estimate_adds_parameters_and_a_batch_of_activations():
    cfg = DrawConfig.preset("mnist-small")
    parameters = sum(p.numel() for p in DRAW(cfg).parameters())
    assert devices.parameter_count(cfg) == parameters
    zero = devices.estimate_training_bytes(cfg, 0)
    assert zero == devices.RUNTIME_BYTES + devices.PARAMETER_COPIES * 4 * parameters
    per_image = devices.BACKWARD_FACTOR * devices.saved_bytes_per_image(cfg)
    assert devices.estimate_training_bytes(cfg, 100) == pytest.approx(zero + 100 * per_image, abs=1)


def test_counting_a_model_over_the_parameter_cap_builds_nothing(monkeypatch):
    monkeypatch.setenv("DRAW_MAX_PARAMS", "10000")
    with pytest.raises(ValueError, match="DRAW_MAX_PARAMS"):
        devices.saved_bytes_per_image(DrawConfig(**HUGE))


@pytest.mark.parametrize("name", ["bogus", "cuda:x", "", "gpu"])
def test_an_unknown_device_is_a_value_error(name):
    with pytest.raises(ValueError, match=f"unknown device {name!r}"):
        devices.select_device(name)


def test_a_device_this_machine_lacks_is_named(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="'cuda' was asked for but CUDA is not available on this machine"):
        devices.select_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"'cuda:3': this machine has 1 CUDA device\(s\)"):
        devices.select_device("cuda:3")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ValueError, match="'mps' was asked for but MPS is not available on this machine"):
        devices.select_device("mps")


MEASURE_SCRIPT = textwrap.dedent(
    """
    import re, sys
    import torch
    torch.set_num_threads(1)
    from draw_core.config import DrawConfig
    from draw_core.nn.elbo import loss_terms
    from draw_core.nn.model import DRAW

    def status_mb(key):
        return int(re.search(key + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024

    cfg, batch = DrawConfig.preset(sys.argv[1]), int(sys.argv[2])
    model = DRAW(cfg)
    optimizer = torch.optim.Adam(model.parameters())

    def step(x):
        loss = loss_terms(model(x), x).total.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    x = (torch.rand(batch, cfg.channels, cfg.height, cfg.width) > 0.5).float()
    step(x[:1])  # Adam's moments and torch's first-use allocations exist from here on
    open("/proc/self/clear_refs", "w").write("5")
    before = status_mb("VmRSS")
    step(x)
    step(x)
    print(status_mb("VmHWM") - before)
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc/self/clear_refs")
@pytest.mark.parametrize("preset", ["mnist", "mnist-noattn", "mnist-small"])
def test_the_memory_estimate_covers_a_measured_training_step(preset):
    """Measured per preset: the rise of peak memory over two training steps with a batch of 64 is below the estimate
    (less its runtime allowance, which the measurement starts after) and the estimate is not wildly above it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", MEASURE_SCRIPT, preset, "64"], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    measured = float(result.stdout) * 2**20
    cfg = DrawConfig.preset(preset)
    estimate = devices.estimate_training_bytes(cfg, 64) - devices.RUNTIME_BYTES
    assert measured < estimate < 3.5 * measured, (measured / 2**20, estimate / 2**20)
