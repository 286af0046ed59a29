"""DRAW's attention as a classifier (sec. 4.1, Table 1; Table 3 row "100 x 100 MNIST Classification").

The read-only part of DRAW: an LSTM that takes `glimpses` looks at an image through the differentiable read window
of eqs 19-27 (one N x N glimpse of x per step, no error image), emits the next window from its state (eq. 21
applied to h_t) and gives class scores from its final state. Every step is differentiable, so cross-entropy on the
final scores trains the window placement by plain backpropagation (sec. 4.1), unlike the sampled locations of the
Recurrent Attention Model (draw_core/nn/ram.py).

The paper leaves the first window open; here it comes from the window head applied to h_0 = 0, i.e. from the head's
bias, which starts as a grid over the whole image with overlapping filters (`DrawClassifier._init_window`).

Letters used in shape comments:
    T glimpses, B batch, C channels, H height, W width, N read grid size, U LSTM units, K classes, R = C N N.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from draw_core.config import _check_range, _check_type
from draw_core.nn.attention import AttentionParams, extract, window
from draw_core.nn.hot_path import choose_hot_path
from draw_core.nn.model import lstm_step
from draw_core.nn.time_shared import TimeSharedLinear


def config_from_dict(cls: type, values: dict):
    """`cls(**values)` for a config dataclass, refusing keys that are not its fields."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {unknown}: expected only {sorted(known)}")
    return cls(**values)


@dataclass(frozen=True, kw_only=True)
class ClassifierConfig:
    height: int = 100  # image height in pixels (Table 1: 100 x 100 cluttered MNIST)
    width: int = 100  # image width in pixels
    channels: int = 1  # colour channels; every channel is read through the same window
    glimpses: int = 8  # number of glimpses T (Table 1: 8, also 4)
    read_n: int = 12  # read grid is read_n x read_n (Table 3: 12 x 12)
    hidden: int = 256  # LSTM units (Table 3: 256)
    classes: int = 10  # number of classes scored from the final state

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check_type(f.name, getattr(self, f.name), int)
        _check_range("height", self.height, 4, 256)
        _check_range("width", self.width, 4, 256)
        _check_range("channels", self.channels, 1, 4)
        _check_range("glimpses", self.glimpses, 1, 256)
        # N = 1 would divide by zero in the stride of eq. 24.
        _check_range("read_n", self.read_n, 2, max(self.height, self.width))
        _check_range("hidden", self.hidden, 1, 4096)
        _check_range("classes", self.classes, 2, 1000)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ClassifierConfig:
        return config_from_dict(cls, values)

    @property
    def read_size(self) -> int:
        """Length R of the glimpse vector the LSTM reads each step (the x half of eq. 27)."""
        return self.channels * self.read_n * self.read_n


@dataclass
class ClassificationResult:
    """One pass of DrawClassifier over a batch."""

    logits: torch.Tensor  # (B, K) class scores from the final state
    step_logits: torch.Tensor  # (T, B, K) the same output layer applied after every glimpse; [-1] is `logits`
    read_attn: AttentionParams  # (T, B) fields: the window of every glimpse
    glimpses: torch.Tensor  # (T, B, C, N, N) what the LSTM read (gamma-scaled, eq. 27)


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sec. 4.1: the attention classifier is trained by the cross-entropy of its final class scores (B, K) against
    the labels (B,), averaged over the batch; the gradient reaches the windows through the filterbank."""
    return F.cross_entropy(logits, labels)


def error_rate(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Fraction of the batch whose highest score is not the label (Table 1's test error)."""
    return (logits.argmax(-1) != labels).float().mean()


class DrawClassifier(nn.Module):
    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        if not isinstance(cfg, ClassifierConfig):
            raise TypeError(f"DrawClassifier expects a ClassifierConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        U = cfg.hidden
        # LSTM(h_{t-1}, r_t) as in eq. 5 with r_t the glimpse of x alone; input and recurrent weights fused.
        self.lstm = nn.Linear(cfg.read_size + U, 4 * U)
        # eq. 21 applied to h_{t-1}: (g~X, g~Y, log sigma^2, log delta~, log gamma) of the window of step t.
        self.window_head = nn.Linear(U, 5)
        # Class scores from the state (applied to h_T for the answer, and to every h_t for `step_logits`).
        self.output = nn.Linear(U, cfg.classes)
        self._init_window()

    @torch.no_grad()
    def _init_window(self) -> None:
        """The first window comes from h_0 = 0, so from the head's bias alone: centred (g~ = 0), the grid spanning the
        whole image (delta~ = 1, eq. 24) with sigma = delta / 2 so neighbouring filters overlap, gamma = 1. Every
        pixel then reaches the first glimpse, and with it the gradient of every window parameter (with sigma = 1 a
        12 x 12 grid on a 100 x 100 image would see only isolated pixels)."""
        cfg = self.cfg
        delta = (max(cfg.height, cfg.width) - 1) / (cfg.read_n - 1)  # eq. 24 with delta~ = 1
        self.window_head.bias.copy_(torch.tensor([0.0, 0.0, math.log((delta / 2) ** 2), 0.0, 0.0]))

    @property
    def device(self) -> torch.device:
        return self.output.weight.device

    def classify(self, x: torch.Tensor) -> ClassificationResult:
        """Eqs 19-27 (read of x only) and the LSTM for `glimpses` steps: x (B, C, H, W) in [0, 1] -> class scores."""
        cfg = self.cfg
        expected = (cfg.channels, cfg.height, cfg.width)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"x must have shape (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
        B = x.shape[0]
        h = c = x.new_zeros(B, cfg.hidden)  # (B, U)
        lstm, window_head = self.lstm, self.window_head
        if choose_hot_path(x) == "fused":  # its summed weight gradient is float32 work: not under autocast or CUDA
            lstm, window_head = TimeSharedLinear(self.lstm), TimeSharedLinear(self.window_head)
        states, windows, glimpses = [], [], []
        for _ in range(cfg.glimpses):
            params, Fx, Fy = window(window_head(h), cfg.read_n, cfg.height, cfg.width)  # eqs 21-26 on h_{t-1}
            glimpse = params.gamma[:, None, None, None] * extract(x, Fx, Fy)  # eq. 27 (x half), (B, C, N, N)
            h, c = lstm_step(lstm(torch.cat([glimpse.flatten(1), h], dim=1)), c)  # (B, U)
            states.append(h)
            windows.append(params)
            glimpses.append(glimpse)
        step_logits = self.output(torch.stack(states))  # (T, B, K)
        return ClassificationResult(
            logits=step_logits[-1],
            step_logits=step_logits,
            read_attn=AttentionParams.stack(windows),
            glimpses=torch.stack(glimpses),
        )

    def forward(self, x: torch.Tensor) -> ClassificationResult:
        return self.classify(x)
