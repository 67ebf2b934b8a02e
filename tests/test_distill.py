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
