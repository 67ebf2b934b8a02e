"""Scoring a step's candidates on the same videos, and deciding with intervals which one to keep.

Every candidate (and the step's start model) is scored on the validation
videos that all of them could read, so a video one model could not decode
never counts for some and not for others. With repeats, repeat k of every
model was trained with the same seed (the same clips and augmentations), so
differences are paired by repeat as well as by video (:func:`x3dsearch.stats.bootstrap`).

Tie rules, for candidates within noise of the best (the paired interval of best
minus candidate includes 0):
- ``best``: keep the best score anyway (equal scores to the cheaper);
- ``cheaper``: keep the cheapest of the best and those within noise of it;
- ``repeat``: the controller trains the tied candidates again with further
  seeds until they separate or ``max_repeats`` is reached, then keeps the best.

Cheaper means the search's complexity measure: GFLOPs, or measured ms in a latency search.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..criteria import Criterion, TieRule, value_matrices, video_values
from ..outcomes import SplitOutcomes
from ..runlog import Trial
from ..runlog.decision import Comparison, Decision, Score
from ..stats import bootstrap
from ..utils.fmt import score_spec


Outcomes = Callable[[Trial], "SplitOutcomes | None"]


def runs(trial: Trial) -> list[Trial]:
    """The trainings of one model that finished and were validated: the trial and its repeats."""
    return [t for t in trial.runs if t.evaluated]


class Judge:
    """Scores and decisions for one search (its criterion, tie rule and seed)."""

    def __init__(self, criterion: Criterion | str, rule: TieRule | str, seed: int, outcomes: Outcomes,
                 cost: Callable[[Trial], float] | None = None):
        self.criterion = Criterion(criterion)
        self.rule = TieRule(rule)
        self.seed = seed
        self.outcomes = outcomes
        # what "cheaper" means, and what breaks equal scores: the search's complexity measure
        # (GFLOPs, or measured ms in a latency search)
        self.cost: Callable[[Trial], float] = cost or (lambda trial: trial.gflops)

    # --- per-video values on the videos every model read ----------------------------------------
    def _values(self, models: Sequence[Trial], kind: Criterion) -> dict[str, np.ndarray] | None:
        """Repeats x common videos per model; None when a run kept no per-video outcomes (older runs)."""
        per_run: dict[str, list[SplitOutcomes]] = {}
        for model in models:
            per_run[model.name] = []
            for run in runs(model):
                outcomes = self.outcomes(run)
                if outcomes is None or not outcomes.videos:
                    return None
                per_run[model.name].append(outcomes)
        return value_matrices(per_run, kind)

    def _seed(self, step: int, *names: str) -> list[int]:
        return [self.seed, step, *(sum(ord(ch) * (i + 1) for i, ch in enumerate(n)) for n in names)]

    def _paired(self, step: int, a: Trial, b: Trial, values: dict[str, np.ndarray]) -> Comparison:
        """``a`` minus ``b`` on paired repeats and videos. A pair is resampled once, in the order of its
        names, and the other side is its mirror: the tie test (best - other) and the reported margin
        (winner - runner-up) then never disagree on significance."""
        if a.name > b.name:
            mirrored = self._paired(step, b, a, values)
            return Comparison(-mirrored.margin, (-mirrored.ci[1], -mirrored.ci[0]))
        x, y = values[a.name], values[b.name]
        k = min(len(x), len(y))
        interval = bootstrap(x[:k] - y[:k], self._seed(step, a.name, b.name))
        return Comparison(interval.value, (interval.low, interval.high))

    def compare(self, step: int, a: Trial, b: Trial) -> Comparison | None:
        """``a`` minus ``b`` in the criterion's per-video unit (top-1 points for gain per GFLOP)."""
        values = self._values([a, b], self.criterion.per_video) if runs(a) and runs(b) else None
        return self._paired(step, a, b, values) if values else None

    def brief(self, trial: Trial) -> str | None:
        """One finished training's own score with its 90% interval over its videos, for the live table
        (the step's decision scores every candidate again on the videos all of them read)."""
        outcomes = self.outcomes(trial) if trial.evaluated else None
        if outcomes is None or not outcomes.videos:
            return None
        kind = self.criterion.per_video
        interval = bootstrap(np.array(list(video_values(outcomes, kind).values())), self._seed(0, trial.name))
        spec = score_spec(str(kind))
        return f"{interval.value:{spec}} [{interval.low:{spec}},{interval.high:{spec}}]"

    # --- scores and the decision --------------------------------------------------------------
    def decide(self, step: int, candidates: Sequence[Trial], start: Trial) -> tuple[Decision, dict[str, Score]]:
        """The winner under the tie rule (``repeat`` decides as ``best``: the controller repeats first),
        and every usable candidate's score, keyed by trial name."""
        usable = [c for c in candidates if runs(c)]
        if not usable:
            raise ValueError("no usable candidate")
        models = [*usable, start] if runs(start) else usable
        per_video = self._values(models, self.criterion.per_video)
        if per_video is None:
            return self._decide_without_outcomes(usable, start)
        top1 = self._values(models, Criterion.TOP1)
        base = per_video.get(start.name)
        values = {c.name: self._criterion_values(c, per_video[c.name], start, base) for c in usable}
        scores = {c.name: self._score(step, c, values[c.name], top1[c.name]) for c in usable}
        best = max(usable, key=lambda c: (scores[c.name].value, -self.cost(c)))  # max keeps the first of equals
        tied = [c for c in usable if c is not best and not self._paired(step, best, c, values).significant]
        winner = min([best, *tied], key=lambda c: (self.cost(c), -scores[c.name].value)) \
            if self.rule is TieRule.CHEAPER else best
        others = [c for c in usable if c is not winner]
        runner_up = max(others, key=lambda c: (scores[c.name].value, -self.cost(c))) if others else None
        vs_runner_up = self._paired(step, winner, runner_up, values) if runner_up else None
        vs_start = self._paired(step, winner, start, per_video) if base is not None else None
        repeats = min(len(values[winner.name]), len(values[runner_up.name])) if runner_up else len(values[winner.name])
        decision = Decision(criterion=str(self.criterion), rule=str(self.rule), winner=winner.axis,
                            runner_up=runner_up.axis if runner_up else None, vs_runner_up=vs_runner_up,
                            vs_start=vs_start, videos=per_video[winner.name].shape[1], repeats=repeats,
                            tied=tuple(c.axis for c in tied))
        return decision, scores

    def tied_with_best(self, step: int, candidates: Sequence[Trial], start: Trial) -> list[Trial]:
        """The best candidate and those within noise of it, when there are any (what ``repeat`` retrains)."""
        decision, scores = self.decide(step, candidates, start)
        if not decision.tied:
            return []
        usable = [c for c in candidates if runs(c)]
        best = max(usable, key=lambda c: (scores[c.name].value, -self.cost(c)))
        return [best, *(c for c in usable if c.axis in decision.tied)]

    def _criterion_values(self, trial: Trial, values: np.ndarray, start: Trial, base: np.ndarray | None,
                          ) -> np.ndarray:
        if self.criterion is not Criterion.GAIN_PER_GFLOP or base is None:
            return values
        k = min(len(values), len(base))
        return (values[:k] - base[:k]) / max(trial.gflops - start.gflops, 1e-12)

    def _score(self, step: int, trial: Trial, values: np.ndarray, top1: np.ndarray) -> Score:
        interval = bootstrap(values, self._seed(step, trial.name))
        top1_interval = bootstrap(top1, self._seed(step, trial.name, "top1"))
        per_repeat = values.mean(axis=1)
        return Score(str(self.criterion), interval.value, (interval.low, interval.high),
                     float(per_repeat.std(ddof=1)) if len(per_repeat) > 1 else None, len(per_repeat),
                     values.shape[1], top1_interval.value, (top1_interval.low, top1_interval.high))

    def _decide_without_outcomes(self, usable: list[Trial], start: Trial) -> tuple[Decision, dict[str, Score]]:
        """A run written before per-video outcomes were kept: mean top-1 over repeats, no interval."""
        def mean_top1(trial: Trial) -> float:
            return float(np.mean([r.top1 for r in runs(trial)]))

        def value(trial: Trial) -> float:
            if self.criterion is Criterion.GAIN_PER_GFLOP and start.top1 is not None:
                return (mean_top1(trial) - start.top1) / max(trial.gflops - start.gflops, 1e-12)
            return mean_top1(trial)

        scores = {c.name: Score(str(self.criterion) if self.criterion is Criterion.GAIN_PER_GFLOP else "top1",
                                value(c), repeats=len(runs(c)), top1=mean_top1(c)) for c in usable}
        # equal accuracies to 1e-4 points are one accuracy: such runs stored a float32 mean, today's
        # trainer a float64 fraction, and a resumed old run holds both
        def key(c: Trial) -> tuple[float, float]:
            return round(scores[c.name].value, 4), -c.gflops

        winner = max(usable, key=key)
        others = [c for c in usable if c is not winner]
        runner_up = max(others, key=key) if others else None
        return Decision(criterion=scores[winner.name].criterion, rule=str(TieRule.BEST), winner=winner.axis,
                        runner_up=runner_up.axis if runner_up else None, vs_runner_up=None, vs_start=None,
                        videos=0, repeats=len(runs(winner))), scores
