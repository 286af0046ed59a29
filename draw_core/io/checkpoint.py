"""The one checkpoint format: a safetensors file holding the weights (and optionally the optimizer).

The header's metadata holds, as JSON strings: `format` (FORMAT), `kind` (the model kind, draw_core.nn.kinds; files
written before kinds existed have none and load as 'draw'), `config` (the kind's config), `meta` (a JSON object:
step, dataset, created, ...) and, when saved, `optimizer` (the optimizer's non-tensor state).

Loading never unpickles anything, so a file crafted to run code cannot run it: it is simply not a safetensors file
and is refused. Loading a hostile or broken file costs little: the 8-byte header length and the header are read
alone (never the whole file), and everything the header says is checked before any model is built or any weight is
read: the kind, the config, the meta and the optimizer state, the parameter count against DRAW_MAX_PARAMS (counted
on torch's meta device, which allocates nothing), and every tensor's name, shape, dtype and byte span against the
model that config builds. Every failure is a CheckpointError whose message names the file and the part at fault.
Weights that are NaN or infinite are refused (a model with them draws nothing but NaN).

Writes go to a temporary file `.<name>.<random>.tmp` in the same folder that is renamed over the target, so a crash
mid-save leaves the previous checkpoint intact; `remove_stale_temporaries` clears what a killed save left behind.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import itertools
import json
import math
import os
import pickletools
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import nn

from draw_core import settings
from draw_core.io.files import check_writable, write_atomically
from draw_core.nn.kinds import DEFAULT_KIND, ModelKind, get_kind, kind_names, kind_of

FORMAT = "draw-studio/1"
MODEL_PREFIX = "model."
OPTIMIZER_PREFIX = "optimizer."
MAX_CHECKPOINT_BYTES = 512 * 1024 * 1024  # refuse anything larger before reading it
MAX_HEADER_BYTES = 1024 * 1024  # a real header (config, meta, optimizer hyperparameters) is a few kB
FLOAT_DTYPES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}  # safetensors dtypes a tensor may be stored in -> bytes
STALE_TEMP_S = 300  # a temporary file this old is left over from a killed save (a save takes seconds)
TEMP_PATTERN = ".*.safetensors.*.tmp"  # what save_checkpoint's temporary files look like (draw_core.io.files)
# Meta fields (dicts) naming where a run started: a fine-tune's (init_from), the GPU recipe's (continued_from).
PROVENANCE_KEYS = ("init_from", "continued_from")


class CheckpointError(ValueError):
    """A checkpoint could not be loaded; the message says why."""


@dataclass
class Checkpoint:
    model: nn.Module  # in eval mode; the class of its kind (DRAW for 'draw')
    config: Any  # the kind's config object (a DrawConfig for 'draw')
    meta: dict  # at least step, dataset, created
    optimizer_state: dict | None = None  # torch optimizer state_dict, when it was saved
    path: Path | None = field(default=None)
    kind: str = DEFAULT_KIND  # the model kind's name (draw_core.nn.kinds)


@dataclass(frozen=True)
class TensorEntry:
    """One tensor as the safetensors header describes it."""

    dtype: str  # safetensors dtype name, e.g. 'F32'
    shape: tuple[int, ...]
    span: tuple[int, int]  # [begin, end) byte offsets in the data after the header


@dataclass(frozen=True)
class CheckpointHeader:
    """Everything a checkpoint's header says, each part checked; no weight has been read."""

    kind: ModelKind
    config: Any  # the kind's config object
    meta: dict
    optimizer: dict | None  # the optimizer's non-tensor state ('state' and 'param_groups'); None when not saved
    tensors: dict[str, TensorEntry]  # by name, e.g. 'model.encoder.weight'


META_TYPES = {  # meta fields the app and the trainer read, and the JSON types they must have when present
    "step": (int,),
    "dataset": (str,),
    "created": (str,),
    "epochs": (int, float),
    "train_seconds": (int, float),
    "test_elbo_nats": (int, float, type(None)),
    "test_error": (int, float, type(None)),  # a classifier's test figure (read on --resume)
    "test_recon_nats": (int, float, type(None)),  # an autoencoder's test figure (read on --resume)
    "total_train_seconds": (int, float),
    "train_config": (dict,),
}


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
    model: nn.Module,
    path: str | os.PathLike,
    meta: dict | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write a model of any registered kind (+ optimizer) atomically to `path`; `dtype` lets shipped files store
    float16 weights. The model's config comes from `model.cfg.to_dict()`."""
    meta = {"step": 0, "dataset": "unknown", **(meta or {})}
    meta.setdefault("created", _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
    tensors = {MODEL_PREFIX + k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    header = {
        "format": FORMAT,
        "kind": kind_of(model).name,
        "config": json.dumps(model.cfg.to_dict()),
        "meta": json.dumps(meta),
    }
    if optimizer is not None:
        optimizer_tensors, plain = _optimizer_to_tensors(optimizer.state_dict())
        tensors.update(optimizer_tensors)
        header["optimizer"] = json.dumps(plain)
    return write_atomically(path, save_safetensors_bytes(tensors, metadata=header))


def remove_stale_temporaries(folder: str | os.PathLike, older_than_s: float = STALE_TEMP_S) -> list[Path]:
    """Delete the temporary files of saves that were killed (regular files matching TEMP_PATTERN, not modified for
    `older_than_s` seconds) from `folder`; returns what was removed. A save in progress is younger and is kept."""
    removed = []
    now = time.time()
    for candidate in Path(folder).glob(TEMP_PATTERN):
        try:
            info = candidate.lstat()  # a symlink is not ours: lstat does not follow it
            if stat.S_ISREG(info.st_mode) and now - info.st_mtime > older_than_s:
                candidate.unlink()
                removed.append(candidate)
        except OSError:  # gone already, or not ours to remove
            continue
    return removed


def check_output(path: str | os.PathLike, *, resume: bool = False, force: bool = False) -> bool:
    """Before a training run writes checkpoints to `path`: check_writable, where an existing file is continued with
    `resume` or replaced with `force`. A ValueError says what is wrong and what to do; returns whether an existing
    file is going to be replaced."""
    to_replace = "add --resume to continue training it, or --force to replace it with a new run"
    return check_writable(path, replace=resume or force, to_replace=to_replace) and force


def _looks_like_pickle(start: bytes) -> bool:
    """Whether the file starts like torch.save's zip archive or a pickle (protocol 2+): PROTO, then opcodes that
    parse. Parsing opcodes (pickletools.genops) runs nothing. A safetensors header length whose first byte is 0x80
    does not parse: the zero bytes after it are not pickle opcodes."""
    if start[:4] == b"PK\x03\x04":
        return True
    if start[:1] != b"\x80" or start[1:2] not in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return False
    try:
        return len(list(itertools.islice(pickletools.genops(io.BytesIO(start)), 3))) == 3
    except ValueError:
        return False


def _not_safetensors(start: bytes, name: str, why: str) -> CheckpointError:
    if _looks_like_pickle(start):
        return CheckpointError(
            f"{name} is a pickle / torch.save file, not a DRAW Studio checkpoint; pickles are refused because "
            "loading them can run code"
        )
    return CheckpointError(f"{name} is not a DRAW Studio checkpoint: {why}")


def _parse_json(text: Any, name: str, part: str, expected: type) -> Any:
    """JSON `text` that must decode to `expected` (dict or list); anything else is a CheckpointError naming `part`."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CheckpointError(f"{name} has an invalid {part}: not valid JSON ({error})") from None
    if not isinstance(value, expected):
        raise CheckpointError(
            f"{name} has an invalid {part}: expected a JSON {'object' if expected is dict else 'array'}, "
            f"got {type(value).__name__}"
        )
    return value


def _check_meta(meta: dict, name: str) -> None:
    for key, types in META_TYPES.items():
        value = meta.get(key)
        if key in meta and (not isinstance(value, types) or isinstance(value, bool)):
            raise CheckpointError(
                f"{name} has an invalid meta: {key}={value!r} must be of type {' or '.join(t.__name__ for t in types)}"
            )
    if meta.get("step", 0) < 0:
        raise CheckpointError(f"{name} has an invalid meta: step={meta['step']} must be >= 0")


def _is_index(text: str) -> bool:
    """Whether `text` is a parameter index int() reads: ASCII digits ('²' is a digit that int() refuses)."""
    return text.isascii() and text.isdigit()


def _is_scalar(value: Any) -> bool:
    """A JSON value that can be an optimizer hyperparameter: a number, a bool, null, a string or a list of numbers."""
    if isinstance(value, list):
        return all(isinstance(item, (int, float)) for item in value)
    return value is None or isinstance(value, (int, float, str))


def _check_optimizer(plain: dict, name: str) -> None:
    """The shape of a torch optimizer state_dict's JSON part: {'state': {index: {...}}, 'param_groups': [{...}]}."""

    def bad(why: str) -> CheckpointError:
        return CheckpointError(f"{name} has an invalid optimizer: {why}")

    if set(plain) != {"state", "param_groups"}:
        raise bad(f"expected the keys ['param_groups', 'state'], got {sorted(plain)}")
    state, groups = plain["state"], plain["param_groups"]
    if not isinstance(state, dict) or not isinstance(groups, list) or not groups:
        raise bad("'state' must be an object and 'param_groups' a non-empty array")
    for index, values in state.items():
        if not _is_index(index) or not isinstance(values, dict) or not all(map(_is_scalar, values.values())):
            raise bad(f"state entry {index!r} must be a parameter index holding plain values")
    for group in groups:
        params = group.get("params") if isinstance(group, dict) else None
        if not isinstance(params, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in params):
            raise bad("every param group must be an object whose 'params' is an array of parameter indexes")
        if not all(_is_scalar(v) for k, v in group.items() if k != "params"):
            raise bad("param group settings must be numbers, booleans, strings or arrays of numbers")


def _tensor_entries(header: dict, name: str, data_bytes: int) -> dict[str, TensorEntry]:
    """The header's tensor table, checked to tile the `data_bytes` after the header exactly (as safetensors does)."""
    entries, end = {}, 0

    def bad(why: str) -> CheckpointError:
        return CheckpointError(f"{name} is truncated or corrupted: {why}")

    for tensor, info in header.items():
        if tensor == "__metadata__":
            continue
        try:
            dtype, shape, (begin, stop) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise bad(f"tensor {tensor!r} has no dtype, shape and data_offsets") from None
        if not isinstance(dtype, str) or dtype not in FLOAT_DTYPES:
            raise CheckpointError(
                f"{name}: tensor {tensor!r} is stored as {dtype!r}; weights and optimizer state must be floats, "
                f"one of {sorted(FLOAT_DTYPES)}"
            )
        if not all(isinstance(n, int) and n >= 0 for n in (*shape, begin, stop)):
            raise bad(f"tensor {tensor!r} has a malformed shape or offsets")
        if stop - begin != math.prod(shape) * FLOAT_DTYPES[dtype]:
            raise bad(f"tensor {tensor!r} of shape {shape} ({dtype}) does not fill bytes [{begin}, {stop})")
        entries[tensor] = TensorEntry(dtype, shape, (begin, stop))
    for entry in sorted(entries.values(), key=lambda e: e.span):
        if entry.span[0] != end:
            raise bad("the tensors' byte spans overlap or leave gaps")
        end = entry.span[1]
    if end != data_bytes:
        raise bad(f"the header describes {end} bytes of tensors, the file holds {data_bytes}")
    return entries


def _parse_header(handle: BinaryIO, size: int, name: str) -> CheckpointHeader:
    """Read the 8-byte length and the header from the start of `handle` (a file of `size` bytes) and check every
    part of it; nothing after the header is read."""
    if size > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"{name} is {size} bytes, over the {MAX_CHECKPOINT_BYTES} byte limit")
    start = handle.read(min(size, 64))
    if len(start) < 8:
        raise _not_safetensors(start, name, f"truncated or empty ({size} bytes)")
    header_len = int.from_bytes(start[:8], "little")
    if header_len == 0 or 8 + header_len > size:
        raise _not_safetensors(
            start, name, f"truncated or not safetensors (header of {header_len} bytes, file of {size})"
        )
    if header_len > MAX_HEADER_BYTES:
        raise _not_safetensors(start, name, f"its header of {header_len} bytes is over the {MAX_HEADER_BYTES} limit")
    raw = start[8 : 8 + header_len] + handle.read(max(0, 8 + header_len - len(start)))  # read(-n) reads it all
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError):
        raise _not_safetensors(start, name, "its header is not valid safetensors JSON") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{name} is a safetensors file but not a DRAW Studio checkpoint (no '{FORMAT}' format tag)"
        )
    kind_name = metadata.get("kind", DEFAULT_KIND)
    try:
        kind = get_kind(kind_name)
    except (ValueError, TypeError):
        raise CheckpointError(
            f"{name} holds a model of kind {kind_name!r}, which this version cannot load: known kinds are "
            f"{kind_names()}"
        ) from None
    if "config" not in metadata:
        raise CheckpointError(f"{name} has an invalid config: the header has none")
    try:
        config = kind.config_class.from_dict(_parse_json(metadata["config"], name, "config", dict))
    except (TypeError, ValueError) as error:
        if isinstance(error, CheckpointError):
            raise
        raise CheckpointError(f"{name} has an invalid config: {error}") from None
    meta = _parse_json(metadata.get("meta", "{}"), name, "meta", dict)
    _check_meta(meta, name)
    optimizer = None
    if "optimizer" in metadata:
        optimizer = _parse_json(metadata["optimizer"], name, "optimizer", dict)
        _check_optimizer(optimizer, name)
    tensors = _tensor_entries(header, name, size - 8 - header_len)
    return CheckpointHeader(kind=kind, config=config, meta=meta, optimizer=optimizer, tensors=tensors)


def _check_tensors(header: CheckpointHeader, name: str) -> None:
    """Names, shapes and the parameter count of the file's tensors against the model its config builds, which is
    built on the meta device (shapes only, no memory)."""
    with torch.device("meta"):
        skeleton = header.kind.model_class(header.config)
    expected = {MODEL_PREFIX + k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    count, cap = sum(math.prod(shape) for shape in expected.values()), settings.max_params()
    if count > cap:
        raise CheckpointError(
            f"{name}: its config asks for a model of {count:,} parameters, over the limit of {cap:,} (DRAW_MAX_PARAMS)"
        )
    found = {k: v.shape for k, v in header.tensors.items() if k.startswith(MODEL_PREFIX)}
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = [
        f"{k[len(MODEL_PREFIX) :]}: file {found[k]} vs config {shape}"
        for k, shape in expected.items()
        if k in found and found[k] != shape
    ]
    if missing or unexpected or wrong:
        problems = [
            missing and f"missing {missing}",
            unexpected and f"unexpected {unexpected}",
            wrong and f"wrong shapes {wrong}",
        ]
        raise CheckpointError(
            f"{name}: the weights don't fit its config {header.config}: " + "; ".join(filter(None, problems))
        )
    parameters = [tuple(p.shape) for p in skeleton.parameters()]
    for tensor, entry in header.tensors.items():
        if tensor.startswith(MODEL_PREFIX):
            continue
        index, _, key = tensor[len(OPTIMIZER_PREFIX) :].partition(".")
        fits = (
            tensor.startswith(OPTIMIZER_PREFIX)
            and header.optimizer is not None
            and _is_index(index)
            and int(index) < len(parameters)
            and key
            and entry.shape in ((), parameters[int(index)])
        )
        if not fits:
            raise CheckpointError(
                f"{name}: tensor {tensor!r} {entry.shape} is neither a weight of the model nor the optimizer state of "
                f"one of its {len(parameters)} parameters"
            )
    if header.optimizer is not None:
        indexes = sorted(i for group in header.optimizer["param_groups"] for i in group["params"])
        if indexes != list(range(len(parameters))) or any(int(i) >= len(parameters) for i in header.optimizer["state"]):
            raise CheckpointError(
                f"{name} has an invalid optimizer: its param groups must name the model's {len(parameters)} "
                "parameters 0, 1, ... once each"
            )


def _non_finite(tensors: dict[str, torch.Tensor]) -> list[str]:
    return [k for k, v in tensors.items() if not torch.isfinite(v).all()]


@contextlib.contextmanager
def _malformed_is_an_error(name: str) -> Iterator[None]:
    """The checks above name what they expect; a header built to slip past them still ends as a CheckpointError."""
    try:
        yield
    except (CheckpointError, settings.SettingError):  # said already; or the server's own limits, not the file
        raise
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as error:
        raise CheckpointError(f"{name} has a malformed header ({type(error).__name__}: {error})") from None


def read_header(path: str | os.PathLike) -> CheckpointHeader:
    """The checked header of the checkpoint at `path` (kind, config, meta, optimizer, tensor table); no weight is
    read. Raises CheckpointError like load_checkpoint does for a bad header."""
    with _open_regular(path) as (handle, size, name), _malformed_is_an_error(name):
        return _parse_header(handle, size, name)


@contextlib.contextmanager
def _open_regular(path: str | os.PathLike) -> Iterator[tuple[BinaryIO, int, str]]:
    """Open `path` for reading without blocking (a plain open of a FIFO waits for a writer) and refuse anything that
    is not a regular file; symlinks are followed. Yields (binary handle, size in bytes, the name errors use)."""
    name = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise CheckpointError(f"{name} does not exist") from None
    except OSError as error:
        raise CheckpointError(f"{name} cannot be opened: {error.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise CheckpointError(f"{name} is not a regular file (a folder, FIFO, socket or device)")
    with os.fdopen(fd, "rb") as handle:
        yield handle, info.st_size, name


def load_checkpoint(source: str | os.PathLike | bytes, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint from a path or raw bytes (an upload); every failure is a CheckpointError that says which.
    The header is checked in full before the model is built or the weights are read (see the module docstring);
    NaN or infinite weights are refused."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name, path = bytes(source), "the uploaded file", None
        with _malformed_is_an_error(name):
            header = _parse_header(io.BytesIO(data), len(data), name)
            _check_tensors(header, name)
    else:
        path = Path(source)
        with _open_regular(path) as (handle, size, name), _malformed_is_an_error(name):
            header = _parse_header(handle, size, name)
            _check_tensors(header, name)
            handle.seek(0)
            data = handle.read(size)
    try:
        tensors = load_safetensors_bytes(data)
    except (SafetensorError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{name} is truncated or corrupted: {error}") from None
    weights = {k[len(MODEL_PREFIX) :]: v for k, v in tensors.items() if k.startswith(MODEL_PREFIX)}
    optimizer_tensors = {k: v for k, v in tensors.items() if k.startswith(OPTIMIZER_PREFIX)}
    for part, values in (("weights", weights), ("optimizer state", optimizer_tensors)):
        bad = _non_finite(values)
        if bad:
            raise CheckpointError(f"{name} has NaN or infinite {part} in {bad}; refused (they would only draw NaN)")
    model = header.kind.model_class(header.config)
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:  # only if the file changed in place between the header check and the read
        raise CheckpointError(f"{name}: the weights don't fit its config {header.config}: {error}") from None
    model.to(map_location).eval()
    optimizer_state = None
    if header.optimizer is not None:
        optimizer_state = _optimizer_from_tensors(optimizer_tensors, header.optimizer)
    return Checkpoint(
        model=model,
        config=header.config,
        meta=header.meta,
        optimizer_state=optimizer_state,
        path=path,
        kind=header.kind.name,
    )
