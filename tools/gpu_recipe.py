"""One call on a GPU machine: check it, measure it, and continue the shipped models on it.

    bash tools/gpu_recipe.sh MINUTES [options]          # = PYTHONPATH=. python tools/gpu_recipe.py MINUTES [options]

First every flag and each of --models' files is checked (the file's header, the TrainConfig of its continuation,
its T against --compile-glimpses): a mistake is a usage error (exit code 2) before the lease is spent on stages.
Then, in order, printing as it goes and writing WORK/summary.json (WORK: a new folder under --work-dir, runs/gpu_recipe
by default, named by the time the call started, so a call cut off by the lease keeps what it did and the next call
writes beside it):
1. the device: torch and CUDA versions, the GPU's name, memory and bfloat16 support;
2. the tests that need CUDA: `python -m pytest -m "cuda and not slow" tests` (they skip themselves without CUDA);
3. the training bench at batch 128 and 1024: `python -m draw_core.bench train --device cuda --batch-size B` (in this
   process; with the training's compile mode);
4. for each of --models (mnist and mnist-noattn by default; any of CONTINUABLE, each NAME or NAME:MINUTES): the
   shipped checkpoint (CHECKPOINTS/NAME.safetensors, CHECKPOINTS = --checkpoints-dir, checkpoints/ by default)
   continued on its own dataset (its meta's; --dataset overrides) for MINUTES at batch 1024
   (WORK/NAME.safetensors), its test figure on the whole test set before and after (a generator's ELBO in nats, a
   classifier's test error: the objective's own `test`, lower is better for both), the export by
   tools/export_checkpoint.py (weights, bounds or error, model card with the shipped card's hand-written notes
   carried over; in this process) into WORK/export/, and CHECKPOINTS/NAME.{safetensors,json} replaced by the
   export only when its figure is lower.
A failed stage is recorded and the next one runs; the exit status is 1 when any failed. The defaults (float32 with
TensorFloat-32, the glimpse compiled and replayed as CUDA graphs) are the fastest settings measured on an H200.

The same code runs on the CPU with tiny settings (tests/test_gpu_recipe.py: --device cpu --dataset mnist-sample, a
few steps, a temporary checkpoints folder), so that a GPU's first run does not go to debugging.

The learning rate of the continuation (`scaled_lr`, `--lr-scaling`): the shipped models were trained with Adam at
batch 64 (batch and rate are in their meta). A batch 16 times larger averages 16 times more gradients, so its
gradient noise is 4 times smaller. The linear rule (Goyal et al. 2017: rate x 16) keeps SGD's progress per epoch;
Adam divides each step by the gradient's running RMS, and for it the square-root rule (rate x 4; Malladi et al.
2022, "On the SDEs and scaling rules for adaptive gradient algorithms") is the one that keeps the training dynamics,
so it is the default here and linear is an option. A shipped file holds no Adam state, and the rate jumps from the
end of the shipped cosine schedule to the new peak, so the rate is warmed up linearly over --warmup-steps (Goyal et
al. 2017) before the trainer's cosine decay, which here runs over the time budget (TrainConfig.time_budget_s).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import itertools
import json
import math
import runpy
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from draw_core import bench
from draw_core.arguments import (
    check_compile_glimpses,
    positive_number,
    torch_seed,
    training_minutes,
    whole_number,
)
from draw_core.config import AMP_MODES, COMPILE_MODES, PRESETS, DrawConfig, TrainConfig
from draw_core.data import get_dataset
from draw_core.io.catalog import shipped_dir
from draw_core.io.checkpoint import CheckpointError, load_checkpoint, read_header, save_checkpoint
from draw_core.io.files import write_atomically
from draw_core.training.devices import hardware_name, select_device
from draw_core.training.objectives import objective_for
from draw_core.training.trainer import TrainEvent, TrainingDiverged, checkpoint_total_seconds, train

ROOT = Path(__file__).resolve().parents[1]
# Shipped checkpoints the recipe can continue: those trained with their kind's plain objective (mnist-ae and
# mnist-beta4 are trained with another KL weight, which their continuation would have to keep).
CONTINUABLE = ("mnist", "mnist-noattn", "mnist-two", "cifar10", "mnist-cluttered-draw", "mnist-cluttered-ram")
DEFAULT_MODELS = ("mnist", "mnist-noattn")  # issue 16's two: the likelihood gap to the paper's Table 2


def model_and_minutes(text: str) -> tuple[str, float | None]:
    """--models entry: NAME, or NAME:MINUTES for its own training time (None: the recipe's MINUTES)."""
    name, _, minutes = text.partition(":")
    if name not in CONTINUABLE:
        raise argparse.ArgumentTypeError(f"{name!r} is not a model the recipe continues: expected one of {CONTINUABLE}")
    return name, training_minutes(minutes) if minutes else None


def replace_with_copy(source: Path, target: Path) -> None:
    """Copy `source` over `target` atomically: a kill mid-copy (the lease's time limit) leaves the old file."""
    write_atomically(target, source.read_bytes())  # a shipped file: a few MB


def scaled_lr(base_lr: float, base_batch: int, batch: int, rule: str) -> float:
    """The peak rate for `batch` from one that suited `base_batch`: x (batch / base_batch) ** 1/2 or ** 1."""
    ratio = batch / base_batch
    return base_lr * (math.sqrt(ratio) if rule == "sqrt" else ratio)


def shipped_rate(meta: dict) -> tuple[int, float]:
    """The batch size and peak rate a shipped file was trained with (its meta's train_config; TrainConfig's
    defaults where it names none)."""
    base = meta.get("train_config", {})
    return base.get("batch_size", TrainConfig.batch_size), base.get("lr", TrainConfig.lr)


def continuation(source: Path, kind: str, meta: dict, minutes: float, args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig that continues the shipped file at `source` (a `kind` model with stored `meta`) for
    `minutes`: on --dataset or the meta's own dataset, at --lr or the shipped rate scaled to --batch-size. A
    ValueError says what does not fit."""
    dataset = args.dataset or meta.get("dataset") or meta.get("train_config", {}).get("dataset")
    if dataset is None:
        raise ValueError(f"{source} names no dataset in its meta: pass --dataset")
    get_dataset(dataset)  # an unknown name is a ValueError here
    base_batch, base_lr = shipped_rate(meta)
    return TrainConfig(
        dataset=dataset,
        batch_size=args.batch_size,
        steps=args.steps,
        time_budget_s=minutes * 60,
        lr=args.lr if args.lr is not None else scaled_lr(base_lr, base_batch, args.batch_size, args.lr_scaling),
        warmup_steps=args.warmup_steps,
        seed=args.seed,
        device=args.device,
        eval_every=0,
        eval_limit=args.eval_limit or 1000,
        checkpoint_every=args.checkpoint_every,
        log_every=args.log_every,
        sample_every=0,
        amp=args.amp,
        compile=args.compile and kind == "draw",  # classifiers train eagerly: compiling them is unmeasured
        compile_mode=args.compile_mode,
        compile_glimpses=args.compile_glimpses,
    )


def check_plan(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What the flags and the shipped files can tell before the first stage, as `parser.error` (exit code 2): the
    device, --compile-glimpses against the bench preset's T, and each of --models named once, its file's header
    readable, the TrainConfig of its continuation valid and its T at least --compile-glimpses."""
    try:
        select_device(args.device)
    except ValueError as error:
        parser.error(f"argument --device: {error}")
    if args.compile and args.bench_batches:
        try:
            check_compile_glimpses(
                args.compile_glimpses, DrawConfig.preset(args.bench_preset).T, whose="the bench preset's "
            )
        except ValueError as error:
            parser.error(str(error))
    names = [name for name, _ in args.models]
    if len(set(names)) < len(names):
        twice = next(name for name in names if names.count(name) > 1)
        parser.error(f"--models names {twice} twice: each model is continued once a call")
    for name, own in args.models:
        source = Path(args.checkpoints_dir) / f"{name}.safetensors"
        try:
            header = read_header(source)
            train_cfg = continuation(source, header.kind.name, header.meta, own or args.minutes, args)
            if train_cfg.compile:
                check_compile_glimpses(args.compile_glimpses, header.config.T, whose=f"{name}'s ")
        except (CheckpointError, ValueError) as error:
            parser.error(f"--models {name}: {error}")


def fresh_folder(parent: Path) -> Path:
    """A new folder under `parent` for one call, named by the time it started ('-2' and on for another call in the
    same second), so that no call writes over another's files."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in itertools.count(1):
        folder = parent / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            folder.mkdir(parents=True)
        except FileExistsError:
            continue
        return folder


def say(*parts) -> None:
    print(*parts, flush=True)


def describe_device(device: torch.device) -> dict:
    info = {"torch": torch.__version__, "device": str(device), "hardware": hardware_name(device)}
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        info.update(
            cuda=torch.version.cuda,
            gpus=torch.cuda.device_count(),
            memory_gib=round(properties.total_memory / 2**30, 1),
            capability=f"{properties.major}.{properties.minor}",
            bf16=torch.cuda.is_bf16_supported(),
        )
    return info


def run_tests(paths: list[str], timeout_s: float) -> dict:
    """The tests marked cuda (not the slow ones); without CUDA they skip themselves. A run past `timeout_s` is
    stopped and recorded as failed (returncode None), so a hung test cannot eat the lease."""
    started = time.perf_counter()
    command = [sys.executable, "-m", "pytest", "-q", "-m", "cuda and not slow", *paths]
    say("$", " ".join(command))
    try:
        returncode = subprocess.run(command, cwd=ROOT, timeout=timeout_s).returncode
    except subprocess.TimeoutExpired:
        say(f"tests stopped after {timeout_s:.0f} s")
        returncode = None
    return {"returncode": returncode, "seconds": round(time.perf_counter() - started, 1)}


def run_bench(args: argparse.Namespace, batch: int) -> dict:
    """`python -m draw_core.bench train` at one batch size (run in this process); its JSON rows, one per hot path."""
    argv = ["train", "--device", args.device, "--batch-size", str(batch), "--preset", args.bench_preset]
    argv += ["--path", args.bench_path]
    argv += (
        ["--compile-mode", args.compile_mode, "--compile-glimpses", str(args.compile_glimpses)] if args.compile else []
    )
    argv += ["--steps", str(args.bench_steps), "--warmup", str(args.bench_warmup), "--json"]
    say("$ python -m draw_core.bench", " ".join(argv))
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            returncode = bench.main(argv)
    except (Exception, SystemExit) as error:  # recorded (SystemExit: the bench's usage error); the recipe goes on
        say(f"bench failed: {type(error).__name__}: {error}")
        returncode = 1
    say(printed.getvalue().rstrip())
    rows = [json.loads(line) for line in printed.getvalue().splitlines() if line.startswith("{")]
    return {"batch_size": batch, "returncode": returncode, "rows": rows}


def test_figure(model, kind: str, dataset: str, data_dir: str | None, limit: int | None) -> dict:
    """The model's figure on the dataset's fixed test set (all of it unless `limit`), lower is better: a generator's
    single-sample ELBO (eq. 12) in nats, a classifier's test error (Table 1)."""
    figure = objective_for(kind).test(model, get_dataset(dataset).test_set(data_dir, limit), seed=0, should_stop=None)
    return {"metric": figure.name, "value": round(figure.value, 5), "n": figure.n}


def continue_model(name: str, minutes: float, args: argparse.Namespace, command: str) -> dict:
    """Continue CHECKPOINTS/name on this device for `minutes`, evaluate before and after, export, ship if better."""
    device = select_device(args.device)
    source = Path(args.checkpoints_dir) / f"{name}.safetensors"
    shipped = load_checkpoint(source, map_location=device)
    train_cfg = continuation(source, shipped.kind, shipped.meta, minutes, args)
    dataset, lr = train_cfg.dataset, train_cfg.lr
    base_batch, base_lr = shipped_rate(shipped.meta)
    history = {key: shipped.meta.get(key) for key in ("step", "epochs", "train_seconds", "hardware", "device")}
    continued_from = {
        "checkpoint": str(source),
        **history,
        "total_train_seconds": round(checkpoint_total_seconds(source, shipped.meta), 1),
        "batch_size": base_batch,
        "lr": base_lr,
    }
    report = {"name": name, "dataset": dataset, "minutes": minutes, "lr": lr, "continued_from": continued_from}
    before = test_figure(shipped.model, shipped.kind, dataset, args.data_dir, args.eval_limit)
    report["before"] = before
    say(f"{name}: shipped {before['metric']} {before['value']} on {before['n']} test images; peak lr {lr:.2e}")

    start = Path(args.work_dir) / f"{name}.safetensors"  # the shipped weights as step 0 of this run
    save_checkpoint(shipped.model, start, meta={"step": 0, "dataset": dataset, "continued_from": continued_from})

    images_per_s = []  # throughput of each report, the first (which includes compiling) left out below

    def progress(event: TrainEvent, _model) -> None:
        if event.kind == "step":
            images_per_s.append(event.images_per_s)
            say(
                f"{name} step {event.step}: loss {event.loss:.2f}, {event.images_per_s:.0f} images/s, lr {event.lr:.2e}"
            )

    def run(cfg: TrainConfig) -> TrainEvent:
        meta = {"continued_from": continued_from}
        return train(
            shipped.config, cfg, start, data_dir=args.data_dir, resume=True, on_event=progress, meta_extra=meta
        )

    started = time.perf_counter()
    try:
        try:
            done = run(train_cfg)
        except TrainingDiverged:
            raise
        except Exception as error:  # a compiler that fails here must not cost the lease: train eagerly instead
            if not train_cfg.compile:
                raise
            say(f"{name}: compiled training failed ({type(error).__name__}: {error}); continuing eagerly")
            report["compile_error"] = f"{type(error).__name__}: {error}"
            # resuming counts the seconds up to the last checkpoint; the budget loses those spent since
            counted = float(read_header(start).meta.get("train_seconds", 0.0))
            lost = time.perf_counter() - started - counted
            budget = max(counted + 60.0, train_cfg.time_budget_s - lost)
            done = run(dataclasses.replace(train_cfg, compile=False, time_budget_s=budget))
        report.update(steps=done.step, train_seconds=round(done.elapsed_s, 1), epochs=round(done.epoch, 2))
        if len(images_per_s) > 1:
            report["train_images_per_s_median"] = round(statistics.median(images_per_s[1:]))
    except TrainingDiverged as error:  # the last good checkpoint stays at `start`: judge and export that
        say(f"{name}: {error}")
        report["diverged"] = str(error)
    trained = load_checkpoint(start, map_location=device)
    after = test_figure(trained.model, trained.kind, dataset, args.data_dir, args.eval_limit)
    report["after"] = after
    say(f"{name}: {after['metric']} {before['value']} -> {after['value']} on {after['n']} test images")

    export_dir = Path(args.work_dir) / "export"
    export = [str(start), "--name", name, "--out-dir", str(export_dir), "--dataset", dataset]
    export += ["--device", args.device, "--k", str(args.k), "--command", command]
    shipped_card = source.with_suffix(".json")
    if shipped_card.exists() and json.loads(shipped_card.read_text()).get("dataset") == dataset:
        export += ["--notes-from", str(shipped_card)]  # its hand-written notes describe this dataset
    export += ["--data-dir", args.data_dir] if args.data_dir else []
    export += ["--limit", str(args.eval_limit)] if args.eval_limit else []
    say("$ python tools/export_checkpoint.py", " ".join(export))
    runpy.run_path(str(ROOT / "tools" / "export_checkpoint.py"))["main"](export)
    card = json.loads((export_dir / f"{name}.json").read_text())
    figures = ("test_elbo_nats", "test_iwae_nats", "test_iwae_k", "test_bits_per_dim", "test_error", "test_n", "steps")
    report["card"] = {key: card[key] for key in figures if key in card}
    report["shipped"] = after["value"] < before["value"]
    if report["shipped"]:
        for suffix in (".safetensors", ".json"):
            replace_with_copy(export_dir / f"{name}{suffix}", Path(args.checkpoints_dir) / f"{name}{suffix}")
    say(f"{name}: {'shipped' if report['shipped'] else 'not better: the shipped files stay'} ({source})")
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "minutes", type=training_minutes, help="training minutes for each model (NAME:MINUTES overrides)"
    )
    parser.add_argument("--device", default="cuda", help="cuda (the recipe's machine) or cpu (its test)")
    parser.add_argument(
        "--models",
        nargs="+",
        type=model_and_minutes,
        default=[(name, None) for name in DEFAULT_MODELS],
        metavar="NAME[:MINUTES]",
        help=f"shipped checkpoints to continue, of {', '.join(CONTINUABLE)} (default: {' '.join(DEFAULT_MODELS)})",
    )
    parser.add_argument("--dataset", default=None, help="training and test data (default: each checkpoint's own)")
    parser.add_argument("--data-dir", default=None, help="folder holding MNIST/raw/ etc. (default: $DRAW_DATA_DIR)")
    parser.add_argument("--batch-size", type=whole_number(1), default=1024)
    parser.add_argument("--lr", type=positive_number, default=None, help="peak rate (default: the shipped one, scaled)")
    parser.add_argument("--lr-scaling", choices=("sqrt", "linear"), default="sqrt", help="see the module docstring")
    parser.add_argument("--warmup-steps", type=whole_number(0), default=300)
    parser.add_argument(
        "--steps", type=whole_number(1), default=10_000_000, help="at most this many steps (MINUTES decide)"
    )
    # The defaults are the fastest settings measured on an H200 (README, "Measured on a GPU").
    parser.add_argument("--amp", choices=AMP_MODES, default="off", help="bf16: bfloat16 autocast (speed not measured)")
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="torch.compile the glimpse (DRAW.compile_step), in training and in the bench",
    )
    parser.add_argument("--compile-mode", choices=COMPILE_MODES, default="reduce-overhead", help="(CUDA graphs)")
    parser.add_argument(
        "--compile-glimpses",
        type=whole_number(1),
        default=1,
        help="glimpses a compiled call runs (DRAW.compile_step): fewer calls, fewer CUDA graph replays (unmeasured)",
    )
    parser.add_argument(
        "--matmul-precision",
        choices=("highest", "high"),
        default="high",
        help="torch.set_float32_matmul_precision: high lets CUDA's float32 matmuls use TensorFloat-32",
    )
    parser.add_argument(
        "--seed", type=torch_seed, default=1, help="of the batch order and noise (the shipped runs used 0)"
    )
    parser.add_argument("--checkpoint-every", type=whole_number(0), default=1000)
    parser.add_argument("--log-every", type=whole_number(1), default=100)
    parser.add_argument("--eval-limit", type=whole_number(1), default=None, help="test digits (default: all 10,000)")
    parser.add_argument("--k", type=whole_number(1), default=10, help="importance samples of the card's IWAE bound")
    parser.add_argument("--checkpoints-dir", default=None, help="shipped checkpoints (default: checkpoints/)")
    parser.add_argument(
        "--work-dir", default=str(ROOT / "runs" / "gpu_recipe"), help="each call writes into a new folder in it"
    )
    parser.add_argument("--tests", nargs="*", default=["tests"], help="test paths for pytest -m cuda (none: skip)")
    parser.add_argument(
        "--tests-timeout", type=positive_number, default=300, help="seconds before the tests are stopped"
    )
    parser.add_argument(
        "--bench-batches", type=whole_number(1), nargs="*", default=[128, 1024], help="(none: skip the bench)"
    )
    parser.add_argument("--bench-preset", choices=sorted(PRESETS), default="mnist")
    parser.add_argument("--bench-path", choices=("fused", "plain", "both"), default="both", help="hot path(s) timed")
    parser.add_argument("--bench-steps", type=whole_number(1), default=10)
    parser.add_argument("--bench-warmup", type=whole_number(0), default=3)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.checkpoints_dir = args.checkpoints_dir or str(shipped_dir())
    command = "python tools/gpu_recipe.py " + " ".join(sys.argv[1:] if argv is None else argv)
    check_plan(parser, args)
    try:
        args.work_dir = str(fresh_folder(Path(args.work_dir)))
    except OSError as error:
        parser.error(f"--work-dir {args.work_dir}: cannot make a folder there ({error.strerror or error})")
    torch.set_float32_matmul_precision(args.matmul_precision)
    summary = {"command": command, "work_dir": args.work_dir, "device": describe_device(select_device(args.device))}
    summary["device"]["matmul_precision"] = args.matmul_precision
    say(json.dumps(summary["device"]))
    summary_path = Path(args.work_dir) / "summary.json"

    def save_summary() -> None:  # after every stage: a call cut off by its time limit keeps what was done
        write_atomically(summary_path, (json.dumps(summary, indent=2) + "\n").encode())  # a cut leaves the last one

    save_summary()
    if args.tests:
        summary["tests"] = run_tests(args.tests, args.tests_timeout)
        save_summary()
    summary["bench"] = []
    for batch in args.bench_batches:
        summary["bench"].append(run_bench(args, batch))
        save_summary()
    summary["models"] = []
    for name, minutes in args.models:
        try:
            summary["models"].append(continue_model(name, minutes or args.minutes, args, command))
        except (Exception, SystemExit) as error:  # recorded (SystemExit: an export's usage error); the next model runs
            say(f"{name}: {type(error).__name__}: {error}")
            summary["models"].append({"name": name, "error": f"{type(error).__name__}: {error}"})
        save_summary()
    failed = [
        *(["tests"] if summary.get("tests", {}).get("returncode", 0) != 0 else []),
        *(f"bench {b['batch_size']}" for b in summary["bench"] if b["returncode"]),
        *(m["name"] for m in summary["models"] if {"diverged", "error"} & set(m)),
    ]
    say(f"summary: {summary_path}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
