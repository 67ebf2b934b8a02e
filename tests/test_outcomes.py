"""Per-video outcomes, unreadable validation and test videos left out (never swapped), the training
folder and the held-out split, on real mp4 files with corrupt ones among them."""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from x3dsearch.budget import load_budget
from x3dsearch.data import DataError, DataHealth, VideoClipDataset, load_split, make_loader, synthesize
from x3dsearch.data.layout import has_split, present_splits
from x3dsearch.errors import ConfigError, X3DSearchError
from x3dsearch.factors import preset
from x3dsearch.models import build_model
from x3dsearch.outcomes import P_FLOOR, SplitOutcomes, VideoOutcome
from x3dsearch.train import TrainingFolder, TrainResult, evaluate_split, train_and_evaluate
from x3dsearch.train.evaluate import evaluate

from search_helpers import corrupt_videos

X2D = preset("x2d").replace(crop=48)  # small clips: the tests are about bookkeeping, not accuracy
FACTORS = ",".join(f"{k}={v}" for k, v in X2D.to_dict().items())  # the same network, spelled for --factors
EXE = [sys.executable, "-m", "x3dsearch.cli.main"]
#: Every training and validation video read once, precise-BN over 2 batches, validation not cut.
BUDGET = {"epochs": 1, "batch_size": 2, "lr": 0.05, "lr_batch": 2, "dropout": 0.0, "workers": 0,
          "eval_clips": None, "precise_bn_batches": 2}


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: on cores shared with other processes, two spinning threads ran 9x slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _cli(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([*EXE, *map(str, args)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """3 classes x (10 train + 10 val + 10 test) real mp4 files; one of each split corrupt.

    One bad file in 30 is 3.3% of a split's reads, under the 5% limit, so the training finishes.
    """
    root = synthesize(tmp_path_factory.mktemp("broken") / "data", classes=3, videos_per_class=30, seed=1,
                      size=(64, 86), seconds=(1.0, 1.0), test_fraction=1 / 3)
    return {"root": root, "bad": corrupt_videos(root, {"train": 4, "val": 7, "test": 12})}


@pytest.fixture(scope="module")
def trained(broken: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("trained") / "x2d"
    budget_file = out.parent / "budget.yaml"
    budget_file.write_text(yaml.safe_dump(BUDGET))
    result = train_and_evaluate(X2D, broken["root"], load_budget(budget_file), 0, out, progress=False, threads=1)
    return {"result": result, "out": out, "budget": budget_file, **broken}


# --- outcomes ----------------------------------------------------------------------------------
def test_split_outcomes_numbers_and_round_trip(tmp_path: Path) -> None:
    outcomes = SplitOutcomes("val", {"a.mp4": VideoOutcome(0, 0.9, True), "b.mp4": VideoOutcome(1, 0.0, False),
                                     "c/d.mp4": VideoOutcome(2, 0.5, True)}, excluded=["e.mp4"])
    assert outcomes.top1 == pytest.approx(200 / 3)
    assert outcomes.mean_p_true == pytest.approx(1.4 / 3)
    # p = 0 is clamped at P_FLOOR, so one confident mistake weighs log(1e-6), not -inf
    assert outcomes.mean_log_p == pytest.approx((math.log(0.9) + math.log(P_FLOOR) + math.log(0.5)) / 3)
    other = SplitOutcomes("val", {"c/d.mp4": VideoOutcome(2, 0.4, False), "a.mp4": VideoOutcome(0, 0.1, False)})
    assert outcomes.common(other) == ["a.mp4", "c/d.mp4"]
    assert SplitOutcomes.from_dict(outcomes.to_dict()) == outcomes
    folder = TrainingFolder(tmp_path)
    folder.write_outcomes(outcomes)
    assert folder.read_outcomes("val") == outcomes and folder.read_outcomes("test") is None
    assert json.loads(folder.outcomes("val").read_text())["top1"] == pytest.approx(200 / 3)
    empty = SplitOutcomes("test", excluded=["x.mp4"])
    assert empty.top1 is None and empty.mean_p_true is None and empty.mean_log_p is None
    folder.write_outcomes(empty)
    assert folder.read_outcomes("test") == empty
    with pytest.raises(ValueError, match="not a per-video outcomes record"):
        SplitOutcomes.from_dict({"videos": {}})


def test_old_result_json_loads_with_defaults(tmp_path: Path) -> None:
    old = {"status": "ok", "error": None, "top1": 50.0, "top5": 100.0, "train_loss": 1.0, "wall_time_s": 1.0,
           "train_clips_per_s": 1.0, "peak_memory_mb": 1.0, "clips_seen": 4, "train_macs": 1.0, "gflops": 0.02,
           "params_m": 1.6, "epochs_done": 1, "bad_videos": 0}
    (tmp_path / "result.json").write_text(json.dumps(old))
    result = TrainingFolder(tmp_path).read_result()
    assert result.val_videos is None and result.val_excluded == 0 and result.bad_reads == {}
    assert {k: v for k, v in result.to_dict().items() if k in old} == old


# --- layout: the optional test split and video keys ---------------------------------------------
def test_test_split_in_both_layouts_and_keys(tiny_dataset: Path, tmp_path: Path) -> None:
    assert not has_split(tiny_dataset, "test") and present_splits(tiny_dataset) == ("train", "val")
    with pytest.raises(ConfigError, match="has no test split"):
        load_split(tiny_dataset, "test")
    root = tmp_path / "csv"
    shutil.copytree(tiny_dataset, root)
    outside = tmp_path / "elsewhere.mp4"
    shutil.copy(load_split(root, "val")[0].path, outside)
    (root / "test.csv").write_text(f"{outside} 1\nvideos/plain.mp4 0\n")
    shutil.copy(outside, root / "videos" / "plain.mp4")
    (root / "val.csv").write_text((root / "val.csv").read_text() + (root / "val.csv").read_text().splitlines()[0])
    assert has_split(root, "test") and present_splits(root) == ("train", "val", "test")
    assert [r.key for r in load_split(root, "test")] == [str(outside), "videos/plain.mp4"]
    keys = [r.key for r in load_split(root, "val")]
    assert keys[0].startswith("videos/") and keys[-1] == keys[0] + "#2"  # listed twice: two entries
    folders = tmp_path / "folders"
    for split in ("train", "val", "test"):
        for record in load_split(tiny_dataset, "val" if split == "test" else split):
            target = folders / split / f"c{record.label}" / record.path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(record.path, target)
    assert has_split(folders, "test") and len(load_split(folders, "test")) == 3
    assert load_split(folders, "test")[0].key.startswith("test/c0/")


# --- unreadable videos: substituted in training, left out of validation --------------------------
def test_validation_items_of_unreadable_videos_are_excluded_not_swapped(broken: dict) -> None:
    factors = X2D
    val = VideoClipDataset(broken["root"], "val", factors, train=False)
    bad = broken["bad"]["val"]
    index = [r.path for r in val.records].index(bad.path)
    item = val[index]
    assert item["excluded"] and item["bad"] == [str(bad.path)] and item["label"] == bad.label
    assert item["video"] == index and not item["clip"].any()
    assert not val[index + 1]["excluded"]
    train = VideoClipDataset(broken["root"], "train", factors, train=True)
    swapped = train[[r.path for r in train.records].index(broken["bad"]["train"].path)]
    assert not swapped["excluded"] and swapped["bad"] == [str(broken["bad"]["train"].path)]


def test_evaluation_reads_count_towards_the_limit(broken: dict) -> None:
    factors = X2D
    torch.manual_seed(0)
    model = build_model(factors, 3)
    val = VideoClipDataset(broken["root"], "val", factors, train=False, temporal_views=2)
    health = DataHealth()  # its two failed reads come early (8% of the reads so far): checked at the end
    ev = evaluate(model, make_loader(val, 8, seed=0, shuffle=False), 3, torch.device("cpu"), keys=val.keys,
                  health=health)
    assert ev.videos == 29 and ev.excluded == 1 and ev.views == 58
    assert ev.outcomes.excluded == [broken["bad"]["val"].key] and ev.top1 == ev.outcomes.top1
    assert health.bad_reads == {"val": 2} and health.seen == 58  # both views of the bad video failed
    strict = DataHealth(max_bad_fraction=0.01, min_seen=1)
    strict.update([], 10, "train")
    with pytest.raises(DataError, match="too many unreadable videos"):
        evaluate(model, make_loader(val, 8, seed=0, shuffle=False), 3, torch.device("cpu"), health=strict)
    assert strict.bad_reads == {"train": 0, "val": 2}


def test_data_health_counts_per_phase_and_restores() -> None:
    health = DataHealth(max_bad_fraction=0.5, min_seen=1)
    health.update(["a"], 10, "train")
    health.update([], 4, "precise_bn")
    health.update(["b", "b"], 8, "val")
    assert health.bad_reads == {"train": 1, "precise_bn": 0, "val": 2}
    assert "train 1, precise_bn 0, val 2" in health.summary() and "2 unreadable" in health.summary()
    again = DataHealth()
    again.restore(health.to_dict())
    assert again.bad_reads == health.bad_reads and again.reads == health.reads and again.bad_paths == ["a", "b"]


def test_train_and_evaluate_leaves_out_unreadable_validation_videos(trained: dict) -> None:
    result, out, bad = trained["result"], trained["out"], trained["bad"]
    assert result.status == "ok", result.error
    assert result.val_videos == 29 and result.val_excluded == 1
    assert result.bad_reads["val"] == 1 and result.bad_reads["train"] >= 1 and "precise_bn" in result.bad_reads
    assert result.bad_videos == 2
    stored = json.loads((out / "result.json").read_text())
    assert stored["val_excluded"] == 1 and stored["val_videos"] == 29 and stored["bad_reads"] == result.bad_reads
    assert TrainResult.from_dict(stored) == result
    outcomes = TrainingFolder(out).read_outcomes("val")
    assert outcomes.excluded == [bad["val"].key] and len(outcomes.videos) == 29
    assert outcomes.top1 == result.top1
    # every scored video carries its own label: nothing was replaced by another video
    labels = {r.key: r.label for r in load_split(trained["root"], "val")}
    assert all(v.label == labels[key] for key, v in outcomes.videos.items())
    assert all(0.0 <= v.p_true <= 1.0 for v in outcomes.videos.values())
    log = (out / "train.log").read_text()
    assert "validation: 29 videos (1 unreadable left out)" in log
    assert "2 unreadable skipped" in log and "val 1" in log
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["bad_reads"] == result.bad_reads and last["top1"] == result.top1
    # a finished folder returns its stored result, and its outcomes stay readable
    assert train_and_evaluate(X2D, trained["root"], load_budget(trained["budget"]), 0, out, progress=False,
                              threads=1) == result
    assert TrainingFolder(out).read_outcomes("val") == outcomes


def test_no_readable_validation_video_fails_the_training(tiny_dataset: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(tiny_dataset, root)
    for record in load_split(root, "val"):
        record.path.write_bytes(b"not a video")
    result = train_and_evaluate(X2D, root, load_budget("smoke"), 0, tmp_path / "out", progress=False, threads=1)
    assert result.status == "failed" and "no val video could be read" in result.error


# --- the held-out split ------------------------------------------------------------------------
def test_evaluate_split_scores_the_test_split_once(trained: dict) -> None:
    out, bad = trained["out"], trained["bad"]
    heldout = evaluate_split(out, trained["root"], "test", threads=1)
    assert heldout.split == "test" and heldout.excluded == [bad["test"].key] and len(heldout.videos) == 29
    labels = {r.key: r.label for r in load_split(trained["root"], "test")}
    assert all(v.label == labels[key] for key, v in heldout.videos.items())
    folder = TrainingFolder(out)
    assert folder.read_outcomes("test") == heldout
    stamp = folder.outcomes("test").stat().st_mtime_ns
    assert evaluate_split(out, trained["root"], "test", threads=1) == heldout
    assert folder.outcomes("test").stat().st_mtime_ns == stamp  # stored, not evaluated again
    # evaluating the validation split again reproduces the trainer's outcomes
    val = evaluate_split(out, trained["root"], "val", threads=1)
    stored = folder.read_outcomes("val")
    assert val.excluded == stored.excluded and val.videos.keys() == stored.videos.keys()
    assert all(v.correct == stored.videos[k].correct and v.p_true == pytest.approx(stored.videos[k].p_true, abs=1e-5)
               for k, v in val.videos.items())


def test_evaluate_split_refuses_what_it_cannot_evaluate(trained: dict, tiny_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="has no test split"):
        evaluate_split(trained["out"], tiny_dataset, "test")
    with pytest.raises(X3DSearchError, match="holds no training"):
        evaluate_split(tmp_path, trained["root"], "test")
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(trained["out"] / "config.json", partial / "config.json")
    with pytest.raises(X3DSearchError, match="has no trained model"):
        evaluate_split(partial, trained["root"], "test")


@pytest.mark.slow  # trains through the CLI
def test_train_cli_says_which_accuracy_is_which(trained: dict, tiny_dataset: Path, tmp_path: Path) -> None:
    proc = _cli("train", "--factors", FACTORS, "--data", trained["root"], "--budget", trained["budget"],
                "--out", trained["out"])
    assert proc.returncode == 0, proc.stderr
    line, = proc.stdout.strip().splitlines()
    assert "(validation, 29 videos, 1 unreadable left out)" in line
    assert "held-out test top-1" in line and "(29 videos, 1 unreadable left out)" in line
    record = json.loads(_cli("train", "--factors", FACTORS, "--data", trained["root"], "--budget", trained["budget"],
                             "--out", trained["out"], "--json", "--quiet").stdout)
    assert record["test"] == {"top1": TrainingFolder(trained["out"]).read_outcomes("test").top1, "videos": 29,
                              "excluded": 1}
    tiny = _cli("train", "--factors", FACTORS, "--data", tiny_dataset, "--budget", "smoke", "--out", tmp_path / "t",
                "--quiet")
    assert tiny.returncode == 0 and "no held-out accuracy" in tiny.stdout and "has no test split" in tiny.stdout


def test_data_check_covers_the_test_split(broken: dict, tiny_dataset: Path) -> None:
    proc = _cli("data", "check", broken["root"], "--quick")
    assert proc.returncode == 1
    assert {line.split(":")[0] for line in proc.stdout.splitlines() if line.startswith("BAD")} == {
        f"BAD {r.path}" for r in broken["bad"].values()}
    assert "90 videos of train, val, test checked" in proc.stdout
    only = _cli("data", "check", broken["root"], "--split", "test", "--quick")
    assert only.returncode == 1 and only.stdout.count("BAD ") == 1 and "30 videos of test" in only.stdout
    missing = _cli("data", "check", tiny_dataset, "--split", "test")
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    assert "has no test split" in missing.stderr


# --- the training folder -----------------------------------------------------------------------
def test_training_folder_drops_the_checkpoint_only_when_finished(trained: dict, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(trained["out"], copy)
    folder = TrainingFolder(copy)
    assert folder.is_finished() and folder.checkpoint.is_file()
    assert folder.drop_checkpoint() and not folder.checkpoint.exists()
    assert not folder.drop_checkpoint()  # nothing left to drop
    assert folder.model.is_file() and folder.read_outcomes("val") is not None
    again = train_and_evaluate(X2D, trained["root"], load_budget(trained["budget"]), 0, copy, progress=False,
                               threads=1)
    assert again == trained["result"]
    unfinished = TrainingFolder(tmp_path / "unfinished")
    shutil.copytree(trained["out"], unfinished.path)
    unfinished.result.unlink()
    assert not unfinished.drop_checkpoint() and unfinished.checkpoint.is_file()
    failed = TrainResult.from_dict({**trained["result"].to_dict(), "status": "failed", "error": "x"})
    unfinished.write_result(failed)
    assert not unfinished.drop_checkpoint() and unfinished.checkpoint.is_file()
