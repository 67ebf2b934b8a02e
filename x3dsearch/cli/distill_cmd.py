"""``x3dsearch distill``: train a low-resolution student with a high-resolution teacher (ResKD)."""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import ConfigError
from ..status import TrialStatus
from ..factors import PRESETS, Factors


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


@click.command()
@click.option("--teacher", required=True, metavar="CKPT|PRESET",
              help="model.pt (or its folder) written by `x3dsearch train`, or a preset trained here first.")
@click.option("--student", required=True, metavar="MODEL", help="A preset, a final_model.yaml or k=v factors.")
@click.option("--student-crop", type=click.IntRange(min=32), help="The student's crop [default: its own].")
@click.option("--teacher-crop", type=click.IntRange(min=32), help="The teacher's crop [default: its own].")
@click.option("--kd", type=click.Choice(["auto", "feature-mse", "dense-kl", "clip-kl", "none"]), default="auto",
              show_default=True, help="auto: feature MSE when final channels match, else dense KL; "
                                      "none trains the student alone (the baseline).")
@click.option("--weight", type=click.FloatRange(min=0), help="KD weight [default: 100 MSE, 200 dense KL, 1 clip KL].")
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=2.0, show_default=True)
@click.option("--teacher-bn", type=click.Choice(["train", "eval"]), default="train", show_default=True,
              help="train follows the official ResKD code.")
@click.option("--data", default="synthetic", show_default=True, metavar="synthetic|ROOT")
@click.option("--budget", "budget_name", default="auto", show_default=True, metavar="NAME|FILE")
@click.option("--epochs", type=click.IntRange(min=1), help="Override the budget's epochs.")
@click.option("--out", type=click.Path(path_type=Path), metavar="DIR",
              help="[default: runs/distill/<student>_from_<teacher>_seed<seed>]")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue an interrupted distillation in --out.")
@click.option("--threads", type=click.IntRange(min=1))
@click.option("--device", metavar="cpu|cuda[:N]")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--quiet", is_flag=True)
@click.pass_context
def distill(ctx: click.Context, teacher: str, student: str, student_crop: int | None, teacher_crop: int | None,
            kd: str, weight: float | None, temperature: float, teacher_bn: str, data: str, budget_name: str,
            epochs: int | None, out: Path | None, seed: int, resume: bool, threads: int | None,
            device: str | None, as_json: bool, quiet: bool) -> None:
    """Cross-resolution distillation: evaluates and reports FLOPs at the student's resolution only.

    Writes teacher/ (when the teacher is a preset trained here) and student/ into --out.
    """
    import torch

    from ..budget import load_budget
    from ..complexity import complexity
    from ..distill import DistillConfig, load_teacher
    from ..train import train_and_evaluate
    from ..utils.logging import setup_logging
    from .train_cmd import _check_out

    student_factors = parse_model(student)
    if student_crop:
        student_factors = student_factors.replace(crop=student_crop)
    cuda = (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    budget = load_budget(budget_name, cuda=cuda)
    if epochs is not None:
        budget = budget.replace(epochs=epochs, iterations=None)
    teacher_label = Path(teacher).stem if teacher.lower() not in PRESETS else teacher.lower()
    out = out or Path("runs") / "distill" / f"{Path(student).stem}-{student_factors.crop}_from_{teacher_label}_seed{seed}"
    setup_logging(None, console=not quiet)
    common = dict(resume=resume, threads=threads, device=device, progress=not quiet)

    teacher_result = None
    if teacher.lower() in PRESETS:
        _check_out(out / "teacher", resume)
        teacher_result = train_and_evaluate(PRESETS[teacher.lower()], data, budget, seed, out / "teacher", **common)
        if teacher_result.status != TrialStatus.OK:
            raise ConfigError(f"the teacher's training {teacher_result.status}: {teacher_result.error or ''}")
        teacher_path = (out / "teacher" / "model.pt").resolve()
    else:
        teacher_path = Path(teacher).resolve()
    loaded = load_teacher(teacher_path)  # fail now, with one line, not inside the training
    if kd != "none":
        config = DistillConfig(teacher=str(teacher_path), kind=kd, weight=weight, temperature=temperature,
                               teacher_crop=teacher_crop, teacher_bn=teacher_bn)
        budget = budget.replace(distill=config.to_dict())
    _check_out(out / "student", resume)
    result = train_and_evaluate(student_factors, data, budget, seed, out / "student", **common)
    student_cost = complexity(student_factors, loaded.num_classes)
    teacher_crop_used = teacher_crop or loaded.factors.crop
    teacher_cost = complexity(loaded.factors.replace(crop=teacher_crop_used), loaded.num_classes)
    record = {"out": str(out), "kd": kd, "teacher": str(teacher_path), "teacher_crop": teacher_crop_used,
              "teacher_gflops": teacher_cost.gflops,
              "teacher_top1": teacher_result.top1 if teacher_result else None,
              "student_crop": student_factors.crop, "student_gflops": student_cost.gflops,
              "student": result.to_dict()}
    if as_json:
        click.echo(json.dumps(record))
    else:
        teacher_top1 = f", top-1 {teacher_result.top1:.1f}%" if teacher_result and teacher_result.top1 else ""
        click.echo(f"teacher @{teacher_crop_used}px: {teacher_cost.gflops:.3f} GFLOPs{teacher_top1}")
        click.echo(f"student @{student_factors.crop}px ({kd}): {student_cost.gflops:.3f} GFLOPs, "
                   f"{result.summary()}  ->  {out / 'student'}")
    if result.status != TrialStatus.OK:
        ctx.exit(1)
