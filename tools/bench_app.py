"""Server-side rerun time of the app's sliders, measured with Streamlit's AppTest (median of repeats).

    .venv/bin/python tools/bench_app.py [--repeats 7] [--json] [--preset mnist-two | --checkpoint FILE] [--teaching]

The model pages (Generate, Reconstruct, Latent explorer) run on one model: --checkpoint FILE, else the shipped
checkpoint named like --preset, else an untrained model of that preset's config (its dataset in the meta; the rerun's
cost does not depend on the weights' values). The Generate page is measured with its larger canvas at 4x, the
costliest view it has. `--teaching` measures instead the pages that bring their own shipped models (Why not an
autoencoder?, Reparameterization, Attention at work), on the shipped checkpoints.

Lives outside draw_core because it drives the Streamlit app; draw_core never imports Streamlit.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from draw_core.arguments import whole_number
from draw_core.bench import print_rows
from draw_core.io.catalog import shipped_dir
from draw_core.io.checkpoint import save_checkpoint
from draw_core.nn.model import DRAW
from draw_core.presets import get_preset, preset_names

APP_SLIDERS = (  # (page file, how to find the slider a learner drags there): pages that show the sidebar's model
    ("pages/generate.py", lambda key: key == "step"),
    ("pages/reconstruct.py", lambda key: key == "step"),
    ("pages/latent.py", lambda key: key.startswith("latent_dim_")),
)
TEACHING_SLIDERS = (  # the same for pages that bring their own shipped models; select sliders included
    ("pages/why_not_autoencoder.py", lambda key: key == "ae_step"),
    ("pages/why_not_autoencoder.py", lambda key: key == "ae_dim"),
    ("pages/why_not_autoencoder.py", lambda key: key == "ae_beta"),
    ("pages/reparameterization.py", lambda key: key.startswith("reparam_Normal_")),
    ("pages/reparameterization.py", lambda key: key == "reparam_n"),
    ("pages/attention_at_work.py", lambda key: key == "work_step"),
)
SELECT_SLIDER_ENDS = {"ae_beta": (0.0, 4.0)}  # values, not labels, where a select slider formats its options
LARGEST_CANVAS = 4  # the Generate page's canvas-size choice while its step slider is timed


def use_model(preset: str, checkpoint: str | None) -> str:
    """Make the model to measure the only shipped checkpoint (a temporary folder); returns what its weights are."""
    source = Path(checkpoint) if checkpoint else shipped_dir() / f"{preset}.safetensors"
    folder = Path(tempfile.mkdtemp(prefix="draw-bench-"))
    os.environ["DRAW_CHECKPOINTS_DIR"] = str(folder)
    os.environ["DRAW_RUNS_DIR"] = str(folder / "no-runs")
    if checkpoint or source.exists():
        shutil.copy(source, folder / source.name)
        return str(source)
    spec = get_preset(preset)
    save_checkpoint(DRAW(spec.build()), folder / f"{preset}.safetensors", meta={"dataset": spec.dataset})
    return f"untrained {preset} config"


def bench_app(repeats: int, *, preset: str = "mnist", checkpoint: str | None = None) -> list[dict]:
    """Server-side time of a rerun after moving the Generate and Reconstruct step sliders and a Latent slider
    (AppTest), on the model `use_model` picks."""
    return time_sliders(APP_SLIDERS, repeats, use_model(preset, checkpoint))


def bench_teaching(repeats: int) -> list[dict]:
    """The same for the pages that bring their own models (TEACHING_SLIDERS), on the shipped checkpoints."""
    os.environ["DRAW_CHECKPOINTS_DIR"] = str(shipped_dir())
    os.environ["DRAW_RUNS_DIR"] = tempfile.mkdtemp(prefix="draw-bench-no-runs-")
    return time_sliders(TEACHING_SLIDERS, repeats, f"the shipped checkpoints in {shipped_dir()}")


def time_sliders(sliders, repeats: int, weights: str) -> list[dict]:
    """Median rerun time after moving each (page, slider) of `sliders` between its two ends, `repeats` times after
    a first move that fills the page's caches. A slider the page does not show (a missing model) is skipped."""
    root = Path(__file__).resolve().parents[1]
    results = []
    for page, wanted in sliders:
        app = AppTest.from_file(str(root / "app.py"), default_timeout=120)
        app.run()
        app.switch_page(page).run()
        canvas = [c for c in app.get("segmented_control") if c.key == "generate_canvas" and not c.proto.disabled]
        if canvas:
            canvas[0].set_value(LARGEST_CANVAS).run()
        if app.exception:
            raise RuntimeError(f"{page} raised: {app.exception[0].message}")
        kinds = ("slider", "select_slider")
        found = [(kind, w.key) for kind in kinds for w in app.get(kind) if w.key and wanted(w.key)]
        if not found:
            print(f"skipped: no matching slider on {page}", file=sys.stderr)
            continue
        kind, key = found[0]
        times = []
        for i in range(repeats + 1):
            widget = next(w for w in app.get(kind) if w.key == key)
            if kind == "slider":
                ends = (widget.max, widget.min)
            else:
                ends = SELECT_SLIDER_ENDS.get(key, (widget.options[-1], widget.options[0]))
            start = time.perf_counter()
            widget.set_value(ends[i % 2]).run()
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
    parser.add_argument("--repeats", type=whole_number(1), default=7, help="moves timed (the median is reported)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument(
        "--preset",
        default="mnist",
        choices=[name for name in preset_names() if get_preset(name).kind == "draw"],  # the generator pages
        help="the shipped checkpoint of this name, else its untrained config",
    )
    parser.add_argument("--checkpoint", help="a checkpoint file to measure instead")
    parser.add_argument(
        "--teaching", action="store_true", help="measure the pages that bring their own shipped models instead"
    )
    args = parser.parse_args(argv)
    if args.checkpoint is not None and not Path(args.checkpoint).is_file():
        parser.error(f"--checkpoint {args.checkpoint} is not a file")
    if args.teaching:
        rows = bench_teaching(args.repeats)
    else:
        rows = bench_app(args.repeats, preset=args.preset, checkpoint=args.checkpoint)
    print_rows(rows, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
