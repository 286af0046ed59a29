"""The one checkpoint format: a safetensors file holding the weights (and optionally the optimizer).

The DrawConfig, the meta dict and the optimizer's non-tensor state are JSON in the safetensors
header. Loading never unpickles anything, so a file crafted to run code cannot run it: it is simply
not a safetensors file and is refused. Writes go to a temporary file that is renamed over the
target, so a crash mid-save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from draw_core.config import DrawConfig
from draw_core.nn.model import DRAW

FORMAT = "draw-studio/1"
MODEL_PREFIX = "model."
OPTIMIZER_PREFIX = "optimizer."
MAX_CHECKPOINT_BYTES = 512 * 1024 * 1024  # refuse anything larger before reading it
PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # a protocol-2+ pickle, or torch.save's zip archive


class CheckpointError(ValueError):
    """A checkpoint could not be loaded; the message says why."""


@dataclass
class Checkpoint:
    model: DRAW  # in eval mode
    config: DrawConfig
    meta: dict  # at least step, dataset, created
    optimizer_state: dict | None = None  # torch optimizer state_dict, when it was saved
    path: Path | None = field(default=None)


def _optimizer_to_tensors(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state_dict into tensors (for safetensors) and a JSON-able remainder."""
    tensors, plain = {}, {"param_groups": state["param_groups"], "state": {}}
    for index, values in state["state"].items():
        plain["state"][str(index)] = {}
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"{OPTIMIZER_PREFIX}{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                plain["state"][str(index)][key] = value
    return tensors, plain


def _optimizer_from_tensors(tensors: dict[str, torch.Tensor], plain: dict) -> dict:
    state = {int(index): dict(values) for index, values in plain["state"].items()}
    for name, value in tensors.items():
        index, key = name[len(OPTIMIZER_PREFIX) :].split(".", 1)
        state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": plain["param_groups"]}


def save_checkpoint(
    model: DRAW,
    path: str | os.PathLike,
    meta: dict | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write model (+ optimizer) atomically to `path`. `dtype` lets shipped files store float16 weights."""
    path = Path(path)
    meta = {"step": 0, "dataset": "unknown", **(meta or {})}
    meta.setdefault("created", _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
    tensors = {MODEL_PREFIX + k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    header = {"format": FORMAT, "config": json.dumps(model.cfg.to_dict()), "meta": json.dumps(meta)}
    if optimizer is not None:
        optimizer_tensors, plain = _optimizer_to_tensors(optimizer.state_dict())
        tensors.update(optimizer_tensors)
        header["optimizer"] = json.dumps(plain)
    data = save_safetensors_bytes(tensors, metadata=header)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes files private; a checkpoint is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _not_safetensors(data: bytes, name: str, why: str) -> CheckpointError:
    if data[:1] in PICKLE_MAGIC or data[:4] in PICKLE_MAGIC:
        return CheckpointError(
            f"{name} is a pickle / torch.save file, not a DRAW Studio checkpoint; pickles are refused because "
            "loading them can run code"
        )
    return CheckpointError(f"{name} is not a DRAW Studio checkpoint: {why}")


def _read_header(data: bytes, name: str) -> dict:
    if len(data) < 8:
        raise _not_safetensors(data, name, f"truncated or empty ({len(data)} bytes)")
    header_len = int.from_bytes(data[:8], "little")
    if header_len <= 0 or 8 + header_len > len(data):
        raise _not_safetensors(
            data, name, f"truncated or not safetensors (header of {header_len} bytes, file of {len(data)})"
        )
    try:
        header = json.loads(data[8 : 8 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _not_safetensors(data, name, "its header is not valid safetensors JSON") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{name} is a safetensors file but not a DRAW Studio checkpoint (no '{FORMAT}' format tag)"
        )
    return metadata


def load_checkpoint(source: str | os.PathLike | bytes, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint from a path or raw bytes; every failure is a CheckpointError that says which."""
    if isinstance(source, (bytes, bytearray)):
        data, name, path = bytes(source), "the uploaded file", None
        size = len(data)
    else:
        path = Path(source)
        name = str(path)
        if not path.is_file():
            raise CheckpointError(f"{name} does not exist or is not a file")
        size = path.stat().st_size  # checked before the file is read
    if size > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"{name} is {size} bytes, over the {MAX_CHECKPOINT_BYTES} byte limit")
    if path is not None:
        data = path.read_bytes()
    metadata = _read_header(data, name)
    try:
        config = DrawConfig.from_dict(json.loads(metadata["config"]))
        meta = json.loads(metadata.get("meta", "{}"))
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{name} has an invalid config: {error}") from None
    try:
        tensors = load_safetensors_bytes(data)
    except (SafetensorError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{name} is truncated or corrupted: {error}") from None
    weights = {k[len(MODEL_PREFIX) :]: v.float() for k, v in tensors.items() if k.startswith(MODEL_PREFIX)}
    model = DRAW(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    wrong = [
        f"{k}: file {tuple(weights[k].shape)} vs config {tuple(v.shape)}"
        for k, v in expected.items()
        if k in weights and weights[k].shape != v.shape
    ]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{name}: the weights don't fit its config {config}: "
            + "; ".join(
                filter(
                    None,
                    [
                        missing and f"missing {missing}",
                        unexpected and f"unexpected {unexpected}",
                        wrong and f"wrong shapes {wrong}",
                    ],
                )
            )
        )
    model.load_state_dict(weights)
    model.to(map_location).eval()
    optimizer_state = None
    if "optimizer" in metadata:
        optimizer_tensors = {k: v for k, v in tensors.items() if k.startswith(OPTIMIZER_PREFIX)}
        optimizer_state = _optimizer_from_tensors(optimizer_tensors, json.loads(metadata["optimizer"]))
    return Checkpoint(model=model, config=config, meta=meta, optimizer_state=optimizer_state, path=path)
