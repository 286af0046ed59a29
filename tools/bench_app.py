"""Server-side rerun time of the app's sliders, measured with Streamlit's AppTest (median of repeats).

    .venv/bin/python tools/bench_app.py [--repeats 7] [--json]

Lives outside draw_core because it drives the Streamlit app; draw_core never imports Streamlit.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from draw_core.bench import print_rows
from draw_core.config import DrawConfig
from draw_core.io.catalog import DEFAULT_CHECKPOINT, shipped_dir
from draw_core.io.checkpoint import save_checkpoint
from draw_core.nn.model import DRAW

APP_SLIDERS = (  # (page file, how to find the slider a learner drags there)
    ("pages/generate.py", lambda key: key == "step"),
    ("pages/latent.py", lambda key: key.startswith("latent_dim_")),
)


def bench_app(repeats: int) -> list[dict]:
    """Server-side time of a rerun after moving the Generate step slider and a Latent slider (AppTest).

    Uses the shipped `mnist` checkpoint; where there is none, an untrained model of the paper's config (the
    rerun's cost does not depend on the weights' values).
    """
    root = Path(__file__).resolve().parents[1]
    weights = "shipped"
    if not (shipped_dir() / f"{DEFAULT_CHECKPOINT}.safetensors").exists():
        folder = tempfile.mkdtemp(prefix="draw-bench-")
        save_checkpoint(DRAW(DrawConfig.preset("mnist")), Path(folder) / f"{DEFAULT_CHECKPOINT}.safetensors")
        os.environ["DRAW_CHECKPOINTS_DIR"] = folder
        weights = "untrained paper config"
    results = []
    for page, wanted in APP_SLIDERS:
        app = AppTest.from_file(str(root / "app.py"), default_timeout=120)
        app.run()
        app.switch_page(page).run()
        if app.exception:
            raise RuntimeError(f"{page} raised: {app.exception[0].message}")
        key = next(s.key for s in app.slider if s.key and wanted(s.key))
        times = []
        for i in range(repeats + 1):
            slider = app.slider(key=key)
            start = time.perf_counter()
            slider.set_value(slider.max if i % 2 == 0 else slider.min).run()
            times.append(time.perf_counter() - start)
            if app.exception:
                raise RuntimeError(f"{page} raised: {app.exception[0].message}")
        times = times[1:]  # the first move fills the page's caches
        results.append(
            {
                "bench": "app",
                "page": page,
                "slider": key,
                "weights": weights,
                "rerun_ms_median": statistics.median(times) * 1e3,
                "rerun_ms_all": [t * 1e3 for t in times],
            }
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/bench_app.py", description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args(argv)
    print_rows(bench_app(args.repeats), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
