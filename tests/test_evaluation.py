"""The test-set loops of draw_core/training/evaluation.py: every image counted once, whatever the batch sizes.

The per-image bounds themselves are tested in test_elbo.py; here they are replaced by known per-image values so that
a loop that dropped, repeated or mis-divided images would show in the means."""

from types import SimpleNamespace

import pytest
import torch

from draw_core.training import evaluation

T = 3


class IdentityModel:
    """Stands in for DRAW: `model(x)` hands x on, so the patched loss terms can read each image's number."""

    device = torch.device("cpu")
    cfg = SimpleNamespace(T=T)

    def __call__(self, x, *, generator, sample):
        return x


def numbered_images(n: int) -> torch.Tensor:
    """n images (n, 1, 2, 2) whose every pixel is the image's index."""
    return torch.arange(n, dtype=torch.float32)[:, None, None, None].expand(n, 1, 2, 2).clone()


def index_of(x: torch.Tensor) -> torch.Tensor:
    return x[:, 0, 0, 0]  # (B,)


@pytest.fixture
def known_bounds(monkeypatch):
    """Per-image terms: total i, recon 2i, kl 3i with step t holding (t + 1) i / 2; IWAE 10 + i. Records the k asked."""
    asked = []

    def loss_terms(x, images):
        i = index_of(x)
        steps = torch.stack([(t + 1) * i / 2 for t in range(T)])  # (T, B): sums to 3i
        return SimpleNamespace(total=i, recon=2 * i, kl=3 * i, kl_per_step=steps)

    def iwae_bound(model, x, k, *, generator):
        asked.append((len(x), k))
        return 10 + index_of(x)

    monkeypatch.setattr(evaluation, "loss_terms", loss_terms)
    monkeypatch.setattr(evaluation, "iwae_bound", iwae_bound)
    return asked


def test_every_image_is_counted_once_across_batches_and_importance_sub_batches(known_bounds):
    n = 10  # batches of 4, 4, 2; IWAE sub-batches of 4 // 3 = 1 image
    result = evaluation.evaluate(IdentityModel(), numbered_images(n), k=3, batch_size=4)
    mean_index = (n - 1) / 2
    assert result.n == n
    assert result.elbo_nats == pytest.approx(mean_index)
    assert result.recon_nats == pytest.approx(2 * mean_index)
    assert result.kl_nats == pytest.approx(3 * mean_index)
    assert result.iwae_nats == pytest.approx(10 + mean_index)
    assert result.kl_per_step == pytest.approx([(t + 1) * mean_index / 2 for t in range(T)])
    assert known_bounds == [(1, 3)] * n, "one image per importance sub-batch, each image once"
    assert result.bits_per_dim == pytest.approx(mean_index / (4 * torch.log(torch.tensor(2.0)).item()))


def test_a_stop_between_batches_reports_the_images_done(known_bounds):
    calls = []
    result = evaluation.evaluate(
        IdentityModel(), numbered_images(10), k=1, batch_size=4, should_stop=lambda: calls.append(1) or len(calls) > 1
    )
    assert result.n == 8, "the first two batches of 4"
    assert result.elbo_nats == pytest.approx(3.5)  # mean of 0 ... 7
    assert result.iwae_nats is None and known_bounds == []


def test_classification_error_counts_every_image_when_the_batch_does_not_divide_them():
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    images = labels.float()[:, None]  # (7, 1)
    wrong = torch.tensor([False, True, False, False, False, True, True])  # 3 of 7, the last in the short batch

    seen = []

    def predict_numbered(x):
        start = sum(len(b) for b in seen)
        seen.append(x)
        flip = wrong[start : start + len(x)]
        answer = torch.where(flip, (x[:, 0].long() + 1) % 3, x[:, 0].long())
        return torch.nn.functional.one_hot(answer, 3).float()

    done, error = evaluation.classification_error(predict_numbered, images, labels, batch_size=3)
    assert [len(b) for b in seen] == [3, 3, 1]
    assert done == 7 and error == pytest.approx(3 / 7)


def test_an_empty_test_set_is_refused_by_name():
    with pytest.raises(ValueError, match="no test images to evaluate"):
        evaluation.evaluate(SimpleNamespace(device=torch.device("cpu")), torch.zeros(0, 1, 28, 28))
    with pytest.raises(ValueError, match="no test images to evaluate"):
        evaluation.classification_error(lambda x: x, torch.zeros(0, 1, 4, 4), torch.zeros(0, dtype=torch.long))
