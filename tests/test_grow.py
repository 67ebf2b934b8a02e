"""Network morphism: a grown child computes its parent's function, on real models and tensors.

Logits are compared in float64 (the parent's weights are randomised so they are O(1)): float32
summation order alone differs by ~1e-6 between the parent's and the wider child's convolutions,
too close to the 1e-5 bar to tell a wrong growth from rounding.
"""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from torch import nn

from x3dsearch.errors import ConfigError
from x3dsearch.factors import Factors, preset
from x3dsearch.models import X3D, build_model
from x3dsearch.models.grow import grow, grow_model, structure
from x3dsearch.train.checkpoint import save_model_weights
from x3dsearch.train.init_weights import apply_init, read_init

CLASSES = 5
TOL = 1e-5


def randomised(factors: Factors, seed: int = 0, shortcut_bn: bool = True) -> X3D:
    """An eval-mode float64 X3D whose BN statistics, BN affines, biases and fc weights are all random.

    The default init zeroes every block's last BN, which would make every residual branch 0 and hide
    a wrong growth inside it.
    """
    torch.manual_seed(seed)
    model = X3D(factors, CLASSES, shortcut_bn=shortcut_bn).double().eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm3d):
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.normal_(0.0, 0.3, generator=g)
                m.running_mean.normal_(0.0, 0.3, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
            elif isinstance(m, nn.Linear):
                m.weight.normal_(0.0, m.in_features ** -0.5, generator=g)
            elif isinstance(m, nn.Conv3d) and m.bias is not None:
                m.bias.normal_(0.0, 0.3, generator=g)
    return model


def clip(seed: int = 1) -> torch.Tensor:
    return torch.randn(2, 3, 2, 64, 64, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def child_logits(state: dict[str, torch.Tensor], child: Factors | X3D, x: torch.Tensor) -> torch.Tensor:
    """The logits of ``child`` (factors, or a float64 model to reuse) holding ``state``."""
    model = X3D(child, CLASSES).double().eval() if isinstance(child, Factors) else child
    model.load_state_dict(state)
    with torch.no_grad():
        return model(x)


@pytest.fixture(scope="module")
def parents() -> dict[str, tuple[X3D, torch.Tensor]]:
    """X2D and X3D-XS, randomised, with their logits on the test clip."""
    out = {}
    for name in ("x2d", "x3d-xs"):
        model = randomised(preset(name))
        with torch.no_grad():
            out[name] = (model, model(clip()))
    return out


GROWTHS = {
    "depth": dict(depth=3.0),
    "width": dict(width=1.5),
    "bottleneck": dict(bottleneck=3.0),
    "all": dict(width=1.5, bottleneck=3.0, depth=3.0, frames=8, crop=160),
}


@pytest.mark.parametrize("parent_name", ["x2d", "x3d-xs"])
@pytest.mark.parametrize("axes", list(GROWTHS))
def test_growth_keeps_the_function(parents: dict, parent_name: str, axes: str) -> None:
    model, logits = parents[parent_name]
    child = model.factors.replace(**GROWTHS[axes])
    before, after = structure(model.factors), structure(child)
    assert any(after[k] > before[k] for k in before)  # the child really is larger
    old = model.state_dict()
    state = grow(old, model.factors, child, generator=torch.Generator().manual_seed(0))
    assert all(state[k].dtype == v.dtype for k, v in old.items())
    grown = child_logits(state, child, clip())
    assert logits.abs().max() > 0.1  # the bar below means something
    torch.testing.assert_close(grown, logits, atol=TOL, rtol=0)


def test_growth_without_shortcut_bn_and_grow_model() -> None:
    """Converted pytorchvideo weights have no BN on stage 1's first shortcut; growth keeps that layout."""
    model = randomised(preset("x2d"), seed=3, shortcut_bn=False)
    child = model.factors.replace(width=2.0, depth=2.0)
    grown = grow_model(model, child)
    assert isinstance(grown.stages[0][0].shortcut_bn, nn.Identity)  # stem and stage 1 grow alike
    assert not grown.training and grown.factors == child and grown.stem.conv_xy.weight.dtype == torch.float64
    with torch.no_grad():
        torch.testing.assert_close(grown(clip()), model(clip()), atol=TOL, rtol=0)


def test_input_axes_copy_every_tensor(parents: dict) -> None:
    model, _ = parents["x3d-xs"]
    state = model.state_dict()
    grown = grow(state, model.factors, preset("x3d-m"))  # 4x12@160 -> 16x5@224, same network
    assert list(grown) == list(state)
    assert all(torch.equal(grown[k], state[k]) and grown[k].dtype == state[k].dtype for k in state)


def test_a_wrong_growth_breaks_the_equality(parents: dict) -> None:
    """The check has teeth: each deliberate mistake moves the logits far past the tolerance."""
    model, logits = parents["x3d-xs"]
    child = model.factors.replace(width=1.5, bottleneck=3.0, depth=3.0)
    state = grow(model.state_dict(), model.factors, child)
    net = X3D(child, CLASSES).double().eval()
    torch.testing.assert_close(child_logits(state, net, clip()), logits, atol=TOL, rtol=0)
    old = model.state_dict()
    g = torch.Generator().manual_seed(5)

    def noisy(key: str, old_rows_only: bool = False) -> dict[str, torch.Tensor]:
        """Random weights where the growth put zeros: the key's new input columns."""
        rows, cols = slice(0, old[key].shape[0] if old_rows_only else None), slice(old[key].shape[1], None)
        wrong = dict(state)
        wrong[key] = state[key].clone()
        block = wrong[key][rows, cols]
        wrong[key][rows, cols] = torch.randn(block.shape, generator=g, dtype=block.dtype)
        return wrong

    mistakes = {
        # a new stage-2 channel read by the next block's expansion conv
        "outgoing stream": noisy("stages.1.1.conv_a.weight"),
        # a new inner channel read by the projection conv
        "outgoing inner": noisy("stages.2.0.conv_c.weight"),
        # a new SE unit feeding an old channel's gate
        "SE gate": noisy("stages.3.0.se.fc2.weight", old_rows_only=True),
        # a new head channel read by fc1
        "head": noisy("head.fc1.weight"),
    }
    new_block = dict(state)
    new_block["stages.2.12.bn_c.weight"] = torch.ones_like(state["stages.2.12.bn_c.weight"])  # not an identity
    mistakes["new block"] = new_block
    for name, wrong in mistakes.items():
        gap = (child_logits(wrong, net, clip()) - logits).abs().max().item()
        assert gap > 100 * TOL, name


def test_new_channels_learn_one_step_later() -> None:
    """Zero outgoing weights: a new channel's incoming weights get no gradient, its outgoing ones do."""
    model = randomised(preset("x2d"), seed=2)
    child = model.factors.replace(width=1.5, bottleneck=2.0)
    grown = grow_model(model, child)
    grown(clip()).square().sum().backward()
    old_in = model.stages[1][0].conv_c.weight.shape[1]
    old_out = model.stages[1][0].conv_c.weight.shape[0]
    conv_c = grown.stages[1][0].conv_c.weight.grad
    conv_a = grown.stages[1][0].conv_a.weight.grad
    assert conv_c is not None and conv_a is not None
    assert torch.count_nonzero(conv_a[old_in:]) == 0           # new inner channels: incoming
    assert torch.count_nonzero(conv_c[old_out:]) == 0          # new stage channels: incoming
    assert torch.count_nonzero(conv_c[:old_out, old_in:]) > 0  # new inner channels: outgoing
    nxt = grown.stages[1][1].conv_a.weight.grad
    assert nxt is not None and torch.count_nonzero(nxt[:, old_out:]) > 0  # new stage channels: outgoing


def test_shrinking_is_one_clear_error(parents: dict) -> None:
    model, _ = parents["x3d-xs"]
    for smaller, says in ((dict(depth=1.0), "stage 1 depth shrinks from 3 to 1"),
                          (dict(width=0.5), "stem width shrinks from 24 to 16"),
                          (dict(bottleneck=2.0), "stage 1 inner width shrinks from 54 to 48")):
        with pytest.raises(ConfigError, match=says) as caught:
            grow(model.state_dict(), model.factors, model.factors.replace(**smaller))
        assert "\n" not in str(caught.value)
    with pytest.raises(ConfigError, match="do not fit"):  # weights that are not the parent's
        grow(model.state_dict(), preset("x2d"), preset("x2d").replace(depth=2.0))


def test_a_new_class_count_starts_a_fresh_classifier(parents: dict) -> None:
    model, _ = parents["x2d"]
    child = model.factors.replace(depth=2.0)
    grown = [grow(model.state_dict(), model.factors, child, num_classes=7,
                  generator=torch.Generator().manual_seed(9)) for _ in range(2)]
    assert grown[0]["head.fc2.weight"].shape == (7, 2048)
    assert torch.count_nonzero(grown[0]["head.fc2.bias"]) == 0
    assert 0.005 < grown[0]["head.fc2.weight"].std().item() < 0.02  # X3D's init: N(0, 0.01)
    assert torch.equal(grown[0]["head.fc1.weight"], model.head.fc1.weight)
    assert all(torch.equal(grown[0][k], grown[1][k]) for k in grown[0])  # one generator seed, one state


def test_init_grows_a_smaller_model_pt(tmp_path: Path) -> None:
    """``--init`` with a trainer's model.pt of smaller factors: the model starts as that model's function."""
    parent = randomised(preset("x2d"), seed=4).float()
    save_model_weights(tmp_path / "model.pt", parent, factors=parent.factors.to_dict(), num_classes=CLASSES,
                       shortcut_bn=True)
    init = read_init(tmp_path / "model.pt")
    assert init.factors == parent.factors
    child = parent.factors.replace(frames=4, stride=12, width=1.5, bottleneck=2.25, depth=2.0)
    model = build_model(child, CLASSES, shortcut_bn=init.shortcut_bn)
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("x3dsearch.train")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        apply_init(model, init)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert f"init: grew {parent.factors.short()} -> {child.short()} from {tmp_path / 'model.pt'}" in lines
    with torch.no_grad():
        torch.testing.assert_close(model.double().eval()(clip()), parent.double().eval()(clip()), atol=TOL, rtol=0)
    with pytest.raises(ConfigError, match=r"--init .*model.pt: cannot grow .*stem width shrinks"):
        apply_init(build_model(parent.factors.replace(width=0.5), CLASSES), init)
    torch.save(parent.state_dict(), tmp_path / "plain.pt")  # a bare state dict records no factors
    assert read_init(tmp_path / "plain.pt").factors is None


def test_growing_an_init_leaves_the_global_random_streams_alone(tmp_path: Path) -> None:
    """Candidates of a step are compared paired by seed, on the same clips and dropout draws: a grown
    training must draw what a scratch training with the same seed draws. Growth takes its fresh weights
    from a generator of its own (seeded with the training's seed), never from the global streams."""
    import random

    import numpy as np

    from x3dsearch.train.checkpoint import seed_everything

    parent = randomised(preset("x2d"), seed=3).float()
    save_model_weights(tmp_path / "model.pt", parent, factors=parent.factors.to_dict(), num_classes=CLASSES,
                       shortcut_bn=True)
    init = read_init(tmp_path / "model.pt")
    child = parent.factors.replace(width=1.5, bottleneck=2.25, depth=2.0)

    def started(seed: int, grown: bool) -> tuple[X3D, torch.Tensor, float, float]:
        """A training's set-up as the trainer does it, then what its first draws would be."""
        seed_everything(seed)
        model = build_model(child, CLASSES, shortcut_bn=True)
        before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
        if grown:
            apply_init(model, init, seed=seed)
        assert torch.equal(torch.get_rng_state(), before[0])
        assert np.array_equal(np.random.get_state()[1], before[1]) and random.getstate() == before[2]
        return model, torch.rand(8), float(np.random.rand()), random.random()

    scratch, grown = started(7, grown=False), started(7, grown=True)
    assert torch.equal(scratch[1], grown[1]) and scratch[2:] == grown[2:]  # the same stream after set-up
    again, other = started(7, grown=True), started(8, grown=True)
    new_rows = "stages.0.0.conv_a.weight"  # a new unit's incoming weights are fresh: drawn from the seed
    assert torch.equal(grown[0].state_dict()[new_rows], again[0].state_dict()[new_rows])
    assert not torch.equal(grown[0].state_dict()[new_rows], other[0].state_dict()[new_rows])


def test_a_parent_beside_the_training_is_recorded_relative_so_the_run_can_move(tmp_path: Path) -> None:
    from x3dsearch.train.trainer import _recorded_init

    out = tmp_path / "run" / "candidates" / "s01-x-depth"
    parent = (tmp_path / "run" / "candidates" / "seed" / "model.pt").resolve()
    assert _recorded_init(parent, out) == "../seed/model.pt"
    elsewhere = (tmp_path / "converted.pt").resolve()
    assert _recorded_init(elsewhere, out) == str(elsewhere)  # a user's --init file stays absolute
    assert _recorded_init(None, out) is None
