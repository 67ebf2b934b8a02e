"""What a calibration trains: which models, under which two budgets, with which seeds.

A calibration asks how far the search's proxy can be trusted: it trains a
fixed set of architectures with the proxy budget at several seeds and with a
longer reference budget, and compares the rankings. Its folder holds one
training folder per (budget, model, seed), so an interrupted calibration
continues where it stopped and a second proxy budget reuses the references.

With ``--proxy-init inherit`` the proxy trainings start as a search step's candidates do: the
space's seed model (X2D) trains from scratch, and every other model at seed ``s`` starts from its
training at seed ``s``, grown to the model (docs/method/growth.md). A grown training is named
``<budget>/<model>-s<seed>-inherit``, apart from the from-scratch one (no scratch name ends so), so
one folder can hold both and a rerun never mistakes one init's training for the other's; beside its
parent, it records the parent's weights by a relative path, so the folder can move. The seed model's
own trainings, and the references (always from scratch: they are what the proxy is judged against),
are shared by both inits.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..budget import Budget, load_budget
from ..errors import ConfigError
from ..factors import PRESETS, Factors
from ..model_file import load_model_file
from ..models.grow import check_growth
from ..runlog import Trial
from ..runlog.trial import INHERIT
from ..search.estimate import count_params_m, estimate_gflops
from ..search.plan import path_proposal
from ..search.proposals import Proposal, propose_step
from ..search.space import SearchSpace
from ..utils.io import atomic_write_yaml, read_yaml

#: Fewer models cannot give a rank correlation worth reading.
MIN_MODELS = 3
#: The reference trains this many times the proxy's epochs unless told otherwise.
REFERENCE_EPOCHS = 4


@dataclass(frozen=True)
class Model:
    name: str
    factors: Factors


def parse_models(specs: list[str]) -> list[Model]:
    """Presets (``x3d-xs``), factor strings (``frames=4,stride=12,...``) or ``final_model.yaml`` files."""
    models = []
    for spec in specs:
        if spec.lower() in PRESETS:
            models.append(Model(spec.lower(), PRESETS[spec.lower()]))
        elif "=" in spec:
            factors = Factors.parse(spec)
            models.append(Model(factors.key(), factors))
        else:
            path = Path(spec).expanduser().resolve()
            models.append(Model(path.parent.name if path.name == "final_model.yaml" else path.stem,
                                load_model_file(path).factors))
    names = [m.name for m in models]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise ConfigError(f"--models names '{duplicate}' twice")
    return models


def default_models(space: SearchSpace, num_classes: int) -> list[Model]:
    """The space's seed (X2D), X3D-XS, and the candidates of the search's first step: the same-cost
    choice one search step makes, plus two anchors 30x apart. (X3D-S is left out: one reference
    training of it takes about 40 minutes on one CPU thread.)"""
    first: list[Proposal] = propose_step(space.seed, space, num_classes)[0]
    return ([Model("x2d", space.seed), Model("x3d-xs", PRESETS["x3d-xs"])]
            + [Model(f"s1-{p.axis}", p.factors) for p in first])


#: The paper's own first steps from X2D (Feichtenhofer, 2020, Fig. 2): bottleneck, fast, spatial, depth.
PAPER_STEPS = ("x-bottleneck", "x-fast", "x-spatial", "x-depth")


def spread_models(space: SearchSpace, num_classes: int) -> list[Model]:
    """X2D, the models of the paper's chain (its step winners, each about 2x the last) and X3D-XS: a set
    whose complexity spans 30x, where ranking is measured on differences that are real, beside the
    default set's same-cost candidates."""
    models, current = [Model("x2d", space.seed)], space.seed
    for step, axis in enumerate(PAPER_STEPS, start=1):
        current = path_proposal(space, axis, current, num_classes, step).factors
        models.append(Model(f"p{step}-{axis}", current))
    return [*models, Model("x3d-xs", PRESETS["x3d-xs"])]


def choose_models(spec: tuple[str, ...], space: SearchSpace, num_classes: int) -> list[Model]:
    """``--models``: ``default`` (or nothing), ``spread``, or a list (:func:`parse_models`)."""
    if not spec or spec == ("default",):
        return default_models(space, num_classes)
    if spec == ("spread",):
        return spread_models(space, num_classes)
    return parse_models(list(spec))


def reference_budget(proxy: Budget, spec: str | None) -> Budget:
    """``spec``, or the proxy's schedule stretched to 4x its epochs (warm-up stretched alike)."""
    if spec is not None:
        return load_budget(spec)
    if proxy.iterations is not None:
        return proxy.replace(name=f"{proxy.name}-x{REFERENCE_EPOCHS}", iterations=proxy.iterations * REFERENCE_EPOCHS)
    return proxy.replace(name=f"{proxy.name}-x{REFERENCE_EPOCHS}", epochs=proxy.epochs * REFERENCE_EPOCHS,
                         warmup_epochs=proxy.warmup_epochs * REFERENCE_EPOCHS)


def clips_seen(budget: Budget, train_videos: int) -> float:
    """Clips one training of ``budget`` sees: how long it is, comparable across budgets."""
    if budget.iterations is not None:
        return budget.iterations * budget.batch_size
    return budget.epochs * budget.train_fraction * train_videos


def check_plan(models: list[Model], proxy: Budget, reference: Budget, train_videos: int, seeds: int) -> None:
    if len(models) < MIN_MODELS:
        raise ConfigError(f"calibrate needs at least {MIN_MODELS} models to rank, got {len(models)}")
    if seeds < 2:
        raise ConfigError(f"--seeds must be at least 2 to measure seed variance, got {seeds}")
    if clips_seen(reference, train_videos) <= clips_seen(proxy, train_videos):
        raise ConfigError(f"the reference budget '{reference.name}' trains no longer than the proxy '{proxy.name}' "
                          f"({clips_seen(reference, train_videos):g} against "
                          f"{clips_seen(proxy, train_videos):g} clips)")


def inherit_parent(models: list[Model], seed: Factors) -> Model:
    """The model every other one grows from under ``--proxy-init inherit``: the space's seed model,
    which must be one of ``models`` (it is ranked with them, so it is not added behind the user's
    back), and which must grow into each of the others (growth never removes channels or blocks)."""
    parent = next((m for m in models if m.factors == seed), None)
    if parent is None:
        raise ConfigError(f"--proxy-init inherit grows every model from the seed model {seed.short()} (x2d), which "
                          f"--models lacks: add x2d to it, or use --proxy-init scratch")
    for model in models:
        try:
            check_growth(parent.factors, model.factors)
        except ConfigError as exc:
            raise ConfigError(f"--proxy-init inherit: model {model.name}: {exc}") from None
    return parent


def trials(models: list[Model], budget: Budget, seeds: int, num_classes: int,
           parent: Model | None = None) -> list[Trial]:
    """One trial per model and seed; the name (``<budget>/<model>-s<seed>``) is its folder. With a
    ``parent`` (``--proxy-init inherit``) every other model at seed ``s`` starts from the parent's
    training at seed ``s`` and is named ``<budget>/<model>-s<seed>-inherit``."""
    out = []
    for model in models:
        gflops, params = estimate_gflops(model.factors, num_classes), count_params_m(model.factors, num_classes)
        grown = parent is not None and model is not parent
        for seed in range(seeds):
            trial = Trial(name=f"{budget.name}/{model.name}-s{seed}{'-inherit' if grown else ''}", axis=model.name,
                          factors=model.factors, gflops=gflops, params_m=params, seed=seed)
            if grown and parent is not None:
                trial.init, trial.parent = INHERIT, f"{budget.name}/{parent.name}-s{seed}"
            out.append(trial)
    return out


class CalibrationDir:
    """A calibration's folder: its settings, its trainings, Tune's storage and what it reports."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def report(self) -> Path:
        return self.path / "calibration.yaml"

    @property
    def figure(self) -> Path:
        return self.path / "calibration.png"

    @property
    def log(self) -> Path:
        return self.path / "calibration.log"

    @property
    def trials(self) -> Path:
        return self.path / "tune"

    def trial_dir(self, name: str) -> Path:
        return self.path / "runs" / name

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_yaml(self.config, config)

    def read_config(self) -> dict[str, Any] | None:
        return read_yaml(self.config) if self.config.is_file() else None
