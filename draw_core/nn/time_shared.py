"""A linear layer applied at every step of a sequence, with its weight gradient accumulated in place.

DRAW applies each of its linear layers once per step, T times per image. Plain autograd computes each step's
weight gradient into a fresh tensor and then adds it to the running sum: two passes over a (O, I) tensor per step.
`TimeSharedLinear` accumulates with one in-place matmul (addmm_) per step instead. Only the order of a sum changes,
so gradients agree with the plain layer to rounding (tests/test_reference.py checks the whole model against a
float64 transcription of the paper). The model's fused hot path uses it; the plain path calls the nn.Linear itself
(see draw_core.nn.model).

Letters: B batch, I layer input size, O layer output size.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd import Function


class _GradientSum:
    """The running weight and bias gradients of one layer over the steps of one backward pass."""

    def __init__(self) -> None:
        self.weight: torch.Tensor | None = None  # (O, I)
        self.bias: torch.Tensor | None = None  # (O,)

    def add(self, grad: torch.Tensor, x: torch.Tensor) -> None:
        if self.weight is None:
            self.weight, self.bias = grad.t() @ x, grad.sum(0)
        else:
            self.weight.addmm_(grad.t(), x)
            self.bias += grad.sum(0)


class _SharedParameters(Function):
    """Hands the layer's weight and bias to every step; its backward runs once, after every step's backward."""

    @staticmethod
    def forward(ctx, weight, bias, total: _GradientSum):
        ctx.total = total
        ctx.set_materialize_grads(False)
        return weight.view_as(weight), bias.view_as(bias)

    @staticmethod
    def backward(ctx, _weight_grad, _bias_grad):
        total = ctx.total
        weight, bias = total.weight, total.bias
        total.weight = total.bias = None  # a second backward through a retained graph starts a new sum
        return weight, bias, None


class _StepLinear(Function):
    """y = x W^T + b for one step; the weight gradient goes into the layer's running sum."""

    @staticmethod
    def forward(ctx, x, weight, bias, total: _GradientSum):
        ctx.save_for_backward(x, weight)
        ctx.total = total
        return torch.addmm(bias, x, weight.t())  # (B, O)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        ctx.total.add(grad, x)
        return (grad @ weight if ctx.needs_input_grad[0] else None), None, None, None  # (B, I)


class TimeSharedLinear:
    """`layer` applied at every step of one sequence; outside autograd (inference, evaluation) the plain layer."""

    def __init__(self, layer: nn.Linear):
        self.layer = layer
        self.total = None
        if torch.is_grad_enabled() and layer.weight.requires_grad:
            self.total = _GradientSum()
            self.weight, self.bias = _SharedParameters.apply(layer.weight, layer.bias, self.total)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.total is None:
            return self.layer(x)
        return _StepLinear.apply(x, self.weight, self.bias, self.total)
