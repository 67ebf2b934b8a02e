"""The search space file, the closed-form FLOP count and the per-axis proposal solver (no training)."""
from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import yaml

from x3dsearch.complexity import complexity
from x3dsearch.errors import ConfigError
from x3dsearch.factors import Factors, preset
from x3dsearch.search.estimate import count_params_m, estimate_gflops
from x3dsearch.search.proposals import Proposal, Skip, contract, propose, propose_step
from x3dsearch.search.space import DEFAULT_SPACE, SearchSpace, load_space

REPO = Path(__file__).resolve().parents[1]


def _space(**changes) -> SearchSpace:
    data = yaml.safe_load(DEFAULT_SPACE.read_text())
    data.update(changes)
    return SearchSpace.from_dict(data, label="space test")


# --- the space file -------------------------------------------------------------------------
def test_default_space_is_shipped_and_linked_at_the_top_level():
    link = REPO / "search_spaces" / "x3d.yaml"
    assert link.is_symlink() and os.readlink(link) == "../x3dsearch/spaces/x3d.yaml"
    assert link.resolve() == DEFAULT_SPACE.resolve()
    space = load_space()
    assert space.name == "x3d" and space.seed == preset("x2d") and space.expansion_rate == 2.0
    assert [a.name for a in space.axes] == ["x-fast", "x-temporal", "x-spatial", "x-depth", "x-width",
                                             "x-bottleneck"]
    assert space.axis("x-fast").keep == "span" and space.axis("x-temporal").keep is None
    assert (space.selection, space.contraction, space.budget, space.min_stride) == ("top1", "own", "auto", 1)
    assert load_space("x3d") == space


@pytest.mark.parametrize("change, key", [
    ({"expansion_rate": 1.0}, "'expansion_rate'"),
    ({"axes": {"x-fast": {"factor": "frames", "step": 1}}}, "'axes.x-fast.max'"),
    ({"axes": {"x-fast": {"factor": "fps", "step": 1, "max": 8}}}, "'axes.x-fast.factor'"),
    ({"axes": {"x-spatial": {"factor": "crop", "step": 7.5, "max": 400}}}, "'axes.x-spatial.step'"),
    ({"axes": {"x-depth": {"factor": "depth", "step": 0.1, "max": 9, "keep": "span"}}}, "'axes.x-depth.keep'"),
    ({"axes": {"x-depth": {"factor": "depth", "step": 0.1, "max": 9, "speed": 2}}}, "'axes.x-depth.speed'"),
    ({"axes": {}}, "'axes'"),
    ({"bounds": {"min_stride": 0}}, "'bounds.min_stride'"),
    ({"bounds": {"max_frames": 3}}, "'bounds.max_frames'"),
    ({"selection": "best"}, "'selection'"),
    ({"contraction": "some"}, "'contraction'"),
    ({"proposal": "below"}, "'proposal'"),
    ({"tolerance": 1.5}, "'tolerance'"),
    ({"seed": {"frames": 1, "stride": 12, "crop": 112, "width": 1.0, "bottleneck": 1.0}}, "'depth'"),
    ({"colour": "blue"}, "'colour'"),
])
def test_malformed_space_names_the_bad_key(change, key):
    with pytest.raises(ConfigError) as err:
        _space(**change)
    assert key in str(err.value) and "\n" not in str(err.value)


def test_space_files_are_checked(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_space(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_space(tmp_path / "missing.yaml")
    custom = tmp_path / "two_axes.yaml"
    data = yaml.safe_load(DEFAULT_SPACE.read_text())
    data["axes"] = {k: v for k, v in data["axes"].items() if k in ("x-spatial", "x-depth")}
    data.pop("name", None)
    custom.write_text(yaml.safe_dump(data, sort_keys=False))
    space = load_space(custom)
    assert space.name == "two_axes" and [a.name for a in space.axes] == ["x-spatial", "x-depth"]
    assert SearchSpace.from_dict(space.to_dict()) == space


# --- closed-form count ------------------------------------------------------------------------
@pytest.mark.parametrize("factors, classes", [
    (preset("x3d-xs"), 400),
    (Factors(frames=3, stride=4, crop=136, width=1.3, bottleneck=1.75, depth=1.7), 12),
    (Factors(frames=2, stride=6, crop=104, width=0.75, bottleneck=3.25, depth=0.5), 3),
])
def test_closed_form_count_equals_fvcore(factors, classes):
    counted = complexity(factors, classes)
    assert estimate_gflops(factors, classes) == pytest.approx(counted.gflops, rel=1e-12)
    assert count_params_m(factors, classes) == pytest.approx(counted.params_m, rel=1e-12)


def test_closed_form_count_reproduces_every_published_model():
    published = {"x2d": 0.0207, "x3d-xs": 0.6053, "x3d-s": 1.9629, "x3d-m": 4.7325, "x3d-l": 18.368,
                 "x3d-xl": 35.838}
    for name, gflops in published.items():
        assert estimate_gflops(preset(name)) == pytest.approx(gflops, abs=6e-4), name


# --- proposals --------------------------------------------------------------------------------
def test_every_axis_proposes_the_closest_setting_at_most_c_times():
    from x3dsearch.search.proposals import ladder

    space = load_space()
    current = preset("x2d")
    for step in range(8):
        base = estimate_gflops(current)
        proposals, skips = propose_step(current, space, 400)
        assert not skips and [p.axis for p in proposals] == [a.name for a in space.axes]
        for p in proposals:
            assert p.gflops <= 2.0 * base and p.gflops == estimate_gflops(p.factors)
            rungs = [r for r in ladder(space.axis(p.axis), current, space) if not isinstance(r, str)]
            above = next((r for r in rungs if estimate_gflops(r) > p.gflops), None)
            assert above is None or estimate_gflops(above) > 2.0 * base  # the next one would pass c x
            # Ceil-rounded depth is the coarsest ladder; a bound may stop an axis early, past sqrt(c).
            assert p.gflops >= (1.7 if above is not None else math.sqrt(2)) * base, (p.axis, p.gflops / base)
        assert sum(p.gflops >= 1.9 * base for p in proposals) >= 4
        fast = proposals[0].factors  # X-Fast keeps the clip duration as well as integer strides allow
        assert abs(fast.stride - current.span / fast.frames) <= 0.5 and fast.stride < current.stride
        assert proposals[1].factors.stride == current.stride                        # X-Temporal keeps stride
        current = proposals[step % len(proposals)].factors  # walk every axis in turn


def test_nearest_rule_may_go_over_c_times():
    space = _space(proposal="nearest")
    start = Factors(frames=1, stride=12, crop=112, width=1.0, bottleneck=2.25, depth=1.0)
    depth = propose(space.axis("x-depth"), start, space, 400)
    assert isinstance(depth, Proposal) and depth.factors.depth == 2.3
    assert depth.gflops / estimate_gflops(start) == pytest.approx(2.02, abs=0.01)
    at_most = propose(load_space().axis("x-depth"), start, load_space(), 400)
    assert at_most.factors.depth == 2.2 and at_most.gflops < 2 * estimate_gflops(start)


def test_chain_from_x2d_lands_on_the_published_models():
    """bottleneck, depth, spatial, frames x3, frames 16 -> contract to 13 (S), spatial (M), L, XL."""
    space = load_space()

    def step(current: Factors, axis: str) -> Factors:
        proposal = propose(space.axis(axis), current, space, 400)
        assert isinstance(proposal, Proposal), proposal
        return proposal.factors

    f = step(preset("x2d"), "x-bottleneck")
    assert f.bottleneck == 2.25
    f = step(f, "x-depth")
    assert f.depth == 2.2
    f = step(f, "x-spatial")
    assert f.crop == 160
    f = step(step(f, "x-temporal"), "x-temporal")
    assert f == preset("x3d-xs") and estimate_gflops(f) == pytest.approx(0.6053, abs=1e-4)
    f8 = step(f, "x-temporal").replace(stride=10)
    f16 = step(f8, "x-fast")
    assert (f16.frames, f16.stride) == (16, 5) and estimate_gflops(f16) == pytest.approx(2.42, abs=5e-3)
    s = contract(space.axis("x-fast"), f8, space, 400, target_gflops=2.0)
    assert isinstance(s, Proposal) and s.factors == preset("x3d-s") and s.gflops == pytest.approx(1.9629, abs=1e-4)
    m = step(f16, "x-spatial")
    assert m == preset("x3d-m") and estimate_gflops(m) == pytest.approx(4.7325, abs=1e-4)
    big = step(m, "x-spatial")
    assert big.crop == 312
    large = step(big, "x-depth")
    assert large == preset("x3d-l")
    assert step(large, "x-width") == preset("x3d-xl")


def test_bounds_skip_an_axis_with_the_reason():
    space = _space(axes={"x-fast": {"factor": "frames", "keep": "span", "step": 1, "max": 64},
                         "x-temporal": {"factor": "frames", "step": 1, "max": 5},
                         "x-spatial": {"factor": "crop", "step": 16, "max": 200}},
                   bounds={"min_stride": 4, "max_span": None})
    current = Factors(frames=4, stride=5, crop=192, width=1.0, bottleneck=2.25, depth=2.2)
    proposals, skips = propose_step(current, space, 400)
    assert proposals == []
    reasons = {s.axis: s.reason for s in skips}
    assert "min_stride 4" in reasons["x-fast"]
    assert "max 5" in reasons["x-temporal"] and "largest reachable x1.25" in reasons["x-temporal"]
    assert "max 200" in reasons["x-spatial"]


def test_a_bound_short_of_c_still_proposes_when_past_sqrt_c():
    space = _space(axes={"x-temporal": {"factor": "frames", "step": 1, "max": 7}})
    proposal = propose(space.axis("x-temporal"), Factors(frames=4, stride=12, crop=160, bottleneck=2.25,
                                                         depth=2.2), space, 400)
    assert isinstance(proposal, Proposal) and proposal.factors.frames == 7


def test_contraction_finds_the_largest_setting_under_the_target_on_every_axis():
    space = load_space()
    start = preset("x3d-xs").replace(frames=2)
    target = 0.6
    for axis in space.axes:
        result = contract(axis, start, space, 400, target)
        if isinstance(result, Skip):
            continue
        assert result.gflops <= target
        nxt = next(r for r in _ladder_after(axis, result.factors, space) if not isinstance(r, str))
        assert estimate_gflops(nxt) > target  # the next rung up would overshoot
    own = contract(space.axis("x-temporal"), start, space, 400, target)
    assert own.factors.frames == 3 and math.isclose(own.gflops, 0.4544, abs_tol=1e-4)


def _ladder_after(axis, factors, space):
    from x3dsearch.search.proposals import ladder

    return ladder(axis, factors, space)


def test_contraction_with_nothing_under_the_target_is_skipped():
    space = load_space()
    start = preset("x2d")
    result = contract(space.axis("x-temporal"), start, space, 400, target_gflops=0.03)
    assert isinstance(result, Skip) and "exceeds the target" in result.reason


# --- selection --------------------------------------------------------------------------------
def _trial(name: str, gflops: float, top1: float | None, status: str = "ok"):
    from x3dsearch.runlog import Trial, TrialStatus
    from x3dsearch.train.result import TrainResult

    return Trial(name=name, axis=name, factors=preset("x2d"), gflops=gflops, params_m=1.0,
                 status=TrialStatus(status), result=TrainResult(status=status, top1=top1))


def select(candidates, start, criterion):
    """The step's choice; these trials kept no per-video outcomes, so their mean top-1 decides."""
    from x3dsearch.search.judge import Judge

    decision, _ = Judge(criterion, "best", 0, lambda trial: None).decide(1, candidates, start)
    return next(c for c in candidates if c.axis == decision.winner)


def test_selection_best_top1_ties_to_lower_gflops_and_skips_failures():
    start = _trial("seed", 0.02, 30.0)
    cands = [_trial("x-fast", 0.040, 45.0), _trial("x-depth", 0.039, 45.0), _trial("x-width", 0.041, 44.0),
             _trial("x-spatial", 0.038, None, status="failed"), _trial("x-temporal", 0.040, None, "diverged")]
    assert select(cands, start, "top1").name == "x-depth"


def test_selection_by_gain_per_added_gflop():
    start = _trial("seed", 0.020, 30.0)
    cands = [_trial("x-fast", 0.040, 40.0),      # +10 over +0.020 -> 500 per GFLOP
             _trial("x-depth", 0.030, 38.0),     # +8 over +0.010 -> 800 per GFLOP
             _trial("x-width", 0.041, 42.0)]     # best top-1, 571 per GFLOP
    assert select(cands, start, "gain-per-gflop").name == "x-depth"
    assert select(cands, start, "top1").name == "x-width"
    unknown = _trial("seed", 0.020, None)  # a start model without top-1 falls back to top-1
    assert select(cands, unknown, "gain-per-gflop").name == "x-width"
