"""ResKD, teacher then student: the one workflow behind ``x3dsearch distill`` and the ResKD experiment.

The teacher is trained once (or a trained one is checked and reused) under its own,
longer budget; the student then trains with the distillation objective, or alone for
the ``none`` baseline. Every input that can be wrong (a teacher file that is missing or
of another architecture, a student crop not below the teacher's) is refused before
anything trains. A finished training folder is reused, so the workflow resumes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .budget import Budget
from .complexity import complexity
from .distill.config import KINDS, DistillConfig
from .distill.objective import load_teacher
from .errors import ConfigError
from .factors import Factors
from .train import TrainResult, train_and_evaluate

#: By default the teacher trains this many times the student's schedule: a teacher that knows no
#: more than its student has nothing to teach, and it is trained once and reused.
TEACHER_SCHEDULE = 4
#: ``kd`` values: the distillation kinds, and ``none`` (the student alone, the baseline).
KD_CHOICES = KINDS + ("none",)


def teacher_budget(student: Budget, budget: Budget | None = None, epochs: int | None = None) -> Budget:
    """The teacher's budget: ``budget`` (default: the student's) with ``epochs`` (default: when no
    budget of its own is given, ``TEACHER_SCHEDULE`` x the student's epochs or iterations)."""
    base = budget if budget is not None else student
    if epochs is not None:
        return base.replace(epochs=epochs, iterations=None)
    if budget is not None:
        return budget
    iterations = None if student.iterations is None else student.iterations * TEACHER_SCHEDULE
    return student.replace(epochs=student.epochs * TEACHER_SCHEDULE, iterations=iterations,
                           name=f"{student.name}-x{TEACHER_SCHEDULE}")


@dataclass(frozen=True)
class TeacherSpec:
    """Where the teacher comes from: ``factors`` trained under ``budget`` with ``seed``, or, when
    ``checkpoint`` is given, those trained weights (whose architecture must be ``factors``)."""

    factors: Factors
    budget: Budget
    seed: int = 0
    checkpoint: Path | None = None

    @classmethod
    def from_checkpoint(cls, path: str | Path, budget: Budget) -> "TeacherSpec":
        """A trained ``model.pt`` (or its folder) taken as it is; its factors are read from it."""
        loaded = load_teacher(Path(path).expanduser().resolve())
        return cls(loaded.factors, budget, checkpoint=loaded.path)


@dataclass(frozen=True)
class KDSpec:
    """How the student learns: ``kind`` is a ResKD kind or ``none``; the rest as :class:`DistillConfig`."""

    kind: str = "auto"
    weight: float | None = None
    temperature: float = 2.0
    teacher_crop: int | None = None
    teacher_bn: str = "train"

    def __post_init__(self) -> None:
        if self.kind not in KD_CHOICES:
            raise ConfigError(f"kd must be one of {', '.join(KD_CHOICES)}, got {self.kind!r}")

    def config(self, teacher: Path) -> DistillConfig | None:
        if self.kind == "none":
            return None
        return DistillConfig(teacher=str(teacher), kind=self.kind, weight=self.weight, temperature=self.temperature,
                             teacher_crop=self.teacher_crop, teacher_bn=self.teacher_bn)


@dataclass(frozen=True)
class RunOptions:
    """How trainings run (as ``train_and_evaluate``'s keywords of the same names)."""

    resume: bool = True
    threads: int | None = None
    device: str | None = None
    progress: bool = True


@dataclass(frozen=True)
class TeacherOutcome:
    path: Path                  # the teacher's model.pt
    factors: Factors
    num_classes: int
    result: TrainResult | None  # None for a given checkpoint


@dataclass(frozen=True)
class ReskdOutcome:
    teacher: TeacherOutcome
    student: TrainResult
    distill: DistillConfig | None
    teacher_crop: int
    student_crop: int
    teacher_gflops: float       # at the crop it runs at while teaching
    student_gflops: float       # at the student's crop: the only model that runs at test time


def check_crops(teacher: TeacherSpec, student: Factors, kd: KDSpec) -> int:
    """The teacher's crop while teaching; the student's must be below it."""
    crop = kd.teacher_crop or teacher.factors.crop
    if student.crop >= crop:
        raise ConfigError(f"the student's crop ({student.crop}) must be below the teacher's ({crop}): "
                          "ResKD teaches a low-resolution student")
    return crop


def prepare_teacher(spec: TeacherSpec, data: str | Path, out_dir: Path, run: RunOptions = RunOptions()
                    ) -> TeacherOutcome:
    """The given checkpoint, checked against ``spec.factors``; else the teacher trained into ``out_dir``
    (reused when finished there). A failed teacher training raises :class:`TeacherFailed`."""
    if spec.checkpoint is not None:
        loaded = load_teacher(spec.checkpoint, expected=spec.factors)
        return TeacherOutcome(loaded.path, loaded.factors, loaded.num_classes, None)
    result = train_and_evaluate(spec.factors, data, spec.budget, spec.seed, out_dir, resume=run.resume,
                                threads=run.threads, device=run.device, progress=run.progress)
    if not result.ok:
        raise TeacherFailed(f"the teacher's training {result.status}: {result.error or ''} (see {out_dir})")
    loaded = load_teacher(out_dir / "model.pt", expected=spec.factors)
    return TeacherOutcome(loaded.path, loaded.factors, loaded.num_classes, result)


class TeacherFailed(Exception):
    """The teacher's own training diverged or failed: not bad input, so not an ``X3DSearchError``."""


def run_reskd(teacher: TeacherSpec, student: Factors, data: str | Path, budget: Budget, seed: int, out_dir: Path,
              *, teacher_dir: Path, kd: KDSpec = KDSpec(), run: RunOptions = RunOptions()) -> ReskdOutcome:
    """Teacher, then student: prepare the teacher (train it into ``teacher_dir`` or check the given
    checkpoint), then train ``student`` under ``budget`` into ``out_dir``, distilled as ``kd`` says.

    Raises :class:`~x3dsearch.errors.ConfigError` for bad input before anything trains, and
    :class:`TeacherFailed` when the teacher's training does not finish.
    """
    teacher_crop = check_crops(teacher, student, kd)
    prepared = prepare_teacher(teacher, data, teacher_dir, run)
    distill = kd.config(prepared.path)
    result = train_and_evaluate(student, data, budget, seed, out_dir, resume=run.resume, threads=run.threads,
                                device=run.device, progress=run.progress, distill=distill)
    return ReskdOutcome(
        teacher=prepared, student=result, distill=distill, teacher_crop=teacher_crop, student_crop=student.crop,
        teacher_gflops=complexity(prepared.factors.replace(crop=teacher_crop), prepared.num_classes).gflops,
        student_gflops=complexity(student, prepared.num_classes).gflops)
