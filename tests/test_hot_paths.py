"""The two hot paths (draw_core.nn.hot_path): fused and plain give the same loss and gradients, and 'auto' picks
fused for CPU float work and plain under autocast, compilation or off the CPU."""

import dataclasses
import math
from collections import Counter

import pytest
import torch

from draw_core.config import DrawConfig
from draw_core.nn import attention, model, time_shared
from draw_core.nn.attention import AttentionParams, extract, filterbank, read, window, write
from draw_core.nn.elbo import loss_terms
from draw_core.nn.hot_path import choose_hot_path
from draw_core.nn.model import DRAW, lstm_step

SMALL = DrawConfig(height=9, width=7, T=3, read_n=2, write_n=3, enc_size=6, dec_size=5, z_size=4)
CONFIGS = {
    "attention": SMALL,
    "no-attention": dataclasses.replace(SMALL, read_attn=False, write_attn=False),
    "colour": dataclasses.replace(SMALL, channels=3, read_n=3, write_n=2),
    "colour-logistic": dataclasses.replace(SMALL, channels=3, read_n=3, write_n=2, likelihood="logistic"),
}
# The autograd Functions of the fused path; the plain path must call none of them.
FUSED = (
    attention._Window,
    attention._Filterbank,
    attention._Extract,
    attention._Spread,
    model._LSTMCell,
    time_shared._StepLinear,
    time_shared._SharedParameters,
)


@pytest.fixture
def fused_calls(monkeypatch) -> Counter:
    """How often each fused Function was applied during the test, by class name."""
    calls = Counter()
    for function in FUSED:

        def counting(*args, _function=function, _apply=function.apply):
            calls[_function.__name__] += 1
            return _apply(*args)

        monkeypatch.setattr(function, "apply", counting)
    return calls


def batch(cfg: DrawConfig, dtype: torch.dtype, B: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Binary images (B, C, H, W) and the reparameterisation noise (T, B, Z) of one pass."""
    g = torch.Generator().manual_seed(1)
    x = torch.bernoulli(torch.rand(B, cfg.channels, cfg.height, cfg.width, generator=g, dtype=dtype) * 0.6)
    return x, torch.randn(cfg.T, B, cfg.z_size, generator=g, dtype=dtype)


def loss_and_gradients(cfg: DrawConfig, path: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The ELBO (eq. 12) of one float64 pass on `path` and the gradient of every parameter."""
    torch.manual_seed(0)
    draw = DRAW(cfg, hot_path=path).double()
    x, noise = batch(cfg, torch.float64)
    loss = loss_terms(draw.run(x, noise), x).total.mean()
    loss.backward()
    return loss.detach(), {name: p.grad for name, p in draw.named_parameters()}


@pytest.mark.parametrize("name", CONFIGS)
def test_fused_and_plain_paths_give_the_same_loss_and_gradients(name, fused_calls):
    cfg = CONFIGS[name]
    fused_loss, fused_grads = loss_and_gradients(cfg, "fused")
    assert fused_calls["_LSTMCell"] == 2 * cfg.T and fused_calls["_StepLinear"] > 0
    calls_before = sum(fused_calls.values())
    plain_loss, plain_grads = loss_and_gradients(cfg, "plain")
    assert sum(fused_calls.values()) == calls_before, "the plain path called a fused Function"
    # float64: only the order of sums (and tanh computed as 2 sigmoid(2x) - 1) differs between the paths.
    torch.testing.assert_close(fused_loss, plain_loss, rtol=1e-12, atol=0)
    for param, grad in fused_grads.items():
        assert grad is not None and grad.abs().max() > 0, param
        torch.testing.assert_close(grad, plain_grads[param], rtol=1e-9, atol=1e-12 * grad.abs().max().item())


def test_each_operation_agrees_between_the_paths_including_off_image_windows():
    # Rows: inside the image, half off it, far off it (every filter row sums below EPS), clamped raw values.
    raw = torch.tensor(
        [
            [0.1, -0.2, 0.3, -0.5, 0.2],
            [0.9, -0.8, -1.0, 0.2, -0.4],
            [6.0, 6.0, -2.0, -3.0, 0.0],
            [-0.3, 12.0, 1.5, -11, 0],
        ],
        dtype=torch.float64,
    )
    g = torch.Generator().manual_seed(2)
    x, x_hat = torch.rand(2, 4, 2, 9, 7, generator=g, dtype=torch.float64)  # (B, C, H, W) each
    w = torch.randn(4, 2, 3, 3, generator=g, dtype=torch.float64)
    gates = torch.randn(4, 4 * 5, generator=g, dtype=torch.float64)  # (B, 4U)
    cell = torch.randn(4, 5, generator=g, dtype=torch.float64)  # (B, U)

    def outputs(path):
        leaves = [t.clone().requires_grad_(True) for t in (raw, x, x_hat, w, gates, cell)]
        r, xx, xh, ww, gg, cc = leaves
        params, Fx, Fy = window(r, 3, 9, 7, path=path)
        fx, fy = filterbank(params, 3, 9, 7, path=path)
        outs = [
            Fx,
            Fy,
            fx,
            fy,
            params.gamma,
            extract(xx, Fx, Fy, path=path),
            read(xx, xh, Fx, Fy, params.gamma, path=path),
            write(ww, Fx, Fy, params.gamma, path=path),
            *lstm_step(gg, cc, path=path),
        ]
        weights = torch.Generator().manual_seed(3)
        loss = sum((o * torch.randn(o.shape, generator=weights, dtype=o.dtype)).sum() for o in outs)
        return outs, torch.autograd.grad(loss, leaves)

    fused, plain = outputs("fused"), outputs("plain")
    assert torch.all(fused[0][0][2] == 0) and torch.all(plain[0][1][2] == 0), "the far-off window reads nothing"
    for a, b in zip(fused[0] + list(fused[1]), plain[0] + list(plain[1]), strict=True):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_auto_runs_the_fused_functions_on_cpu_float32(fused_calls):
    x, _ = batch(SMALL, torch.float32)
    assert choose_hot_path(x) == "fused"
    loss_terms(DRAW(SMALL)(x), x).total.mean().backward()
    for name in ("_Window", "_Extract", "_Spread", "_LSTMCell", "_StepLinear", "_SharedParameters"):
        assert fused_calls[name] > 0, name


@pytest.mark.parametrize("name", ["attention", "no-attention"])
def test_autocast_bfloat16_on_cpu_runs_the_plain_path_with_finite_gradients(name, fused_calls):
    cfg = CONFIGS[name]
    torch.manual_seed(0)
    draw = DRAW(cfg)
    x, _ = batch(cfg, torch.float32)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        assert choose_hot_path(x) == "plain"
        result = draw(x, generator=torch.Generator().manual_seed(0))
        loss = loss_terms(result, x).total.mean()
    loss.backward()
    assert result.mu.dtype == torch.bfloat16, "autocast did not run the linear layers in bfloat16"
    assert math.isfinite(loss.item())
    for param, p in draw.named_parameters():
        assert torch.isfinite(p.grad).all() and p.grad.abs().max() > 0, param
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        canvases = draw.generate(3, generator=torch.Generator().manual_seed(0)).canvases
    assert torch.isfinite(canvases).all()
    assert sum(fused_calls.values()) == 0, f"fused Functions ran under autocast: {dict(fused_calls)}"


def test_auto_picks_plain_off_the_cpu_and_while_compiling(monkeypatch):
    assert choose_hot_path(torch.empty(2, device="meta")) == "plain"
    cpu = torch.zeros(2)
    assert choose_hot_path(cpu, "plain") == "plain" and choose_hot_path(cpu, "fused") == "fused"
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert choose_hot_path(cpu) == "plain"


def test_an_unknown_hot_path_is_refused():
    with pytest.raises(ValueError, match="hot path must be one of"):
        DRAW(SMALL, hot_path="fast")
    with pytest.raises(ValueError, match="hot path must be one of"):
        choose_hot_path(torch.zeros(1), "gpu")


def test_generation_is_the_same_on_both_paths():
    torch.manual_seed(0)
    draw = DRAW(SMALL).eval()
    z = torch.randn(SMALL.T, 3, SMALL.z_size, generator=torch.Generator().manual_seed(4))
    traces = {}
    for path in ("fused", "plain"):
        draw.hot_path = path
        traces[path] = draw.generate(3, z=z)
    torch.testing.assert_close(traces["fused"].canvases, traces["plain"].canvases, rtol=1e-5, atol=1e-6)
    for field in ("gx", "gy", "delta", "sigma2", "gamma"):
        torch.testing.assert_close(
            getattr(traces["fused"].write_attn, field), getattr(traces["plain"].write_attn, field)
        )
    assert isinstance(traces["plain"].write_attn, AttentionParams)


@pytest.mark.slow
def test_torch_compile_traces_the_plain_path_in_one_graph(fused_calls):
    # Compilation sees 'auto' as plain: the whole forward and backward trace without a graph break (~15 s).
    torch.manual_seed(0)
    draw = DRAW(SMALL)
    x, noise = batch(SMALL, torch.float32)
    compiled = torch.compile(draw.run, backend="aot_eager", fullgraph=True)
    loss = loss_terms(compiled(x, noise), x).total.mean()
    loss.backward()
    compiled_grads = [p.grad.clone() for p in draw.parameters()]
    assert sum(fused_calls.values()) == 0
    draw.zero_grad()
    eager = loss_terms(draw.run(x, noise), x).total.mean()
    eager.backward()
    torch.testing.assert_close(loss, eager)
    for compiled_grad, p in zip(compiled_grads, draw.parameters(), strict=True):
        torch.testing.assert_close(compiled_grad, p.grad)


@pytest.mark.parametrize("per_call", [1, 2, 3])
def test_compiled_glimpses_train_like_the_eager_loop_and_evaluation_stays_eager(fused_calls, per_call):
    # DRAW.compile_step (what --compile does to a generator): the same loss and gradients as the eager loop, the
    # compiled glimpses called once per `per_call` steps of a pass with gradients (a shorter last call when that
    # does not divide T), and a pass without gradients left eager.
    torch.manual_seed(0)
    draw = DRAW(SMALL, hot_path="plain")
    x, noise = batch(SMALL, torch.float32)
    eager = loss_terms(draw.run(x, noise), x).total.mean()
    eager.backward()
    eager_grads = [p.grad.clone() for p in draw.parameters()]
    draw.zero_grad()
    draw.compile_step(backend="aot_eager", glimpses_per_call=per_call)
    compiled_glimpses, calls = draw.compiled_glimpses, []

    def counted(*args, **kwargs):
        calls.append(len(args[-1]))  # the noise rows: the glimpses of this call
        return compiled_glimpses(*args, **kwargs)

    draw.compiled_glimpses = counted
    draw.hot_path = "auto"  # on the CPU 'auto' runs fused eagerly; the compiled glimpse must still be plain
    compiled = loss_terms(draw.run(x, noise), x).total.mean()
    compiled.backward()
    whole, rest = divmod(SMALL.T, per_call)
    assert calls == [per_call] * whole + [rest] * (rest > 0) and sum(fused_calls.values()) == 0
    torch.testing.assert_close(compiled, eager)
    for eager_grad, p in zip(eager_grads, draw.parameters(), strict=True):
        torch.testing.assert_close(p.grad, eager_grad)
    with torch.no_grad():
        evaluated = loss_terms(draw.run(x, noise), x).total.mean()
    assert len(calls) == whole + (rest > 0) and sum(fused_calls.values()) > 0  # eager, on the path 'auto' picks
    torch.testing.assert_close(evaluated, eager.detach())


def test_glimpses_per_call_must_fit_in_t():
    draw = DRAW(SMALL, hot_path="plain")
    for per_call in (0, SMALL.T + 1):
        with pytest.raises(ValueError, match=rf"glimpses_per_call={per_call} must be between 1 and T={SMALL.T}"):
            draw.compile_step(glimpses_per_call=per_call)
