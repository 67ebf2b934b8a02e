"""Latency of one clip through a model: what FLOPs stand in for, measured.

Depthwise 3D convolutions make FLOPs a poor guide to speed (SlowFast issue 286,
"X3D is slower than slowfast"), so the search can target milliseconds instead.
A measurement is one clip at batch 1 in eval mode (inference mode), ``warmup``
untimed forwards, then the median of ``runs`` timed ones, on one device and
thread count; the spread (IQR, MAD) and the number of runs are kept with it.

Measurements are cached on disk, one small JSON file per (factors, classes,
device, threads, torch version) under ``cache_dir()/latency-v1/``, written
atomically (temporary file + rename): concurrent writers of one key each leave
a complete file, and writers of different keys never touch each other's. A
cached entry serves any request for at most as many runs and warm-ups.

"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import torch

from .errors import ConfigError
from .factors import Factors
from .models import build_model
from .utils.io import atomic_write_json, cache_dir

#: Protocol, chosen by measurement on the 2-core CPU machine while other agents loaded it (load
#: average 10-12; docs/results.md, "Latency protocol"): in 7 fresh processes (X2D, X3D-XS, 1 thread) the first
#: forward took 1.6-1.9x the steady median (oneDNN builds its kernels), the second was steady in
#: 6 of 7, so two warm-ups; in the steadiest series the median of 15 runs stayed within 4.8% of the
#: 50-run median (90th percentile; 10 runs: 6.4%, 5 runs: 12%), so 15 runs. Under that load the
#: machine itself drifted 10-20% between processes, which no run count removes.
DEFAULT_RUNS = 15
DEFAULT_WARMUP = 2
#: The cheap protocol used to climb a ladder: one warm-up, median of three (15-45% off the
#: long-run median at the 90th percentile under that load).
QUICK_RUNS = 3
QUICK_WARMUP = 1
#: Relative band around a goal: the rungs whose quick values fall inside it (and the nearest on
#: either side) are where the solver bisects on full measurements. Wider noise only costs more
#: full measurements, never a different rule (see search/proposals.py).
DEFAULT_NOISE = 0.25
CACHE_VERSION = 1


@dataclass(frozen=True)
class LatencyConfig:
    """Where and how a model is timed: ``device`` ``cpu`` or ``cuda[:N]``; ``threads``: CPU threads."""

    device: str = "cpu"
    threads: int = 1
    runs: int = DEFAULT_RUNS
    warmup: int = DEFAULT_WARMUP

    def __post_init__(self) -> None:
        if not (self.device == "cpu" or self.device == "cuda" or
                (self.device.startswith("cuda:") and self.device[5:].isdigit())):
            raise ConfigError(f"latency device must be cpu, cuda or cuda:N, got {self.device!r}")
        for name in ("threads", "runs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"latency {name} must be a positive integer, got {value!r}")
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 0:
            raise ConfigError(f"latency warmup must be a non-negative integer, got {self.warmup!r}")

    def quick(self) -> "LatencyConfig":
        return LatencyConfig(self.device, self.threads, min(QUICK_RUNS, self.runs), min(QUICK_WARMUP, self.warmup))


@dataclass(frozen=True)
class Latency:
    """One measurement: milliseconds per clip and how much they varied."""

    median_ms: float
    q1_ms: float
    q3_ms: float
    mad_ms: float          # median absolute deviation from the median
    runs: int
    warmup: int
    device: str            # e.g. "cpu:AMD EPYC 7B13" or "cuda:NVIDIA H200"
    threads: int
    torch: str
    times_ms: tuple[float, ...] = field(default=(), repr=False)

    @property
    def iqr_ms(self) -> float:
        return self.q3_ms - self.q1_ms

    @property
    def rel_iqr(self) -> float:
        """IQR over the median: the relative spread of one run."""
        return self.iqr_ms / self.median_ms if self.median_ms > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["times_ms"] = list(self.times_ms)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Latency":
        data = dict(data)
        data["times_ms"] = tuple(data.get("times_ms", ()))
        return cls(**data)


def summarize(times_ms: list[float], warmup: int, device: str, threads: int, torch_version: str) -> Latency:
    """Median, quartiles and MAD of timed runs."""
    if not times_ms:
        raise ValueError("no timed runs")
    ordered = sorted(times_ms)
    median = statistics.median(ordered)
    if len(ordered) >= 2:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1 = q3 = median
    mad = statistics.median(abs(t - median) for t in ordered)
    return Latency(median_ms=median, q1_ms=q1, q3_ms=q3, mad_ms=mad, runs=len(ordered), warmup=warmup,
                   device=device, threads=threads, torch=torch_version, times_ms=tuple(times_ms))


@lru_cache(maxsize=1)
def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def device_label(device: str) -> str:
    """The device as a cache key part: the CPU or GPU model, not just its kind."""
    if device == "cpu":
        return f"cpu:{_cpu_name()}"
    if not torch.cuda.is_available():
        raise ConfigError(f"latency device {device} asked for, but CUDA is not available here")
    index = torch.device(device).index or 0
    if index >= torch.cuda.device_count():
        raise ConfigError(f"latency device {device} does not exist (this machine has "
                          f"{torch.cuda.device_count()} CUDA devices)")
    return f"cuda:{torch.cuda.get_device_name(index)}"


def time_forward(model: Any, clip: Any, device: str, runs: int, warmup: int) -> list[float]:
    """Milliseconds of each of ``runs`` forwards after ``warmup`` untimed ones."""
    cuda = device != "cpu"
    times: list[float] = []
    with torch.inference_mode():
        for i in range(warmup + runs):
            if cuda:
                torch.cuda.synchronize(device)
            start = time.perf_counter_ns()
            model(clip)
            if cuda:
                torch.cuda.synchronize(device)
            if i >= warmup:
                times.append((time.perf_counter_ns() - start) / 1e6)
    return times


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` intra-op CPU threads, then restore the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def model_and_clip(factors: Factors, num_classes: int, device: str) -> tuple[Any, Any]:
    """The model in eval mode and one random clip (batch 1), both on ``device``."""

    generator = torch.Generator().manual_seed(0)
    model = build_model(factors, num_classes=num_classes).eval().to(device)
    clip = torch.randn(1, 3, factors.frames, factors.crop, factors.crop, generator=generator).to(device)
    return model, clip


def _measure(factors: Factors, num_classes: int, config: LatencyConfig, label: str) -> Latency:
    with torch_threads(config.threads):
        model, clip = model_and_clip(factors, num_classes, config.device)
        times = time_forward(model, clip, config.device, config.runs, config.warmup)
    return summarize(times, config.warmup, label, config.threads, torch.__version__)


def cache_key(factors: Factors, num_classes: int, label: str, threads: int, torch_version: str) -> str:
    return f"{factors.key()}|classes{num_classes}|{label}|threads{threads}|torch{torch_version}"


def cache_path(key: str) -> Path:
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]
    return cache_dir() / f"latency-v{CACHE_VERSION}" / f"{digest}.json"


def read_cached(key: str, runs: int, warmup: int) -> Latency | None:
    """The cached measurement of ``key`` if it used at least ``runs`` runs and ``warmup`` warm-ups."""
    try:
        entry = json.loads(cache_path(key).read_text(encoding="utf-8"))
        if entry.get("key") != key:
            return None
        value = Latency.from_dict(entry["latency"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing, half-written by a foreign tool, or an older layout: measure again
    return value if value.runs >= runs and value.warmup >= warmup else None


def write_cached(key: str, value: Latency) -> None:
    try:
        atomic_write_json(cache_path(key), {"key": key, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                            "pid": os.getpid(), "latency": value.to_dict()})
    except OSError:
        pass  # a read-only cache only costs measuring again


def measure_latency(factors: Factors, num_classes: int = 400, config: LatencyConfig = LatencyConfig(), *,
                    cache: bool = True) -> Latency:
    """Median latency of one clip through the model ``factors`` describe (cached on disk)."""
    label = device_label(config.device)
    key = cache_key(factors, num_classes, label, config.threads, torch.__version__)
    if cache:
        hit = read_cached(key, config.runs, config.warmup)
        if hit is not None:
            return hit
    value = _measure(factors, num_classes, config, label)
    if cache:
        write_cached(key, value)
    return value


_quick: dict[tuple, float] = {}


def quick_latency_ms(factors: Factors, num_classes: int, config: LatencyConfig) -> float:
    """A short measurement (median of 3 after 1 warm-up) to climb ladders with, memoised in this process.

    A full measurement already cached on disk is used instead, since it is better and free.
    """
    label = device_label(config.device)
    key = cache_key(factors, num_classes, label, config.threads, torch.__version__)
    full = read_cached(key, config.runs, config.warmup)
    if full is not None:
        return full.median_ms
    memo = (key, config.quick())
    if memo not in _quick:
        _quick[memo] = _measure(factors, num_classes, config.quick(), label).median_ms
    return _quick[memo]
