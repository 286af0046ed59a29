"""Files written whole or not at all: the bytes go to a temporary file beside the target, are flushed to the disk,
and the temporary file is renamed over the target. A failure or a kill part-way leaves the earlier file as it was
(and at most a hidden `.<name>.<random>.tmp`, which draw_core.io.checkpoint.remove_stale_temporaries clears for
checkpoints)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` (its folder made if needed) whole or not at all; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes files private; these are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
