"""``x3dsearch plot``, ``show`` and ``report``: read run directories (``report`` writes its own page only)."""
from __future__ import annotations

import json

import click


@click.command(short_help="Accuracy-vs-GFLOPs frontier of one or several searches, as an image.")
@click.argument("run_dirs", nargs=-1, required=True, metavar="RUN_DIR [RUN_DIR ...]")
@click.option("-o", "--output", "output", required=True, metavar="FILE",
              help="Image to write; the extension picks the format (png, svg, pdf).")
@click.option("--reference", type=click.Choice(["x3d"]), default=None,
              help="Draw the published family's GFLOPs (X3D-XS, S, M, L, XL) as vertical markers.")
@click.option("--title", default=None, help="Figure title (a partial run still adds its progress line).")
@click.option("--x", "x", type=click.Choice(("gflops", "ms")), default=None,
              help="The x-axis: GFLOPs, or the latency a --complexity latency search measured [default: what "
                   "the (first) run targeted].")
def plot(run_dirs: tuple[str, ...], output: str, reference: str | None, title: str | None, x: str | None) -> None:
    """Accuracy-vs-GFLOPs frontier of one or several searches."""
    from ..report.plot import check_output_format, plot_runs
    from ..runlog import load_run

    check_output_format(output)  # before reading runs, so a typo costs nothing
    runs = [load_run(d) for d in run_dirs]
    plot_runs(runs, output, reference=reference, title=title, x=x or ("ms" if runs[0].unit == "ms" else "gflops"))
    partial = [f"{r.run_dir} ({r.progress})" for r in runs if r.partial]
    click.echo(f"wrote {output}" + (f"; partial: {'; '.join(partial)}" if partial else ""))


@click.command(short_help="The chosen path of a search, its decisions and its cost, as a table.")
@click.argument("run_dir", metavar="RUN_DIR")
@click.option("--all", "all_candidates", is_flag=True, help="Also list every candidate of every step.")
@click.option("--json", "as_json", is_flag=True, help="Print the same data as JSON.")
def show(run_dir: str, all_candidates: bool, as_json: bool) -> None:
    """The chosen path, the search's cost, and that cost against one full training."""
    from ..runlog import load_run
    from ..report.table import format_summary, summarize

    summary = summarize(load_run(run_dir), all_candidates=all_candidates)
    click.echo(json.dumps(summary, indent=2) if as_json else format_summary(summary))


@click.command(short_help="(Re)write report.html of a search run or a calibration folder.")
@click.argument("folder", metavar="RUN_DIR|CALIBRATION_DIR")
def report(folder: str) -> None:
    """(Re)write report.html in a search run's folder (any run, old ones included) or a calibration's:
    one self-contained page with the frontier, the path and its decisions, the held-out figures and
    the cost. A running search rewrites it itself after every training and every step."""
    from ..report.html import write_report

    click.echo(f"wrote {write_report(folder)}")
