"""Which device to train on, how to name the hardware in a model card, and how much memory a training run needs.

The memory estimate of a run (`estimate_training_bytes`) is what a job is checked against before it starts, for a
network of any model kind (its config picks the kind, draw_core.nn.kinds):

    RUNTIME_BYTES + PARAMETER_COPIES * 4 bytes * parameters + batch * peak factor * saved bytes per image

"Saved bytes per image" are the tensors autograd keeps for the backward pass of one image under the kind's training
loss (draw_core.training.objectives), counted exactly (a saved-tensors hook) on real one-image forward passes of the
same network with 2 and 3 steps (DRAW's T, a classifier's glimpses): every step builds the same graph, so their
difference is one step's share and T of them plus the rest is the whole. That costs milliseconds and at most a few
MB, whatever the config. The peak factor (`peak_factor`: BACKWARD_FACTOR, or the kind's own in KIND_PEAK_FACTORS)
turns saved bytes into the peak the process really reaches (the backward pass's gradients of activations come on
top, and whatever the forward pass makes and drops). It was measured per preset as the rise of peak resident memory
(Linux's VmHWM) over two training steps with batches of 64 (32 for the larger images), less the parameters'
gradients, divided by the saved bytes; fused CPU path / plain path: mnist 1.2 / 1.3, mnist-noattn 1.7 / 1.9,
mnist-small 1.1 / 1.2, 60x60 with 12x12 attention 1.1 / 1.5, 32x32 colour without attention 1.9 / 2.4. The
classifiers of sec. 4.1 were measured the same way on batches of 64 and 256 drawn from the cluttered stream (the
batch's making included): mnist-cluttered-draw 1.2 / 1.3 (batch 64 / 256), mnist-cluttered-ram 4.7 / 3.8, RAM's
peak being mostly the float64 summed-area table of each image its retina reads from, made and dropped in the
forward pass and never saved. tests/test_hardening.py measures the DRAW presets again (marked slow) and checks the
estimate stays above them.
"""

from __future__ import annotations

import dataclasses
import functools
import platform
from pathlib import Path

import torch

from draw_core import settings
from draw_core.nn.kinds import kind_of_config
from draw_core.training.objectives import objective_for

MB = 1024 * 1024
RUNTIME_BYTES = 512 * MB  # torch's own allocations at the first step (~200 MB measured) and the dataset in memory
PARAMETER_COPIES = 4  # every parameter lives four times while training: the weight, its gradient, Adam's two moments
BACKWARD_FACTOR = 3.0  # peak memory per image / bytes saved for backward per image (at most 2.4 measured, see above)
KIND_PEAK_FACTORS = {"ram": 6.0}  # kinds above BACKWARD_FACTOR: RAM measured up to 4.7 (see above)
# Float32 copies of one input image a step holds whatever its steps: the batch as the data stream renders it (a
# cluttered image's canvas and pasted pieces), RAM's float64 summed-area table, the model's first reads. With few
# steps this floor is above the saved tensors: RAM with 1 glimpse measured 256 kB per 100x100 image, 82 kB estimated.
INPUT_COPIES = 8
STEPS_FIELD = {"draw": "T", "draw-classifier": "glimpses", "ram": "glimpses"}  # each kind's config field of steps


def select_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA, then MPS, then the CPU; anything else is passed to torch.device and checked."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}: expected auto, cpu, cuda, cuda:<index> or mps") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unknown device {name!r}: expected auto, cpu, cuda, cuda:<index> or mps")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but CUDA is not available on this machine")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} was asked for but MPS is not available on this machine")
    return device


def device_name(device: torch.device) -> str:
    """The device as a caption names it: 'cpu', 'mps', or CUDA with its index ('cuda:0' for 'cuda')."""
    if device.type == "cuda" and device.index is None:
        return f"cuda:{torch.cuda.current_device()}"
    return str(device)


def available_devices() -> list[str]:
    """The devices this machine can train on, best first."""
    devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    return devices + ["cpu"]


def hardware_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    threads = torch.get_num_threads()
    return f"{cpu}, {threads} thread{'s' if threads > 1 else ''}"


def parameter_count(cfg) -> int:
    """Parameters of the network `cfg` (any model kind's config) builds, counted on the meta device (nothing is
    allocated)."""
    with torch.device("meta"):
        return sum(p.numel() for p in kind_of_config(cfg).model_class(cfg).parameters())


def check_parameter_count(cfg) -> int:
    """The network's parameter count, or a ValueError when it is over DRAW_MAX_PARAMS (its checkpoint could not be
    loaded, and building it could exhaust the memory)."""
    count, cap = parameter_count(cfg), settings.max_params()
    if count > cap:
        raise ValueError(
            f"this model would have {count:,} parameters, over this server's limit of {cap:,} (DRAW_MAX_PARAMS): "
            "choose smaller LSTMs, or attention instead of full-image reads and writes"
        )
    return count


def _example_batch(kind, cfg) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """One blank image (1, C, H, W) as the kind's objective takes a batch: alone for a generator, with a label (1,)
    for a classifier."""
    x = torch.zeros(1, cfg.channels, cfg.height, cfg.width)  # (1, C, H, W)
    return (x, torch.zeros(1, dtype=torch.long)) if kind.classifies else x


@functools.lru_cache(maxsize=256)
def saved_bytes_per_image(cfg) -> int:
    """Bytes autograd keeps for the backward pass of one image (the training loss of the model's kind, e.g. eq. 12
    on T steps), parameters excluded; counted on one-image passes with 2 and 3 steps (see the module docstring). A
    ValueError when the network is over DRAW_MAX_PARAMS: the two small networks are built for real."""
    check_parameter_count(cfg)
    kind = kind_of_config(cfg)
    steps_field = STEPS_FIELD[kind.name]

    def saved(steps: int) -> int:
        model = kind.model_class(dataclasses.replace(cfg, **{steps_field: steps}))
        parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
        storages: dict[int, int] = {}

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            storage = tensor.untyped_storage()
            if storage.data_ptr() not in parameters:
                storages[storage.data_ptr()] = storage.nbytes()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            objective_for(kind.name).batch_loss(model, _example_batch(kind, cfg))
        return sum(storages.values())

    two, three = saved(2), saved(3)
    return two + (getattr(cfg, steps_field) - 2) * (three - two)  # two steps and the rest, plus the other steps


def peak_factor(cfg) -> float:
    """Peak memory per image over saved bytes per image for the kind of `cfg` (module docstring)."""
    return KIND_PEAK_FACTORS.get(kind_of_config(cfg).name, BACKWARD_FACTOR)


def bytes_per_image(cfg) -> float:
    """Peak memory one image of a batch adds: the saved tensors times the kind's peak factor, and never less than
    INPUT_COPIES float32 copies of the image."""
    return max(peak_factor(cfg) * saved_bytes_per_image(cfg), INPUT_COPIES * 4 * cfg.channels * cfg.height * cfg.width)


def estimate_training_bytes(cfg, batch_size: int) -> int:
    """The memory a training run of `cfg` (any kind's config) with batches of `batch_size` needs at its peak (module
    docstring)."""
    parameters = PARAMETER_COPIES * 4 * parameter_count(cfg)
    return int(RUNTIME_BYTES + parameters + batch_size * bytes_per_image(cfg))


def largest_batch(cfg, limit_bytes: int) -> int:
    """The largest batch size whose estimate fits in `limit_bytes` (0 when not even one image fits)."""
    fixed = estimate_training_bytes(cfg, 0)
    return max(0, int((limit_bytes - fixed) // bytes_per_image(cfg)))


def free_memory_bytes(device: torch.device) -> int | None:
    """Memory the device has free now: CUDA's free memory, else the machine's available memory (Linux's
    MemAvailable, within the cgroup's limit when there is one); None when it cannot be told."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        info = Path("/proc/meminfo").read_text()
        free = next(int(line.split()[1]) * 1024 for line in info.splitlines() if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return None
    try:  # a container's limit (cgroup v2): 'max' or bytes
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            free = min(free, int(limit) - used)
    except (OSError, ValueError):
        pass
    return max(0, free)


def training_memory_limit(device: torch.device, *, reserved: int = 0) -> tuple[int, str]:
    """The memory one training run on `device` may need, and what sets it: DRAW_MAX_TRAIN_MEMORY_MB, or the memory
    free now less `reserved` (the peaks of the runs already going there, which may still grow) when that is less."""
    cap, free = settings.max_train_memory_bytes(), free_memory_bytes(device)
    if free is not None and free - reserved < cap:
        held = f", less {reserved / 2**30:.1f} GB for the runs already training there" if reserved else ""
        return max(0, free - reserved), f"free on {device} now{held}"
    return cap, "allowed per run on this server (DRAW_MAX_TRAIN_MEMORY_MB)"
