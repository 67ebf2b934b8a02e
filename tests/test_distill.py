"""ResKD: losses, the objective's data flow, and the frozen teacher."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from x3dsearch.distill import (DistillConfig, ResKDObjective, dense_logits, feature_mse, kl_to_teacher,
                               load_teacher, resize_frames)
from x3dsearch.errors import ConfigError
from x3dsearch.factors import Factors
from x3dsearch.models import build_model
from x3dsearch.train.checkpoint import save_model_weights

from cli_helpers import invoke

TEACHER = Factors(frames=2, stride=6, crop=64, width=1.0, bottleneck=1.0, depth=1.0)
STUDENT = TEACHER.replace(crop=32)


def test_mse_is_zero_for_identical_features() -> None:
    x = torch.randn(2, 8, 3, 4, 4)
    assert feature_mse(x, x.clone()).item() == 0.0


def test_mse_value_for_a_known_upsampling() -> None:
    # A constant 2x2 student map upsamples bilinearly to the same constant at 4x4.
    student = torch.full((1, 2, 3, 2, 2), 3.0)
    teacher = torch.full((1, 2, 3, 4, 4), 1.0)
    assert feature_mse(student, teacher).item() == pytest.approx(4.0)
    # A non-constant map: compare with per-frame bilinear interpolation done by hand through F.interpolate.
    student = torch.arange(16.0).reshape(1, 1, 4, 2, 2)
    teacher = torch.zeros(1, 1, 4, 4, 4)
    frames = F.interpolate(student[0].permute(1, 0, 2, 3), size=(4, 4), mode="bilinear", align_corners=False)
    assert feature_mse(student, teacher).item() == pytest.approx(frames.pow(2).mean().item())
    # Time is never mixed: frame t of the upsampled map only depends on frame t.
    up = resize_frames(student, (4, 4))
    assert torch.allclose(up[0, 0, 1], frames[1, 0])


def test_kl_is_zero_for_equal_logits_and_positive_otherwise() -> None:
    logits = torch.randn(6, 5)
    assert kl_to_teacher(logits, logits, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    assert kl_to_teacher(logits, torch.randn(6, 5), 2.0).item() > 0


def _teacher_file(tmp_path, factors: Factors, num_classes: int = 3):
    torch.manual_seed(1)
    teacher = build_model(factors, num_classes=num_classes)
    path = tmp_path / "model.pt"
    save_model_weights(path, teacher, factors=factors.to_dict(), num_classes=num_classes, shortcut_bn=True)
    return path


def test_dense_kl_works_with_mismatched_channels(tmp_path) -> None:
    wide = TEACHER.replace(width=2.0)  # 384 final-stage channels vs the student's 192
    teacher = load_teacher(_teacher_file(tmp_path, wide))
    student = build_model(STUDENT, num_classes=3)
    assert teacher.model.feature_dim != student.feature_dim
    objective = ResKDObjective(DistillConfig(teacher=str(tmp_path / "model.pt")), teacher, STUDENT,
                               student.feature_dim)
    assert objective.kind == "dense-kl" and objective.weight == 200.0
    clips = torch.randn(2, 3, 2, 64, 64)
    loss, logits, terms = objective(student, torch.randn(2, 3, 2, 32, 32), torch.tensor([0, 2]), clips)
    assert logits.shape == (2, 3) and torch.isfinite(loss)
    assert loss.item() == pytest.approx(terms["ce"] + terms["kd"], rel=1e-5)
    loss.backward()
    dense = dense_logits(torch.randn(2, 192, 2, 2, 2), student.head.pre_pool, student.head.classify)
    assert dense.shape == (2, 2, 2, 2, 3)
    with pytest.raises(ConfigError, match="feature-mse needs equal"):
        ResKDObjective(DistillConfig(teacher="x", kind="feature-mse"), teacher, STUDENT, student.feature_dim)


def test_no_gradient_reaches_the_teacher(tmp_path) -> None:
    teacher = load_teacher(_teacher_file(tmp_path, TEACHER))
    student = build_model(STUDENT, num_classes=3)
    objective = ResKDObjective(DistillConfig(teacher="t"), teacher, STUDENT, student.feature_dim)
    assert objective.kind == "feature-mse" and objective.weight == 100.0
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1)
    teacher_ids = {id(p) for p in teacher.model.parameters()}
    assert not teacher_ids & {id(p) for group in optimizer.param_groups for p in group["params"]}
    before = {k: v.clone() for k, v in teacher.model.state_dict().items()
              if "running" not in k and "num_batches" not in k}
    loss, _, _ = objective(student, torch.randn(2, 3, 2, 32, 32), torch.tensor([0, 1]), torch.randn(2, 3, 2, 64, 64))
    loss.backward()
    optimizer.step()
    assert all(p.grad is None for p in teacher.model.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    after = teacher.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_student_and_teacher_see_the_clips_they_are_given(tmp_path) -> None:
    """The objective resizes nothing: the loader makes both crops (see the dataset test below)."""
    teacher = load_teacher(_teacher_file(tmp_path, TEACHER))
    objective = ResKDObjective(DistillConfig(teacher="t"), teacher, STUDENT, 192)
    assert objective.extra_crop == 64
    seen = {}
    student = build_model(STUDENT, num_classes=3)
    original = student.forward_features

    def spy(x):
        seen["student"] = x
        return original(x)

    student.forward_features = spy
    teacher_original = teacher.model.forward_features

    def teacher_spy(x):
        seen["teacher"] = x
        return teacher_original(x)

    teacher.model.forward_features = teacher_spy
    clips, teacher_clips = torch.randn(2, 3, 2, 32, 32), torch.randn(2, 3, 2, 64, 64)
    objective(student, clips, torch.tensor([0, 1]), teacher_clips)
    assert seen["teacher"] is teacher_clips and seen["student"] is clips
    with pytest.raises(ValueError, match="teacher's crop"):
        objective(student, clips, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="student's crop"):
        objective(student, teacher_clips, torch.tensor([0, 1]), teacher_clips)


def test_distilled_and_undistilled_students_get_identical_pixels(tiny_dataset) -> None:
    """Same seed, epoch and video: the distilled arm's student clip is bit-identical to the
    undistilled arm's, and its teacher clip to a training at the teacher's crop."""
    from x3dsearch.data import VideoClipDataset, make_loader

    plain = VideoClipDataset(tiny_dataset, "train", STUDENT, train=True, seed=3)
    both = VideoClipDataset(tiny_dataset, "train", STUDENT, train=True, seed=3, extra_crop=TEACHER.crop)
    big = VideoClipDataset(tiny_dataset, "train", TEACHER, train=True, seed=3)
    for epoch in (0, 1):
        for ds in (plain, both, big):
            ds.set_epoch(epoch)
        for i in range(len(plain)):
            item = both[i]
            assert torch.equal(item["clip"], plain[i]["clip"]) and item["clip"].shape[-1] == STUDENT.crop
            assert torch.equal(item["extra_clip"], big[i]["clip"]) and item["extra_clip"].shape[-1] == TEACHER.crop
    batch = next(iter(make_loader(both, 2, seed=3, epoch=0, shuffle=True)))
    reference = next(iter(make_loader(plain, 2, seed=3, epoch=0, shuffle=True)))
    assert torch.equal(batch["clip"], reference["clip"]) and batch["extra_clip"].shape == (2, 3, 2, 64, 64)


def test_teacher_bn_mode_option(tmp_path) -> None:
    teacher = load_teacher(_teacher_file(tmp_path, TEACHER))
    student = build_model(STUDENT, num_classes=3)
    clips = torch.randn(2, 3, 2, 64, 64)
    for mode, should_change in (("eval", False), ("train", True)):
        objective = ResKDObjective(DistillConfig(teacher="t", teacher_bn=mode), teacher, STUDENT, 192)
        before = teacher.model.stem.bn.running_mean.clone()
        objective(student, torch.randn(2, 3, 2, 32, 32), torch.tensor([0, 1]), clips)
        changed = not torch.equal(before, teacher.model.stem.bn.running_mean)
        assert changed == should_change
        assert not teacher.model.head.dropout.training


@pytest.mark.parametrize("bad,needle", [({"teacher": "t", "kind": "pixel"}, "kind"),
                                        ({"teacher": "t", "teacher_bn": "frozen"}, "teacher_bn"),
                                        ({"teacher": "t", "weight": -1}, "weight"),
                                        ({"teacher": "t", "bogus": 1}, "bogus")])
def test_bad_distill_config_names_the_key(bad, needle) -> None:
    with pytest.raises(ConfigError, match=needle):
        DistillConfig.from_dict(bad)


def _cli(*args: str):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "x3dsearch.cli.main", *args], capture_output=True, text=True)


@pytest.mark.slow  # trains a teacher and a student through the CLI
def test_distill_cli_smoke(tiny_dataset, tmp_path) -> None:
    import json

    out = tmp_path / "kd"
    proc = _cli("distill", "--teacher", "x2d", "--student", "x2d", "--student-crop", "64", "--data",
                str(tiny_dataset), "--budget", "smoke", "--out", str(out), "--json", "--quiet")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    assert record["student_crop"] == 64 and record["teacher_crop"] == 112
    assert record["student_gflops"] < record["teacher_gflops"] / 2  # FLOPs at the student's resolution only
    assert record["student"]["status"] == "ok"
    assert (out / "teacher" / "model.pt").is_file() and (out / "student" / "model.pt").is_file()
    stored = torch.load(out / "student" / "model.pt", weights_only=True)
    assert stored["factors"]["crop"] == 64
    # The student's training recorded the distillation settings in its budget.
    config = json.loads((out / "student" / "config.json").read_text())
    assert config["budget"]["distill"]["teacher"] == str((out / "teacher" / "model.pt").resolve())
    assert config["budget"]["distill"]["kind"] == "auto"
    # The teacher trained 4x the student's schedule by default (smoke: 1 epoch).
    assert record["teacher_epochs"] == 4 and record["teacher_budget"] == "smoke-x4"
    # The loss's parts are logged apart, and add up to the loss.
    line = json.loads((out / "student" / "metrics.jsonl").read_text().splitlines()[0])
    assert line["train_loss"] == pytest.approx(line["train_ce"] + line["train_kd"], rel=1e-6)
    assert {"first_ce", "first_kd"} <= set(line)


@pytest.mark.parametrize("args,needle", [
    (["--teacher", "nowhere/model.pt", "--student", "x2d"], "teacher checkpoint not found"),
    (["--teacher", "x2d", "--student", "x9d"], "neither a preset"),
    (["--teacher", "x2d", "--student", "x2d", "--kd", "pixel"], "--kd"),
    (["--teacher", "x2d", "--student", "x2d"], "must be below the teacher's (112)"),
    (["--teacher", "x2d", "--student", "x2d", "--student-crop", "160"], "must be below the teacher's"),
    (["--teacher", "x2d", "--teacher-checkpoint", "nowhere/model.pt", "--student", "x2d", "--student-crop", "64"],
     "teacher checkpoint not found"),
    (["--teacher", "x3d-xs", "--teacher-checkpoint", "TEACHER", "--student", "x2d", "--student-crop", "64"],
     "was trained as"),
    (["--teacher", "TEACHER", "--student", "x2d", "--student-crop", "64"], "must be below the teacher's (64)"),
])
def test_distill_cli_bad_input(tiny_dataset, tmp_path, capsys, args, needle) -> None:
    """One line, exit 2, and nothing trained (a teacher file of the wrong architecture, a student crop
    at or above the teacher's, a missing teacher file). In this process: test_distill_cli_smoke runs
    the entry point itself."""
    teacher = _teacher_file(tmp_path, TEACHER)  # 3 classes, as the tiny dataset; crop 64
    args = [str(teacher) if a == "TEACHER" else a for a in args]
    proc = invoke(capsys, "distill", *args, "--data", tiny_dataset, "--budget", "smoke", "--out", tmp_path / "o")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert not (tmp_path / "o" / "teacher" / "config.json").exists()


def test_a_checkpoint_whose_weights_do_not_fit_its_factors_is_refused(tmp_path) -> None:
    path = _teacher_file(tmp_path, TEACHER)
    data = torch.load(path, weights_only=True)
    torch.save({**data, "factors": TEACHER.replace(width=2.0).to_dict()}, path)
    with pytest.raises(ConfigError, match="do not fit"):
        load_teacher(path)
    with pytest.raises(ConfigError, match="width differ"):
        load_teacher(path, expected=TEACHER)


def test_teacher_paths_are_resolved_against_the_callers_directory(tmp_path, monkeypatch) -> None:
    from x3dsearch.budget import Budget

    monkeypatch.chdir(tmp_path)
    config = DistillConfig(teacher="runs/t/model.pt")
    assert config.teacher == str(tmp_path / "runs" / "t" / "model.pt")
    budget = Budget.from_dict({"epochs": 1, "distill": {"teacher": "t.pt", "kind": "clip-kl"}})
    assert isinstance(budget.distill, DistillConfig) and budget.distill.teacher == str(tmp_path / "t.pt")
    again = Budget.from_dict(budget.to_dict())  # as a search trial rebuilds it, in another directory
    monkeypatch.chdir("/")
    assert again == budget and Budget.from_dict(budget.to_dict()).distill.teacher == str(tmp_path / "t.pt")


def test_the_objective_comes_either_from_the_budget_or_the_argument(tiny_dataset, tmp_path) -> None:
    from x3dsearch.budget import load_budget
    from x3dsearch.train import train_and_evaluate

    teacher = _teacher_file(tmp_path, TEACHER)
    budget = load_budget("smoke").replace(distill={"teacher": str(teacher), "kind": "clip-kl"})
    with pytest.raises(ConfigError, match="not both"):
        train_and_evaluate(STUDENT, tiny_dataset, budget, 0, tmp_path / "o", progress=False,
                           distill=DistillConfig(teacher=str(teacher), kind="feature-mse"))


def test_teacher_budget_defaults_to_a_longer_schedule() -> None:
    from x3dsearch.budget import load_budget
    from x3dsearch.reskd import TEACHER_SCHEDULE, teacher_budget

    student = load_budget("quick").replace(epochs=6)
    assert teacher_budget(student).epochs == 6 * TEACHER_SCHEDULE > student.epochs
    assert teacher_budget(student, epochs=30).epochs == 30
    assert teacher_budget(student, load_budget("smoke")).name == "smoke"
    assert teacher_budget(student.replace(iterations=10)).iterations == 10 * TEACHER_SCHEDULE


@pytest.fixture(scope="module")
def tiny_detail(tmp_path_factory):
    """The detail variant in small: 4 classes x 4 videos (2 train, 1 val, 1 test), 64x86 px."""
    from x3dsearch.data import synthesize

    return synthesize(tmp_path_factory.mktemp("data") / "detail", classes=4, videos_per_class=4, variant="detail",
                      size=(64, 86), seconds=(1.0, 1.5), test_fraction=1 / 3)


@pytest.mark.slow
def test_reskd_experiment_script_runs_and_reuses_finished_trainings(tiny_detail, tmp_path) -> None:
    """The shipped experiment config at the smoke budget: teacher, the check, 3 seeds of every arm."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    script = Path(__file__).resolve().parents[1] / "experiments" / "reskd_synthetic.py"
    shipped = yaml.safe_load(script.with_name("reskd_synthetic.yaml").read_text())
    assert len(shipped["seeds"]) >= 5 and set(shipped["arms"]) == {"feature-mse", "dense-kl", "clip-kl"}
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({**shipped, "margin": -100}))  # smoke teaches nothing: let the arms run
    cmd = [sys.executable, str(script), str(config), "--budget", "smoke", "--data", str(tiny_detail),
           "--out", str(tmp_path / "r"), "--seeds", "2", "--quiet"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-2000:]
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["teacher"]["crop"] == 160 and summary["student"]["crop"] == 80
    assert summary["student"]["gflops"] < summary["teacher"]["gflops"] / 3  # a quarter of the pixels
    arms = summary["arms"]
    assert set(arms) == {"none", "feature-mse", "dense-kl", "clip-kl"} and set(summary["references"]) == {"112", "160"}
    assert all(len(arm["top1"]) == 2 for arm in arms.values())
    assert all(len(arm["vs_none"]["diffs"]) == 2 and arm["vs_none"]["low"] <= arm["vs_none"]["high"]
               for name, arm in arms.items() if name != "none")
    # paired by seed: every arm's student starts from the same weights on the same pixels
    assert len({round(arm["balance"]["first_ce"], 6) for name, arm in arms.items() if name != "none"}) == 1
    assert f"| student, feature-mse, w = {shipped['arms']['feature-mse']['weight']:g} | 80 |" in first.stdout
    mtime = (tmp_path / "r" / "teacher" / "result.json").stat().st_mtime
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and json.loads(again.stdout.strip().splitlines()[-1]) == summary
    assert (tmp_path / "r" / "teacher" / "result.json").stat().st_mtime == mtime  # reused, not retrained

    # A teacher that does not beat the student by the margin: said, and no claim (nothing more trains).
    config.write_text(yaml.safe_dump({**shipped, "margin": 1000}))
    strict = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert strict.returncode == 0 and "verdict: no claim: the teacher" in strict.stdout
    assert set(json.loads(strict.stdout.strip().splitlines()[-1])["arms"]) == {"none"}

    bad = tmp_path / "bad.yaml"
    bad.write_text("teacher: [\n")
    broken = subprocess.run([sys.executable, str(script), str(bad)], capture_output=True, text=True, timeout=120)
    assert broken.returncode == 2 and broken.stderr.count("\n") == 1 and "not valid YAML" in broken.stderr
    bad.write_text(yaml.safe_dump({**shipped, "student": {"crop": 160}}))
    broken = subprocess.run([sys.executable, str(script), str(bad)], capture_output=True, text=True, timeout=120)
    assert broken.returncode == 2 and "must be below the teacher's" in broken.stderr


def _reskd_script():
    import importlib.util
    import sys

    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "experiments" / "reskd_synthetic.py"
    spec = importlib.util.spec_from_file_location("reskd_synthetic", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_reskd_verdict_holds_its_error_over_the_arms():
    """Hand-worked: an arm at +2, +3, +1 points over none (mean 2, SD 1, se 0.577, 2 df). Its two-sided
    90% t interval is 2 -+ 2.920 x 0.577 = [0.314, 3.686], above 0; its one-sided p is 1 - F(3.464) =
    0.0371 (for 2 df, F(t) = 1/2 + t / (2 sqrt(t^2 + 2))). Alone at 10% it would help; as one of three
    arms Holm needs p <= 0.1 / 3 = 0.0333 for the first, so it does not, and its Bonferroni lower bound
    2 - 3.677 x 0.577 = -0.123 says the same."""
    script = _reskd_script()
    alone = script.paired([52.0, 53.0, 51.0], [50.0, 50.0, 50.0], arms=1)
    assert alone["low"] == pytest.approx(0.3141, abs=1e-3) and alone["high"] == pytest.approx(3.6859, abs=1e-3)
    assert alone["p_helps"] == pytest.approx(0.03709, abs=1e-4)
    assert script.verdicts({"a": alone}) == ["a"] and alone["verdict"] == "helps"
    arms = {k: script.paired([52.0, 53.0, 51.0], [50.0, 50.0, 50.0], arms=3) for k in ("a",)}
    arms.update(b=script.paired([50.0, 49.0, 51.0], [50.0, 50.0, 50.0], arms=3),
                c=script.paired([49.0, 50.0, 50.0], [50.0, 50.0, 50.0], arms=3))
    assert arms["a"]["lower_bound"] == pytest.approx(2 - 3.6766 * (1 / 3) ** 0.5, abs=2e-3)
    assert script.verdicts(arms) == [] and arms["a"]["verdict"] == "no difference shown"
