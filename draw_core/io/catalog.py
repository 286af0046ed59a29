"""Where checkpoints live, and the list the app's checkpoint picker offers.

- Shipped models: `checkpoints/` in the repository (or the folder in $DRAW_CHECKPOINTS_DIR), each
  `<name>.safetensors` next to its model card `<name>.json`.
- Runs the user trained (the app's Train page, the training CLI): RUNS_DIR = $DRAW_RUNS_DIR, else `runs/`
  at the repository root (git-ignored), each `<run>.safetensors`; its card is the meta stored in the file.

Both folders are read from the environment each time they are asked for (`catalog.RUNS_DIR`,
`catalog.runs_dir()`), so a test or a server can point them elsewhere after import.
Listing reads only the JSON cards and the safetensors headers (draw_core.io.checkpoint.read_header), never the
weights; loading a model is draw_core.io.checkpoint.load_checkpoint's job. Each entry records the model kind its
header names (draw_core.nn.kinds), so a picker can offer only what a page can show.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from draw_core.io.checkpoint import CheckpointError, CheckpointHeader, read_header

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CHECKPOINT = "mnist"  # the shipped model the app opens with
EXTENSION = ".safetensors"


def shipped_dir() -> Path:
    """$DRAW_CHECKPOINTS_DIR, else the repository's checkpoints/."""
    return Path(os.environ.get("DRAW_CHECKPOINTS_DIR") or REPO_ROOT / "checkpoints")


def runs_dir() -> Path:
    """$DRAW_RUNS_DIR, else runs/ at the repository root."""
    return Path(os.environ.get("DRAW_RUNS_DIR") or REPO_ROOT / "runs")


def __getattr__(name: str) -> Path:
    """`catalog.RUNS_DIR` and `catalog.SHIPPED_DIR` follow the environment like the functions above."""
    if name == "RUNS_DIR":
        return runs_dir()
    if name == "SHIPPED_DIR":
        return shipped_dir()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class CheckpointEntry:
    name: str  # file name without .safetensors
    path: Path  # the .safetensors file
    kind: str  # 'shipped' or 'run'
    card: dict = field(default_factory=dict, compare=False)  # model card (shipped) or stored meta (runs)
    model_kind: str | None = None  # the model kind its header names ('draw', ...); None when the header is unreadable

    @property
    def label(self) -> str:
        """How the picker shows it, e.g. 'mnist (shipped)'."""
        return f"{self.name} ({self.kind})"


def read_card(path: Path) -> dict:
    """The model card `<name>.json` next to a shipped checkpoint; {} when it is missing or not a JSON object."""
    try:
        card = json.loads(path.with_suffix(".json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return card if isinstance(card, dict) else {}


def _header(path: Path) -> CheckpointHeader | None:
    try:
        return read_header(path)
    except CheckpointError:
        return None


def _meta_card(header: CheckpointHeader | None) -> dict:
    return {} if header is None else {**header.meta, "config": header.config.to_dict()}


def read_meta(path: Path) -> dict:
    """The meta dict stored in a checkpoint's header plus its `config`; {} when the header is not a valid one."""
    return _meta_card(_header(path))


def _entry(path: Path, source: str) -> CheckpointEntry:
    header = _header(path)
    card = read_card(path) if source == "shipped" else _meta_card(header)
    return CheckpointEntry(path.stem, path, source, card, model_kind=header.kind.name if header else None)


def _checkpoint_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f"*{EXTENSION}") if p.is_file() and not p.name.startswith("."))


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed while listing
        return 0.0


def list_checkpoints() -> list[CheckpointEntry]:
    """Shipped checkpoints first (DEFAULT_CHECKPOINT leading, then by name), then runs, newest first."""
    shipped = [_entry(p, "shipped") for p in _checkpoint_files(shipped_dir())]
    shipped.sort(key=lambda entry: (entry.name != DEFAULT_CHECKPOINT, entry.name))
    run_files = sorted(_checkpoint_files(runs_dir()), key=_modified, reverse=True)
    runs = [_entry(p, "run") for p in run_files]
    return shipped + runs
