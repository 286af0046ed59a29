"""The DRAW network (sec. 2, eqs 1-8) with selective attention (sec. 3) or without it (eqs 17-18).

Letters used in shape comments:
    T steps, B batch, C channels, H height, W width, N attention grid size, Z latent size,
    E encoder LSTM units, D decoder LSTM units, R read vector length, P write patch length.

Everything a visualisation needs comes out of one loop (`DRAW.run`): the canvases, the read and write
attention of every step, the glimpses the encoder saw and the posterior of every z_t.

Two implementations of the hot path, one switch: `DRAW(cfg, hot_path=...)` (also an attribute, not part of the
config, so checkpoints do not record it) is 'auto', 'fused' or 'plain'. 'plain' runs the attention (eqs 19-29) and
a textbook LSTM cell as ordinary torch operations and calls the linear layers as the nn.Linear modules they are;
it is the reference, and what CUDA, torch.autocast (e.g. bfloat16) and torch.compile get. 'fused' runs the
attention and the LSTM cell as autograd Functions with hand-written backward passes and sums each linear layer's
weight gradient over the T steps in place (TimeSharedLinear); it is the CPU default. 'auto' decides per call
(`run`, `generate`) with `choose_hot_path` (draw_core.nn.hot_path); tests/test_hot_paths.py checks that both paths
give the same loss and gradients, and tests/test_reference.py judges both against a float64 transcription.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from draw_core.config import DrawConfig
from draw_core.nn.attention import AttentionParams, attention_params, filterbank, read, window, write
from draw_core.nn.hot_path import check_hot_path, choose_hot_path
from draw_core.nn.likelihood import coupling_pairs, mean_image
from draw_core.nn.time_shared import TimeSharedLinear

READ_SPAN = 0.5  # initial read grid spans this fraction of the image (delta~ of eq. 24)


def lstm_step(gates: torch.Tensor, cell: torch.Tensor, *, path: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM update from pre-activations ordered (input, forget, output, candidate), each (B, U):
    c' = f c + i g, h = o tanh(c') with i, f, o = sigmoid(.) and g = tanh(.). Returns (h, c')."""
    if choose_hot_path(gates, path) == "fused":
        return _LSTMCell.apply(gates, cell)
    input_gate, forget_gate, output_gate, candidate = gates.chunk(4, dim=1)  # (B, U) each
    new_cell = torch.sigmoid(forget_gate) * cell + torch.sigmoid(input_gate) * torch.tanh(candidate)
    return torch.sigmoid(output_gate) * torch.tanh(new_cell), new_cell


def _tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh(x) = 2 sigmoid(2x) - 1: on the CPUs we measured, torch.tanh is about 6x slower than torch.sigmoid."""
    return torch.sigmoid(2 * x).mul_(2).sub_(1)


class _LSTMCell(torch.autograd.Function):
    """The fused `lstm_step`: one autograd node whose backward writes the four gate gradients straight into one
    (B, 4U) tensor (tests/test_model.py checks it with gradcheck)."""

    @staticmethod
    def forward(ctx, gates, cell):
        units = cell.shape[-1]
        ifo = gates[:, : 3 * units].sigmoid()  # (B, 3U)
        candidate = _tanh(gates[:, 3 * units :])  # (B, U)
        input_gate, forget_gate, output_gate = ifo.chunk(3, dim=1)
        new_cell = (forget_gate * cell).addcmul_(input_gate, candidate)
        tanh_cell = _tanh(new_cell)
        ctx.save_for_backward(ifo, candidate, cell, tanh_cell)
        return output_gate * tanh_cell, new_cell

    @staticmethod
    def backward(ctx, grad_hidden, grad_new_cell):
        ifo, candidate, cell, tanh_cell = ctx.saved_tensors
        units = cell.shape[-1]
        input_gate, forget_gate, output_gate = ifo.chunk(3, dim=1)
        grad_cell = torch.ops.aten.tanh_backward(grad_hidden * output_gate, tanh_cell).add_(grad_new_cell)  # dL/dc'
        grad = ifo.new_empty(cell.shape[0], 4 * units)  # (B, 4U)
        torch.mul(grad_cell, candidate, out=grad[:, :units])  # dL/di
        torch.mul(grad_cell, cell, out=grad[:, units : 2 * units])  # dL/df
        torch.mul(grad_hidden, tanh_cell, out=grad[:, 2 * units : 3 * units])  # dL/do
        torch.ops.aten.sigmoid_backward.grad_input(grad[:, : 3 * units], ifo, grad_input=grad[:, : 3 * units])
        torch.ops.aten.tanh_backward.grad_input(grad_cell * input_gate, candidate, grad_input=grad[:, 3 * units :])
        return grad, grad_cell * forget_gate


@dataclass
class DrawResult:
    """Everything one pass over a batch x produced."""

    canvas_steps: list[torch.Tensor]  # T x (B, K, H, W): c_t after every step, K = cfg.canvas_channels
    mu: torch.Tensor  # (T, B, Z) posterior means, eq. 1
    logvar: torch.Tensor  # (T, B, Z) posterior log variances, 2 log sigma_t of eq. 2
    z: torch.Tensor  # (T, B, Z) the sampled latents
    read_attn: AttentionParams | None  # (T, B) fields; None without read attention
    write_attn: AttentionParams | None  # (T, B) fields; None without write attention
    glimpses: torch.Tensor  # (T, B, 2C, N, N) what the encoder read (gamma-scaled), or (T, B, 2C, H, W)
    likelihood: str = "bernoulli"  # D(X | c_T) the canvas parametrises (DrawConfig.likelihood)
    coupling: torch.Tensor | None = None  # (C(C-1)/2,) raw colour coupling of 'logistic-coupled', else None

    @property
    def final_logits(self) -> torch.Tensor:
        """(B, K, H, W) c_T, all the loss needs (eq. 9)."""
        return self.canvas_steps[-1]

    @functools.cached_property
    def canvas_logits(self) -> torch.Tensor:
        """(T, B, K, H, W) every c_t, stacked only when a picture asks: training never pays for the copy."""
        return torch.stack(self.canvas_steps)


@dataclass
class GenerationTrace:
    canvases: torch.Tensor  # (T, n, C, H, W) sigma(c_t) in [0, 1]
    write_attn: AttentionParams | None  # (T, n) fields
    z: torch.Tensor  # (T, n, Z) the latents that drove the decoder


@dataclass
class ReconstructionTrace:
    canvases: torch.Tensor  # (T, B, C, H, W) sigma(c_t)
    errors: torch.Tensor  # (T, B, C, H, W) x_hat_t = x - sigma(c_{t-1}), eq. 3
    read_attn: AttentionParams | None  # (T, B) fields
    write_attn: AttentionParams | None  # (T, B) fields
    glimpses: torch.Tensor  # (T, B, 2C, N, N): channels [:C] read from x, [C:] from x_hat
    mu: torch.Tensor  # (T, B, Z) posterior means
    std: torch.Tensor  # (T, B, Z) posterior standard deviations
    z: torch.Tensor  # (T, B, Z) sampled latents


Layer = Callable[[torch.Tensor], torch.Tensor]  # (B, I) -> (B, O): an nn.Linear or its TimeSharedLinear


class SequenceLayers(NamedTuple):
    """The network's linear layers as one forward pass applies them at every step."""

    encoder: Layer
    posterior: Layer
    decoder: Layer
    head: Layer


def standard_normal(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """N(0, I) noise; drawn on the generator's device (CPU by default) so a seed gives the same numbers everywhere."""
    gen_device = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=gen_device).to(device)


class DRAW(nn.Module):
    def __init__(self, cfg: DrawConfig, *, hot_path: str = "auto"):
        super().__init__()
        if not isinstance(cfg, DrawConfig):
            raise TypeError(f"DRAW expects a DrawConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.hot_path = check_hot_path(hot_path)  # 'auto' | 'fused' | 'plain', see the module docstring
        E, D, Z = cfg.enc_size, cfg.dec_size, cfg.z_size
        # eq. 5: RNN_enc(h_enc_{t-1}, [r_t, h_dec_{t-1}]); input and recurrent weights fused into one matmul.
        self.encoder = nn.Linear(cfg.read_size + D + E, 4 * E)
        # eqs 1-2: mu_t and log sigma_t^2 of Q(Z_t | h_enc_t).
        self.posterior = nn.Linear(E, 2 * Z)
        # eq. 7: RNN_dec(h_dec_{t-1}, z_t), fused likewise.
        self.decoder = nn.Linear(Z + D, 4 * D)
        # One head on h_dec_t: the write patch w_t (eqs 18/28), the write attention (eq. 21) and the read
        # attention of the next step (eq. 21 applied to h_dec_t, used at t + 1), all in one matmul.
        self.head = nn.Linear(D, cfg.write_size + 5 * cfg.write_attn + 5 * cfg.read_attn)
        # 'logistic-coupled': a_ij = tanh(coupling) moves colour channel i's mean by a_ij (x_j - mu_j), j < i
        # (draw_core.nn.likelihood); zero at first: no coupling until learning finds it.
        pairs = coupling_pairs(cfg.channels) if cfg.likelihood == "logistic-coupled" else 0
        self.coupling = nn.Parameter(torch.zeros(pairs)) if pairs else None
        self.compiled_glimpses: Callable | None = None  # `glimpses` through torch.compile, set by compile_step()
        self.glimpses_per_call = 1  # glimpses one call of `compiled_glimpses` runs (compile_step's argument)
        self._init_windows()
        self._init_log_scales()

    @torch.no_grad()
    def _init_log_scales(self) -> None:
        """For the logistic likelihood, the head's rows that write the log-scale channels start at zero: every
        write then leaves log s at LOG_SCALE_INIT until learning moves it. Random rows would add T random writes,
        and a log-scale that drifts far below a bin's width starts the bound at tens of bits per sub-pixel."""
        cfg = self.cfg
        if cfg.canvas_channels == cfg.channels:
            return
        per_channel = cfg.write_size // cfg.canvas_channels
        log_scale_rows = slice(cfg.channels * per_channel, cfg.write_size)  # channels [C:] of the patch
        self.head.weight[log_scale_rows] = 0
        self.head.bias[log_scale_rows] = 0

    @torch.no_grad()
    def _init_windows(self) -> None:
        """Initial biases of the attention heads (the paper leaves initialisation open).

        With zero biases eq. 24 gives delta = (max(A, B) - 1) / (N - 1) and eq. 21 sigma = 1: a 2 x 2 read grid then
        sits on the four blank corner pixels of an MNIST digit, so the read and its gradient are zero and the
        posterior collapses; a 5 x 5 write grid paints 25 isolated dots. Biases for sigma = delta / 2 make the
        filters overlap, the read grid starts over the middle of the image (delta~ = READ_SPAN), and the write
        intensity starts at the gain of a full-canvas write. Measured on MNIST, this starts learning much sooner.
        """
        cfg = self.cfg
        span = max(cfg.height, cfg.width) - 1
        windows = []  # (first of the window's 5 head outputs, N, delta~, whether it is the write window)
        if cfg.write_attn:
            windows.append((cfg.write_size, cfg.write_n, 1.0, True))
        if cfg.read_attn:
            windows.append((self.head.out_features - 5, cfg.read_n, READ_SPAN, False))
        for start, N, delta_tilde, writes in windows:
            sigma2 = (span / (N - 1) * delta_tilde / 2) ** 2  # sigma = delta / 2, eq. 24
            self.head.bias[start + 2] = math.log(sigma2)  # log sigma^2, eq. 21
            self.head.bias[start + 3] = math.log(delta_tilde)  # log delta~
            if writes:
                # Normalised filters spread each patch value over about 2 pi sigma^2 pixels; 1 / gamma^ (eq. 29)
                # starts at that area, so a unit of w_t moves a canvas logit by about one, as eq. 18 does.
                self.head.bias[start + 4] = -math.log(2 * math.pi * sigma2)  # log gamma^

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def _split_head(self, head: torch.Tensor):
        """(B, head) -> write patch (B, P), raw write attention (B, 5) or None, raw read attention or None."""
        cfg = self.cfg
        w, write_raw, read_raw = head.split([cfg.write_size, 5 * cfg.write_attn, 5 * cfg.read_attn], dim=1)
        return w, write_raw if cfg.write_attn else None, read_raw if cfg.read_attn else None

    def _write(self, w: torch.Tensor, write_raw: torch.Tensor | None, path: str, scale: float = 1.0):
        """eq. 18 or eqs 28-29: the canvas update and its attention params, on a canvas `scale` times the model's
        own (see `generate`)."""
        cfg = self.cfg
        B = w.shape[0]
        if write_raw is None:
            return w.view(B, cfg.canvas_channels, cfg.height, cfg.width), None  # eq. 18
        height, width = round(cfg.height * scale), round(cfg.width * scale)
        if scale == 1.0:
            params, Fx, Fy = window(write_raw, cfg.write_n, height, width, path=path)  # eqs 21-26, (B, N, W|H)
        else:
            params = attention_params(write_raw, cfg.write_n, height, width)  # eqs 22-24 place the grid on it
            # eq. 21's sigma^2 and gamma know no image size: a filter as wide in the picture is `scale` times as
            # many pixels wide, and it spreads the same ink over scale^2 times the pixels, so 1/gamma grows by it.
            params = dataclasses.replace(params, sigma2=params.sigma2 * scale**2, gamma=params.gamma / scale**2)
            Fx, Fy = filterbank(params, cfg.write_n, height, width, path=path)  # eqs 25-26
        patch = w.view(B, cfg.canvas_channels, cfg.write_n, cfg.write_n)  # eq. 28, (B, K, N, N)
        return write(patch, Fx, Fy, params.gamma, path=path), params  # eq. 29

    def step(self, layers: SequenceLayers, x, canvas, h_enc, c_enc, h_dec, c_dec, read_raw, noise, *, path: str):
        """One glimpse, eqs 3-8, on hot path `path` ('fused' or 'plain'): returns the new state, the posterior
        and what was read and written."""
        cfg = self.cfg
        B = x.shape[0]
        x_hat = x - mean_image(canvas, cfg.channels)  # eq. 3
        if read_raw is None:
            glimpse = torch.cat([x, x_hat], dim=1)  # eq. 17, (B, 2C, H, W)
            r, read_params = glimpse.flatten(1), None
        else:
            read_params, Fx, Fy = window(read_raw, cfg.read_n, cfg.height, cfg.width, path=path)  # eqs 21-26
            r = read(x, x_hat, Fx, Fy, read_params.gamma, path=path)  # eq. 27, (B, 2CNN)
            glimpse = r.view(B, 2 * cfg.channels, cfg.read_n, cfg.read_n)
        h_enc, c_enc = lstm_step(layers.encoder(torch.cat([r, h_dec, h_enc], dim=1)), c_enc, path=path)  # eq. 5
        mu, logvar = layers.posterior(h_enc).chunk(2, dim=1)  # eqs 1-2, (B, Z) each
        z = mu + torch.exp(0.5 * logvar) * noise  # eq. 6, z_t ~ Q(Z_t | h_enc_t)
        h_dec, c_dec = lstm_step(layers.decoder(torch.cat([z, h_dec], dim=1)), c_dec, path=path)  # eq. 7
        w, write_raw, read_raw = self._split_head(layers.head(h_dec))
        update, write_params = self._write(w, write_raw, path)
        canvas = canvas + update  # eq. 8
        return canvas, h_enc, c_enc, h_dec, c_dec, read_raw, mu, logvar, z, glimpse, read_params, write_params

    def glimpses(self, layers: SequenceLayers, x, canvas, h_enc, c_enc, h_dec, c_dec, read_raw, noise, *, path: str):
        """`step` once for each row of noise (k, B, Z): k glimpses in a row. Returns the state after them and, per
        glimpse, (canvas, mu, logvar, z, glimpse, read params, write params)."""
        outputs = []
        for noise_t in noise:  # (B, Z)
            canvas, h_enc, c_enc, h_dec, c_dec, read_raw, *seen = self.step(
                layers, x, canvas, h_enc, c_enc, h_dec, c_dec, read_raw, noise_t, path=path
            )
            outputs.append((canvas, *seen))
        return (canvas, h_enc, c_enc, h_dec, c_dec, read_raw), outputs

    def compile_step(self, *, glimpses_per_call: int = 1, **options) -> None:
        """Run the glimpses of a training forward (`glimpses`, eqs 3-8) through torch.compile(**options) on the plain
        hot path, `glimpses_per_call` of them unrolled into one compiled call (two graphs: the first call, whose
        state carries no gradient yet, and the rest; a last, shorter call when it does not divide T is a third).

        More glimpses a call means fewer calls, each with its fixed cost (guards, the autograd node; with CUDA graphs
        one replay each), and longer compiling. On our CPU it buys nothing: paper config, batch 128, steps
        interleaved, 500.7 ms a step with one glimpse a call and 500.1 ms with four (compiling 37 s against 104 s);
        on a GPU it is unmeasured. Compiling `run` whole (all 64 unrolled) took 589 s (inductor, batch 8). Passes
        without gradients (evaluation) stay eager, so their batch sizes compile nothing."""
        if not 1 <= glimpses_per_call <= self.cfg.T:
            raise ValueError(f"glimpses_per_call={glimpses_per_call} must be between 1 and T={self.cfg.T}")
        self.compiled_glimpses = torch.compile(self.glimpses, dynamic=False, **options)
        self.glimpses_per_call = glimpses_per_call

    def run(self, x: torch.Tensor, noise: torch.Tensor) -> DrawResult:
        """Eqs 3-8 for t = 1..T with z_t = mu_t + sigma_t * noise[t - 1] (reparameterisation), on the hot path
        `choose_hot_path(x, self.hot_path)` picks, or through the compiled glimpse (`compile_step`) when there is one
        and gradients are on."""
        cfg = self.cfg
        expected = (cfg.channels, cfg.height, cfg.width)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"x must have shape (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
        B = x.shape[0]
        h_enc = c_enc = x.new_zeros(B, cfg.enc_size)  # (B, E)
        h_dec = c_dec = x.new_zeros(B, cfg.dec_size)  # (B, D)
        canvas = x.new_zeros(B, cfg.canvas_channels, cfg.height, cfg.width)  # (B, K, H, W)
        compiled = self.compiled_glimpses is not None and torch.is_grad_enabled()
        glimpses = self.compiled_glimpses if compiled else self.glimpses
        per_call = self.glimpses_per_call if compiled else cfg.T
        path = "plain" if compiled else choose_hot_path(x, self.hot_path)
        layers = SequenceLayers(self.encoder, self.posterior, self.decoder, self.head)
        if path == "fused":
            layers = SequenceLayers(*map(TimeSharedLinear, layers))
        _, _, read_raw = self._split_head(layers.head(h_dec))  # eq. 21 on h_dec_0
        state, seen = (canvas, h_enc, c_enc, h_dec, c_dec, read_raw), []
        for start in range(0, cfg.T, per_call):
            state, outputs = glimpses(layers, x, *state, noise[start : start + per_call], path=path)
            seen += outputs
        canvases, mus, logvars, zs, glimpse_list, reads, writes = zip(*seen, strict=True)  # each T long
        return DrawResult(
            canvas_steps=list(canvases),
            mu=torch.stack(mus),
            logvar=torch.stack(logvars),
            z=torch.stack(zs),
            read_attn=AttentionParams.stack(reads) if cfg.read_attn else None,
            write_attn=AttentionParams.stack(writes) if cfg.write_attn else None,
            glimpses=torch.stack(glimpse_list),
            likelihood=cfg.likelihood,
            coupling=self.coupling,
        )

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None, *, sample: bool = True) -> DrawResult:
        """Eqs 3-8 over x; sample=False takes z_t = mu_t (no noise), as a plain autoencoder does."""
        shape = (self.cfg.T, x.shape[0], self.cfg.z_size)
        noise = standard_normal(shape, generator, x.device) if sample else x.new_zeros(shape)  # (T, B, Z)
        return self.run(x, noise)

    @torch.inference_mode()
    def generate(
        self,
        n: int,
        z: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        *,
        canvas: tuple[int, int] | None = None,
    ) -> GenerationTrace:
        """Sec. 2.3: draw z_t from the prior (or use the given z of shape (T, n, Z) as is) and decode, on the hot
        path `choose_hot_path` picks for self.hot_path.

        `canvas` (H', W') draws the same z on a canvas of another size, s = H'/H = W'/W times the model's own: the
        write grid is placed by eqs 22-24 for that size, and sigma and the ink per pixel are rescaled by s and s^2
        (`_write`). Only a model with write attention can: without it (eq. 18) the canvas is the decoder's output.
        """
        cfg = self.cfg
        scale = self._canvas_scale(canvas)
        if z is None:
            z = standard_normal((cfg.T, n, cfg.z_size), generator, self.device)
        elif tuple(z.shape) != (cfg.T, n, cfg.z_size):
            raise ValueError(f"z must have shape (T={cfg.T}, n={n}, Z={cfg.z_size}), got {tuple(z.shape)}")
        z = z.to(self.device, torch.float32)
        path = choose_hot_path(z, self.hot_path)
        T, D = cfg.T, cfg.dec_size
        # The decoder never looks at the canvas, so only its recurrence is sequential: the z part of eq. 14's
        # input projection, the heads, the filterbanks and the writes of all T steps are batched.
        weight_z, weight_h = self.decoder.weight.split([cfg.z_size, D], dim=1)
        z_gates = torch.nn.functional.linear(z, weight_z, self.decoder.bias)  # (T, n, 4D)
        h_dec = c_dec = z.new_zeros(n, D)
        hidden = []
        for t in range(T):
            h_dec, c_dec = lstm_step(torch.addmm(z_gates[t], h_dec, weight_h.t()), c_dec, path=path)  # eq. 14
            hidden.append(h_dec)
        w, write_raw, _ = self._split_head(self.head(torch.stack(hidden).view(T * n, D)))
        updates, params = self._write(w, write_raw, path, scale)  # (T n, K, H', W')
        logits = updates.view(T, n, *updates.shape[1:]).cumsum(0)  # eq. 15: c_t = c_{t-1} + write
        return GenerationTrace(
            canvases=mean_image(logits, cfg.channels),  # eq. 16 takes the mean of D(X | c_T)
            write_attn=params.map(lambda v: v.view(T, n)) if params is not None else None,
            z=z,
        )

    def _canvas_scale(self, canvas: tuple[int, int] | None) -> float:
        """s = H'/H = W'/W of a requested canvas (1 for None); refused where the picture would be stretched or the
        model has no write attention to rescale."""
        cfg = self.cfg
        if canvas is None or tuple(canvas) == (cfg.height, cfg.width):
            return 1.0
        height, width = canvas
        if not cfg.write_attn:
            raise ValueError(
                f"a canvas of {height}x{width} needs write attention: this model writes its whole "
                f"{cfg.height}x{cfg.width} canvas at once (eq. 18)"
            )
        scale = height / cfg.height
        if not (4 <= height <= 1024 and 4 <= width <= 1024) or abs(width - cfg.width * scale) > 1e-9:
            raise ValueError(
                f"canvas must keep the model's aspect ratio {cfg.height}:{cfg.width} and be 4 to 1024 pixels a side, "
                f"got {height}x{width}"
            )
        return scale

    @torch.inference_mode()
    def reconstruct(self, x: torch.Tensor, generator: torch.Generator | None = None) -> ReconstructionTrace:
        """One pass over x with sampled z, returned as pictures: canvases, error images, windows, glimpses."""
        result = self.forward(x.to(self.device), generator=generator)
        canvases = mean_image(result.canvas_logits, self.cfg.channels)  # (T, B, C, H, W)
        previous = torch.cat([torch.full_like(canvases[:1], 0.5), canvases[:-1]])  # sigma(c_0) = sigma(0)
        return ReconstructionTrace(
            canvases=canvases,
            errors=x.to(self.device).unsqueeze(0) - previous,  # eq. 3
            read_attn=result.read_attn,
            write_attn=result.write_attn,
            glimpses=result.glimpses,
            mu=result.mu,
            std=torch.exp(0.5 * result.logvar),
            z=result.z,
        )


def couple_colours(model: DRAW) -> DRAW:
    """The 'logistic-coupled' twin of a 'logistic' colour model: its weights and coupling 0 (a_ij = tanh 0 = 0), so
    every image has the same likelihood under both until training moves the coupling (`train --init-from` of a
    'logistic' checkpoint into a 'logistic-coupled' preset starts here)."""
    cfg = model.cfg
    if cfg.likelihood != "logistic" or cfg.channels < 2:
        raise ValueError(
            f"only a 'logistic' model of several colour channels has a coupled twin, not likelihood={cfg.likelihood!r} "
            f"with channels={cfg.channels}"
        )
    coupled = DRAW(dataclasses.replace(cfg, likelihood="logistic-coupled"), hot_path=model.hot_path)
    coupled.load_state_dict({**model.state_dict(), "coupling": coupled.coupling.detach().clone()})
    return coupled.to(model.device)
