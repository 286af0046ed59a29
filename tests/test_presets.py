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
    fields = ("channels", "height", "width", "T", "read_n", "write_n", "enc_size", "dec_size", "z_size")
    # Table 3's rows (the paper's sizes, typed in from the table): SVHN T=32, 12x12 read and write, LSTM 800, z 100
    # (on SVHN's 32x32 cropped digits); CIFAR-10 T=64, 5x5 read and write, LSTM 400, z 200
    svhn, cifar = get_preset("svhn").build(), get_preset("cifar10").build()
    assert tuple(getattr(svhn, name) for name in fields) == (3, 32, 32, 32, 12, 12, 800, 800, 100)
    assert tuple(getattr(cifar, name) for name in fields) == (3, 32, 32, 64, 5, 5, 400, 400, 200)
    assert svhn.read_attn and svhn.write_attn and cifar.read_attn and cifar.write_attn
    ram = get_preset("mnist-cluttered-ram").build()
    assert isinstance(ram, RamConfig) and (ram.glimpses, ram.patch, ram.scales) == (8, 12, 4)


def test_overrides_apply_and_wrong_fields_are_named():
    assert get_preset("mnist").build(T=8, z_size=None).T == 8
    assert get_preset("mnist-cluttered-draw").build(glimpses=4).glimpses == 4
    with pytest.raises(ValueError, match=r"has no fields \['T'\]"):
        get_preset("mnist-cluttered-ram").build(T=3)
    with pytest.raises(ValueError, match="unknown preset 'cifar'"):
        get_preset("cifar")
