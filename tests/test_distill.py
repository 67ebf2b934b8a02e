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
    loss, logits = objective(student, clips, torch.tensor([0, 2]))
    assert logits.shape == (2, 3) and torch.isfinite(loss)
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
    before = {k: v.clone() for k, v in teacher.model.state_dict().items() if "running" not in k and "num_batches" not in k}
    loss, _ = objective(student, torch.randn(2, 3, 2, 64, 64), torch.tensor([0, 1]))
    loss.backward()
    optimizer.step()
    assert all(p.grad is None for p in teacher.model.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    after = teacher.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_student_input_is_the_downsampled_teacher_input(tmp_path) -> None:
    teacher = load_teacher(_teacher_file(tmp_path, TEACHER))
    objective = ResKDObjective(DistillConfig(teacher="t"), teacher, STUDENT, 192)
    assert objective.train_factors(STUDENT).crop == 64
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
    clips = torch.randn(2, 3, 2, 64, 64)
    objective(student, clips, torch.tensor([0, 1]))
    assert seen["teacher"] is clips
    assert seen["student"].shape == (2, 3, 2, 32, 32)
    expected = F.interpolate(clips[:, :, 1], size=(32, 32), mode="bilinear", align_corners=False)
    assert torch.allclose(seen["student"][:, :, 1], expected)


def test_teacher_bn_mode_option(tmp_path) -> None:
    teacher = load_teacher(_teacher_file(tmp_path, TEACHER))
    student = build_model(STUDENT, num_classes=3)
    clips = torch.randn(2, 3, 2, 64, 64)
    for mode, should_change in (("eval", False), ("train", True)):
        objective = ResKDObjective(DistillConfig(teacher="t", teacher_bn=mode), teacher, STUDENT, 192)
        before = teacher.model.stem.bn.running_mean.clone()
        objective(student, clips, torch.tensor([0, 1]))
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


@pytest.mark.parametrize("args,needle", [
    (["--teacher", "nowhere/model.pt", "--student", "x2d"], "teacher checkpoint not found"),
    (["--teacher", "x2d", "--student", "x9d"], "neither a preset"),
    (["--teacher", "x2d", "--student", "x2d", "--kd", "pixel"], "--kd"),
])
def test_distill_cli_bad_input(tiny_dataset, tmp_path, args, needle) -> None:
    proc = _cli("distill", *args, "--data", str(tiny_dataset), "--budget", "smoke", "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr


@pytest.mark.slow
def test_reskd_experiment_script_runs_and_reuses_finished_trainings(tiny_dataset, tmp_path) -> None:
    """The shipped experiment config, at the smoke budget: teacher, 3 seeds with and without ResKD."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "experiments" / "reskd_synthetic.py"
    cmd = [sys.executable, str(script), "--budget", "smoke", "--data", str(tiny_dataset), "--out", str(tmp_path / "r"),
           "--quiet"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-2000:]
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["teacher"]["crop"] == 160 and summary["student"]["crop"] == 80
    assert summary["student"]["gflops"] < summary["teacher"]["gflops"] / 3  # a quarter of the pixels
    assert len(summary["plain"]["top1"]) == len(summary["reskd"]["top1"]) == 3
    assert "| student, ResKD | 80 |" in first.stdout
    mtime = (tmp_path / "r" / "teacher" / "result.json").stat().st_mtime
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and json.loads(again.stdout.strip().splitlines()[-1]) == summary
    assert (tmp_path / "r" / "teacher" / "result.json").stat().st_mtime == mtime  # reused, not retrained

    bad = tmp_path / "bad.yaml"
    bad.write_text("teacher: [\n")
    broken = subprocess.run([sys.executable, str(script), str(bad)], capture_output=True, text=True, timeout=120)
    assert broken.returncode == 2 and broken.stderr.count("\n") == 1 and "not valid YAML" in broken.stderr
