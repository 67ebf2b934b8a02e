"""``x3dsearch expand --dry-run``: the proposal chain printed, with no training, no Ray, no run directory."""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import ConfigError
from ..factors import PRESETS, Factors
from ..search.plan import Plan, PlanEnd, first_step, parse_path, replay
from ..search.space import SearchSpace


def dataset_classes(data: str) -> int:
    """The class count a search on ``data`` would count GFLOPs with, without generating or decoding anything."""
    if data.strip() == "synthetic":
        from ..data.synthetic import DEFAULT_CLASSES

        return DEFAULT_CLASSES
    from ..data.layout import class_names, resolve_data

    return len(class_names(resolve_data(Path(data))))


def _published(factors: Factors) -> str:
    name = next((n for n, f in PRESETS.items() if f == factors), None)
    return f"  = {name.upper()}" if name else ""


def _row(step: str, axis: str, factors: Factors, value: float, ratio: str, extra: str = "") -> str:
    return f"{step:>5}  {axis:<13} {factors.short():<26} {value:>9.4f}  {ratio:>6}{extra}"


def plan_lines(plan: Plan, space: SearchSpace) -> list[str]:
    unit = plan.unit
    lines = ["dry run: nothing is trained, Ray is not started, no run directory is written",
             f"space {space.name} (c = {space.expansion_rate:g}, proposal {space.proposal}, tolerance "
             f"{plan.tolerance:g}), {plan.num_classes} classes, target {plan.target:g} {unit}; a step is taken "
             f"while the model is under {plan.target * (1 - plan.tolerance):.4g} {unit}", ""]
    header = f"{'step':>5}  {'axis':<13} {'model':<26} {unit:>9}  {'ratio':>6}"
    if not plan.path:
        lines.append(f"seed: {plan.seed.factors.short()}, {plan.seed.value:.4f} {unit}")
        for step in plan.steps:
            lines += [f"step {step.step} candidates (x{space.expansion_rate:g} = "
                      f"{space.expansion_rate * plan.seed.value:.4f} {unit}):", header]
            for p in step.candidates:
                lines.append(_row(str(step.step), p.axis, p.factors, p.value, f"x{p.value / plan.seed.value:.2f}",
                                  _published(p.factors)))
            for s in step.skipped:
                lines.append(f"{step.step:>5}  {s.axis:<13} skipped: {s.reason}")
    else:
        lines += [f"path: {', '.join(plan.path)}", header,
                  _row("0", "seed", plan.seed.factors, plan.seed.value, "", _published(plan.seed.factors))]
        previous = plan.seed.value
        for step in plan.steps:
            chosen = step.chosen_proposal()
            assert chosen is not None
            lines.append(_row(str(step.step), chosen.axis, chosen.factors, chosen.value,
                              f"x{chosen.value / previous:.2f}", _published(chosen.factors)))
            previous = chosen.value
        if plan.contraction is not None:
            c = plan.contraction
            lines += ["", f"{c.overshoot.short()} overshoots the target; contraction of step {len(plan.steps)} "
                          f"({c.axis}) from {c.start.short()}:"]
            for p in c.candidates:
                lines.append(_row("c", p.axis, p.factors, p.value, "", _published(p.factors)))
            for s in c.skipped:
                lines.append(f"{'c':>5}  {s.axis:<13} nothing fits: {s.reason}")
    lines.append("")
    if plan.final is not None and plan.end is PlanEnd.REACHED:
        f = plan.final
        lines.append(f"final: {f.factors.short()}, {f.value:.4f} {unit} ({100 * f.value / plan.target:.1f}% of the "
                     f"target){_published(f.factors)}")
    if plan.unused:
        lines.append(f"not needed: the path's last {len(plan.unused)} axes ({', '.join(plan.unused)})")
    lines += list(plan.notes)
    return lines


def dry_run(space: SearchSpace, target: float | None, path_text: str | None, data: str, classes: int | None,
            contract_axes: str | None, as_json: bool) -> None:
    if target is None:
        raise ConfigError("--dry-run needs --target-gflops")
    if classes is not None and classes < 1:
        raise ConfigError(f"--num-classes must be a positive integer, got {classes}")
    num_classes = classes if classes is not None else dataset_classes(data)
    if path_text is not None:
        plan = replay(space, parse_path(path_text, space), target, num_classes, contract_axes=contract_axes)
    else:
        plan = first_step(space, target, num_classes)
    if as_json:
        click.echo(json.dumps(plan.to_dict(), indent=2))
    else:
        for line in plan_lines(plan, space):
            click.echo(line)
