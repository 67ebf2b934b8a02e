"""Bad input to ``x3dsearch expand`` / ``resume``: one line on stderr, exit code 2, nothing started."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from x3dsearch.search.space import DEFAULT_SPACE

from cli_helpers import invoke
from ray_nodes import free_port


def _error(capsys: pytest.CaptureFixture, *args: str) -> str:
    proc = invoke(capsys, *args)
    err = proc.stderr
    assert proc.returncode == 2, err
    assert err.count("\n") == 1 and err.startswith("x3dsearch: error: ") and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("args, message", [
    (["--target-gflops", "0"], "must be positive"),
    (["--target-gflops", "-1.5"], "must be positive"),
    (["--target-gflops", "lots"], "'lots' is not a valid float"),
    (["--target-gflops", "0.01"], "below the seed's"),
    ([], "--target-gflops is required"),
    (["--target-gflops", "1", "--criterion", "best"], "Invalid value for '--criterion'"),
    (["--target-gflops", "1", "--contract-axes", "some"], "Invalid value for '--contract-axes'"),
    (["--target-gflops", "1", "--proxy-init", "warm"], "Invalid value for '--proxy-init'"),
    (["--target-gflops", "1", "--cpus-per-trial", "0"], "Invalid value for '--cpus-per-trial'"),
    (["--target-gflops", "1", "--gpus-per-trial", "-1"], "Invalid value for '--gpus-per-trial'"),
    (["--target-gflops", "1", "--budget", "huge"], "unknown budget 'huge'"),
    (["--target-gflops", "1", "--data", "/nonexistent/videos"], "data root /nonexistent/videos does not exist"),
    (["--target-gflops", "1", "--address", "nowhere"], "must be HOST:PORT or auto"),
    (["--target-gflops", "1", "--space", "/nonexistent/space.yaml"], "search space not found"),
    (["--target-gflops", "1", "--bogus"], "No such option '--bogus'"),
])
def test_bad_expand_input_is_one_line_and_starts_nothing(capsys, tmp_path: Path, args: list[str], message: str):
    run_dir = tmp_path / "run"
    err = _error(capsys, "expand", *args, "--run-dir", str(run_dir))
    assert message in err
    assert not run_dir.exists()


def test_unreachable_ray_address(capsys, tmp_path: Path):
    port = free_port()  # nothing listens there
    err = _error(capsys, "expand", "--target-gflops", "1", "--address", f"127.0.0.1:{port}", "--run-dir",
                 str(tmp_path / "run"))
    assert f"cannot reach a Ray cluster at 127.0.0.1:{port}" in err
    assert not (tmp_path / "run").exists()


def test_malformed_space_names_the_key(capsys, tmp_path: Path):
    data = yaml.safe_load(DEFAULT_SPACE.read_text())
    data["axes"]["x-depth"]["step"] = -0.1
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(data))
    err = _error(capsys, "expand", "--target-gflops", "1", "--space", str(space), "--run-dir", str(tmp_path / "r"))
    assert "'axes.x-depth.step'" in err
    data = yaml.safe_load(DEFAULT_SPACE.read_text())
    data["proxy_init"] = "warm"
    space.write_text(yaml.safe_dump(data))
    err = _error(capsys, "expand", "--target-gflops", "1", "--space", str(space), "--run-dir", str(tmp_path / "r"))
    assert "'proxy_init' must be one of scratch, inherit, got 'warm'" in err and not (tmp_path / "r").exists()


def test_an_existing_run_dir_needs_resume(capsys, tmp_path: Path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("mine\n")
    err = _error(capsys, "expand", "--target-gflops", "1", "--run-dir", str(run_dir))
    assert "already exists and is not empty" in err and "x3dsearch resume" in err
    assert sorted(p.name for p in run_dir.iterdir()) == ["notes.txt"]


def test_resume_needs_a_search_run(capsys, tmp_path: Path):
    assert "does not exist" in _error(capsys, "resume", str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    assert "is not a search run" in _error(capsys, "resume", str(tmp_path / "empty"))
    assert "is not a search run" in _error(capsys, "expand", "--resume", str(tmp_path / "empty"))


@pytest.mark.slow
def test_more_gpus_per_trial_than_the_cluster_has_is_refused_before_the_run_starts(tiny_dataset: Path,
                                                                                    tmp_path: Path):
    import torch

    proc = subprocess.run([str(Path(sys.executable).parent / "x3dsearch"), "expand", "--target-gflops", "0.06",
                           "--data", str(tiny_dataset), "--budget", "smoke", "--gpus-per-trial", "64",
                           "--run-dir", str(tmp_path / "run")], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    assert proc.stderr == f"x3dsearch: error: --gpus-per-trial 64 is more than the cluster's {gpus} GPUs\n"
    assert not (tmp_path / "run").exists()


def test_a_trial_that_cannot_see_the_data_says_so_in_one_line(tmp_path: Path):
    from x3dsearch.errors import X3DSearchError
    from x3dsearch.search.trainable import check_visible

    check_visible(str(tmp_path), tmp_path, "10.0.0.5/1a2b3c4d")  # both visible: nothing to say
    with pytest.raises(X3DSearchError) as info:
        check_visible(str(tmp_path / "on-the-head-node-only"), tmp_path, "10.0.0.5/1a2b3c4d")
    message = str(info.value)
    assert "is not visible on node 10.0.0.5/1a2b3c4d " in message and "every node sees" in message
    assert "\n" not in message


def test_the_search_log_names_each_live_node_with_what_it_offers():
    """``ray.nodes()`` entries, hand-written in the shape Ray 2.x returns (the fields read, no more)."""
    from x3dsearch.search.cluster import _describe_nodes, node_name

    nodes = [{"NodeID": "1a2b3c4d" + "0" * 48, "Alive": True, "NodeManagerAddress": "10.0.0.5",
              "Resources": {"CPU": 8.0, "node:__internal_head__": 1.0, "memory": 1e9}},
             {"NodeID": "5e6f7a8b" + "1" * 48, "Alive": True, "NodeManagerAddress": "10.0.0.6",
              "Resources": {"CPU": 16.0, "GPU": 2.0}},
             {"NodeID": "deadbeef" + "2" * 48, "Alive": False, "NodeManagerAddress": "10.0.0.7",
              "Resources": {"CPU": 4.0}}]
    assert _describe_nodes(nodes) == ("10.0.0.5/1a2b3c4d (head, 8 CPUs)", "10.0.0.6/5e6f7a8b (16 CPUs, 2 GPUs)")
    assert node_name("10.0.0.6", "5e6f7a8b" + "1" * 48) == "10.0.0.6/5e6f7a8b"


def test_bad_baseline_input_is_one_line(capsys, tmp_path: Path):
    assert "does not exist" in _error(capsys, "baseline", str(tmp_path / "nowhere"), "--presets", "x3d-xs")
    assert "unknown preset 'x9d'" in _error(capsys, "baseline", str(tmp_path), "--presets", "x9d")


RECORDED = Path(__file__).parent / "fixtures" / "recorded_runs"


def _recorded_run(tmp_path: Path, data: Path, **config_changes) -> Path:
    """The recorded finished run (a real one, kept without model.pt files), pointed at the identical
    tiny dataset, its config changed as asked."""
    import shutil

    run_dir = tmp_path / "finished"
    shutil.copytree(RECORDED / "finished", run_dir)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["data"]["spec"] = config["data"]["root"] = str(data)
    (run_dir / "config.yaml").write_text(yaml.safe_dump({**config, **config_changes}, sort_keys=False))
    return run_dir


def _files(folder: Path) -> dict[str, bytes]:
    """Every file's bytes, but the lock's (taking the lock leaves an empty .lock behind)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def test_bad_baseline_proxy_init_is_one_line_and_leaves_the_run_as_it_was(capsys, tiny_dataset: Path,
                                                                          tmp_path: Path):
    """An unknown init, --random 0; under inherit (here the run's own, from its config): the seed model's
    weights gone (the recorded run kept none), a model the seed cannot grow into, a baseline trained before
    with the other init. Each before Ray starts: the run's state, log and search.log untouched."""
    from x3dsearch.runlog import RunDir, RunInfo
    from x3dsearch.runlog.run import Baseline
    from x3dsearch.search.baseline import _baseline
    from x3dsearch.factors import preset

    run_dir = _recorded_run(tmp_path, tiny_dataset, proxy_init="inherit")
    before = _files(run_dir)
    assert "Invalid value for '--proxy-init'" in _error(capsys, "baseline", str(run_dir), "--presets", "x3d-xs",
                                                        "--proxy-init", "warm")
    assert "Invalid value for '--random'" in _error(capsys, "baseline", str(run_dir), "--random", "0")
    weights = run_dir.resolve() / "candidates" / "seed" / "model.pt"
    err = _error(capsys, "baseline", str(run_dir), "--presets", "x3d-xs")
    assert f"starts every baseline from the seed model's weights, but {weights} does not exist" in err
    assert "give --proxy-init scratch" in err
    assert _error(capsys, "baseline", str(run_dir), "--random", "1") == err  # random ones start alike
    assert _files(run_dir) == before

    weights.write_bytes(b"not read before training")  # present: what is checked next
    before = _files(run_dir)
    narrow = tmp_path / "narrow" / "final_model.yaml"
    narrow.parent.mkdir()
    narrow.write_text(yaml.safe_dump({"factors": {**preset("x2d").to_dict(), "width": 0.5}}))
    err = _error(capsys, "baseline", str(run_dir), "--presets", "x3d-xs", "--models", str(narrow))
    # the recorded run's seed model is 1x12 (its space then)
    assert ("--proxy-init inherit: baseline narrow: cannot grow 1x12@112 w1 b1 d1 -> 1x30@112 w0.5 b1 d1: stem "
            "width shrinks from 24 to 16") in err
    assert _files(run_dir) == before

    folder = RunDir(run_dir)  # a baseline trained from scratch before (its record written here by hand)
    run = folder.load(RunInfo(0.06, 0, "x3d", "smoke-ckpt", None))
    scratch = _baseline("x3d-xs", preset("x3d-xs"), 0, 1, 3, run.seed_trial, "scratch")
    run.baselines.append(Baseline(scratch.name, scratch.trial))
    folder.save(run)
    before = _files(run_dir)
    err = _error(capsys, "baseline", str(run_dir), "--presets", "x3d-xs")
    assert "baseline x3d-xs was trained with --proxy-init scratch, and this call asks for inherit" in err
    assert _files(run_dir) == before


def test_resuming_an_inherit_run_whose_parent_weights_are_gone_is_one_line_and_touches_nothing(
        capsys, tiny_dataset: Path, tmp_path: Path):
    """The recorded run killed in step 2, its step-2 trials recorded (here, by hand) as grown from the
    step's start, whose model.pt is gone: resume and expand --resume refuse before Ray starts, naming the
    file, and the state, the log and search.log stay as they were."""
    import shutil

    from x3dsearch.runlog import RunDir, RunInfo

    run_dir = tmp_path / "interrupted"
    shutil.copytree(RECORDED / "interrupted", run_dir)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["data"]["spec"] = config["data"]["root"] = str(tiny_dataset)
    config["proxy_init"] = "inherit"
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    folder = RunDir(run_dir)
    run = folder.load(RunInfo(0.06, 0, "x3d", "smoke-ckpt", None, proxy_init="inherit"))
    step = run.steps[1]
    for trial in step.trained:
        trial.init, trial.parent = "inherit", step.start.name
    folder.save(run)
    before = _files(run_dir)
    weights = run_dir.resolve() / "candidates" / step.start.name / "model.pt"
    for args in (["resume", str(run_dir)], ["expand", "--resume", str(run_dir)]):
        err = _error(capsys, *args)
        assert f"starts from the weights of {step.start.name} (--proxy-init inherit), but {weights} does not " \
               f"exist" in err, err
        assert _files(run_dir) == before


def test_a_baseline_and_its_repeats_start_as_the_runs_first_step_candidates_do():
    """Under inherit every training of a baseline, repeats too, starts from the seed model's first training
    (as a first-step candidate's repeats do), repeat k with seed 5 + 100003 k; under scratch from nothing."""
    from x3dsearch.factors import preset
    from x3dsearch.runlog import Trial
    from x3dsearch.search.baseline import _baseline

    seed = Trial("seed", None, preset("x2d"), 0.0198, seed=5)
    grown = _baseline("x3d-xs", preset("x3d-xs"), 5, 3, 3, seed, "inherit").trial
    assert [(t.name, t.seed, t.repeat, t.init, t.parent) for t in grown.runs] == [
        ("baseline-x3d-xs", 5, 0, "inherit", "seed"), ("baseline-x3d-xs-r1", 100008, 1, "inherit", "seed"),
        ("baseline-x3d-xs-r2", 200011, 2, "inherit", "seed")]
    scratch = _baseline("x3d-xs", preset("x3d-xs"), 5, 2, 3, seed, "scratch").trial
    assert [(t.init, t.parent) for t in scratch.runs] == [("scratch", None)] * 2


def test_a_bad_noise_file_is_one_line_and_starts_nothing(capsys, tmp_path: Path):
    """--noise: a missing file, a file without a noise block (hand-written here), broken YAML, or a model
    measured on other criteria."""
    no_block = tmp_path / "other.yaml"
    no_block.write_text("spearman: {top1: 0.3}\n")
    broken = tmp_path / "broken.yaml"
    broken.write_text("noise: [unclosed\n")
    prob_only = tmp_path / "prob.yaml"
    prob_only.write_text("noise: {sd: {prob: 5.0}, budget: quick, data: synthetic}\n")
    for noise, message in ((tmp_path / "missing.yaml", "no such file"), (no_block, "has no noise block"),
                           (broken, "not valid YAML"), (prob_only, "measured on other criteria (prob), not top1")):
        run_dir = tmp_path / "run"
        err = _error(capsys, "expand", "--target-gflops", "1", "--noise", str(noise), "--run-dir", str(run_dir))
        assert message in err and not run_dir.exists(), err


def test_proxy_init_comes_from_the_flag_else_the_space_and_a_resume_keeps_it(tmp_path: Path):
    """--proxy-init overrides the space's proxy_init; config.yaml records the rule in force (a config
    written before the setting reads as scratch), and expand --resume refuses another one."""
    from x3dsearch.errors import X3DSearchError
    from x3dsearch.search.settings import SearchSettings, check_same, stored_settings
    from x3dsearch.search.space import SearchSpace, load_space

    space = load_space()
    inheriting = SearchSpace.from_dict({**space.to_dict(), "proxy_init": "inherit"})
    assert (space.proxy_init, inheriting.proxy_init) == ("scratch", "inherit")
    assert SearchSettings(0.06, space).init_rule == "scratch"
    assert SearchSettings(0.06, inheriting).init_rule == "inherit"
    assert SearchSettings(0.06, inheriting, proxy_init="scratch").init_rule == "scratch"
    assert SearchSettings(0.06, space, proxy_init="inherit").init_rule == "inherit"

    config = {"target_gflops": 0.06, "space": space.to_dict(), "data": {"spec": "synthetic"}, "seed": 0,
              "criterion": "top1", "contract_axes": "own", "budget": {"name": "smoke"}, "proxy_init": "inherit"}
    stored = stored_settings(config, "config.yaml")
    assert stored.init_rule == "inherit"
    old_space = {k: v for k, v in space.to_dict().items() if k != "proxy_init"}  # written before the setting
    old = stored_settings({**{k: v for k, v in config.items() if k != "proxy_init"}, "space": old_space}, "c")
    assert old.init_rule == "scratch"
    check_same(tmp_path, stored, SearchSettings(0.06, space, proxy_init="inherit"), config,
               frozenset({"proxy_init"}))
    check_same(tmp_path, stored, SearchSettings(0.06, space), config, frozenset())  # not given: kept
    with pytest.raises(X3DSearchError) as info:
        check_same(tmp_path, stored, SearchSettings(0.06, space, proxy_init="scratch"), config,
                   frozenset({"proxy_init"}))
    assert str(info.value) == (f"refusing to resume {tmp_path}: it searches with --proxy-init inherit, not scratch "
                               f"(start a new --run-dir for another search)")
