"""Clip sampling checked on the pixels delivered: real H.264 "counter" videos whose frame k shows k."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from x3dsearch.data import DataError, VideoClipDataset, make_loader
from x3dsearch.data.dataset import sample_fractions
from x3dsearch.data.sampling import crop_box, spatial_positions, temporal_indices, window_positions
from x3dsearch.data.synthetic import encode_mp4
from x3dsearch.data.transforms import MEAN, STD
from x3dsearch.errors import ConfigError
from x3dsearch.factors import Factors


def counter_frames(n: int, height: int = 48, width: int = 64) -> np.ndarray:
    """Frame k is flat: red = 16 * (k % 16) + 8, green = 16 * (k // 16) + 8, so k survives H.264."""
    k = np.arange(n)
    colour = np.stack([16 * (k % 16) + 8, 16 * (k // 16) + 8, np.full(n, 128)], axis=1).astype(np.uint8)
    return np.broadcast_to(colour[:, None, None, :], (n, height, width, 3)).copy()


def decoded_indices(clip: torch.Tensor) -> list[int]:
    """Frame numbers read back from a normalised (3, T, H, W) clip of a counter video."""
    rgb = clip.mean(dim=(2, 3)) * STD + MEAN  # (3, T) in [0, 1]
    red, green = (rgb[:2] * 255).round().tolist()
    return [int(round((g - 8) / 16)) * 16 + int(round((r - 8) / 16)) for r, g in zip(red, green)]


@pytest.fixture(scope="module")
def counters(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A list-file dataset of counter videos: 90 frames at 30 fps, 180 at 60 fps, 20 at 30 fps (short)."""
    root = tmp_path_factory.mktemp("counters")
    for name, n, fps in (("c30", 90, 30), ("c60", 180, 60), ("short", 20, 30)):
        encode_mp4(root / f"{name}.mp4", counter_frames(n), fps)
    lines = "c30.mp4 0\nc60.mp4 1\nshort.mp4 0\n"
    (root / "train.csv").write_text(lines)
    (root / "val.csv").write_text(lines)
    return root


def test_val_clip_delivers_the_centre_window_frames(counters: Path) -> None:
    f = Factors(frames=4, stride=12, crop=32)
    ds = VideoClipDataset(counters, "val", f, train=False)
    assert decoded_indices(ds[0]["clip"]) == temporal_indices(90, 30.0, 4, 12, 0.5) == [26, 38, 50, 62]


def test_sixty_fps_source_shows_the_same_instants(counters: Path) -> None:
    f = Factors(frames=5, stride=6, crop=32)
    ds = VideoClipDataset(counters, "val", f, train=False)
    at30, at60 = decoded_indices(ds[0]["clip"]), decoded_indices(ds[1]["clip"])
    assert at60 == [2 * i for i in at30]  # the same times: frame j at 30 fps is frame 2j at 60 fps
    assert np.all(np.diff(at60) == 12)


def test_short_video_pads_its_last_frame(counters: Path) -> None:
    ds = VideoClipDataset(counters, "val", Factors(frames=4, stride=8, crop=32), train=False)
    assert decoded_indices(ds[2]["clip"]) == [0, 8, 16, 19]


def test_multi_view_windows_span_the_video(counters: Path) -> None:
    ds = VideoClipDataset(counters, "val", Factors(frames=2, stride=10, crop=32), train=False, temporal_views=3)
    starts = [decoded_indices(ds[v]["clip"])[0] for v in range(3)]
    assert starts == [0, 39, 79]  # start, centre, end of a 90-frame video for an 11-frame span
    assert window_positions(1) == [0.5] and window_positions(3) == [0.0, 0.5, 1.0]


def test_train_windows_use_one_fraction_whatever_the_factors(counters: Path) -> None:
    """Common random numbers: the same seed puts every candidate's window at the same relative position."""
    a = VideoClipDataset(counters, "train", Factors(frames=4, stride=10, crop=32), train=True, seed=3)
    b = VideoClipDataset(counters, "train", Factors(frames=7, stride=5, crop=64), train=True, seed=3)
    for epoch in range(4):
        a.set_epoch(epoch)
        b.set_epoch(epoch)
        ia, ib = decoded_indices(a[0]["clip"]), decoded_indices(b[0]["clip"])
        assert ia[0] == ib[0] and ia[-1] == ib[-1]  # equal spans (31 frames), equal fraction, equal window
        assert ia == a.clip_indices(0)
    position = sample_fractions(3, 0, 0)[0]
    a.set_epoch(0)
    assert decoded_indices(a[0]["clip"])[0] == int(position * (90 - 31) + 1e-6)


def test_crop_geometry() -> None:
    assert crop_box(192, 256, 160, 8 / 7, 0.5, 0.5) == crop_box(192, 256, 160, 8 / 7, 0.5, 0.5)
    box = crop_box(192, 256, 160, 8 / 7, 0.5, 0.5)
    assert (box.size, box.top, box.left) == (168, 12, 44)  # short side to 183 px, centre 160 crop
    assert crop_box(192, 256, 112, 10 / 7, 0.0, 1.0).size == 134  # largest jitter: smallest box
    assert spatial_positions(3, 192, 256) == [(0.0, 0.5), (0.5, 0.5), (1.0, 0.5)]  # left, centre, right
    assert spatial_positions(3, 256, 192) == [(0.5, 0.0), (0.5, 0.5), (0.5, 1.0)]  # top, centre, bottom


def _striped_root(tmp_path: Path) -> Path:
    """One video whose left half is black and right half white, to see crops and flips."""
    frames = np.zeros((30, 48, 96, 3), dtype=np.uint8)
    frames[:, :, 48:] = 255
    encode_mp4(tmp_path / "lr.mp4", frames, 30)
    for split in ("train", "val"):
        (tmp_path / f"{split}.csv").write_text("lr.mp4 0\n")
    return tmp_path


def test_three_spatial_views_are_left_centre_right(tmp_path: Path) -> None:
    root = _striped_root(tmp_path)
    ds = VideoClipDataset(root, "val", Factors(frames=1, stride=1, crop=40), train=False, spatial_views=3)
    brightness = [float(ds[v]["clip"].mean()) for v in range(3)]
    assert brightness[0] < brightness[1] < brightness[2]


def test_flip_mirrors_the_clip_and_can_be_switched_off(tmp_path: Path) -> None:
    root = _striped_root(tmp_path)
    f = Factors(frames=1, stride=1, crop=40)
    seed = next(s for s in range(100) if sample_fractions(s, 0, 0)[4] < 0.5)  # a draw that flips
    flipped = VideoClipDataset(root, "train", f, train=True, seed=seed)[0]["clip"]
    plain = VideoClipDataset(root, "train", f, train=True, seed=seed, flip=False)[0]["clip"]
    assert torch.allclose(flipped, plain.flip(-1))
    (root / "dataset.yaml").write_text("flip: false\n")  # direction matters in this dataset
    assert torch.equal(VideoClipDataset(root, "train", f, train=True, seed=seed)[0]["clip"], plain)


def test_bad_video_is_logged_once_and_replaced_deterministically(counters: Path, tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    for name in ("c30", "c60"):
        (tmp_path / f"{name}.mp4").write_bytes((counters / f"{name}.mp4").read_bytes())
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 definitely not a video")
    lines = "broken.mp4 1\nc30.mp4 0\nc60.mp4 2\n"
    (tmp_path / "train.csv").write_text(lines)
    (tmp_path / "val.csv").write_text(lines)
    f = Factors(frames=2, stride=4, crop=32)
    ds = VideoClipDataset(tmp_path, "train", f, train=True, seed=1)
    with caplog.at_level(logging.WARNING, logger="x3dsearch.data"):
        first, second = ds[0], ds[0]
    assert first["bad"] == [str(tmp_path / "broken.mp4")] and first["video"] == 0
    assert first["label"] in (0, 2) and torch.equal(first["clip"], second["clip"])
    assert sum("broken.mp4" in r.getMessage() for r in caplog.records) == 1
    # the same seed and epoch picks the same substitute in a fresh dataset (another process)
    again = VideoClipDataset(tmp_path, "train", f, train=True, seed=1)[0]
    assert torch.equal(again["clip"], first["clip"]) and again["label"] == first["label"]


def test_all_bad_stops_with_one_line_even_from_a_worker(tmp_path: Path) -> None:
    for i in range(3):
        (tmp_path / f"v{i}.mp4").write_bytes(b"")
    lines = "".join(f"v{i}.mp4 0\n" for i in range(3))
    (tmp_path / "train.csv").write_text(lines)
    (tmp_path / "val.csv").write_text(lines)
    ds = VideoClipDataset(tmp_path, "train", Factors(frames=2, stride=4, crop=32), train=True)
    with pytest.raises(DataError) as err:
        next(iter(make_loader(ds, 2, seed=0, shuffle=False, workers=1)))
    assert "\n" not in str(err.value) and "no readable video" in str(err.value)


def test_max_videos_keeps_every_class(tiny_dataset: Path) -> None:
    ds = VideoClipDataset(tiny_dataset, "train", Factors(frames=1, crop=32), train=False, max_videos=3)
    assert ds.num_videos == 3 and sorted(r.label for r in ds.records) == [0, 1, 2]


def test_bad_arguments_are_config_errors(tiny_dataset: Path) -> None:
    f = Factors(frames=1, crop=32)
    with pytest.raises(ConfigError):
        VideoClipDataset(tiny_dataset, "train", f, train=True, temporal_views=2)
    with pytest.raises(ConfigError):
        VideoClipDataset(tiny_dataset, "test", f, train=False)
    with pytest.raises(ConfigError):
        make_loader(VideoClipDataset(tiny_dataset, "val", f, train=False), 2, seed=0, shuffle=False, fraction=0)
