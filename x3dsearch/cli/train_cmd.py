"""``x3dsearch train``: train and validate one architecture (a preset, a searched model or explicit factors)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import click

from ..status import TrialStatus


def _default_out(name: str, budget: str, epochs: int | None, seed: int) -> Path:
    label = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{name}_{Path(budget).stem}" + (f"-e{epochs}" if epochs else ""))
    return Path("runs") / "train" / f"{label}_seed{seed}"


def _heldout_text(outcomes, data: str) -> str:
    """Which accuracy is which: validation selects models, the held-out split does not."""
    if outcomes is None:
        return f"no held-out accuracy: {data} has no test split"
    left_out = f", {len(outcomes.excluded)} unreadable left out" if outcomes.excluded else ""
    return f"held-out test top-1 {outcomes.top1:.2f}% ({len(outcomes.videos)} videos{left_out})"


@click.command(short_help="Train one model and validate it (and test it, with a test split).")
@click.option("--preset", "preset_name", metavar="NAME", help="A published model, e.g. x3d-xs.")
@click.option("--model", "model_file", metavar="FILE", help="final_model.yaml written by a search.")
@click.option("--factors", "factors_text", metavar="K=V,...",
              help="e.g. frames=4,stride=12,crop=160,width=1,bottleneck=2.25,depth=2.2")
@click.option("--data", default="synthetic", show_default=True, metavar="synthetic|ROOT",
              help="Dataset root (train.csv/val.csv or train/ and val/ class folders).")
@click.option("--budget", "budget_name", default="auto", show_default=True, metavar="NAME|FILE",
              help="smoke, quick, standard, paper, auto (standard on CUDA, else quick) or a YAML file.")
@click.option("--epochs", type=click.IntRange(min=1), help="Override the budget's epochs.")
@click.option("--out", "out", type=click.Path(path_type=Path), metavar="DIR",
              help="Output folder [default: runs/train/<model>_<budget>_seed<seed>].")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed: initial weights, clip order and augmentations.")
@click.option("--resume", is_flag=True, help="Continue an interrupted training in --out from its checkpoint.")
@click.option("--init", "init", type=click.Path(path_type=Path), metavar="CKPT",
              help="Start from these weights (a converted checkpoint or a model.pt; a model.pt of "
                   "smaller factors is grown to these, keeping its function); the classifier restarts "
                   "when the class count differs.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads [default: the CPUs granted].")
@click.option("--device", metavar="cpu|cuda[:N]", help="[default: cuda when available]")
@click.option("--json", "as_json", is_flag=True, help="Print the result record as JSON.")
@click.option("--quiet", is_flag=True, help="No progress bar or log lines on the terminal.")
@click.pass_context
def train(ctx: click.Context, preset_name: str | None, model_file: str | None, factors_text: str | None,
          data: str, budget_name: str, epochs: int | None, out: Path | None, seed: int, resume: bool,
          init: Path | None, threads: int | None, device: str | None, as_json: bool, quiet: bool) -> None:
    """Train one model and validate it; ends with one summary line.

    Writes checkpoint.pt, metrics.jsonl (per epoch), train.log, model.pt,
    val_outcomes.json and result.json into --out. When the dataset has a test
    split, the trained model is then evaluated on it (test_outcomes.json): the
    validation top-1 is the number models are chosen by, the held-out one is not.
    Exit code 0 when it trains, 1 when it diverged or failed, 2 for bad input.
    """
    from ..budget import load_budget
    from ..data.layout import has_split, resolve_data
    from ..train import evaluate_split, train_and_evaluate
    from ..utils.logging import setup_logging
    from .options import check_out_dir, resolve_factors

    import torch

    factors = resolve_factors(preset_name, factors_text, model_file)
    cuda = (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    budget = load_budget(budget_name, cuda=cuda)
    if epochs is not None:
        budget = budget.replace(epochs=epochs, iterations=None)
    name = preset_name.lower() if preset_name else (Path(model_file).parent.name if model_file else factors.key())
    out = out or _default_out(name, budget_name, epochs, seed)
    check_out_dir(out, resume)
    setup_logging(None, console=not quiet)
    result = train_and_evaluate(factors, data, budget, seed, out, resume=resume, threads=threads, device=device,
                                init=init, progress=not quiet)
    heldout = None
    if result.status == TrialStatus.OK and has_split(resolve_data(data), "test"):
        heldout = evaluate_split(out, data, "test", threads=threads, device=device)
    if as_json:
        record = {"out": str(out), **result.to_dict()}
        if heldout is not None:  # only with a test split, so the record is result.json's otherwise
            record["test"] = {"top1": heldout.top1, "videos": len(heldout.videos), "excluded": len(heldout.excluded)}
        click.echo(json.dumps(record))
    else:
        tail = f"  |  {_heldout_text(heldout, data)}" if result.status == TrialStatus.OK else ""
        click.echo(f"{name} [{factors.short()}]: {result.summary()}{tail}  ->  {out}")
    if result.status != TrialStatus.OK:
        if result.status == TrialStatus.FAILED:
            click.echo(f"x3dsearch: training failed, see {out / 'train.log'}", err=True)
        ctx.exit(1)
