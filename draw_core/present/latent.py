"""Working with DRAW's latents z_1..z_T (sec. 2.3): seeded prior draws, the KL each dimension spends and the step
that spends most, a session's recent decodes, interpolation between two draws, 2-D walks over two dimensions, and
z as JSON.

Letters used in shape comments:
    T steps, Z latent size, n latents in a batch, k walk grid size.

A latent of one image is z (T, Z); the decoder takes a batch (T, n, Z) (`DRAW.generate(n, z=...)`).
"""

from __future__ import annotations

import json
from collections import OrderedDict

import numpy as np
import torch

from draw_core.nn.elbo import gaussian_kl
from draw_core.nn.model import DRAW, GenerationTrace, standard_normal


def prior_z(seed: int, T: int, Z: int, n: int = 1) -> torch.Tensor:
    """n draws z ~ N(0, I) of shape (T, n, Z) from a generator seeded with `seed` (the same on every machine)."""
    return standard_normal((T, n, Z), torch.Generator().manual_seed(int(seed)), torch.device("cpu"))


@torch.inference_mode()
def kl_per_dimension(model: DRAW, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """(T, Z) mean KL(Q(z_t,d | x) || N(0, 1)) over `images` (B, C, H, W): the nats each step and dimension spend."""
    result = model(images.to(model.device), generator=generator)
    per_dimension = gaussian_kl(result.mu.unsqueeze(-1), result.logvar.unsqueeze(-1))  # eq. 11 per dim, (T, B, Z)
    return per_dimension.mean(1).cpu()


def dims_by_kl(kl: torch.Tensor, step: int | None = None) -> list[int]:
    """Latent dimensions, most KL first: at `step` (0-based) of kl (T, Z), or summed over all steps when None."""
    spent = kl.sum(0) if step is None else kl[step]  # (Z,)
    return torch.argsort(spent, descending=True, stable=True).tolist()


def busiest_step(kl: torch.Tensor) -> int:
    """The step (0-based) whose latents carry the most KL in kl (T, Z), summed over dimensions: where moving z
    changes the drawing most (late steps of a trained model only retouch a finished digit)."""
    return int(kl.sum(1).argmax())


class RecentDecodes:
    """The drawings of the last `capacity` latents one session decoded, newest last.

    A slider moved back to where it was, Reset after a drag, or a rerun that changed nothing else then costs a
    dictionary look-up instead of a pass of the decoder. Kept per session (in its session state): the entries
    are one learner's edits, which no other session will ask for.
    """

    def __init__(self, capacity: int = 4):
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._traces: OrderedDict[tuple[str, bytes], GenerationTrace] = OrderedDict()

    def __len__(self) -> int:
        return len(self._traces)

    def decode(self, model: DRAW, model_key: str, z: np.ndarray) -> GenerationTrace:
        """The trace of one sample (fields (T, 1, ...)) the model `model_key` names draws from z (T, Z)."""
        z = np.ascontiguousarray(z, dtype=np.float32)
        key = (model_key, z.tobytes())
        if key in self._traces:
            self._traces.move_to_end(key)
            return self._traces[key]
        trace = model.generate(1, z=torch.from_numpy(z).unsqueeze(1))  # z (T, 1, Z)
        self._traces[key] = trace
        if len(self._traces) > self.capacity:
            self._traces.popitem(last=False)
        return trace


def interpolate(z_a: torch.Tensor, z_b: torch.Tensor, n: int) -> torch.Tensor:
    """n latents (n, T, Z) from z_a to z_b (both (T, Z)) along the great circle (slerp), so every point keeps
    the norm a prior draw has; nearly parallel endpoints fall back to a straight line."""
    if z_a.shape != z_b.shape:
        raise ValueError(f"both ends must have the same shape, got {tuple(z_a.shape)} and {tuple(z_b.shape)}")
    if n < 2:
        raise ValueError(f"an interpolation needs at least 2 points, got n={n}")
    a, b = z_a.flatten().double(), z_b.flatten().double()
    fractions = torch.linspace(0, 1, n, dtype=torch.float64)[:, None]  # (n, 1)
    cosine = torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-12)
    angle = torch.arccos(cosine.clamp(-1, 1))
    if angle < 1e-4:
        points = (1 - fractions) * a + fractions * b
    else:
        points = (torch.sin((1 - fractions) * angle) * a + torch.sin(fractions * angle) * b) / torch.sin(angle)
    return points.to(z_a.dtype).view(n, *z_a.shape)


def walk_grid(z: torch.Tensor, dims: tuple[int, int], values: torch.Tensor, step: int | None = None) -> torch.Tensor:
    """k x k latents (k k, T, Z) around z (T, Z): row r sets dimension dims[0] to values[r], column c sets dims[1]
    to values[c]; at step `step` (0-based) only, or at every step when None."""
    T, Z = z.shape
    first, second = dims
    for d in dims:
        if not 0 <= d < Z:
            raise ValueError(f"latent dimension {d} is out of range: expected 0 <= d < {Z}")
    k = len(values)
    steps = slice(None) if step is None else slice(step, step + 1)
    grid = z.unsqueeze(0).repeat(k * k, 1, 1)  # (k k, T, Z)
    rows, cols = torch.meshgrid(values, values, indexing="ij")  # (k, k) each
    grid[:, steps, first] = rows.reshape(-1, 1).to(z.dtype)
    grid[:, steps, second] = cols.reshape(-1, 1).to(z.dtype)
    return grid


def z_to_json(z: torch.Tensor, decimals: int = 4) -> str:
    """z (T, Z) or (Z,) as a JSON list (of lists) of numbers, rounded to `decimals`."""
    return json.dumps(torch.round(z.detach().cpu().double(), decimals=decimals).tolist())


def _numbers_only(values) -> bool:
    """Whether a parsed JSON value is a number or (nested) lists of numbers; true and false are not numbers."""
    if isinstance(values, list):
        return all(_numbers_only(v) for v in values)
    return isinstance(values, (int, float)) and not isinstance(values, bool)


def z_from_json(text: str, T: int, Z: int, limit: float | None = None) -> torch.Tensor:
    """Parse z pasted as JSON: T lists of Z numbers (one z per step), or one list of Z numbers (every step); with
    `limit`, every value within ±limit (the sliders' range, so what is drawn is what they show)."""
    try:
        values = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})") from None
    expected = f"a list of {Z} numbers, or {T} such lists (one per step)"
    if not _numbers_only(values):
        raise ValueError(f"z must be {expected} (numbers only: not text, true or false)")
    try:
        z = torch.tensor(values, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError, OverflowError):
        raise ValueError(f"z must be {expected}") from None
    if z.dim() == 1 and len(z) == Z:
        z = z.expand(T, Z).clone()
    if tuple(z.shape) != (T, Z):
        raise ValueError(f"z has shape {tuple(z.shape)}: expected {expected}")
    if not torch.isfinite(z).all():
        raise ValueError("z contains NaN or infinity: expected finite numbers")
    if limit is not None and z.abs().max() > limit:
        raise ValueError(f"z has a value of {z.abs().max().item():.4g} in size: expected values within ±{limit:g}")
    return z.float()
