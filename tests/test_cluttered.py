"""draw_core.data.cluttered: cluttered translated MNIST against a loop-by-loop paste of the same placements, the
ranges of every random draw, seeding, the fixed test set, the training stream and the speed of 10,000 images."""

import pytest
import torch

from draw_core.data import get_dataset, load_sample
from draw_core.data.cluttered import (
    ClutteredStream,
    _clutter,
    fixed_cluttered_test_set,
    make_cluttered,
    place_in_clutter,
    render,
    sample_placements,
)


@pytest.fixture(scope="module")
def sample():
    """500 real MNIST test digits (N, 1, 28, 28) in [0, 1] and their labels, shipped with the repository."""
    return load_sample()


def pasted_by_loops(digits, placements, size=100, fragment_size=8):
    """The images the placements describe, one paste at a time: the digit, then each fragment, by maximum."""
    images = []
    for i in range(len(placements.digit)):
        canvas = torch.zeros(size, size)
        r, c = placements.digit_corner[i].tolist()
        canvas[r : r + 28, c : c + 28] = torch.maximum(canvas[r : r + 28, c : c + 28], digits[placements.digit[i], 0])
        for f in range(placements.source.shape[1]):
            sr, sc = placements.crop_corner[i, f].tolist()
            crop = digits[placements.source[i, f], 0, sr : sr + fragment_size, sc : sc + fragment_size]
            r, c = placements.fragment_corner[i, f].tolist()
            region = canvas[r : r + fragment_size, c : c + fragment_size]
            canvas[r : r + fragment_size, c : c + fragment_size] = torch.maximum(region, crop)
        images.append(canvas)
    return torch.stack(images)[:, None]


def test_images_are_the_digit_and_eight_fragments_pasted_by_maximum(sample):
    digits, labels = sample
    index = torch.arange(6)
    images, placements = _clutter(digits, index, torch.Generator().manual_seed(3), 100, 8, 8)
    assert images.shape == (6, 1, 100, 100) and images.dtype == torch.float32
    assert placements.source.shape == (6, 8) and placements.fragment_corner.shape == (6, 8, 2)
    assert torch.equal(images, pasted_by_loops(digits, placements))
    for i in range(6):  # the digit's own pixels are all there (the maximum never lowers them)
        r, c = placements.digit_corner[i].tolist()
        assert (images[i, 0, r : r + 28, c : c + 28] >= digits[i, 0]).all()


def test_grey_levels_are_kept_and_stay_in_unit_range(sample):
    digits, labels = sample
    images, image_labels = make_cluttered(digits, labels, 64, generator=torch.Generator().manual_seed(0))
    assert images.shape == (64, 1, 100, 100) and image_labels.shape == (64,)
    assert images.min() >= 0 and images.max() <= 1
    grey = (images > 0) & (images < 1)
    assert grey.any(), "grey levels must survive (nothing is binarised)"
    assert torch.isin(images.unique(), digits.unique()).all(), "every pixel is a pixel of some digit, or 0"


def test_labels_are_the_placed_digits_classes(sample):
    digits, labels = sample
    generator = torch.Generator().manual_seed(1)
    digit = torch.randint(len(digits), (20,), generator=generator)
    _, placements = _clutter(digits, digit, generator, 100, 8, 8)
    assert torch.equal(placements.digit, digit)
    stream = ClutteredStream(digits, torch.arange(len(digits)), batch_size=10, seed=0)  # labels = digit ids
    images, ids = stream.next()
    for image, i in zip(images, ids, strict=True):  # the digit with that id is somewhere in its image, whole
        windows = image[0].unfold(0, 28, 1).unfold(1, 28, 1)  # (73, 73, 28, 28) every 28 x 28 window
        assert (windows >= digits[i, 0]).all(-1).all(-1).any()


def test_every_draw_covers_its_whole_range_and_nothing_else():
    n = 20_000
    digit = torch.randint(500, (n,))
    p = sample_placements(digit, (28, 28), generator=torch.Generator().manual_seed(0), split_size=500)
    assert p.digit_corner.min() == 0 and p.digit_corner.max() == 100 - 28
    assert p.crop_corner.min() == 0 and p.crop_corner.max() == 28 - 8
    assert p.fragment_corner.min() == 0 and p.fragment_corner.max() == 100 - 8
    assert p.source.min() == 0 and p.source.max() == 499
    assert (p.source != digit[:, None]).all(), "fragments come from other digits"
    # uniform: each of the 73 digit rows is hit about n / 73 = 274 times
    counts = torch.bincount(p.digit_corner[:, 0], minlength=73)
    assert counts.min() > 200 and counts.max() < 350


def test_with_two_digits_the_fragments_come_from_the_other_one():
    digit = torch.tensor([0, 1, 0, 1])
    p = sample_placements(digit, (28, 28), generator=torch.Generator().manual_seed(0), split_size=2)
    assert torch.equal(p.source, (1 - digit)[:, None].expand(4, 8))


def test_fragment_count_and_size_are_parameters():
    digits = torch.ones(2, 1, 28, 28)  # every pasted pixel is 1: the image is the union of the pasted squares
    placements = sample_placements(
        torch.tensor([0]), (28, 28), generator=torch.Generator().manual_seed(0), split_size=2, size=60, fragments=3
    )
    image = render(digits, placements, size=60, fragment_size=8)
    expected = torch.zeros(60, 60)
    r, c = placements.digit_corner[0].tolist()
    expected[r : r + 28, c : c + 28] = 1
    for r, c in placements.fragment_corner[0].tolist():
        expected[r : r + 8, c : c + 8] = 1
    assert torch.equal(image[0, 0], expected)


def test_the_same_seed_gives_the_same_images_and_another_seed_others(sample):
    digits, labels = sample
    first, first_labels = fixed_cluttered_test_set(digits, labels)
    again, _ = fixed_cluttered_test_set(digits, labels)
    other, other_labels = fixed_cluttered_test_set(digits, labels, seed=1)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert torch.equal(first_labels, labels) and torch.equal(other_labels, labels), "image i holds test digit i"
    a = make_cluttered(digits, labels, 8, generator=torch.Generator().manual_seed(5))
    b = make_cluttered(digits, labels, 8, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_a_limited_test_set_is_the_start_of_the_full_one(sample):
    digits, labels = sample
    full, full_labels = fixed_cluttered_test_set(digits, labels)
    first, first_labels = fixed_cluttered_test_set(digits, labels, limit=7)
    assert torch.equal(first, full[:7]) and torch.equal(first_labels, full_labels[:7])


def test_stream_draws_fresh_images_and_places_each_digit_once_per_epoch(sample):
    digits = sample[0][:10]
    stream = ClutteredStream(digits, torch.arange(10), batch_size=5, seed=0)
    (x1, y1), (x2, y2) = stream.next(), stream.next()
    assert stream.epoch == 0
    assert sorted(torch.cat([y1, y2]).tolist()) == list(range(10))
    x3, _ = stream.next()
    assert stream.epoch == 1
    assert not torch.equal(x3, x1) and not torch.equal(x3, x2)
    again = ClutteredStream(digits, torch.arange(10), batch_size=5, seed=0)
    assert torch.equal(again.next()[0], x1)


def test_a_given_digit_is_placed_whole_among_clutter(sample):
    digits = sample[0]
    mine = torch.zeros(1, 28, 28)
    mine[0, 4:24, 12:16] = 0.8  # a drawn "1"
    image, placements = place_in_clutter(mine, digits, generator=torch.Generator().manual_seed(0))
    assert image.shape == (1, 1, 100, 100)
    assert placements.digit.tolist() == [len(digits)] and (placements.source < len(digits)).all()
    r, c = placements.digit_corner[0].tolist()
    assert (image[0, 0, r : r + 28, c : c + 28] >= mine[0]).all()
    with pytest.raises(ValueError, match=r"digit must have shape \(1, 28, 28\).*scale it"):
        place_in_clutter(torch.zeros(1, 20, 20), digits, generator=torch.Generator())


def test_bad_inputs_are_refused_with_what_was_expected(sample):
    digits, labels = sample
    g = torch.Generator()
    with pytest.raises(ValueError, match=r"labels must have shape \(500,\)"):
        make_cluttered(digits, labels[:3], 4, generator=g)
    with pytest.raises(ValueError, match="does not fit on a 20x20 canvas"):
        make_cluttered(digits, labels, 4, generator=g, size=20)
    with pytest.raises(ValueError, match="fragment_size=30 must be between 1 and the digit side 28"):
        make_cluttered(digits, labels, 4, generator=g, fragment_size=30)
    with pytest.raises(ValueError, match=r"digits must have shape \(N, 1, h, w\)"):
        make_cluttered(digits[:, 0], labels, 4, generator=g)
    with pytest.raises(ValueError, match="at least 2 digits"):
        make_cluttered(digits[:1], labels[:1], 4, generator=g)
    with pytest.raises(ValueError, match="batch_size=600 must be between 1 and the number of training images 500"):
        ClutteredStream(digits, labels, 600, 0)


def test_a_limit_of_zero_means_every_image_as_for_every_other_test_set(sample):
    digits, labels = sample
    images, _ = fixed_cluttered_test_set(digits, labels, limit=0)
    assert len(images) == len(digits) == len(get_dataset("mnist-sample").test_set(None, 0))
