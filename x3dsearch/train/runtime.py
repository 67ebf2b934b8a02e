"""Where a training runs: device, CPU threads, memory format and peak memory."""
from __future__ import annotations

import copy
import os
import resource
import time
from contextlib import contextmanager
from typing import Iterator, TypeVar

import torch
from torch import nn

from ..errors import X3DSearchError
from ..utils.cpus import local_cpus


def resolve_device(device: str | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise X3DSearchError(f"unknown device '{device}' (use cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise X3DSearchError(f"device '{device}' asked for, but CUDA is not available")
    return dev


def granted_cpus() -> int:
    """CPUs this process may use: Ray sets OMP_NUM_THREADS to a trial's CPUs; else the affinity mask."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return local_cpus()


@contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """Intra-op threads follow the CPUs granted (``threads``, Ray's OMP_NUM_THREADS or the affinity)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads or granted_cpus())
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


ModuleT = TypeVar("ModuleT", bound=nn.Module)


def to_channels_last(model: ModuleT) -> ModuleT:
    """``model`` in ``channels_last_3d`` (``Module.to`` takes ``memory_format``; torch's overloads omit it)."""
    return model.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]


def _step_time(model: nn.Module, clips: torch.Tensor, repeats: int) -> float:
    for i in range(repeats + 1):
        if i == 1:
            torch.cuda.synchronize(clips.device)
            start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(clips).float().logsumexp(dim=1).mean()
        loss.backward()
        model.zero_grad(set_to_none=True)
    torch.cuda.synchronize(clips.device)
    return (time.perf_counter() - start) / repeats


def _probe_clips(clip_shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    generator = torch.Generator(device=device).manual_seed(0)  # leave the training RNG untouched
    return torch.randn(clip_shape, device=device, generator=generator)


def channels_last_is_faster(model: nn.Module, clip_shape: tuple[int, ...], device: torch.device,
                            repeats: int = 3) -> bool:
    """Time forward+backward of a copy in both memory formats (channel-wise 3D convs are not always
    faster in ``channels_last_3d``). Only meaningful on CUDA; the copy keeps the real model's state."""
    if device.type != "cuda":
        return False
    probe = copy.deepcopy(model).train()
    clips = _probe_clips(clip_shape, device)
    dense = _step_time(probe, clips, repeats)
    probe = to_channels_last(probe)
    last = _step_time(probe, clips.contiguous(memory_format=torch.channels_last_3d), repeats)
    del probe
    torch.cuda.empty_cache()
    return last < dense


def use_channels_last(allowed: bool, model: nn.Module, clip_shape: tuple[int, ...], device: torch.device) -> bool:
    """Whether a training runs in ``channels_last_3d`` (``allowed``: the budget's ``channels_last``).

    On CUDA the faster format depends on the GPU and the shapes, so it is timed. On CPU a fixed rule
    keeps runs reproducible (a timing under load could flip it); oneDNN's 3D convs train X3D 1.2x
    (X2D) to 1.8x (XS) faster in channels_last_3d on 2 threads.
    """
    if not allowed:
        return False
    return channels_last_is_faster(model, clip_shape, device) if device.type == "cuda" else True
