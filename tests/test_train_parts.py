"""Pieces of the training recipe: schedule, weight-decay groups, multi-view validation, precise-BN, init files."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from x3dsearch.budget import load_budget
from x3dsearch.errors import X3DSearchError
from x3dsearch.factors import preset
from x3dsearch.models import build_model
from x3dsearch.train.evaluate import evaluate, precise_bn
from x3dsearch.train.init_weights import apply_init, read_init
from x3dsearch.train.optim import WarmupCosine, build_optimizer, parameter_groups


def test_warmup_cosine_shape_and_restore() -> None:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = WarmupCosine(opt, base_lr=2.0, total=100, warmup=10, start_factor=0.1)
    lrs = []
    for _ in range(101):
        lrs.append(opt.param_groups[0]["lr"])
        sched.step()
    assert lrs[0] == pytest.approx(0.2)
    cosine = lambda s: 2.0 * 0.5 * (1 + math.cos(math.pi * s / 100))  # noqa: E731
    assert lrs[10] == pytest.approx(cosine(10)) and lrs[50] == pytest.approx(1.0) and lrs[100] == 0.0
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:11]))  # linear ramp up
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # then cosine decay
    other = WarmupCosine(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0), 2.0, 100, 10, 0.1)
    sched2 = WarmupCosine(opt, 2.0, 100, 10, 0.1)
    sched2.load_state_dict({"step_count": 37})
    other.load_state_dict(sched2.state_dict())
    assert other.lr == pytest.approx(lrs[37]) == opt.param_groups[0]["lr"]


def test_a_restored_schedule_keeps_the_peak_rate_it_was_made_with() -> None:
    """A resumed grown training builds its schedule without the init weights (so at the budget's own rate);
    the checkpoint's state brings back the rate it ran at (``init_lr_scale``)."""
    grown = WarmupCosine(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0), 0.5, 100, 10, 0.1)
    for _ in range(40):
        grown.step()
    resumed = WarmupCosine(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0), 2.0, 100, 10, 0.1)
    resumed.load_state_dict(grown.state_dict())
    assert resumed.base_lr == 0.5 and resumed.lr == pytest.approx(grown.lr) == pytest.approx(0.25 * (1 + math.cos(
        math.pi * 0.4)))


def test_init_lr_scale_must_be_a_positive_number() -> None:
    from x3dsearch.budget import Budget
    from x3dsearch.errors import ConfigError

    assert Budget(lr=0.8, batch_size=8, lr_batch=128, init_lr_scale=0.25).peak_lr(True) == pytest.approx(0.0125)
    for bad in (0, -1.0, True, "low"):
        with pytest.raises(ConfigError, match="'init_lr_scale' must be a positive number"):
            Budget(init_lr_scale=bad)


def test_init_epochs_count_for_grown_trainings_only() -> None:
    from x3dsearch.budget import Budget
    from x3dsearch.errors import ConfigError

    assert Budget(epochs=3, init_epochs=1).epochs_for(True) == 1
    assert Budget(epochs=3, init_epochs=1).epochs_for(False) == 3 == Budget(epochs=3).epochs_for(True)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="'init_epochs' must be a positive integer or null"):
            Budget(init_epochs=bad)


def test_ema_decay_must_lie_strictly_between_0_and_1() -> None:
    from x3dsearch.budget import Budget
    from x3dsearch.errors import ConfigError

    assert Budget(ema_decay=0.9).ema_decay == 0.9 and Budget().ema_decay is None
    for bad in (0, 1, 1.5, -0.1, True, "0.9"):
        with pytest.raises(ConfigError, match="'ema_decay' must be a number in \\(0, 1\\) or null"):
            Budget(ema_decay=bad)


def test_no_weight_decay_on_bn_and_biases() -> None:
    model = build_model(preset("x2d"), 10)
    budget = load_budget("quick")
    opt = build_optimizer(model, budget)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == budget.weight_decay and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    bn_and_bias = set()
    for module_name, module in model.named_modules():
        for param_name, _ in module.named_parameters(recurse=False):
            if isinstance(module, nn.BatchNorm3d) or param_name == "bias":
                bn_and_bias.add(f"{module_name}.{param_name}")
    assert no_decay_names == bn_and_bias and len(bn_and_bias) > 50
    assert opt.defaults["nesterov"] and opt.defaults["momentum"] == 0.9
    assert opt.defaults["lr"] == pytest.approx(budget.lr * budget.batch_size / budget.lr_batch)
    assert len(parameter_groups(nn.Linear(3, 3, bias=False), 1e-4)) == 1


def test_multi_view_validation_averages_softmax_per_video(tiny_dataset: Path) -> None:
    from x3dsearch.data import VideoClipDataset, make_loader

    factors = preset("x2d")
    torch.manual_seed(0)
    model = build_model(factors, 4).eval()
    views = VideoClipDataset(tiny_dataset, "val", factors, train=False, temporal_views=2, spatial_views=3)
    batches = list(make_loader(views, 5, seed=0, shuffle=False))
    ev = evaluate(model, batches, 4, torch.device("cpu"))
    n = views.num_videos
    assert ev.videos == n and ev.views == n * 6
    with torch.no_grad():
        probs = torch.cat([model(b["clip"]).softmax(1) for b in batches])
    videos = torch.cat([b["video"] for b in batches])
    labels = torch.cat([b["label"] for b in batches])
    mean = torch.stack([probs[videos == v].mean(0) for v in range(n)])
    truth = torch.stack([labels[videos == v][0] for v in range(n)])
    assert ev.top1 == pytest.approx((mean.argmax(1) == truth).float().mean().item() * 100)
    assert ev.top5 == 100.0  # four classes: every label is in the top five


def test_precise_bn_sets_true_average_statistics() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv3d(3, 4, 1), nn.BatchNorm3d(4))
    clips = [torch.randn(2, 3, 2, 4, 4) * (i + 1) + i for i in range(3)]
    with torch.no_grad():
        feats = [model[0](c) for c in clips]
    used, bad = precise_bn(model, ({"clip": c, "bad": []} for c in clips + clips), 3, torch.device("cpu"))
    assert used == 3 and bad == [] and not model.training
    bn = model[1]
    expected_mean = torch.stack([f.mean(dim=(0, 2, 3, 4)) for f in feats]).mean(0)
    expected_var = torch.stack([f.var(dim=(0, 2, 3, 4), unbiased=True) for f in feats]).mean(0)
    assert torch.allclose(bn.running_mean, expected_mean, atol=1e-5)
    assert torch.allclose(bn.running_var, expected_var, atol=1e-4)
    assert bn.momentum == 0.1  # restored


def test_init_file_formats(tmp_path: Path) -> None:
    factors = preset("x2d")
    source = build_model(factors, 7, shortcut_bn=False)
    torch.save({"model_state": {f"module.{k}": v for k, v in source.state_dict().items()}, "shortcut_bn": False},
               tmp_path / "converted.pt")
    init = read_init(tmp_path / "converted.pt")
    assert init.shortcut_bn is False
    target = build_model(factors, 4, shortcut_bn=init.shortcut_bn)
    apply_init(target, init)  # the 7-class classifier is skipped, everything else loads
    assert torch.equal(target.stem.conv_xy.weight, source.stem.conv_xy.weight)
    assert target.head.fc2.weight.shape == (4, 2048)
    with pytest.raises(X3DSearchError, match="does not fit"):
        apply_init(build_model(factors, 4, shortcut_bn=True), init)  # the shortcut BNs are missing
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(X3DSearchError, match="not a readable"):
        read_init(tmp_path / "junk.pt")
    torch.save({"epoch": 3}, tmp_path / "empty.pt")
    with pytest.raises(X3DSearchError, match="no state dict"):
        read_init(tmp_path / "empty.pt")
