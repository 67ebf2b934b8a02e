"""Starting weights for fine-tuning (``--init``): converted checkpoints or a previous ``model.pt``.

A ``model.pt`` records its factors; when they differ from the model's, the weights are grown
(:func:`x3dsearch.models.grow.grow`) so the model starts as the init's function.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError, X3DSearchError
from ..factors import Factors
from ..models.grow import grow
from ..utils.logging import get_logger

log = get_logger("train")

#: The classifier; its shape depends on the class count, so a mismatch there is expected.
CLASSIFIER_PREFIX = "head.fc2."


@dataclass
class InitWeights:
    path: Path
    state: dict[str, torch.Tensor]
    shortcut_bn: bool
    factors: Factors | None = None  # what a trainer's model.pt records; None for converted checkpoints


def read_init(path: str | Path) -> InitWeights:
    """A state dict file, possibly wrapped as ``{"model_state"|"state_dict": ..., "shortcut_bn": bool}``."""
    path = Path(path)
    if not path.is_file():
        raise X3DSearchError(f"--init checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for foreign or corrupt files
        raise X3DSearchError(f"--init {path}: not a readable PyTorch state dict "
                             f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    shortcut_bn = True
    factors = None
    if isinstance(data, dict):
        if isinstance(data.get("shortcut_bn"), bool):
            shortcut_bn = data["shortcut_bn"]
        if isinstance(data.get("factors"), dict):
            try:
                factors = Factors.from_dict(data["factors"])
            except ConfigError as exc:
                raise X3DSearchError(f"--init {path}: its recorded factors are invalid ({exc})") from None
        for key in ("model_state", "state_dict", "model"):
            if isinstance(data.get(key), dict):
                data = data[key]
                break
    if not isinstance(data, dict) or not data or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise X3DSearchError(f"--init {path}: holds no state dict of tensors")
    state = {k.removeprefix("module."): v for k, v in data.items()}
    return InitWeights(path, state, shortcut_bn, factors)


def apply_init(model: nn.Module, init: InitWeights, seed: int = 0) -> None:
    """Load every tensor; only the classifier may be skipped, when the class count differs.

    An init from smaller factors is grown to the model's first, so it starts as the init's function.
    The new units' fresh weights come from a generator of their own, seeded with ``seed`` (the
    training's): the global random streams are left as they were, so a grown training draws the
    same dropout and clips as one from scratch with the same seed, whatever it grew.
    """
    own = model.state_dict()
    state = dict(init.state)
    factors = getattr(model, "factors", None)
    if init.factors is not None and isinstance(factors, Factors) and init.factors != factors:
        try:
            state = grow(state, init.factors, factors, shortcut_bn=init.shortcut_bn,
                         generator=torch.Generator().manual_seed(int(seed)))
        except ConfigError as exc:
            raise ConfigError(f"--init {init.path}: {exc}") from None
        log.info("init: grew %s -> %s from %s", init.factors.short(), factors.short(), init.path)
    skipped = [k for k in state if k.startswith(CLASSIFIER_PREFIX) and k in own and state[k].shape != own[k].shape]
    for k in skipped:
        del state[k]
    mismatched = [k for k in state if k in own and state[k].shape != own[k].shape]
    if mismatched:
        k = mismatched[0]
        raise X3DSearchError(f"--init {init.path}: '{k}' has shape {tuple(state[k].shape)} but the model needs "
                             f"{tuple(own[k].shape)} (different factors?)")
    missing = [k for k in own if k not in state and k not in skipped]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        what = f"missing '{missing[0]}'" if missing else f"unexpected '{unexpected[0]}'"
        raise X3DSearchError(f"--init {init.path}: does not fit this architecture ({what}; "
                             f"{len(missing)} missing, {len(unexpected)} unexpected keys)")
    model.load_state_dict(state, strict=False)
    if skipped:
        log.info("init: loaded %s; the classifier starts fresh (class count differs)", init.path)
    else:
        log.info("init: loaded %s", init.path)
