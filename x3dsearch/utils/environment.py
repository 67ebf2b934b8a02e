"""The software and hardware a run's numbers came from, for ``config.yaml``'s ``versions``.

A CPU training is bitwise reproducible only where the arithmetic is the same: the same torch
build, the same kernels (chosen by the CPU's instruction set) and the same thread count. Measured
(X2D, ``quick``, seed 0): two runs at 2 threads gave identical weights, but the final train loss
was 1.46941 at 1 thread, 1.46227 at 2 threads, and 1.45804 at 1 thread with AVX2 kernels turned
off. Recording these lets a resume or a re-run say when its numbers may differ from stored ones.
"""
from __future__ import annotations

import os
import platform
import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from .. import __version__

#: SIMD extensions whose presence changes the kernels oneDNN and MKL pick.
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")

#: Environment variables that pick other CPU kernels (and so other rounding) when set.
KERNEL_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_CBWR",
                    "MKL_ENABLE_INSTRUCTIONS", "NPY_DISABLE_CPU_FEATURES")

#: Keys of :func:`run_environment` whose change may change a training's numbers.
RESULT_KEYS = ("cpu", "cpu_simd", "torch", "torch_cpu_capability", "blas", "onednn", "kernel_env", "cuda", "cudnn",
               "gpu", "threads")

CPUINFO = Path("/proc/cpuinfo")


def package_versions() -> dict[str, str]:
    """Versions of x3dsearch, Python and the packages whose behaviour a search depends on."""
    import ray  # here, not at the top: Ray reads its environment once, at import, after prepare_ray sets it

    out = {"x3dsearch": __version__, "python": platform.python_version(), "torch": str(torch.__version__),
           "ray": str(ray.__version__)}
    for name in ("fvcore", "decord", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def cpu_model(cpuinfo: Path = CPUINFO) -> tuple[str, list[str]]:
    """The CPU's model name and the SIMD flags of :data:`SIMD_FLAGS` it has.

    Read from ``/proc/cpuinfo`` (Linux; the first processor stands for all), with the vendor,
    family, model and stepping added on x86 (a virtual machine may name only "AMD EPYC");
    else ``platform.processor()`` or the machine type, with no flags.
    """
    fields: dict[str, str] = {}
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if value and not (key == "processor" and value.isdigit()):
            fields.setdefault(key, value)  # the first processor's value stands for all
    name = next((fields[k] for k in ("model name", "hardware", "cpu model", "processor") if k in fields), "")
    if name and "vendor_id" in fields and "cpu family" in fields:
        name += (f" ({fields['vendor_id']} family {fields['cpu family']} model {fields.get('model', '?')}"
                 f" stepping {fields.get('stepping', '?')})")
    present = set(fields.get("flags", fields.get("features", "")).split())
    flags = [f for f in SIMD_FLAGS if f in present]
    return name or platform.processor() or platform.machine() or "unknown", flags


def torch_build() -> dict[str, Any]:
    """The torch build's compute libraries: CUDA, cuDNN, BLAS, oneDNN and the CPU kernels it dispatches to."""
    config = torch.__config__.show()
    blas = re.search(r"BLAS_INFO=([^,\s]+)", config)
    onednn = re.search(r"MKL-DNN v([\w.]+)", config) or re.search(r"oneDNN v([\w.]+)", config)
    try:
        capability = str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        capability = None
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {"cuda": torch.version.cuda, "cudnn": None if cudnn is None else str(cudnn),
            "blas": blas.group(1) if blas else None,
            "onednn": onednn.group(1) if onednn and torch.backends.mkldnn.is_available() else None,
            "torch_cpu_capability": capability}


def gpu_names() -> list[str]:
    """Names of the visible CUDA devices (none on a CPU-only build or machine)."""
    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def run_environment(threads: int | None = None, gpus: bool = True) -> dict[str, Any]:
    """The record a run stores as ``versions``: package versions, CPU, torch build, kernel-picking
    environment variables that are set, GPUs and threads.

    ``threads`` is the intra-op thread count of the trainings (a search's CPUs per trial), not
    necessarily this process's; by default this process's ``torch.get_num_threads()``. With
    ``gpus=False`` CUDA is not touched (``gpu`` is then null).
    """
    name, flags = cpu_model()
    return {**package_versions(), "cpu": name, "cpu_simd": flags, **torch_build(),
            "kernel_env": {k: os.environ[k] for k in KERNEL_VARIABLES if os.environ.get(k)},
            "gpu": (gpu_names() or None) if gpus else None,
            "threads": int(threads if threads is not None else torch.get_num_threads())}


def result_changes(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``key: old -> new`` for each of :data:`RESULT_KEYS` that both records hold and that differs.

    Keys missing from ``stored`` (a run recorded before they existed) are not reported.
    """
    return [f"{key}: {stored[key]} -> {current[key]}" for key in RESULT_KEYS
            if key in stored and key in current and stored[key] != current[key]]
