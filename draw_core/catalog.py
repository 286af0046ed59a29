"""Where checkpoints live: the shipped ones in checkpoints/ and the runs trained from the app in RUNS_DIR.

RUNS_DIR is the DRAW_RUNS_DIR setting, else runs/ at the repository root (git-ignored).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
RUNS_DIR = Path(os.environ.get("DRAW_RUNS_DIR") or REPO_ROOT / "runs")
