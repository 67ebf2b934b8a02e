"""Starting weights for fine-tuning (``--init``): converted checkpoints or a previous ``model.pt``."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import X3DSearchError
from ..utils.logging import get_logger

log = get_logger("train")

#: The classifier; its shape depends on the class count, so a mismatch there is expected.
CLASSIFIER_PREFIX = "head.fc2."


@dataclass
class InitWeights:
    path: Path
    state: dict[str, torch.Tensor]
    shortcut_bn: bool


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
    if isinstance(data, dict):
        if isinstance(data.get("shortcut_bn"), bool):
            shortcut_bn = data["shortcut_bn"]
        for key in ("model_state", "state_dict", "model"):
            if isinstance(data.get(key), dict):
                data = data[key]
                break
    if not isinstance(data, dict) or not data or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise X3DSearchError(f"--init {path}: holds no state dict of tensors")
    state = {k.removeprefix("module."): v for k, v in data.items()}
    return InitWeights(path, state, shortcut_bn)


def apply_init(model: nn.Module, init: InitWeights) -> None:
    """Load every tensor; only the classifier may be skipped, when the class count differs."""
    own = model.state_dict()
    state = dict(init.state)
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
