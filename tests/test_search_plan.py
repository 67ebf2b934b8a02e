"""The planner and ``x3dsearch expand --dry-run``: the search's arithmetic without training or Ray."""
from __future__ import annotations

import json
import sys
import random
from pathlib import Path

import pytest
import yaml

from x3dsearch.cli.main import main
from x3dsearch.errors import ConfigError
from x3dsearch.factors import Factors, preset
from x3dsearch.search.estimate import estimate_gflops
from x3dsearch.search.plan import (PlanEnd, contraction_candidates, first_step, parse_path, path_proposal,
                                   lands_on_target, random_path, reached, replay)
from x3dsearch.search.space import DEFAULT_SPACE, SearchSpace, load_space

PAPER_CHAIN = "bottleneck,fast,spatial,depth,temporal,fast,temporal,spatial,spatial,depth,width"
PUBLISHED = [(0.61, "x3d-xs"), (2.0, "x3d-s"), (4.8, "x3d-m"), (18.4, "x3d-l"), (36.0, "x3d-xl")]


def _run(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def _error(capsys: pytest.CaptureFixture, *args: str) -> str:
    code, _, err = _run(capsys, *args)
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("x3dsearch: error: ") and "Traceback" not in err, err
    return err


# --- path parsing -----------------------------------------------------------------------------
def test_parse_path_accepts_names_with_or_without_the_prefix():
    space = load_space()
    assert parse_path(" fast, x-temporal ,spatial", space) == ("x-fast", "x-temporal", "x-spatial")
    assert len(parse_path(PAPER_CHAIN, space)) == 11


@pytest.mark.parametrize("text, message", [
    ("fast,slow", "unknown axis 'slow' at position 2"),
    ("fast,,depth", "item 2 is empty"),
    ("", "must list axes"),
    ("x-fps", "unknown axis 'x-fps'"),
])
def test_parse_path_refuses_bad_axes_in_one_line(text, message):
    with pytest.raises(ConfigError) as err:
        parse_path(text, load_space())
    assert message in str(err.value) and "\n" not in str(err.value)


def test_an_axis_a_bound_would_skip_is_refused():
    space = load_space()
    with pytest.raises(ConfigError) as err:
        replay(space, parse_path(",".join(["temporal"] * 8), space), 36.0, 400)
    assert "--path step 7 (x-temporal) leaves the space" in str(err.value) and "max 64" in str(err.value)
    with pytest.raises(ConfigError, match=r"step 3 \(x-fast\)"):
        path_proposal(space, "x-fast", Factors(frames=30, stride=1), 400, 3)


# --- replays ------------------------------------------------------------------------------------
@pytest.mark.parametrize("target, published", PUBLISHED)
def test_the_paper_chain_replays_onto_the_published_models(target, published):
    space = load_space()
    plan = replay(space, parse_path(PAPER_CHAIN, space), target, 400)
    assert plan.end is PlanEnd.REACHED and plan.final.factors == preset(published)
    # The stopping rule held exactly where it should: the step before was short of it.
    last = plan.steps[-1]
    assert not reached(estimate_gflops(last.start, 400), target, space.tolerance)
    if published == "x3d-s":
        assert plan.contraction is not None and plan.contraction.axis == "x-temporal"
        assert [p.factors for p in plan.contraction.candidates] == [preset("x3d-s")]
    else:
        assert plan.contraction is None


#: Hand-written, not computed: each step of PAPER_CHAIN from the X2D seed (1x30@112 w1 b1 d1), one
#: axis moved per step. Steps 5, 8, 10 and 11 are the published X3D-XS, M, L and XL (the paper's
#: Table 1: 4x12@160, 16x5@224, 16x5@312 d5, then width 1.45); steps 1, 3 and 4 move one factor to
#: its XS value. The frame-rate steps follow the README's rules by hand: X-Fast keeps the clip's span
#: (1x30 = 30 frames -> 2x15; 4x12 = 48 -> 8x6), X-Temporal doubles the frames and grows the span
#: 1.6x, the stride the nearest integer (2x15: span 48 -> 4x12; 8x6: span 76.8 -> 16 frames x 4.8 -> 16x5).
PAPER_STEPS = [
    ("x-bottleneck", "1x30@112 w1 b2.25 d1"),
    ("x-fast", "2x15@112 w1 b2.25 d1"),
    ("x-spatial", "2x15@160 w1 b2.25 d1"),
    ("x-depth", "2x15@160 w1 b2.25 d2.2"),
    ("x-temporal", "4x12@160 w1 b2.25 d2.2"),     # X3D-XS
    ("x-fast", "8x6@160 w1 b2.25 d2.2"),
    ("x-temporal", "16x5@160 w1 b2.25 d2.2"),
    ("x-spatial", "16x5@224 w1 b2.25 d2.2"),      # X3D-M
    ("x-spatial", "16x5@312 w1 b2.25 d2.2"),
    ("x-depth", "16x5@312 w1 b2.25 d5"),          # X3D-L
    ("x-width", "16x5@312 w1.45 b2.25 d5"),       # X3D-XL
]


def test_replay_walks_the_paper_chain_step_by_step():
    """Every intermediate model of the replay, against the hand-written chain (not against the
    proposal code the replay itself calls)."""
    space = load_space()
    plan = replay(space, parse_path(PAPER_CHAIN, space), 36.0, 400)
    assert plan.steps[0].start.short() == "1x30@112 w1 b1 d1"  # the X2D seed
    chosen = [step.chosen_proposal() for step in plan.steps]
    assert [(p.axis, p.factors.short()) for p in chosen] == PAPER_STEPS
    # each step starts from the model the step before it chose
    assert [step.start for step in plan.steps[1:]] == [p.factors for p in chosen[:-1]]
    for name, step in (("x3d-xs", 5), ("x3d-m", 8), ("x3d-l", 10), ("x3d-xl", 11)):
        assert chosen[step - 1].factors == preset(name)


def test_a_path_that_ends_early_says_so():
    space = load_space()
    plan = replay(space, parse_path("fast,temporal", space), 2.0, 400)
    assert plan.end is PlanEnd.PATH_ENDED and plan.final.factors == Factors(frames=4, stride=12)
    assert plan.contraction is None and "a replay stops there" in plan.notes[0]


def test_unused_axes_after_the_target_are_reported():
    space = load_space()
    plan = replay(space, parse_path(PAPER_CHAIN, space), 0.61, 400)
    assert len(plan.steps) == 5 and plan.unused == parse_path("fast,temporal,spatial,spatial,depth,width", space)


def test_contract_axes_all_lists_every_fitting_axis_and_leaves_the_choice_to_training():
    space = load_space()
    plan = replay(space, parse_path(PAPER_CHAIN, space), 2.0, 400, contract_axes="all")
    axes = [p.axis for p in plan.contraction.candidates]
    assert axes[0] == "x-temporal" and len(axes) > 1 and plan.final is None
    assert all(p.gflops <= 2.0 for p in plan.contraction.candidates)
    own, _ = contraction_candidates(space, plan.contraction.start, plan.contraction.overshoot, "x-temporal", 400,
                                    2.0)
    assert [p.factors for p in own] == [preset("x3d-s")]


def test_first_step_lists_every_axis_and_says_the_rest_needs_training():
    space = load_space()
    plan = first_step(space, 2.0, 400)
    assert plan.end is PlanEnd.NEEDS_TRAINING and plan.final is None
    assert [p.axis for p in plan.steps[0].candidates] == [a.name for a in space.axes]
    assert "only training knows" in plan.notes[0]
    assert first_step(space, 0.021, 400).end is PlanEnd.REACHED  # the seed is within the tolerance already


@pytest.mark.parametrize("target", [0, -1, float("nan"), 0.01])
def test_targets_at_or_below_zero_or_the_seed_are_refused(target):
    with pytest.raises(ConfigError):
        replay(load_space(), ("x-fast",), target, 400)


# --- the command line ---------------------------------------------------------------------------
def test_dry_run_json_replays_the_paper_chain(capsys, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for target, published in PUBLISHED:
        code, out, err = _run(capsys, "expand", "--dry-run", "--json", "--classes", "400", "--path", PAPER_CHAIN,
                              "--target-gflops", str(target))
        assert code == 0, err
        plan = json.loads(out)
        assert Factors.from_dict(plan["final"]["factors"]) == preset(published)
        assert plan["final"]["gflops"] == pytest.approx(estimate_gflops(preset(published), 400))
        assert all(set(s) >= {"step", "axis", "factors", "gflops"} for s in plan["steps"])
        assert [s["step"] for s in plan["steps"]] == list(range(1, len(plan["steps"]) + 1))
    assert list(tmp_path.iterdir()) == []  # no run directory, nothing written
    assert "ray" not in sys.modules or not __import__("ray").is_initialized()


def test_dry_run_text_shows_the_chain_and_the_contraction(capsys):
    code, out, _ = _run(capsys, "expand", "--dry-run", "--classes", "400", "--path", PAPER_CHAIN,
                        "--target-gflops", "2")
    assert code == 0
    assert "16x5@160 w1 b2.25 d2.2" in out and "contraction of step 7 (x-temporal)" in out
    assert "final: 13x6@160 w1 b2.25 d2.2, 1.9629 GFLOPs" in out and "= X3D-S" in out


def test_dry_run_without_a_path_lists_the_first_step(capsys, tiny_dataset: Path):
    code, out, _ = _run(capsys, "expand", "--dry-run", "--json", "--data", str(tiny_dataset), "--target-gflops", "1")
    assert code == 0
    plan = json.loads(out)
    space = load_space()
    assert [s["axis"] for s in plan["steps"]] == [a.name for a in space.axes] and plan["final"] is None
    from x3dsearch.data.layout import class_names

    assert plan["classes"] == len(class_names(tiny_dataset))  # the data's classes, as the search counts them


@pytest.mark.parametrize("args, message", [
    (["--path", "fast,slow"], "unknown axis 'slow'"),
    (["--path", ",".join(["temporal"] * 8)], "leaves the space"),
    (["--path", "fast", "--classes", "0"], "--num-classes must be a positive integer"),
    (["--target-gflops", "0.001"], "below the seed's"),
])
def test_bad_dry_run_input_is_one_line(capsys, args, message):
    full = ["expand", "--dry-run", "--classes", "400"] + args
    if "--target-gflops" not in args:
        full += ["--target-gflops", "36"]
    assert message in _error(capsys, *full)


def test_dry_run_options_need_dry_run(capsys, tmp_path: Path):
    run_dir = tmp_path / "run"
    assert "--json only applies with --dry-run" in _error(capsys, "expand", "--target-gflops", "1", "--json",
                                                          "--run-dir", str(run_dir))
    # --path replays for real now; a path the space cannot follow is refused before anything starts
    assert "unknown axis 'slow'" in _error(capsys, "expand", "--target-gflops", "1", "--path", "fast,slow",
                                           "--run-dir", str(run_dir))
    assert "leaves the space" in _error(capsys, "expand", "--target-gflops", "1", "--path", "depth,depth,depth,depth,"
                                        "depth,depth,depth,depth,depth,depth", "--run-dir", str(run_dir))
    assert "needs --target-gflops" in _error(capsys, "expand", "--dry-run")
    assert not run_dir.exists()


def test_a_custom_space_file_plans_with_its_own_parameters(capsys, tmp_path: Path):
    data = yaml.safe_load(DEFAULT_SPACE.read_text())
    data["axes"]["x-temporal"]["span_growth"] = 2.0  # the old keep-stride X-Temporal
    custom = tmp_path / "keep_stride.yaml"
    custom.write_text(yaml.safe_dump(data, sort_keys=False))
    code, out, _ = _run(capsys, "expand", "--dry-run", "--json", "--classes", "400", "--space", str(custom),
                        "--path", "bottleneck,fast,spatial,depth,temporal", "--target-gflops", "0.61")
    assert code == 0
    final = Factors.from_dict(json.loads(out)["final"]["factors"])
    assert final == preset("x3d-xs").replace(stride=15)  # 2x15 -> 4x15: same compute, another clip
    assert SearchSpace.from_dict(data).axis("x-temporal").span_growth == 2.0


# --- which weights each trial starts from (--proxy-init), the whole loop without Ray -----------
INHERIT_AXES = ("x-temporal", "x-depth", "x-width")


def _fake_experiments(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str | None]]:
    """Replace the Tune experiment by one that 'trains' each job at once (hand-written result, outcomes
    and model.pt; a model's score grows with its GFLOPs) and records (experiment, trial, init)."""
    from x3dsearch.outcomes import SplitOutcomes, VideoOutcome
    from x3dsearch.train.folder import TrainingFolder
    from x3dsearch.train.result import TrainResult

    jobs: list[tuple[str, str, str | None]] = []

    def experiment(name, batch, ctx, storage, cpus, gpus, max_failures, listener):
        for job in batch:
            assert job.init is None or Path(job.init).is_file(), f"{job.name} started before its parent's weights"
            jobs.append((name.split("-attempt")[0], job.name, job.init))
            factors = Factors.from_dict(job.factors)
            p = min(0.9, estimate_gflops(factors, 3) * 10)
            folder = TrainingFolder(Path(job.out_dir))
            folder.path.mkdir(parents=True, exist_ok=True)
            folder.write_outcomes(SplitOutcomes("val", {f"v{i}": VideoOutcome(i, p + 0.01 * i, p > 0.3)
                                                         for i in range(3)}))
            folder.model.write_bytes(b"weights")
            result = TrainResult(status="ok", top1=100.0 * (p > 0.3), top5=100.0, wall_time_s=1.0, train_macs=1e9)
            folder.write_result(result)
            listener.started(job.name)
            listener.finished(job.name, result, None, [0.0, 1.0], "10.0.0.5/1a2b3c4d")

    monkeypatch.setattr("x3dsearch.search.trials.run_experiment", experiment)
    return jobs


def _search(tmp_path: Path, proxy_init: str, repeats: int = 1):
    """A search of the three-axis space to 0.06 GFLOPs at 3 classes (two steps and a contraction),
    ``--keep chosen``, trained by the fake experiment."""
    import time

    from x3dsearch.budget import load_budget
    from x3dsearch.runlog import SEED_TRIAL, Clock, Run, RunDir, Trial
    from x3dsearch.search.cluster import Cluster
    from x3dsearch.search.controller import Search
    from x3dsearch.search.settings import DataInfo, SearchSettings, run_info
    from x3dsearch.search.trainable import TrialContext
    from x3dsearch.search.trials import TrialRunner

    data = yaml.safe_load(DEFAULT_SPACE.read_text())
    data["axes"] = {k: v for k, v in data["axes"].items() if k in INHERIT_AXES}
    settings = SearchSettings(0.06, SearchSpace.from_dict(data), seed=0, repeats=repeats, proxy_init=proxy_init)
    info = DataInfo("synthetic", tmp_path, num_classes=3, train_videos=9, val_videos=3)
    folder = RunDir(tmp_path / "run")
    folder.path.mkdir()
    seed = settings.space.seed
    run = Run(info=run_info(settings, load_budget("smoke"), info), run_dir=folder.path,
              seed_trial=Trial(SEED_TRIAL, None, seed, estimate_gflops(seed, 3), seed=0))
    trials = TrialRunner(folder, Cluster(None, 2.0, 0.0, 0.0), (1.0, 0.0), explicit_cpus=False, max_failures=1,
                         ctx=TrialContext("data", {}, 1, "cpu"), clock=Clock(), save=lambda: folder.save(run),
                         history=[], keep="chosen")
    Search(run, folder, settings, info, trials, time.monotonic(), keep="chosen").run()
    return run, folder


def test_inherit_trains_the_seed_first_and_starts_every_trial_from_its_step_start(tmp_path: Path, monkeypatch):
    jobs = _fake_experiments(monkeypatch)
    run, folder = _search(tmp_path, "inherit", repeats=2)
    one, two = run.steps
    contraction = run.contraction
    assert (len(run.steps), contraction is not None and contraction.done) == (2, True)
    weights = {name: str(folder.trial_dir(name).resolve() / "model.pt") for name in ("seed", one.chosen_candidate.name)}
    assert [j for j in jobs if j[0] == "step01-start"] == [("step01-start", "seed", None)]  # alone, and first
    assert jobs.index(("step01-start", "seed", None)) == 0
    expected = {"seed": None, "seed-r1": None}  # the seed model starts from scratch
    expected.update({t.name: weights["seed"] for c in one.trained for t in c.runs})
    expected.update({t.name: weights[one.chosen_candidate.name] for c in two.trained for t in c.runs})
    expected.update({t.name: weights[one.chosen_candidate.name] for c in contraction.trained for t in c.runs})
    assert {name: init for _, name, init in jobs} == expected and len(jobs) == len(expected)
    assert {j[0] for j in jobs} == {"step01-start", "step01", "step02", "contraction"}
    assert contraction.start is two.start  # contraction candidates grow from the overshooting step's start
    for step in (one, two):
        assert {(t.init, t.parent) for c in step.trained for t in c.runs} == {("inherit", step.start.name)}
    assert {(t.init, t.parent) for c in contraction.trained for t in c.runs} == {("inherit", two.start.name)}
    # --keep chosen dropped the other candidates' weights, never a parent's
    for name in ("seed", one.chosen_candidate.name, two.chosen_candidate.name, contraction.kept.name):
        assert (folder.trial_dir(name) / "model.pt").is_file(), name
    dropped = [t for c in one.trained + two.trained if c is not one.chosen_candidate and c is not
               two.chosen_candidate for t in c.runs]
    assert dropped and not any((folder.trial_dir(t.name) / "model.pt").exists() for t in dropped)
    log = yaml.safe_load(folder.log.read_text())
    assert log["proxy_init"] == "inherit"
    for number, step in enumerate(log["steps"]):
        start = run.steps[number].start.name
        assert {(c["init"], c["parent"]) for c in step["candidates"]} == {("inherit", start)}
    assert (log["contraction"]["init"], log["contraction"]["parent"]) == ("inherit", two.start.name)
    state = json.loads(folder.state.read_text())
    assert state["steps"][1]["candidates"][0]["parent"] == one.chosen_candidate.name


def test_scratch_trains_the_seed_with_step_one_and_starts_nothing_from_weights(tmp_path: Path, monkeypatch):
    jobs = _fake_experiments(monkeypatch)
    run, folder = _search(tmp_path, "scratch")
    assert {init for _, _, init in jobs} == {None} and ("step01", "seed", None) in jobs
    assert {j[0] for j in jobs} == {"step01", "step02", "contraction"}
    assert {(t.init, t.parent) for t in run.trials()} == {("scratch", None)}
    log = yaml.safe_load(folder.log.read_text())
    assert log["proxy_init"] == "scratch"
    assert {(c["init"], c["parent"]) for s in log["steps"] for c in s["candidates"]} == {("scratch", None)}


def test_a_trial_whose_parents_weights_are_missing_stops_with_one_line(tmp_path: Path, monkeypatch):
    from x3dsearch.errors import X3DSearchError
    from x3dsearch.runlog import Clock, RunDir, Trial
    from x3dsearch.search.cluster import Cluster
    from x3dsearch.search.trainable import TrialContext
    from x3dsearch.search.trials import TrialRunner

    jobs = _fake_experiments(monkeypatch)
    folder = RunDir(tmp_path / "run")
    child = Trial("s01-x-depth", "x-depth", preset("x2d").replace(depth=2.2), 0.04, seed=0, init="inherit",
                  parent="seed")
    runner = TrialRunner(folder, Cluster(None, 2.0, 0.0, 0.0), (1.0, 0.0), explicit_cpus=False, max_failures=1,
                         ctx=TrialContext("data", {}, 1, "cpu"), clock=Clock(), save=lambda: None, history=[])
    with pytest.raises(X3DSearchError) as info:
        runner.run("step01", "step 1", [child], None)
    message = str(info.value)
    assert "\n" not in message and "starts from the weights of seed" in message
    assert str(folder.trial_dir("seed").resolve() / "model.pt") in message and "does not exist" in message
    assert jobs == [] and str(child.status) == "pending"


def test_keep_chosen_never_drops_weights_a_trial_starts_from(tmp_path: Path):
    """Even a model the step did not keep stays when a trial records it as its parent."""
    from x3dsearch.runlog import SEED_TRIAL, Run, RunDir, RunInfo, Step, Trial
    from x3dsearch.search.inherit import drop_unchosen
    from x3dsearch.train.folder import TrainingFolder
    from x3dsearch.train.result import TrainResult

    folder = RunDir(tmp_path / "run")
    seed = Trial(SEED_TRIAL, None, preset("x2d"), 0.02)
    a, b, c = (Trial(f"s01-{axis}", axis, preset("x2d"), 0.04, init="inherit", parent=SEED_TRIAL)
               for axis in ("x-depth", "x-width", "x-temporal"))
    later = Trial("s02-x-depth", "x-depth", preset("x2d"), 0.08, init="inherit", parent=b.name)  # a parent not kept
    run = Run(RunInfo(0.06, 0, "x3d", "smoke", None), seed, steps=[Step(1, seed, [a, b, c], chosen="x-depth",
                                                                         done=True), Step(2, a, [later])])
    for trial in (seed, a, b, c):
        training = TrainingFolder(folder.trial_dir(trial.name))
        training.path.mkdir(parents=True)
        training.write_result(TrainResult(status="ok", top1=50.0))
        training.model.write_bytes(b"weights")
    drop_unchosen(run, folder.trial_dir, [a, b, c], a)
    kept = {t.name for t in (seed, a, b, c) if (folder.trial_dir(t.name) / "model.pt").is_file()}
    assert kept == {SEED_TRIAL, a.name, b.name}


def test_random_paths_expand_drawn_axes_and_land_on_the_target_as_a_search_would() -> None:
    """Random architectures for ``baseline --random``: each path is replayed to the target like a search,
    a seeded generator draws the same paths again, and the first axis is drawn uniformly (200 draws over
    6 axes: each count within 15..55 of an expected 33; a generator stuck on one axis gives 200 and 0)."""
    space = load_space()
    target = 0.25
    plans = [random_path(space, target, 8, rng) for rng in [random.Random(0)] for _ in range(12)]
    again = [random_path(space, target, 8, rng) for rng in [random.Random(0)] for _ in range(12)]
    assert [p.path for p in plans] == [p.path for p in again]
    for plan in plans:
        assert plan == replay(space, plan.path, target, 8)  # the search's own replay of that path
        on_target = plan.final is not None and target * (1 - space.tolerance) <= plan.final.gflops <= target
        assert lands_on_target(plan) == on_target, plan.path  # what baseline --random keeps
    kept = [p for p in plans if lands_on_target(p)]
    assert len(kept) >= 6 and len({p.final.factors for p in kept}) >= 5  # not one model drawn again and again
    rng = random.Random(1)
    first = [random_path(space, 0.03, 8, rng).path[0] for _ in range(200)]
    counts = {axis.name: first.count(axis.name) for axis in space.axes}
    assert all(15 <= n <= 55 for n in counts.values()), counts
