"""Two-digit MNIST (draw_core.data.two_digit and the registry's `mnist-two`): where the digits go, how they
combine, which split they come from, and that the test set is fixed."""

import os

import pytest
import torch

from draw_core.data import get_dataset, load_sample, mnist
from draw_core.data.cluttered import Placements
from draw_core.data.two_digit import (
    TwoDigitStream,
    fixed_two_digit_test_set,
    place_pairs,
    render_pairs,
)

SPEC = get_dataset("mnist-two")


def pair(first_corner, second_corner, first=0, second=1):
    """Placements of one image: digit `first` at first_corner, digit `second` at second_corner."""
    return Placements(
        digit=torch.tensor([first]),
        digit_corner=torch.tensor([first_corner]),
        source=torch.tensor([[second]]),
        crop_corner=torch.zeros(1, 1, 2, dtype=torch.long),
        fragment_corner=torch.tensor([[second_corner]]),
    )


def test_both_digits_land_at_their_corners():
    digits = torch.zeros(2, 1, 28, 28)
    digits[0, 0, 3, 5] = 1.0
    digits[1, 0, 10, 2] = 0.5
    image = render_pairs(digits, pair((0, 32), (20, 1)))[0, 0]
    expected = torch.zeros(60, 60)
    expected[3, 37] = 1.0  # (0 + 3, 32 + 5)
    expected[30, 3] = 0.5  # (20 + 10, 1 + 2)
    assert torch.equal(image, expected)


def test_overlapping_digits_keep_the_brighter_stroke():
    digits = torch.stack([torch.full((1, 28, 28), 0.3), torch.full((1, 28, 28), 0.6)])
    image = render_pairs(digits, pair((0, 0), (10, 10)))[0, 0]
    assert image[10:28, 10:28].eq(0.6).all()  # the overlap: max(0.3, 0.6)
    assert image[:10, :28].eq(0.3).all() and image[28:38, 28:38].eq(0.6).all()
    assert image[40:, :].eq(0).all() and image[:, 40:].eq(0).all()


def test_positions_cover_0_to_32_and_the_partner_is_another_digit():
    digits = torch.zeros(3, 1, 28, 28)
    first = torch.zeros(20_000, dtype=torch.long)
    placements = place_pairs(digits, first, torch.Generator().manual_seed(1))
    corners = torch.cat([placements.digit_corner, placements.fragment_corner[:, 0]])
    assert corners.min() == 0 and corners.max() == 32
    assert set(corners.flatten().tolist()) == set(range(33))
    assert set(placements.source.flatten().tolist()) == {1, 2}
    assert placements.crop_corner.eq(0).all()


def test_the_test_set_is_fixed_binary_and_limit_is_its_start():
    digits, _ = load_sample()
    full = fixed_two_digit_test_set(digits)
    assert full.shape == (500, 1, 60, 60)
    assert set(full.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(full, fixed_two_digit_test_set(digits))
    assert torch.equal(fixed_two_digit_test_set(digits, limit=7), full[:7])
    assert not torch.equal(fixed_two_digit_test_set(digits, seed=1), full)


def test_the_stream_binarises_fresh_images_every_batch():
    digits, _ = load_sample()
    stream = TwoDigitStream(digits, batch_size=64, seed=0)
    first, second = stream.next(), stream.next()
    assert first.shape == (64, 1, 60, 60) and set(first.unique().tolist()) == {0.0, 1.0}
    assert not torch.equal(first, second)
    again = TwoDigitStream(digits, batch_size=64, seed=0)
    assert torch.equal(again.next(), first)


@pytest.fixture
def marked_splits(monkeypatch):
    """Fake MNIST: every training digit is one lit pixel at (0, 0), every test digit is all lit."""

    def load_mnist(train, root):
        n = 100 if train else 30
        digits = torch.zeros(n, 1, 28, 28)
        if train:
            digits[:, 0, 0, 0] = 1.0
        else:
            digits[:] = 1.0
        return digits, torch.zeros(n, dtype=torch.long)

    monkeypatch.setattr(mnist, "load_mnist", load_mnist)


def test_training_images_come_from_the_training_split_and_test_images_from_the_test_split(marked_splits, tmp_path):
    batch = SPEC.train_stream(tmp_path, batch_size=16, seed=0).next()
    assert batch.flatten(1).sum(1).le(2).all()  # two one-pixel digits (one where their corners coincide)
    test = SPEC.test_set(tmp_path)
    assert test.shape == (30, 1, 60, 60)
    assert test.flatten(1).sum(1).ge(28 * 28).all()  # whole lit squares


def test_the_sample_is_the_shipped_digits_in_pairs_with_two_digit_labels():
    images, labels = SPEC.sample()
    digits, digit_labels = load_sample()
    assert images.shape == (len(digits), 1, 60, 60) and labels.shape == (len(digits),)
    assert images.min() >= 0 and images.max() <= 1
    assert torch.equal(labels // 10, digit_labels)  # the first digit is sample digit i
    assert torch.equal(SPEC.example(), images[0])
    assert SPEC.shape == (1, 60, 60) and SPEC.likelihood == "bernoulli" and SPEC.task == "generate"


def test_a_label_is_written_with_both_digits():
    labels = SPEC.sample()[1]
    assert int(labels[3]) == 1, "sample image 3 holds a 0, then a 1"
    assert SPEC.label_text(1) == "01" and SPEC.label_text(71) == "71"
    assert get_dataset("mnist-sample").label_text(1) == "1"  # one digit: its class


def test_bad_inputs_are_refused_with_what_was_expected():
    with pytest.raises(ValueError, match=r"shape \(N, 1, 28, 28\)"):
        fixed_two_digit_test_set(torch.zeros(5, 1, 32, 32))
    with pytest.raises(ValueError, match="at least 2 digits"):
        fixed_two_digit_test_set(torch.zeros(1, 1, 28, 28))
    with pytest.raises(ValueError, match="batch_size=11 must be between 1 and the number of training images 10"):
        TwoDigitStream(torch.zeros(10, 1, 28, 28), batch_size=11, seed=0)


REAL_DATA_DIR = os.environ.get("DRAW_DATA_DIR")


@pytest.mark.skipif(not REAL_DATA_DIR or not SPEC.available(REAL_DATA_DIR), reason="DRAW_DATA_DIR has no MNIST")
def test_real_two_digit_test_set_pairs_every_test_digit():
    test = SPEC.test_set()
    assert test.shape == (10_000, 1, 60, 60)
    # Two digits of MNIST's mean ink 0.1307 on 784 of 3600 pixels: at most 2 * 0.1307 * 784 / 3600 = 0.0569 lit
    # (less where the digits overlap).
    assert 0.050 < test.mean().item() < 0.0569
    assert torch.equal(SPEC.test_set(limit=20), test[:20])
