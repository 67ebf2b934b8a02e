"""One training session of :func:`~x3dsearch.train.trainer.train_and_evaluate`: set-up (model,
optimiser, schedule, data health, a checkpoint's state), the step loop with its checkpoints, and
the finish (precise-BN, validation, the result)."""
from __future__ import annotations

import math
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch

from ..budget import Budget, training_macs
from ..complexity import complexity
from ..data import DataHealth, VideoClipDataset, make_loader
from ..errors import X3DSearchError
from ..factors import Factors
from ..models import build_model
from ..status import TrialStatus
from ..utils.fmt import format_duration
from ..utils.logging import get_logger
from .checkpoint import rng_state, save_checkpoint, save_model_weights, seed_everything, set_rng_state
from .evaluate import autocast, evaluate, precise_bn, to_device
from .folder import TrainingFolder
from .init_weights import apply_init
from .objective import build_training_objective
from .optim import WarmupCosine, build_optimizer, build_weight_average
from .progress import ProgressBar
from .result import TrainResult
from .runtime import peak_memory_mb, to_channels_last, use_channels_last
from .trainlog import file_only

log = get_logger("train")

Report = Callable[[dict, Path], None]


class Diverged(Exception):
    """The loss (or the gradient norm) stopped being finite."""


@dataclass
class Progress:
    """Counters a checkpoint carries besides model, optimiser and schedule."""

    step: int = 0
    epoch: int = 0               # the epoch in progress (completed epochs = epoch when between epochs)
    epoch_batches: int = 0       # loader position inside ``epoch``
    loss_sum: float = 0.0        # current epoch's loss, summed over its batches
    loss_batches: int = 0
    term_sums: dict[str, float] = field(default_factory=dict)  # the loss's parts (ce, kd), same batches
    first_terms: dict[str, float] = field(default_factory=dict)  # the parts at the first step
    clips_seen: int = 0
    train_time_s: float = 0.0    # time spent in training steps (with data loading), all sessions
    wall_time_s: float = 0.0     # wall time of earlier sessions, up to their last checkpoint
    seen: int = 0                # clips for the data-health ratio
    bad: list[str] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    health: dict = field(default_factory=dict)  # DataHealth.to_dict(); empty in older checkpoints


@dataclass
class Plan:
    batches_per_epoch: int
    total_steps: int
    epochs: int
    warmup_steps: int
    drop_last: bool


class TrainingSession:
    """One training session: set-up, the step loop, and the finish (precise-BN, validation)."""

    def __init__(self, factors: Factors, budget: Budget, seed: int, out_dir: Path, device: torch.device,
                 root: Path, train_set: Any, val_set: Any, num_classes: int, shortcut_bn: bool, config: dict,
                 report: Report | None, progress: bool, session_start: float):
        self.factors, self.budget, self.seed, self.out_dir, self.device = factors, budget, seed, out_dir, device
        self.folder = TrainingFolder(out_dir)
        self.root, self.train_set, self.val_set, self.num_classes = root, train_set, val_set, num_classes
        self.fit_set = train_set  # what the objective trains on (distillation may need larger crops)
        self.shortcut_bn, self.config, self.report_fn, self.show_progress = shortcut_bn, config, report, progress
        self.grown = config.get("init") is not None  # from the config: a resumed grown training agrees
        self.session_start = session_start
        self.state = Progress()
        self.cuda = device.type == "cuda"
        self.amp = budget.amp and self.cuda
        self.channels_last = False
        self.traceback: str | None = None
        self.started = False  # set-up done: from here on errors become a status, never an exception
        self.gflops = 0.0
        self.params_m = 0.0
        self.health: Any = None                            # DataHealth, once set up
        self.val_scored: tuple[int | None, int] = (None, 0)  # validation videos scored, left out

    # --- set-up ---------------------------------------------------------------------------
    def setup(self, checkpoint: dict | None, init_weights: Any) -> None:
        seed_everything(self.seed)
        model = build_model(self.factors, self.num_classes, dropout=self.budget.dropout,
                            shortcut_bn=self.shortcut_bn)
        if init_weights is not None:
            apply_init(model, init_weights, seed=self.seed)
        cost = complexity(self.factors, self.num_classes)
        self.gflops, self.params_m = cost.gflops, cost.params_m
        self.plan = self._plan()
        self.model = model.to(self.device)
        if self.cuda:
            torch.backends.cudnn.benchmark = True
            torch.cuda.reset_peak_memory_stats(self.device)
        shape = (self.budget.batch_size, 3, self.factors.frames, self.factors.crop, self.factors.crop)
        self.channels_last = use_channels_last(self.budget.channels_last, self.model, shape, self.device)
        if self.budget.channels_last:
            log.info("memory format: %s", "channels_last_3d" if self.channels_last else "contiguous")
        if self.channels_last:
            self.model = to_channels_last(self.model)
        self.optimizer = build_optimizer(self.model, self.budget)
        self.average = build_weight_average(self.model, self.budget)
        self.schedule = WarmupCosine(self.optimizer, self.budget.peak_lr(self.grown),
                                     self.plan.total_steps, self.plan.warmup_steps, self.budget.warmup_start_factor)
        self.objective = build_training_objective(self.budget.distill, label_smoothing=self.budget.label_smoothing,
                                                  model=self.model, factors=self.factors,
                                                  num_classes=self.num_classes, device=self.device)
        if self.objective.extra_crop is not None:
            self.fit_set = VideoClipDataset(self.root, "train", self.factors, train=True, seed=self.seed,
                                            extra_crop=self.objective.extra_crop)
            log.info("training clips at crops %d (the model's) and %d (the objective's), from one decode",
                     self.factors.crop, self.objective.extra_crop)
        # Set-up may or may not draw random numbers (a FLOP count not yet cached builds a model, a
        # teacher loads): restart the stream so the training steps' dropout never depends on it.
        seed_everything(self.seed)
        if checkpoint is not None:
            self.model.load_state_dict(checkpoint["model"])
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            self.schedule.load_state_dict(checkpoint["scheduler"])
            if self.average is not None:
                self.average.load_state_dict(checkpoint["ema"])
            self.state = Progress(**checkpoint["progress"])
            set_rng_state(checkpoint["rng"])
        self.health = DataHealth(max_bad_fraction=0.05, min_seen=20)
        if self.state.health:
            self.health.restore(self.state.health)
        elif self.state.seen:  # a checkpoint written before reads were counted per phase
            self.health.update(list(self.state.bad), self.state.seen)
        self.started = True
        log.info("%.4f GFLOPs, %.2f M params | %d steps = %d epochs x %d batches of %d | lr %.4g, warm-up %d steps",
                 self.gflops, self.params_m, self.plan.total_steps, self.plan.epochs, self.plan.batches_per_epoch,
                 self.budget.batch_size, self.schedule.base_lr, self.plan.warmup_steps)

    def _loader(self, dataset: Any, *, epoch: int, start: int = 0, shuffle: bool, fraction: float = 1.0,
                drop_last: bool = False) -> Any:
        return make_loader(dataset, self.budget.batch_size, seed=self.seed, epoch=epoch, start=start,
                           shuffle=shuffle, fraction=fraction, workers=self.budget.workers, drop_last=drop_last)

    def _plan(self) -> Plan:
        b = self.budget
        drop_last = True
        batches = len(self._loader(self.train_set, epoch=0, shuffle=True, fraction=b.train_fraction,
                                   drop_last=True))
        if batches == 0:  # fewer clips than one batch: keep the partial batch
            drop_last = False
            batches = len(self._loader(self.train_set, epoch=0, shuffle=True, fraction=b.train_fraction))
        if batches == 0:
            raise X3DSearchError("the training split yields no clips")
        total = b.iterations if b.iterations is not None else b.epochs_for(self.grown) * batches
        return Plan(batches_per_epoch=batches, total_steps=total, epochs=math.ceil(total / batches),
                    warmup_steps=int(round(b.warmup_epochs * batches)), drop_last=drop_last)

    # --- the run --------------------------------------------------------------------------
    def execute(self, checkpoint: dict | None, init_weights: Any, record: dict | None) -> TrainResult:
        """Set up, train and validate. Bad user input raises; anything else becomes a status."""
        try:
            self.setup(checkpoint, init_weights)
            if record is not None:
                self.folder.write_config(record)
            self._train()
            return self._finish()
        except X3DSearchError as exc:
            if not self.started:  # raised while setting up: the user's input is wrong
                raise
            self.traceback = traceback.format_exc()
            return self._result(TrialStatus.FAILED, str(exc))
        except Diverged as exc:
            log.warning("diverged: %s", exc)
            return self._result(TrialStatus.DIVERGED, str(exc))
        except Exception as exc:  # noqa: BLE001 - a failed candidate must never crash the search
            self.traceback = traceback.format_exc()
            return self._result(TrialStatus.FAILED, f"{type(exc).__name__}: {exc}")

    def _train(self) -> None:
        s, plan, budget = self.state, self.plan, self.budget
        bar = ProgressBar(plan.total_steps, enabled=self.show_progress)
        self.bar = bar
        session_steps, session_train_time = 0, 0.0
        log_every = max(1, plan.batches_per_epoch // 5)
        ckpt_every = budget.checkpoint_every
        while s.step < plan.total_steps:
            self.model.train()
            loader = self._loader(self.fit_set, epoch=s.epoch, start=s.epoch_batches * budget.batch_size,
                                  shuffle=True, fraction=budget.train_fraction, drop_last=plan.drop_last)
            tick = time.monotonic()
            for batch in _isolated(loader):
                loss = self._step(batch)
                s.step += 1
                s.epoch_batches += 1
                s.loss_sum += loss
                s.loss_batches += 1
                s.clips_seen += len(batch["label"])
                now = time.monotonic()
                s.train_time_s += now - tick
                session_train_time += now - tick
                session_steps += 1
                eta = (plan.total_steps - s.step) * session_train_time / session_steps
                text = (f"epoch {s.epoch + 1}/{plan.epochs} loss {s.loss_sum / s.loss_batches:.4f} "
                        f"{s.clips_seen / max(s.train_time_s, 1e-9):.1f} clips/s ETA {format_duration(eta)}")
                bar.update(s.step, text, force=s.step == plan.total_steps)
                if s.epoch_batches % log_every == 0:
                    self._progress_line(f"step {s.step}/{plan.total_steps} {text} lr {self._last_lr():.4g}")
                if s.step >= plan.total_steps or s.epoch_batches >= plan.batches_per_epoch:
                    break
                if ckpt_every and s.step % ckpt_every == 0:
                    self._checkpoint()
                    self._report(self._metrics(final=False))
                tick = time.monotonic()
            if s.epoch_batches == 0:
                raise RuntimeError(f"the training loader yielded no batch in epoch {s.epoch + 1}")
            bar.clear()
            if s.step >= plan.total_steps:
                self._checkpoint()  # the last epoch's line is written after validation
                break
            line = self._epoch_line()
            log.info("epoch %d/%d: %s | %s", s.epoch + 1, plan.epochs, _line_text(line), self.health.summary())
            s.history.append(line)
            s.epoch += 1
            s.epoch_batches, s.loss_sum, s.loss_batches, s.term_sums = 0, 0.0, 0, {}
            self._checkpoint()
            self._write_metrics()
            self._report(self._metrics(final=False))
        bar.clear()

    def _step(self, batch: dict) -> float:
        clips = to_device(batch["clip"], self.device, self.channels_last)
        labels = batch["label"].to(self.device, non_blocking=True)
        extra = batch.get("extra_clip")
        if extra is not None:
            extra = to_device(extra, self.device, self.channels_last)
        with autocast(self.device, self.amp):
            loss, _, terms = self.objective(self.model, clips, labels, extra)
        value = loss.item()
        if not math.isfinite(value):
            raise Diverged(f"loss became {value} at step {self.state.step + 1}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.budget.grad_clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.budget.grad_clip)
            if not math.isfinite(norm.item()):
                raise Diverged(f"gradient norm became {norm.item()} at step {self.state.step + 1}")
        self.optimizer.step()
        self.schedule.step()
        if self.average is not None:
            self.average.update_parameters(self.model)
        if self.state.step == 0:
            self.state.first_terms = dict(terms)
        for name, part in terms.items():
            self.state.term_sums[name] = self.state.term_sums.get(name, 0.0) + part
        self.state.seen += len(batch["label"])
        if batch.get("bad"):
            self.state.bad.extend(batch["bad"])
        self.health.update(batch.get("bad", []), len(batch["label"]), "train")
        return value

    def _finish(self) -> TrainResult:
        s, budget = self.state, self.budget
        model: torch.nn.Module = self.model  # scored, saved, and so what a grown child starts from
        if self.average is not None:
            model = self.average.module
            log.info("weights: moving average of every step's (decay %g)", budget.ema_decay)
        if budget.precise_bn_batches:
            loader = self._loader(self.train_set, epoch=self.plan.epochs, shuffle=True)
            used, bad = precise_bn(model, _isolated(loader), budget.precise_bn_batches, self.device,
                                   amp=self.amp, channels_last=self.channels_last, health=self.health)
            s.bad.extend(bad)
            log.info("precise-BN: statistics recomputed over %d batches", used)
        started = time.monotonic()
        loader = self._loader(self.val_set, epoch=0, shuffle=False)
        ev = evaluate(model, _isolated(loader), self.num_classes, self.device, amp=self.amp,
                      channels_last=self.channels_last, keys=self.val_set.keys, split="val", health=self.health)
        s.bad.extend(ev.bad)
        left_out = f" ({ev.excluded} unreadable left out)" if ev.excluded else ""
        log.info("validation: %d videos%s, %d views, %.1f s", ev.videos, left_out, ev.views,
                 time.monotonic() - started)
        line = self._epoch_line()
        line.update(top1=ev.top1, top5=ev.top5)
        log.info("epoch %d/%d: %s, top-1 %.2f%% | %s", s.epoch + 1, self.plan.epochs, _line_text(line), ev.top1,
                 self.health.summary())
        s.history.append(line)
        s.epoch += 1
        self._write_metrics()
        save_model_weights(self.folder.model, model, factors=self.factors.to_dict(),
                           num_classes=self.num_classes, shortcut_bn=self.shortcut_bn)
        self.folder.write_outcomes(ev.outcomes)
        self.val_scored = (ev.videos, ev.excluded)
        result = self._result(TrialStatus.OK, None, top1=ev.top1, top5=ev.top5, train_loss=line["train_loss"])
        self._report({**self._metrics(final=True), **result.to_dict()})
        return result

    # --- bookkeeping ----------------------------------------------------------------------
    def _epoch_line(self) -> dict:
        """One line of metrics.jsonl. ``train_<part>`` are the loss's parts (``train_ce``, and ``train_kd``
        when distilling: the weighted term, so they add up to ``train_loss``); the first epoch's line
        also has them at the first step (``first_ce``, ``first_kd``), the balance at the start."""
        s = self.state
        line = {"epoch": s.epoch + 1, "step": s.step,
                "train_loss": s.loss_sum / s.loss_batches if s.loss_batches else None,
                "lr": self._last_lr(), "clips_seen": s.clips_seen,
                "train_clips_per_s": s.clips_seen / s.train_time_s if s.train_time_s else 0.0,
                "train_time_s": s.train_time_s, "bad_videos": len(set(s.bad)),
                "bad_reads": self.health.bad_reads}
        if s.loss_batches:
            line.update({f"train_{name}": total / s.loss_batches for name, total in s.term_sums.items()})
        if s.epoch == 0:
            line.update({f"first_{name}": part for name, part in s.first_terms.items()})
        return line

    def _metrics(self, final: bool) -> dict:
        s = self.state
        metrics = {"epoch": s.epoch, "step": s.step, "progress": s.step / self.plan.total_steps,
                   "train_loss": (s.history[-1]["train_loss"] if s.history and not s.loss_batches
                                  else s.loss_sum / max(1, s.loss_batches)),
                   "lr": self._last_lr(), "clips_seen": s.clips_seen,
                   "train_clips_per_s": s.clips_seen / s.train_time_s if s.train_time_s else 0.0,
                   "wall_time_s": self._wall_time(), "bad_videos": len(set(s.bad)), "final": final}
        if final and s.history:
            metrics.update({k: s.history[-1][k] for k in ("top1", "top5") if k in s.history[-1]})
        return metrics

    def _last_lr(self) -> float:
        """The rate the latest step used."""
        return self.schedule.lr_at(max(0, self.state.step - 1))

    def _wall_time(self) -> float:
        return self.state.wall_time_s + time.monotonic() - self.session_start

    def _checkpoint(self) -> None:
        self.state.health = self.health.to_dict()
        state = asdict(self.state)
        state["wall_time_s"] = self._wall_time()
        save_checkpoint(self.folder.checkpoint, {
            "config": self.config, "shortcut_bn": self.shortcut_bn, "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.schedule.state_dict(),
            "progress": state, "rng": rng_state(),
            **({"ema": self.average.state_dict()} if self.average is not None else {})})

    def _write_metrics(self) -> None:
        self.folder.write_metrics(self.state.history)

    def _report(self, metrics: dict) -> None:
        if self.report_fn is not None:
            self.report_fn(metrics, self.out_dir)

    def _progress_line(self, text: str) -> None:
        """Every fifth of an epoch: to the log file, and to the terminal when no bar is drawn there."""
        if self.show_progress and not self.bar.enabled:
            log.info("%s", text)
        else:
            file_only(text)

    def _result(self, status: TrialStatus, error: str | None, top1: float | None = None, top5: float | None = None,
                train_loss: float | None = None) -> TrainResult:
        s = self.state
        val_videos, val_excluded = self.val_scored
        health = self.health
        return TrainResult(status=status, error=error, top1=top1, top5=top5, train_loss=train_loss,
                           wall_time_s=self._wall_time(),
                           train_clips_per_s=s.clips_seen / s.train_time_s if s.train_time_s else 0.0,
                           peak_memory_mb=peak_memory_mb(self.device), clips_seen=s.clips_seen,
                           train_macs=training_macs(self.gflops, s.clips_seen), gflops=self.gflops,
                           params_m=self.params_m, epochs_done=len(s.history), bad_videos=len(set(s.bad)),
                           val_videos=val_videos, val_excluded=val_excluded,
                           bad_reads=health.bad_reads if health is not None else {})


# --- helpers ------------------------------------------------------------------------------
def _isolated(loader: Iterable[dict]) -> Iterator[dict]:
    """Iterate a loader without touching the global RNGs, so dropout draws the same numbers
    whether an epoch starts from its beginning or from a resumed loader position."""
    with torch.random.fork_rng(devices=[]):
        iterator = iter(loader)
    while True:
        with torch.random.fork_rng(devices=[]):
            try:
                batch = next(iterator)
            except StopIteration:
                return
        yield batch


def _line_text(line: dict) -> str:
    return (f"loss {line['train_loss']:.4f}, {line['clips_seen']} clips, "
            f"{line['train_clips_per_s']:.1f} clips/s, lr {line['lr']:.4g}")
