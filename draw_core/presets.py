"""Named starting points for a training run: which model kind, which config, which dataset.

`python -m draw_core.train --preset NAME` and the app's Train page read these. The DRAW generator's configs are
the ones of draw_core.config.PRESETS (also reachable as DrawConfig.preset); the classifiers of sec. 4.1 add theirs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from draw_core.config import PRESETS as DRAW_PRESETS
from draw_core.nn.kinds import get_kind


@dataclass(frozen=True)
class Preset:
    name: str  # what --preset takes
    kind: str  # model kind (draw_core.nn.kinds)
    dataset: str  # default training dataset (draw_core.data registry)
    config: dict = field(default_factory=dict)  # fields that differ from the kind's config defaults
    note: str = ""  # why these values (one line)

    def build(self, **overrides):
        """The kind's config with the preset's values and then `overrides` (None values are ignored)."""
        config_class = get_kind(self.kind).config_class
        known = {f.name for f in dataclasses.fields(config_class)}
        given = {k: v for k, v in overrides.items() if v is not None}
        unknown = sorted(set(given) - known)
        if unknown:
            raise ValueError(
                f"preset {self.name!r} ({self.kind}) has no fields {unknown}: expected only {sorted(known)}"
            )
        return config_class(**{**self.config, **given})


# (dataset, why these values) of each DRAW generator preset of draw_core.config.PRESETS
DRAW_PRESET_NOTES: dict[str, tuple[str, str]] = {
    "mnist": ("mnist", "Table 3's MNIST row: T=64, read 2×2, write 5×5, LSTM 256, z 100"),
    "mnist-noattn": ("mnist", "the same network without attention (eqs 17-18)"),
    "mnist-small": ("mnist", "a quick CPU preset: T=16, LSTM 128, z 32"),
    "mnist-two": ("mnist-two", "two digits on 60×60: T=32, read 5×5, write 5×5, LSTM 256, z 100"),
    "svhn": (
        "svhn",
        "Table 3's SVHN row: T=32, read 12×12, write 12×12, LSTM 800, z 100; discretised logistic, colours coupled; "
        "on SVHN's 32×32 cropped digits (the paper's images were 64×64 crops of whole house numbers)",
    ),
    "cifar10-cpu": (
        "cifar10",
        "a CPU variant of the CIFAR-10 row: T=16, read 12×12, full-canvas write, LSTM 256, z 100; discretised "
        "logistic, colours coupled",
    ),
    "cifar10": (
        "cifar10",
        "Table 3's CIFAR-10 row: T=64, read 5×5, write 5×5, LSTM 400, z 200; discretised logistic, colours coupled",
    ),
}

PRESETS: dict[str, Preset] = {
    **{
        name: Preset(
            name=name, kind="draw", dataset=DRAW_PRESET_NOTES[name][0], config=values, note=DRAW_PRESET_NOTES[name][1]
        )
        for name, values in DRAW_PRESETS.items()
    },
    "mnist-cluttered-draw": Preset(
        name="mnist-cluttered-draw",
        kind="draw-classifier",
        dataset="mnist-cluttered",
        note="Table 3's 100×100 classification row: 8 glimpses, read 12×12, LSTM 256 (Table 1: 3.36% error)",
    ),
    "mnist-cluttered-ram": Preset(
        name="mnist-cluttered-ram",
        kind="ram",
        dataset="mnist-cluttered",
        note="RAM of Mnih et al. 2014 as in Table 1: 8 glimpses, 12×12 retina at 4 scales (8.11% error)",
    ),
}


def preset_names() -> list[str]:
    return list(PRESETS)


def get_preset(name: str) -> Preset:
    """The preset called `name`; an unknown name is a ValueError listing the known ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: expected one of {preset_names()}")
    return PRESETS[name]
