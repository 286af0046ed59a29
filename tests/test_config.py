"""draw_core.config: the paper's presets and validation that names the wrong field."""

import dataclasses

import pytest

from draw_core.config import DrawConfig, TrainConfig


def test_mnist_preset_is_table_3():
    # Gregor et al. 2015, Table 3, MNIST Model: 28 x 28 x 1, 64 glimpses, LSTM 256, #z 100, read 2 x 2, write 5 x 5.
    cfg = DrawConfig.preset("mnist")
    assert (cfg.height, cfg.width, cfg.channels) == (28, 28, 1)
    assert cfg.T == 64
    assert cfg.enc_size == 256 and cfg.dec_size == 256
    assert cfg.z_size == 100
    assert cfg.read_n == 2 and cfg.write_n == 5
    assert cfg.read_attn and cfg.write_attn
    # read: 2 channels (x, x_hat) of 2 x 2; write: a 5 x 5 patch.
    assert cfg.read_size == 2 * 2 * 2 and cfg.write_size == 5 * 5


def test_other_presets():
    noattn = DrawConfig.preset("mnist-noattn")
    assert not noattn.read_attn and not noattn.write_attn
    assert dataclasses.replace(noattn, read_attn=True, write_attn=True) == DrawConfig.preset("mnist")
    assert noattn.read_size == 2 * 28 * 28 and noattn.write_size == 28 * 28  # eqs 17-18: whole image and canvas
    small = DrawConfig.preset("mnist-small")
    assert small.read_attn and small.write_attn
    assert small.T < 64 and small.enc_size < 256 and small.z_size < 100
    with pytest.raises(ValueError, match="unknown preset 'cifar'.*mnist"):
        DrawConfig.preset("cifar")


@pytest.mark.parametrize(
    "field, value",
    [
        ("T", 0),
        ("T", 1000),
        ("height", 2),
        ("width", 100_000),
        ("channels", 0),
        ("channels", 5),
        ("read_n", 1),  # eq. 24 divides by N - 1
        ("write_n", 29),  # larger than the image
        ("enc_size", 0),
        ("dec_size", -3),
        ("z_size", 0),
    ],
)
def test_draw_config_out_of_range_names_the_field(field, value):
    with pytest.raises(ValueError, match=rf"^{field}={value} is out of range"):
        DrawConfig(**{field: value})


@pytest.mark.parametrize(
    "field, value",
    [("T", 4.0), ("T", "64"), ("T", True), ("z_size", None), ("read_attn", 1), ("write_attn", "yes")],
)
def test_draw_config_wrong_type_names_the_field(field, value):
    with pytest.raises(ValueError, match=rf"^{field}="):
        DrawConfig(**{field: value})


def test_draw_config_dict_round_trip_and_unknown_fields():
    cfg = DrawConfig(T=7, read_n=3, write_attn=False)
    assert DrawConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"unknown DrawConfig fields \['glimpses'\]"):
        DrawConfig.from_dict({**cfg.to_dict(), "glimpses": 10})
    with pytest.raises(ValueError, match="z_size=0 is out of range"):
        DrawConfig.from_dict({**cfg.to_dict(), "z_size": 0})


def test_draw_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DrawConfig().T = 3


@pytest.mark.parametrize(
    "field, value",
    [
        ("batch_size", 0),
        ("steps", 0),
        ("lr", 0.0),
        ("lr", 2.0),
        ("lr", float("nan")),
        ("lr_min_ratio", 1.5),
        ("grad_clip", 0.0),
        ("eval_limit", 0),
        ("eval_every", -1),
        ("log_every", 0),
        ("time_budget_s", 0.5),
    ],
)
def test_train_config_out_of_range_names_the_field(field, value):
    with pytest.raises(ValueError, match=rf"^{field}=.* is out of range"):
        TrainConfig(**{field: value})


@pytest.mark.parametrize(
    "field, value",
    [
        ("batch_size", 16.5),
        ("batch_size", "16"),
        ("steps", True),
        ("lr", "1e-3"),
        ("device", 0),
        ("dataset", None),
        ("time_budget_s", "60"),
        ("extra", []),
    ],
)
def test_train_config_wrong_type_names_the_field(field, value):
    with pytest.raises(ValueError, match=rf"^{field}="):
        TrainConfig(**{field: value})


def test_train_config_accepts_ints_for_float_fields():
    cfg = TrainConfig(lr=1, time_budget_s=60, grad_clip=5)
    assert cfg.to_dict()["time_budget_s"] == 60
