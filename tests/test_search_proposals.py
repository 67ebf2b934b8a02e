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
    assert (space.axis("x-temporal").span_growth, space.axis("x-temporal").contract) == (1.6, "keep-span")
    assert (space.seed.frames, space.seed.stride) == (1, 30)  # about 1 s: X-Fast gives 2x15
    assert (space.selection, space.contraction, space.budget, space.min_stride) == ("top1", "own", "auto", 1)
    assert (space.on_tie, space.repeats, space.max_repeats) == ("best", 1, 3)
    assert space.proxy_init == "scratch"  # until a measurement says inherit ranks models better
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
    ({"proxy_init": "warm"}, "'proxy_init'"),
    ({"proxy_init": True}, "'proxy_init'"),
    ({"tolerance": 1.5}, "'tolerance'"),
    ({"seed": {"frames": 1, "stride": 12, "crop": 112, "width": 1.0, "bottleneck": 1.0}}, "'depth'"),
    ({"colour": "blue"}, "'colour'"),
    ({"axes": {"x-temporal": {"factor": "frames", "span_growth": 2.5, "step": 1, "max": 9}}},
     "'axes.x-temporal.span_growth'"),
    ({"axes": {"x-temporal": {"factor": "frames", "span_growth": "fast", "step": 1, "max": 9}}},
     "'axes.x-temporal.span_growth'"),
    ({"axes": {"x-fast": {"factor": "frames", "keep": "span", "span_growth": 1.6, "step": 1, "max": 9}}},
     "'axes.x-fast.span_growth'"),
    ({"axes": {"x-depth": {"factor": "depth", "span_growth": 1.6, "step": 0.1, "max": 9}}},
     "'axes.x-depth.span_growth'"),
    ({"axes": {"x-temporal": {"factor": "frames", "contract": "shrink", "step": 1, "max": 9}}},
     "'axes.x-temporal.contract'"),
    ({"axes": {"x-spatial": {"factor": "crop", "contract": "keep-span", "step": 8, "max": 400}}},
     "'axes.x-spatial.contract'"),
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
    assert SearchSpace.from_dict(load_space().to_dict()) == load_space()  # span_growth and contract survive


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
        temporal = proposals[1].factors  # X-Temporal: the span grows 1.6x per doubling of frames
        grown = current.span * (temporal.frames / current.frames) ** math.log2(1.6)
        assert abs(temporal.stride - grown / temporal.frames) <= 0.5 and temporal.stride <= current.stride
        assert temporal.span > current.span
        current = proposals[step % len(proposals)].factors  # walk every axis in turn


def test_span_growth_two_keeps_the_stride_and_one_keeps_the_span():
    base = dict(factor="frames", step=1, max=64)
    space = _space(axes={"same-stride": base, "same-span": {**base, "span_growth": 1.0},
                         "paper": {**base, "span_growth": 1.6}})
    start = Factors(frames=4, stride=12, crop=160, width=1.0, bottleneck=2.25, depth=2.2)
    proposals, skips = propose_step(start, space, 400)
    assert not skips and [p.factors.frames for p in proposals] == [8, 8, 8]
    assert [p.factors.stride for p in proposals] == [12, 6, 10]  # 96 / 8, 48 / 8, 48 x 1.6 / 8 = 9.6
    assert len({p.gflops for p in proposals}) == 1  # the stride costs nothing


def test_keep_span_contraction_spreads_fewer_frames_over_the_expanded_clip():
    space = load_space()
    start = Factors(frames=8, stride=6, crop=160, width=1.0, bottleneck=2.25, depth=2.2)
    temporal = space.axis("x-temporal")
    expanded = propose(temporal, start, space, 400).factors
    assert (expanded.frames, expanded.stride) == (16, 5)
    for target, frames in ((2.0, 13), (1.5, 9), (2.5, 16)):
        result = contract(temporal, start, space, 400, target, expanded=expanded)
        assert result.factors.frames == frames and result.factors.stride == round(80 / frames)
    ladder_rule = SearchSpace.from_dict({**load_space().to_dict(), "axes": {
        "x-temporal": {"factor": "frames", "span_growth": 1.6, "step": 1, "max": 64}}})
    assert contract(ladder_rule.axis("x-temporal"), start, ladder_rule, 400, 2.0).factors.stride == 5  # 13x5
    nothing = contract(temporal, start, space, 400, 1.0, expanded=expanded)
    assert isinstance(nothing, Skip) and "exceeds the target" in nothing.reason


def test_nearest_rule_may_go_over_c_times():
    space = _space(proposal="nearest")
    start = Factors(frames=1, stride=12, crop=112, width=1.0, bottleneck=2.25, depth=1.0)
    depth = propose(space.axis("x-depth"), start, space, 400)
    assert isinstance(depth, Proposal) and depth.factors.depth == 2.3
    assert depth.gflops / estimate_gflops(start) == pytest.approx(2.02, abs=0.01)
    at_most = propose(load_space().axis("x-depth"), start, load_space(), 400)
    assert at_most.factors.depth == 2.2 and at_most.gflops < 2 * estimate_gflops(start)


PAPER_CHAIN = "bottleneck,fast,spatial,depth,temporal,fast,temporal,spatial,spatial,depth,width"


def test_chain_from_x2d_lands_on_the_published_models():
    """The paper's chain replayed with the space's own operators, stopping rule and contraction:
    bottleneck, fast, spatial, depth, temporal (XS), fast, temporal 16x5 -> contracted 13x6 (S),
    spatial (M, from the uncontracted 16x5), spatial, depth (L), width (XL). No stride is edited by hand."""
    from x3dsearch.search.plan import PlanEnd, parse_path, replay

    space = load_space()
    path = parse_path(PAPER_CHAIN, space)
    chain = replay(space, path, 36.0, 400)  # XL's budget: every step, no contraction
    models = [s.chosen_proposal().factors for s in chain.steps]
    f = models[0]
    assert f.bottleneck == 2.25
    assert (models[1].frames, models[1].stride) == (2, 15)  # X-Fast over the seed's 1 s clip
    assert models[2].crop == 160
    assert models[3].depth == 2.2
    assert models[4] == preset("x3d-xs") and estimate_gflops(models[4]) == pytest.approx(0.6053, abs=1e-4)
    assert (models[5].frames, models[5].stride) == (8, 6)
    f16 = models[6]
    assert (f16.frames, f16.stride) == (16, 5) and estimate_gflops(f16) == pytest.approx(2.42, abs=5e-3)
    m = models[7]
    assert m == preset("x3d-m") and estimate_gflops(m) == pytest.approx(4.7325, abs=1e-4)
    assert models[8].crop == 312
    assert models[9] == preset("x3d-l")
    assert models[10] == preset("x3d-xl") and chain.final.factors == preset("x3d-xl")
    assert chain.end is PlanEnd.REACHED and chain.contraction is None and not chain.unused

    s = replay(space, path, 2.0, 400)  # S: 16x5 overshoots, X-Temporal contracts at the expanded clip's span
    assert s.contraction is not None and s.contraction.overshoot == f16 and s.contraction.start == models[5]
    assert s.final.factors == preset("x3d-s") and s.final.gflops == pytest.approx(1.9629, abs=1e-4)
    own = contract(space.axis("x-temporal"), models[5], space, 400, target_gflops=2.0)
    assert isinstance(own, Proposal) and own.factors == preset("x3d-s")


@pytest.mark.parametrize("target, published", [(0.61, "x3d-xs"), (2.0, "x3d-s"), (4.8, "x3d-m"), (18.4, "x3d-l"),
                                               (36.0, "x3d-xl")])
def test_replaying_the_paper_chain_reaches_each_published_model(target, published):
    """Done means: the ordinary proposal rule, the space's tolerance and contraction stop on the preset."""
    from x3dsearch.search.plan import PlanEnd, parse_path, replay

    space = load_space()
    plan = replay(space, parse_path(PAPER_CHAIN, space), target, 400)
    assert plan.end is PlanEnd.REACHED and plan.final.factors == preset(published)
    assert plan.final.gflops == pytest.approx(estimate_gflops(preset(published), 400)) and plan.final.gflops <= target


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
