"""Presets name a model kind, a config and a dataset; overrides are checked against the kind's config."""

import pytest

from draw_core.config import DrawConfig
from draw_core.data import get_dataset
from draw_core.nn.classifier import ClassifierConfig
from draw_core.nn.kinds import get_kind
from draw_core.nn.ram import RamConfig
from draw_core.presets import get_preset, preset_names


def test_every_preset_builds_its_kind_on_an_existing_dataset():
    for name in preset_names():
        preset = get_preset(name)
        config = preset.build()
        assert isinstance(config, get_kind(preset.kind).config_class)
        spec = get_dataset(preset.dataset)
        assert (spec.task == "classify") == get_kind(preset.kind).classifies
        assert (config.height, config.width) == spec.shape[1:]


def test_paper_rows():
    assert get_preset("mnist").build() == DrawConfig.preset("mnist")
    draw = get_preset("mnist-cluttered-draw").build()
    assert draw == ClassifierConfig(glimpses=8, read_n=12, hidden=256) and (draw.height, draw.width) == (100, 100)
    ram = get_preset("mnist-cluttered-ram").build()
    assert isinstance(ram, RamConfig) and (ram.glimpses, ram.patch, ram.scales) == (8, 12, 4)


def test_overrides_apply_and_wrong_fields_are_named():
    assert get_preset("mnist").build(T=8, z_size=None).T == 8
    assert get_preset("mnist-cluttered-draw").build(glimpses=4).glimpses == 4
    with pytest.raises(ValueError, match=r"has no fields \['T'\]"):
        get_preset("mnist-cluttered-ram").build(T=3)
    with pytest.raises(ValueError, match="unknown preset 'cifar'"):
        get_preset("cifar")
