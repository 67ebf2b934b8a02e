"""``x3dsearch distill``: train a low-resolution student with a high-resolution teacher (ResKD)."""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import ConfigError
from ..factors import PRESETS, Factors
from ..status import TrialStatus


def parse_model(spec: str) -> Factors:
    """A preset name, a ``final_model.yaml`` path, or ``k=v,...`` factors."""
    from .options import resolve_factors

    if "=" in spec:
        return resolve_factors(None, spec)
    if spec.lower() in PRESETS:
        return resolve_factors(spec, None)
    if spec.endswith((".yaml", ".yml")) or Path(spec).exists():
        return resolve_factors(None, None, spec)
    raise ConfigError(f"'{spec}' is neither a preset ({', '.join(PRESETS)}), a final_model.yaml nor factors")


def _is_checkpoint(spec: str) -> bool:
    """A ``model.pt`` path (or a folder holding one), as opposed to a model to train."""
    path = Path(spec).expanduser()
    return spec.endswith(".pt") or (path.is_dir() and (path / "model.pt").is_file())


@click.command(short_help="Train a low-resolution student with a high-resolution teacher (ResKD).")
@click.option("--teacher", required=True, metavar="CKPT|MODEL",
              help="model.pt (or its folder) written by `x3dsearch train`, or a preset / final_model.yaml / "
                   "factors trained here first into OUT/teacher.")
@click.option("--teacher-checkpoint", type=click.Path(path_type=Path), metavar="CKPT",
              help="Trained weights for --teacher MODEL, used instead of training it; their architecture "
                   "must be MODEL's.")
@click.option("--teacher-budget", metavar="NAME|FILE",
              help="The teacher's budget [default: --budget, at 4x its epochs].")
@click.option("--teacher-epochs", type=click.IntRange(min=1), help="Override the teacher budget's epochs.")
@click.option("--student", required=True, metavar="MODEL", help="A preset, a final_model.yaml or k=v factors.")
@click.option("--student-crop", type=click.IntRange(min=32), help="The student's crop [default: its own].")
@click.option("--teacher-crop", type=click.IntRange(min=32), help="The teacher's crop [default: its own].")
@click.option("--kd", type=click.Choice(["auto", "feature-mse", "dense-kl", "clip-kl", "none"]), default="auto",
              show_default=True, help="auto: feature MSE when final channels match, else dense KL; "
                                      "none trains the student alone (the baseline).")
@click.option("--weight", type=click.FloatRange(min=0), help="KD weight [default: 100 MSE, 200 dense KL, 1 clip KL].")
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=2.0, show_default=True,
              help="Softmax temperature T of the KL losses (dense-kl, clip-kl), which are scaled by T^2.")
@click.option("--teacher-bn", type=click.Choice(["train", "eval"]), default="train", show_default=True,
              help="train follows the official ResKD code.")
@click.option("--data", default="synthetic", show_default=True, metavar="synthetic|synthetic-detail|ROOT",
              help="Dataset root, or a synthetic dataset (synthetic-detail is the fine-texture one made for ResKD).")
@click.option("--budget", "budget_name", default="auto", show_default=True, metavar="NAME|FILE",
              help="The student's budget: smoke, quick, standard, paper, auto or a YAML file.")
@click.option("--epochs", type=click.IntRange(min=1), help="Override the budget's epochs.")
@click.option("--out", type=click.Path(path_type=Path), metavar="DIR",
              help="[default: runs/distill/<student>_from_<teacher>_seed<seed>]")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed of the student (and of a teacher trained here).")
@click.option("--resume", is_flag=True, help="Continue an interrupted distillation in --out.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads [default: the CPUs granted].")
@click.option("--device", metavar="cpu|cuda[:N]", help="Where to train [default: cuda when available].")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--quiet", is_flag=True, help="No progress bar or log lines on the terminal.")
@click.pass_context
def distill(ctx: click.Context, teacher: str, teacher_checkpoint: Path | None, teacher_budget: str | None,
            teacher_epochs: int | None, student: str, student_crop: int | None, teacher_crop: int | None,
            kd: str, weight: float | None, temperature: float, teacher_bn: str, data: str, budget_name: str,
            epochs: int | None, out: Path | None, seed: int, resume: bool, threads: int | None,
            device: str | None, as_json: bool, quiet: bool) -> None:
    """Cross-resolution distillation: evaluates and reports FLOPs at the student's resolution only.

    Writes teacher/ (when the teacher is trained here) and student/ into --out. Exit code 0 when
    the student trains, 1 when a training diverged or failed, 2 for bad input.
    """
    import torch

    from ..budget import load_budget
    from ..reskd import KDSpec, RunOptions, TeacherFailed, TeacherSpec, run_reskd
    from ..reskd import teacher_budget as make_teacher_budget
    from ..utils.logging import setup_logging
    from .options import check_out_dir

    student_factors = parse_model(student)
    if student_crop:
        student_factors = student_factors.replace(crop=student_crop)
    cuda = (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    budget = load_budget(budget_name, cuda=cuda)
    if epochs is not None:
        budget = budget.replace(epochs=epochs, iterations=None)
    t_budget = make_teacher_budget(budget, load_budget(teacher_budget, cuda=cuda) if teacher_budget else None,
                                   teacher_epochs)
    if _is_checkpoint(teacher):
        if teacher_checkpoint is not None:
            raise ConfigError("--teacher-checkpoint goes with --teacher MODEL; --teacher is already a checkpoint")
        spec = TeacherSpec.from_checkpoint(teacher, t_budget)  # a missing or unreadable file fails here
        teacher_label = Path(teacher).parent.name if teacher.endswith(".pt") else Path(teacher).name
    else:
        factors = parse_model(teacher)
        checkpoint = teacher_checkpoint.expanduser().resolve() if teacher_checkpoint is not None else None
        spec = TeacherSpec(factors, t_budget, seed=seed, checkpoint=checkpoint)
        teacher_label = Path(teacher).stem if teacher.lower() not in PRESETS else teacher.lower()
    out = out or (Path("runs") / "distill"
                  / f"{Path(student).stem}-{student_factors.crop}_from_{teacher_label}_seed{seed}")
    kd_spec = KDSpec(kind=kd, weight=weight, temperature=temperature, teacher_crop=teacher_crop,
                     teacher_bn=teacher_bn)
    if spec.checkpoint is None:
        check_out_dir(out / "teacher", resume)
    check_out_dir(out / "student", resume)
    setup_logging(None, console=not quiet)
    try:
        outcome = run_reskd(spec, student_factors, data, budget, seed, out / "student", teacher_dir=out / "teacher",
                            kd=kd_spec, run=RunOptions(resume=resume, threads=threads, device=device,
                                                       progress=not quiet))
    except TeacherFailed as exc:
        click.echo(f"x3dsearch: {exc}", err=True)
        ctx.exit(1)
    t_result, result = outcome.teacher.result, outcome.student
    record = {"out": str(out), "kd": kd, "teacher": str(outcome.teacher.path), "teacher_crop": outcome.teacher_crop,
              "teacher_gflops": outcome.teacher_gflops,
              "teacher_top1": t_result.top1 if t_result else None,
              "teacher_budget": t_budget.name if t_result else None,
              "teacher_epochs": t_result.epochs_done if t_result else None,
              "teacher_train_macs": t_result.train_macs if t_result else None,
              "teacher_wall_time_s": t_result.wall_time_s if t_result else None,
              "student_crop": outcome.student_crop, "student_gflops": outcome.student_gflops,
              "distill": outcome.distill.to_dict() if outcome.distill else None,
              "student": result.to_dict()}
    if as_json:
        click.echo(json.dumps(record))
    else:
        cost = (f", top-1 {t_result.top1:.1f}% (val), trained {t_result.epochs_done} epochs in "
                f"{t_result.wall_time_s:.0f} s, {t_result.train_macs / 1e12:.2f} T MACs" if t_result and t_result.ok
                else " (given checkpoint)")
        click.echo(f"teacher @{outcome.teacher_crop}px: {outcome.teacher_gflops:.3f} GFLOPs{cost}")
        click.echo(f"student @{outcome.student_crop}px ({kd}): {outcome.student_gflops:.3f} GFLOPs, "
                   f"{result.summary()}  ->  {out / 'student'}")
    if result.status != TrialStatus.OK:
        ctx.exit(1)
