"""``report.html`` and ``x3dsearch report``: the page's contents, that it stands alone, when it reloads,
bad input, and (where Chromium is installed) how a real browser renders it.

Runs come from ``tests/fixtures``: the hand-written logs (made up, not measurements) for exact contents,
and the recorded runs (real smoke searches, from before the search wrote pages) for old runs.
"""
from __future__ import annotations

import base64
import logging
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from x3dsearch.cli.main import main
from x3dsearch.errors import X3DSearchError
from x3dsearch.report.html import REFRESH_S, write_report
from x3dsearch.runlog import RUN_LOG_NAME, RunDir

from browser import PLOT_BLUE, has_colour, needs_chromium, screenshot

FIXTURES = Path(__file__).parent / "fixtures"
SEED0 = FIXTURES / "handwritten_runs" / "k400_xs_seed0"      # finished, contraction, no decisions
RUNNING = FIXTURES / "handwritten_runs" / "synthetic_s_running"  # running, step 4 half trained
RECORDED = FIXTURES / "recorded_runs"                        # real smoke runs: finished, killed mid-step 2
REFRESH = re.compile(r'<meta http-equiv="refresh" content="(\d+)">')


class _Links(HTMLParser):
    """Every tag and every attribute that can load something."""

    LOADING = frozenset({"src", "href", "srcset", "action", "data", "poster", "background", "formaction"})

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.links += [value or "" for name, value in attrs if name in self.LOADING]


def links(page: str) -> _Links:
    parser = _Links()
    parser.feed(page)
    return parser


def copy(source: Path, tmp_path: Path) -> Path:
    """The fixture folder copied, since the page is written into the run's own folder."""
    return Path(shutil.copytree(source, tmp_path / source.name))


def cli(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return info.value.code, out, err


def section(page: str, title: str) -> str:
    """The HTML from the ``<h2>`` that starts with ``title`` to the next one."""
    start = page.index(f"<h2>{title}")
    end = page.find("<h2>", start + 4)
    return page[start:end if end > 0 else len(page)]


# --- contents --------------------------------------------------------------------------------
def test_a_finished_runs_page_has_its_path_frontier_heldout_note_and_cost_and_does_not_reload(tmp_path):
    page = write_report(copy(SEED0, tmp_path)).read_text()
    assert REFRESH.search(page) is None and "this page does not reload" in page
    assert [h for h in re.findall(r"<h2>([^<]*)</h2>", page)] == ["Frontier", "Path", "Held-out split", "Cost"]
    path = section(page, "Path")
    rows = re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td>", path)
    assert rows == [("seed", "-"), ("1", "x-bottleneck"), ("2", "x-depth"), ("3", "x-spatial"), ("4", "x-temporal"),
                    ("5", "x-temporal"), ("contracted", "x-temporal")]
    assert "<b>final</b>: 3x12@160 w1 b2.25 d2.2, 0.4544 GFLOPs = 75.7% of the 0.6 GFLOPs target" in page
    assert "the data has no test split" in section(page, "Held-out split")
    cost = section(page, "Cost")
    assert "1/2.5 of one full training of the final model" in cost and "3.845e+16" in cost
    figure = re.search(r'src="data:image/png;base64,([^"]+)"', section(page, "Frontier")).group(1)
    assert base64.b64decode(figure)[:8] == b"\x89PNG\r\n\x1a\n"


def test_each_decision_shows_its_interval_and_whether_it_beat_the_noise(tmp_path):
    """Decisions hand-written into a copy of the hand-written fixture (made up for this test): the page
    shows each one's runner-up, margin and interval, and the verdict the Decision record gives."""
    raw = yaml.safe_load((SEED0 / RUN_LOG_NAME).read_text())
    for step, ci in zip(raw["steps"][:2], ([1.0, 9.0], [-2.0, 6.0])):
        step["decision"] = {"criterion": "top1", "rule": "best", "winner": step["chosen"], "runner_up": "x-width",
                            "margin": (ci[0] + ci[1]) / 2, "ci": ci, "videos": 104, "repeats": 1, "tied": []}
    run_dir = tmp_path / "decided"
    run_dir.mkdir()
    (run_dir / RUN_LOG_NAME).write_text(yaml.safe_dump(raw, sort_keys=False))
    path = section(write_report(run_dir).read_text(), "Path")
    step1 = re.search(r"<tr><td>1</td>.*?</tr>", path).group(0)
    step2 = re.search(r"<tr><td>2</td>.*?</tr>", path).group(0)
    assert "+5.0 [1.0,9.0] (x-width)" in step1 and "beat the noise</span>" in step1
    assert "margin +5.0 (one-sided 90% lower bound 1.0)" in step1  # Decision.summary() of an older record
    assert "+2.0 [-2.0,6.0]" in step2 and "within noise</span>" in step2
    assert "decisions: 1 of 2 steps beat the noise of the validation videos" in path


def test_a_running_page_reloads_only_while_a_process_holds_the_run(tmp_path):
    run_dir = copy(RUNNING, tmp_path)
    page = write_report(run_dir).read_text()  # the log says running, but no search holds the run
    assert REFRESH.search(page) is None and "no process is working on the run (killed?)" in page
    assert "<h2>Unfinished: step 4 from 1x12@160 w1 b2.25 d2.2</h2>" in page
    lock = RunDir(run_dir).lock()  # as the search holds it
    try:
        page = write_report(run_dir).read_text()
    finally:
        lock.release()
    assert REFRESH.search(page).group(1) == str(REFRESH_S) and f"reloads every {REFRESH_S} s" in page
    running = section(page, "Running: step 4")
    assert [s for s in re.findall(r"<td>(ok|running|pending)</td>", running)] == \
        ["ok", "ok", "running", "pending", "pending", "pending"]
    assert "ETA" in running


@pytest.mark.parametrize("name, status, reload", [("finished", "finished", False), ("interrupted", "running", False)])
def test_old_recorded_runs_get_a_page_too(tmp_path, capsys, name, status, reload):
    """Runs written before the search wrote pages (and before steps kept decisions)."""
    run_dir = copy(RECORDED / name, tmp_path)
    code, out, err = cli(capsys, "report", run_dir)
    assert code == 0 and out == f"wrote {run_dir / 'report.html'}\n" and err == ""
    page = (run_dir / "report.html").read_text()
    assert f'<span class="badge {status}">{status}</span>' in page
    assert (REFRESH.search(page) is not None) == reload
    assert ("<h2>Unfinished: step 2" in page) == (name == "interrupted")


def _calibration(folder: Path) -> Path:
    """A calibration folder written by calibrate's own writer from made-up scores (not measurements)."""
    from x3dsearch.calibrate.plan import Model
    from x3dsearch.calibrate.report import ModelScores, summarize, write
    from x3dsearch.factors import PRESETS

    models = [ModelScores(Model(name, PRESETS[name]), gflops, {"top1": top1, "prob": [t / 2 for t in top1],
                                                               "log-prob": [-1 / t for t in top1]}, reference)
              for name, gflops, top1, reference in (("x3d-xs", 0.6, [40.0, 44.0], [50.0]),
                                                    ("x3d-s", 1.96, [47.0, 45.0], [55.0]),
                                                    ("x3d-m", 4.73, [52.0, 50.0], [61.0]))]
    summary = summarize(models, {"proxy_budget": "smoke", "reference_budget": "quick", "seeds": 2,
                                 "reference_seeds": 1})
    folder.mkdir()
    write(summary, models, folder / "calibration.yaml", folder / "calibration.png")
    return folder


def test_a_calibration_folder_gets_its_table_and_figure(tmp_path, capsys):
    folder = _calibration(tmp_path / "cal")
    code, out, _ = cli(capsys, "report", folder)
    page = (folder / "report.html").read_text()
    assert code == 0 and out == f"wrote {folder / 'report.html'}\n" and REFRESH.search(page) is None
    assert "x3d-xs" in page and "Spearman" in page and "reference seed vs seed" in page
    figure = re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1)
    assert base64.b64decode(figure) == (folder / "calibration.png").read_bytes()


# --- standing alone ------------------------------------------------------------------------------
@pytest.mark.parametrize("source", [SEED0, RUNNING, RECORDED / "finished", "calibration"])
def test_the_page_loads_nothing_from_outside(tmp_path, source):
    folder = _calibration(tmp_path / "cal") if source == "calibration" else copy(source, tmp_path)
    page = write_report(folder).read_text()
    found = links(page)
    assert found.links and all(link.startswith("data:image/png;base64,") for link in found.links), found.links
    assert not {"script", "link", "iframe", "object", "embed"} & set(found.tags)
    assert "url(" not in page and "@import" not in page


# --- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize("case, message", [
    ("empty", "is neither a search run (no expansion_path.yaml) nor a calibration (no calibration.yaml)"),
    ("missing", "no such directory"),
    ("file", "is not a directory"),
    ("broken_log", "not valid YAML"),
    ("broken_calibration", "is not a calibration summary"),
])
def test_a_folder_that_is_neither_a_run_nor_a_calibration_is_one_line_and_exit_2(tmp_path, capsys, case,
                                                                                 message):
    folder = tmp_path / "folder"
    if case != "missing":
        folder.mkdir()
    if case == "file":
        folder = folder / "notes.txt"
        folder.write_text("hello\n")
    elif case == "broken_log":
        (folder / RUN_LOG_NAME).write_text("steps: [\n")
    elif case == "broken_calibration":
        (folder / "calibration.yaml").write_text("- 1\n- 2\n")
    code, out, err = cli(capsys, "report", folder)
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err, err
    assert not list(tmp_path.rglob("report.html")) and not list(tmp_path.rglob(".report.html.*"))
    with pytest.raises(X3DSearchError):
        write_report(folder)


# --- in a real browser ---------------------------------------------------------------------------
@needs_chromium
def test_chromium_renders_a_recorded_runs_page_with_its_figure(tmp_path):
    """A real smoke search's page (recorded) in headless Chromium: the inline frontier is drawn."""
    page = write_report(copy(RECORDED / "finished", tmp_path))
    pixels = screenshot(page, tmp_path / "page.png")
    assert pixels.shape[:2] == (2200, 1280)
    assert has_colour(pixels, PLOT_BLUE)  # the figure's path and markers: the inline PNG was decoded
    assert (pixels < 128).all(axis=-1).sum() > 2000  # and text was drawn


# --- the search's writer -------------------------------------------------------------------------
def test_the_searchs_writer_draws_in_the_background_and_its_last_request_wins(tmp_path, monkeypatch):
    """LiveReport with a stand-in for the trial runner (no live table: between steps); a real search
    drives it in tests/test_search_run.py."""
    from types import SimpleNamespace

    from x3dsearch.search.live_report import LiveReport

    # earlier tests in this process may have set up the package logger (which stops propagating) or let a
    # library's logging config disable existing loggers: hear the module's logger directly
    from x3dsearch.search import live_report

    heard: list[logging.LogRecord] = []
    catcher = logging.Handler()
    catcher.emit = heard.append  # type: ignore[method-assign]
    monkeypatch.setattr(live_report.log, "disabled", False)
    monkeypatch.setattr(live_report.log, "level", logging.NOTSET)
    live_report.log.addHandler(catcher)
    run_dir = copy(RUNNING, tmp_path)
    lock = RunDir(run_dir).lock()
    report = LiveReport(run_dir, SimpleNamespace(live_table=None))
    try:
        for _ in range(5):  # requests faster than pages are drawn collapse into the latest
            report.write()
        report.close()
        assert REFRESH.search((run_dir / "report.html").read_text())  # running, and the run is held
        log = run_dir / RUN_LOG_NAME
        log.write_text(log.read_text().replace("status: running", "status: interrupted"))
        report = LiveReport(run_dir, SimpleNamespace(live_table=None))
        report.write()
        report.close()
        page = (run_dir / "report.html").read_text()
        assert REFRESH.search(page) is None and '<span class="badge interrupted">' in page
    finally:
        lock.release()
    broken = LiveReport(tmp_path / "gone", SimpleNamespace(live_table=None))
    broken.write()  # a page that cannot be written is a warning, never an error of the search
    broken.close()
    live_report.log.removeHandler(catcher)
    assert any("report.html not written" in r.getMessage() for r in heard)
