"""What a search is (settings a resume must not change) and where it runs (resources that may).

Also every check that can refuse a search before anything starts, the record
of both in ``config.yaml``, and the check that a resume asks for the same
search as the one stored.
"""
from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..budget import Budget, load_budget
from ..criteria import CRITERIA, TIE_RULES
from ..data import class_names, has_split, load_split, resolve_data
from ..errors import ConfigError, X3DSearchError
from ..runlog import RunInfo
from ..runlog.trial import check_proxy_init
from ..utils.environment import result_changes, run_environment
from .cluster import Resources
from ..latency import LatencyConfig
from ..noise import noise_to_config
from ..simultaneous import NoiseModel
from .measure import MEASURES, Measure, get_measure
from .plan import check_target as check_measured_target
from .space import CONTRACTIONS, SearchSpace


@dataclass(frozen=True)
class SearchSettings:
    """Everything that determines a search's result; a resume must not change any of it."""

    target_gflops: float | None
    space: SearchSpace
    data: str = "synthetic"
    budget: str | None = None     # None: the space's budget
    seed: int = 0
    criterion: str | None = None  # None: the space's selection rule
    contract_axes: str | None = None  # None: the space's contraction rule
    on_tie: str | None = None     # None: the space's tie rule
    repeats: int | None = None    # None: the space's
    max_repeats: int | None = None  # None: the space's
    complexity: str = "gflops"    # what the target bounds: gflops or latency
    target_ms: float | None = None  # the target under --complexity latency
    latency_threads: int = 1      # CPU threads latency is measured with (the deployment's)
    latency_device: str = "cpu"
    path: tuple[str, ...] | None = None  # a replay: the axis of every step, in turn
    noise: str = "auto"           # the seed-noise model of single-seed intervals: auto, none or a file
    proxy_init: str | None = None  # None: the space's; how candidates start: scratch or inherit

    @property
    def target(self) -> float:
        """The target in the complexity's unit (GFLOPs or ms)."""
        value = self.target_ms if self.complexity == "latency" else self.target_gflops
        if value is None:
            raise ValueError(f"the settings give no target for --complexity {self.complexity}")
        return float(value)

    @property
    def unit(self) -> str:
        return "ms" if self.complexity == "latency" else "GFLOPs"

    def measure(self) -> Measure:
        if self.complexity == "latency":
            return get_measure("latency", config=LatencyConfig(device=self.latency_device,
                                                                threads=self.latency_threads))
        return get_measure(self.complexity)

    @property
    def selection(self) -> str:
        return self.criterion or self.space.selection

    @property
    def tie_rule(self) -> str:
        return self.on_tie or self.space.on_tie

    @property
    def trainings(self) -> int:
        """Seeds every candidate is trained with (``--repeats``)."""
        return self.repeats or self.space.repeats

    @property
    def repeat_limit(self) -> int:
        """The most seeds ``--on-tie repeat`` trains a tied candidate with."""
        return max(self.max_repeats or self.space.max_repeats, self.trainings)

    @property
    def contraction(self) -> str:
        return self.contract_axes or self.space.contraction

    @property
    def init_rule(self) -> str:
        """How every candidate starts (``--proxy-init``): scratch, or inherit its step start's weights."""
        return self.proxy_init or self.space.proxy_init


@dataclass(frozen=True)
class DataInfo:
    spec: str
    root: Path
    num_classes: int
    train_videos: int
    val_videos: int
    test_videos: int | None = None  # None: the data has no held-out split

    def log_entry(self) -> dict[str, Any]:
        return {"root": self.spec if self.spec == "synthetic" else str(self.root), "num_classes": self.num_classes,
                "train_videos": self.train_videos, "val_videos": self.val_videos, "test_videos": self.test_videos}


def resolve_data_info(spec: str) -> DataInfo:
    root = resolve_data(spec)
    return DataInfo(spec=spec, root=root, num_classes=len(class_names(root)),
                    train_videos=len(load_split(root, "train")), val_videos=len(load_split(root, "val")),
                    test_videos=len(load_split(root, "test")) if has_split(root, "test") else None)


# --- input checks ------------------------------------------------------------------------------
def check_target(settings: SearchSettings, num_classes: int = 1) -> None:
    """A target at or below zero, or below the seed, is refused before anything starts.

    Called once before the data is read (with the fewest classes, a lower bound) and again
    with the dataset's class count, which sets the classifier's share of the cost.
    """
    if settings.complexity not in MEASURES:
        raise ConfigError(f"--complexity must be one of {', '.join(MEASURES)}, got '{settings.complexity}'")
    if settings.complexity == "latency":
        if settings.target_ms is None or settings.target_gflops is not None:
            raise ConfigError("--complexity latency takes --target-ms (not --target-gflops)")
        check_measured_target(settings.target_ms, settings.space, num_classes, settings.measure(), "--target-ms")
        return
    if settings.target_ms is not None:
        raise ConfigError("--target-ms needs --complexity latency")
    if settings.target_gflops is None:
        raise ConfigError("--target-gflops is required (or --resume RUN_DIR)")
    check_measured_target(settings.target_gflops, settings.space, num_classes)


def check_choices(settings: SearchSettings) -> None:
    if settings.criterion is not None and settings.criterion not in CRITERIA:
        raise ConfigError(f"--criterion must be one of {', '.join(CRITERIA)}, got '{settings.criterion}'")
    if settings.contract_axes is not None and settings.contract_axes not in CONTRACTIONS:
        raise ConfigError(f"--contract-axes must be one of {', '.join(CONTRACTIONS)}, got '{settings.contract_axes}'")
    if settings.on_tie is not None and settings.on_tie not in TIE_RULES:
        raise ConfigError(f"--on-tie must be one of {', '.join(TIE_RULES)}, got '{settings.on_tie}'")
    if settings.proxy_init is not None:
        check_proxy_init(settings.proxy_init)
    for name, value in (("--repeats", settings.repeats), ("--max-repeats", settings.max_repeats)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def default_run_dir() -> Path:
    return Path("runs") / _dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")


# --- config.yaml ----------------------------------------------------------------------------
def run_config(settings: SearchSettings, resources: Resources, budget: Budget, data: DataInfo,
               placement: tuple[float, float], noise: NoiseModel | None = None) -> dict[str, Any]:
    """``config.yaml``: what the search is, where its trials run, and the environment its numbers came
    from (``versions``; a resume compares it, see :func:`environment_changes`)."""
    return {"x3dsearch": __version__, "created": _dt.datetime.now().isoformat(timespec="seconds"),
            "target_gflops": settings.target_gflops, "complexity": settings.complexity,
            "target_ms": settings.target_ms, "latency": {"device": settings.latency_device,
                                                          "threads": settings.latency_threads},
            "path": list(settings.path) if settings.path else None,
            "data": {"spec": data.spec, **data.log_entry(), "root": str(data.root)},
            "budget": budget.to_dict(), "space": settings.space.to_dict(), "seed": settings.seed,
            "criterion": settings.selection, "contract_axes": settings.contraction, "on_tie": settings.tie_rule,
            "repeats": settings.trainings, "max_repeats": settings.repeat_limit, "proxy_init": settings.init_rule,
            "noise_spec": settings.noise,
            "noise": noise_to_config(noise), "resources": resources.to_dict(),
            "versions": trial_environment(placement)}


def trial_environment(placement: tuple[float, float]) -> dict[str, Any]:
    """The environment a trial of this session trains in (threads: the CPUs per trial)."""
    return run_environment(threads=max(1, int(placement[0])), gpus=placement[1] > 0)


def environment_changes(config: dict[str, Any], placement: tuple[float, float]) -> list[str]:
    """What differs between the environment a run was started in and this session's, among what
    changes a training's rounding (threads, CPU kernels, torch build, GPUs)."""
    return result_changes(config.get("versions") or {}, trial_environment(placement))


def run_info(settings: SearchSettings, budget: Budget, data: DataInfo) -> RunInfo:
    """What the run log says about the run besides its state."""
    return RunInfo(target_gflops=settings.target_gflops, seed=settings.seed, space=settings.space.name,
                   budget=budget.name, data=data.log_entry(), complexity=settings.complexity,
                   target_ms=settings.target_ms, path=settings.path, proxy_init=settings.init_rule)


def stored_settings(config: dict[str, Any], label: str) -> SearchSettings:
    """The settings a run was started with, from its ``config.yaml``."""
    space = SearchSpace.from_dict(config["space"], label=f"{label} space")
    latency = config.get("latency") or {}
    return SearchSettings(target_gflops=config["target_gflops"], space=space, data=config["data"]["spec"],
                          budget=None, seed=int(config["seed"]), criterion=config["criterion"],
                          contract_axes=config["contract_axes"], on_tie=config.get("on_tie"),
                          repeats=config.get("repeats"), max_repeats=config.get("max_repeats"),
                          complexity=config.get("complexity", "gflops"), target_ms=config.get("target_ms"),
                          latency_threads=latency.get("threads", 1), latency_device=latency.get("device", "cpu"),
                          path=tuple(config["path"]) if config.get("path") else None,
                          noise=config.get("noise_spec", "none"), proxy_init=config.get("proxy_init"))


def stored_resources(config: dict[str, Any], overrides: dict[str, Any] | None) -> Resources:
    res = {**config.get("resources", {}), **(overrides or {})}
    return Resources(address=res.get("address"), cpus_per_trial=res.get("cpus_per_trial"),
                     gpus_per_trial=res.get("gpus_per_trial"), max_failures=int(res.get("max_failures", 1)),
                     keep=res.get("keep", "models"))


def check_same(run_dir: Path, stored: SearchSettings, given_settings: SearchSettings, config: dict[str, Any],
               given: frozenset[str]) -> None:
    """``expand --resume`` with options that would make it another search is refused."""
    def refuse(what: str, old: Any, new: Any) -> X3DSearchError:
        return X3DSearchError(f"refusing to resume {run_dir}: it searches with {what} {old}, not {new} "
                              f"(start a new --run-dir for another search)")

    new_gflops, new_ms = given_settings.target_gflops, given_settings.target_ms
    if "target_gflops" in given and new_gflops is not None and not math.isclose(new_gflops, stored.target):
        raise refuse("target", f"{stored.target:g} {stored.unit}", f"{new_gflops:g}")
    if "target_ms" in given and new_ms is not None and not math.isclose(new_ms, stored.target):
        raise refuse("target", f"{stored.target:g} {stored.unit}", f"{new_ms:g} ms")
    if "path" in given and given_settings.path != stored.path:
        raise refuse("path", ",".join(stored.path or ()) or "none", ",".join(given_settings.path or ()))
    if "space" in given and given_settings.space.to_dict() != stored.space.to_dict():
        raise refuse("space", f"'{stored.space.name}'", f"'{given_settings.space.name}' (another space)")
    if "seed" in given and given_settings.seed != stored.seed:
        raise refuse("seed", stored.seed, given_settings.seed)
    if "data" in given and given_settings.data != stored.data:
        raise refuse("data", stored.data, given_settings.data)
    if "criterion" in given and given_settings.selection != stored.selection:
        raise refuse("criterion", stored.selection, given_settings.selection)
    if "contract_axes" in given and given_settings.contraction != stored.contraction:
        raise refuse("--contract-axes", stored.contraction, given_settings.contraction)
    if "on_tie" in given and given_settings.tie_rule != stored.tie_rule:
        raise refuse("--on-tie", stored.tie_rule, given_settings.tie_rule)
    if "noise" in given and given_settings.noise != stored.noise:
        raise refuse("--noise", stored.noise, given_settings.noise)
    if "proxy_init" in given and given_settings.init_rule != stored.init_rule:
        raise refuse("--proxy-init", stored.init_rule, given_settings.init_rule)
    if "repeats" in given and given_settings.trainings != stored.trainings:
        raise refuse("--repeats", stored.trainings, given_settings.trainings)
    if "budget" in given and given_settings.budget is not None:
        budget = load_budget(given_settings.budget)
        if budget.name != config["budget"].get("name"):
            raise refuse("budget", config["budget"].get("name"), budget.name)
