"""Training-loader throughput (clips/s) on the synthetic dataset, side by side with a PyAV baseline.

For X3D-XS (4x12 @ 160) and X3D-S (13x6 @ 160) sampling, measures our decord
loader with 1 and 2 workers and a baseline that decodes every frame with PyAV
and then samples the same clip. Also measures how many clips/s X3D-XS training
consumes here, to check that data never bounds the proxy trainings. Goals: the
loader is >= 3x the PyAV baseline, and with 2 workers >= 4x the XS training rate.
Last, it times decord's resize-on-decode against a full-size decode of a 480x640
file, which is why the loader decodes at full size (see x3dsearch/data/decode.py).
Usage: python experiments/benchmarks/loader_speed.py [--data ROOT] [--clips 48]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from x3dsearch.data import VideoClipDataset, make_loader, resolve_data
from x3dsearch.data.dataset import sample_fractions
from x3dsearch.data.layout import class_names, dataset_options
from x3dsearch.data.sampling import crop_box, temporal_indices, train_scale
from x3dsearch.data.synthetic import ClassDesign
from x3dsearch.data.transforms import frames_to_clip
from x3dsearch.errors import X3DSearchError
from x3dsearch.factors import preset
from x3dsearch.models import build_model


def loader_rate(dataset: VideoClipDataset, workers: int, clips: int, batch: int = 8) -> float:
    loader = make_loader(dataset, batch, seed=0, shuffle=True, workers=workers, fraction=min(1.0, clips / len(dataset)))
    start, seen = time.perf_counter(), 0
    for b in loader:
        seen += b["clip"].shape[0]
    return seen / (time.perf_counter() - start)


def pyav_rate(dataset: VideoClipDataset, clips: int) -> float:
    """Full decode with PyAV, then the same sampling and transforms: the naive way to read a clip."""
    import av

    f = dataset.factors
    start = time.perf_counter()
    for video in range(min(clips, dataset.num_videos)):
        with av.open(str(dataset.records[video].path)) as container:
            stream = container.streams.video[0]
            frames = np.stack([fr.to_ndarray(format="rgb24") for fr in container.decode(stream)])
            fps = float(stream.average_rate)
        window, scale, x, y, flip = sample_fractions(0, 0, video)
        idx = temporal_indices(len(frames), fps, f.frames, f.stride, window)
        box = crop_box(frames.shape[1], frames.shape[2], f.crop, train_scale(scale), x, y)
        frames_to_clip(torch.from_numpy(frames[idx]), box, f.crop, flip < 0.5)
    return min(clips, dataset.num_videos) / (time.perf_counter() - start)


def xs_training_rate(num_classes: int, threads: int = 2, batch: int = 8, steps: int = 4) -> float:
    torch.set_num_threads(threads)
    f = preset("x3d-xs")
    model = build_model(f, num_classes=num_classes).to(memory_format=torch.channels_last_3d).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    clip = torch.randn(batch, 3, f.frames, f.crop, f.crop).contiguous(memory_format=torch.channels_last_3d)
    labels = torch.zeros(batch, dtype=torch.long)

    def step() -> None:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(clip), labels).backward()
        opt.step()

    for _ in range(2):  # oneDNN builds its kernels on the first calls
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - start)


def large_video_design(root: Path) -> ClassDesign:
    """The synthetic design to render the 480x640 file from: the dataset's last class when the
    dataset is synthetic (its ``dataset.yaml`` lists its class designs by name), else the last
    design the generator has."""
    from x3dsearch.data.synthetic import CLASS_DESIGNS

    by_name = {d.name: d for d in CLASS_DESIGNS}
    names = [entry.get("name") for entry in dataset_options(root).get("class_design") or []
             if isinstance(entry, dict)]
    known = [by_name[n] for n in names if n in by_name]
    return known[-1] if known else CLASS_DESIGNS[-1]


def decode_resize_ratio(design: ClassDesign, reps: int = 20) -> tuple[float, float]:
    """ms per 4-frame read of a 480x640 H.264 file: full size vs decord resizing to 128 px while decoding."""
    import tempfile

    import decord

    from x3dsearch.data.synthetic import encode_mp4, render_video

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "big.mp4")
        frames = render_video(design, np.random.default_rng(0), (480, 640), 30.0, (3.0, 3.0))
        encode_mp4(Path(path), frames, 30.0)
        times = []
        for kwargs in ({}, {"width": 170, "height": 128}):
            start = time.perf_counter()
            for _ in range(reps):
                reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1, **kwargs)
                reader.get_batch([10, 22, 34, 46]).asnumpy()
            times.append((time.perf_counter() - start) / reps * 1000)
    return times[0], times[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--clips", type=int, default=48, help="clips per measurement")
    args = parser.parse_args()
    try:
        root = resolve_data(args.data)
    except X3DSearchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    train_rate = xs_training_rate(len(class_names(root)))
    print(f"X3D-XS training consumes {train_rate:.1f} clips/s here (2 threads, batch 8, channels_last_3d)")
    print(f"{'sampling':<16} {'PyAV full decode':>17} {'ours, 1 worker':>15} {'ours, 2 workers':>16} "
          f"{'vs PyAV (1w/2w)':>15} {'2w vs XS train':>14}")
    for name in ("x3d-xs", "x3d-s"):
        f = preset(name)
        ds = VideoClipDataset(root, "train", f, train=True, seed=0)
        baseline = pyav_rate(ds, max(8, args.clips // 4))
        one = loader_rate(ds, 1, args.clips)
        two = loader_rate(ds, 2, args.clips)
        label = f"{name} {f.frames}x{f.stride}@{f.crop}"
        ratios = f"{one / baseline:.1f}x/{two / baseline:.1f}x"
        print(f"{label:<16} {baseline:>17.1f} {one:>15.1f} {two:>16.1f} {ratios:>15} "
              f"{f'{two / train_rate:.1f}x':>14}")
    design = large_video_design(root)
    full, resized = decode_resize_ratio(design)
    print(f"decord, 4 frames of 480x640 ({design.name}): full size {full:.1f} ms, "
          f"resized to 128 px while decoding {resized:.1f} ms (ratio {full / resized:.2f})")


if __name__ == "__main__":
    main()
