"""The progressive expansion search: coordinate descent forward, contraction back to the target.

Each step proposes one candidate per axis at about c x the current GFLOPs,
trains them all as one Ray Tune experiment, and keeps the best (validation
top-1, ties to the lower GFLOPs, or the top-1 gained per added GFLOP). Steps
repeat until the current model reaches the target (within the space's
tolerance); a last step that overshoots is contracted along its own axis (or
every axis) to the largest setting at most the target. The whole :class:`Run`
is saved after every trial result, so ``resume`` picks up after any interruption.
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Callable

from ..criteria import TieRule
from ..errors import X3DSearchError
from ..outcomes import SplitOutcomes
from ..runlog import Contraction, Run, RunDir, RunStatus, Step, StopReason, Trial, TrialStatus
from ..runlog.decision import Decision, Score
from ..runlog.run import contraction_trial_name, step_trial_name
from ..simultaneous import NoiseModel
from ..train.folder import TrainingFolder
from ..utils.fmt import format_top1, score_spec
from ..utils.logging import get_logger
from .estimate import count_params_m
from .inherit import drop_unchosen, started_from, train_parents_first
from .judge import Judge, look_level, score_lines
from .progress import future_trials
from .plan import contraction_candidates, path_proposal, reached
from .proposals import Proposal, Skip, propose_step
from .settings import DataInfo, SearchSettings
from .trials import TrialRunner

log = get_logger("search")

#: Scores a kept model on the held-out split: its top-1 there.
Heldout = Callable[[Trial], "float | None"]
#: Repeat k trains with this seed (k = 0: the search's own); far apart, so searches run with seeds
#: 0, 1, 2 share no repeat.
REPEAT_SEED_STRIDE = 100003


def repeat_seed(seed: int, k: int) -> int:
    return seed + REPEAT_SEED_STRIDE * k


class Search:
    """The loop of one session of a search (new or resumed); the session owns Ray, lock and logs."""

    def __init__(self, run: Run, run_dir: RunDir, settings: SearchSettings, data: DataInfo, trials: TrialRunner,
                 session_start: float, heldout: Heldout | None = None, keep: str = "models",
                 noise: NoiseModel | None = None, saved: Callable[[], None] = lambda: None):
        self.run_record = run
        self.run_dir = run_dir
        self.settings = settings
        self.space = settings.space
        self.data = data
        self.target = settings.target
        self.measure = settings.measure()
        self.unit = settings.unit
        self.trials = trials
        self.session_start = session_start
        self.heldout = heldout
        self.keep = keep
        self.saved = saved  # told after every save (the session rewrites report.html)
        self.judge = Judge(settings.selection, settings.tie_rule, settings.seed, self._outcomes, cost=self._value,
                           noise=noise)
        trials.scorer = self.judge.brief
        trials.score_title = f"{self.judge.criterion.per_video} [90% CI]"

    @property
    def _resume_hint(self) -> str:
        return f"x3dsearch resume {self.run_dir.path}"

    @property
    def live_wall_s(self) -> float:
        return time.monotonic() - self.session_start

    def save(self, interrupted: bool = False) -> None:
        self.run_dir.save(self.run_record, self.live_wall_s, interrupted)
        self.saved()

    def run(self) -> Run:
        """Expand, contract and finish; an interruption leaves the run saved as interrupted."""
        run = self.run_record
        run.sessions += 1
        if run.stop_reason in (StopReason.INTERRUPTED, StopReason.ALL_FAILED):
            run.stop_reason = run.stop_detail = None  # this session continues where that one stopped
        interrupted = True
        try:
            self.save()
            self._expand()
            self._contract()
            self._finish()
            interrupted = False
        finally:
            if interrupted and run.stop_reason is None:
                run.stop_reason, run.stop_detail = StopReason.INTERRUPTED, "the session ended before the search"
            run.clock.wall_s += self.live_wall_s
            self.session_start = time.monotonic()
            self.save(interrupted=interrupted)
        return run

    # --- forward expansion --------------------------------------------------------------------
    def _value(self, trial: Trial) -> float:
        """The trial's complexity in the target's unit (GFLOPs as fvcore counted them, or measured ms)."""
        if self.measure.name == "gflops":
            return trial.gflops
        if trial.latency_ms is None:
            trial.latency_ms = self._timed_flops(lambda: self.measure.value(trial.factors, self.data.num_classes))
        return trial.latency_ms

    def _describe(self, trial: Trial) -> str:
        """The trial's complexity as a step header shows it: GFLOPs, and measured ms in a latency run."""
        if self.measure.name == "gflops":
            return f"{trial.gflops:.4f} GFLOPs"
        return f"{self._value(trial):.4g} ms, {trial.gflops:.4f} GFLOPs"

    def _reached(self, trial: Trial) -> bool:
        return reached(self._value(trial), self.target, self.space.tolerance)

    def _expand(self) -> None:
        run = self.run_record
        while True:
            step = run.open_step()
            if step is None:
                if run.contraction is not None or run.stop_reason is not None:
                    return
                current = run.current()
                if self._reached(current):
                    self._stop_at(current)
                    return
                step = self._new_step(current)
                if step is None:
                    return
            self._run_step(step)

    def _timed_flops(self, fn: Callable[[], Any]) -> Any:
        started = time.monotonic()
        try:
            return fn()
        finally:
            self.run_record.clock.flop_count_s += time.monotonic() - started

    def _seeded(self, trials: list[Trial]) -> list[Trial]:
        """Trials of a run written before each kept its seed train with the search's."""
        for trial in trials:
            if trial.seed is None:
                trial.seed = self.settings.seed
        return trials

    def _outcomes(self, trial: Trial) -> SplitOutcomes | None:
        return TrainingFolder(self.run_dir.trial_dir(trial.name)).read_outcomes("val")

    def _repeat(self, model: Trial, k: int) -> Trial:
        """Repeat ``k`` of a model: the same architecture trained with the search's k-th seed (which every
        model's repeat k shares, so they see the same clips)."""
        name = f"{model.name}-r{k}"
        for run in model.repeats:
            if run.name == name:
                return run
        run = Trial(name=name, axis=model.axis, factors=model.factors, gflops=model.gflops, params_m=model.params_m,
                    seed=repeat_seed(self.settings.seed, k), repeat=k, init=model.init, parent=model.parent)
        model.repeats.append(run)
        return run

    def _runs(self, models: list[Trial]) -> list[Trial]:
        """Every training of ``models`` at the search's number of repeats."""
        for model in models:
            for k in range(1, self.settings.trainings):
                self._repeat(model, k)
        return self._seeded([run for model in models for run in model.runs])

    def _trial(self, name: str, proposal: Proposal, parent: Trial) -> Trial:
        """A candidate grown from ``parent``: it starts from its weights under ``--proxy-init inherit``."""
        params = self._timed_flops(lambda: count_params_m(proposal.factors, self.data.num_classes))
        return started_from(Trial(name=name, axis=proposal.axis, factors=proposal.factors, gflops=proposal.gflops,
                                  params_m=params, seed=self.settings.seed, latency_ms=proposal.cost), parent,
                            self.settings.init_rule)

    def _new_step(self, current: Trial) -> Step | None:
        run = self.run_record
        number = len(run.steps) + 1
        if self.settings.path is not None:
            if number > len(self.settings.path):
                run.stop_reason = StopReason.PATH_ENDED
                run.stop_detail = (f"the path's {len(self.settings.path)} axes ran out at {current.factors.short()} "
                                   f"({self._value(current):.4g} {self.unit}), short of the target")
                log.warning("%s", run.stop_detail)
                self.save()
                return None
            axis = self.settings.path[number - 1]
            proposals, skips = [self._timed_flops(lambda: path_proposal(
                self.space, axis, current.factors, self.data.num_classes, number, self.measure))], []
        else:
            proposals, skips = self._timed_flops(lambda: propose_step(current.factors, self.space,
                                                                      self.data.num_classes, self.measure))
        for skip in skips:
            log.info("step %d: %s skipped: %s", number, skip.axis, skip.reason)
        if not proposals:
            run.stop_reason = StopReason.BOUNDED
            run.stop_detail = (f"no axis can expand {current.factors.short()} any further "
                               f"(bounds of the space reached)")
            log.warning("%s; stopping at %.4f GFLOPs", run.stop_detail, current.gflops)
            self.save()
            return None
        step = Step(step=number, start=current,
                    candidates=[self._trial(step_trial_name(number, p.axis), p, current) for p in proposals]
                    + [_skipped(step_trial_name(number, s.axis), s) for s in skips])
        run.steps.append(step)
        self.save()
        return step

    def _run_step(self, step: Step) -> None:
        run = self.run_record
        start = step.start
        goal = self.space.expansion_rate * self._value(start)
        title = (f"step {step.step}: expand {start.factors.short()} ({self._describe(start)}, top-1 "
                 f"{format_top1(start.top1)}) towards x{self.space.expansion_rate:g} = {goal:.4g} {self.unit}; "
                 f"target {self.target:g} {self.unit}")
        extra = [run.seed_trial] if step.step == 1 else []
        trained = step.trained
        mean_value = sum(self._value(c) for c in trained) / len(trained)
        mean_gflops = sum(c.gflops for c in trained) / len(trained)
        self.trials.future = lambda: future_trials(mean_value, self.target, self.space.expansion_rate,
                                                   len(self.space.axes), self.space.tolerance, mean_gflops)
        runs = self._runs(extra + step.trained)
        train_parents_first(self.trials, f"step{step.step:02d}", title, runs, start, self._resume_hint)
        self.trials.run(f"step{step.step:02d}", title, runs, start)
        if not any(c.evaluated for c in step.trained):
            reasons = {c.error or str(c.status) for c in step.trained}
            detail = reasons.pop() if len(reasons) == 1 else \
                "; ".join(f"{c.axis}: {c.error or c.status}" for c in step.trained)
            run.stop_reason, run.stop_detail = StopReason.ALL_FAILED, f"every candidate of step {step.step} failed"
            self.save()
            raise X3DSearchError(f"every candidate of step {step.step} failed: {detail}; the state is kept: fix "
                                 f"the cause and run `{self._resume_hint}`")
        step.decision, step.scores = self._decide(step.step, f"step{step.step:02d}", title, step.trained, start)
        chosen = next(c for c in step.trained if c.axis == step.decision.winner)
        self._log_scores(f"step {step.step}", step.trained, step.scores, chosen)
        self._evaluate_heldout(chosen)
        step.decision = self._heldout_vs_start(step.step, step.decision, chosen, start)
        step.chosen, step.done = chosen.axis, True
        self._drop_unchosen(step.trained, chosen)
        self.save()
        log.info("step %d: chose %s -> %s, %.4f GFLOPs (x%.2f), top-1 %s; %s", step.step, chosen.axis,
                 chosen.factors.short(), chosen.gflops, chosen.gflops / start.gflops, format_top1(chosen.top1),
                 step.decision.summary())

    def _decide(self, number: int, experiment: str, title: str, models: list[Trial], start: Trial,
                ) -> tuple[Decision, dict[str, Score]]:
        """The judge's decision; under ``--on-tie repeat`` the tied candidates first train with further seeds
        until they separate or reach ``--max-repeats``, every look at the level the looks share."""
        level = look_level(self.settings.tie_rule, self.settings.trainings, self.settings.repeat_limit)
        while self.settings.tie_rule == TieRule.REPEAT:
            tied = [t for t in self.judge.tied_with_best(number, models, start, level)
                    if len(t.runs) < self.settings.repeat_limit]
            if not tied:
                break
            more = [self._repeat(t, len(t.runs)) for t in tied]
            k = min(len(t.runs) for t in tied)
            log.info("%s: %s within noise of each other; training them again (seed %d of at most %d)", title,
                     ", ".join(t.axis for t in tied), k, self.settings.repeat_limit)
            self.trials.run(f"{experiment}-repeat{k}", f"{title}: repeat {k} of the tied candidates",
                            self._seeded(more), start)
        decision, scores = self.judge.decide(number, models, start, level)
        for dropped in decision.dropped_seeds:
            log.warning("%s: %s did not train; that seed leaves the comparisons that need it", title, dropped)
        return decision, scores

    def _heldout_vs_start(self, number: int, decision: Decision, chosen: Trial, start: Trial) -> Decision:
        """The chosen model against the start, on the held-out split when the data has one (the
        validation margin is biased upward: the same videos chose the winner)."""
        if self.heldout is None or decision.vs_start is None:
            return decision
        self._evaluate_heldout(start)
        against = self.judge.compare(number, chosen, start, self._heldout_outcomes, split="test")
        return replace(decision, vs_start=against) if against is not None else decision

    def _heldout_outcomes(self, trial: Trial) -> SplitOutcomes | None:
        return TrainingFolder(self.run_dir.trial_dir(trial.name)).read_outcomes("test")

    def _log_scores(self, what: str, models: list[Trial], scores: dict[str, Score], chosen: Trial) -> None:
        for line in score_lines(models, scores, chosen):
            log.info("%s: %s", what, line)

    def _evaluate_heldout(self, model: Trial) -> None:
        """Top-1 on the held-out split of every run of a model the search keeps (not the split it chose by)."""
        if self.heldout is None:
            return
        for run in model.runs:
            if run.evaluated and run.heldout_top1 is None:
                run.heldout_top1 = self.heldout(run)
        self.save()

    def _drop_unchosen(self, models: list[Trial], chosen: Trial) -> None:
        """Under ``--keep chosen``, the weights of the models a step did not keep go (never a parent's)."""
        if self.keep == "chosen":
            drop_unchosen(self.run_record, self.run_dir.trial_dir, models, chosen)

    def _stop_at(self, current: Trial) -> None:
        """Why the expansion ends at ``current``: it went past the target, or came within tolerance."""
        run = self.run_record
        value = self._value(current)
        if value >= self.target:
            run.stop_reason = StopReason.TARGET_REACHED
            run.stop_detail = f"{value:.4g} {self.unit} reached the {self.target:g} {self.unit} target"
        else:
            run.stop_reason = StopReason.WITHIN_TOLERANCE
            run.stop_detail = (f"{value:.4g} {self.unit} is within the space's tolerance "
                               f"({100 * self.space.tolerance:.0f}%) under the {self.target:g} {self.unit} target")
        self.save()

    # --- contraction --------------------------------------------------------------------------
    def _contract(self) -> None:
        run = self.run_record
        if run.stop_reason in (StopReason.BOUNDED, StopReason.PATH_ENDED) and run.contraction is None:
            return
        if run.contraction is None:
            current = run.current()
            if self._value(current) <= self.target:
                return
            run.contraction = self._new_contraction(current)
            self.save()
        contraction = run.contraction
        if contraction.done:
            return
        base = contraction.start
        if contraction.trained:
            title = (f"contraction: {contraction.overshoot.factors.short()} overshot the {self.target:g} {self.unit} "
                     f"target at {self._value(contraction.overshoot):.4g}; shrink step {len(run.steps)}'s "
                     f"{contraction.axis} expansion of {base.factors.short()} back under it")
            self.trials.future = lambda: []
            self.trials.run("contraction", title, self._runs(contraction.trained), base)
        usable = [c for c in contraction.trained if c.evaluated]
        if usable:
            number = len(run.steps) + 1
            contraction.decision, contraction.scores = self._decide(number, "contraction", "contraction", usable,
                                                                    base)
            kept = next(c for c in usable if c.axis == contraction.decision.winner)
            contraction.chosen = kept.name
            contraction.vs_overshoot = self.judge.compare(number, kept, contraction.overshoot)
            self._log_scores("contraction", usable, contraction.scores, kept)
            self._evaluate_heldout(kept)
            contraction.decision = self._heldout_vs_start(number, contraction.decision, kept, base)
            self._drop_unchosen(usable, kept)
            against = contraction.vs_overshoot
            spec = score_spec(self.settings.selection)
            noise = ("no interval" if against is None else
                     f"{against.margin:+{spec}} against the overshooting model "
                     f"({against.verdict()}, one-sided 90% bounds {against.ci[0]:{spec}}.."
                     f"{against.ci[1]:{spec}})")
            log.info("contraction: kept %s -> %s, %.4f GFLOPs, top-1 %s; %s", kept.axis, kept.factors.short(),
                     kept.gflops, format_top1(kept.top1), noise)
        else:
            log.warning("contraction: no setting at most the target trained successfully; the final model is "
                        "the last one under the target, %s", base.factors.short())
        contraction.done = True
        self.save()

    def _new_contraction(self, overshoot: Trial) -> Contraction:
        last = next(s for s in reversed(self.run_record.steps) if s.done)
        base = last.start
        found, skips = self._timed_flops(lambda: contraction_candidates(
            self.space, base.factors, overshoot.factors, last.chosen, self.data.num_classes, self.target,
            self.measure, self.settings.contraction))
        for skip in skips:
            log.info("contraction along %s: nothing fits (%s)", skip.axis, skip.reason)
        candidates = [self._trial(contraction_trial_name(p.axis), p, base) for p in found]
        return Contraction(overshoot=overshoot, start=base, axis=last.chosen,
                           candidates=candidates + [_skipped(contraction_trial_name(s.axis), s) for s in skips])

    # --- the end ------------------------------------------------------------------------------
    def _final(self) -> Trial:
        contraction = self.run_record.contraction
        if contraction is not None:
            return contraction.kept or contraction.start
        return self.run_record.current()

    def _finish(self) -> None:
        run = self.run_record
        final = self._final()
        run.final = final
        run.status = RunStatus.FINISHED
        self.run_dir.write_final_model(final, self.data.num_classes, self.target, self.unit)
        self.save()
        log.info("search finished: %s, %.4g %s (%.1f%% of the %g %s target), top-1 %s", final.factors.short(),
                 self._value(final), self.unit, 100 * self._value(final) / self.target, self.target, self.unit,
                 format_top1(final.top1))


def _skipped(name: str, skip: Skip) -> Trial:
    """An axis that proposed nothing, kept in the record with the reason."""
    return Trial(name=name, axis=skip.axis, factors=None, gflops=None, status=TrialStatus.SKIPPED,
                 error=skip.reason)
