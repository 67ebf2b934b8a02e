"""Model complexity in the X3D paper's convention, counted by fvcore.

One multiply-add of a convolution or a linear/matmul layer is one flop; batch
norm, pooling, activations and element-wise ops are not counted (X3D-era
fvcore did not count them; today's fvcore counts some by default, which is why
FLOP counts "differ between fvcore versions"). Counts are taken in eval mode,
batch 1, one clip at the factors' crop, and cached in memory and on disk
because the search asks for hundreds of them and a trace costs seconds.
"""
from __future__ import annotations

import json
import threading
import warnings
from collections import Counter
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import torch

from .factors import Factors
from .models import build_model
from .utils.io import atomic_write_json, cache_dir

#: fvcore operator handles that the paper's convention counts.
COUNTED_OPS = frozenset({"aten::_convolution", "aten::addmm", "aten::linear", "aten::matmul", "aten::mm",
                         "aten::bmm", "aten::einsum"})
#: Bump when the counting convention or the architecture changes, to invalidate disk caches.
CACHE_VERSION = 1
DEFAULT_NUM_CLASSES = 400


@dataclass(frozen=True)
class Complexity:
    gflops: float
    params_m: float
    by_operator: dict[str, float]  # GFLOPs per fvcore operator family ("conv", "linear", ...)


def count_flops(model: torch.nn.Module, inputs: torch.Tensor) -> Counter:
    """Multiply-adds per operator family, with every uncounted fvcore handle switched off."""
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, inputs)
    # Keep fvcore's own handles for the counted ops and drop every other one, so a
    # newer fvcore that counts more ops by default cannot change the result.
    counted = {name: h for name, h in analysis._op_handles.items() if name in COUNTED_OPS}
    analysis.clear_op_handles().set_op_handle(**counted)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Counter(analysis.by_operator())


def _measure(factors: Factors, num_classes: int) -> Complexity:
    model = build_model(factors, num_classes=num_classes).eval()
    params = sum(p.numel() for p in model.parameters())
    clip = torch.zeros(1, 3, factors.frames, factors.crop, factors.crop)
    with torch.no_grad():
        by_op = count_flops(model, clip)
    return Complexity(gflops=sum(by_op.values()) / 1e9, params_m=params / 1e6,
                      by_operator={k: v / 1e9 for k, v in sorted(by_op.items())})


class _DiskCache:
    """A JSON file of counts shared by every process; concurrent writers only lose cache hits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return cache_dir() / f"complexity-v{CACHE_VERSION}.json"

    def _load(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError, OSError):
            return {}

    def get(self, key: str) -> Complexity | None:
        entry = self._load().get(key)
        return Complexity(**entry) if entry else None

    def put(self, key: str, value: Complexity) -> None:
        with self._lock:
            data = self._load()
            data[key] = asdict(value)
            try:
                atomic_write_json(self.path, data)
            except OSError:
                pass  # a read-only cache folder only costs re-counting


_disk = _DiskCache()


@lru_cache(maxsize=4096)
def complexity(factors: Factors, num_classes: int = DEFAULT_NUM_CLASSES) -> Complexity:
    """GFLOPs and parameters (millions) of the model ``factors`` describe, cached."""
    key = f"{factors.key()}|classes{num_classes}"
    cached = _disk.get(key)
    if cached is not None:
        return cached
    value = _measure(factors, num_classes)
    _disk.put(key, value)
    return value


def gflops(factors: Factors, num_classes: int = DEFAULT_NUM_CLASSES) -> float:
    return complexity(factors, num_classes).gflops
