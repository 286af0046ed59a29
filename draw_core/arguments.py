"""Argument types shared by the command-line entry points (draw_core.train, .evaluate, .sample, .bench and tools/):
each refuses a bad value while the command line is parsed, before a checkpoint is loaded or a minute is trained, with
a usage error (exit code 2) that says what was expected."""

from __future__ import annotations

import argparse
import math

from draw_core.config import MAX_SEED, TIME_BUDGET_RANGE_S


def whole_number(minimum: int, maximum: int | None = None):
    """An argparse type: an int >= minimum (and <= maximum when given), or an error message saying what was
    expected."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if maximum is not None and not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"expected a whole number from {minimum} to {maximum}, got {value}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {value}")
        return value

    return parse


torch_seed = whole_number(0, MAX_SEED)  # an argparse type: a seed torch.Generator.manual_seed takes


def finite_number(minimum: float, *, above: bool = False):
    """An argparse type: a finite float >= minimum (> minimum when `above`), or an error message saying what was
    expected."""
    bound = f"{'>' if above else '>='} {minimum:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (math.isfinite(value) and (value > minimum if above else value >= minimum)):
            raise argparse.ArgumentTypeError(f"expected a finite number {bound}, got {text!r}")
        return value

    return parse


positive_number = finite_number(0, above=True)  # an argparse type: a rate, a number of seconds


def check_compile_glimpses(glimpses: int, T: int, *, whose: str = "") -> None:
    """A ValueError unless --compile-glimpses (the glimpses DRAW.compile_step unrolls into one compiled call) is at
    most `whose` T ("the preset's ", "mnist's "): checked by the CLIs before data is loaded or a lease is spent."""
    if glimpses > T:
        raise ValueError(f"--compile-glimpses must be at most {whose}T={T}, got {glimpses}")


def training_minutes(text: str) -> float:
    """An argparse type: a number of minutes of training that TrainConfig's time budget allows."""
    shortest, longest = (seconds / 60 for seconds in TIME_BUDGET_RANGE_S)
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} minutes: expected a number") from None
    if not shortest <= value <= longest:  # NaN is outside too
        raise argparse.ArgumentTypeError(f"{text!r} minutes: expected {shortest:.3f} to {longest:g}")
    return value
