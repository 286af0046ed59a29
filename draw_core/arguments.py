"""Argument types shared by the command-line entry points (draw_core.train, .evaluate, .bench and tools/): each
refuses a bad value while the command line is parsed, before a checkpoint is loaded or a minute is trained, with a
usage error (exit code 2) that says what was expected."""

from __future__ import annotations

import argparse


def whole_number(minimum: int):
    """An argparse type: an int >= minimum, or an error message saying what was expected."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {value}")
        return value

    return parse
