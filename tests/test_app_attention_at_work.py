"""AppTest of the Attention at work page: both classifiers found by name, glimpses step by step, Table 1, the two
location gradients, image sources (sample, seed, drawing, upload) and what happens when a model is missing."""

import io

import numpy as np
import pytest
import torch
from app_support import assert_no_exception, figure, figures, open_page, use_folders
from PIL import Image
from timeline_support import drawn_window, follower, picture, timeline

from draw_core.io.checkpoint import load_checkpoint, save_checkpoint
from draw_core.nn.classifier import ClassifierConfig, DrawClassifier
from draw_core.nn.ram import RAM, RamConfig
from draw_core.present import attention_at_work as work
from draw_core.present import views, viz

PAGE = "attention_at_work.py"
TINY_DRAW = ClassifierConfig(glimpses=3, read_n=4, hidden=16)
TINY_RAM = RamConfig(glimpses=3, patch=6, scales=2, glimpse_hidden=8, location_hidden=8, glimpse_size=16, hidden=16)


def classifier(folder, kind: str, *, seed: int = 0, test_error: float | None = 0.25):
    """A freshly initialised classifier of `kind` saved under the name the page looks for."""
    torch.manual_seed(seed)
    model = DrawClassifier(TINY_DRAW) if kind == "draw-classifier" else RAM(TINY_RAM)
    meta = {"step": 40, "dataset": "mnist-cluttered", "test_error": test_error, "test_limit": 200}
    return save_checkpoint(model, folder / f"{work.CHECKPOINT_NAMES[kind]}.safetensors", meta=meta)


@pytest.fixture
def runs(monkeypatch, tmp_path):
    """A runs folder with a DRAW generator ('tiny', what the sidebar picks) and both classifiers."""
    folder = use_folders(monkeypatch, tmp_path)
    for kind in work.CHECKPOINT_NAMES:
        classifier(folder, kind)
    return folder


def models(folder):
    return (
        load_checkpoint(folder / "mnist-cluttered-draw.safetensors").model,
        load_checkpoint(folder / "mnist-cluttered-ram.safetensors").model,
    )


def sample(index: int = 0) -> tuple[torch.Tensor, int]:
    images, labels = work.sample_images()
    return images[index], int(labels[index])


DRAW_WINDOW = "DRAW: read window windows"  # the timeline's layout image of DRAW's read window
RAM_RETINA = "RAM: retina windows"  # ... of RAM's retina squares


def model_window(image: torch.Tensor, model: DrawClassifier, t: int) -> tuple[float, ...]:
    """(x0, y0, x1, y1) of the read window of glimpse t (0-based) of the model's own pass over `image`: the first
    and last grid centres (eqs 19-20)."""
    windows = model.classify(image[None]).read_attn.map(lambda v: v[t, 0].detach())
    g = views.window_at(windows, model.cfg.read_n).geometry
    return tuple(float(v) for v in (g.x0, g.y0, g.x1, g.y1))


def bar_heights(spec: dict, title: str, step: int) -> np.ndarray:
    """(K,) the heights of the class bars of the chart `title` at `step` (1-based)."""
    images = spec["layout"]["images"]
    update = viz.timeline_steps(spec)[step - 1]
    indices = [i for i, image in enumerate(images) if image.get("name", "").startswith(f"{title} · class ")]
    return np.array([update[f"images[{i}].sizey"] for i in indices])


def test_the_timeline_holds_every_glimpse_and_the_step_slider_still_drives_it(runs):
    at = open_page(PAGE)
    assert_no_exception(at)
    spec = timeline(at)
    assert len(viz.timeline_steps(spec)) == TINY_DRAW.glimpses and spec["layout"]["meta"]["timeline"]["initial"] == 1
    assert follower(at) == {"chart": "work_timeline", "step": 3, "frames": 3, "initial": 1}
    at.slider(key="work_step").set_value(2).run()
    assert_no_exception(at)
    assert follower(at)["step"] == 2 and at.query_params["step"] == "2"
    assert figure(at, "DRAW: the exact gradient, glimpse 2")  # the gradients follow the server's step
    assert timeline(at) == spec  # moving the step leaves the figure (and what is sent) as it is
    for name in ("draw_read", "ram_retina", "probabilities"):  # every piece explained by its equation
        assert any(work.EXPLANATIONS[name].notice in caption.value for caption in at.caption)


def test_a_shared_link_opens_on_its_glimpse(runs):
    at = open_page(PAGE, query={"step": "2"})
    assert follower(at)["step"] == 2 and at.slider(key="work_step").value == 2


def test_every_glimpse_draws_both_models_where_they_looked(runs):
    at = open_page(PAGE)
    draw, ram = models(runs)
    image, _ = sample(0)
    locations = ram.classify(image[None], sample=False).locations[:, 0]  # (T, 2)
    spec = timeline(at)
    for step in (1, 2, 3):
        assert drawn_window(spec, DRAW_WINDOW, step) == pytest.approx(model_window(image, draw, step - 1), abs=0.6)
        widest = work.patch_edges(ram, locations[step - 1])[-1]  # (4,) RAM's widest square
        assert drawn_window(spec, RAM_RETINA, step) == pytest.approx(widest.tolist(), abs=1.0)
        amber = picture(spec, RAM_RETINA, step)[0]
        assert tuple(amber[amber[..., 3] > 0][0, :3]) == viz._rgb(viz.RETINA_COLOUR)


def test_class_probabilities_after_each_glimpse_are_the_models(runs):
    at = open_page(PAGE)
    at.number_input(key="work_index").set_value(5).run()
    assert_no_exception(at)
    draw, ram = models(runs)
    image, label = sample(5)
    spec = timeline(at)
    with torch.no_grad():
        draw_p = draw.classify(image[None]).step_logits[:, 0].softmax(-1)  # (T, K)
        ram_p = ram.classify(image[None], sample=False).step_logits[:, 0].softmax(-1)
    for step in (1, 2, 3):
        assert bar_heights(spec, "DRAW's p(class) after glimpse t", step) == pytest.approx(draw_p[step - 1], abs=1e-5)
        assert bar_heights(spec, "RAM's p(class) after glimpse t", step) == pytest.approx(ram_p[step - 1], abs=1e-5)
    label_bar = next(
        image
        for image in spec["layout"]["images"]
        if image["name"] == f"DRAW's p(class) after glimpse t · class {label}"
    )
    assert tuple(viz.png_pixels(label_bar["source"])[0, 0, :3]) == viz._rgb(viz.BAR_COLOURS["label"])
    answers = spec["layout"]["meta"]["timeline"]["labels"]
    assert answers[1].startswith("glimpse 2 of 3") and f"DRAW: {int(draw_p[1].argmax())} " in answers[1]


def test_glimpses_show_the_read_and_every_retina_scale(runs):
    at = open_page(PAGE)
    draw, ram = models(runs)
    image, _ = sample(0)
    spec = timeline(at)
    read = draw.classify(image[None]).glimpses[:, 0, 0].detach()  # (T, N, N)
    pixels, _ = picture(spec, "what DRAW read: 4×4", 2)
    cell = pixels.shape[0] // 4
    centres = pixels[cell // 2 :: cell, cell // 2 :: cell, 0].astype(float)  # (4, 4) grey of each read value
    expected = np.rint(read[1].numpy() / float(read.max()) * (viz.LEVELS - 1)) * 255 / (viz.LEVELS - 1)
    assert centres == pytest.approx(expected, abs=1.0)  # one colour range over all glimpses
    at.number_input(key="work_index").set_value(1).run()  # an image whose second glimpse sees ink
    image, _ = sample(1)
    seen = ram.classify(image[None], sample=False).glimpses[:, 0]  # (T, S C, P, P)
    retina, _ = picture(timeline(at), "what RAM saw: 2 scales of 6×6", 2)
    assert retina.shape[1] / retina.shape[0] == pytest.approx(15 / 8)  # two 6 x 6 patches in a one-pixel frame
    scale = retina.shape[0] // 8
    middles = np.arange(6) * scale + scale + scale // 2  # picture pixels at the middle of a patch pixel
    for s in range(2):  # patch s sits at columns 1 + 7 s .. 6 + 7 s of the tile
        shown = retina[middles][:, middles + 7 * s * scale, 0].astype(float)
        expected = np.rint(seen[1, s].numpy() / float(seen.max()) * (viz.LEVELS - 1)) * 255 / (viz.LEVELS - 1)
        assert shown == pytest.approx(expected, abs=1.0)


def test_test_errors_stand_beside_table_1(runs):
    at = open_page(PAGE)
    table = at.table[0].value
    rows = {(row["model"], row["glimpses"]): row for _, row in table.iterrows()}
    assert rows[("DRAW (differentiable attention)", "8")]["Table 1"] == "3.36%"
    assert rows[("RAM (REINFORCE)", "8")]["Table 1"] == "8.11%"
    assert rows[("RAM (REINFORCE)", "4")]["Table 1"] == "9.41%"
    mine = rows[("DRAW (differentiable attention)", "3")]  # the tiny model has 3 glimpses: a row of its own
    assert mine["this app"] == "25.00%" and mine["checkpoint"] == "mnist-cluttered-draw (run)"
    assert mine["measured on"] == "first 200 test images, after 40 training steps"


def test_reinforce_estimates_spread_around_draws_single_exact_gradient(runs):
    at = open_page(PAGE)
    at.slider(key="work_step").set_value(2).run()
    draw, _ = models(runs)
    image, label = sample(0)
    exact = figure(at, "DRAW: the exact gradient, glimpse 2")["data"]
    assert [trace["name"] for trace in exact] == ["exact"]
    gradient = work.draw_centre_gradient(draw, image, label)[1]
    assert [exact[0]["x"][1], exact[0]["y"][1]] == pytest.approx(gradient.tolist(), rel=1e-4, abs=1e-9)
    cloud = figure(at, f"RAM: {work.REINFORCE_SAMPLES} REINFORCE estimates, glimpse 2")["data"]
    points = viz.spec_array(cloud[0]["x"])
    assert cloud[0]["name"] == "estimates" and len(points) == work.REINFORCE_SAMPLES and points.std() > 0
    at.toggle(key="work_baseline").set_value(True).run()
    assert_no_exception(at)
    baselined = viz.spec_array(figure(at, "REINFORCE estimates")["data"][0]["x"])
    assert baselined.std() != pytest.approx(points.std())
    assert any("rollouts before the sign" in caption.value for caption in at.caption)
    assert any("reparameterization trick" in md.value for md in at.markdown)


def test_a_missing_model_is_named_with_the_command_that_trains_it(monkeypatch, tmp_path):
    folder = use_folders(monkeypatch, tmp_path)
    classifier(folder, "draw-classifier")
    at = open_page(PAGE)
    message = " ".join(info.value for info in at.info)
    assert "mnist-cluttered-ram" in message and work.how_to_train("ram") in message
    assert "mnist-cluttered-draw**" not in message
    assert not at.get("plotly_chart")


def test_a_generator_picked_in_the_sidebar_does_not_matter(runs):
    at = open_page()
    at.selectbox(key="checkpoint").set_value("run/tiny").run()
    at.switch_page(f"pages/{PAGE}").run()
    assert_no_exception(at)
    assert not at.info and not at.error
    timeline(at)


def test_the_shipped_classifiers_come_before_runs(monkeypatch, tmp_path):
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    for kind in work.CHECKPOINT_NAMES:
        classifier(shipped, kind, seed=1, test_error=0.125)
    folder = use_folders(monkeypatch, tmp_path, shipped=shipped)
    for kind in work.CHECKPOINT_NAMES:
        classifier(folder, kind, seed=2)
    at = open_page(PAGE)
    table = at.table[0].value
    assert set(table["checkpoint"]) - {"—"} == {"mnist-cluttered-draw (shipped)", "mnist-cluttered-ram (shipped)"}
    draw = load_checkpoint(shipped / "mnist-cluttered-draw.safetensors").model
    last = model_window(sample(0)[0], draw, TINY_DRAW.glimpses - 1)
    assert drawn_window(timeline(at), DRAW_WINDOW, TINY_DRAW.glimpses) == pytest.approx(last, abs=0.6)


def test_a_fresh_image_from_a_seed(runs):
    at = open_page(PAGE)
    at.segmented_control(key="work_source").set_value("seed").run()
    at.number_input(key="work_seed").set_value(11).run()
    assert_no_exception(at)
    image, _ = work.fresh_image(11)
    shown = shown_image(at)
    assert shown == pytest.approx(image[0].numpy(), abs=0.5 / (viz.LEVELS - 1) + 1e-6)


def shown_image(at) -> np.ndarray:
    """(H, W) the image under DRAW's read window, read back from its picture (grey levels 0..1, margin cut off)."""
    pixels, _ = picture(timeline(at), "DRAW: read window", 1)
    scale = pixels.shape[0] // (100 + 2 * viz.window_pad(100, 100))
    pad = viz.window_pad(100, 100) * scale
    return pixels[pad : pad + 100 * scale : scale, pad : pad + 100 * scale : scale, 0] / 255.0


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def upload(at, name: str, data: bytes):
    at.segmented_control(key="work_source").set_value("upload").run()
    at.file_uploader(key="work_upload").set_value((name, data, "image/png"))
    return at.run()


def test_an_uploaded_digit_of_any_size_is_scaled_and_placed_in_clutter(runs):
    paper = np.full((300, 180), 255, dtype=np.uint8)
    paper[30:270, 70:110] = 0  # a big dark "1" on white paper
    at = upload(open_page(PAGE), "one.png", png_bytes(paper))
    assert_no_exception(at)
    assert not at.error
    shown = shown_image(at)
    assert shown.shape == (100, 100)
    # Scaled like MNIST (a 20-pixel-high box) and pasted whole: some 20-row run of a column reads full ink.
    columns = (shown > 0.99).astype(int)
    runs_of_ink = [max(len(r) for r in "".join(map(str, col)).split("0")) for col in columns.T]
    assert max(runs_of_ink) >= 20
    assert any("DRAW's answer" in caption.value for caption in at.caption)  # no label given yet
    label_control(at).set_value(1).run()
    assert_no_exception(at)
    assert not any("DRAW's answer" in caption.value for caption in at.caption)
    captions = " ".join(caption.value for caption in at.caption)
    assert "for class 1" in captions and "(+0.0000, +0.0000)" not in captions, "exact gradients near 1e-5 show"
    paper[30:270, 70:110] = 255
    paper[100:200, 20:160] = 0  # another picture: a bar across
    at = upload(at, "bar.png", png_bytes(paper))
    assert label_control(at).value is None, "a new digit starts unlabelled"
    assert any("DRAW's answer" in caption.value for caption in at.caption)


def label_control(at):
    """The 'Which digit is it?' control of the digit shown (keyed by the digit)."""
    (control,) = [c for c in at.segmented_control if c.key.startswith("work_label_")]
    return control


def test_a_bad_upload_says_why_and_draws_nothing(runs):
    at = upload(open_page(PAGE), "notes.png", b"these are lecture notes, not a picture")
    assert_no_exception(at)
    assert any("notes.png" in e.value and "not an image" in e.value for e in at.error)
    assert not figures(at)


def test_draw_mode_asks_for_a_drawing(runs):
    at = open_page(PAGE)
    at.segmented_control(key="work_source").set_value("draw").run()
    assert_no_exception(at)
    assert any("Draw a digit" in info.value for info in at.info)


def test_classifiers_of_another_image_size_are_refused_plainly(monkeypatch, tmp_path):
    folder = use_folders(monkeypatch, tmp_path)
    save_checkpoint(DrawClassifier(ClassifierConfig(height=64, width=64, glimpses=2, read_n=3, hidden=8)),
                    folder / "mnist-cluttered-draw.safetensors")  # fmt: skip
    classifier(folder, "ram")
    at = open_page(PAGE)
    assert any("takes 1×64×64 images" in error.value and "1×100×100" in error.value for error in at.error)
    assert not at.get("plotly_chart")


@pytest.mark.parametrize("page", ["reconstruct.py", "generate.py", "latent.py"])
def test_a_classifier_picked_on_a_generator_page_gets_a_plain_message(runs, page):
    at = open_page()
    at.selectbox(key="checkpoint").set_value("run/mnist-cluttered-ram").run()
    at.switch_page(f"pages/{page}").run()
    assert_no_exception(at)
    assert any("generators" in info.value and "`ram`" in info.value for info in at.info)
