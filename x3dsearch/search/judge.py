"""Scoring a step's candidates on the same videos, and deciding with simultaneous bounds which one to keep.

Every candidate (and the step's start model) is scored on the validation
videos that all of them could read, so a video one model could not decode
never counts for some and not for others. With repeats, every model's repeat k
was trained with the same seed (the same clips and augmentations), so
differences are paired by seed as well as by video; a seed one model lacks (a
failed repeat) leaves the pairs that need it, and the decision names it.

The best-scoring candidate is compared with every other one at once
(:func:`x3dsearch.simultaneous.compare_with`: Hsu's multiple comparisons with
the best, one-sided, by a max-t bootstrap). A candidate whose bound excludes it
from being the best is *excluded*; the others are *tied* with the best. The
step is significant when every other candidate is excluded. Single trainings
are widened by the search's seed-noise model (``--noise``).

Tie rules, for the candidates not excluded:
- ``best``: keep the best score anyway (equal scores to the cheaper);
- ``cheaper``: keep the cheapest of the best and those tied with it;
- ``repeat``: the controller trains the tied candidates again with further
  seeds, at most ``max_repeats`` looks, each at the level divided by the number
  of looks (Bonferroni over the looks, so stopping when they separate keeps
  the error), then keeps the best.

Cheaper means the search's complexity measure: GFLOPs, or measured ms in a latency search.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

from ..criteria import Criterion, TieRule, value_matrices, video_values
from ..outcomes import SplitOutcomes
from ..runlog import Trial
from ..runlog.decision import METHOD, Against, Comparison, Decision, Score
from ..simultaneous import Family, NoiseModel, SeedRows, compare_with, pair_bounds
from ..stats import LEVEL, bootstrap
from ..utils.fmt import score_spec


Outcomes = Callable[[Trial], "SplitOutcomes | None"]


def runs(trial: Trial) -> list[Trial]:
    """The trainings of one model that finished and were validated: the trial and its repeats."""
    return [t for t in trial.runs if t.evaluated]


def seed_of(run: Trial) -> int:
    """The seed a training is paired by (runs written before trials kept seeds: the repeat index)."""
    return run.seed if run.seed is not None else run.repeat


class Judge:
    """Scores and decisions for one search (its criterion, tie rule, seed and seed-noise model)."""

    def __init__(self, criterion: Criterion | str, rule: TieRule | str, seed: int, outcomes: Outcomes,
                 cost: Callable[[Trial], float] | None = None, noise: NoiseModel | None = None,
                 level: float = LEVEL):
        self.criterion = Criterion(criterion)
        self.rule = TieRule(rule)
        self.seed = seed
        self.outcomes = outcomes
        self.noise = noise
        self.level = level
        # what "cheaper" means, and what breaks equal scores: the search's complexity measure
        # (GFLOPs, or measured ms in a latency search)
        self.cost: Callable[[Trial], float] = cost or (lambda trial: trial.gflops)

    # --- per-video values on the videos every model read ----------------------------------------
    def _values(self, models: Sequence[Trial], kind: Criterion,
                outcomes: Outcomes | None = None) -> dict[str, dict[int, np.ndarray]] | None:
        """Per model, seed -> that training's values on the common videos; None when a run kept no
        per-video outcomes (older runs) or no video is common to all."""
        read = outcomes or self.outcomes
        per_run: dict[str, list[SplitOutcomes]] = {}
        seeds: dict[str, list[int]] = {}
        for model in models:
            per_run[model.name], seeds[model.name] = [], []
            for run in runs(model):
                found = read(run)
                if found is None or not found.videos:
                    return None
                per_run[model.name].append(found)
                seeds[model.name].append(seed_of(run))
        matrices = value_matrices(per_run, kind)
        if matrices is None:
            return None
        return {name: dict(zip(seeds[name], matrix)) for name, matrix in matrices.items()}

    def _seed(self, step: int, *names: str) -> list[int]:
        return [self.seed, step, *(sum(ord(ch) * (i + 1) for i, ch in enumerate(n)) for n in names)]

    def compare(self, step: int, a: Trial, b: Trial, outcomes: Outcomes | None = None,
                split: str | None = None) -> Comparison | None:
        """``a`` minus ``b`` alone, one-sided bounds at the judge's level, in the criterion's per-video
        unit (top-1 points for gain per GFLOP), on ``outcomes`` (default: validation)."""
        values = self._values([a, b], self.criterion.per_video, outcomes) if runs(a) and runs(b) else None
        if values is None:
            return None
        first, second = sorted([a.name, b.name])
        bound = pair_bounds(values[first], values[second], self._seed(step, first, second), self.level, self.noise)
        if first == a.name:
            return Comparison(bound.margin, (bound.low, bound.high), split)
        return Comparison(-bound.margin, (-bound.high, -bound.low), split)

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

    def noise_note(self) -> str:
        """What seed noise one-seed intervals hold, as the log records it."""
        return self.noise.describe() if self.noise is not None else "videos only (no seed-noise model)"

    # --- scores and the decision --------------------------------------------------------------
    def decide(self, step: int, candidates: Sequence[Trial], start: Trial,
               level: float | None = None) -> tuple[Decision, dict[str, Score]]:
        """The winner under the tie rule (``repeat`` decides as ``best``: the controller repeats first),
        and every usable candidate's score, keyed by trial name. ``level``: this look's level."""
        level = self.level if level is None else level
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
        rank = _paired_means(values)
        order = {c.name: (rank[c.name], scores[c.name].value, -self.cost(c)) for c in usable}
        best = max(usable, key=lambda c: order[c.name])  # max keeps the first of equals
        family = self._family(step, best, values, level)
        tied = [c for c in usable if c is not best and not family.bounds[c.name].excluded]
        winner = min([best, *tied], key=lambda c: (self.cost(c), -scores[c.name].value)) \
            if self.rule is TieRule.CHEAPER else best
        chosen = family if winner is best else self._family(step, winner, values, level)
        others = [c for c in usable if c is not winner]
        runner_up = max(others, key=lambda c: order[c.name]) if others else None
        against = tuple(Against(c.axis, chosen.bounds[c.name].margin,
                                (chosen.bounds[c.name].low, chosen.bounds[c.name].high),
                                c is not best and family.bounds[c.name].excluded) for c in others)
        vs_runner_up = None
        if runner_up is not None:
            b = chosen.bounds[runner_up.name]
            vs_runner_up = Comparison(b.margin, (b.low, b.high))
        vs_start = None
        if base is not None:
            vs_start = self.compare(step, winner, start, split="val")
            vs_start = vs_start and Comparison(vs_start.margin, vs_start.ci, "val", selection_biased=True)
        decision = Decision(criterion=str(self.criterion), rule=str(self.rule), winner=winner.axis,
                            runner_up=runner_up.axis if runner_up else None, vs_runner_up=vs_runner_up,
                            vs_start=vs_start, videos=family.videos,
                            repeats=len(chosen.bounds[runner_up.name].seeds) if runner_up else len(values[winner.name]),
                            tied=tuple(c.axis for c in tied), against=against, method=METHOD, level=level,
                            noise=self._noise_used(chosen), dropped_seeds=_dropped(usable))
        return decision, scores

    def _family(self, step: int, reference: Trial, values: Mapping[str, SeedRows], level: float) -> Family:
        return compare_with(reference.name, values, self._seed(step, reference.name), level, self.noise)

    def _noise_used(self, family: Family) -> str:
        repeated = [len(b.seeds) > 1 for b in family.bounds.values()]
        if all(repeated):
            return "seeds and videos (repeats)"
        if any(repeated):
            return f"seeds and videos where repeated; single seeds: {self.noise_note()}"
        return self.noise_note()

    def tied_with_best(self, step: int, candidates: Sequence[Trial], start: Trial,
                       level: float | None = None) -> list[Trial]:
        """The best candidate and those not excluded from being the best, when there are any (what
        ``repeat`` retrains)."""
        decision, _ = self.decide(step, candidates, start, level)
        if not decision.tied:
            return []
        usable = [c for c in candidates if runs(c)]
        best = next(c for c in usable if c.axis == decision.winner)  # repeat decides as best
        return [best, *(c for c in usable if c.axis in decision.tied)]

    def _criterion_values(self, trial: Trial, values: dict[int, np.ndarray], start: Trial,
                          base: dict[int, np.ndarray] | None) -> dict[int, np.ndarray]:
        """Per seed; gain per GFLOP pairs each seed with the start model's training of the same seed."""
        if self.criterion is not Criterion.GAIN_PER_GFLOP or base is None:
            return values
        scale = max(trial.gflops - start.gflops, 1e-12)
        return {s: (row - base[s]) / scale for s, row in values.items() if s in base}

    def _score(self, step: int, trial: Trial, values: dict[int, np.ndarray], top1: dict[int, np.ndarray]) -> Score:
        matrix, top1_matrix = np.stack(list(values.values())), np.stack(list(top1.values()))
        interval = bootstrap(matrix, self._seed(step, trial.name))
        top1_interval = bootstrap(top1_matrix, self._seed(step, trial.name, "top1"))
        per_repeat = matrix.mean(axis=1)
        return Score(str(self.criterion), interval.value, (interval.low, interval.high),
                     float(per_repeat.std(ddof=1)) if len(per_repeat) > 1 else None, len(per_repeat),
                     matrix.shape[1], top1_interval.value, (top1_interval.low, top1_interval.high))

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


def look_level(rule: TieRule | str, repeats: int, max_repeats: int) -> float:
    """One look's level. Under ``--on-tie repeat`` a step may look once per seed count from ``repeats``
    to ``max_repeats``; the error is split evenly over those looks (Bonferroni), so stopping at the
    first look that separates still claims wrongly at most ``1 - LEVEL`` of the time."""
    if TieRule(rule) is not TieRule.REPEAT:
        return LEVEL
    return 1.0 - (1.0 - LEVEL) / (max_repeats - repeats + 1)


def score_lines(models: Sequence[Trial], scores: dict[str, Score], chosen: Trial) -> list[str]:
    """Each candidate's score on the common videos, with its interval and spread over seeds, for the log."""
    lines = []
    for model in models:
        score = scores.get(model.name)
        if score is None:
            continue
        spec = score_spec(score.criterion)
        interval = f" (90% CI {score.ci[0]:{spec}}..{score.ci[1]:{spec}})" if score.ci else ""
        spread = f", SD {score.sd:{spec}} over {score.repeats} seeds" if score.repeats > 1 else ""
        lines.append(f"{'*' if model is chosen else ' '} {model.axis} {score.criterion} = {score.value:{spec}}"
                     f"{interval}{spread} on {score.videos or '-'} videos"
                     f"{'' if score.ci else ' (no per-video outcomes)'}")
    return lines


def _paired_means(values: Mapping[str, SeedRows]) -> dict[str, float]:
    """Each model's mean paired margin over the others, each pair on the seeds both trained: what picks
    the best. With the same seeds everywhere it orders models as their scores do; with a failed repeat
    or retrained ties it never sets one model's lucky seed against another's missing one."""
    out = {}
    for name, rows in values.items():
        margins = [np.mean([rows[s].mean() - other[s].mean() for s in rows if s in other])
                   for o, other in values.items() if o != name and set(rows) & set(other)]
        out[name] = float(np.mean(margins)) if margins else 0.0
    return out


def _dropped(models: Sequence[Trial]) -> tuple[str, ...]:
    """``axis: seed S (status)`` for every training of the step's models that did not finish and
    validate (a failed or diverged repeat): the pairs that need its seed leave it out."""
    return tuple(f"{m.axis}: seed {seed_of(r)} ({r.status})" for m in models for r in m.runs if not r.evaluated)
