"""The benchmark command: its FLOP count by hand and its JSON output (no timing is asserted)."""

import json

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


def test_train_bench_prints_one_json_row(capsys):
    args = ["train", "--preset", "mnist-small", "--batch-size", "4", "--steps", "2", "--warmup", "1", "--json"]
    assert main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    row = json.loads(lines[0])
    assert row["bench"] == "train" and row["batch_size"] == 4
    assert row["train_flops_per_image"] == train_flops_per_image(DrawConfig.preset("mnist-small"))
    assert row["train_images_per_s"] > 0 and row["matmul_gflops"] > 0
    assert row["fraction_of_matmul_limit"] > 0


def test_generate_bench_reports_both_latencies(capsys):
    assert main(["generate", "--preset", "mnist-small", "--repeats", "3", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["bench"] == "generate" and row["one_sample_ms"] > 0 and row["batch64_ms"] > 0
