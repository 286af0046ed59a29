"""Cluttered translated MNIST (Mnih et al. 2014, "Recurrent Models of Visual Attention"; DRAW sec. 4.1, Table 1).

The generator, exactly (this text goes into the model cards):

- Each image is a black size x size canvas (100 x 100 by default) holding one MNIST digit and `fragments` (8) clutter
  fragments. Grey levels stay in [0, 1] as MNIST gives them (pixel / 255); nothing is binarised.
- The digit (28 x 28) goes at a uniformly random position wholly inside the canvas: its top-left corner (row, column)
  is drawn uniformly from {0, ..., size - 28} on each axis independently. The image's label is the digit's class.
- Each fragment is a fragment_size x fragment_size (8 x 8) crop of another digit of the same split: the source digit
  is drawn uniformly from the split's other digits (never the placed digit itself), the crop's top-left corner inside
  that digit uniformly from {0, ..., 28 - 8} per axis (so a crop may be blank, as in the reference), and the
  fragment's top-left corner on the canvas uniformly from {0, ..., size - 8} per axis. Every draw is independent.
- Digit and fragments are combined by the pixelwise maximum (so overlaps never exceed 1; the result is clipped to
  [0, 1] only to guard against inputs outside it). The reference generator (github.com/deepmind/mnist-cluttered)
  sums and clips instead; the maximum keeps a stroke's grey levels intact where a fragment crosses it.
- Training images (`ClutteredStream`) are drawn fresh for every batch: the placed digits follow a new random
  permutation of the training split each epoch (each digit at most once per epoch, in draw_core.data.BatchStream's
  order: the N mod B left after the last full batch wait for the next permutation),
  and every position, source and crop is drawn anew, so no image repeats.
- The test set (`fixed_cluttered_test_set`) places each of the 10,000 test digits once, test digit i in image i (so
  the labels are the test labels in order), with every random draw taken from one `torch.Generator` seeded with
  `CLUTTERED_TEST_SEED` (torch.randint), in this order: digit rows (n), digit columns (n), fragment sources (n, F),
  crop rows (n, F), crop columns (n, F), fragment rows (n, F), fragment columns (n, F). The same seed gives the same
  images on every machine.
- `place_in_clutter` puts one given digit (a drawn or uploaded one, already scaled to 28 x 28) into clutter cut
  from a split in the same way.

Everything is vectorised: the placements are drawn as tensors and the pixels are written with one
`scatter_reduce(amax)` over flat canvas indices, so 10,000 images take a fraction of a second.

Letters used in shape comments: n images, N digits in the split, F fragments per image, S canvas side (size),
h, w digit height and width, K fragment side (fragment_size).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from draw_core.data.mnist import BatchStream

CLUTTERED_TEST_SEED = 0  # seeds the one generator that makes the fixed test set
SIZE = 100  # canvas side in pixels (Table 1: 100 x 100)
FRAGMENTS = 8  # clutter fragments per image (Mnih et al. 2014: 8)
FRAGMENT_SIZE = 8  # side of each clutter fragment in pixels (Mnih et al. 2014: 8 x 8)


@dataclass(frozen=True)
class Placements:
    """Where everything in a batch of cluttered images came from and went to (0-based pixel rows and columns)."""

    digit: torch.Tensor  # (n,) index of the placed digit in the split
    digit_corner: torch.Tensor  # (n, 2) top-left (row, column) of the digit on the canvas
    source: torch.Tensor  # (n, F) index of the digit each fragment is cut from
    crop_corner: torch.Tensor  # (n, F, 2) top-left (row, column) of the crop inside its source digit
    fragment_corner: torch.Tensor  # (n, F, 2) top-left (row, column) of the fragment on the canvas

    def first(self, count: int) -> Placements:
        """The placements of the first `count` images."""
        return Placements(**{f.name: getattr(self, f.name)[:count] for f in fields(Placements)})


def _check_labels(digits: torch.Tensor, labels: torch.Tensor) -> None:
    if labels.shape != digits.shape[:1]:
        raise ValueError(f"labels must have shape ({digits.shape[0]},) to match the digits, got {tuple(labels.shape)}")


def _check_digits(digits: torch.Tensor, size: int, fragments: int, fragment_size: int) -> None:
    if digits.dim() != 4 or digits.shape[1] != 1:
        raise ValueError(f"digits must have shape (N, 1, h, w), got {tuple(digits.shape)}")
    if fragments < 0:
        raise ValueError(f"fragments={fragments} must be >= 0")
    if len(digits) < 2:
        raise ValueError(f"need at least 2 digits (fragments come from other digits), got {len(digits)}")
    h, w = digits.shape[-2:]
    if not (h <= size and w <= size):
        raise ValueError(f"a {h}x{w} digit does not fit on a {size}x{size} canvas: expected size >= {max(h, w)}")
    if not (1 <= fragment_size <= min(h, w)):
        raise ValueError(f"fragment_size={fragment_size} must be between 1 and the digit side {min(h, w)}")


def _corners(shape: tuple[int, ...], rows: int, columns: int, generator: torch.Generator) -> torch.Tensor:
    """(*shape, 2) top-left (row, column) corners: rows uniform in {0, ..., rows}, then columns in {0, ..., columns}."""
    row = torch.randint(rows + 1, shape, generator=generator)
    return torch.stack([row, torch.randint(columns + 1, shape, generator=generator)], dim=-1)


def sample_placements(
    digit: torch.Tensor,
    digit_shape: tuple[int, int],
    *,
    generator: torch.Generator,
    split_size: int,
    size: int = SIZE,
    fragments: int = FRAGMENTS,
    fragment_size: int = FRAGMENT_SIZE,
) -> Placements:
    """Draw the positions, fragment sources and crops for placing digits `digit` (n,) of a split of `split_size`
    digits of shape `digit_shape` (h, w), in the order the module docstring gives."""
    n = len(digit)
    h, w = digit_shape
    digit_corner = _corners((n,), size - h, size - w, generator)  # (n, 2)
    # A uniform draw from the split_size - 1 other digits: skip over the placed digit's own index.
    other = torch.randint(split_size - 1, (n, fragments), generator=generator)  # (n, F)
    source = other + (other >= digit[:, None]).long()
    crop_corner = _corners((n, fragments), h - fragment_size, w - fragment_size, generator)  # (n, F, 2)
    fragment_corner = _corners((n, fragments), size - fragment_size, size - fragment_size, generator)  # (n, F, 2)
    return Placements(digit, digit_corner, source, crop_corner, fragment_corner)


def _flat_offsets(rows: int, columns: int, stride: int) -> torch.Tensor:
    """(rows * columns,) flat offsets r * stride + c of a rows x columns block in an image `stride` pixels wide."""
    return (torch.arange(rows)[:, None] * stride + torch.arange(columns)).flatten()


def render(digits: torch.Tensor, placements: Placements, *, size: int = SIZE, fragment_size: int = FRAGMENT_SIZE):
    """The images (n, 1, S, S) that `placements` describe: digits and fragments pasted by pixelwise maximum."""
    n, F = placements.source.shape
    N, _, h, w = digits.shape
    K = fragment_size
    flat_digits = digits.reshape(N, h * w)  # (N, h w)
    digit_pixels = flat_digits[placements.digit]  # (n, h w)
    digit_where = (placements.digit_corner[:, :1] * size + placements.digit_corner[:, 1:]) + _flat_offsets(h, w, size)
    crop_at = placements.crop_corner[..., :1] * w + placements.crop_corner[..., 1:]  # (n, F, 1)
    fragment_pixels = flat_digits[placements.source[..., None], crop_at + _flat_offsets(K, K, w)]  # (n, F, K K)
    fragment_at = placements.fragment_corner[..., :1] * size + placements.fragment_corner[..., 1:]  # (n, F, 1)
    fragment_where = fragment_at + _flat_offsets(K, K, size)  # (n, F, K K)
    where = torch.cat([digit_where, fragment_where.view(n, F * K * K)], dim=1).to(digits.device)  # (n, h w + F K K)
    values = torch.cat([digit_pixels, fragment_pixels.view(n, F * K * K)], dim=1)
    canvas = digits.new_zeros(n, size * size).scatter_reduce_(1, where, values, reduce="amax")  # (n, S S)
    return canvas.clamp_(0, 1).view(n, 1, size, size)


def _clutter(digits, digit, generator, size, fragments, fragment_size, limit=None):
    """Images (n, 1, S, S) placing digits[digit] with clutter from the rest of `digits`, and their placements."""
    placements = sample_placements(
        digit,
        tuple(digits.shape[-2:]),
        generator=generator,
        split_size=len(digits),
        size=size,
        fragments=fragments,
        fragment_size=fragment_size,
    )
    placements = placements.first(limit) if limit else placements  # None or 0: all, as every test set reads it
    return render(digits, placements, size=size, fragment_size=fragment_size), placements


def make_cluttered(
    digits: torch.Tensor,
    labels: torch.Tensor,
    n: int,
    *,
    generator: torch.Generator,
    size: int = SIZE,
    fragments: int = FRAGMENTS,
    fragment_size: int = FRAGMENT_SIZE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """n cluttered images (n, 1, S, S) in [0, 1] and their labels (n,), each digit drawn uniformly from `digits`
    (N, 1, h, w) with labels (N,); the draws come from `generator` (a CPU generator)."""
    _check_labels(digits, labels)
    _check_digits(digits, size, fragments, fragment_size)
    digit = torch.randint(len(digits), (n,), generator=generator)  # (n,)
    images, placements = _clutter(digits, digit, generator, size, fragments, fragment_size)
    return images, labels[placements.digit.to(labels.device)]


def fixed_cluttered_test_set(
    test_digits: torch.Tensor,
    test_labels: torch.Tensor,
    seed: int = CLUTTERED_TEST_SEED,
    limit: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The evaluation set: test digit i placed once in image i with the seeded generator, (N, 1, 100, 100) and the
    labels (N,). `limit` keeps the first images only; they equal the first images of the full set (every
    placement is drawn first, then only the kept images are drawn). Float32 100 x 100 images take 40 kB each:
    the full 10,000 take 400 MB."""
    _check_labels(test_digits, test_labels)
    _check_digits(test_digits, SIZE, FRAGMENTS, FRAGMENT_SIZE)
    generator = torch.Generator().manual_seed(seed)
    digit = torch.arange(len(test_digits))
    images, placements = _clutter(test_digits, digit, generator, SIZE, FRAGMENTS, FRAGMENT_SIZE, limit)
    return images, test_labels[placements.digit.to(test_labels.device)]


def place_in_clutter(
    digit: torch.Tensor,
    clutter_digits: torch.Tensor,
    *,
    generator: torch.Generator,
    size: int = SIZE,
    fragments: int = FRAGMENTS,
    fragment_size: int = FRAGMENT_SIZE,
) -> tuple[torch.Tensor, Placements]:
    """One image (1, 1, S, S) placing `digit` (1, h, w) in [0, 1] at a random position, with fragments cut from
    `clutter_digits` (N, 1, h, w), e.g. the test split; its placements index the digit as N."""
    _check_digits(clutter_digits, size, fragments, fragment_size)
    if digit.shape != clutter_digits.shape[1:]:
        raise ValueError(
            f"digit must have shape {tuple(clutter_digits.shape[1:])} like the clutter digits (scale it to that size "
            f"first), got {tuple(digit.shape)}"
        )
    digits = torch.cat([clutter_digits, digit[None].to(clutter_digits)])  # (N + 1, 1, h, w)
    return _clutter(digits, torch.tensor([len(clutter_digits)]), generator, size, fragments, fragment_size)


class ClutteredStream(BatchStream):
    """Endless batches (x (B, 1, S, S), y (B,)) of fresh cluttered training images; `epoch` counts full passes.

    The placed digits follow BatchStream's order (a new random permutation of the split each epoch); positions,
    fragment sources and crops are drawn anew for every batch from the same seeded generator.
    """

    def __init__(
        self,
        digits: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        seed: int,
        *,
        size: int = SIZE,
        fragments: int = FRAGMENTS,
        fragment_size: int = FRAGMENT_SIZE,
    ):
        _check_labels(digits, labels)
        _check_digits(digits, size, fragments, fragment_size)
        super().__init__(digits, batch_size, seed)
        self.labels = labels
        self.size = size
        self.fragments = fragments
        self.fragment_size = fragment_size

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        digit = self.next_indices()  # (B,)
        images, _ = _clutter(self.images, digit, self.generator, self.size, self.fragments, self.fragment_size)
        return images, self.labels[digit.to(self.labels.device)]
