"""The server's limits, read from the environment each time they are asked for (a test or a server can change them
after import). A value that is not what the setting expects is a SettingError naming the variable.

Limits (all optional; the defaults suit a classroom server):
- DRAW_MAX_JOBS: training jobs that may run at once (default 1).
- DRAW_MAX_PARAMS: the most parameters a checkpoint's model may have; checked from the file's header before anything
  is built (default: PARAMS_CAP_FACTOR times the largest preset: 4 x svhn's 11.6 million, about 47 million today).
- DRAW_ADMIN_TOKEN: when set, only a session that entered this token may start or stop training jobs (a teacher's
  control); when unset, every session may.
- DRAW_MAX_RUN_STEPS: the most optimisation steps one job may ask for (default 1,000,000; at most 10,000,000).
- DRAW_MAX_RUN_HOURS: the longest one job may train; a job still running at that age is stopped like a Stop, with
  its checkpoint (default 24; at most 720).
- DRAW_MAX_RUNS_DISK_MB: the disk that the runs folder may fill with checkpoints (default 2048 MB).
- DRAW_MAX_TRAIN_MEMORY_MB: the memory one training job may need (default 4096 MB); a job must also fit in the
  memory the machine has free when it starts.

Folders (read where they are used): DRAW_DATA_DIR (draw_core.data), DRAW_RUNS_DIR and DRAW_CHECKPOINTS_DIR
(draw_core.io.catalog).
"""

from __future__ import annotations

import functools
import math
import os

PARAMS_CAP_FACTOR = 4  # DRAW_MAX_PARAMS defaults to this many times the parameters of the largest preset
MB = 1024 * 1024


class SettingError(ValueError):
    """An environment setting holds a value it cannot take; the message names the variable and what it expects."""


def _number(name: str, default: float | None, kind: type, minimum: float, maximum: float = math.inf) -> float | None:
    """The setting `name` as `kind` (int or float) in [minimum, maximum]; `default` when it is unset or empty."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or not minimum <= value <= maximum:
        what = "a whole number" if kind is int else "a number"
        bound = f"between {minimum} and {maximum:,}" if maximum < math.inf else f">= {minimum}"
        raise SettingError(f"{name}={text!r} must be {what} {bound}") from None
    return value


def max_jobs() -> int:
    """DRAW_MAX_JOBS: training jobs that may run at once."""
    return _number("DRAW_MAX_JOBS", 1, int, 1)


@functools.cache
def _largest_preset_params() -> int:
    """Parameters of the largest preset of any model kind (draw_core.presets), counted on the meta device (nothing
    is allocated). The imports are here so that reading any other setting never loads torch and the models."""
    import torch

    from draw_core.nn.kinds import get_kind
    from draw_core.presets import PRESETS

    with torch.device("meta"):
        return max(
            sum(p.numel() for p in get_kind(preset.kind).model_class(preset.build()).parameters())
            for preset in PRESETS.values()
        )


def max_params() -> int:
    """DRAW_MAX_PARAMS: the most parameters a loaded checkpoint's model may have."""
    return _number("DRAW_MAX_PARAMS", None, int, 1) or PARAMS_CAP_FACTOR * _largest_preset_params()


def admin_token() -> str | None:
    """DRAW_ADMIN_TOKEN: the token that starting and stopping jobs needs; None when anyone may."""
    return os.environ.get("DRAW_ADMIN_TOKEN") or None


def max_run_steps() -> int:
    """DRAW_MAX_RUN_STEPS: the most steps one training job may ask for."""
    return _number("DRAW_MAX_RUN_STEPS", 1_000_000, int, 1, 10_000_000)  # at most TrainConfig's bound


def max_run_seconds() -> float:
    """DRAW_MAX_RUN_HOURS, in seconds: the longest one training job may train."""
    return _number("DRAW_MAX_RUN_HOURS", 24.0, float, 0.01, 720) * 3600  # at most TrainConfig's 30 days


def max_runs_disk_bytes() -> int:
    """DRAW_MAX_RUNS_DISK_MB, in bytes: what the runs folder's checkpoints may take on disk altogether."""
    return _number("DRAW_MAX_RUNS_DISK_MB", 2048, int, 1) * MB


def max_train_memory_bytes() -> int:
    """DRAW_MAX_TRAIN_MEMORY_MB, in bytes: the memory one training job may need."""
    return _number("DRAW_MAX_TRAIN_MEMORY_MB", 4096, int, 64) * MB
