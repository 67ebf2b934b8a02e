"""``--proxy-init``: how each proxy training starts, and the weights a search keeps for it.

With ``scratch`` every training starts from its architecture's own random initialisation. With
``inherit`` every candidate of a step, and each of its repeats, starts from the trained ``model.pt``
of the step's start model, grown to the candidate by the trainer's ``init`` (a network morphism:
it starts as exactly the start model's function, docs/method/growth.md); contraction candidates
start from the overshooting step's start, of which they are growths along one axis. A parent
therefore trains before its children: step 1's start, the seed model, trains as a batch of its own
before step 1's candidates. A child whose parent's weights are missing stops the search with one
line; it never trains from scratch in their place.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol

from ..errors import X3DSearchError
from ..runlog import Run, Trial
from ..runlog.trial import INHERIT
from ..train.folder import TrainingFolder


class Batches(Protocol):
    """What trains a batch of trials (:class:`~x3dsearch.search.trials.TrialRunner`)."""

    def run(self, experiment: str, title: str, trials: list[Trial], start: Trial | None) -> None: ...


def started_from(trial: Trial, parent: Trial, rule: str) -> Trial:
    """``trial`` set to start as ``rule`` says; under inherit, from ``parent``'s weights."""
    trial.init = rule
    trial.parent = parent.name if rule == INHERIT else None
    return trial


def parent_weights(trial: Trial, trial_dir: Callable[[str], Path]) -> Path | None:
    """The ``model.pt`` (absolute) ``trial`` starts from, None for scratch (``trial_dir``: a trial's
    training folder, by name). A missing file is one line, never a silent start from scratch."""
    if trial.init != INHERIT:
        return None
    if trial.parent is None:
        raise X3DSearchError(f"trial {trial.name} inherits its start (--proxy-init inherit) but records no parent")
    path = TrainingFolder(trial_dir(trial.parent)).model.resolve()
    if not path.is_file():
        raise X3DSearchError(f"trial {trial.name} starts from the weights of {trial.parent} (--proxy-init inherit), "
                             f"but {path} does not exist; it does not train from scratch in their place: restore "
                             f"the file, or start the search again in another --run-dir")
    return path


def check_parents_kept(run: Run, trial_dir: Callable[[str], Path]) -> None:
    """Before a resumed session starts Ray or touches the state: every unfinished trial that inherits
    finds its parent's ``model.pt`` (one line naming the file otherwise)."""
    for trial in run.trials():
        if trial.needs_training:
            parent_weights(trial, trial_dir)


def train_parents_first(trials: Batches, experiment: str, title: str, runs: list[Trial], start: Trial,
                        resume_hint: str) -> None:
    """Train the members of ``runs`` that others of them start from (step 1's seed model), as a batch
    of their own before the rest; one that does not train stops the step with one line."""
    wanted = {t.parent for t in runs if t.init == INHERIT}
    parents = [t for t in runs if t.name in wanted]
    if any(t.needs_training for t in parents):
        trials.run(f"{experiment}-start", f"{title}: first the start model, whose weights every candidate grows from",
                   parents, start)
    for parent in parents:
        if not parent.evaluated:
            raise X3DSearchError(f"the start model {parent.name} did not train ({parent.error or parent.status}); "
                                 f"with --proxy-init inherit every candidate starts from its weights: fix the "
                                 f"cause and run `{resume_hint}`")


def needed_weights(run: Run) -> set[str]:
    """Trials whose ``model.pt`` a trial of the run, or a later step or the contraction, starts from:
    every recorded parent, every step's start and the current model. ``--keep chosen`` keeps them."""
    needed = {t.parent for t in run.trials() if t.parent is not None}
    needed.update(step.start.name for step in run.steps)
    needed.add(run.current().name)
    return needed


def drop_unchosen(run: Run, trial_dir: Callable[[str], Path], models: list[Trial], chosen: Trial) -> None:
    """``--keep chosen``: the weights of the models a step did not keep go, unless a parent's."""
    keep = needed_weights(run) | {chosen.name}
    for model in models:
        if model is not chosen:
            for trained in model.runs:
                if trained.name not in keep:
                    TrainingFolder(trial_dir(trained.name)).drop_weights()
