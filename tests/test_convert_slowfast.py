"""SlowFast checkpoints: layout, strict loading, round trip, and every error path of the CLI.

SlowFast itself cannot be installed here, so its X3D checkpoint is rebuilt in
this file from its published structure (video_model_builder.X3D, X3DStem,
ResBlock, X3DTransform, SE, X3DHead), independently of the converter's tables:
stem ``s1.pathway0_stem.{conv_xy,conv,bn}``; stages ``s2..s5`` of
``pathway0_res{i}`` with ``branch1``/``branch1_bn`` on every block whose shape
changes, ``branch2.{a,a_bn,b,b_bn,[se.fc1,se.fc2],c,c_bn}`` with SE on blocks
0, 2, 4, ...; head ``conv_5``, ``conv_5_bn``, ``lin_5`` (1x1x1 conv) and the
``projection`` linear layer.
"""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from x3dsearch.cli.convert_cmd import SOURCE_CHOICES
from x3dsearch.cli.main import main
from x3dsearch.convert import (SOURCES, ConversionError, MappingError, convert_state_dict, export_state_dict,
                               load_converted)
from x3dsearch.factors import preset
from x3dsearch.models.x3d import build_model

DEPTH_FACTORS = {"x3d-xs": 2.2, "x3d-s": 2.2, "x3d-m": 2.2, "x3d-l": 5.0}


def _se_width(channels: int) -> int:
    """SlowFast SE._round_width(channels, 0.0625): divisor 8, minimum 8."""
    width = channels * 0.0625
    out = max(8, int(width + 4) // 8 * 8)
    return out + 8 if out < 0.9 * width else out


def slowfast_x3d_shapes(depth_factor: float, num_classes: int = 400) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a SlowFast X3D (width factor 2.0, bottleneck 2.25) in its module order."""
    shapes: dict[str, tuple[int, ...]] = {}

    def bn(prefix: str, channels: int) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{name}"] = (channels,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    stem = 24  # round_width(DIM_C1 = 12, 2.0)
    shapes["s1.pathway0_stem.conv_xy.weight"] = (stem, 3, 1, 3, 3)
    shapes["s1.pathway0_stem.conv.weight"] = (stem, 1, 5, 1, 1)
    bn("s1.pathway0_stem.bn", stem)
    dim_in = stem
    for stage, (blocks, width) in enumerate(zip((1, 2, 5, 3), (24, 48, 96, 192))):
        inner = int(2.25 * width)
        for i in range(int(math.ceil(blocks * depth_factor))):
            p = f"s{stage + 2}.pathway0_res{i}"
            block_in = dim_in if i == 0 else width
            if i == 0:  # stride 2 (and, from stage 2 on, more channels): projection + BN
                shapes[f"{p}.branch1.weight"] = (width, block_in, 1, 1, 1)
                bn(f"{p}.branch1_bn", width)
            shapes[f"{p}.branch2.a.weight"] = (inner, block_in, 1, 1, 1)
            bn(f"{p}.branch2.a_bn", inner)
            shapes[f"{p}.branch2.b.weight"] = (inner, 1, 3, 3, 3)
            bn(f"{p}.branch2.b_bn", inner)
            if (i + 1) % 2:
                se = _se_width(inner)
                shapes[f"{p}.branch2.se.fc1.weight"] = (se, inner, 1, 1, 1)
                shapes[f"{p}.branch2.se.fc1.bias"] = (se,)
                shapes[f"{p}.branch2.se.fc2.weight"] = (inner, se, 1, 1, 1)
                shapes[f"{p}.branch2.se.fc2.bias"] = (inner,)
            shapes[f"{p}.branch2.c.weight"] = (width, inner, 1, 1, 1)
            bn(f"{p}.branch2.c_bn", width)
        dim_in = width
    shapes["head.conv_5.weight"] = (432, 192, 1, 1, 1)
    bn("head.conv_5_bn", 432)
    shapes["head.lin_5.weight"] = (2048, 432, 1, 1, 1)
    shapes["head.projection.weight"] = (num_classes, 2048)
    shapes["head.projection.bias"] = (num_classes,)
    return shapes


def random_state(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(int(torch.randint(1, 10**6, (), generator=g)))
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        else:
            state[key] = torch.randn(shape, generator=g)
    return state


def save_slowfast(path: Path, state: dict[str, torch.Tensor]) -> Path:
    """The dict SlowFast's checkpoint.save_checkpoint writes."""
    torch.save({"epoch": 300, "model_state": state, "optimizer_state": {"state": {}, "param_groups": []},
                "cfg": "MODEL:\n  ARCH: x3d\n"}, path)
    return path


def run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("x3dsearch: error: "), err
    for needle in needles:
        assert needle in err, err


@pytest.fixture(scope="module")
def m_state() -> dict[str, torch.Tensor]:
    return random_state(slowfast_x3d_shapes(2.2), seed=1)


@pytest.mark.parametrize("name", list(DEPTH_FACTORS))
def test_slowfast_checkpoint_converts_strictly_and_round_trips(name: str, tmp_path, capsys) -> None:
    state = random_state(slowfast_x3d_shapes(DEPTH_FACTORS[name]), seed=len(name))
    ckpt = save_slowfast(tmp_path / f"{name}.pyth", state)
    code, out, err = run(capsys, "convert", ckpt, "--from", "slowfast", "--preset", name)
    assert code == 0, err
    converted = tmp_path / f"{name}.x3dsearch.pt"  # default output name
    assert f"{len(state)} tensors from slowfast" in out and str(converted) in out

    payload = torch.load(converted, weights_only=True)
    assert set(payload) == {"model_state", "factors", "num_classes", "shortcut_bn", "source"}
    assert (payload["source"], payload["shortcut_bn"], payload["num_classes"]) == ("slowfast", True, 400)

    model, meta = load_converted(converted)  # strict=True inside
    assert meta.factors == preset(name) and meta.shortcut_bn is True
    exported = export_state_dict(model, "slowfast")
    assert exported.keys() == state.keys()
    for key, tensor in state.items():
        assert exported[key].shape == tensor.shape and torch.equal(exported[key], tensor), key


def test_converted_weights_sit_where_the_structure_says(m_state) -> None:
    ours = convert_state_dict(m_state, "slowfast", preset("x3d-m")).model.state_dict()
    assert torch.equal(ours["stem.conv_xy.weight"], m_state["s1.pathway0_stem.conv_xy.weight"])
    assert torch.equal(ours["stem.conv_t.weight"], m_state["s1.pathway0_stem.conv.weight"])
    assert torch.equal(ours["stages.2.10.bn_b.running_var"], m_state["s4.pathway0_res10.branch2.b_bn.running_var"])
    assert torch.equal(ours["stages.0.0.shortcut_bn.bias"], m_state["s2.pathway0_res0.branch1_bn.bias"])
    assert torch.equal(ours["stages.3.4.se.fc2.bias"], m_state["s5.pathway0_res4.branch2.se.fc2.bias"])
    assert torch.equal(ours["head.fc1.weight"], m_state["head.lin_5.weight"].flatten(1))
    assert torch.equal(ours["head.fc2.weight"], m_state["head.projection.weight"])


def test_dataparallel_prefix_and_missing_batch_counters_are_accepted(m_state) -> None:
    wrapped = {f"module.{k}": v for k, v in m_state.items() if not k.endswith("num_batches_tracked")}
    converted = convert_state_dict(wrapped, "slowfast", preset("x3d-m"))
    assert converted.tensors == len(wrapped)
    assert torch.equal(converted.model.state_dict()["head.bn5.weight"], m_state["head.conv_5_bn.weight"])


def test_head_reset_for_another_label_set(m_state, tmp_path, capsys) -> None:
    ckpt = save_slowfast(tmp_path / "m.pyth", m_state)
    out = tmp_path / "ft.pt"
    code, stdout, err = run(capsys, "convert", ckpt, "--from", "slowfast", "--preset", "x3d-m", "-o", out,
                            "--num-classes", 10, "--reinit-head")
    assert code == 0, err
    assert "new 10-class classifier" in stdout
    model, meta = load_converted(out)
    state = model.state_dict()
    assert meta.num_classes == 10 and state["head.fc2.weight"].shape == (10, 2048)
    assert torch.equal(state["head.fc1.weight"], m_state["head.lin_5.weight"].flatten(1))
    assert torch.equal(state["stages.1.4.conv_c.weight"], m_state["s3.pathway0_res4.branch2.c.weight"])


def test_export_refuses_the_other_shortcut_layout() -> None:
    with pytest.raises(ConversionError, match="shortcut_bn=True"):
        export_state_dict(build_model(preset("x3d-xs"), shortcut_bn=False), "slowfast")
    with pytest.raises(ConversionError, match="shortcut_bn=False"):
        export_state_dict(build_model(preset("x3d-xs"), shortcut_bn=True), "pytorchvideo")


def test_cli_choices_are_the_supported_sources() -> None:
    assert SOURCE_CHOICES == SOURCES


# --- errors: one line naming the first offending key, exit 2, nothing written -----------------------

def test_preset_too_shallow_names_first_unexpected_key(tmp_path, capsys) -> None:
    ckpt = save_slowfast(tmp_path / "l.pyth", random_state(slowfast_x3d_shapes(5.0)))
    out = tmp_path / "out.pt"
    code, _, err = run(capsys, "convert", ckpt, "--from", "slowfast", "--preset", "x3d-m", "-o", out)
    assert_one_line_error(code, err, "does not fit x3d-m", "unexpected key 's2.pathway0_res3.branch2.a.weight'",
                          "0 missing, 0 shape-mismatched")
    assert not out.exists()


def test_preset_too_deep_names_first_missing_key(m_state) -> None:
    with pytest.raises(MappingError) as info:
        convert_state_dict(m_state, "slowfast", preset("x3d-l"))
    assert "missing key 's2.pathway0_res3.branch2.a.weight'" in str(info.value)
    assert info.value.missing[0] == "s2.pathway0_res3.branch2.a.weight" and not info.value.unexpected
    assert len(info.value.missing) > 100 and "\n" not in str(info.value)


def test_wrong_width_names_first_mismatched_key(m_state, tmp_path, capsys) -> None:
    ckpt = save_slowfast(tmp_path / "m.pyth", m_state)
    code, _, err = run(capsys, "convert", ckpt, "--from", "slowfast",
                       "--factors", "frames=16,stride=5,crop=312,width=1.45,bottleneck=2.25,depth=2.2")
    assert_one_line_error(code, err, "key 's1.pathway0_stem.conv_xy.weight' has shape [24, 3, 1, 3, 3], "
                                     "expected [32, 3, 1, 3, 3]")


def test_one_bad_tensor_and_one_extra_key_are_named(m_state) -> None:
    state = dict(m_state)
    state["s4.pathway0_res2.branch2.b.weight"] = torch.zeros(216, 1, 1, 3, 3)
    state["head.lin_5_bn.weight"] = torch.ones(2048)
    with pytest.raises(MappingError) as info:
        convert_state_dict(state, "slowfast", preset("x3d-m"))
    assert info.value.mismatched == ["s4.pathway0_res2.branch2.b.weight"]
    assert info.value.unexpected == ["head.lin_5_bn.weight"] and not info.value.missing
    assert "key 's4.pathway0_res2.branch2.b.weight' has shape [216, 1, 1, 3, 3]" in str(info.value)


def test_wrong_source_is_named_with_a_hint(m_state, tmp_path, capsys) -> None:
    ckpt = save_slowfast(tmp_path / "m.pyth", m_state)
    code, _, err = run(capsys, "convert", ckpt, "--from", "pytorchvideo", "--preset", "x3d-m")
    assert_one_line_error(code, err, "missing key 'blocks.0.conv.conv_t.weight'",
                          "looks like a slowfast checkpoint: use --from slowfast")


def test_class_count_mismatch_needs_reinit_head(m_state, tmp_path, capsys) -> None:
    ckpt = save_slowfast(tmp_path / "m.pyth", m_state)
    out = tmp_path / "out.pt"
    out.write_bytes(b"previous result")
    code, _, err = run(capsys, "convert", ckpt, "--from", "slowfast", "--preset", "x3d-m", "-o", out,
                       "--num-classes", 10)
    assert_one_line_error(code, err, "'head.projection.weight' has 400 classes, not 10", "--reinit-head")
    assert out.read_bytes() == b"previous result"


def test_not_a_checkpoint(tmp_path, capsys) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint\n")
    code, _, err = run(capsys, "convert", text, "--from", "slowfast", "--preset", "x3d-m")
    assert_one_line_error(code, err, f"{text}: not a PyTorch checkpoint")

    torch.save({"epoch": 3, "cfg": "x"}, tmp_path / "meta.pt")
    code, _, err = run(capsys, "convert", tmp_path / "meta.pt", "--from", "slowfast", "--preset", "x3d-m")
    assert_one_line_error(code, err, "entry 'epoch' is a int, not a tensor", "'model_state'")

    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    code, _, err = run(capsys, "convert", tmp_path / "list.pt", "--from", "slowfast", "--preset", "x3d-m")
    assert_one_line_error(code, err, "it holds a list, not a dict")


def test_output_may_not_overwrite_the_source(m_state, tmp_path, capsys) -> None:
    ckpt = save_slowfast(tmp_path / "m.pyth", m_state)
    before = ckpt.read_bytes()
    code, _, err = run(capsys, "convert", ckpt, "--from", "slowfast", "--preset", "x3d-m", "-o", ckpt)
    assert_one_line_error(code, err, "would overwrite the source checkpoint")
    assert ckpt.read_bytes() == before


def test_load_converted_rejects_other_files(m_state, tmp_path) -> None:
    ckpt = save_slowfast(tmp_path / "m.pyth", m_state)
    with pytest.raises(ConversionError, match="not a converted x3dsearch model"):
        load_converted(ckpt)
    converted = convert_state_dict(m_state, "slowfast", preset("x3d-m"))
    payload = {"model_state": converted.model.state_dict(), "factors": preset("x3d-l").to_dict(),
               "num_classes": 400, "shortcut_bn": True, "source": "slowfast"}
    torch.save(payload, tmp_path / "tampered.pt")
    with pytest.raises(ConversionError, match=r"does not fit the recorded architecture: missing key 'stages.0.3"):
        load_converted(tmp_path / "tampered.pt")


def test_cli_error_is_one_line_without_traceback(tmp_path) -> None:
    """The installed entry point, end to end: bad input gives exit 2 and one stderr line."""
    text = tmp_path / "bad.pyth"
    text.write_text("nope")
    proc = subprocess.run([sys.executable, "-m", "x3dsearch.cli.main", "convert", str(text), "--from", "slowfast",
                           "--preset", "x3d-xs"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "not a PyTorch checkpoint" in proc.stderr
