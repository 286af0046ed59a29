"""Files written whole or not at all: the bytes go to a temporary file beside the target, are flushed to the disk,
and the temporary file is renamed over the target. A failure or a kill part-way leaves the earlier file as it was
(and at most a hidden `.<name>.<random>.tmp`, which draw_core.io.checkpoint.remove_stale_temporaries clears for
checkpoints). `check_writable` checks such a target before the work whose result it receives, so that a path that
cannot take it, or a file that is replaced without being asked, is refused before that work rather than after it."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np


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


def write_npz_atomically(path: str | os.PathLike, **arrays) -> Path:
    """np.savez_compressed of `arrays` to `path` (a shipped data sample), whole or not at all; returns the path."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return write_atomically(path, buffer.getvalue())


def check_writable(path: str | os.PathLike, *, replace: bool, to_replace: str = "add --force to replace it") -> bool:
    """Before a command spends its time on what it writes to `path` at the end: refuse a folder or anything else
    that is not a regular file, an existing file unless `replace` (the error then says `to_replace`, what to do),
    and a folder that cannot be made or written now (a temporary file like write_atomically's is made and removed
    there). A ValueError says what is wrong; returns whether an existing file is going to be replaced."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder: give the path of a file in it")
    exists = path.exists() or path.is_symlink()
    if exists and not path.is_file():
        raise ValueError(f"{path} exists and is not a regular file (a FIFO, device or broken link): choose another")
    if exists and not replace:
        raise ValueError(f"{path} already exists: {to_replace}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except (FileExistsError, NotADirectoryError):  # mkdir met a file where a folder has to be
        raise ValueError(f"cannot write to {path.parent}: it or a folder above it is a file") from None
    except OSError as error:
        raise ValueError(f"cannot write to {path.parent}: {error.strerror or error}") from None
    return exists
