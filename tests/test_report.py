"""Run-log reading, the frontier figure and the path summary, on hand-written ``expansion_path.yaml``
fixtures (``tests/fixtures/handwritten_runs``: made up for these tests, not recorded runs).

Figures are checked through their artists (gids), never through pixels.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from x3dsearch.errors import X3DSearchError
from x3dsearch.factors import PRESETS
from x3dsearch.report.plot import (AXIS_MARKERS, REFERENCE_FAMILIES, find_artists, pareto_frontier,
                                   plot_runs)
from x3dsearch.runlog import RUN_LOG_NAME, ModelRecord, RunLogError, load_run
from x3dsearch.report.table import format_summary, summarize

FIXTURES = Path(__file__).parent / "fixtures" / "handwritten_runs"
SEED0 = FIXTURES / "k400_xs_seed0"      # finished, target 0.6, one diverged and one failed candidate
SEED1 = FIXTURES / "k400_xs_seed1"      # finished, same target, another path
RUNNING = FIXTURES / "synthetic_s_running"  # running, step 4 half trained, seed not evaluated

SEED0_PATH = [("seed", None, 0.0207, 19.8), ("1", "x-bottleneck", 0.041, 25.3), ("2", "x-depth", 0.0805, 32.4),
              ("3", "x-spatial", 0.1527, 38.9), ("4", "x-temporal", 0.3036, 44.8),
              ("5", "x-temporal", 0.6053, 51.2), ("contracted", "x-temporal", 0.4544, 49.1)]
# Worked out by hand from the fixture's 28 evaluated candidates, the seed and the contracted model.
SEED0_FRONTIER = [(0.0207, 19.8), (0.0362, 22.8), (0.0382, 23.9), (0.0401, 24.6), (0.041, 25.3), (0.0776, 29.8),
                  (0.0802, 30.9), (0.0805, 32.4), (0.1466, 35.2), (0.1527, 38.9), (0.2778, 40.9), (0.2975, 43.1),
                  (0.3036, 44.8), (0.4544, 49.1), (0.5932, 49.4), (0.6053, 51.2)]


def edited_run(tmp_path: Path, source: Path, edit, name: str | None = None) -> Path:
    """A copy of a fixture run whose raw log went through ``edit(dict)``."""
    raw = yaml.safe_load((source / RUN_LOG_NAME).read_text())
    edit(raw)
    run_dir = tmp_path / (name or source.name)
    run_dir.mkdir(parents=True)
    (run_dir / RUN_LOG_NAME).write_text(yaml.safe_dump(raw, sort_keys=False))
    return run_dir


def points(artist) -> list[tuple[float, float]]:
    """(x, y) pairs of a scatter or a line, rounded like the log's numbers."""
    if hasattr(artist, "get_offsets"):
        xy = np.asarray(artist.get_offsets())
    else:
        xy = np.column_stack([artist.get_xdata(), artist.get_ydata()])
    return [(round(float(x), 4), round(float(y), 4)) for x, y in xy]


def one(fig, gid: str):
    found = [a for a in fig.findobj() if a.get_gid() == gid]
    assert len(found) == 1, f"expected one artist '{gid}', found {len(found)}"
    return found[0]


# --- reading the log -----------------------------------------------------------------------------
def test_finished_run_is_read_with_its_path_contraction_and_cost():
    run = load_run(SEED0)
    assert (run.status, run.partial, run.target_gflops, run.seed, run.budget) == ("finished", False, 0.6, 0, "paper")
    assert [s.step for s in run.steps] == [1, 2, 3, 4, 5]
    assert len(run.candidates()) == 30
    assert len(run.evaluated_candidates()) == 28
    statuses = {(c.axis, c.status) for c in run.candidates() if c.status != "ok"}
    assert statuses == {("x-width", "diverged"), ("x-depth", "failed")}
    path = [(p.label, p.axis, p.model.gflops, p.model.top1) for p in run.path()]
    assert path == SEED0_PATH
    assert run.final.factors == PRESETS["x3d-xs"].replace(frames=3)
    assert run.cost.train_macs == pytest.approx(3.8452e16)


def test_running_run_is_partial_and_its_path_stops_at_the_last_finished_step():
    run = load_run(RUNNING)
    assert run.partial and run.final is None and run.contraction is None
    assert run.progress == "running, step 4: 2/6 candidates evaluated"
    assert [p.label for p in run.path()] == ["seed", "1", "2", "3"]
    assert run.steps[-1].chosen is None
    assert not run.seed_model.evaluated


def test_a_run_file_path_is_accepted_in_place_of_its_directory():
    assert load_run(SEED0 / RUN_LOG_NAME).run_dir == SEED0


def test_unknown_keys_are_ignored_and_optional_blocks_may_be_missing(tmp_path):
    def edit(raw):
        raw["search_version"] = "0.2"
        raw["steps"][0]["skipped"] = [{"axis": "x-width", "reason": "bound"}]
        raw["steps"][0]["candidates"][0]["trial_id"] = "a1b2"
        raw["steps"][0]["candidates"][0]["status"] = "skipped"  # a status this reader does not know
        for key in ("cost", "data", "status", "contraction", "final"):
            del raw[key]

    run = load_run(edited_run(tmp_path, SEED0, edit))
    assert run.partial and run.status is None and run.data is None and run.cost.train_macs is None
    assert len(run.evaluated_candidates()) == 27
    assert [p.label for p in run.path()][-1] == "5"


def test_an_axis_that_proposed_nothing_is_listed_but_not_plotted(tmp_path):
    def skip_width(raw):
        raw["steps"][0]["candidates"][4] = {"axis": "x-width", "status": "skipped",
                                            "error": "bound reached: width <= 1.0"}

    run = load_run(edited_run(tmp_path, SEED0, skip_width))
    assert len(run.candidates()) == 30 and len(run.evaluated_candidates()) == 27
    assert sum(len(points(a)) for a in find_artists(plot_runs([run]), "run0:candidates")) == 27
    text = format_summary(summarize(run, all_candidates=True))
    assert "skipped: bound reached: width <= 1.0" in text


@pytest.mark.parametrize("text, message", [
    ("steps: [\n", "not valid YAML (line 2"),
    ("- 1\n- 2\n", "expected a mapping at the top level, got list"),
    ("", "expected a mapping at the top level, got an empty file"),
    ("target_gflops: 0.6\nseed: 0\n", "missing key 'steps'"),
    ("steps: {a: 1}\n", "steps: expected a list, got dict"),
])
def test_broken_logs_are_refused_with_one_line(tmp_path, text, message):
    (tmp_path / RUN_LOG_NAME).write_text(text)
    with pytest.raises(RunLogError) as info:
        load_run(tmp_path)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("edit, message", [
    (lambda raw: raw["steps"][1].update(chosen="x-warp"),
     "steps[1].chosen: 'x-warp' is not the axis of any candidate of step 2"),
    (lambda raw: raw["steps"][0]["candidates"][2].update(gflops="a lot"),
     "steps[0].candidates[2].gflops: expected a number, got 'a lot'"),
    (lambda raw: raw["steps"][0]["candidates"][2]["factors"].update(frames=0),
     "steps[0].candidates[2].factors: factor 'frames' must be a positive integer"),
    (lambda raw: raw["steps"][2].pop("from"), "steps[2].from: expected a mapping, got NoneType"),
    (lambda raw: raw["steps"][0]["candidates"][1].pop("gflops"),
     "steps[0].candidates[1].gflops: expected a number, got None"),
    (lambda raw: raw["data"].update(train_videos="many"), "data.train_videos: expected a non-negative integer"),
])
def test_wrong_values_name_the_key(tmp_path, edit, message):
    with pytest.raises(RunLogError, match=r"expansion_path\.yaml: ") as info:
        load_run(edited_run(tmp_path, SEED0, edit))
    assert message in str(info.value)


def test_not_a_run_directory_and_missing_directory(tmp_path):
    with pytest.raises(RunLogError, match="is not a run directory"):
        load_run(tmp_path)
    with pytest.raises(RunLogError, match="no such directory"):
        load_run(tmp_path / "gone")


def test_a_run_without_an_evaluated_candidate_is_empty(tmp_path):
    def no_results(raw):
        del raw["steps"][1:]
        for cand in raw["steps"][0]["candidates"]:
            cand.update(status="pending", top1=None, top5=None)
        del raw["steps"][0]["chosen"]

    with pytest.raises(RunLogError, match="the run is empty: no candidate has been evaluated yet"):
        load_run(edited_run(tmp_path, RUNNING, no_results))
    with pytest.raises(RunLogError, match="the run is empty"):
        load_run(edited_run(tmp_path, RUNNING, lambda raw: raw.update(steps=[]), name="no_steps"))


# --- the figure ----------------------------------------------------------------------------------
def test_every_evaluated_candidate_is_one_point_marked_by_its_axis():
    fig = plot_runs([SEED0])
    scatters = find_artists(fig, "run0:candidates")
    assert sorted(a.get_gid().split(":")[-1] for a in scatters) == sorted(AXIS_MARKERS)
    assert sum(len(points(a)) for a in scatters) == 28
    by_axis = {a.get_gid().split(":")[-1]: a for a in scatters}
    assert len(points(by_axis["x-width"])) == 4 and len(points(by_axis["x-depth"])) == 4  # diverged, failed
    assert (0.6053, 51.2) in points(by_axis["x-temporal"])
    # One distinct marker shape per axis.
    shapes = {tuple(map(tuple, a.get_paths()[0].vertices.round(3))) for a in scatters}
    assert len(shapes) == 6
    assert fig.axes[0].get_xscale() == "log"


def test_chosen_path_runs_in_step_order_with_labels_and_the_final_model_is_highlighted():
    fig = plot_runs([SEED0])
    assert points(one(fig, "run0:path")) == [(g, t) for label, _, g, t in SEED0_PATH if label != "contracted"]
    labels = [a.get_text() for a in find_artists(fig, "run0:path-label")]
    assert labels == ["seed", "1 x-bottleneck", "2 x-depth", "3 x-spatial", "4 x-temporal", "5 x-temporal",
                      "contract x-temporal"]
    assert points(one(fig, "run0:contraction")) == [(0.6053, 51.2), (0.4544, 49.1)]
    final = one(fig, "run0:final")
    assert points(final) == [(0.4544, 49.1)]
    assert final.get_sizes()[0] > 4 * max(a.get_sizes()[0] for a in find_artists(fig, "run0:candidates"))
    assert points(one(fig, "run0:seed")) == [(0.0207, 19.8)]


def test_pareto_frontier_is_a_step_line_over_all_evaluated_models():
    fig = plot_runs([SEED0])
    frontier = one(fig, "run0:frontier")
    assert frontier.get_drawstyle() == "steps-post"
    assert points(frontier) == SEED0_FRONTIER


def test_pareto_frontier_keeps_only_models_no_cheaper_model_matches():
    f = PRESETS["x2d"]
    models = [ModelRecord(f, 1.0, 50.0), ModelRecord(f, 1.0, 52.0), ModelRecord(f, 2.0, 52.0),
              ModelRecord(f, 0.5, None), ModelRecord(f, 3.0, 60.0), ModelRecord(f, 2.5, 51.0)]
    assert [(m.gflops, m.top1) for m in pareto_frontier(models)] == [(1.0, 52.0), (3.0, 60.0)]


def test_several_runs_overlay_with_a_colour_per_run_and_a_marker_per_axis():
    fig = plot_runs([SEED0, SEED1, RUNNING])
    colours = [one(fig, f"run{i}:path").get_color() for i in range(3)]
    assert len(set(colours)) == 3
    assert [sum(len(points(a)) for a in find_artists(fig, f"run{i}:candidates")) for i in range(3)] == [28, 30, 20]
    # run 1 took another path, so its labels differ from run 0's.
    assert [a.get_text() for a in find_artists(fig, "run1:path-label")][1:4] == \
        ["1 x-depth", "2 x-bottleneck", "3 x-fast"]
    marker = {}
    for i in range(3):
        for a in find_artists(fig, f"run{i}:candidates"):
            shape = tuple(map(tuple, a.get_paths()[0].vertices.round(3)))
            assert marker.setdefault(a.get_gid().split(":")[-1], shape) == shape
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend[:3] == ["k400_xs_seed0: 0.454 G, 49.1", "k400_xs_seed1: 0.454 G, 50.3",
                          "synthetic_s_running (running)"]
    assert set(AXIS_MARKERS) <= set(legend)
    assert "Pareto frontier" in legend and "chosen path" in legend and "final (contracted)" in legend


def test_a_running_run_plots_what_it_has_and_says_so_in_the_title():
    fig = plot_runs([RUNNING], title="Synthetic, target 2 GFLOPs")
    title = fig.axes[0].get_title()
    assert title.startswith("Synthetic, target 2 GFLOPs\n")
    assert "partial: running, step 4: 2/6" in title.replace("\n", " ")
    assert points(one(fig, "run0:path")) == [(0.041, 45.0), (0.0805, 58.3), (0.1527, 68.3)]  # seed unevaluated
    assert find_artists(fig, "run0:final") == [] and find_artists(fig, "run0:seed") == []
    assert (0.3036, 73.3) in points(one(fig, "run0:frontier"))
    finished = plot_runs([SEED0]).axes[0].get_title()
    assert finished == "Accuracy vs. complexity: k400_xs_seed0"


def test_a_final_model_without_top1_is_marked_by_its_gflops_only(tmp_path):
    def unevaluated(raw):
        raw["contraction"]["top1"] = None
        raw["final"]["top1"] = None

    fig = plot_runs([edited_run(tmp_path, SEED0, unevaluated)])
    final = one(fig, "run0:final")
    assert list(final.get_xdata()) == [0.4544, 0.4544] and list(final.get_ydata()) == [0, 1]  # axvline
    assert find_artists(fig, "run0:contraction") == []
    assert (0.4544, 49.1) not in points(one(fig, "run0:frontier"))


def test_reference_markers_sit_at_the_published_x3d_gflops():
    fig = plot_runs([SEED0], reference="x3d")
    lines = find_artists(fig, "reference")
    assert {a.get_gid(): a.get_xdata()[0] for a in lines} == {
        "reference:x3d-xs": 0.6053, "reference:x3d-s": 1.9629, "reference:x3d-m": 4.7325,
        "reference:x3d-l": 18.368, "reference:x3d-xl": 35.838}
    assert [a.get_text().strip() for a in find_artists(fig, "reference-label")] == ["XS", "S", "M", "L", "XL"]
    assert find_artists(plot_runs([SEED0]), "reference") == []


def test_reference_table_equals_fvcore_counts_of_the_presets():
    from x3dsearch.complexity import gflops

    table = {name: value for name, _, value in REFERENCE_FAMILIES["x3d"]}
    for name in ("x3d-xs", "x3d-s"):  # the cheap ones to trace; the README table covers all five
        assert gflops(PRESETS[name]) == pytest.approx(table[name], abs=5e-4)


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".pdf", b"%PDF"), (".svg", b"<?xml")])
def test_the_extension_picks_the_format(tmp_path, suffix, magic):
    out = tmp_path / "figs" / f"frontier{suffix}"
    plot_runs([SEED0, RUNNING], out, reference="x3d")
    assert out.read_bytes().startswith(magic)
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temp file left behind


def test_an_unknown_extension_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(X3DSearchError, match="cannot tell the image format"):
        plot_runs([SEED0], tmp_path / "frontier.xyz")
    with pytest.raises(X3DSearchError, match="cannot tell the image format"):
        plot_runs([SEED0], tmp_path / "frontier")
    assert list(tmp_path.iterdir()) == []


def test_runs_with_the_same_folder_name_get_distinct_labels(tmp_path):
    a = shutil.copytree(SEED0, tmp_path / "a" / "run")
    b = shutil.copytree(SEED1, tmp_path / "b" / "run")
    legend = [t.get_text() for t in plot_runs([a, b]).axes[0].get_legend().get_texts()]
    assert legend[0].startswith("a/run:") and legend[1].startswith("b/run:")


# --- the summary ---------------------------------------------------------------------------------
@pytest.mark.parametrize("repeats, says", [
    (1, "2 of 3 steps beat the noise of the validation videos (a run decided before simultaneous decisions"),
    (3, "2 of 3 steps beat proxy noise (a run decided before simultaneous decisions"),
])
def test_show_reads_a_decision_written_before_simultaneous_decisions(tmp_path, repeats, says):
    """An older run's decisions (runner-up interval only): show reads them one-sided and says what they
    held. The decisions are hand-written into the hand-written fixture (made up for this test, not recorded)."""
    def edit(raw):
        for step, ci in zip(raw["steps"][:3], ([1.0, 9.0], [0.5, 4.0], [-2.0, 6.0])):
            step["decision"] = {"criterion": "top1", "rule": "cheaper", "winner": step["chosen"],
                                "runner_up": "x-width", "margin": (ci[0] + ci[1]) / 2, "ci": ci, "videos": 104,
                                "repeats": repeats, "tied": []}

    text = format_summary(summarize(load_run(edited_run(tmp_path, SEED0, edit))))
    assert says in text and "1 within noise" in text
    assert ("seed noise not in it" in text) == (repeats == 1)


def test_show_counts_a_step_significant_only_when_every_candidate_is_excluded(tmp_path):
    """Simultaneous decisions (hand-written into the hand-written fixture): step 1 excludes both others,
    step 2 leaves x-depth tied though its runner-up is excluded, step 3 ties the runner-up."""
    steps = [({"x-width": True, "x-depth": True}, []), ({"x-width": True, "x-depth": False}, ["x-depth"]),
             ({"x-width": False, "x-depth": False}, ["x-width", "x-depth"])]

    def edit(raw):
        for step, (excluded, tied) in zip(raw["steps"][:3], steps):
            step["decision"] = {"criterion": "top1", "rule": "best", "winner": step["chosen"],
                                "runner_up": "x-width", "margin": 5.0, "ci": [1.0, 9.0], "videos": 104,
                                "repeats": 1, "tied": tied, "method": "mcb-max-t", "level": 0.9,
                                "noise": "seed SD 6.5 of a paired top1 difference (hand-written)",
                                "vs_start": {"margin": 12.0, "ci": [4.0, 20.0], "split": "test",
                                             "selection_biased": False},
                                "against": {a: {"margin": 5.0, "ci": [1.0 if e else -1.0, 9.0], "excluded": e}
                                            for a, e in excluded.items()}}

    text = format_summary(summarize(load_run(edited_run(tmp_path, SEED0, edit))))
    assert "decisions: 1 of 3 steps chose a model that beats every other candidate at once" in text
    assert "2 within noise" in text and "seed SD 6.5 of a paired top1 difference (hand-written)" in text
    assert "within noise (tied: x-depth)" in text and "beats all 2 others: margin +5.0 over x-width" in text
    assert "+12.0 over the start (held-out; better beyond noise)" in text


def test_summary_has_the_path_the_cost_and_the_ratio_to_one_full_training():
    s = summarize(load_run(SEED0))
    assert [(r["step"], r["axis"], r["gflops"], r["top1"]) for r in s["path"]] == SEED0_PATH
    assert s["path"][1]["time_s"] == 4934.7 and s["path"][-1]["params_m"] == 3.794
    assert "steps" not in s
    cost = s["cost"]
    assert cost["train_macs"] == pytest.approx(3.8452e16)
    assert cost["outside_training_share"] == pytest.approx((38969.4 - 37797.7) / 38969.4)
    full = s["full_training"]
    # paper budget: 300 epochs x 234619 K400 videos x 3 (forward + backward) x 0.4544 GFLOPs
    assert full["full_training_macs"] == pytest.approx(300 * 234619 * 3 * 0.4544e9)
    assert full["one_in"] == pytest.approx(300 * 234619 * 3 * 0.4544e9 / 3.8452e16)
    text = format_summary(s)
    assert "search cost = 1/2.5 of one full training" in text
    assert "3.0% of wall time" in text and "3.845e+16" in text
    assert "final: 3x12@160 w1 b2.25 d2.2, 0.4544 GFLOPs = 75.7% of the 0.6 GFLOPs target" in text


def test_summary_with_all_lists_every_candidate_and_its_error():
    s = summarize(load_run(SEED0), all_candidates=True)
    assert [len(step["candidates"]) for step in s["steps"]] == [6] * 5
    assert [c["axis"] for c in s["steps"][0]["candidates"] if c["chosen"]] == ["x-bottleneck"]
    text = format_summary(s)
    assert "diverged: loss became NaN at epoch 4" in text
    assert "failed: RayActorError" in text
    assert text.count("\n  *  ") == 5  # one chosen row per step


def test_ratio_is_unavailable_without_train_videos_or_a_final_model(tmp_path):
    no_data = summarize(load_run(edited_run(tmp_path, SEED0, lambda raw: raw.pop("data"))))
    assert no_data["full_training"]["available"] is False
    assert "unavailable (the run log has no data.train_videos)" in format_summary(no_data)
    running = summarize(load_run(RUNNING), all_candidates=True)
    assert "unavailable (the run has no final model yet)" in format_summary(running)
    assert running["in_progress"] == {"step": 4, "evaluated": 2, "candidates": 6,
                                      "statuses": {"ok": 2, "running": 1, "pending": 3}}
    assert "step 4 in progress: 2/6 evaluated (2 ok, 1 running, 3 pending)" in format_summary(running)


def test_outside_training_share_is_not_invented_when_trials_overlapped(tmp_path):
    run_dir = edited_run(tmp_path, SEED0, lambda raw: raw["cost"].update(wall_time_s=9000.0))
    s = summarize(load_run(run_dir))
    assert s["cost"]["outside_training_share"] is None
    assert "exceeds wall time" in s["cost"]["outside_training_note"]


def test_train_macs_fall_back_to_the_candidates_sum(tmp_path):
    s = summarize(load_run(edited_run(tmp_path, SEED0, lambda raw: raw["cost"].pop("train_macs"))))
    expected = sum(c["train_macs"] for st in yaml.safe_load((SEED0 / RUN_LOG_NAME).read_text())["steps"]
                   for c in st["candidates"] if c.get("train_macs"))
    assert s["cost"]["train_macs"] == pytest.approx(expected)
    assert s["cost"]["train_macs_source"] == "sum of candidates' train_macs"


def test_the_final_model_is_ranked_among_random_architectures():
    """Hand-written scores (made up for this test): 1 + how many random architectures score strictly
    higher; presets are not random architectures, and a missing held-out score leaves that rank out."""
    from x3dsearch.report.table import random_rank, random_rank_text

    final = {"top1": 50.0, "heldout_top1": 40.0}
    baselines = [{"name": "random-1", "top1": 60.0, "heldout_top1": 30.0},
                 {"name": "random-2", "top1": 50.0, "heldout_top1": 45.0},
                 {"name": "random-3", "top1": 40.0, "heldout_top1": None},
                 {"name": "x3d-xs", "top1": 90.0, "heldout_top1": 90.0}]
    rank = random_rank(final, baselines)
    assert rank == {"random": 3, "val_rank": 2, "heldout_rank": 2}
    assert "ranks 2 of 4 on validation top-1 and 2 of 4 on held-out top-1" in random_rank_text(rank)
    assert random_rank(final, baselines[3:]) is None
    assert random_rank({"top1": 50.0, "heldout_top1": None}, baselines)["heldout_rank"] is None
