"""Two MNIST digits on a 60 x 60 canvas (DRAW sec. 4.2, "MNIST Generation with Two Digits"), made on the fly.

The generator, exactly (this text goes into the model cards):

- Each image is a black 60 x 60 canvas holding two 28 x 28 MNIST digits. Each digit's top-left corner (row, column)
  is drawn uniformly from {0, ..., 32} on each axis, independently for the two digits, so each digit lies wholly
  inside the canvas and the two may overlap (a little or, rarely, a lot). They are combined by the pixelwise
  maximum, so an overlap keeps the brighter stroke and grey levels stay in [0, 1].
- The second digit is drawn uniformly from the split's other digits (never the first digit itself). Both come from
  the same split: training images from MNIST's training split, test images from its test split.
- Binarisation is MNIST's (draw_core.data.mnist): a fresh Bernoulli sample of the grey levels for every training
  batch; the test set is binarised once with `mnist.fixed_binarization` (TEST_BINARIZATION_SEED).
- Training images (`TwoDigitStream`) are drawn fresh for every batch: the first digits follow a new random
  permutation of the training split each epoch (each digit at most once per epoch, in mnist.BatchStream's order:
  the N mod B left after the last full batch wait for the next permutation); the second digit and both positions
  are drawn anew for every image from the same seeded generator.
- The test set (`fixed_two_digit_test_set`) puts test digit i first in image i (10,000 images), with every other
  draw taken from one `torch.Generator` seeded with `TWO_DIGIT_TEST_SEED`, in the order of cluttered.py's
  `sample_placements` with one whole-digit "fragment": first-digit rows (n), first-digit columns (n), second
  digits (n, 1), (zero-range crop corners, which consume draws of 0), second-digit rows (n, 1), columns (n, 1).
  The same seed gives the same images on every machine.

The pixels are written by draw_core.data.cluttered's `render` (one `scatter_reduce(amax)` over flat canvas
indices): the second digit is a single clutter fragment as large as a whole digit, cropped at (0, 0).
"""

from __future__ import annotations

import torch

from draw_core.data import cluttered, mnist

TWO_DIGIT_TEST_SEED = 0  # seeds the placements and pairings of the fixed test set
SIZE = 60  # canvas side (DRAW sec. 4.2: 60 x 60)
DIGIT = 28  # MNIST digit side; positions are uniform in {0, ..., SIZE - DIGIT} = {0, ..., 32}


def _check_digits(digits: torch.Tensor) -> None:
    if digits.dim() != 4 or tuple(digits.shape[1:]) != (1, DIGIT, DIGIT):
        raise ValueError(f"digits must have shape (N, 1, {DIGIT}, {DIGIT}), got {tuple(digits.shape)}")
    if len(digits) < 2:
        raise ValueError(f"need at least 2 digits (the second digit is another one of the split), got {len(digits)}")


def place_pairs(digits: torch.Tensor, first: torch.Tensor, generator: torch.Generator) -> cluttered.Placements:
    """Where digits[first] (n,) and their partners go: partner indices in `source` (n, 1), the first digit's corner
    in `digit_corner` (n, 2), the partner's in `fragment_corner` (n, 1, 2)."""
    return cluttered.sample_placements(
        first, (DIGIT, DIGIT), generator=generator, split_size=len(digits), size=SIZE, fragments=1, fragment_size=DIGIT
    )


def render_pairs(digits: torch.Tensor, placements: cluttered.Placements) -> torch.Tensor:
    """The grey-level images (n, 1, 60, 60) in [0, 1] that `placements` describe (pixelwise maximum)."""
    return cluttered.render(digits, placements, size=SIZE, fragment_size=DIGIT)


def fixed_two_digit_test_set(
    test_digits: torch.Tensor, seed: int = TWO_DIGIT_TEST_SEED, limit: int | None = None
) -> torch.Tensor:
    """The evaluation set (N, 1, 60, 60), binary: test digit i with a seeded partner in image i, binarised once
    with mnist.fixed_binarization; `limit` keeps the first images (of the full set: all N are made, 144 MB)."""
    _check_digits(test_digits)
    placements = place_pairs(test_digits, torch.arange(len(test_digits)), torch.Generator().manual_seed(seed))
    binary = mnist.fixed_binarization(render_pairs(test_digits, placements))
    return binary[:limit] if limit else binary


class TwoDigitStream(mnist.BatchStream):
    """Endless batches (B, 1, 60, 60) of fresh two-digit training images, binarised afresh; `epoch` counts passes
    over the first digits."""

    def __init__(self, digits: torch.Tensor, batch_size: int, seed: int):
        _check_digits(digits)
        super().__init__(digits, batch_size, seed)

    def next(self) -> torch.Tensor:
        placements = place_pairs(self.images, self.next_indices(), self.generator)
        return mnist.binarize(render_pairs(self.images, placements), self.generator)
