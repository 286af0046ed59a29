"""draw_core.present.attention_at_work: the glimpses of both classifiers and the two location gradients (sec. 4.1).

The REINFORCE estimator is checked on a toy objective whose gradient is known in closed form, DRAW's exact gradient
against finite differences, and the pictures' geometry on hand-computable cases.
"""

import math
from pathlib import Path

import plotly.graph_objects as go
import pytest
import torch
import torch.nn.functional as F

from draw_core.io.catalog import CheckpointEntry
from draw_core.nn.classifier import ClassifierConfig, DrawClassifier
from draw_core.nn.ram import RAM, RamConfig
from draw_core.present import attention_at_work as work
from draw_core.present import viz


def tiny_draw(*, glimpses=3, size=24, width=None, seed=0, dtype=torch.float32) -> DrawClassifier:
    """A small DRAW classifier on size×size images, or size×width (height × width) when width is given."""
    torch.manual_seed(seed)
    cfg = ClassifierConfig(height=size, width=width or size, glimpses=glimpses, read_n=3, hidden=8)
    model = DrawClassifier(cfg)
    with torch.no_grad():  # a window head that depends on h, so later windows move with earlier glimpses
        model.window_head.weight.normal_(0, 0.3)
    return model.to(dtype).eval()


def tiny_ram(*, glimpses=3, size=24, width=None, seed=0) -> RAM:
    torch.manual_seed(seed)
    cfg = RamConfig(height=size, width=width or size, glimpses=glimpses, patch=4, scales=2, glimpse_hidden=8,
                    location_hidden=8, glimpse_size=8, hidden=8)  # fmt: skip
    return RAM(cfg).eval()


def test_the_mean_of_reinforce_estimates_approaches_the_exact_gradient_of_a_smooth_toy_objective():
    # f(l) = -|l - a|^2 with l ~ N(mu, s^2 I): E f = -|mu - a|^2 - 2 s^2, so d E f / d mu = -2 (mu - a) exactly.
    mu, a, s = torch.tensor([0.3, -0.2], dtype=torch.float64), torch.tensor([-0.1, 0.4], dtype=torch.float64), 0.5
    exact = -2 * (mu - a)  # (0.8, -1.2)

    def mean_error(n: int, repeats: int = 20) -> float:
        generator = torch.Generator().manual_seed(n)
        errors = []
        for _ in range(repeats):
            samples = mu + s * torch.randn(n, 2, generator=generator, dtype=torch.float64)
            rewards = -(samples - a).square().sum(-1)
            estimates = work.score_function_estimates(rewards, samples, mu, s)  # (n, 2)
            errors.append((estimates.mean(0) - exact).norm())
        return float(torch.stack(errors).mean())

    small, large = mean_error(100), mean_error(10_000)
    # The error of a mean of n independent estimates shrinks like 1 / sqrt(n): 100 times the samples, a tenth.
    assert large < small / 5
    assert large < 0.1 * float(exact.norm())


def test_a_leave_one_out_baseline_keeps_the_mean_and_narrows_the_spread():
    mu, s = torch.tensor([0.0, 0.0], dtype=torch.float64), 0.2
    samples = mu + s * torch.randn(200_000, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    rewards = 5.0 + samples[:, 0]  # E f = 5 + mu_x: gradient (1, 0); the constant 5 only adds noise
    plain = work.score_function_estimates(rewards, samples, mu, s)
    baselined = work.score_function_estimates(rewards, samples, mu, s, work.leave_one_out(rewards))
    for estimates in (plain, baselined):
        standard_error = estimates.std(0) / math.sqrt(len(estimates))
        assert (estimates.mean(0) - torch.tensor([1.0, 0.0], dtype=torch.float64)).abs().le(4 * standard_error).all()
    assert (baselined.std(0) < plain.std(0) / 5).all()


def test_leave_one_out_is_the_mean_of_the_others():
    assert work.leave_one_out(torch.tensor([1.0, 2.0, 6.0])).tolist() == [4.0, 3.5, 1.5]
    with pytest.raises(ValueError, match="at least 2"):
        work.leave_one_out(torch.tensor([1.0]))


def test_draws_log_prob_without_shifts_is_the_models_own_and_the_shared_model_is_left_alone():
    model = tiny_draw()
    image = torch.rand(1, 24, 24, generator=torch.Generator().manual_seed(2))
    expected = F.log_softmax(model.classify(image[None]).logits, -1)[0, 4].item()
    assert work.draw_log_prob(model, image, 4, torch.zeros(3, 2)).item() == pytest.approx(expected, abs=1e-6)
    work.draw_centre_gradient(model, image, 4)
    assert not model.window_head._forward_hooks
    assert all(p.requires_grad and p.grad is None for p in model.parameters())


def test_a_shift_moves_that_steps_window_by_that_many_pixels():
    model = tiny_draw(glimpses=1)
    image = torch.rand(1, 24, 24, generator=torch.Generator().manual_seed(3))
    # With one glimpse the window comes from h_0 = 0, i.e. from the head's bias alone (eq. 21): moving g~_X there by
    # 2 / (A + 1) moves g_X one pixel (eq. 22). The same move as a shift of (1, 0) pixels must give the same log p.
    moved = tiny_draw(glimpses=1)
    with torch.no_grad():
        moved.window_head.bias[0] += 2 / (24 + 1)
    expected = F.log_softmax(moved.classify(image[None]).logits, -1)[0, 7].item()
    assert work.draw_log_prob(model, image, 7, torch.tensor([[1.0, 0.0]])).item() == pytest.approx(expected, abs=1e-5)
    gx = moved.classify(image[None]).read_attn.gx[0, 0] - model.classify(image[None]).read_attn.gx[0, 0]
    assert gx.item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(("axis", "pixels_per_raw_unit"), [(0, (30 + 1) / 2), (1, (20 + 1) / 2)])
def test_a_shift_on_a_wide_image_uses_each_axis_own_size(axis, pixels_per_raw_unit):
    """On a 20×30 image (height × width) eqs 22-23 scale g~_X by (A + 1)/2 = 15.5 and g~_Y by (B + 1)/2 = 10.5:
    a one-pixel shift along each axis is the bias move of that axis, which a swapped width and height would miss."""
    model, moved = tiny_draw(glimpses=1, size=20, width=30), tiny_draw(glimpses=1, size=20, width=30)
    image = torch.rand(1, 20, 30, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        moved.window_head.bias[axis] += 1 / pixels_per_raw_unit
    shift = torch.zeros(1, 2)
    shift[0, axis] = 1.0
    expected = F.log_softmax(moved.classify(image[None]).logits, -1)[0, 7].item()
    assert work.draw_log_prob(model, image, 7, shift).item() == pytest.approx(expected, abs=1e-5)
    field = "gx" if axis == 0 else "gy"
    step = getattr(moved.classify(image[None]).read_attn, field) - getattr(model.classify(image[None]).read_attn, field)
    assert step[0, 0].item() == pytest.approx(1.0, abs=1e-5)


def test_drawing_exact_gradient_equals_a_finite_difference_at_every_step():
    model = tiny_draw(dtype=torch.float64)
    image = torch.rand(1, 24, 24, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    gradient = work.draw_centre_gradient(model, image, 3)  # (T, 2)
    assert gradient.shape == (3, 2) and gradient.abs().sum() > 0
    eps = 1e-5
    for t in range(3):
        for axis in range(2):
            shift = torch.zeros(3, 2, dtype=torch.float64)
            shift[t, axis] = eps
            difference = work.draw_log_prob(model, image, 3, shift) - work.draw_log_prob(model, image, 3, -shift)
            assert float(difference) / (2 * eps) == pytest.approx(float(gradient[t, axis]), rel=1e-5, abs=1e-9)


def test_ram_estimates_are_the_score_function_in_nats_per_pixel():
    model = tiny_ram()
    image = torch.rand(1, 24, 24, generator=torch.Generator().manual_seed(5))
    raw, baselined = work.ram_location_gradients(model, image, 2, samples=64, seed=9)
    assert raw.shape == baselined.shape == (3, 64, 2)
    # The same rollouts by hand: reward log p(2 | x, l), score (l_t - mu_t) / s^2 per unit of [-1, 1], and one unit is
    # half the image (12 pixels here).
    with torch.no_grad():
        result = model.classify(image[None].expand(64, -1, -1, -1), generator=torch.Generator().manual_seed(9))
    reward = F.log_softmax(result.logits, -1)[:, 2]
    by_hand = reward[:, None] * (result.locations - result.location_means) / 0.15**2 / 12
    assert raw == pytest.approx(by_hand, abs=1e-5)


def test_ram_estimates_on_a_wide_image_divide_by_each_axis_own_half_size():
    """On a 20×30 image one unit of RAM's [-1, 1] location is 15 pixels across and 10 down."""
    model = tiny_ram(size=20, width=30)
    image = torch.rand(1, 20, 30, generator=torch.Generator().manual_seed(5))
    raw, _ = work.ram_location_gradients(model, image, 2, samples=16, seed=9)
    with torch.no_grad():
        result = model.classify(image[None].expand(16, -1, -1, -1), generator=torch.Generator().manual_seed(9))
    reward = F.log_softmax(result.logits, -1)[:, 2]
    per_unit = reward[:, None] * (result.locations - result.location_means) / 0.15**2  # (T, 16, 2)
    assert raw == pytest.approx(per_unit / torch.tensor([15.0, 10.0]), abs=1e-5)


def test_a_reward_that_ignores_the_glimpses_has_a_zero_gradient_and_the_baseline_shows_it_exactly():
    model = tiny_ram()
    with torch.no_grad():
        model.output.weight.zero_()  # class scores = the bias whatever was seen: log p does not depend on l
    image = torch.rand(1, 24, 24, generator=torch.Generator().manual_seed(6))
    raw, baselined = work.ram_location_gradients(model, image, 0, samples=2000, seed=0)
    assert baselined.abs().max() < 1e-6
    standard_error = raw.std(1) / math.sqrt(2000)  # (T, 2)
    assert (raw.mean(1).abs() <= 4 * standard_error).all()  # the raw estimates only average to zero
    assert (raw.std(1) > 0).all()


def test_ram_patches_share_a_centre_and_double_in_width():
    model = RAM(RamConfig())  # 100 x 100, 12 x 12 patches, 4 scales: widest 96 pixels
    edges = work.patch_edges(model, torch.tensor([0.0, 0.0]))  # (4, 4)
    # Centre (50, 50) pixels: the widest patch starts at round(50 - 48) = 2 and covers pixels 2..97; the smallest is
    # inset by (96 - 12) / 2 = 42 and covers 44..55. Edges are half a pixel outside the pixels.
    assert edges[3].tolist() == [1.5, 1.5, 97.5, 97.5]
    assert edges[0].tolist() == [43.5, 43.5, 55.5, 55.5]
    assert (edges[:, 2] - edges[:, 0]).tolist() == [12, 24, 48, 96]


def test_the_glimpse_views_are_what_the_models_computed():
    draw, ram = tiny_draw(size=100), tiny_ram(size=100)
    image = torch.rand(1, 100, 100, generator=torch.Generator().manual_seed(7))
    seen = work.draw_glimpses(draw, image)
    result = draw.classify(image[None])
    assert seen.probabilities.sum(-1).tolist() == pytest.approx([1.0] * 3)
    assert seen.probabilities == pytest.approx(result.step_logits[:, 0].softmax(-1).detach(), abs=1e-6)
    assert seen.windows.gx.tolist() == pytest.approx(result.read_attn.gx[:, 0].tolist())
    assert seen.glimpses.shape == (3, 1, 3, 3)
    looked = work.ram_glimpses(ram, image)
    mean = ram.classify(image[None], sample=False)
    assert looked.locations == pytest.approx(mean.locations[:, 0], abs=1e-6)
    assert looked.retina.shape == (3, 2, 1, 4, 4)  # (T, S, C, P, P)
    assert looked.retina[:, 1, 0] == pytest.approx(mean.glimpses[:, 0, 1], abs=1e-6)  # scale-major: scale 2 second
    assert looked.patches == pytest.approx(work.patch_edges(ram, mean.locations[:, 0]))


def test_gradient_spread_gathers_both_models():
    draw, ram = tiny_draw(size=100), tiny_ram(size=100)
    image = torch.rand(1, 100, 100, generator=torch.Generator().manual_seed(8))
    spread = work.gradient_spread(draw, ram, image, 5, samples=32)
    assert spread.label == 5 and spread.reinforce.shape == (3, 32, 2) and spread.exact.shape == (3, 2)
    assert spread.exact == pytest.approx(work.draw_centre_gradient(draw, image, 5))


def test_spread_summary_on_hand_numbers():
    summary = work.spread_summary(torch.tensor([[1.0, -1.0], [3.0, 1.0]]))
    assert summary.mean == pytest.approx((2.0, 0.0))
    assert summary.std == pytest.approx((math.sqrt(2), math.sqrt(2)))
    assert summary.samples_for_sign[0] == pytest.approx((2 * math.sqrt(2) / 2) ** 2)
    assert summary.samples_for_sign[1] > 1e6  # a zero mean needs endless samples


def entry(name: str, source: str, model_kind: str | None) -> CheckpointEntry:
    return CheckpointEntry(name, Path(f"/nowhere/{source}/{name}.safetensors"), source, model_kind=model_kind)


def test_find_classifier_by_name_and_kind_shipped_first():
    entries = [
        entry("mnist", "shipped", "draw"),
        entry("mnist-cluttered-draw", "shipped", "draw-classifier"),
        entry("mnist-cluttered-ram", "run", "draw"),  # the right name holding the wrong kind is passed over
        entry("mnist-cluttered-draw", "run", "draw-classifier"),
    ]
    assert work.find_classifier(entries, "draw-classifier") is entries[1]
    assert work.find_classifier(entries, "ram") is None
    assert "--preset mnist-cluttered-ram" in work.how_to_train("ram")


def test_a_shipped_cards_test_count_wins_over_the_stale_limit_of_its_files_last_evaluation():
    # app_common merges the file's meta (its run's last evaluation: 2,000 images) under the card (the export: 10,000)
    merged = {"test_error": 0.0381, "test_limit": 2000, "test_n": 10000, "step": 21223, "steps": 21223,
              "init_from": {"checkpoint": "earlier.safetensors"}}  # fmt: skip
    table = work.error_table({"draw-classifier": ("mnist-cluttered-draw (shipped)", 8, merged)})
    row = next(row for row in zip(*table.values(), strict=True) if row[4] == "mnist-cluttered-draw (shipped)")
    assert row[3] == "3.81%" and row[5] == "all 10,000 test images, after 21,223 training steps (its last run's)"


def test_error_table_puts_the_checkpoints_beside_table_1():
    table = work.error_table(
        {
            "draw-classifier": ("mnist-cluttered-draw (shipped)", 8, {"test_error": 0.0412, "test_limit": 10000}),
            "ram": ("mnist-cluttered-ram (run)", 3, {"test_error": None, "step": 500}),
        }
    )
    rows = list(zip(*table.values(), strict=True))
    assert [row[:3] for row in rows[:4]] == [
        ("RAM (REINFORCE)", "4", "9.41%"),
        ("RAM (REINFORCE)", "8", "8.11%"),
        ("DRAW (differentiable attention)", "4", "4.18%"),
        ("DRAW (differentiable attention)", "8", "3.36%"),
    ]
    assert rows[3][3:] == ("4.12%", "mnist-cluttered-draw (shipped)", "all 10,000 test images")
    assert rows[1][3] == "—"  # the RAM checkpoint has 3 glimpses: it gets its own row
    assert rows[4] == ("RAM (REINFORCE)", "3", "—", "not measured yet", "mnist-cluttered-ram (run)",
                       "after 500 training steps")  # fmt: skip


def test_fresh_images_are_seeded_and_a_placed_digit_is_in_the_image_untouched():
    image, label = work.fresh_image(3)
    again, same = work.fresh_image(3)
    assert image.shape == (1, 100, 100) and torch.equal(image, again) and label == same
    assert not torch.equal(image, work.fresh_image(4)[0])
    digit = torch.zeros(1, 28, 28)
    digit[0, 4:24, 12:16] = 1.0  # a "1"
    placed = work.digit_in_clutter(digit, 0)
    assert placed.shape == (1, 100, 100)
    windows = placed[0].unfold(0, 28, 1).unfold(1, 28, 1)  # (73, 73, 28, 28)
    # The clutter is pasted by pixelwise maximum, so somewhere the whole stroke reads 1.
    assert (windows[..., 4:24, 12:16] == 1).flatten(-2).all(-1).any()


def validated(fig: go.Figure) -> dict:
    return go.Figure(fig.to_dict()).to_dict()  # Plotly's validation raises on a bad spec


def test_retina_squares_probability_bars_and_gradient_clouds_are_valid_figures():
    fig = viz.add_retina(viz.image_figure(torch.zeros(100, 100)), torch.tensor([[43.5, 43.5, 55.5, 55.5],
                                                                               [37.5, 37.5, 61.5, 61.5]]))  # fmt: skip
    shapes = {shape["name"]: shape for shape in validated(fig)["layout"]["shapes"]}
    assert (shapes["retina-scale-2"]["x0"], shapes["retina-scale-2"]["y1"]) == (37.5, 61.5)
    bars = validated(viz.class_probabilities_figure(torch.tensor([0.1, 0.6, 0.3]), label=2))["data"][0]
    assert bars["marker"]["color"] == [viz.BAR_COLOURS["other"], viz.BAR_COLOURS["answer"], viz.BAR_COLOURS["label"]]
    cloud = validated(viz.gradient_cloud_figure(torch.tensor([[1.0, 2.0], [3.0, -2.0]]), extent=4.0))
    names = [trace["name"] for trace in cloud["data"]]
    assert names == ["estimates", "mean"]
    assert list(cloud["data"][1]["x"]) == [0.0, 2.0] and list(cloud["data"][1]["y"]) == [0.0, 0.0]
    assert list(cloud["layout"]["yaxis"]["range"]) == pytest.approx([4.4, -4.4])  # rows point down, like the image
    exact = validated(viz.gradient_cloud_figure(torch.tensor([[0.5, -0.25]])))
    assert [trace["name"] for trace in exact["data"]] == ["exact"]
    with pytest.raises(ValueError, match="shape"):
        viz.gradient_cloud_figure(torch.zeros(3))


def test_a_scaled_glimpse_timeline_draws_every_panel_that_much_smaller():
    """Presentation mode draws the timeline at 0.74 of its size: each panel's extent scales, so the whole figure
    does too (its gaps and titles stay), and a scale outside the sensible range is refused."""
    draw, ram = tiny_draw(size=100), tiny_ram(size=100)
    image = torch.rand(1, 100, 100, generator=torch.Generator().manual_seed(9))
    traces = {"DRAW": work.draw_glimpses(draw, image), "RAM": work.ram_glimpses(ram, image)}
    full = work.glimpse_row(image, traces["RAM"], T=3, name="RAM")
    half = work.glimpse_row(image, traces["RAM"], T=3, name="RAM", scale=0.5)
    assert [item.extent[1] for item in half] == [pytest.approx(item.extent[1] / 2, abs=1) for item in full]
    for index in (0, 2):  # the image and the bars; what was seen keeps its colour bar's fixed width beside it
        assert half[index].extent[0] == pytest.approx(full[index].extent[0] / 2, abs=1)
    assert full[0].extent[0] == pytest.approx(work.IMAGE_PX, abs=1)  # the usual size at scale 1
    sizes = [work.glimpse_timeline(image, traces, scale=s).layout for s in (1.0, 0.5)]
    assert sizes[1].width < 0.6 * sizes[0].width and sizes[1].height < 0.65 * sizes[0].height
    with pytest.raises(ValueError, match="scale must be between"):
        work.glimpse_timeline(image, traces, scale=0.0)
