"""Training budgets: every number of a proxy or full training lives in one YAML file.

Shipped presets are ``smoke`` (tests, seconds), ``quick`` (CPU default),
``standard`` (GPU default) and ``paper`` (long proxies for real datasets).
``auto`` picks ``standard`` when CUDA is available and ``quick`` otherwise.
A path to a YAML file is accepted wherever a preset name is.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from .distill.config import DistillConfig
from .errors import ConfigError
from .utils.io import read_yaml

BUDGET_DIR = Path(__file__).parent / "budgets"
PRESET_NAMES = ("smoke", "quick", "standard", "paper")
#: Every name ``--budget`` takes besides a file.
BUDGET_NAMES = ("auto", *PRESET_NAMES)


@dataclass(frozen=True)
class Budget:
    """One training schedule (reference recipe: SGD + Nesterov, cosine, linear warm-up).

    ``lr`` is the rate at ``lr_batch`` clips per step and scales linearly with
    ``batch_size``. ``iterations``, when set, replaces ``epochs``.
    """

    name: str = "custom"
    epochs: int = 1
    iterations: int | None = None
    batch_size: int = 8
    lr: float = 0.1
    lr_batch: int = 128
    #: Multiplies ``lr`` in a training that starts from grown weights (``--init``, ``--proxy-init inherit``):
    #: fine-tuning a network that already computes its parent's function may want a gentler rate.
    init_lr_scale: float = 1.0
    #: Epochs of a training that starts from grown weights; null: ``epochs``. A grown network starts where
    #: its parent ended, so a shorter fine-tuning may tell candidates apart for less (``iterations`` wins).
    init_epochs: int | None = None
    warmup_epochs: float = 0.0
    warmup_start_factor: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-5
    label_smoothing: float = 0.0
    grad_clip: float | None = None
    dropout: float = 0.5
    train_fraction: float = 1.0
    eval_clips: int | None = None
    eval_temporal_views: int = 1
    eval_spatial_views: int = 1
    precise_bn_batches: int = 0
    #: Validate (and save, and grow children from) an exponential moving average of the weights instead
    #: of the last step's: ``avg = decay * avg + (1 - decay) * weights`` after every step, from the first
    #: step's weights. Averaging smooths the last steps' noise out of a short proxy; null trains without.
    ema_decay: float | None = None
    checkpoint_every: int | None = None
    workers: int = 0
    amp: bool = True
    channels_last: bool = True
    full_epochs: int = 300
    #: ResKD in every training of this budget (how a search space asks for it); a ``distill:`` mapping
    #: in the YAML. ``train_and_evaluate(..., distill=)`` is the direct way for one training.
    distill: DistillConfig | None = None
    notes: str = ""

    def __post_init__(self) -> None:
        positive_ints = ("epochs", "batch_size", "lr_batch", "eval_temporal_views", "eval_spatial_views",
                         "full_epochs")
        for name in positive_ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"budget '{self.name}': '{name}' must be a positive integer, got {value!r}")
        for name in ("iterations", "init_epochs", "eval_clips", "checkpoint_every"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"budget '{self.name}': '{name}' must be a positive integer or null, "
                                  f"got {value!r}")
        for name in ("precise_bn_batches", "workers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"budget '{self.name}': '{name}' must be a non-negative integer, got {value!r}")
        for name in ("lr", "momentum", "weight_decay", "warmup_epochs", "label_smoothing", "dropout",
                     "warmup_start_factor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"budget '{self.name}': '{name}' must be a non-negative number, got {value!r}")
        if self.lr <= 0:
            raise ConfigError(f"budget '{self.name}': 'lr' must be positive")
        if isinstance(self.init_lr_scale, bool) or not isinstance(self.init_lr_scale, (int, float)) \
                or self.init_lr_scale <= 0:
            raise ConfigError(f"budget '{self.name}': 'init_lr_scale' must be a positive number, "
                              f"got {self.init_lr_scale!r}")
        if not 0 < self.train_fraction <= 1:
            raise ConfigError(f"budget '{self.name}': 'train_fraction' must be in (0, 1], got {self.train_fraction!r}")
        if not 0 <= self.dropout < 1 or not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"budget '{self.name}': 'dropout' and 'label_smoothing' must be in [0, 1)")
        if self.grad_clip is not None and (not isinstance(self.grad_clip, (int, float)) or self.grad_clip <= 0):
            raise ConfigError(f"budget '{self.name}': 'grad_clip' must be a positive number or null")
        if self.ema_decay is not None and (isinstance(self.ema_decay, bool)
                                           or not isinstance(self.ema_decay, (int, float))
                                           or not 0 < self.ema_decay < 1):
            raise ConfigError(f"budget '{self.name}': 'ema_decay' must be a number in (0, 1) or null, "
                              f"got {self.ema_decay!r}")
        if isinstance(self.distill, Mapping):
            object.__setattr__(self, "distill", DistillConfig.from_dict(self.distill))
        if self.distill is not None and not isinstance(self.distill, DistillConfig):
            raise ConfigError(f"budget '{self.name}': 'distill' must be a mapping or null")

    @property
    def scaled_lr(self) -> float:
        """Learning rate for ``batch_size`` by the linear scaling rule."""
        return self.lr * self.batch_size / self.lr_batch

    def peak_lr(self, grown: bool) -> float:
        """The schedule's peak rate: ``scaled_lr``, times ``init_lr_scale`` when the training starts from
        grown weights."""
        return self.scaled_lr * (self.init_lr_scale if grown else 1.0)

    def epochs_for(self, grown: bool) -> int:
        """Epochs of a training, ``init_epochs`` when it starts from grown weights and that is set."""
        return self.init_epochs if grown and self.init_epochs is not None else self.epochs

    def replace(self, **changes: Any) -> "Budget":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], name: str | None = None) -> "Budget":
        if not isinstance(data, Mapping):
            raise ConfigError(f"budget '{name or '?'}' must be a mapping")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        label = name or data.get("name", "custom")
        if unknown:
            raise ConfigError(f"budget '{label}': unknown key '{unknown[0]}'")
        values = dict(data)
        if name is not None:
            values.setdefault("name", name)
        return cls(**values)


def load_budget(spec: str | Path | Budget, cuda: bool | None = None) -> Budget:
    """A preset name (``smoke``, ``quick``, ``standard``, ``paper``, ``auto``) or a YAML path."""
    if isinstance(spec, Budget):
        return spec
    text = str(spec)
    if text == "auto":
        if cuda is None:
            import torch  # only to resolve 'auto': importing torch takes 2.4 s, which flops, show and plot skip

            cuda = torch.cuda.is_available()
        text = "standard" if cuda else "quick"
    if text in PRESET_NAMES:
        path = BUDGET_DIR / f"{text}.yaml"
        name = text
    else:
        path = Path(text)
        name = path.stem
        if not path.is_file():
            raise ConfigError(f"unknown budget '{text}' (choose from auto, {', '.join(PRESET_NAMES)} "
                              f"or give a YAML file)")
    data = read_yaml(path, f"budget file {path}") or {}
    return Budget.from_dict(data, name=data.get("name", name) if isinstance(data, Mapping) else name)


def training_macs(gflops: float, clips: int) -> float:
    """Multiply-adds of training on ``clips`` clips: forward + backward is about 3x forward."""
    return 3.0 * gflops * 1e9 * clips
