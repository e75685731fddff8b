"""Where computations run: device choice, mixed precision, memory layout, compilation, CPU threads.

CPU is first-class (fp32, threads taken from the job's allocation, the default memory layout, so results
are those of every earlier version); CUDA gets fp16 autocast, as the released code trained and predicted
with mixed precision, and the channels-last layout its 3D convolutions are fastest in.
"""

from __future__ import annotations

import os

import torch

from spockmip.errors import DeviceError

DEVICE_TYPES = ("cpu", "cuda", "mps")


def select_device(requested: str | None = None, option: str = "--device") -> torch.device:
    """The requested device, else CUDA when present, else the CPU.

    A request is checked here, before any work: torch would otherwise accept ``cuda:3`` and fail at the
    first tensor moved there, minutes into loading data, with an error that names no option. ``option``
    is the command-line option or config key the request came from; every refusal starts with it.
    """
    if not requested:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        device = None
    if device is None or device.type not in DEVICE_TYPES:
        raise DeviceError(f"{option} {requested}: unknown device; expected cpu, cuda, cuda:N or mps")
    if device.type == "cuda":
        _check_cuda(device, f"{option} {requested}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"{option} {requested}: MPS (Apple GPU) is not available on this machine")
    return device


def _check_cuda(device: torch.device, source: str) -> None:
    """Refuse a CUDA device this machine lacks, saying whether torch or the machine is the reason."""
    if not torch.cuda.is_available():
        reason = (
            "built without CUDA"
            if torch.version.cuda is None
            else f"CUDA {torch.version.cuda}, no GPU visible"
        )
        raise DeviceError(
            f"{source}: CUDA is not available on this machine (torch {torch.__version__}, {reason})"
        )
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise DeviceError(f"{source}: no such GPU; this machine has {count} (cuda:0 to cuda:{count - 1})")


def autocast(device: torch.device) -> torch.autocast:
    """Mixed precision on CUDA; exact fp32 on the CPU."""
    return torch.autocast(device_type=device.type, dtype=torch.float16, enabled=device.type == "cuda")


def memory_format(device: torch.device) -> torch.memory_format:
    """Layout of the network's weights and input batches on ``device``.

    channels_last_3d on CUDA: cuDNN's fp16 3D convolutions run in it without the layout transposes the
    default layout costs (a published-size training step went from 150 to 104 ms on an H200,
    docs/performance.md). Elsewhere the default layout: CPU results stay those of earlier versions.
    """
    return torch.channels_last_3d if device.type == "cuda" else torch.contiguous_format


def compiled(model: torch.nn.Module, enabled: bool) -> torch.nn.Module:
    """``model`` compiled with ``torch.compile`` when ``enabled``, else ``model`` itself.

    Shapes are static (``dynamic=False``): each batch shape is compiled once, on first use, into kernels
    specialised to it, rather than into one slower kernel for every size. Compiling costs start-up time
    and changes results in their last bits (fused kernels round differently); see docs/performance.md.
    """
    return torch.compile(model, dynamic=False) if enabled else model


def on_device(tensor: torch.Tensor, device: torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``tensor`` on ``device`` (in ``dtype``) without the host waiting for the GPU.

    A plain copy from host memory to a GPU waits until the GPU has finished everything queued before it;
    from page-locked memory it is queued like a kernel. Small host tensors made during a step (random
    numbers, interpolation matrices) go through page-locked memory for that reason. Between other devices
    (or none) it is an ordinary ``Tensor.to``.
    """
    if tensor.device.type == "cpu" and device.type == "cuda":
        tensor = tensor.pin_memory()
    return tensor.to(device=device, dtype=dtype, non_blocking=True)


# Loader processes a GPU run gets unless told: enough to cut 15 patches of 64^3 while the GPU computes a
# step, few enough to leave the job's other cores alone.
GPU_LOADER_WORKERS = 4


def loader_workers(requested: int | None, device: torch.device, threads: int) -> int:
    """DataLoader worker processes: the request, else none on a CPU (the job's cores compute the network;
    a worker would take one from it) and on a GPU up to :data:`GPU_LOADER_WORKERS`, one core fewer than
    the job's ``threads`` (the training process keeps one), so patches are cut while the GPU computes."""
    if requested is not None:
        return requested
    if device.type != "cuda":
        return 0
    return min(GPU_LOADER_WORKERS, max(threads - 1, 0))


def resolve_threads(requested: int | None = None) -> int:
    """Threads for torch: the request, else the job's allocation (OMP_NUM_THREADS, SLURM), else the CPUs."""
    if requested:
        return requested
    for variable in ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK"):
        value = os.environ.get(variable, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return len(os.sched_getaffinity(0))
