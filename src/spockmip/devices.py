"""Where computations run: device choice, mixed precision, memory layout, compilation, CPU threads.

CPU is first-class (fp32, threads taken from the job's allocation, the default memory layout, so results
are those of every earlier version); CUDA gets fp16 autocast, as the released code trained and predicted
with mixed precision, and the channels-last layout its 3D convolutions are fastest in.
"""

from __future__ import annotations

import os

import torch


def select_device(requested: str | None = None) -> torch.device:
    """The requested device, else CUDA when present, else the CPU."""
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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
