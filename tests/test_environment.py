"""The environment record a run stores in ``config.yaml``'s ``versions``."""
from __future__ import annotations

import platform
from pathlib import Path

import torch
import yaml

from x3dsearch import __version__
from x3dsearch.utils import environment
from x3dsearch.utils.environment import (RESULT_KEYS, cpu_model, package_versions, result_changes,
                                         run_environment, torch_build)
from x3dsearch.utils.io import atomic_write_yaml

X86 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 23
model\t\t: 1
model name\t: AMD EPYC
stepping\t: 2
flags\t\t: fpu sse4_2 avx avx2 fma avx512f

processor\t: 1
vendor_id\t: AuthenticAMD
model name\t: Another CPU
flags\t\t: fpu
"""
ARM = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes
CPU implementer\t: 0x41

processor\t: 1
BogoMIPS\t: 50.00

Hardware\t: BCM2835
"""


def test_the_record_holds_packages_cpu_torch_build_and_threads(tmp_path):
    record = run_environment(threads=3, gpus=False)
    assert record["x3dsearch"] == __version__
    assert record["python"] == platform.python_version()
    assert record["torch"] == str(torch.__version__)
    assert {"ray", "fvcore", "decord", "numpy"} <= set(record)
    assert record["threads"] == 3
    assert isinstance(record["cpu"], str) and record["cpu"]
    assert set(RESULT_KEYS) <= set(record)
    assert record["gpu"] is None
    # config.yaml stores it as YAML: it must come back equal.
    atomic_write_yaml(tmp_path / "config.yaml", {"versions": record})
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["versions"] == record


def test_kernel_overrides_are_recorded(monkeypatch):
    for name in environment.KERNEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert run_environment(gpus=False)["kernel_env"] == {}
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "SSE41")
    assert run_environment(gpus=False)["kernel_env"] == {"ONEDNN_MAX_CPU_ISA": "SSE41"}


def test_threads_default_to_this_process():
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert run_environment(gpus=False)["threads"] == 1
    finally:
        torch.set_num_threads(previous)


def test_package_versions_keep_what_searches_recorded_so_far():
    versions = package_versions()
    assert {"x3dsearch", "python", "torch", "ray", "fvcore", "decord", "numpy"} <= set(versions)
    assert all(isinstance(v, str) for v in versions.values())


def test_torch_build_names_its_compute_libraries():
    build = torch_build()
    assert build["cuda"] == torch.version.cuda
    if not torch.cuda.is_available():
        assert build["cudnn"] is None or torch.backends.cudnn.is_available()
    if torch.backends.mkldnn.is_available():
        assert build["onednn"] and build["onednn"][0].isdigit()
    assert build["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert build["blas"] is None or isinstance(build["blas"], str)


def test_cpu_model_from_cpuinfo(tmp_path: Path):
    path = tmp_path / "cpuinfo"
    path.write_text(X86)
    assert cpu_model(path) == ("AMD EPYC (AuthenticAMD family 23 model 1 stepping 2)",
                               ["sse4_2", "avx", "avx2", "fma", "avx512f"])
    path.write_text(ARM)
    assert cpu_model(path) == ("BCM2835", [])


def test_cpu_model_falls_back_without_cpuinfo(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(environment.platform, "processor", lambda: "arm")
    assert cpu_model(tmp_path / "missing") == ("arm", [])
    monkeypatch.setattr(environment.platform, "processor", lambda: "")
    monkeypatch.setattr(environment.platform, "machine", lambda: "x86_64")
    assert cpu_model(tmp_path / "missing") == ("x86_64", [])


def test_result_changes_name_what_may_change_the_numbers():
    stored = run_environment(threads=1, gpus=False)
    assert result_changes(stored, dict(stored)) == []
    current = {**stored, "threads": 2, "cpu": "Other CPU", "numpy": "0.0"}
    assert result_changes(stored, current) == [f"cpu: {stored['cpu']} -> Other CPU", "threads: 1 -> 2"]
    # A run recorded before these keys existed only had package versions: nothing to compare.
    old = {"x3dsearch": "0.1.0", "torch": stored["torch"]}
    assert result_changes(old, current) == []


def test_a_search_records_its_trials_environment_and_a_resume_names_what_changed():
    from x3dsearch.search.settings import environment_changes, trial_environment

    stored = trial_environment((2.0, 0.0))  # what config.yaml keeps as versions
    assert stored["threads"] == 2 and stored["gpu"] is None and stored["cpu"]
    assert environment_changes({"versions": stored}, (2.0, 0.0)) == []
    assert environment_changes({"versions": stored}, (1.0, 0.0)) == ["threads: 2 -> 1"]
    assert environment_changes({"versions": {"torch": stored["torch"]}}, (1.0, 0.0)) == []  # an older run
