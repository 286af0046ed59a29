"""Model and training configuration.

`DrawConfig` describes the network (it is stored inside every checkpoint and rebuilds the model);
`TrainConfig` describes the optimisation. Both validate themselves on construction, so a bad value
is refused with a message naming the field before any work starts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from draw_core.nn.likelihood import canvas_channels, check_likelihood


def _check_range(name: str, value, low, high) -> None:
    if not (low <= value <= high):
        raise ValueError(f"{name}={value!r} is out of range: expected {low} <= {name} <= {high}")


def _check_type(name: str, value, kind: type) -> None:
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise ValueError(f"{name}={value!r} must be of type {kind.__name__}")


def _check_number(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}={value!r} must be a number")


@dataclass(frozen=True)
class DrawConfig:
    height: int = 28  # image height in pixels (the paper's B)
    width: int = 28  # image width in pixels (the paper's A)
    channels: int = 1  # colour channels; attention is applied to each channel with the same filters
    T: int = 64  # number of glimpses / canvas updates (Table 3: 64 for MNIST)
    read_n: int = 2  # read grid is read_n x read_n (Table 3: 2)
    write_n: int = 5  # write grid is write_n x write_n (Table 3: 5)
    enc_size: int = 256  # encoder LSTM units (Table 3: 256)
    dec_size: int = 256  # decoder LSTM units (Table 3: 256)
    z_size: int = 100  # latent dimensions per step (Table 3: 100)
    read_attn: bool = True  # selective read (sec. 3.2); False reads the whole [x, x_hat] (eq. 17)
    write_attn: bool = True  # selective write (sec. 3.3); False writes a full-canvas patch (eq. 18)
    # D(X | c_T) of eq. 9: 'bernoulli' for binary pixels, 'logistic' for 8-bit levels (a discretised logistic per
    # sub-pixel, whose canvas holds a mean and a log-scale channel per image channel), 'logistic-coupled' for colour
    # (the same, each channel's mean moved by the channels before it; draw_core.nn.likelihood)
    likelihood: str = "bernoulli"

    def __post_init__(self) -> None:
        for name in ("height", "width", "channels", "T", "read_n", "write_n", "enc_size", "dec_size", "z_size"):
            _check_type(name, getattr(self, name), int)
        for name in ("read_attn", "write_attn"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}={getattr(self, name)!r} must be True or False")
        check_likelihood(self.likelihood)
        _check_range("height", self.height, 4, 256)
        _check_range("width", self.width, 4, 256)
        _check_range("channels", self.channels, 1, 4)
        if self.likelihood == "logistic-coupled" and self.channels < 2:
            raise ValueError(
                f"likelihood='logistic-coupled' couples colour channels: it needs channels >= 2, got {self.channels} "
                "(use 'logistic' for one channel)"
            )
        _check_range("T", self.T, 1, 256)
        _check_range("enc_size", self.enc_size, 1, 4096)
        _check_range("dec_size", self.dec_size, 1, 4096)
        _check_range("z_size", self.z_size, 1, 1024)
        # N = 1 would divide by zero in the stride of eq. 24.
        _check_range("read_n", self.read_n, 2, max(self.height, self.width))
        _check_range("write_n", self.write_n, 2, max(self.height, self.width))

    @classmethod
    def preset(cls, name: str) -> DrawConfig:
        """The named configurations: 'mnist' (Table 3), 'mnist-noattn' and the quick 'mnist-small'."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}: expected one of {sorted(PRESETS)}")
        return cls(**PRESETS[name])

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> DrawConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown DrawConfig fields {unknown}: expected only {sorted(known)}")
        return cls(**values)

    @property
    def read_size(self) -> int:
        """Length of the read vector r_t fed to the encoder (eq. 17 or eq. 27)."""
        if self.read_attn:
            return 2 * self.channels * self.read_n * self.read_n
        return 2 * self.channels * self.height * self.width

    @property
    def canvas_channels(self) -> int:
        """Channels of the canvas c_t: the image's, twice over for the logistic likelihood (mean and log-scale)."""
        return canvas_channels(self.likelihood, self.channels)

    @property
    def write_size(self) -> int:
        """Length of the write patch w_t emitted by the decoder (eq. 18 or eq. 28), all canvas channels."""
        if self.write_attn:
            return self.canvas_channels * self.write_n * self.write_n
        return self.canvas_channels * self.height * self.width


PRESETS: dict[str, dict] = {
    "mnist": dict(),
    "mnist-noattn": dict(read_attn=False, write_attn=False),
    "mnist-small": dict(T=16, enc_size=128, dec_size=128, z_size=32),
    # Two digits on 60x60: a 5x5 read (2x2 cannot find two digits on a canvas 4.6 times MNIST's), Table 3's write,
    # LSTM and z; T=32 rather than 64 so a CPU can train it: the window has 16 writes for each digit.
    "mnist-two": dict(height=60, width=60, T=32, read_n=5, write_n=5),
    "svhn": dict(  # Table 3's SVHN row
        height=32,
        width=32,
        channels=3,
        T=32,
        read_n=12,
        write_n=12,
        enc_size=800,
        dec_size=800,
        z_size=100,
        likelihood="logistic-coupled",
    ),
    # A CPU variant of the CIFAR-10 row: a 12x12 read (SVHN's, Table 3) and a full-canvas write (eq. 18) of every
    # sub-pixel's mean and scale at each of 16 steps, LSTM 256, z 100. Measured on our shared CPU core the paper's
    # T=64, 5x5 model trains at 14 img/s; without any attention this one's encoder layer alone is 6.8 M weights (too
    # large to ship, and 2.5 times the work of a 12x12 read). The colour presets couple the channels (PixelCNN++).
    "cifar10-cpu": dict(
        height=32,
        width=32,
        channels=3,
        T=16,
        read_n=12,
        enc_size=256,
        dec_size=256,
        z_size=100,
        write_attn=False,
        likelihood="logistic-coupled",
    ),
    "cifar10": dict(  # Table 3's CIFAR-10 row
        height=32,
        width=32,
        channels=3,
        T=64,
        read_n=5,
        write_n=5,
        enc_size=400,
        dec_size=400,
        z_size=200,
        likelihood="logistic-coupled",
    ),
}


# TrainConfig.compile_mode: torch.compile's mode (the latter replays CUDA graphs)
COMPILE_MODES = ("default", "reduce-overhead")
MAX_SEED = 2**63 - 1  # the largest seed torch.Generator.manual_seed takes as a signed 64-bit integer
TIME_BUDGET_RANGE_S = (1.0, 30 * 24 * 3600.0)  # TrainConfig.time_budget_s: one second to thirty days
AMP_MODES = ("off", "bf16")  # TrainConfig.amp: float32, or bfloat16 autocast around the loss


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = "mnist"  # dataset name, see draw_core.data.DATASETS
    batch_size: int = 128  # images per Adam step
    steps: int = 10_000  # total optimisation steps (a time budget can end the run earlier)
    time_budget_s: float | None = None  # wall-clock budget in seconds; None means steps alone decide
    lr: float = 1e-3  # peak Adam learning rate
    lr_min_ratio: float = 0.05  # the cosine schedule decays the rate to lr * lr_min_ratio
    warmup_steps: int = 200  # linear warm-up of the learning rate over this many steps
    grad_clip: float = 10.0  # clip the global gradient norm to this value
    seed: int = 0  # seeds the model init, the batch order and the binarisation
    device: str = "auto"  # 'auto' (CUDA, then MPS, then CPU), or a torch device string
    eval_every: int = 1000  # steps between evaluations of the test bound (0: only at the end)
    eval_limit: int = 1000  # test digits used by the periodic evaluation
    checkpoint_every: int = 1000  # steps between checkpoints (0: only at the end)
    log_every: int = 10  # steps between progress reports
    sample_every: int = 200  # steps between reports that carry a batch of samples (0: never)
    extra: dict = field(default_factory=dict)  # free-form notes stored in the checkpoint meta
    amp: str = "off"  # precision of the loss's forward pass: 'off' (float32) or 'bf16' (torch.autocast to bfloat16)
    compile: bool = False  # torch.compile the forward (DRAW: its glimpse, DRAW.compile_step; plain hot path; for CUDA)
    compile_mode: str = "default"  # with compile: torch.compile's mode; 'reduce-overhead' replays CUDA graphs
    compile_glimpses: int = 1  # with compile: a DRAW generator's glimpses unrolled into one compiled call (<= T)
    kl_weight: float = 1.0  # beta, the weight of L^z in eq. 12 (1 = the ELBO); 0 trains a plain autoencoder: z_t = mu_t
    code_weight: float = 0.0  # kl_weight 0 only: weight of 1/2 sum_t |mu_t|^2, a regularised autoencoder's code penalty

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # types from the annotations above (strings under __future__ annotations)
            value = getattr(self, f.name)
            if f.type in ("int", "str", "dict"):
                _check_type(f.name, value, {"int": int, "str": str, "dict": dict}[f.type])
            elif f.type == "float" or (f.type == "float | None" and value is not None):
                _check_number(f.name, value)
        _check_range("batch_size", self.batch_size, 1, 65_536)
        _check_range("steps", self.steps, 1, 10_000_000)
        _check_range("lr", self.lr, 1e-7, 1.0)
        _check_range("lr_min_ratio", self.lr_min_ratio, 0.0, 1.0)
        _check_range("warmup_steps", self.warmup_steps, 0, 10_000_000)
        _check_range("grad_clip", self.grad_clip, 1e-6, 1e6)
        _check_range("kl_weight", self.kl_weight, 0.0, 100.0)
        _check_range("code_weight", self.code_weight, 0.0, 100.0)
        if self.code_weight > 0 and self.kl_weight > 0:
            raise ValueError(
                f"code_weight={self.code_weight} penalises a plain autoencoder's codes: it needs kl_weight=0, "
                f"got kl_weight={self.kl_weight} (the KL term already holds the codes near the prior)"
            )
        _check_range("eval_limit", self.eval_limit, 1, 1_000_000)
        for name in ("eval_every", "checkpoint_every", "sample_every"):
            _check_range(name, getattr(self, name), 0, 10_000_000)
        _check_range("log_every", self.log_every, 1, 10_000_000)
        _check_range("seed", self.seed, 0, MAX_SEED)
        _check_range("compile_glimpses", self.compile_glimpses, 1, 256)
        if self.time_budget_s is not None:
            _check_range("time_budget_s", self.time_budget_s, *TIME_BUDGET_RANGE_S)
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp={self.amp!r} is not a precision: expected one of {AMP_MODES}")
        if not isinstance(self.compile, bool):
            raise ValueError(f"compile={self.compile!r} must be True or False")
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(f"compile_mode={self.compile_mode!r} is not a mode: expected one of {COMPILE_MODES}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
