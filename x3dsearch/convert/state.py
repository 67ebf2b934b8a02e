"""State-dict conversion between our X3D and the SlowFast / pytorchvideo layouts.

The check is all-or-nothing: every source tensor must land on one of ours with
the right shape and every one of ours must be filled, or the error lists the
offending keys. A partly loaded teacher or fine-tuning start would silently
train from random weights, which is worse than failing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch

from ..errors import X3DSearchError
from ..factors import PRESETS, Factors
from ..models.x3d import X3D, build_model
from .layouts import LAYOUTS, SourceLayout, TensorPair, tensor_pairs

#: Keys listed per category in a one-line error before "+N more".
_LISTED = 3


class ConversionError(X3DSearchError):
    """A checkpoint that cannot be converted (or a converted file that cannot be loaded)."""


class MappingError(ConversionError):
    """The checkpoint's tensors do not fit the requested architecture; holds every offending key."""

    def __init__(self, message: str, missing: list[str], mismatched: list[str], unexpected: list[str]):
        super().__init__(message)
        self.missing = missing
        self.mismatched = mismatched
        self.unexpected = unexpected


@dataclass(frozen=True)
class Converted:
    model: X3D
    source: str
    factors: Factors
    num_classes: int
    #: Classes of the checkpoint's own classifier (differs from ``num_classes`` after a head reset).
    source_classes: int
    reinit_head: bool
    #: Source tensors copied into the model.
    tensors: int


def layout_for(source: str) -> SourceLayout:
    try:
        return LAYOUTS[source]
    except KeyError:
        raise ConversionError(f"unknown checkpoint source '{source}' (choose from {', '.join(LAYOUTS)})") from None


def describe(factors: Factors) -> str:
    """Preset name when ``factors`` is one, else the compact factor string."""
    return next((name for name, f in PRESETS.items() if f == factors), factors.short())


def _listing(label: str, keys: list[str]) -> str:
    shown = ", ".join(keys[:_LISTED])
    more = f" (+{len(keys) - _LISTED} more)" if len(keys) > _LISTED else ""
    return f"{label}: {shown}{more}"


def _strip_wrapper_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``module.`` prefix that (Distributed)DataParallel adds to every key."""
    if state and all(key.startswith("module.") for key in state):
        return {key[len("module."):]: value for key, value in state.items()}
    return dict(state)


def _source_shape(pair: TensorPair, ours: torch.Tensor) -> tuple[int, ...]:
    return (*ours.shape, 1, 1, 1) if pair.conv_as_linear else tuple(ours.shape)


def _check(layout: SourceLayout, state: Mapping[str, torch.Tensor], pairs: list[TensorPair],
           reference: Mapping[str, torch.Tensor], target: str) -> None:
    """Raise :class:`MappingError` unless the source keys and shapes are exactly what ``pairs`` expect."""
    problems: list[str] = []  # in our module order, for "the first offending key"
    missing: list[str] = []
    mismatched: list[str] = []
    for pair in pairs:
        want = _source_shape(pair, reference[pair.ours])
        if pair.source not in state:
            if not pair.optional:
                missing.append(pair.source)
                problems.append(f"missing key '{pair.source}' (expected shape {list(want)})")
        elif tuple(state[pair.source].shape) != want:
            mismatched.append(pair.source)
            problems.append(f"key '{pair.source}' has shape {list(state[pair.source].shape)}, "
                            f"expected {list(want)}")
    expected = {pair.source for pair in pairs}
    unexpected = [key for key in state if key not in expected]
    if not problems and not unexpected:
        return
    first = problems[0] if problems else f"unexpected key '{unexpected[0]}'"
    counts = f"{len(missing)} missing, {len(mismatched)} shape-mismatched, {len(unexpected)} unexpected"
    listed = "; ".join(_listing(label, keys) for label, keys in
                       (("missing", missing), ("mismatched", mismatched), ("unexpected", unexpected)) if keys)
    hint = ""
    other = next((o for o in LAYOUTS.values() if o is not layout and o.stem_key in state), None)
    if other is not None and layout.stem_key not in state:
        hint = f"; it looks like a {other.name} checkpoint: use --from {other.name}"
    raise MappingError(f"{layout.name} checkpoint does not fit {target}: {first} ({counts}; {listed}){hint}",
                       missing, mismatched, unexpected)


def convert_state_dict(state: Mapping[str, torch.Tensor], source: str, factors: Factors,
                       num_classes: int | None = None, reinit_head: bool = False,
                       dropout: float = 0.5) -> Converted:
    """Build our X3D for ``factors`` and fill it from a ``source``-layout state dict.

    ``num_classes`` defaults to the checkpoint's. A different count needs
    ``reinit_head=True``, which keeps every pretrained tensor except the final
    classifier and initialises that one afresh (for fine-tuning on another label set).
    """
    layout = layout_for(source)
    state = _strip_wrapper_prefix(state)
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ConversionError(f"state dict entry '{key}' is a {type(value).__name__}, not a tensor: expected "
                                  f"a dict of tensors, raw or under 'model_state' / 'state_dict'")
    classifier = state.get(layout.classifier_key)
    source_classes = classifier.shape[0] if classifier is not None and classifier.dim() == 2 else None
    reference_model = build_model(factors, source_classes or num_classes or 400, dropout=dropout,
                                  shortcut_bn=layout.shortcut_bn)
    reference = reference_model.state_dict()
    pairs = tensor_pairs(layout, reference_model)
    _check(layout, state, pairs, reference, describe(factors))
    assert source_classes is not None  # _check passed, so the classifier is there and 2-D
    if num_classes is not None and num_classes != source_classes and not reinit_head:
        raise ConversionError(f"the checkpoint's classifier '{layout.classifier_key}' has {source_classes} "
                              f"classes, not {num_classes}; add --reinit-head to start a new classifier")
    ours: dict[str, torch.Tensor] = {}
    copied = 0
    for pair in pairs:
        if pair.source not in state:  # an optional tensor the source lacks: keep the fresh value
            ours[pair.ours] = reference[pair.ours]
            continue
        tensor = state[pair.source]
        ours[pair.ours] = tensor.reshape(tensor.shape[:2]) if pair.conv_as_linear else tensor
        copied += 1
    reference_model.load_state_dict(ours, strict=True)
    model = reference_model
    target_classes = num_classes or source_classes
    if reinit_head:
        model = build_model(factors, target_classes, dropout=dropout, shortcut_bn=layout.shortcut_bn)
        result = model.load_state_dict({k: v for k, v in ours.items() if not k.startswith("head.fc2.")},
                                       strict=False)
        if sorted(result.missing_keys) != ["head.fc2.bias", "head.fc2.weight"] or result.unexpected_keys:
            raise AssertionError(f"head reset touched more than the classifier: {result}")
    return Converted(model=model, source=layout.name, factors=factors, num_classes=target_classes,
                     source_classes=source_classes, reinit_head=reinit_head, tensors=copied)


def export_state_dict(model: X3D, source: str) -> dict[str, torch.Tensor]:
    """Our model's weights under ``source``'s key names and shapes, loadable there with strict=True."""
    layout = layout_for(source)
    if getattr(model, "shortcut_bn", True) != layout.shortcut_bn:
        raise ConversionError(f"the model was built with shortcut_bn={model.shortcut_bn}, but {layout.name} "
                              f"checkpoints need shortcut_bn={layout.shortcut_bn}")
    state = model.state_dict()
    exported: dict[str, torch.Tensor] = {}
    for pair in tensor_pairs(layout, model):
        tensor = state[pair.ours].detach().clone()
        exported[pair.source] = tensor.reshape(*tensor.shape, 1, 1, 1) if pair.conv_as_linear else tensor
    return exported
