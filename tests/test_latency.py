"""Latency measurement, its disk cache, and the measure-generic proposal solver (no timing is asserted)."""
from __future__ import annotations

import json
import multiprocessing
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from x3dsearch.errors import ConfigError
from x3dsearch.factors import Factors, preset
from x3dsearch.latency import (Latency, LatencyConfig, cache_key, cache_path, measure_latency, quick_latency_ms,
                               read_cached, summarize, write_cached)
from x3dsearch.search.estimate import estimate_gflops
from x3dsearch.search.measure import GFLOPS, LatencyMeasure, get_measure
from x3dsearch.search.plan import parse_path, replay
from x3dsearch.search.proposals import Proposal, Skip, contract, propose, propose_step
from x3dsearch.search.space import SearchSpace, load_space

TINY = Factors(frames=1, stride=4, crop=32, width=0.5, bottleneck=1.0, depth=0.5)
FEW = LatencyConfig(runs=2, warmup=1)


@pytest.fixture()
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("X3DSEARCH_CACHE", str(tmp_path))
    return tmp_path


# --- one measurement --------------------------------------------------------------------------
def test_summarize_gives_median_quartiles_and_mad():
    lat = summarize([5.0, 1.0, 3.0, 2.0, 4.0], warmup=2, device="cpu:x", threads=1, torch_version="t")
    assert (lat.median_ms, lat.q1_ms, lat.q3_ms, lat.mad_ms, lat.runs) == (3.0, 2.0, 4.0, 1.0, 5)
    assert lat.iqr_ms == 2.0 and lat.rel_iqr == pytest.approx(2 / 3)
    assert Latency.from_dict(json.loads(json.dumps(lat.to_dict()))) == lat
    one = summarize([7.0], 0, "cpu:x", 1, "t")
    assert (one.median_ms, one.iqr_ms, one.mad_ms) == (7.0, 0.0, 0.0)


@pytest.mark.parametrize("kwargs, message", [
    ({"device": "tpu"}, "device must be cpu, cuda or cuda:N"),
    ({"threads": 0}, "threads must be a positive integer"),
    ({"runs": 0}, "runs must be a positive integer"),
    ({"warmup": -1}, "warmup must be a non-negative integer"),
])
def test_bad_latency_settings_are_one_line(kwargs, message):
    with pytest.raises(ConfigError) as err:
        LatencyConfig(**kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_cuda_asked_for_where_there_is_none_is_one_line(own_cache):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        measure_latency(TINY, 3, LatencyConfig(device="cuda", runs=1, warmup=0))


def test_a_measurement_is_cached_per_key_and_reused(own_cache):
    first = measure_latency(TINY, 3, FEW)
    assert first.runs == 2 and first.warmup == 1 and len(first.times_ms) == 2 and first.median_ms > 0
    assert first.device.startswith("cpu:") and first.threads == 1
    files = list((own_cache / "latency-v1").glob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["key"].startswith(TINY.key())
    assert measure_latency(TINY, 3, FEW) == first                       # from the cache, same numbers
    assert measure_latency(TINY, 3, LatencyConfig(runs=1, warmup=0)) == first  # fewer runs are served too
    longer = measure_latency(TINY, 3, LatencyConfig(runs=3, warmup=1))  # more runs: measured again
    assert longer.runs == 3 and measure_latency(TINY, 3, FEW) == longer
    measure_latency(TINY, 4, FEW)                                       # another class count: another key
    measure_latency(TINY, 3, LatencyConfig(threads=2, runs=2, warmup=1))  # another thread count too
    assert len(list((own_cache / "latency-v1").glob("*.json"))) == 3
    fresh = measure_latency(TINY, 3, FEW, cache=False)
    assert fresh.runs == 2 and read_cached(cache_key(TINY, 3, first.device, 1, first.torch), 3, 1) == longer


def test_a_damaged_or_foreign_cache_file_is_measured_again(own_cache):
    key = cache_key(TINY, 3, "cpu:test", 1, "0")
    path = cache_path(key)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert read_cached(key, 1, 0) is None
    path.write_text(json.dumps({"key": "another key", "latency": {}}))
    assert read_cached(key, 1, 0) is None
    value = summarize([1.0, 2.0], 1, "cpu:test", 1, "0")
    write_cached(key, value)
    assert read_cached(key, 2, 1) == value and read_cached(key, 3, 1) is None and read_cached(key, 2, 2) is None


def _writer(args: tuple[str, int]) -> None:
    cache, worker = args
    import os

    os.environ["X3DSEARCH_CACHE"] = cache
    for i in range(40):
        shared = cache_key(TINY, 3, "cpu:test", 1, "shared")
        write_cached(shared, summarize([float(worker), float(i)], 0, "cpu:test", 1, "shared"))
        own = cache_key(TINY, 3, "cpu:test", 1, f"w{worker}-{i}")
        write_cached(own, summarize([float(worker)], 0, "cpu:test", 1, "own"))


@pytest.mark.slow  # several processes time models side by side
def test_concurrent_writers_leave_complete_files_and_lose_nothing(own_cache):
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.map(_writer, [(str(own_cache), w) for w in range(4)])
    files = list((own_cache / "latency-v1").glob("*.json"))
    assert len(files) == 1 + 4 * 40  # every key's file, one shared
    for path in files:
        json.loads(path.read_text())  # each one complete
    assert not list((own_cache / "latency-v1").glob(".*.tmp"))
    shared = read_cached(cache_key(TINY, 3, "cpu:test", 1, "shared"), 2, 0)
    assert shared is not None and shared.runs == 2


def test_quick_values_stay_in_memory_and_defer_to_a_full_measurement(own_cache):
    small = TINY.replace(crop=40)
    quick = quick_latency_ms(small, 3, FEW)
    assert quick > 0 and not (own_cache / "latency-v1").exists()  # quick values are not written
    assert quick_latency_ms(small, 3, FEW) == quick                  # memoised
    full = measure_latency(small, 3, FEW)
    assert quick_latency_ms(small, 3, FEW) == full.median_ms          # a cached full value wins


# --- the solver with a noisy measure -------------------------------------------------------------
@dataclass
class NoisyGFlops:
    """GFLOPs whose quick estimate is off by up to +-``error`` (a fixed pseudo-random amount per model);
    the full value is exact. Counts the calls of each kind."""

    error: float = 0.05
    noise: float = 0.1
    name: str = "latency"
    unit: str = "ms"
    calls: dict = field(default_factory=lambda: {"value": set(), "quick": set()})

    def value(self, factors: Factors, num_classes: int) -> float:
        self.calls["value"].add(factors)
        return estimate_gflops(factors, num_classes)

    def quick(self, factors: Factors, num_classes: int) -> float:
        self.calls["quick"].add(factors)
        jitter = (zlib.crc32(factors.key().encode()) % 2001 - 1000) / 1000 * self.error
        return estimate_gflops(factors, num_classes) * (1 + jitter)


def test_a_noisy_measure_chooses_as_the_exact_one_and_measures_few_rungs_in_full():
    space = load_space()
    current = preset("x2d")
    for step in range(6):
        exact, exact_skips = propose_step(current, space, 400)
        noisy_measure = NoisyGFlops()
        noisy, noisy_skips = propose_step(current, space, 400, noisy_measure)
        assert [(p.axis, p.factors) for p in noisy] == [(p.axis, p.factors) for p in exact]
        assert [s.axis for s in noisy_skips] == [s.axis for s in exact_skips]
        assert all(p.cost == p.gflops for p in noisy)  # the chosen value is a full (here exact) one
        # Measured in full: the current model and, per axis, the few rungs bisection visits near the goal.
        full, quick = noisy_measure.calls["value"], noisy_measure.calls["quick"]
        goal = 2 * estimate_gflops(current, 400)
        assert current in full and len(full - {current}) <= 3 * len(space.axes) < len(quick)
        assert all(goal / 1.5 < estimate_gflops(f, 400) < goal * 1.5 for f in full - {current})
        current = exact[step % len(exact)].factors


@pytest.mark.parametrize("error, band", [(0.3, 0.4), (0.3, 0.05), (0.0, 0.1)])
@pytest.mark.parametrize("rule", ["at-most", "nearest"])
def test_quick_noise_never_decides_even_beyond_the_band(error, band, rule):
    """Quick values off by up to 30%, inside the band or far beyond it: bisection on full values, the
    widened window and the climb on full values make the same choices as the exact solver."""
    space = SearchSpace.from_dict({**load_space().to_dict(), "proposal": rule})
    starts = [preset("x2d"), preset("x3d-xs"), preset("x3d-s"), Factors(frames=3, stride=9, crop=136, width=1.3,
                                                                        bottleneck=1.75, depth=1.7)]
    for start in starts:
        for axis in space.axes:
            exact = propose(axis, start, space, 400)
            noisy = propose(axis, start, space, 400, NoisyGFlops(error=error, noise=band))
            assert type(noisy) is type(exact), (start, axis.name)
            if isinstance(exact, Proposal):
                assert noisy.factors == exact.factors and noisy.cost == exact.gflops, (start, axis.name)
            for target in (1.3, 1.9):
                a = contract(axis, start, space, 400, target * estimate_gflops(start, 400))
                b = contract(axis, start, space, 400, target * estimate_gflops(start, 400),
                             NoisyGFlops(error=error, noise=band))
                assert type(a) is type(b) and (isinstance(a, Skip) or a.factors == b.factors), (start, axis.name)


def test_contraction_and_replay_with_a_noisy_measure():
    space = load_space()
    start = preset("x3d-xs").replace(frames=8, stride=6)
    expanded = start.replace(frames=16, stride=5)
    exact = contract(space.axis("x-temporal"), start, space, 400, 2.0, expanded=expanded)
    noisy = contract(space.axis("x-temporal"), start, space, 400, 2.0, NoisyGFlops(), expanded=expanded)
    assert noisy.factors == exact.factors == preset("x3d-s") and noisy.cost == exact.gflops
    too_small = contract(space.axis("x-temporal"), start, space, 400, 1.0, NoisyGFlops(), expanded=expanded)
    assert isinstance(too_small, Skip)
    plan = replay(space, parse_path("bottleneck,fast,spatial,depth,temporal,fast,temporal", space), 2.0, 400,
                  NoisyGFlops())
    assert plan.final.factors == preset("x3d-s")
    assert plan.to_dict()["final"]["ms"] == pytest.approx(plan.final.gflops)  # the measure's unit is recorded


def test_gflops_is_the_default_measure_and_latency_is_optional():
    assert get_measure("gflops") is GFLOPS and GFLOPS.noise == 0
    lat = get_measure("latency", config=FEW)
    assert isinstance(lat, LatencyMeasure) and lat.unit == "ms" and 0 < lat.noise < 1
    with pytest.raises(ConfigError, match="--complexity must be one of gflops, latency"):
        get_measure("watts")
    with pytest.raises(ConfigError, match="noise band"):
        LatencyMeasure(noise=1.5)


def test_real_latency_proposals_on_tiny_models(own_cache):
    """End to end with measured milliseconds: tiny models, two runs each; no timing is asserted."""
    data = load_space().to_dict()
    data["seed"] = TINY.to_dict()
    data["axes"] = {"x-fast": {"factor": "frames", "keep": "span", "step": 1, "max": 4},
                    "x-spatial": {"factor": "crop", "step": 8, "max": 64}}
    space = SearchSpace.from_dict(data, label="tiny")
    measure = LatencyMeasure(config=FEW)
    proposals, skips = propose_step(TINY, space, 3, measure)
    for p in proposals:
        assert p.cost is not None and p.cost > 0 and p.gflops == estimate_gflops(p.factors, 3)
        assert read_cached(cache_key(p.factors, 3, measure_latency(TINY, 3, FEW).device, 1,
                                     measure_latency(TINY, 3, FEW).torch), 2, 1) is not None  # the full one is kept
    assert len(proposals) + len(skips) == 2
    result = contract(space.axis("x-spatial"), TINY, space, 3, measure.value(TINY.replace(crop=48), 3) * 1.5, measure)
    assert isinstance(result, (Proposal, Skip))
