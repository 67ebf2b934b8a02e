"""Where each layer of our X3D lives in a SlowFast or pytorchvideo checkpoint.

Both reference implementations build the same network as ours, module for
module: a stem, four stages of blocks, a head. A :class:`SourceLayout` states,
for one source, the name and kind of the layer that plays each role in a stem,
a block and a head. :func:`tensor_pairs` walks our model's layers in order
and, for each, looks up the layer with the same structural position (stage,
block, role) in the source, checking that both are the same kind of layer.
Nothing is matched by name similarity, so a checkpoint either fits exactly or
the mismatch is reported key by key.

Facts the tables encode (read from SlowFast's ``video_model_builder.py``,
``stem_helper.py``, ``resnet_helper.py``, ``operators.py``, ``head_helper.py``
and pytorchvideo 0.1.5's ``models/x3d.py``):

- SlowFast puts a BN on every projection shortcut (``branch1_bn``);
  pytorchvideo only where channels change, so the first block of stage 1
  (24 -> 24 channels, stride 2) has a bare ``branch1_conv``. Our model's
  ``shortcut_bn`` switch reproduces either.
- pytorchvideo's stem wraps the two convs in ``Conv2plus1d`` with swapped
  names: its ``conv.conv_t`` holds the 1x3x3 spatial kernel and runs first,
  ``conv.conv_xy`` holds the 5x1x1 channel-wise temporal kernel.
- Both put SE after the 3x3x3 BN (SlowFast ``branch2.se.fc1/fc2``;
  pytorchvideo ``branch2.norm_b`` is ``Sequential(BN, fvcore SE)`` whose
  ``block`` is ``Sequential(conv, ReLU, conv, Sigmoid)``).
- Both store the head's 2048-wide fully-connected layer as a 1x1x1 Conv3d
  (``head.lin_5`` / ``pool.post_conv``); ours is an ``nn.Linear``, so its
  weight is reshaped. The classifier is an ``nn.Linear`` everywhere.
- Swish (both sources) and ``nn.SiLU`` (ours) compute the same x * sigmoid(x)
  and hold no weights.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from torch import nn

CONV, BN, LINEAR = "conv", "bn", "linear"

#: Tensors that a source may lack without changing what the network computes
#: (checkpoints written by old PyTorch versions have no BN batch counter).
OPTIONAL_TENSORS = ("num_batches_tracked",)


@dataclass(frozen=True)
class SourceLayout:
    """One checkpoint format: role -> (source layer name, layer kind) per unit."""

    name: str
    #: Our model's ``shortcut_bn`` switch that reproduces this source exactly.
    shortcut_bn: bool
    stem: Mapping[str, tuple[str, str]]
    #: Prefix of block ``j`` of stage ``i`` (0-based), e.g. ``s2.pathway0_res0``.
    block_prefix: str
    #: Added to our 0-based stage index in ``block_prefix``.
    stage_offset: int
    block: Mapping[str, tuple[str, str]]
    head: Mapping[str, tuple[str, str]]

    def source_layer(self, ours: str) -> tuple[str, str]:
        """Source layer name and kind for one of our layer names, e.g. ``stages.1.0.conv_b``."""
        unit, _, role = ours.partition(".")
        if unit == "stem":
            return self.stem[role]
        if unit == "head":
            return self.head[role]
        match = re.fullmatch(r"(\d+)\.(\d+)\.(.+)", role)
        if unit != "stages" or match is None:
            raise KeyError(ours)
        stage, block, role = int(match[1]), int(match[2]), match[3]
        name, kind = self.block[role]
        return f"{self.block_prefix.format(stage=stage + self.stage_offset, block=block)}.{name}", kind

    @property
    def classifier_key(self) -> str:
        """Source key of the classifier weight, whose rows give the number of classes."""
        return f"{self.head['fc2'][0]}.weight"

    @property
    def stem_key(self) -> str:
        """Source key of the first conv weight; its presence identifies the format."""
        return f"{self.stem['conv_xy'][0]}.weight"


SLOWFAST = SourceLayout(
    name="slowfast",
    shortcut_bn=True,
    stem={"conv_xy": ("s1.pathway0_stem.conv_xy", CONV),
          "conv_t": ("s1.pathway0_stem.conv", CONV),
          "bn": ("s1.pathway0_stem.bn", BN)},
    block_prefix="s{stage}.pathway0_res{block}",
    stage_offset=2,
    block={"conv_a": ("branch2.a", CONV), "bn_a": ("branch2.a_bn", BN),
           "conv_b": ("branch2.b", CONV), "bn_b": ("branch2.b_bn", BN),
           "se.fc1": ("branch2.se.fc1", CONV), "se.fc2": ("branch2.se.fc2", CONV),
           "conv_c": ("branch2.c", CONV), "bn_c": ("branch2.c_bn", BN),
           "shortcut": ("branch1", CONV), "shortcut_bn": ("branch1_bn", BN)},
    head={"conv5": ("head.conv_5", CONV), "bn5": ("head.conv_5_bn", BN),
          "fc1": ("head.lin_5", CONV), "fc2": ("head.projection", LINEAR)},
)

PYTORCHVIDEO = SourceLayout(
    name="pytorchvideo",
    shortcut_bn=False,
    stem={"conv_xy": ("blocks.0.conv.conv_t", CONV),
          "conv_t": ("blocks.0.conv.conv_xy", CONV),
          "bn": ("blocks.0.norm", BN)},
    block_prefix="blocks.{stage}.res_blocks.{block}",
    stage_offset=1,
    block={"conv_a": ("branch2.conv_a", CONV), "bn_a": ("branch2.norm_a", BN),
           "conv_b": ("branch2.conv_b", CONV), "bn_b": ("branch2.norm_b.0", BN),
           "se.fc1": ("branch2.norm_b.1.block.0", CONV), "se.fc2": ("branch2.norm_b.1.block.2", CONV),
           "conv_c": ("branch2.conv_c", CONV), "bn_c": ("branch2.norm_c", BN),
           "shortcut": ("branch1_conv", CONV), "shortcut_bn": ("branch1_norm", BN)},
    head={"conv5": ("blocks.5.pool.pre_conv", CONV), "bn5": ("blocks.5.pool.pre_norm", BN),
          "fc1": ("blocks.5.pool.post_conv", CONV), "fc2": ("blocks.5.proj", LINEAR)},
)

LAYOUTS: dict[str, SourceLayout] = {layout.name: layout for layout in (SLOWFAST, PYTORCHVIDEO)}
SOURCES: tuple[str, ...] = tuple(LAYOUTS)

_KINDS = ((nn.Conv3d, CONV), (nn.BatchNorm3d, BN), (nn.Linear, LINEAR))


@dataclass(frozen=True)
class TensorPair:
    """One tensor: its key in our state dict and in the source's."""

    ours: str
    source: str
    #: Ours is an ``nn.Linear`` weight (out, in); the source's a 1x1x1 conv (out, in, 1, 1, 1).
    conv_as_linear: bool = False
    #: The source may lack it (see :data:`OPTIONAL_TENSORS`).
    optional: bool = False


def _kind(module: nn.Module) -> str | None:
    for cls, kind in _KINDS:
        if isinstance(module, cls):
            return kind
    return None


def tensor_pairs(layout: SourceLayout, model: nn.Module) -> list[TensorPair]:
    """Every tensor of ``model``'s state dict paired with its source key, in our module order."""
    pairs: list[TensorPair] = []
    for name, module in model.named_modules():
        kind = _kind(module)
        if kind is None:
            if not list(module.children()) and (list(module.parameters(recurse=False))
                                                or list(module.buffers(recurse=False))):
                raise TypeError(f"no checkpoint mapping for layer '{name}' ({type(module).__name__})")
            continue
        source, source_kind = layout.source_layer(name)
        conv_as_linear = kind == LINEAR and source_kind == CONV
        if kind != source_kind and not conv_as_linear:
            raise TypeError(f"layer '{name}' is a {kind} but {layout.name}'s '{source}' is a {source_kind}")
        for tensor_name in module.state_dict():
            pairs.append(TensorPair(ours=f"{name}.{tensor_name}", source=f"{source}.{tensor_name}",
                                    conv_as_linear=conv_as_linear and tensor_name == "weight",
                                    optional=tensor_name in OPTIONAL_TENSORS))
    return pairs
