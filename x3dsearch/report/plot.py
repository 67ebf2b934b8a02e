"""Accuracy-vs-GFLOPs frontier figure of one or several searches.

Every artist carries a ``gid`` (``run<i>:<part>``, ``reference:<name>``) so
tests and scripts can read the plotted data back from the Figure instead of
comparing pixels. The figure is built on a bare Agg canvas, never through
pyplot, so plotting from a long-running search leaks no global figures.
"""
from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ..errors import X3DSearchError
from ..utils.io import atomic_write_bytes
from ..runlog import AXES, ModelRecord, Run, load_run

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

#: Published X3D family (paper convention, K400 head), in GFLOPs, for --reference x3d.
#: These equal ``x3dsearch.complexity.gflops(PRESETS[name])``; kept as numbers so plotting needs no torch.
REFERENCE_FAMILIES: dict[str, tuple[tuple[str, str, float], ...]] = {
    "x3d": (("x3d-xs", "XS", 0.6053), ("x3d-s", "S", 1.9629), ("x3d-m", "M", 4.7325),
            ("x3d-l", "L", 18.368), ("x3d-xl", "XL", 35.838)),
}
#: What the x-axis shows: the paper's GFLOPs, or the latency a latency-targeted search measured.
X_ATTRS = {"gflops": "gflops", "ms": "latency_ms"}
AXIS_MARKERS = {"x-fast": ">", "x-temporal": "s", "x-spatial": "o", "x-depth": "^", "x-width": "D",
                "x-bottleneck": "v"}
_SPARE_MARKERS = ("p", "h", "<", "8", "d", "H")
SEED_MARKER = "P"
FINAL_MARKER = "*"
HELDOUT_MARKER = "o"
BASELINE_MARKER = "X"
#: Sizes chosen to stay legible when the figure is shrunk to one column of a paper.
STYLE: dict[RcKeyType, Any] = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 12, "xtick.labelsize": 10,
                                "ytick.labelsize": 10, "legend.fontsize": 9, "lines.linewidth": 1.8,
                                "savefig.dpi": 200}
FIGSIZE = (7.5, 5.0)


def pareto_frontier(models: Sequence[ModelRecord], x: str = "gflops") -> list[ModelRecord]:
    """Models that no cheaper-or-equal model beats or ties on top-1, in increasing GFLOPs (or ms)."""
    best: float | None = None
    frontier: list[ModelRecord] = []
    ranked = sorted(((getattr(m, X_ATTRS[x]), m.top1, m) for m in models if m.top1 is not None),
                    key=lambda t: (t[0], -t[1]))
    for _, top1, model in ranked:
        if best is None or top1 > best:
            frontier.append(model)
            best = top1
    return frontier


def check_output_format(out_path: str | Path) -> str:
    """The file format from the extension, refused early if matplotlib cannot write it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    suffix = Path(out_path).suffix.lower().lstrip(".")
    supported = sorted(FigureCanvasAgg(Figure()).get_supported_filetypes())
    if suffix not in supported:
        raise X3DSearchError(f"{out_path}: cannot tell the image format from the extension "
                             f"(use .png, .svg or .pdf; also "
                             f"{', '.join(s for s in supported if s not in ('png', 'svg', 'pdf'))})")
    return suffix


def run_labels(runs: Sequence[Run]) -> list[str]:
    """Directory names, widened with their parent where two runs share a name."""
    names = [r.name for r in runs]
    labels = []
    for run, name in zip(runs, names):
        label = name
        if names.count(name) > 1 and run.run_dir is not None:
            resolved = run.run_dir.resolve()
            label = f"{resolved.parent.name}/{resolved.name}"
        labels.append(label)
    return labels


def _title(runs: Sequence[Run], labels: Sequence[str], title: str | None) -> str:
    if title is None:
        title = (f"Accuracy vs. complexity: {labels[0]}" if len(runs) == 1
                 else f"Accuracy vs. complexity: {len(runs)} searches")
    notes = [(r.progress if len(runs) == 1 else f"{label} {r.progress}")
             for r, label in zip(runs, labels) if r.partial]
    if notes:
        title += "\n" + textwrap.fill("(partial: " + "; ".join(notes) + ")", width=64)
    return title


def _marker(axis: str, spare: dict[str, str]) -> str:
    if axis in AXIS_MARKERS:
        return AXIS_MARKERS[axis]
    if axis not in spare:
        spare[axis] = _SPARE_MARKERS[len(spare) % len(_SPARE_MARKERS)]
    return spare[axis]


def _draw_run(ax, run: Run, index: int, color, spare: dict[str, str], runs: int = 1, x: str = "gflops",
              ) -> None:
    def at(obj) -> float | None:  # the x of a model, candidate or path point: GFLOPs or measured ms
        return getattr(obj, X_ATTRS[x])

    def x_of(obj) -> float:  # the x of one that ``at`` has already found
        value = at(obj)
        if value is None:
            raise ValueError(f"no {x} to plot")
        return value

    tag = f"run{index}"
    by_axis: dict[str, list[tuple[float, float]]] = {}
    for cand in run.evaluated_candidates():
        if at(cand) is not None:
            by_axis.setdefault(str(cand.axis), []).append((x_of(cand), _top1(cand.model)))
    order = [a for a in AXES if a in by_axis] + sorted(a for a in by_axis if a not in AXES)
    for axis in order:
        xs, ys = zip(*by_axis[axis])
        ax.scatter(xs, ys, marker=_marker(axis, spare), s=42, facecolors=[color], edgecolors=[color],
                   alpha=0.55, linewidths=0.8, zorder=3, gid=f"{tag}:candidates:{axis}")

    seed = run.seed_model
    if seed is not None and seed.evaluated and at(seed) is not None:
        ax.scatter([at(seed)], [seed.top1], marker=SEED_MARKER, s=80, facecolors=[color],
                   edgecolors="black", linewidths=0.6, zorder=4, gid=f"{tag}:seed")

    frontier = pareto_frontier([m for m in run.evaluated_models() if at(m) is not None], x)
    if frontier:
        ax.plot([at(m) for m in frontier], [m.top1 for m in frontier], drawstyle="steps-post",
                linestyle=":", linewidth=1.4, color=color, alpha=0.9, zorder=2, gid=f"{tag}:frontier")

    points = [p for p in run.path() if p.model.evaluated and at(p.model) is not None]
    path = [p for p in points if p.label != "contracted"]
    if path:
        ax.plot([at(p.model) for p in path], [p.model.top1 for p in path], "-", color=color, zorder=5,
                gid=f"{tag}:path")
        for p in path:
            text = "seed" if p.step is None else f"{p.step} {p.axis}"
            # overlaid runs: each run's labels sit one line higher than the previous run's, so the labels of
            # runs whose paths cross do not print over one another
            ax.annotate(text, (at(p.model), p.model.top1), xytext=(5, 5 + 10 * index), textcoords="offset points",
                        fontsize=8 if runs == 1 else 7, color=color, zorder=6, gid=f"{tag}:path-label:{p.label}")
    whiskers = [(p, p.score.top1_ci) for p in points if p.score is not None and p.score.top1_ci is not None]
    if whiskers:  # the 90% interval of each kept model's top-1 over the step's videos (and seeds)
        tops = [_top1(p.model) for p, _ in whiskers]
        ax.errorbar([at(p.model) for p, _ in whiskers], tops,
                    yerr=[[max(0.0, y - ci[0]) for (_, ci), y in zip(whiskers, tops)],
                          [max(0.0, ci[1] - y) for (_, ci), y in zip(whiskers, tops)]],
                    fmt="none", ecolor=color, elinewidth=1.0, capsize=3, alpha=0.8, zorder=4, gid=f"{tag}:path-ci")
    heldout = [p for p in points if p.heldout_top1 is not None]
    if heldout:
        ax.scatter([at(p.model) for p in heldout], [p.heldout_top1 for p in heldout], marker=HELDOUT_MARKER, s=46,
                   facecolors="none", edgecolors=[color], linewidths=1.2, zorder=6, gid=f"{tag}:path-heldout")

    contraction = run.contraction
    kept = contraction.kept if contraction is not None else None
    if contraction is not None and kept is not None and kept.evaluated and at(kept.model) is not None:
        start, end = contraction.overshoot.model, kept.model
        if start.evaluated and at(start) is not None:
            ax.plot([at(start), at(end)], [start.top1, end.top1], "--", color=color, linewidth=1.2,
                    zorder=5, gid=f"{tag}:contraction")
        ax.annotate(f"contract {contraction.axis}", (at(end), end.top1), xytext=(6, -12),
                    textcoords="offset points", fontsize=8, color=color, zorder=6,
                    gid=f"{tag}:path-label:contracted")

    for baseline in run.baselines:
        model = baseline.trial.model
        if not model.evaluated or at(model) is None:
            continue
        ci = baseline.score.top1_ci if baseline.score is not None else None
        top1 = _top1(model)
        ax.errorbar([at(model)], [top1], yerr=[[top1 - ci[0]], [ci[1] - top1]] if ci else None,
                    fmt=BASELINE_MARKER, markersize=9, color=color, markeredgecolor="black", capsize=3, zorder=6,
                    gid=f"{tag}:baseline:{baseline.name}")
        ax.annotate(baseline.name, (at(model), model.top1), xytext=(6, -12), textcoords="offset points",
                    fontsize=8, color=color, zorder=6, gid=f"{tag}:baseline-label:{baseline.name}")

    final = run.final.model if run.final is not None else None
    if final is not None and at(final) is None:  # a latency plot of a run that measured no ms for it
        final = None
    if final is not None and final.evaluated:
        ax.scatter([at(final)], [final.top1], marker=FINAL_MARKER, s=260, facecolors=[color],
                   edgecolors="black", linewidths=0.9, zorder=7, gid=f"{tag}:final")
    elif final is not None:
        # A final model that was never evaluated has no top-1: mark its GFLOPs only, never a made-up y.
        ax.axvline(at(final), color=color, linestyle="-.", linewidth=1.0, zorder=1, gid=f"{tag}:final")

    target = run.target_gflops if x == "gflops" else (run.target if run.unit == "ms" else None)
    if target is not None:
        ax.axvline(target, color=color, linestyle=(0, (1, 3)), linewidth=1.0, alpha=0.8, zorder=1,
                   gid=f"{tag}:target")


def _top1(model: ModelRecord) -> float:
    """The top-1 of a model the caller kept for being evaluated."""
    if model.top1 is None:
        raise ValueError(f"{model.factors.short()} has no top-1 to plot")
    return model.top1


def _draw_reference(ax, family: str) -> None:
    from matplotlib.transforms import blended_transform_factory

    top = blended_transform_factory(ax.transData, ax.transAxes)
    for name, short, value in REFERENCE_FAMILIES[family]:
        ax.axvline(value, color="0.45", linestyle="--", linewidth=0.9, zorder=0, gid=f"reference:{name}")
        ax.text(value, 0.015, f" {short}", transform=top, ha="left", va="bottom", fontsize=9, color="0.3",
                gid=f"reference-label:{name}")


def _legend(ax, runs: Sequence[Run], labels: Sequence[str], colors, spare: dict[str, str],
            reference: str | None) -> None:
    from matplotlib.lines import Line2D

    handles = []
    for run, label, color in zip(runs, labels, colors):
        text = label + (f" ({run.status or 'partial'})" if run.partial else "")
        if run.final is not None and run.final.evaluated:
            text += f": {run.final.gflops:.3g} G, {run.final.top1:.1f}"
        handles.append(Line2D([], [], color=color, linewidth=2.5, label=text))
    used = {str(c.axis) for r in runs for c in r.evaluated_candidates()}
    for axis in [a for a in AXES if a in used] + sorted(a for a in used if a not in AXES):
        handles.append(Line2D([], [], color="0.3", marker=_marker(axis, spare), linestyle="none", label=axis))
    grey = "0.3"
    handles.append(Line2D([], [], color=grey, linestyle="-", label="chosen path"))
    handles.append(Line2D([], [], color=grey, linestyle=":", label="Pareto frontier"))
    finals = [r for r in runs if r.final is not None and r.final.evaluated]
    if finals:
        contracted = any(r.contraction is not None and r.contraction.kept is not None for r in finals)
        handles.append(Line2D([], [], color=grey, marker=FINAL_MARKER, markersize=12, linestyle="none",
                              markeredgecolor="black", label="final (contracted)" if contracted else "final"))
    if any(p.score is not None and p.score.top1_ci is not None for r in runs for p in r.path()):
        handles.append(Line2D([], [], color=grey, marker="|", markersize=10, linestyle="none",
                              label="90% interval (videos, seeds)"))
    if any(r.baselines for r in runs):
        handles.append(Line2D([], [], color=grey, marker=BASELINE_MARKER, markeredgecolor="black", linestyle="none",
                              label="baseline (same data, budget, seeds)"))
    if any(p.heldout_top1 is not None for r in runs for p in r.path()):
        handles.append(Line2D([], [], color=grey, marker=HELDOUT_MARKER, markerfacecolor="none", linestyle="none",
                              label="held-out top-1 (test split)"))
    if any(r.seed_model is not None and r.seed_model.evaluated for r in runs):
        handles.append(Line2D([], [], color=grey, marker=SEED_MARKER, markersize=9, linestyle="none",
                              label="seed"))
    if any(r.target_gflops is not None for r in runs):
        handles.append(Line2D([], [], color=grey, linestyle=(0, (1, 3)), label="target GFLOPs"))
    if reference:
        handles.append(Line2D([], [], color="0.45", linestyle="--", linewidth=0.9,
                              label=f"{reference.upper()} family"))
    legend = ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False,
                       borderaxespad=0.0)
    legend.set_gid("legend")


def plot_runs(run_dirs: Sequence[str | Path | Run], out_path: str | Path | None = None,
              reference: str | None = None, title: str | None = None, x: str = "gflops"):
    """Draw the runs on one accuracy-vs-GFLOPs figure, save it if ``out_path`` is given, return the Figure."""
    from matplotlib import rc_context, ticker
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not run_dirs:
        raise X3DSearchError("give at least one run directory")
    if reference is not None and reference not in REFERENCE_FAMILIES:
        raise X3DSearchError(f"unknown reference '{reference}' (choose from {', '.join(REFERENCE_FAMILIES)})")
    fmt = check_output_format(out_path) if out_path is not None else None
    runs = [r if isinstance(r, Run) else load_run(r) for r in run_dirs]
    if x not in X_ATTRS:
        raise X3DSearchError(f"--x must be one of {', '.join(X_ATTRS)}, got '{x}'")
    if x == "ms" and not any(c.latency_ms is not None for r in runs for c in r.candidates()):
        raise X3DSearchError("--x ms needs a search that measured latency (x3dsearch expand --complexity latency)")
    labels = run_labels(runs)

    with rc_context(STYLE):
        fig = Figure(figsize=FIGSIZE, layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        ax.set_gid("frontier")
        palette = [f"C{i % 10}" for i in range(len(runs))]
        spare: dict[str, str] = {}
        for i, (run, color) in enumerate(zip(runs, palette)):
            _draw_run(ax, run, i, color, spare, len(runs), x)
        if reference and x == "gflops":
            _draw_reference(ax, reference)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel("GFLOPs per clip (multiply-adds, log scale)" if x == "gflops"
                      else "measured latency per clip, batch 1 (ms, log scale)")
        ax.set_ylabel("validation top-1 (%)")
        ax.grid(True, which="major", linewidth=0.5, alpha=0.4)
        ax.set_title(_title(runs, labels, title))
        _legend(ax, runs, labels, palette, spare, reference)
        if out_path is not None:
            buffer = io.BytesIO()
            fig.savefig(buffer, format=fmt)
            atomic_write_bytes(out_path, buffer.getvalue())
    return fig


def find_artists(fig, gid: str) -> list:
    """Artists of ``fig`` whose gid is ``gid`` or starts with ``gid:`` (e.g. ``run0:candidates``)."""
    return [a for a in fig.findobj() if isinstance(a.get_gid(), str)
            and (a.get_gid() == gid or a.get_gid().startswith(gid + ":"))]
