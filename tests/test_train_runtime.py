"""The CUDA branches of the training runtime (device choice, bf16 autocast, channels_last chosen by
timing, peak memory), run on a CPU-only machine against a mocked device query.

What is mocked: ``torch.cuda.is_available``/``synchronize``/``max_memory_allocated`` and the clock,
never the code under test. These tests check which branch is taken and what it computes from the
timings it is given; they cannot check CUDA kernels (that needs a GPU).
"""
from __future__ import annotations

import contextlib
from typing import Any

import pytest
import torch
from torch import nn

from x3dsearch.errors import X3DSearchError
from x3dsearch.factors import Factors
from x3dsearch.models import build_model
from x3dsearch.train import evaluate as evaluate_mod
from x3dsearch.train import runtime

CUDA = torch.device("cuda")
CPU = torch.device("cpu")


@pytest.fixture
def gpu(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A machine that reports one GPU; records the CUDA calls the code makes."""
    calls: list[str] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append("synchronize"))
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append("empty_cache"))
    return calls


# --- device ----------------------------------------------------------------------------------
def test_the_default_device_follows_the_device_query(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.resolve_device(None) == CUDA
    assert runtime.resolve_device("cuda:1") == torch.device("cuda", 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runtime.resolve_device(None) == CPU


def test_cuda_asked_for_without_a_gpu_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(X3DSearchError, match=r"^device 'cuda' asked for, but CUDA is not available$"):
        runtime.resolve_device("cuda")
    with pytest.raises(X3DSearchError, match=r"unknown device 'gpu0'"):
        runtime.resolve_device("gpu0")


def test_peak_memory_on_a_gpu_is_the_allocator_peak_in_mib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: 3 * 2**20 + 2**19)
    assert runtime.peak_memory_mb(CUDA) == 3.5  # bytes / 2**20, not / 1e6 (3.67) or KiB


# --- bf16 autocast ---------------------------------------------------------------------------
def test_autocast_is_bf16_on_cuda_and_off_elsewhere() -> None:
    # The real torch.autocast object (it disables itself here, with a warning, as no GPU is present).
    with pytest.warns(UserWarning, match="CUDA is not available"):
        on_gpu = evaluate_mod.autocast(CUDA, True)
    assert isinstance(on_gpu, torch.autocast)
    assert (on_gpu.device, on_gpu.fast_dtype) == ("cuda", torch.bfloat16)  # bf16, not fp16
    assert isinstance(evaluate_mod.autocast(CUDA, False), contextlib.nullcontext)  # budget amp: false
    assert isinstance(evaluate_mod.autocast(CPU, True), contextlib.nullcontext)  # CPU autocast is slower


# --- timing one format ------------------------------------------------------------------------
class _Clock:
    """A fake perf_counter that advances only when the model runs: 1.0 s per forward pass."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Timed(nn.Module):
    def __init__(self, clock: _Clock):
        super().__init__()
        self.clock, self.passes = clock, 0
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 2 * 4 * 4, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.passes += 1
        self.clock.now += 1.0
        return self.net(x)


def test_step_time_is_the_mean_bf16_pass_after_one_warm_up(gpu: list[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(runtime.time, "perf_counter", clock)
    casts: list[tuple[Any, Any]] = []

    def fake_autocast(device_type: str, dtype: torch.dtype | None = None, **kw: Any) -> contextlib.nullcontext:
        casts.append((device_type, dtype))
        return contextlib.nullcontext()

    monkeypatch.setattr(torch, "autocast", fake_autocast)
    model = _Timed(clock)
    seconds = runtime._step_time(model, torch.randn(2, 3, 2, 4, 4), repeats=3)
    # 4 passes, the first untimed: 3 s / 3. Counting the warm-up would give 4/3, dividing by 4 gives 0.75.
    assert seconds == 1.0
    assert model.passes == 4 and casts == [("cuda", torch.bfloat16)] * 4
    assert gpu == ["synchronize", "synchronize"]  # before the timed passes and after them
    assert all(p.grad is None for p in model.parameters())  # no gradient leaks into the real training


# --- channels_last chosen by timing -----------------------------------------------------------
def _timed_formats(monkeypatch: pytest.MonkeyPatch, dense_s: float, last_s: float) -> list[dict[str, Any]]:
    """Replace the timing by fixed seconds per memory format, recording what each timing was given."""
    seen: list[dict[str, Any]] = []

    def fake_step_time(model: nn.Module, clips: torch.Tensor, repeats: int) -> float:
        conv = next(m for m in model.modules() if isinstance(m, nn.Conv3d))
        last = conv.weight.is_contiguous(memory_format=torch.channels_last_3d) and not conv.weight.is_contiguous()
        seen.append({"model": model, "training": model.training, "weights_last": last, "repeats": repeats,
                     "clips_last": clips.is_contiguous(memory_format=torch.channels_last_3d)
                     and not clips.is_contiguous(), "shape": tuple(clips.shape)})
        return last_s if last else dense_s

    monkeypatch.setattr(runtime, "_step_time", fake_step_time)
    monkeypatch.setattr(runtime, "_probe_clips", lambda shape, device: torch.randn(shape))
    return seen


SHAPE = (2, 3, 4, 32, 32)


@pytest.mark.parametrize("dense_s, last_s, expected", [(2.0, 1.0, True), (1.0, 2.0, False), (1.0, 1.0, False)])
def test_channels_last_is_chosen_when_its_timing_is_lower(gpu: list[str], monkeypatch: pytest.MonkeyPatch,
                                                          dense_s: float, last_s: float, expected: bool) -> None:
    seen = _timed_formats(monkeypatch, dense_s, last_s)
    model = build_model(Factors(frames=4, stride=12, crop=32), num_classes=3).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert runtime.channels_last_is_faster(model, SHAPE, CUDA, repeats=5) is expected
    dense, last = seen
    # both formats timed, in that order, on a training-mode copy with the clips of the given shape
    assert (dense["weights_last"], dense["clips_last"], last["weights_last"], last["clips_last"]) == \
        (False, False, True, True)
    assert dense["model"] is not model and dense["training"] and dense["repeats"] == 5
    assert dense["shape"] == last["shape"] == SHAPE
    # the real model is untouched: same weights and buffers, its format, its eval mode
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert next(model.parameters()).is_contiguous()
    assert gpu == ["empty_cache"]


def test_the_timing_runs_only_on_cuda(gpu: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _timed_formats(monkeypatch, 2.0, 1.0)
    model = build_model(Factors(frames=4, stride=12, crop=32), num_classes=3)
    assert runtime.channels_last_is_faster(model, SHAPE, CPU) is False and seen == []
    # A training: the budget may forbid channels_last; CPU takes it by a fixed rule, CUDA by timing.
    assert runtime.use_channels_last(False, model, SHAPE, CUDA) is False and seen == []
    assert runtime.use_channels_last(True, model, SHAPE, CPU) is True and seen == []
    assert runtime.use_channels_last(True, model, SHAPE, CUDA) is True and len(seen) == 2
    seen.clear()
    _timed_formats(monkeypatch, 1.0, 2.0)
    assert runtime.use_channels_last(True, model, SHAPE, CUDA) is False
