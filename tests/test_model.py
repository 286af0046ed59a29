"""draw_core.model: shapes of every trace, seeded and given latents, and learning on real digits."""

import dataclasses
import functools

import pytest
import torch

from draw_core.config import DrawConfig
from draw_core.data import binarize, load_sample
from draw_core.nn.attention import extract, filterbank
from draw_core.nn.elbo import loss_terms
from draw_core.nn.model import DRAW, lstm_step
from draw_core.nn.time_shared import TimeSharedLinear

TINY = DrawConfig(T=4, enc_size=32, dec_size=32, z_size=8)
CONFIGS = {
    "attention": TINY,
    "no-attention": dataclasses.replace(TINY, read_attn=False, write_attn=False),
    "read-only-attention": dataclasses.replace(TINY, write_attn=False),
    "write-only-attention": dataclasses.replace(TINY, read_attn=False),
    "colour": dataclasses.replace(TINY, channels=3, height=12, width=10, read_n=3, write_n=4),
    # The canvas holds mean and log-scale channels; the error image of eq. 3 must come from the means alone.
    "colour-logistic": dataclasses.replace(
        TINY, channels=3, height=12, width=10, read_n=3, write_n=4, likelihood="logistic-coupled"
    ),
}


def model_for(cfg: DrawConfig, seed: int = 0) -> DRAW:
    torch.manual_seed(seed)
    return DRAW(cfg).eval()


def images_for(cfg: DrawConfig, B: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(B, cfg.channels, cfg.height, cfg.width, generator=g) > 0.5).float()


def assert_attention_shape(params, T, B):
    for name in ("gx", "gy", "delta", "sigma2", "gamma"):
        assert getattr(params, name).shape == (T, B), name


@pytest.mark.parametrize("name", CONFIGS)
def test_forward_shapes(name):
    cfg = CONFIGS[name]
    T, B, C, H, W, Z = cfg.T, 3, cfg.channels, cfg.height, cfg.width, cfg.z_size
    result = model_for(cfg)(images_for(cfg, B))
    assert result.canvas_logits.shape == (T, B, cfg.canvas_channels, H, W)
    assert result.mu.shape == result.logvar.shape == result.z.shape == (T, B, Z)
    if cfg.read_attn:
        assert_attention_shape(result.read_attn, T, B)
        assert result.glimpses.shape == (T, B, 2 * C, cfg.read_n, cfg.read_n)
    else:
        assert result.read_attn is None
        assert result.glimpses.shape == (T, B, 2 * C, H, W)
    if cfg.write_attn:
        assert_attention_shape(result.write_attn, T, B)
    else:
        assert result.write_attn is None


@pytest.mark.parametrize("name", CONFIGS)
def test_generate_shapes(name):
    cfg = CONFIGS[name]
    trace = model_for(cfg).generate(5, generator=torch.Generator().manual_seed(0))
    assert trace.canvases.shape == (cfg.T, 5, cfg.channels, cfg.height, cfg.width)
    assert trace.canvases.min() >= 0 and trace.canvases.max() <= 1
    assert trace.z.shape == (cfg.T, 5, cfg.z_size)
    if cfg.write_attn:
        assert_attention_shape(trace.write_attn, cfg.T, 5)
    else:
        assert trace.write_attn is None


@pytest.mark.parametrize("name", CONFIGS)
def test_reconstruct_shapes_and_error_images(name):
    cfg = CONFIGS[name]
    T, B, C, H, W, Z = cfg.T, 2, cfg.channels, cfg.height, cfg.width, cfg.z_size
    x = images_for(cfg, B)
    trace = model_for(cfg).reconstruct(x, generator=torch.Generator().manual_seed(0))
    assert trace.canvases.shape == trace.errors.shape == (T, B, C, H, W)
    assert trace.mu.shape == trace.std.shape == trace.z.shape == (T, B, Z)
    assert (trace.std > 0).all()
    # eq. 3: x_hat_t = x - sigma(c_{t-1}), with c_0 = 0.
    torch.testing.assert_close(trace.errors[0], x - 0.5)
    torch.testing.assert_close(trace.errors[1:], x.unsqueeze(0) - trace.canvases[:-1])
    # What the encoder read is x and these error images: through the read filters (eq. 27) or as they are (eq. 17).
    if cfg.read_attn:
        assert_attention_shape(trace.read_attn, T, B)
        assert trace.glimpses.shape == (T, B, 2 * C, cfg.read_n, cfg.read_n)
        for t in range(T):
            p = trace.read_attn.step(t)
            Fx, Fy = filterbank(p, cfg.read_n, H, W)
            gamma = p.gamma[:, None, None, None]
            torch.testing.assert_close(trace.glimpses[t, :, :C], gamma * extract(x, Fx, Fy))
            torch.testing.assert_close(trace.glimpses[t, :, C:], gamma * extract(trace.errors[t], Fx, Fy))
    else:
        torch.testing.assert_close(trace.glimpses[:, :, :C], x.unsqueeze(0).expand(T, -1, -1, -1, -1))
        torch.testing.assert_close(trace.glimpses[:, :, C:], trace.errors)


def test_forward_refuses_wrong_image_shape():
    with pytest.raises(ValueError, match="x must have shape"):
        model_for(TINY)(torch.zeros(2, 1, 20, 28))


def test_model_refuses_a_non_config():
    with pytest.raises(TypeError, match="DrawConfig"):
        DRAW({"T": 4})


def test_seeded_generation_is_reproducible_and_seeds_differ():
    model = model_for(TINY)
    a = model.generate(4, generator=torch.Generator().manual_seed(11))
    b = model.generate(4, generator=torch.Generator().manual_seed(11))
    c = model.generate(4, generator=torch.Generator().manual_seed(12))
    assert torch.equal(a.canvases, b.canvases) and torch.equal(a.z, b.z)
    assert not torch.allclose(a.canvases[-1], c.canvases[-1])
    assert not torch.allclose(a.z, c.z)


def test_a_given_z_is_used_as_is():
    model = model_for(TINY)
    g = torch.Generator().manual_seed(5)
    z1 = torch.randn(TINY.T, 3, TINY.z_size, generator=g)
    z2 = torch.randn(TINY.T, 3, TINY.z_size, generator=g)
    t1 = model.generate(3, z=z1, generator=torch.Generator().manual_seed(0))
    t1_again = model.generate(3, z=z1.clone(), generator=torch.Generator().manual_seed(99))  # generator ignored
    t2 = model.generate(3, z=z2)
    assert torch.equal(t1.z, z1) and torch.equal(t2.z, z2)
    assert torch.equal(t1.canvases, t1_again.canvases)
    assert not torch.allclose(t1.canvases[-1], t2.canvases[-1])
    # Changing only the last step's latent leaves the earlier canvases alone and changes the last one.
    z3 = z1.clone()
    z3[-1, 0] += 3.0
    t3 = model.generate(3, z=z3)
    assert torch.equal(t3.canvases[:-1], t1.canvases[:-1])
    assert not torch.allclose(t3.canvases[-1, 0], t1.canvases[-1, 0])
    torch.testing.assert_close(t3.canvases[-1, 1:], t1.canvases[-1, 1:])
    with pytest.raises(ValueError, match="z must have shape"):
        model.generate(3, z=torch.zeros(TINY.T, 2, TINY.z_size))


@pytest.fixture(scope="module")
def digits():
    """32 real MNIST digits, binarised once."""
    images, _ = load_sample()
    return binarize(images[:32], torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", ["attention", "no-attention"])
def test_overfits_a_fixed_batch_of_real_digits(name, digits):
    model = model_for(CONFIGS[name]).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(60):
        loss = loss_terms(model(digits, generator=g), digits).total.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    start, end = losses[0], sum(losses[-5:]) / 5
    assert end < 0.6 * start, f"loss went from {start:.1f} to {end:.1f} nats"


def test_lstm_cell_backward_matches_finite_differences():
    # The fused lstm_step's backward is written out by hand (one autograd node): gradcheck in float64 against
    # central differences.
    g = torch.Generator().manual_seed(2)
    gates = torch.randn(3, 4 * 5, generator=g, dtype=torch.float64, requires_grad=True)
    cell = torch.randn(3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(functools.partial(lstm_step, path="fused"), (gates, cell))


@pytest.mark.parametrize("path", ["fused", "plain"])
def test_lstm_cell_is_the_textbook_lstm(path):
    # h = o tanh(f c + i g) with i, f, o = sigmoid and g = tanh of the four gate blocks, in that order.
    g = torch.Generator().manual_seed(3)
    gates, cell = torch.randn(4, 12, generator=g), torch.randn(4, 3, generator=g)
    i, f, o = (torch.sigmoid(block) for block in gates[:, :9].chunk(3, dim=1))
    expected_cell = f * cell + i * torch.tanh(gates[:, 9:])
    hidden, new_cell = lstm_step(gates, cell, path=path)
    torch.testing.assert_close(new_cell, expected_cell)
    torch.testing.assert_close(hidden, o * torch.tanh(expected_cell))


def test_time_shared_linear_gives_the_plain_layers_gradients():
    # A layer applied at 5 steps of a recurrence: the in-place accumulated weight gradient equals autograd's.
    g = torch.Generator().manual_seed(4)
    layer = torch.nn.Linear(3, 3).double()
    x0 = torch.randn(2, 3, generator=g, dtype=torch.float64, requires_grad=True)

    def unrolled(apply):
        h = x0
        for _ in range(5):
            h = torch.tanh(apply(h))
        return h.square().sum()

    plain = torch.autograd.grad(unrolled(layer), [x0, layer.weight, layer.bias])
    shared = TimeSharedLinear(layer)
    ours = torch.autograd.grad(unrolled(shared), [x0, layer.weight, layer.bias])
    for a, b in zip(plain, ours, strict=True):
        torch.testing.assert_close(a, b)
    with torch.no_grad():
        assert TimeSharedLinear(layer).total is None  # outside autograd it is the plain layer


def test_time_shared_linear_twice_through_a_retained_graph_adds_up_like_autograd():
    layer = torch.nn.Linear(3, 3).double()
    x = torch.randn(2, 3, dtype=torch.float64)
    shared = TimeSharedLinear(layer)
    loss = shared(torch.tanh(shared(x))).square().sum()
    loss.backward(retain_graph=True)
    loss.backward()
    ours = layer.weight.grad.clone()
    layer.weight.grad = None
    plain = layer(torch.tanh(layer(x))).square().sum()
    plain.backward(retain_graph=True)
    plain.backward()
    torch.testing.assert_close(ours, layer.weight.grad)
