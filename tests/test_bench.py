"""The benchmark command: its FLOP count by hand, its output and its usage errors (no timing is asserted)."""

import json

import pytest

from draw_core.bench import forward_flops_per_image, main, train_flops_per_image
from draw_core.config import DrawConfig


def test_flops_of_the_paper_config_by_hand():
    cfg = DrawConfig.preset("mnist")  # T=64, read 2x2, write 5x5, E = D = 256, Z = 100
    per_step = (
        2 * (8 + 256 + 256) * 1024  # encoder: [r (2 x 2 x 2), h_dec, h_enc] -> 4E gates
        + 2 * 256 * 200  # posterior: mu and log sigma^2
        + 2 * (100 + 256) * 1024  # decoder: [z, h_dec] -> 4D gates
        + 2 * 256 * (25 + 5 + 5)  # head: write patch and both windows
        + 2 * (2 * 2 * 28 * 28 + 2 * 2 * 28 * 2)  # read: F_Y x F_X^T on x and x_hat
        + (2 * 28 * 5 * 5 + 2 * 28 * 5 * 28)  # write: F_Y^T w F_X
    )
    assert forward_flops_per_image(cfg) == 64 * per_step
    assert train_flops_per_image(cfg) == 3 * 64 * per_step


QUICK_TRAIN = ["train", "--preset", "mnist-small", "--batch-size", "4", "--steps", "2", "--warmup", "1"]


def test_train_bench_prints_a_json_row_per_hot_path(capsys):
    assert main([*QUICK_TRAIN, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [row["path"] for row in rows] == ["fused", "plain"]
    for row in rows:
        assert row["bench"] == "train" and row["batch_size"] == 4
        assert row["train_flops_per_image"] == train_flops_per_image(DrawConfig.preset("mnist-small"))
        assert row["train_images_per_s"] > 0 and row["matmul_gflops"] > 0
        assert row["fraction_of_matmul_limit"] > 0
    assert rows[0]["matmul_gflops"] == rows[1]["matmul_gflops"], "both paths are timed against the same bursts"


def test_train_bench_table_shows_the_paths_side_by_side(capsys):
    assert main([*QUICK_TRAIN, "--steps", "1", "--warmup", "0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["path", "fused", "plain"]
    assert lines[0].split() == ["bench", "train", "train"]
    images_per_s = next(line for line in lines if line.startswith("train_images_per_s")).split()
    assert len(images_per_s) == 3 and all(float(v.replace(",", "")) > 0 for v in images_per_s[1:])


def test_train_bench_can_time_one_path(capsys):
    assert main([*QUICK_TRAIN, "--steps", "1", "--warmup", "0", "--path", "plain", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [row["path"] for row in rows] == ["plain"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--device", "bogus"], "argument --device: unknown device 'bogus': expected auto, cpu, cuda"),
        (["generate", "--device", "meta"], "argument --device: unknown device 'meta': expected auto, cpu, cuda"),
        (["train", "--threads", "-3"], "argument --threads: expected a whole number >= 1, got -3"),
        (["generate", "--threads", "two"], "argument --threads: expected a whole number, got 'two'"),
        (["train", "--steps", "0"], "argument --steps: expected a whole number >= 1, got 0"),
        (["train", "--warmup", "-1"], "argument --warmup: expected a whole number >= 0, got -1"),
        (["train", "--path", "fast"], "argument --path: invalid choice"),
        (["generate", "--preset", "nope"], "argument --preset: invalid choice"),
        (["train", "--compile-mode", "default", "--compile-glimpses", "999"], "--compile-glimpses must be at most"),
    ],
)
def test_bad_flags_are_usage_errors_not_tracebacks(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error: " + message in err and "Traceback" not in err


def test_generate_bench_reports_both_latencies(capsys):
    assert main(["generate", "--preset", "mnist-small", "--repeats", "3", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["bench"] == "generate" and row["one_sample_ms"] > 0 and row["batch64_ms"] > 0


def test_clutter_bench_times_the_images_it_was_asked_for(capsys):
    assert main(["clutter", "--images", "300", "--repeats", "2", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["bench"] == "clutter" and row["images"] == 300
    assert row["images_per_s"] == pytest.approx(300 / row["seconds"])
