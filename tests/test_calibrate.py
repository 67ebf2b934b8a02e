"""``x3dsearch calibrate`` through the real CLI, a real Ray and real videos (tiny dataset, smoke budgets)."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from x3dsearch.budget import BUDGET_DIR
import numpy as np

from x3dsearch.calibrate.honesty import honesty, pair_calls, pair_noise
from x3dsearch.calibrate.plan import Model
from x3dsearch.calibrate.reliability import seed_reliability
from x3dsearch.calibrate.report import ModelScores, summarize
from x3dsearch.factors import Factors, preset
from x3dsearch.cli.main import main

from search_helpers import run_cli

MODELS = "x2d,frames=2,stride=15,crop=112,width=1,bottleneck=1,depth=1,x3d-xs"
#: The calibration that trains: X3D-XS's bottleneck and depth at X2D's clip (1x30@112, about a fifth of
#: X3D-XS's GFLOPs), so the 13 trainings take seconds each; still grown from X2D by two axes at once.
#: (Two factor strings in a row would read as one: x2d stands between them.)
TRAINED_MODELS = ("frames=2,stride=15,crop=112,width=1,bottleneck=1,depth=1,x2d,"
                  "frames=1,stride=30,crop=112,width=1,bottleneck=2.25,depth=2.2")
XS_AT_X2D = "t1_s30_c112_w1_b2.25_d2.2"


def _budget(folder: Path, name: str, **changes) -> Path:
    data = {**yaml.safe_load((BUDGET_DIR / "smoke.yaml").read_text()), **changes}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _error(capsys: pytest.CaptureFixture, *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(["calibrate", *args])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert err.count("\n") == 1 and err.startswith("x3dsearch: error: ") and "Traceback" not in err, err
    return err


# Hand-written calibration: 4 models, 2 seeds, 10 videos per split; every video of a training scores the
# same, so no video resample moves a difference and each one-seed bound is the difference itself.
PROXY = {"a": (80.0, 60.0), "b": (50.0, 50.0), "c": (50.0, 55.0), "d": (50.0, 50.0)}
REFERENCE = {"a": 70.0, "b": 60.0, "c": 40.0, "d": 30.0}


def _hand_models() -> list[ModelScores]:
    out = []
    for name, seeds in PROXY.items():
        rows = np.array([[v] * 10 for v in seeds])
        ref = np.array([[REFERENCE[name]] * 10] * 2)
        out.append(ModelScores(Model(name, preset("x2d")), 0.02, {c: list(seeds) for c in ("top1", "prob", "log-prob")},
                               [REFERENCE[name]] * 2, proxy_videos={c: rows for c in ("top1", "prob", "log-prob")},
                               reference_videos=ref))
    return out


def test_one_seeds_calls_are_counted_against_hand_worked_answers():
    """Pairs (first - second) at seeds 0 / 1, against the multi-seed mean and the reference's sign:
    a-b +30/+10 (mean 20): called twice, right twice, never covered; a-c +30/+5 (17.5) and a-d +30/+10
    (20): the same; b-c 0/-5 (-2.5): seed 1 calls c, the reference says b: wrong; b-d 0/0 (0): covered
    twice, never called; c-d 0/+5 (2.5): seed 1 calls c, right. So 12 judged, 8 called, 7 right, 2
    covered: coverage 1/6, power 2/3, precision 7/8."""
    values = [np.array([[v] * 10 for v in seeds]) for seeds in PROXY.values()]
    calls = pair_calls(values, list(REFERENCE.values()), noise=None)
    figures = honesty(calls, models=4)["figures"]
    assert figures["coverage"]["value"] == pytest.approx(1 / 6)
    assert figures["power"]["value"] == pytest.approx(2 / 3)
    assert figures["precision"]["value"] == pytest.approx(7 / 8)
    assert (figures["judged"], figures["called"], figures["pairs"]) == (12, 8, 6)
    low, high = figures["precision"]["ci"]
    assert low <= 7 / 8 <= high and 0 <= low and high <= 1
    # the SD over seeds of each pair's difference: variances 200, 312.5, 200, 12.5, 0, 12.5 (ddof 1)
    assert pair_noise(values) == pytest.approx(np.sqrt(737.5 / 6))


def test_the_summary_has_hand_worked_correlations_and_nulls_with_reasons():
    """Proxy means a 70, b 50, c 52.5, d 50 against the reference 70, 60, 40, 30: Spearman of the ranks
    (4, 1.5, 3, 1.5) and (4, 3, 2, 1) is 3 / sqrt(4.5 x 5) = 0.632; Kendall's tau-b: 4 concordant, 1
    discordant (b-c), 1 tied in the proxy (b-d): (4 - 1) / sqrt(6 x 5) = 0.548."""
    summary = summarize(_hand_models(), {"proxy_budget": "hand", "data": {"root": "hand-written"}})
    assert summary["spearman"]["top1"] == pytest.approx(3 / np.sqrt(22.5))
    assert summary["kendall"]["top1"] == pytest.approx(3 / np.sqrt(30))
    assert summary["noise"]["sd"]["top1"] == pytest.approx(np.sqrt(737.5 / 6))
    assert summary["noise"]["budget"] == "hand" and summary["noise"]["videos"] == 10
    # the two reference seeds rank the models the same way
    assert summary["reference_seed_spearman"] == pytest.approx(1.0)
    assert "ceiling" not in summary
    # one seed's reliability: MS(model) = 559.375 / 3, MS(rest) = 184.375 / 3 (residuals +-8.125, +-1.875,
    # +-4.375, +-1.875), so ICC(C,1) = (559.375 - 184.375) / (559.375 + 184.375) = 60/119
    reliability = summary["reliability"]["top1"]
    assert reliability["one_seed"] == pytest.approx(60 / 119)
    assert reliability["model_sd"] == pytest.approx(np.sqrt(62.5))
    assert reliability["training_sd"] == pytest.approx(np.sqrt(184.375 / 3))
    # a calibration where every model scored the same: nulls with reasons, never NaN
    flat = _hand_models()
    for m in flat:
        m.proxy = {c: [50.0, 50.0] for c in m.proxy}
        m.proxy_videos = {c: np.full((2, 10), 50.0) for c in m.proxy}
    flat_summary = summarize(flat, {"proxy_budget": "hand"})
    assert flat_summary["spearman"]["top1"] is None and flat_summary["kendall"]["top1"] is None
    assert flat_summary["undefined"]["spearman.top1"] == "every model scored the same"
    assert flat_summary["honesty"]["top1"]["precision"] is None
    assert "no pair was called" in flat_summary["undefined"]["honesty.top1.precision"]
    assert flat_summary["reliability"]["top1"] is None and "exactly" in flat_summary["undefined"]["reliability.top1"]
    assert "nan" not in yaml.safe_dump(flat_summary).lower()


def test_inherit_grows_every_proxy_training_but_the_seed_models_from_its_training_of_the_same_seed():
    """--proxy-init inherit: x2d trains from scratch at seeds 0 and 1; the two other models at seed s start
    from x2d's training at seed s, named apart (-inherit); the references stay from scratch."""
    from x3dsearch.budget import load_budget
    from x3dsearch.calibrate.plan import inherit_parent, parse_models, trials
    from x3dsearch.cli.options import split_models

    models = parse_models(split_models(MODELS))
    parent = inherit_parent(models, preset("x2d"))
    assert parent.name == "x2d"
    proxy = trials(models, load_budget("smoke"), 2, 3, parent)
    assert [(t.name, t.seed, t.init, t.parent) for t in proxy] == [
        ("smoke/x2d-s0", 0, "scratch", None), ("smoke/x2d-s1", 1, "scratch", None),
        ("smoke/t2_s15_c112_w1_b1_d1-s0-inherit", 0, "inherit", "smoke/x2d-s0"),
        ("smoke/t2_s15_c112_w1_b1_d1-s1-inherit", 1, "inherit", "smoke/x2d-s1"),
        ("smoke/x3d-xs-s0-inherit", 0, "inherit", "smoke/x2d-s0"),
        ("smoke/x3d-xs-s1-inherit", 1, "inherit", "smoke/x2d-s1")]
    # scratch: the same names as before --proxy-init, so an earlier calibration's trainings are found again
    scratch = trials(models, load_budget("smoke"), 2, 3)
    assert [t.name for t in scratch] == ["smoke/x2d-s0", "smoke/x2d-s1", "smoke/t2_s15_c112_w1_b1_d1-s0",
                                         "smoke/t2_s15_c112_w1_b1_d1-s1", "smoke/x3d-xs-s0", "smoke/x3d-xs-s1"]
    assert {(t.init, t.parent) for t in scratch} == {("scratch", None)}


@pytest.mark.parametrize("extra, message", [
    (["--models", "x2d,x3d-xs"], "at least 3 models"),
    (["--seeds", "1"], "--seeds must be at least 2"),
    (["--reference-budget", "smoke"], "trains no longer than the proxy"),
    (["--models", "x2d,x3d-xs,x9d"], "x9d"),
    (["--proxy-init", "warm"], "Invalid value for '--proxy-init'"),
    (["--proxy-init", "inherit", "--models", "x3d-xs,x3d-s,frames=2,stride=15,crop=112,width=1,bottleneck=1,depth=1"],
     "grows every model from the seed model 1x30@112 w1 b1 d1 (x2d), which --models lacks: add x2d"),
    (["--proxy-init", "inherit", "--models", "x2d,x3d-xs,frames=1,stride=30,crop=112,width=0.5,bottleneck=1,depth=1"],
     "model t1_s30_c112_w0.5_b1_d1: cannot grow 1x30@112 w1 b1 d1 -> 1x30@112 w0.5 b1 d1: stem width shrinks"),
])
def test_bad_calibrate_input_is_one_line_and_leaves_nothing(capsys, tiny_dataset: Path, tmp_path: Path, extra,
                                                            message):
    out = tmp_path / "cal"
    err = _error(capsys, "--data", str(tiny_dataset), "--budget", "smoke", "--models", MODELS, "--out", str(out),
                 *extra)
    assert message in err and not out.exists()


def _calibrate(*args: str) -> subprocess.CompletedProcess:
    proc = run_cli("calibrate", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_a_smoke_calibration_ranks_models_and_a_rerun_trains_nothing(tiny_dataset: Path, shared_ray: str,
                                                                    tmp_path: Path):
    """Three calibrations in one folder, each a real CLI process on the session's shared Ray head: the first
    trains, the second finds every training finished, the third adds the grown proxy trainings."""
    proxy, reference = _budget(tmp_path, "proxy", eval_clips=None), _budget(tmp_path, "reference", epochs=2,
                                                                             eval_clips=None)
    out = tmp_path / "cal"
    args = ["--data", str(tiny_dataset), "--budget", str(proxy), "--reference-budget", str(reference),
            "--seeds", "2", "--reference-seeds", "1", "--models", TRAINED_MODELS, "--out", str(out),
            "--address", shared_ray]
    proc = _calibrate(*args)
    printed = proc.stdout
    report = yaml.safe_load((out / "calibration.yaml").read_text())
    assert [m["name"] for m in report["models"]] == ["t2_s15_c112_w1_b1_d1", "x2d", XS_AT_X2D]
    for m in report["models"]:
        assert set(m["proxy"]) == {"top1", "prob", "log-prob"} and len(m["proxy"]["top1"]["seeds"]) == 2
        assert len(m["reference"]["seeds"]) == 1 and 0 <= m["reference"]["top1"] <= 100
    for key in ("spearman", "spearman_ci", "kendall", "kendall_ci", "seed_sd", "seed_spearman", "spearman_one_seed"):
        assert set(report[key]) == {"top1", "prob", "log-prob"}
    # one reference seed: its seed-to-seed agreement cannot be measured, and says so
    assert report["reference_seed_spearman"] is None
    assert report["undefined"]["reference_seed_spearman"] == "one seed"
    assert set(report["noise"]["sd"]) == {"top1", "prob", "log-prob"} and report["noise"]["seeds"] == 2
    assert set(report["honesty"]) <= {"top1", "prob", "log-prob"}
    for criterion, entry in report["reliability"].items():  # the models x seeds table, not its transpose
        table = np.array([m["proxy"][criterion]["seeds"] for m in report["models"]])
        if entry is None:
            assert f"reliability.{criterion}" in report["undefined"]
        else:
            assert entry["one_seed"] == pytest.approx(seed_reliability(table).one_seed)
            assert (entry["models"], entry["seeds"]) == (3, 2)
    assert report["proxy_budget"] == "proxy" and report["reference_budget"] == "reference"
    assert (out / "calibration.png").stat().st_size > 1000 and "Spearman" in printed
    trainings = sorted(p.name for p in (out / "runs").glob("*/*"))
    assert len(trainings) == 9  # 3 models x 2 proxy seeds, 3 models x 1 reference seed
    logs = {p: p.read_text() for p in (out / "runs").glob("*/*/train.log")}
    _calibrate(*args)  # a rerun finds every training finished
    assert {p: p.read_text() for p in (out / "runs").glob("*/*/train.log")} == logs
    assert yaml.safe_load((out / "calibration.yaml").read_text()) == report
    assert report["proxy_init"] == "scratch" and report["proxy_parent"] is None
    assert "proxy proxy: from scratch; reference reference: from scratch" in printed

    # --proxy-init inherit into the same folder: only the two grown models' proxy trainings are new (named
    # -inherit, the scratch ones untouched); x2d's own proxy trainings and every reference are shared
    printed = _calibrate(*args, "--proxy-init", "inherit").stdout
    assert {p: p.read_text() for p in (out / "runs").glob("*/*/train.log") if p in logs} == logs  # none again
    grown = sorted(p.name for p in (out / "runs").glob("*/*") if p.name.endswith("-inherit"))
    assert grown == ["t1_s30_c112_w1_b2.25_d2.2-s0-inherit", "t1_s30_c112_w1_b2.25_d2.2-s1-inherit",
                     "t2_s15_c112_w1_b1_d1-s0-inherit", "t2_s15_c112_w1_b1_d1-s1-inherit"]
    for name in grown:  # the trainer's own record: grown from x2d's proxy training of the same seed
        folder, seed = out / "runs" / "proxy" / name, name[-len("0-inherit")]
        parent = (out / "runs" / "proxy" / f"x2d-s{seed}" / "model.pt").resolve()
        assert json.loads((folder / "config.json").read_text())["init"] == f"../x2d-s{seed}/model.pt"
        model = next(m for m in report["models"] if name.startswith(m["name"]))
        assert (f"init: grew 1x30@112 w1 b1 d1 -> {Factors.from_dict(model['factors']).short()} from {parent}"
                in (folder / "train.log").read_text()), name
    inherited = yaml.safe_load((out / "calibration.yaml").read_text())
    assert (inherited["proxy_init"], inherited["proxy_parent"]) == ("inherit", "x2d")
    assert yaml.safe_load((out / "config.yaml").read_text())["proxy_init"] == "inherit"
    assert inherited["models"][1]["proxy"] == report["models"][1]["proxy"]  # x2d: the same trainings
    assert [m["reference"] for m in inherited["models"]] == [m["reference"] for m in report["models"]]
    assert ("proxy proxy: proxy init inherit: every model but x2d grown from x2d's training of the same seed; "
            "reference reference: from scratch") in printed
