"""The trainer on a tiny real mp4 dataset: result record, determinism, exact resumption, divergence, failures."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from x3dsearch.budget import Budget, load_budget, training_macs
from x3dsearch.complexity import complexity
from x3dsearch.errors import X3DSearchError
from x3dsearch.factors import preset
from x3dsearch.train import TrainResult, train_and_evaluate

X2D = preset("x2d")
TIME_KEYS = ("train_clips_per_s", "train_time_s", "wall_time_s")


def smoke(**changes) -> Budget:
    return load_budget("smoke").replace(**changes)


def steps_per_epoch(root: Path, batch: int = 2) -> int:
    from x3dsearch.data import load_split

    return len(load_split(root, "train")) // batch


def val_videos(root: Path) -> int:
    from x3dsearch.data import load_split

    return len(load_split(root, "val"))


def weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "model.pt", weights_only=True)["model_state"]


def metric_lines(out: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIME_KEYS}
            for line in (out / "metrics.jsonl").read_text().splitlines()]


# Two epochs, a checkpoint every 3 steps, dropout on (so the RNG state matters) and precise-BN.
RESUMABLE = dict(epochs=2, checkpoint_every=3, dropout=0.5, precise_bn_batches=2)


@pytest.fixture(scope="module")
def reference(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainResult, Path, list]:
    """One uninterrupted training, shared by the determinism and resumption tests."""
    out = tmp_path_factory.mktemp("reference")
    reports: list = []
    result = train_and_evaluate(X2D, tiny_dataset, smoke(**RESUMABLE), 3, out, progress=False,
                                report=lambda metrics, ckpt_dir: reports.append((metrics, ckpt_dir)))
    return result, out, reports


def test_result_record_and_files(reference: tuple, tiny_dataset: Path) -> None:
    result, out, reports = reference
    assert result.status == "ok" and result.error is None
    assert 0.0 <= result.top1 <= result.top5 <= 100.0
    assert result.train_loss is not None and result.train_loss > 0
    from x3dsearch.data import class_names

    cost = complexity(X2D, len(class_names(tiny_dataset)))
    assert result.gflops == pytest.approx(cost.gflops) and result.params_m == pytest.approx(cost.params_m)
    spe = steps_per_epoch(tiny_dataset)  # batch 2, last partial batch dropped
    total = 2 * spe
    assert result.clips_seen == 2 * total and result.epochs_done == 2
    assert result.train_macs == pytest.approx(training_macs(result.gflops, 2 * total))
    assert result.train_clips_per_s > 0 and result.wall_time_s > 0 and result.peak_memory_mb > 0
    assert result.bad_videos == 0
    for name in ("checkpoint.pt", "metrics.jsonl", "result.json", "train.log", "model.pt", "config.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "result.json").read_text()) == result.to_dict()
    lines = metric_lines(out)
    assert [line["epoch"] for line in lines] == [1, 2] and [line["step"] for line in lines] == [spe, total]
    assert "top1" not in lines[0] and lines[1]["top1"] == result.top1
    # Reports: every 3rd step inside an epoch, each epoch end, then the final one with the result.
    mid_epoch = {step for step in range(3, total, 3) if step % spe}
    assert [m["step"] for m, _ in reports] == sorted(mid_epoch | {spe}) + [total]
    assert all(ckpt_dir == out for _, ckpt_dir in reports)
    final = reports[-1][0]
    assert final["final"] is True and final["top1"] == result.top1 and final["status"] == "ok"
    epoch_end = next(m for m, _ in reports if m["step"] == spe)
    assert "top1" not in epoch_end and epoch_end["train_loss"] == lines[0]["train_loss"]
    log = (out / "train.log").read_text()
    assert "precise-BN: statistics recomputed over 2 batches" in log
    assert f"validation: {min(4, val_videos(tiny_dataset))} videos" in log


def test_finished_out_dir_returns_stored_result(reference: tuple, tiny_dataset: Path) -> None:
    result, out, _ = reference
    stamp = (out / "checkpoint.pt").stat().st_mtime_ns
    reports: list = []
    again = train_and_evaluate(X2D, tiny_dataset, smoke(**RESUMABLE), 3, out, progress=False,
                               report=lambda m, d: reports.append(m))
    assert again == result and reports == []
    assert (out / "checkpoint.pt").stat().st_mtime_ns == stamp


def test_same_inputs_give_same_numbers(reference: tuple, tiny_dataset: Path, tmp_path: Path) -> None:
    result, out, _ = reference
    twin = train_and_evaluate(X2D, tiny_dataset, smoke(**RESUMABLE), 3, tmp_path, progress=False)
    assert twin.top1 == result.top1 and twin.top5 == result.top5 and twin.train_loss == result.train_loss
    assert metric_lines(tmp_path) == metric_lines(out)
    a, b = weights(out), weights(tmp_path)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("stop_at_report", [2, 3, -1])  # mid-epoch 1, epoch 1 end, after validation
def test_interrupted_then_resumed_equals_uninterrupted(reference: tuple, tiny_dataset: Path, tmp_path: Path,
                                                       stop_at_report: int) -> None:
    result, out, reports = reference
    stop_at_report = stop_at_report if stop_at_report > 0 else len(reports)
    calls = []

    def interrupt(metrics: dict, ckpt_dir: Path) -> None:
        calls.append(metrics["step"])
        if len(calls) == stop_at_report:
            raise KeyboardInterrupt  # like Ctrl-C or a kill: the call never returns

    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(X2D, tiny_dataset, smoke(**RESUMABLE), 3, tmp_path, progress=False, report=interrupt)
    assert not (tmp_path / "result.json").exists()
    resumed_reports: list = []
    resumed = train_and_evaluate(X2D, tiny_dataset, smoke(**RESUMABLE), 3, tmp_path, progress=False,
                                 report=lambda m, d: resumed_reports.append(m["step"]))
    assert resumed_reports and resumed_reports[0] >= calls[-1] > 0
    assert resumed.status == "ok"
    for key in ("top1", "top5", "train_loss", "clips_seen", "epochs_done", "train_macs"):
        assert getattr(resumed, key) == getattr(result, key), key
    assert metric_lines(tmp_path) == metric_lines(out)
    a, b = weights(out), weights(tmp_path)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert "resuming from step" in (tmp_path / "train.log").read_text()


def test_init_epochs_shortens_only_a_grown_training_and_holds_on_resume(
        reference: tuple, tiny_dataset: Path, tmp_path: Path) -> None:
    _, out, _ = reference
    budget = smoke(epochs=2, init_epochs=1, checkpoint_every=1)
    spe = steps_per_epoch(tiny_dataset)
    scratch = train_and_evaluate(X2D, tiny_dataset, budget, 0, tmp_path / "scratch", progress=False)
    assert (scratch.epochs_done, scratch.clips_seen) == (2, 2 * 2 * spe)
    assert "init_epochs" not in json.loads((tmp_path / "scratch" / "config.json").read_text())["budget"]

    def interrupt(metrics: dict, ckpt_dir: Path) -> None:
        raise KeyboardInterrupt  # at the first checkpoint, after one step

    grown_dir = tmp_path / "grown"
    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(X2D, tiny_dataset, budget, 0, grown_dir, progress=False, init=out / "model.pt",
                           report=interrupt)
    grown = train_and_evaluate(X2D, tiny_dataset, budget, 0, grown_dir, progress=False, init=out / "model.pt")
    assert (grown.epochs_done, grown.clips_seen) == (1, 2 * spe)
    assert "resuming from step 1" in (grown_dir / "train.log").read_text()
    assert json.loads((grown_dir / "config.json").read_text())["budget"]["init_epochs"] == 1


def _checkpointed(out: Path) -> tuple[int, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The step, the last step's weights and the moving average that ``out/checkpoint.pt`` holds."""
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    average = {k.removeprefix("module."): v for k, v in ckpt["ema"].items() if k.startswith("module.")}
    return ckpt["progress"]["step"], ckpt["model"], average


def test_a_moving_average_of_the_weights_is_what_is_scored_saved_and_resumed(
        reference: tuple, tiny_dataset: Path, tmp_path: Path) -> None:
    """With ``ema_decay`` d the checkpoint carries avg_t = d avg_(t-1) + (1 - d) w_t (avg_1 = w_1), checked
    against each step's checkpointed weights; model.pt is the average, not the last step's weights; and a
    training interrupted mid-epoch resumes to the same average."""
    decay = 0.6
    budget = smoke(epochs=1, checkpoint_every=1, dropout=0.0, precise_bn_batches=0, ema_decay=decay)
    out = tmp_path / "ema"
    seen: list[tuple[int, dict, dict]] = []
    result = train_and_evaluate(X2D, tiny_dataset, budget, 3, out, progress=False,
                                report=lambda m, d: seen.append(_checkpointed(d)))
    assert result.status == "ok" and [step for step, _, _ in seen] == list(range(1, len(seen) + 1))
    assert len(seen) == steps_per_epoch(tiny_dataset) >= 3
    first_raw, first_avg = seen[0][1], seen[0][2]
    assert all(torch.equal(first_avg[k], first_raw[k]) for k in first_raw)
    floats = [k for k, v in first_raw.items() if v.is_floating_point()]
    for (_, _, before), (step, raw, after) in zip(seen, seen[1:]):
        for k in floats:
            assert torch.allclose(after[k], decay * before[k] + (1 - decay) * raw[k], atol=1e-6), (step, k)
    _, last_raw, last_avg = seen[-1]
    saved = weights(out)
    assert all(torch.equal(saved[k], last_avg[k]) for k in floats)  # no precise-BN: buffers as averaged
    assert not torch.equal(saved["head.fc2.weight"], last_raw["head.fc2.weight"])
    assert "weights: moving average of every step's (decay 0.6)" in (out / "train.log").read_text()
    assert json.loads((out / "config.json").read_text())["budget"]["ema_decay"] == decay
    assert "ema_decay" not in json.loads((reference[1] / "config.json").read_text())["budget"]

    resumed_dir, calls = tmp_path / "resumed", []

    def interrupt(metrics: dict, ckpt_dir: Path) -> None:
        calls.append(metrics["step"])
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(X2D, tiny_dataset, budget, 3, resumed_dir, progress=False, report=interrupt)
    resumed = train_and_evaluate(X2D, tiny_dataset, budget, 3, resumed_dir, progress=False)
    assert resumed.top1 == result.top1 and resumed.train_loss == result.train_loss
    again = weights(resumed_dir)
    assert all(torch.equal(again[k], saved[k]) for k in saved)


def test_huge_learning_rate_diverges_without_raising(tiny_dataset: Path, tmp_path: Path) -> None:
    result = train_and_evaluate(X2D, tiny_dataset, smoke(lr=1e12, dropout=0.0), 0, tmp_path, progress=False)
    assert result.status == "diverged"
    assert "loss became" in result.error and result.top1 is None and result.top5 is None
    assert result.clips_seen < 2 * steps_per_epoch(tiny_dataset)
    assert TrainResult.load(tmp_path / "result.json") == result


def test_error_inside_training_is_a_failed_status(tiny_dataset: Path, tmp_path: Path) -> None:
    def broken_report(metrics: dict, ckpt_dir: Path) -> None:
        raise RuntimeError("disk full")

    result = train_and_evaluate(X2D, tiny_dataset, smoke(checkpoint_every=2), 0, tmp_path, progress=False,
                                report=broken_report)
    assert result.status == "failed" and result.error == "RuntimeError: disk full"
    assert result.clips_seen == 4 and result.top1 is None
    assert "Traceback" in (tmp_path / "train.log").read_text()
    # A failed result is not final: the next call resumes from the checkpoint and finishes.
    retried = train_and_evaluate(X2D, tiny_dataset, smoke(checkpoint_every=2), 0, tmp_path, progress=False)
    assert retried.status == "ok" and retried.clips_seen == 2 * steps_per_epoch(tiny_dataset)


def test_out_dir_of_another_training_is_refused(reference: tuple, tiny_dataset: Path) -> None:
    _, out, _ = reference
    with pytest.raises(X3DSearchError, match="different seed"):
        train_and_evaluate(X2D, tiny_dataset, smoke(**RESUMABLE), 4, out, progress=False)
    with pytest.raises(X3DSearchError, match="different factors"):
        train_and_evaluate(X2D.replace(crop=96), tiny_dataset, smoke(**RESUMABLE), 3, out, progress=False)


def test_bad_input_raises_before_training(tiny_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(X3DSearchError, match="unknown budget"):
        train_and_evaluate(X2D, tiny_dataset, "nope", 0, tmp_path / "a", progress=False)
    with pytest.raises(X3DSearchError, match="does not exist"):
        train_and_evaluate(X2D, tmp_path / "missing", "smoke", 0, tmp_path / "b", progress=False)


def test_init_from_model_file_and_mismatch(reference: tuple, tiny_dataset: Path, tmp_path: Path) -> None:
    _, out, _ = reference
    # one step at a negligible rate, halved because the training starts from weights: they stay the loaded ones
    budget = smoke(iterations=1, lr=1e-9, init_lr_scale=0.5)
    tuned = train_and_evaluate(X2D, tiny_dataset, budget, 0, tmp_path / "ok", progress=False,
                               init=out / "model.pt")
    assert tuned.status == "ok"
    assert budget.peak_lr(True) == 0.5 * budget.peak_lr(False) == 0.5 * budget.scaled_lr
    assert f"lr {budget.peak_lr(True):.4g}, warm-up" in (tmp_path / "ok" / "train.log").read_text()
    # the scale is part of a grown training's record, and of no other (trainings recorded before it match)
    assert json.loads((tmp_path / "ok" / "config.json").read_text())["budget"]["init_lr_scale"] == 0.5
    assert "init_lr_scale" not in json.loads((out / "config.json").read_text())["budget"]
    start, loaded = weights(out), weights(tmp_path / "ok")
    assert torch.allclose(start["stages.0.0.conv_a.weight"], loaded["stages.0.0.conv_a.weight"], atol=1e-6)
    # A larger model grows from it (tests/test_grow.py checks the function); a smaller one cannot.
    with pytest.raises(X3DSearchError, match="width shrinks"):
        train_and_evaluate(X2D.replace(width=0.5), tiny_dataset, budget, 0, tmp_path / "bad", progress=False,
                           init=out / "model.pt")
    assert not (tmp_path / "bad" / "config.json").exists()
