"""The optimised model against a deliberately naive float64 transcription of the paper's equations.

The reference below loops over filter rows and pixels (eqs 19-26), keeps the LSTM input and recurrent
weights separate (eqs 5, 7), and writes the ELBO out term by term (eqs 9-12). The loss and every
gradient of the float32 model must agree with it, on both hot paths (fused and plain).
"""

import math

import pytest
import torch

from draw_core.config import DrawConfig
from draw_core.nn.elbo import loss_terms
from draw_core.nn.model import DRAW

EPS = 1e-8


def ref_params(raw, N, A, B):
    gx = (A + 1) / 2 * (raw[:, 0] + 1)  # eq. 22
    gy = (B + 1) / 2 * (raw[:, 1] + 1)  # eq. 23
    sigma2 = torch.exp(raw[:, 2])  # eq. 21
    delta = (max(A, B) - 1) / (N - 1) * torch.exp(raw[:, 3])  # eq. 24
    gamma = torch.exp(raw[:, 4])
    return gx, gy, sigma2, delta, gamma


def ref_filter(g, sigma2, delta, N, size):
    rows = []
    for i in range(1, N + 1):
        mu = g + (i - N / 2 - 0.5) * delta  # eqs 19-20
        row = torch.stack([torch.exp(-((a - mu) ** 2) / (2 * sigma2)) for a in range(1, size + 1)], dim=-1)  # eq. 25
        rows.append(row / row.sum(-1, keepdim=True).clamp_min(EPS))
    return torch.stack(rows, dim=1)  # (B, N, size)


def ref_lstm(x_parts, weights, bias, c):
    gates = bias + sum(x @ w.t() for x, w in zip(x_parts, weights, strict=True))
    units = c.shape[1]
    i, f, o = (torch.sigmoid(gates[:, k * units : (k + 1) * units]) for k in range(3))
    g = torch.tanh(gates[:, 3 * units :])
    c = f * c + i * g
    return o * torch.tanh(c), c


def reference_loss(model: DRAW, x: torch.Tensor, noise: torch.Tensor, params: dict) -> torch.Tensor:
    cfg = model.cfg
    A, B_, C = cfg.width, cfg.height, cfg.channels
    Bsz = x.shape[0]
    E, D, Z = cfg.enc_size, cfg.dec_size, cfg.z_size
    enc_w = params["encoder.weight"]
    enc_parts = enc_w.split([cfg.read_size, D, E], dim=1)
    dec_parts = params["decoder.weight"].split([Z, D], dim=1)
    head_w, head_b = params["head.weight"], params["head.bias"]
    P = cfg.write_size
    h_enc = c_enc = torch.zeros(Bsz, E, dtype=torch.float64)
    h_dec = c_dec = torch.zeros(Bsz, D, dtype=torch.float64)
    canvas = torch.zeros(Bsz, C, B_, A, dtype=torch.float64)
    kl = torch.zeros(Bsz, dtype=torch.float64)
    for t in range(cfg.T):
        x_hat = x - torch.sigmoid(canvas)  # eq. 3
        if cfg.read_attn:
            read_raw = h_dec @ head_w[-5:].t() + head_b[-5:]  # eq. 21 on h_dec_{t-1}
            gx, gy, sigma2, delta, gamma = ref_params(read_raw, cfg.read_n, A, B_)
            Fx = ref_filter(gx, sigma2, delta, cfg.read_n, A)
            Fy = ref_filter(gy, sigma2, delta, cfg.read_n, B_)
            glimpse_x = torch.einsum("bia,bcya,bjy->bcji", Fx, x, Fy)  # F_Y x F_X^T per channel
            glimpse_e = torch.einsum("bia,bcya,bjy->bcji", Fx, x_hat, Fy)
            r = gamma[:, None] * torch.cat([glimpse_x.flatten(1), glimpse_e.flatten(1)], dim=1)  # eq. 27
        else:
            r = torch.cat([x, x_hat], dim=1).flatten(1)  # eq. 17
        h_enc, c_enc = ref_lstm([r, h_dec, h_enc], enc_parts, params["encoder.bias"], c_enc)  # eq. 5
        q = h_enc @ params["posterior.weight"].t() + params["posterior.bias"]
        mu, logvar = q[:, :Z], q[:, Z:]  # eqs 1-2
        sigma = torch.exp(0.5 * logvar)
        z = mu + sigma * noise[t]
        kl = kl + 0.5 * (mu**2 + sigma**2 - torch.log(sigma**2) - 1).sum(1)  # eq. 11, per latent dimension
        h_dec, c_dec = ref_lstm([z, h_dec], dec_parts, params["decoder.bias"], c_dec)  # eq. 7
        head = h_dec @ head_w.t() + head_b
        if cfg.write_attn:
            gx, gy, sigma2, delta, gamma = ref_params(head[:, P : P + 5], cfg.write_n, A, B_)
            Fx = ref_filter(gx, sigma2, delta, cfg.write_n, A)
            Fy = ref_filter(gy, sigma2, delta, cfg.write_n, B_)
            w = head[:, :P].reshape(Bsz, C, cfg.write_n, cfg.write_n)  # eq. 28
            canvas = canvas + torch.einsum("bjy,bcji,bia->bcya", Fy, w, Fx) / gamma[:, None, None, None]  # eq. 29
        else:
            canvas = canvas + head[:, :P].reshape(Bsz, C, B_, A)  # eq. 18
    p = torch.sigmoid(canvas)
    recon = -(x * torch.log(p) + (1 - x) * torch.log(1 - p)).flatten(1).sum(1)  # eq. 9
    return (recon + kl).mean()  # eq. 12


PATHS = pytest.mark.parametrize("path", ["fused", "plain"])


def check_against_reference(cfg: DrawConfig, path: str) -> None:
    torch.manual_seed(0)
    model = DRAW(cfg, hot_path=path)
    x = torch.bernoulli(torch.rand(3, cfg.channels, cfg.height, cfg.width) * 0.6)
    noise = torch.randn(cfg.T, 3, cfg.z_size)
    loss = loss_terms(model.run(x, noise), x).total.mean()
    loss.backward()
    params = {k: v.detach().double().requires_grad_() for k, v in model.named_parameters()}
    ref = reference_loss(model, x.double(), noise.double(), params)
    ref.backward()
    assert math.isclose(loss.item(), ref.item(), rel_tol=1e-5), (loss.item(), ref.item())
    for name, p in model.named_parameters():
        ref_grad = params[name].grad
        scale = ref_grad.abs().max().item() + 1e-12
        assert torch.allclose(p.grad.double(), ref_grad, rtol=1e-4, atol=1e-5 * scale), name


@PATHS
def test_attention_model_matches_paper_equations_in_float64(path):
    check_against_reference(
        DrawConfig(height=9, width=7, T=3, read_n=2, write_n=3, enc_size=6, dec_size=5, z_size=4), path
    )


@PATHS
def test_colour_attention_model_matches_paper_equations_in_float64(path):
    check_against_reference(
        DrawConfig(height=6, width=8, channels=3, T=2, read_n=3, write_n=2, enc_size=5, dec_size=4, z_size=3), path
    )


@PATHS
def test_no_attention_model_matches_paper_equations_in_float64(path):
    check_against_reference(
        DrawConfig(height=5, width=6, T=3, enc_size=6, dec_size=5, z_size=4, read_attn=False, write_attn=False), path
    )


@PATHS
def test_batched_generation_matches_step_by_step_decoding(path):
    """generate() batches the heads and writes over steps; eqs 13-15 decoded one step at a time agree."""
    torch.manual_seed(1)
    model = DRAW(DrawConfig(T=5, enc_size=8, dec_size=7, z_size=3, write_n=3), hot_path=path).eval()
    z = torch.randn(5, 2, 3)
    trace = model.generate(2, z=z)
    params = {k: v.detach().double() for k, v in model.named_parameters()}
    cfg = model.cfg
    P = cfg.write_size
    h = c = torch.zeros(2, cfg.dec_size, dtype=torch.float64)
    canvas = torch.zeros(2, 1, 28, 28, dtype=torch.float64)
    for t in range(cfg.T):
        h, c = ref_lstm([z[t].double(), h], params["decoder.weight"].split([3, 7], dim=1), params["decoder.bias"], c)
        head = h @ params["head.weight"].t() + params["head.bias"]
        gx, gy, sigma2, delta, gamma = ref_params(head[:, P : P + 5], 3, 28, 28)
        Fx, Fy = ref_filter(gx, sigma2, delta, 3, 28), ref_filter(gy, sigma2, delta, 3, 28)
        w = head[:, :P].reshape(2, 1, 3, 3)
        canvas = canvas + torch.einsum("bjy,bcji,bia->bcya", Fy, w, Fx) / gamma[:, None, None, None]
        assert torch.allclose(trace.canvases[t].double(), torch.sigmoid(canvas), atol=1e-5)
        assert torch.allclose(trace.write_attn.gx[t].double(), gx, atol=1e-4)


@PATHS
def test_batched_generation_without_write_attention_matches_step_by_step_decoding(path):
    """Eq. 18: without write attention the head's first H·W outputs are added to the canvas as they are, every step."""
    torch.manual_seed(2)
    cfg = DrawConfig(height=5, width=6, T=3, enc_size=6, dec_size=5, z_size=4, read_attn=False, write_attn=False)
    model = DRAW(cfg, hot_path=path).eval()
    z = torch.randn(3, 2, 4)
    trace = model.generate(2, z=z)
    params = {k: v.detach().double() for k, v in model.named_parameters()}
    h = c = torch.zeros(2, cfg.dec_size, dtype=torch.float64)
    canvas = torch.zeros(2, 1, 5, 6, dtype=torch.float64)
    for t in range(cfg.T):
        h, c = ref_lstm([z[t].double(), h], params["decoder.weight"].split([4, 5], dim=1), params["decoder.bias"], c)
        head = h @ params["head.weight"].t() + params["head.bias"]
        canvas = canvas + head[:, : 5 * 6].reshape(2, 1, 5, 6)  # eq. 18, then eq. 8
        assert torch.allclose(trace.canvases[t].double(), torch.sigmoid(canvas), atol=1e-5), t
    assert trace.write_attn is None
