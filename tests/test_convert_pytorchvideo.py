"""Converted pytorchvideo weights reproduce the real pytorchvideo 0.1.5 X3D, logit for logit.

pytorchvideo's model modules import ``torchvision.ops.RoIAlign`` for detection
heads only, and torchvision cannot be imported next to the CPU-only torch here
(reference, section 5). When the real import fails, a shim module exposing
that one name is inserted just for pytorchvideo's import, then removed again.
"""
from __future__ import annotations

import math
import sys
import types

import pytest
import torch
from torch import nn

from x3dsearch.cli.main import main
from x3dsearch.convert import convert_state_dict, export_state_dict, load_converted
from x3dsearch.factors import preset


def _import_create_x3d():
    try:
        import torchvision.ops  # noqa: F401
    except Exception:  # noqa: BLE001 - missing, or a wheel that links libtorch_cuda
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        shim, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")

        class RoIAlign(nn.Module):  # only detection heads use it; X3D never does
            def __init__(self, *args, **kwargs):
                raise RuntimeError("torchvision is not available: RoIAlign import shim")

        ops.RoIAlign, shim.ops = RoIAlign, ops
        sys.modules.update({"torchvision": shim, "torchvision.ops": ops})
        try:
            from pytorchvideo.models.x3d import create_x3d
        finally:
            del sys.modules["torchvision"], sys.modules["torchvision.ops"]
        return create_x3d
    from pytorchvideo.models.x3d import create_x3d
    return create_x3d


create_x3d = _import_create_x3d()

# Inputs: XS, S and M at their own clip and crop; L at a small clip (its weights do not
# depend on the input size, and the full 16 x 312 clip costs seconds on two cores).
#: X3D-M at its own 16 frames and 224 px runs two real forward passes of 5-6 GFLOPs: `make test-fast` skips it.
CASES = [("x3d-xs", 4, 160), ("x3d-s", 13, 160), pytest.param("x3d-m", 16, 224, marks=pytest.mark.slow),
         ("x3d-l", 4, 96)]
NUM_CLASSES = 11


@torch.no_grad()
def _randomise(model: nn.Module, seed: int) -> None:
    """Every weight, bias and BN statistic random, scaled so logits spread over several units."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.Conv3d, nn.Linear)):
            fan_in = m.weight[0].numel()
            m.weight.normal_(0.0, math.sqrt(2.0 / fan_in), generator=g)
            if m.bias is not None:
                m.bias.normal_(0.0, 0.2, generator=g)
        elif isinstance(m, nn.BatchNorm3d):
            m.weight.uniform_(0.5, 1.2, generator=g)
            m.bias.normal_(0.0, 0.2, generator=g)
            m.running_mean.normal_(0.0, 0.2, generator=g)
            m.running_var.uniform_(0.5, 2.0, generator=g)
            m.num_batches_tracked.fill_(1000)
    # Residual branches end in a small BN scale, as in a trained network, so 25-block
    # stages keep activations (and logits) of order one: the 1e-4 bound is then strict.
    for block in model.modules():
        if hasattr(block, "norm_c"):
            block.norm_c.weight.uniform_(0.1, 0.3, generator=g)


def _reference(name: str, frames: int, crop: int, seed: int) -> nn.Module:
    """The real pytorchvideo X3D; the softmax head activation is off so both sides give logits."""
    f = preset(name)
    model = create_x3d(input_clip_length=frames, input_crop_size=crop, model_num_class=NUM_CLASSES,
                       width_factor=2.0 * f.width, depth_factor=f.depth, bottleneck_factor=f.bottleneck,
                       head_activation=None)
    _randomise(model, seed)
    return model.eval()


def _run(*args: str, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


@pytest.mark.parametrize("name,frames,crop", CASES)
def test_converted_logits_match_pytorchvideo(name: str, frames: int, crop: int, tmp_path, capsys) -> None:
    torch.manual_seed(0)
    reference = _reference(name, frames, crop, seed=frames * 1000 + crop)
    ckpt = tmp_path / "pytorchvideo.pyth"
    torch.save({"model_state": reference.state_dict()}, ckpt)  # the hub checkpoints' wrapping
    out = tmp_path / "converted.pt"
    code, stdout, stderr = _run("convert", str(ckpt), "--from", "pytorchvideo", "--preset", name, "-o", str(out),
                                capsys=capsys)
    assert code == 0, stderr
    assert f"-> {name} ({NUM_CLASSES} classes, shortcut_bn=False)" in stdout

    model, meta = load_converted(out)
    assert (meta.source, meta.num_classes, meta.shortcut_bn, meta.factors) == ("pytorchvideo", NUM_CLASSES,
                                                                                False, preset(name))
    model.eval()
    x = torch.randn(2, 3, frames, crop, crop, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        expected, got = reference(x), model(x)
    assert expected.shape == got.shape == (2, NUM_CLASSES)
    assert expected.std() > 0.5  # a real spread, not near-constant logits
    assert (expected - got).abs().max().item() < 1e-4


def test_pytorchvideo_shortcut_bn_only_where_channels_change() -> None:
    """The fact our ``shortcut_bn=False`` switch encodes, read off the real module tree."""
    keys = _reference("x3d-xs", 4, 160, seed=1).state_dict().keys()
    assert "blocks.1.res_blocks.0.branch1_conv.weight" in keys  # 24 -> 24 channels, stride 2
    assert "blocks.1.res_blocks.0.branch1_norm.weight" not in keys
    for stage in (2, 3, 4):  # channels double
        assert f"blocks.{stage}.res_blocks.0.branch1_norm.weight" in keys


@pytest.mark.parametrize("name", ["x3d-xs", "x3d-l"])
def test_pytorchvideo_round_trip_and_reload(name: str) -> None:
    """Export gives back every tensor unchanged, and real pytorchvideo loads it strictly."""
    reference = _reference(name, 4, 96, seed=3)
    state = reference.state_dict()
    converted = convert_state_dict(state, "pytorchvideo", preset(name))
    assert converted.tensors == len(state)
    exported = export_state_dict(converted.model, "pytorchvideo")
    assert exported.keys() == state.keys()
    for key, tensor in state.items():
        assert exported[key].dtype == tensor.dtype and torch.equal(exported[key], tensor), key

    fresh = _reference(name, 4, 96, seed=4)
    fresh.load_state_dict(exported, strict=True)
    x = torch.randn(1, 3, 4, 96, 96)
    with torch.no_grad():
        assert torch.equal(fresh(x), reference(x))


def test_raw_state_dict_and_head_reset(tmp_path) -> None:
    """A raw pytorchvideo state dict converts; --reinit-head keeps everything but the classifier."""
    reference = _reference("x3d-xs", 4, 160, seed=5)
    state = reference.state_dict()
    converted = convert_state_dict(state, "pytorchvideo", preset("x3d-xs"), num_classes=3, reinit_head=True)
    ours = converted.model.state_dict()
    assert ours["head.fc2.weight"].shape == (3, 2048)
    assert torch.equal(ours["head.fc1.weight"], state["blocks.5.pool.post_conv.weight"].flatten(1))
    assert torch.equal(ours["stages.3.6.conv_c.weight"], state["blocks.4.res_blocks.6.branch2.conv_c.weight"])
    assert converted.source_classes == NUM_CLASSES and converted.num_classes == 3
