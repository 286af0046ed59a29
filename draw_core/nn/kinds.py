"""Model kinds: which network a checkpoint holds, and how to rebuild it from the config in its header.

Every checkpoint records its kind ('draw' for the generator; files written before kinds existed carry none and
load as 'draw'). `get_kind(name)` gives the config class that validates the stored config and the class that
builds the network from it; pages and the catalog use `generates` / `classifies` to decide what they can show.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from draw_core.config import DrawConfig
from draw_core.nn.classifier import ClassifierConfig, DrawClassifier
from draw_core.nn.model import DRAW
from draw_core.nn.ram import RAM, RamConfig

DEFAULT_KIND = "draw"  # the kind of a checkpoint whose header names none (written before kinds existed)


@dataclass(frozen=True)
class ModelKind:
    name: str  # as stored in the checkpoint header, e.g. 'draw'
    config_class: type  # frozen dataclass with from_dict / to_dict; validates itself on construction
    model_class: type[nn.Module]  # built as model_class(config)
    generates: bool  # draws images from z (Generate, Reconstruct, Latent explorer)
    classifies: bool  # answers `classify(x)` with class scores
    description: str  # one line for the picker and for error messages

    @property
    def task(self) -> str:
        """What its training data must be, as a dataset spec's `task` says: 'classify' (labelled) or 'generate'."""
        return "classify" if self.classifies else "generate"


KINDS: dict[str, ModelKind] = {
    "draw": ModelKind(
        name="draw",
        config_class=DrawConfig,
        model_class=DRAW,
        generates=True,
        classifies=False,
        description="DRAW generator (VAE with recurrent attention, sec. 2-3)",
    ),
    "draw-classifier": ModelKind(
        name="draw-classifier",
        config_class=ClassifierConfig,
        model_class=DrawClassifier,
        generates=False,
        classifies=True,
        description="DRAW attention classifier (differentiable read glimpses, sec. 4.1)",
    ),
    "ram": ModelKind(
        name="ram",
        config_class=RamConfig,
        model_class=RAM,
        generates=False,
        classifies=True,
        description="Recurrent Attention Model (sampled glimpses trained with REINFORCE, Mnih et al. 2014)",
    ),
}


def kind_names() -> list[str]:
    return sorted(KINDS)


def get_kind(name: str) -> ModelKind:
    """The kind called `name`; an unknown name is a ValueError listing the known ones."""
    if name not in KINDS:
        raise ValueError(f"unknown model kind {name!r}: expected one of {kind_names()}")
    return KINDS[name]


def kind_of(model: nn.Module) -> ModelKind:
    """The kind whose model class built `model`."""
    for kind in KINDS.values():
        if type(model) is kind.model_class:
            return kind
    raise ValueError(f"{type(model).__name__} is not a registered model kind: expected one of {kind_names()}")


def kind_of_config(config) -> ModelKind:
    """The kind whose config class `config` is an instance of."""
    for kind in KINDS.values():
        if type(config) is kind.config_class:
            return kind
    raise ValueError(
        f"{type(config).__name__} is not the config of a registered model kind: expected one of {kind_names()}"
    )
