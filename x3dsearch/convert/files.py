"""Reading source checkpoints and writing / reading converted x3dsearch weight files.

A converted file is a plain dict saved with ``torch.save``::

    {"model_state": {...}, "factors": {...}, "num_classes": N,
     "shortcut_bn": bool, "source": "slowfast" | "pytorchvideo"}

It records the structural switch the weights need, so :func:`load_converted`
rebuilds exactly the network they came from. Files are read with
``weights_only=True``: a checkpoint from the internet never runs code here.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from ..errors import X3DSearchError
from ..factors import Factors
from ..models.x3d import X3D, build_model
from ..utils.io import atomic_write_bytes
from .layouts import SOURCES
from .state import ConversionError, Converted, convert_state_dict

#: Where the two formats keep the state dict inside a checkpoint dict, tried in order.
_STATE_KEYS = ("model_state", "state_dict")
_FILE_KEYS = ("model_state", "factors", "num_classes", "shortcut_bn", "source")


@dataclass(frozen=True)
class ConvertedMeta:
    factors: Factors
    num_classes: int
    shortcut_bn: bool
    source: str


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _load(path: Path) -> Any:
    if not path.is_file():
        raise ConversionError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises several types for "not a checkpoint"
        raise ConversionError(f"{path}: not a PyTorch checkpoint ({_first_line(exc)})") from None


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in a SlowFast checkpoint (under ``model_state``) or a pytorchvideo one
    (raw, or under ``model_state`` / ``state_dict``)."""
    path = Path(path)
    obj = _load(path)
    if not isinstance(obj, Mapping):
        raise ConversionError(f"{path}: not a checkpoint: it holds a {type(obj).__name__}, not a dict")
    state = next((obj[key] for key in _STATE_KEYS if key in obj), obj)
    if not isinstance(state, Mapping) or not state:
        raise ConversionError(f"{path}: no state dict: expected a dict of tensors, raw or under "
                              f"{' / '.join(repr(k) for k in _STATE_KEYS)}")
    return dict(state)


def save_converted(path: str | Path, converted: Converted) -> None:
    """Write the converted model atomically (temp file + rename): never a half-written file."""
    payload = {
        "model_state": converted.model.state_dict(),
        "factors": converted.factors.to_dict(),
        "num_classes": int(converted.num_classes),
        "shortcut_bn": bool(converted.model.shortcut_bn),
        "source": converted.source,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def convert_checkpoint(checkpoint: str | Path, source: str, factors: Factors, output: str | Path,
                       num_classes: int | None = None, reinit_head: bool = False) -> Converted:
    """Read ``checkpoint``, map it onto our X3D for ``factors`` and write ``output``."""
    checkpoint, output = Path(checkpoint), Path(output)
    if output.resolve() == checkpoint.resolve():
        raise ConversionError(f"output {output} would overwrite the source checkpoint; choose another -o")
    converted = convert_state_dict(read_state_dict(checkpoint), source, factors, num_classes=num_classes,
                                   reinit_head=reinit_head)
    save_converted(output, converted)
    return converted


def _first_misfit(state: Mapping[str, Any], expected: Mapping[str, torch.Tensor]) -> str | None:
    for key, tensor in expected.items():
        if key not in state:
            return f"missing key '{key}'"
        value = state[key]
        if not isinstance(value, torch.Tensor) or value.shape != tensor.shape:
            got = list(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            return f"key '{key}' is {got}, expected {list(tensor.shape)}"
    extra = next((key for key in state if key not in expected), None)
    return f"unexpected key '{extra}'" if extra is not None else None


def load_converted(path: str | Path, dropout: float = 0.5) -> tuple[X3D, ConvertedMeta]:
    """Rebuild the model a converted file describes (with its recorded switch) and load it strictly.

    The model is returned in training mode, as ``build_model`` makes it; call
    ``.eval()`` for inference. ``dropout`` only affects the rebuilt head.
    """
    path = Path(path)
    obj = _load(path)
    if not isinstance(obj, Mapping) or any(key not in obj for key in _FILE_KEYS):
        missing = next((k for k in _FILE_KEYS if not isinstance(obj, Mapping) or k not in obj))
        raise ConversionError(f"{path}: not a converted x3dsearch model (no '{missing}'); "
                              f"make one with x3dsearch convert")
    try:
        factors = Factors.from_dict(obj["factors"])
    except X3DSearchError as exc:
        raise ConversionError(f"{path}: {exc}") from None
    num_classes, shortcut_bn, source = obj["num_classes"], obj["shortcut_bn"], obj["source"]
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConversionError(f"{path}: 'num_classes' must be a positive integer, got {num_classes!r}")
    if not isinstance(shortcut_bn, bool):
        raise ConversionError(f"{path}: 'shortcut_bn' must be true or false, got {shortcut_bn!r}")
    if source not in SOURCES:
        raise ConversionError(f"{path}: unknown 'source' {source!r} (expected {', '.join(SOURCES)})")
    model = build_model(factors, num_classes, dropout=dropout, shortcut_bn=shortcut_bn)
    state = obj["model_state"]
    misfit = _first_misfit(state, model.state_dict()) if isinstance(state, Mapping) else "it is not a dict"
    if misfit is not None:
        raise ConversionError(f"{path}: 'model_state' does not fit the recorded architecture: {misfit}")
    model.load_state_dict(state, strict=True)
    return model, ConvertedMeta(factors=factors, num_classes=num_classes, shortcut_bn=shortcut_bn, source=source)
