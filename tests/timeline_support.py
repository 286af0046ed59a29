"""Reading a page's timeline figure (draw_core.present.viz.*_timeline) and its browser component in AppTests."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import numpy as np
from app_support import figures
from streamlit.testing.v1 import AppTest

from draw_core.present import viz


def timeline(at: AppTest) -> dict:
    """The spec of the page's one timeline figure."""
    found = [spec for spec in figures(at) if "timeline" in spec["layout"].get("meta", {})]
    assert len(found) == 1, f"expected one timeline figure, found {len(found)}"
    return found[0]


def follower(at: AppTest) -> dict:
    """The data the page hands its timeline component: chart key, server step, T and the figure's opening step."""
    found = [json.loads(element.proto.json) for element in at.get("bidi_component")]
    assert len(found) == 1, f"expected one timeline component, found {len(found)}"
    return found[0]


def picture(spec: dict, name: str, step: int) -> tuple[np.ndarray, dict]:
    """RGBA pixels of the layout image `name` at `step` (1-based), and the layout image (its place on the axes); a
    picture that stays the same at every step is the layout image's own."""
    images = spec["layout"]["images"]
    index = next(i for i, image in enumerate(images) if image.get("name") == name)
    source = viz.timeline_steps(spec)[step - 1].get(f"images[{index}].source", images[index]["source"])
    return viz.png_pixels(source), images[index]


def _run_centres(indices: np.ndarray) -> tuple[float, float]:
    """Centres (in picture pixels) of the first and the last run of consecutive indices: a border's two lines."""
    breaks = np.flatnonzero(np.diff(indices) > 1)
    first = indices[: breaks[0] + 1] if len(breaks) else indices
    last = indices[breaks[-1] + 1 :] if len(breaks) else indices
    return (first[0] + first[-1] + 1) / 2, (last[0] + last[-1] + 1) / 2


def drawn_window(spec: dict, name: str, step: int) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) in image coordinates of the rectangle drawn in windows picture `name` at `step`: the
    middles of its border lines (the columns and rows inked along most of the rectangle), converted through the
    picture's place on the panel's axes."""
    pixels, image = picture(spec, name, step)
    ink = pixels[..., 3] > 0
    scale = pixels.shape[1] / image["sizex"]  # picture pixels per image pixel
    columns, rows = ink.sum(0), ink.sum(1)
    left, right = _run_centres(np.flatnonzero(columns > 0.3 * columns.max()))
    top, bottom = _run_centres(np.flatnonzero(rows > 0.3 * rows.max()))
    return left / scale + image["x"], top / scale + image["y"], right / scale + image["x"], bottom / scale + image["y"]


def link_query(at: AppTest) -> dict[str, str]:
    """The query parameters of the page's link to the Attention lab."""
    links = [element.proto for element in at.get("page_link") if "attention_lab" in element.proto.page]
    assert len(links) == 1, f"expected one link to the Attention lab, found {len(links)}"
    return dict(parse_qsl(links[0].query_string))
