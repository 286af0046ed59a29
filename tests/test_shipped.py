"""The shipped checkpoints: each loads, matches its model card, and scores what its card says."""

import json
import math

import pytest

from draw_core.config import DrawConfig
from draw_core.data import get_dataset
from draw_core.io.catalog import DEFAULT_CHECKPOINT, REPO_ROOT
from draw_core.io.checkpoint import load_checkpoint
from draw_core.training.evaluation import evaluate

SHIPPED = REPO_ROOT / "checkpoints"
CARDS = sorted(SHIPPED.glob("*.json"))
REQUIRED = (
    "name",
    "config",
    "dataset",
    "binarisation",
    "steps",
    "epochs",
    "train_seconds",
    "hardware",
    "test_elbo_nats",
    "test_iwae_nats",
    "test_iwae_k",
    "command",
)


def test_the_default_model_is_shipped():
    assert (SHIPPED / f"{DEFAULT_CHECKPOINT}.safetensors").is_file()
    assert (SHIPPED / f"{DEFAULT_CHECKPOINT}.json").is_file()


@pytest.mark.parametrize("card_path", CARDS, ids=[p.stem for p in CARDS])
def test_shipped_checkpoint_matches_its_card(card_path):
    card = json.loads(card_path.read_text())
    missing = [key for key in REQUIRED if key not in card]
    assert not missing, f"{card_path.name} lacks {missing}"
    weights = card_path.with_suffix(".safetensors")
    assert weights.stat().st_size <= 8 * 1024 * 1024, "shipped files stay under 8 MB"
    ckpt = load_checkpoint(weights)
    assert ckpt.config == DrawConfig.from_dict(card["config"])
    if card["name"] in ("mnist", "mnist-noattn"):
        assert ckpt.config == DrawConfig.preset(card["name"]), "the paper's configs are shipped as they are"
    assert ckpt.meta["step"] == card["steps"]
    assert card["test_iwae_nats"] <= card["test_elbo_nats"], "the IWAE bound is the tighter one"
    result = evaluate(ckpt.model, get_dataset("mnist-sample").test_set(), batch_size=500)
    # the same digits, binarisation and latent seed as when the card was written
    assert math.isclose(result.elbo_nats, card["sample_elbo_nats"], abs_tol=0.05)
    # the first 500 test digits against the card's figure on all 10,000
    assert abs(result.elbo_nats - card["test_elbo_nats"]) < 6.0
