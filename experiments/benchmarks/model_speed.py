"""Inference and training speed of X3D-XS and X3D-S at batch 8 (clips/s).

Measures, side by side in one run: our model as built, with channels_last_3d,
with BN folded into the convs, and (when pytorchvideo 0.1.5 is installed) the
reference pytorchvideo X3D with the same factors. Prints each variant's ratio
to the reference. Usage: python experiments/benchmarks/model_speed.py [--threads 2]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
import types
from typing import Callable

import torch
from torch import nn

from x3dsearch.factors import PRESETS, preset
from x3dsearch.models import build_model, fuse_bn


def reference_model(name: str) -> nn.Module | None:
    """pytorchvideo's X3D, importable here only with a stand-in for its detection-only torchvision import."""
    if "torchvision" not in sys.modules:
        ops = types.ModuleType("torchvision.ops")
        ops.RoIAlign = ops.roi_align = object
        tv = types.ModuleType("torchvision")
        tv.ops = ops
        tv.transforms = types.ModuleType("torchvision.transforms")
        sys.modules.update({"torchvision": tv, "torchvision.ops": ops, "torchvision.transforms": tv.transforms})
    try:
        from pytorchvideo.models.x3d import create_x3d
    except Exception:  # noqa: BLE001 - not installed: compare with the documented numbers only
        return None
    f = preset(name)
    return create_x3d(input_clip_length=f.frames, input_crop_size=f.crop, model_num_class=400,
                      depth_factor=f.depth, width_factor=2.0 * f.width, bottleneck_factor=f.bottleneck)


def make_step(model: nn.Module, clip: torch.Tensor, train: bool, channels_last: bool) -> Callable[[], None]:
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
        clip = clip.contiguous(memory_format=torch.channels_last_3d)
    labels = torch.zeros(clip.shape[0], dtype=torch.long)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9) if train else None
    model.train(train)

    def step() -> None:
        if train:
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(clip), labels).backward()
            opt.step()
        else:
            with torch.inference_mode():
                model(clip)

    for _ in range(2):  # warm-up: oneDNN builds its kernels on the first calls
        step()
    return step


def interleaved_speeds(steps: dict[str, Callable[[], None]], batch: int, rounds: int) -> dict[str, float]:
    """Median clips/s per variant, timing the variants in turn each round so load hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return {name: batch / statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--models", nargs="+", default=["x3d-xs", "x3d-s"], choices=sorted(PRESETS))
    parser.add_argument("--rounds", type=int, default=8, help="timed rounds per variant (median reported)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    # Documented speed of the reference on this machine (2 threads, batch 8), used when pytorchvideo is absent.
    documented = {("x3d-xs", False): 38.0, ("x3d-xs", True): 3.7, ("x3d-s", False): 7.0, ("x3d-s", True): 1.0}
    print(f"threads={args.threads} batch={args.batch}")
    print(f"{'model':<8} {'mode':<6} {'variant':<24} {'clips/s':>9} {'vs ref':>7}")
    for name in args.models:
        f = preset(name)
        clip = torch.randn(args.batch, 3, f.frames, f.crop, f.crop)
        for train in (False, True):
            mode = "train" if train else "infer"
            variants: dict[str, tuple[nn.Module, bool]] = {}
            ref = reference_model(name)
            if ref is not None:
                variants["pytorchvideo reference"] = (ref, False)
            variants["ours"] = (build_model(f), False)
            variants["ours channels_last_3d"] = (build_model(f), True)
            if not train:
                folded = fuse_bn(build_model(f).eval())
                variants["ours BN folded"] = (folded, False)
                variants["ours folded+ch_last"] = (copy.deepcopy(folded), True)
            steps = {label: make_step(m, clip, train, cl) for label, (m, cl) in variants.items()}
            speeds = interleaved_speeds(steps, args.batch, args.rounds if not train else max(3, args.rounds // 2))
            ref_speed = speeds.get("pytorchvideo reference", documented.get((name, train)))
            if ref is None and ref_speed is not None:
                print(f"{name:<8} {mode:<6} {'reference (documented)':<24} {ref_speed:>9.2f} {1.0:>6.2f}x")
            for label, speed in speeds.items():
                ratio = f"{speed / ref_speed:>6.2f}x" if ref_speed else f"{'-':>7}"
                print(f"{name:<8} {mode:<6} {label:<24} {speed:>9.2f} {ratio}")


if __name__ == "__main__":
    main()
