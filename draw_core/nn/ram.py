"""The Recurrent Attention Model (Mnih et al. 2014, "Recurrent Models of Visual Attention"), DRAW's baseline in
sec. 4.1, Table 1: hard glimpses at sampled locations, trained with REINFORCE.

The parts, in the paper's terms (sec. 3 and 4 of Mnih et al.):
- glimpse sensor rho(x, l): a retina of `scales` square patches centred on l, the first `patch` x `patch` pixels,
  each next one twice as wide, every one averaged down to `patch` x `patch` (Table 1: 12 x 12, 4 scales, i.e.
  12, 24, 48 and 96 pixels wide). Pixels off the image read 0. Patch corners are rounded to whole pixels: nothing
  is differentiated through l, whose gradient comes from REINFORCE alone.
- glimpse network: h_g = ReLU(Linear(rho)), h_l = ReLU(Linear(l)), g = ReLU(Linear(h_g) + Linear(h_l)) with
  h_g and h_l of 128 units and g of 256 ("for all attention models trained in this paper").
- core network: an LSTM of 256 units, h_t = LSTM(h_{t-1}, g_t). (Mnih et al. use rectifier units for the static
  classification tasks and an LSTM for the dynamic one; DRAW's Table 1 comparison uses an LSTM here, as DRAW does.)
- location network: the next location is drawn from a Gaussian with mean tanh(Linear(h)) and a fixed standard
  deviation `location_std` per coordinate (Mnih et al. use Linear(h); tanh keeps the mean on the image).
  It reads h detached: "the location network is always trained with REINFORCE", while the cross-entropy trains the
  action network and is backpropagated "through the core and glimpse networks" (Mnih et al. sec. 4). Measured on
  cluttered MNIST, letting the policy gradient into the core as well left the classifier at chance for 3,000 steps
  while every location collapsed onto one point; with h detached both improve from the start.
  The first location comes from the same network at h_0 = 0, so it is learned like the others.
- action network: class scores Linear(h_T) after the last glimpse.
- baseline: b_t = Linear(h_{t-1}) on the state that chose l_t, with h detached (it is trained by its own squared
  error, and must not shape the representation).

Training (`ram_loss`): cross-entropy for the action, core and glimpse networks plus REINFORCE for the location
network, reward R = 1 for a correct final answer and 0 otherwise, gradient sum_t log pi(l_t | h_{t-1}) (R - b_t),
the baseline trained by (b_t - R)^2 (the hybrid supervised loss of Mnih et al. sec. 4). The three terms reach
disjoint parameters: the locations are sampled values (no gradient flows through them into the sensor) and both
the location network and the baseline read h detached.

Locations are (x, y) in [-1, 1]: (-1, -1) is the image's top-left corner, (0, 0) its centre, (1, 1) its bottom-
right corner; x runs along the width.

Letters used in shape comments:
    T glimpses, B batch, C channels, H height, W width, P patch side, S scales, L = P 2^(S-1) the widest patch,
    U LSTM units, K classes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Normal

from draw_core.config import _check_number, _check_range, _check_type
from draw_core.nn.classifier import classification_loss, config_from_dict
from draw_core.nn.model import lstm_step, standard_normal


@dataclass(frozen=True, kw_only=True)
class RamConfig:
    height: int = 100  # image height in pixels (Table 1: 100 x 100 cluttered MNIST)
    width: int = 100  # image width in pixels
    channels: int = 1  # colour channels; the retina takes each with the same patches
    glimpses: int = 8  # number of glimpses T (Table 1: 8, also 4)
    patch: int = 12  # side P of every retina patch after averaging (Table 1: 12 x 12)
    scales: int = 4  # patches per glimpse, each twice as wide as the one before (Table 1: 4 scales)
    glimpse_hidden: int = 128  # units of h_g, the "what" layer of the glimpse network (Mnih et al.: 128)
    location_hidden: int = 128  # units of h_l, the "where" layer of the glimpse network (Mnih et al.: 128)
    glimpse_size: int = 256  # units of the glimpse feature g (Mnih et al.: 256)
    hidden: int = 256  # core LSTM units (Mnih et al.: 256)
    classes: int = 10  # number of classes scored from the final state
    location_std: float = 0.15  # fixed standard deviation of the location policy, in [-1, 1] image coordinates

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name != "location_std":
                _check_type(f.name, getattr(self, f.name), int)
        _check_number("location_std", self.location_std)
        _check_range("height", self.height, 4, 256)
        _check_range("width", self.width, 4, 256)
        _check_range("channels", self.channels, 1, 4)
        _check_range("glimpses", self.glimpses, 1, 256)
        _check_range("patch", self.patch, 1, max(self.height, self.width))
        _check_range("scales", self.scales, 1, 8)
        for name in ("glimpse_hidden", "location_hidden", "glimpse_size", "hidden"):
            _check_range(name, getattr(self, name), 1, 4096)
        _check_range("classes", self.classes, 2, 1000)
        _check_range("location_std", self.location_std, 1e-3, 2.0)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> RamConfig:
        return config_from_dict(cls, values)

    @property
    def widest(self) -> int:
        """Side L in pixels of the widest retina patch, P 2^(S-1)."""
        return self.patch * 2 ** (self.scales - 1)


@dataclass
class RamResult:
    """One pass of RAM over a batch."""

    logits: torch.Tensor  # (B, K) class scores after the last glimpse
    step_logits: torch.Tensor  # (T, B, K) the action network applied after every glimpse; [-1] is `logits`
    locations: torch.Tensor  # (T, B, 2) the (x, y) in [-1, 1] each glimpse was taken at (detached)
    location_means: torch.Tensor  # (T, B, 2) the policy's mean for each location
    log_probs: torch.Tensor  # (T, B) log pi(l_t | h_{t-1}) of each location, summed over x and y
    baselines: torch.Tensor  # (T, B) b_t, the predicted reward when l_t was chosen
    glimpses: torch.Tensor  # (T, B, S C, P, P) the retina at each glimpse, scale-major (smallest patch first)


@dataclass
class RamLoss:
    """The terms of the hybrid loss; `total` is what the optimiser minimises, the rest is for logging."""

    total: torch.Tensor  # cross_entropy + reinforce + baseline
    cross_entropy: torch.Tensor  # action network against the labels
    reinforce: torch.Tensor  # -sum_t log pi(l_t) (R - b_t), batch mean
    baseline: torch.Tensor  # (b_t - R)^2, mean over steps and batch
    error: torch.Tensor  # 1 - mean reward: the batch's error rate


def ram_loss(result: RamResult, labels: torch.Tensor) -> RamLoss:
    """Mnih et al. sec. 4 (hybrid supervised loss) with REINFORCE (their eq. 2 with a baseline) for the locations."""
    cross_entropy = classification_loss(result.logits, labels)
    reward = (result.logits.argmax(-1) == labels).float()  # (B,) R = 1 for a correct final answer
    advantage = (reward - result.baselines).detach()  # (T, B) R - b_t, a constant for the policy gradient
    reinforce = -(result.log_probs * advantage).sum(0).mean()
    baseline = F.mse_loss(result.baselines, reward.expand_as(result.baselines))
    return RamLoss(
        total=cross_entropy + reinforce + baseline,
        cross_entropy=cross_entropy,
        reinforce=reinforce,
        baseline=baseline,
        error=1 - reward.mean(),
    )


def summed_area_table(x: torch.Tensor) -> torch.Tensor:
    """x (B, C, H, W) -> (B, C, H + 1, W + 1) with entry [i, j] the sum of x[:, :, :i, :j]. In float64 (float32 on
    MPS, which has none), so the difference of two sums over a whole image keeps a single pixel exact."""
    dtype = torch.float32 if x.device.type == "mps" else torch.float64
    return F.pad(x.to(dtype).cumsum(-1).cumsum(-2), (1, 0, 1, 0))


class RAM(nn.Module):
    def __init__(self, cfg: RamConfig):
        super().__init__()
        if not isinstance(cfg, RamConfig):
            raise TypeError(f"RAM expects a RamConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        retina_size = cfg.scales * cfg.channels * cfg.patch * cfg.patch
        self.what = nn.Linear(retina_size, cfg.glimpse_hidden)  # h_g = ReLU(Linear(rho))
        self.where = nn.Linear(2, cfg.location_hidden)  # h_l = ReLU(Linear(l))
        self.what_out = nn.Linear(cfg.glimpse_hidden, cfg.glimpse_size)  # g = ReLU(Linear(h_g) + ...
        self.where_out = nn.Linear(cfg.location_hidden, cfg.glimpse_size)  # ... + Linear(h_l))
        self.core = nn.Linear(cfg.glimpse_size + cfg.hidden, 4 * cfg.hidden)  # LSTM(h_{t-1}, g_t), weights fused
        self.location = nn.Linear(cfg.hidden, 2)  # mean of the location policy, tanh(Linear(h_{t-1}.detach()))
        self.baseline = nn.Linear(cfg.hidden, 1)  # b_t = Linear(h_{t-1}.detach())
        self.output = nn.Linear(cfg.hidden, cfg.classes)  # action network

    @property
    def device(self) -> torch.device:
        return self.output.weight.device

    def patch_corners(self, locations: torch.Tensor) -> torch.Tensor:
        """(..., S, 2) top-left (row, column) in 0-based pixels of every retina patch centred on `locations`
        (..., 2); patch s is P 2^s pixels wide. A patch may stick out of the image (those pixels read 0)."""
        cfg = self.cfg
        L = cfg.widest
        size = torch.tensor([cfg.width, cfg.height], device=locations.device, dtype=locations.dtype)
        # (..., 2) (x, y) in pixels, 0 at the left/top edge; beyond +-2 every patch is off the image, so clamping there
        # changes no pixel and keeps the indices small.
        centre = (locations.clamp(-2, 2) + 1) / 2 * size
        widest = torch.round(centre - L / 2).long().flip(-1)  # (..., 2) (row, column) of the widest patch
        inset = [(L - cfg.patch * 2**s) // 2 for s in range(cfg.scales)]  # every patch shares the widest's centre
        return widest.unsqueeze(-2) + torch.tensor(inset, device=locations.device)[:, None]  # (..., S, 2)

    def retina(self, table: torch.Tensor, locations: torch.Tensor) -> torch.Tensor:
        """The glimpse sensor rho(x, l) from x's `summed_area_table` (B, C, H + 1, W + 1) and locations (B, 2):
        (B, S C, P, P), scale-major. Pixel (i, j) of scale s is the mean of the 2^s x 2^s block of x it covers
        (average pooling), with pixels off the image counted as 0; four table entries give each block's sum."""
        cfg = self.cfg
        B, C = table.shape[:2]
        P, S = cfg.patch, cfg.scales
        device = locations.device
        pool = 2 ** torch.arange(S, device=device)  # (S,) pooling factor of each scale
        edges = self.patch_corners(locations)[..., None] + torch.arange(P + 1, device=device) * pool[:, None, None]
        rows = edges[:, :, 0].clamp(0, cfg.height)  # (B, S, P + 1) block edges, cut to the image
        columns = edges[:, :, 1].clamp(0, cfg.width)  # (B, S, P + 1)
        index = (rows[..., :, None] * (cfg.width + 1) + columns[..., None, :]).flatten(1)  # (B, S (P + 1)^2)
        at = table.flatten(2).gather(2, index[:, None].expand(B, C, -1)).view(B, C, S, P + 1, P + 1)
        sums = at[..., 1:, 1:] - at[..., :-1, 1:] - at[..., 1:, :-1] + at[..., :-1, :-1]  # (B, C, S, P, P)
        means = sums / pool.square()[:, None, None]
        return means.transpose(1, 2).reshape(B, S * C, P, P).to(self.output.weight.dtype)

    def glimpse_features(self, retina: torch.Tensor, locations: torch.Tensor) -> torch.Tensor:
        """The glimpse network: g = ReLU(Linear(ReLU(Linear(rho))) + Linear(ReLU(Linear(l)))), (B, glimpse_size)."""
        what = F.relu(self.what(retina.flatten(1)))  # (B, glimpse_hidden)
        where = F.relu(self.where(locations))  # (B, location_hidden)
        return F.relu(self.what_out(what) + self.where_out(where))

    def classify(self, x: torch.Tensor, *, sample: bool = True, generator: torch.Generator | None = None) -> RamResult:
        """`glimpses` steps of RAM over x (B, C, H, W) in [0, 1]. sample=True draws every location from the policy
        (training); sample=False takes the policy's mean (a deterministic evaluation)."""
        cfg = self.cfg
        expected = (cfg.channels, cfg.height, cfg.width)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"x must have shape (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
        B = x.shape[0]
        noise = standard_normal((cfg.glimpses, B, 2), generator, x.device) if sample else None  # (T, B, 2)
        table = summed_area_table(x)  # (B, C, H + 1, W + 1), made once for every glimpse
        h = c = x.new_zeros(B, cfg.hidden)  # (B, U)
        states, locations, means, log_probs, baselines, glimpses = [], [], [], [], [], []
        for t in range(cfg.glimpses):
            mean = torch.tanh(self.location(h.detach()))  # (B, 2) policy mean from h_{t-1}, REINFORCE only
            location = (mean + cfg.location_std * noise[t] if sample else mean).detach()  # l_t, no pathwise grad
            log_probs.append(Normal(mean, cfg.location_std).log_prob(location).sum(-1))  # (B,) log pi(l_t | h_{t-1})
            baselines.append(self.baseline(h.detach()).squeeze(-1))  # (B,) b_t
            retina = self.retina(table, location)  # (B, S C, P, P)
            g = self.glimpse_features(retina, location)  # (B, glimpse_size)
            h, c = lstm_step(self.core(torch.cat([g, h], dim=1)), c)  # (B, U)
            states.append(h)
            locations.append(location)
            means.append(mean)
            glimpses.append(retina)
        step_logits = self.output(torch.stack(states))  # (T, B, K)
        return RamResult(
            logits=step_logits[-1],
            step_logits=step_logits,
            locations=torch.stack(locations),
            location_means=torch.stack(means),
            log_probs=torch.stack(log_probs),
            baselines=torch.stack(baselines),
            glimpses=torch.stack(glimpses),
        )

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> RamResult:
        return self.classify(x, generator=generator)
