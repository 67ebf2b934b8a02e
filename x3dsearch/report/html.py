"""``report.html``: one self-contained page of a search run (or a calibration) for a browser.

The page renders the data ``show`` prints (:func:`.table.summarize`) and the
figure ``plot`` draws (inline, as a base64 PNG), so the file opens from any
folder, offline, or as a mail attachment. The search rewrites it after every
finished training and every step; while the run's log says ``running`` the page
reloads itself, and the page of a finished or interrupted run does not.
"""
from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from ..errors import X3DSearchError
from ..runlog import RUN_LOG_NAME, Run, RunDir, RunStatus, load_run
from ..runlog.rundir import REPORT_NAME
from ..utils.fmt import format_duration
from ..utils.io import atomic_write_text
from .table import accuracy_note, decisions_note, format_margin, format_score, random_rank_text, summarize

CALIBRATION_NAME = "calibration.yaml"
CALIBRATION_FIGURE = "calibration.png"
#: Seconds between reloads of a running search's page: trials take minutes, so this is often enough.
REFRESH_S = 15
#: Pixels per inch of the inline frontier: sharp at the page's width, and quick to draw after each trial.
FIGURE_DPI = 120

_STYLE = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5em auto;max-width:1240px;
padding:0 1em;color:#1d232a;background:#fff}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.15em;margin:1.6em 0 .5em;border-bottom:1px solid #d6dbe0}
.meta{color:#56616c}.note{color:#56616c;font-size:.92em;margin:.4em 0}
table{border-collapse:collapse;margin:.3em 0;font-size:13px;font-variant-numeric:tabular-nums}
th,td{padding:.25em .6em;border-bottom:1px solid #e4e8ec;text-align:left;white-space:nowrap}
th{background:#f3f5f7;font-weight:600}td.n{text-align:right}
.wrap{white-space:normal;display:inline-block;min-width:22em;max-width:30em}
.scroll{overflow-x:auto}
.badge{display:inline-block;padding:.05em .55em;border-radius:1em;font-size:.85em;font-weight:600}
.running{background:#e3f0ff;color:#0b4f9c}.finished{background:#e6f5e9;color:#1d6b2f}
.interrupted{background:#fdecea;color:#9b2318}.beat{background:#e6f5e9;color:#1d6b2f}
.noise{background:#eef0f2;color:#4a545e}
img{max-width:100%;height:auto;border:1px solid #e4e8ec}
dl{display:grid;grid-template-columns:max-content auto;gap:.15em 1.2em;margin:.3em 0}dt{color:#56616c}dd{margin:0}
pre{background:#f6f8fa;padding:.8em;overflow-x:auto}
"""


@dataclass(frozen=True)
class LiveTable:
    """What only the running search knows: the live table of the trials it trains now, and its ETA."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    footer: str                      # "2/6 done, 1m10s elapsed, search ETA 3m05s"


# --- building blocks ---------------------------------------------------------------------------
def _e(value: Any) -> str:
    return escape("-" if value is None else str(value))


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


class _Html(str):
    """Markup built here, put into a table cell as it is."""


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Iterable[int] = ()) -> str:
    """A table; cells are escaped unless they are :class:`_Html` (a badge); ``numeric`` columns align right."""
    numeric = set(numeric)
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td{" class=n" if j in numeric else ""}>'
                                    f"{c if isinstance(c, _Html) else _e(c)}</td>" for j, c in enumerate(row))
                   + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _scroll(table: str) -> str:
    """A wide table scrolls inside its box instead of widening the page."""
    return f'<div class="scroll">{table}</div>'


def _badge(text: str, kind: str) -> _Html:
    return _Html(f'<span class="badge {kind}">{_e(text)}</span>')


def _image(png: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _page(title: str, body: list[str], refresh: bool) -> str:
    meta = f'<meta http-equiv="refresh" content="{REFRESH_S}">' if refresh else ""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">{meta}'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{_e(title)}</title><style>{_STYLE}</style></head>\n<body>\n" + "\n".join(body)
            + "\n</body></html>\n")


def _written() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())


# --- a search run --------------------------------------------------------------------------------
def frontier_png(run: Run) -> bytes | None:
    """The run's frontier as ``plot`` draws it, or None before any model is evaluated."""
    from .plot import plot_runs

    if not run.evaluated_models():
        return None
    buffer = io.BytesIO()
    plot_runs([run]).savefig(buffer, format="png", dpi=FIGURE_DPI)
    return buffer.getvalue()


def _verdict(significant: bool | None) -> _Html | str:
    if significant is None:
        return "-"
    return _badge("beat the noise", "beat") if significant else _badge("within noise", "noise")


def _interval(decision: dict[str, Any] | None, criterion: str | None) -> str:
    """The winner's margin over the runner-up with its interval, as the Decision recorded them."""
    if not decision or decision.get("margin") is None or decision.get("ci") is None:
        return "-"
    rival = decision.get("runner_up")
    return format_margin(decision, criterion) + (f" ({rival})" if rival else "")


def _path_section(summary: dict[str, Any]) -> list[str]:
    latency, heldout = summary["unit"] == "ms", summary["heldout"]
    header = ["step", "axis", "factors", "GFLOPs", *(["ms"] if latency else []), "params", "val top-1",
              "score [90% CI]", *(["held-out"] if heldout else []), "time", "vs runner-up [one-sided 90% bounds]",
              "noise", "decision"]
    rows = []
    for p in summary["path"]:
        decision = p.get("decision") or {}
        rows.append([p["step"], p["axis"], p["factors_short"], f"{p['gflops']:.4f}",
                     *([_num(p["ms"], ".1f")] if latency else []),
                     "-" if p["params_m"] is None else f"{p['params_m']:.2f}M", _num(p["top1"], ".1f"),
                     format_score(p), *([_num(p["heldout_top1"], ".1f")] if heldout else []),
                     format_duration(p["time_s"]), _interval(decision, p.get("criterion")),
                     _verdict(p.get("significant")),
                     _Html(f'<span class="wrap">{_e(p.get("decision_text") or "-")}</span>')])
    out = ["<h2>Path</h2>", _scroll(_table(header, rows, numeric=range(3, len(header) - 3))),
           f'<p class="note">{_e(accuracy_note(summary))}</p>']
    note = decisions_note(summary["decisions"])
    if note:
        out.append(f'<p class="note">{_e(note)}</p>')
    return out


def _running_section(summary: dict[str, Any], live: LiveTable | None, running: bool) -> list[str]:
    """The trials training now: the search's own live table with its ETA, else the log's unfinished step."""
    if live is not None:
        return [f"<h2>Running: {_e(live.title)}</h2>", _table(live.header, live.rows, numeric=(2, 3, 5)),
                f'<p class="note">{_e(live.footer)}</p>']
    steps = summary.get("steps") or []
    if not steps or steps[-1]["chosen"] is not None:
        return []
    step = steps[-1]
    rows = [[c["axis"], c["factors_short"], _num(c["gflops"], ".4f"), _num(c["top1"], ".1f"), format_score(c),
             format_duration(c["train_time_s"]), c["status"] + (f": {c['error']}" if c["error"] else "")]
            for c in step["candidates"]]
    note = ("the search shows its ETA here once this step's trials start" if running
            else "the search stopped in this step; `x3dsearch resume` continues it")
    return [(f"<h2>{'Running' if running else 'Unfinished'}: step {_e(step['step'])} from "
             f"{_e(step['from']['factors_short'])}</h2>"),
            _table(["axis", "factors", "GFLOPs", "top-1", "score [90% CI]", "train", "status"], rows,
                   numeric=(2, 3, 5)), f'<p class="note">{_e(note)}</p>']


def _heldout_section(summary: dict[str, Any]) -> list[str]:
    """Validation top-1 (which chose the models) beside the held-out top-1 (which did not)."""
    out = ["<h2>Held-out split</h2>"]
    if not summary["heldout"]:
        return out + ['<p class="note">the data has no test split, so no model was scored on held-out videos</p>']
    out.append(f'<p class="note">{_e(accuracy_note(summary))}</p>')
    rows = [[f"step {p['step']}" if p["step"][0].isdigit() else p["step"], p["factors_short"],
             _num(p["top1"], ".1f"), _num(p["heldout_top1"], ".1f"),
             _num(p["top1"] - p["heldout_top1"], "+.1f") if p["top1"] is not None else "-"]
            for p in summary["path"] if p["heldout_top1"] is not None]
    final = summary["final"]
    if final and final["heldout_top1"] is not None:
        rows.append(["final", final["factors_short"], _num(final["top1"], ".1f"), _num(final["heldout_top1"], ".1f"),
                     _num(final["top1"] - final["heldout_top1"], "+.1f") if final["top1"] is not None else "-"])
    rows += [[f"baseline {b['name']}", b["factors_short"], _num(b["top1"], ".1f"), _num(b["heldout_top1"], ".1f"),
              _num(b["top1"] - b["heldout_top1"], "+.1f") if b["top1"] is not None else "-"]
             for b in summary["baselines"] if b["heldout_top1"] is not None]
    if rows:
        out.append(_table(["model", "factors", "val top-1", "held-out top-1", "val - held-out"], rows,
                          numeric=(2, 3, 4)))
    else:
        out.append('<p class="note">no kept model has been scored on the held-out split yet</p>')
    return out


def _baselines_section(summary: dict[str, Any]) -> list[str]:
    if not summary["baselines"]:
        return []
    rows = [[b["name"], b["factors_short"], f"{b['gflops']:.4f}", _num(b["top1"], ".1f"), format_score(b),
             _num(b["heldout_top1"], ".1f"), _interval(b["vs_final"], b.get("criterion")), b["verdict"]]
            for b in summary["baselines"]]
    return ["<h2>Baselines</h2>", ('<p class="note">the run\'s data, budget and seeds; final minus baseline, '
                                   "paired on the same videos</p>"),
            _table(["model", "factors", "GFLOPs", "val top-1", "score [90% CI]", "held-out", "final - baseline",
                    "verdict"], rows, numeric=range(2, 7))] + \
        ([f'<p class="note">{escape(random_rank_text(summary["random_rank"]))}</p>']
         if summary.get("random_rank") else [])


def _cost_section(summary: dict[str, Any]) -> list[str]:
    cost, full = summary["cost"], summary["full_training"]
    wall = cost["wall_time_s"]
    items = [("training multiply-adds", _num(cost["train_macs"], ".3e")
              + ("" if cost["train_macs_source"] == "cost.train_macs" else f" ({cost['train_macs_source']})")),
             ("wall time", format_duration(wall) + (f" ({wall:.0f} s)" if wall is not None else "")),
             ("time a trial was training", format_duration(cost["train_s"]))]
    if cost["outside_training_share"] is not None:
        items.append(("outside training", (f"{format_duration(cost['outside_training_s'])} = "
                                           f"{cost['outside_training_share']:.1%} of wall time")))
        items += [(name, f"{format_duration(cost[key])} = {cost[key] / wall:.1%}")
                  for name, key in (("FLOP counting", "flop_count_s"), ("Ray", "ray_s")) if cost[key] is not None]
    else:
        items.append(("outside training", cost["outside_training_note"]))
    if full["available"]:
        ratio = (f"1/{full['one_in']:.1f}" if full["one_in"] >= 1 else f"{full['ratio']:.2f}x")
        items.append(("against one full training", (
            f"{ratio} of one full training of the final model ({full['budget']} budget: {full['full_epochs']} "
            f"epochs x {full['train_videos']} videos x 3 x {full['final_gflops']:.4f} GFLOPs = "
            f"{full['full_training_macs']:.3e} multiply-adds)")))
    else:
        items.append(("against one full training", f"unavailable ({full['reason']})"))
    return ["<h2>Cost</h2>", "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items) + "</dl>"]


def _head(summary: dict[str, Any], name: str, refresh: bool) -> list[str]:
    """Title, state, settings, the final model and why the search stopped."""
    status = str(summary["status"] or "partial")
    data = summary["data"] or {}
    facts = [f"target {_num(summary['target'], 'g')} {summary['unit']}", f"seed {_num(summary['seed'], 'd')}",
             f"space {summary['space'] or '-'}", f"budget {summary['budget'] or '-'}",
             f"proxy init {summary.get('proxy_init') or 'scratch'}"]
    if data:
        facts.append(f"data {data.get('root', '?')} ({data.get('num_classes', '?')} classes, "
                     f"{data.get('train_videos', '?')} train / {data.get('val_videos', '?')} val / "
                     f"{data.get('test_videos') or 'no'} test videos)")
    if refresh:
        reload = f"reloads every {REFRESH_S} s while the search runs"
    elif status == RunStatus.RUNNING:
        reload = ("the log says running, but no process is working on the run (killed?): this page does not "
                  f"reload; `x3dsearch resume {summary['run_dir']}` continues the search")
    else:
        reload = "the search is not running: this page does not reload"
    out = [f"<h1>x3dsearch run {_e(name)}</h1>",
           f'<p><span class="badge {_e(status)}">{_e(status)}</span>'
           + (f" {_e(summary['progress'])}" if summary["partial"] else "") + "</p>",
           f'<p class="meta">{_e(", ".join(facts))}</p>',
           f'<p class="meta">{_e(summary["run_dir"])}: written {_written()}; {reload}</p>']
    final = summary["final"]
    if final:
        target, unit = summary["target"], summary["unit"]
        value = final["ms"] if unit == "ms" else final["gflops"]
        share = f" = {value / target:.1%} of the {target:g} {unit} target" if target and value else ""
        heldout = f", held-out top-1 {final['heldout_top1']:.1f}" if final["heldout_top1"] is not None else ""
        out.append(f"<p><b>final</b>: {_e(final['factors_short'])}, {final['gflops']:.4f} GFLOPs{_e(share)}, "
                   f"top-1 {_num(final['top1'], '.1f')}{heldout}</p>")
    if summary["stop_reason"]:
        detail = f" ({summary['stop_detail']})" if summary["stop_detail"] else ""
        out.append(f"<p><b>stopped</b>: {_e(summary['stop_reason'] + detail)}</p>")
    return out


def run_page(run: Run, live: LiveTable | None = None, in_use: bool = False) -> str:
    """The whole page of a run, as it stands in ``run`` (read from its log); ``in_use``: a process holds
    the run now, so a log that says ``running`` is true and the page reloads itself."""
    summary = summarize(run, all_candidates=True)
    refresh = in_use and str(summary["status"]) == RunStatus.RUNNING
    body = _head(summary, run.name, refresh) + _running_section(summary, live, refresh)
    png = frontier_png(run)
    body += ["<h2>Frontier</h2>", _image(png, f"accuracy vs. complexity of {run.name}") if png is not None
             else '<p class="note">no model has been evaluated yet</p>']
    body += _path_section(summary) + _heldout_section(summary) + _baselines_section(summary) + _cost_section(summary)
    return _page(f"x3dsearch: {run.name} ({summary['progress'] if summary['partial'] else summary['status']})",
                 body, refresh)


# --- a calibration -------------------------------------------------------------------------------
def calibration_page(folder: Path) -> str:
    """A calibration's table (as ``calibrate`` prints it) and its figure."""
    from ..calibrate.report import table
    from ..utils.io import read_yaml

    summary = read_yaml(folder / CALIBRATION_NAME, error=X3DSearchError)
    if not isinstance(summary, dict) or "models" not in summary:
        raise X3DSearchError(f"{folder / CALIBRATION_NAME} is not a calibration summary")
    try:
        lines = table(summary)
    except (KeyError, TypeError, ValueError) as exc:
        raise X3DSearchError(f"{folder / CALIBRATION_NAME} is malformed ({type(exc).__name__}: {exc})") from None
    figure = folder / CALIBRATION_FIGURE
    name = folder.resolve().name
    body = [f"<h1>x3dsearch calibration {_e(name)}</h1>",
            (f'<p class="meta">{_e(folder)}: written {_written()}; proxy {_e(summary.get("proxy_budget", "-"))}, '
             f'reference {_e(summary.get("reference_budget", "-"))}</p>'),
            "<h2>Scores and rank correlations</h2>", f"<pre>{_e(chr(10).join(lines))}</pre>",
            "<h2>Proxy against reference</h2>",
            _image(figure.read_bytes(), f"calibration of {name}") if figure.is_file()
            else f'<p class="note">no {CALIBRATION_FIGURE} in the folder</p>']
    return _page(f"x3dsearch calibration: {name}", body, refresh=False)


# --- writing -------------------------------------------------------------------------------------
def write_report(folder: str | Path, live: LiveTable | None = None) -> Path:
    """(Re)write ``report.html`` of a run or calibration folder, atomically; returns its path."""
    folder = Path(folder)
    if not folder.exists():
        raise X3DSearchError(f"{folder}: no such directory")
    if not folder.is_dir():
        raise X3DSearchError(f"{folder} is not a directory (give a run's or a calibration's folder)")
    if (folder / RUN_LOG_NAME).is_file():
        text = run_page(load_run(folder, require_evaluated=False), live, RunDir(folder).in_use())
    elif (folder / CALIBRATION_NAME).is_file():
        text = calibration_page(folder)
    else:
        raise X3DSearchError(f"{folder} is neither a search run (no {RUN_LOG_NAME}) nor a calibration "
                             f"(no {CALIBRATION_NAME})")
    path = folder / REPORT_NAME
    atomic_write_text(path, text)
    return path
