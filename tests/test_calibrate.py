"""``x3dsearch calibrate`` through the real CLI, a real local Ray and real videos (tiny dataset, smoke budgets)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from x3dsearch.budget import BUDGET_DIR
from x3dsearch.calibrate.report import ceiling
from x3dsearch.cli.main import main

MODELS = "x2d,frames=2,stride=15,crop=112,width=1,bottleneck=1,depth=1,x3d-xs"


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


def test_the_ceiling_steps_each_side_up_to_its_seeds_and_takes_the_geometric_mean():
    # proxy: r = 0.5 over 3 seeds -> 3 * 0.5 / (1 + 2 * 0.5) = 0.75; reference: 0.5 at one seed stays 0.5
    assert ceiling(0.5, 3, 0.5, 1) == pytest.approx((0.75 * 0.5) ** 0.5)
    assert ceiling(1.0, 3, 1.0, 3) == pytest.approx(1.0)  # noiseless sides cap nothing
    assert ceiling(0.2, 3, 0.3, 3) < ceiling(0.2, 10, 0.3, 3)  # more seeds lift it
    for proxy_r, ref_r in ((None, 0.5), (0.5, None), (0.0, 0.5), (0.5, -0.2), (float("nan"), 0.5)):
        assert ceiling(proxy_r, 3, ref_r, 3) is None  # unmeasured, or seeds that agree on nothing


@pytest.mark.parametrize("extra, message", [
    (["--models", "x2d,x3d-xs"], "at least 3 models"),
    (["--seeds", "1"], "--seeds must be at least 2"),
    (["--reference-budget", "smoke"], "trains no longer than the proxy"),
    (["--models", "x2d,x3d-xs,x9d"], "x9d"),
])
def test_bad_calibrate_input_is_one_line_and_leaves_nothing(capsys, tiny_dataset: Path, tmp_path: Path, extra,
                                                            message):
    out = tmp_path / "cal"
    err = _error(capsys, "--data", str(tiny_dataset), "--budget", "smoke", "--models", MODELS, "--out", str(out),
                 *extra)
    assert message in err and not out.exists()


@pytest.mark.slow
def test_a_smoke_calibration_ranks_models_and_a_rerun_trains_nothing(capsys, tiny_dataset: Path, tmp_path: Path):
    proxy, reference = _budget(tmp_path, "proxy", eval_clips=None), _budget(tmp_path, "reference", epochs=2,
                                                                             eval_clips=None)
    out = tmp_path / "cal"
    args = ["calibrate", "--data", str(tiny_dataset), "--budget", str(proxy), "--reference-budget", str(reference),
            "--seeds", "2", "--reference-seeds", "1", "--models", MODELS, "--out", str(out)]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    printed = capsys.readouterr().out
    assert exit_info.value.code == 0
    report = yaml.safe_load((out / "calibration.yaml").read_text())
    assert [m["name"] for m in report["models"]] == ["x2d", "t2_s15_c112_w1_b1_d1", "x3d-xs"]
    for m in report["models"]:
        assert set(m["proxy"]) == {"top1", "prob", "log-prob"} and len(m["proxy"]["top1"]["seeds"]) == 2
        assert len(m["reference"]["seeds"]) == 1 and 0 <= m["reference"]["top1"] <= 100
    for key in ("spearman", "spearman_ci", "kendall", "seed_sd", "seed_spearman", "spearman_one_seed", "ceiling"):
        assert set(report[key]) == {"top1", "prob", "log-prob"}
    # one reference seed: its seed-to-seed agreement, and so the ceiling, cannot be measured
    assert report["reference_seed_spearman"] is None and set(report["ceiling"].values()) == {None}
    assert report["proxy_budget"] == "proxy" and report["reference_budget"] == "reference"
    assert (out / "calibration.png").stat().st_size > 1000 and "Spearman" in printed
    trainings = sorted(p.name for p in (out / "runs").glob("*/*"))
    assert len(trainings) == 9  # 3 models x 2 proxy seeds, 3 models x 1 reference seed
    logs = {p: p.read_text() for p in (out / "runs").glob("*/*/train.log")}
    with pytest.raises(SystemExit) as exit_info:  # a rerun finds every training finished
        main(args)
    assert exit_info.value.code == 0
    assert {p: p.read_text() for p in (out / "runs").glob("*/*/train.log")} == logs
    assert yaml.safe_load((out / "calibration.yaml").read_text()) == report
