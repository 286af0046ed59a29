"""The one switch between DRAW's two implementations of its hot path (attention eqs 19-29 and the LSTM cell).

'plain' is built from ordinary torch operations and left to autograd: the readable transcription of the paper,
and the one CUDA, torch.autocast and torch.compile see. 'fused' runs the same equations as hand-written autograd
Functions (their backward written out next to their forward): fewer, larger autograd nodes, faster on CPU
(`python -m draw_core.bench train` times both). 'auto' picks fused for a CPU tensor outside autocast and
compilation, else plain. tests/test_hot_paths.py checks that both give the same loss and gradients.
"""

from __future__ import annotations

import torch

HOT_PATHS = ("auto", "fused", "plain")  # the settings; choose_hot_path resolves 'auto' to one of the other two


def check_hot_path(setting: str) -> str:
    """`setting` itself, or a ValueError naming the allowed settings."""
    if setting not in HOT_PATHS:
        raise ValueError(f"hot path must be one of {HOT_PATHS}, got {setting!r}")
    return setting


def choose_hot_path(x: torch.Tensor, setting: str = "auto") -> str:
    """'fused' or 'plain' for work on tensors like `x`: a fixed setting as given, 'auto' as the module says."""
    if check_hot_path(setting) != "auto":
        return setting
    if x.device.type != "cpu" or torch.is_autocast_enabled("cpu") or torch.compiler.is_compiling():
        return "plain"
    return "fused"
