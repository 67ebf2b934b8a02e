"""The video pipeline on real mp4 files decoded by decord."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from x3dsearch.data import (DataError, DataHealth, EpochSampler, VideoClipDataset, class_names, load_split,
                            make_loader, resolve_data, synthesize)
from x3dsearch.data.decode import open_video, video_info
from x3dsearch.data.sampling import temporal_indices
from x3dsearch.errors import ConfigError
from x3dsearch.factors import Factors

XS_LIKE = Factors(frames=4, stride=6, crop=48, width=1.0, bottleneck=2.25, depth=2.2)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "x3dsearch.cli.main", *args], capture_output=True, text=True)


def test_clip_shape_normalisation_and_labels(tiny_dataset: Path) -> None:
    ds = VideoClipDataset(tiny_dataset, "train", XS_LIKE, train=True, seed=0)
    assert ds.num_videos == 9 and ds.num_classes == 3 and len(ds) == 9
    item = ds[0]
    assert item["clip"].shape == (3, 4, 48, 48) and item["clip"].dtype == torch.float32
    assert item["bad"] == [] and item["label"] == ds.records[0].label
    # normalised with mean 0.45, std 0.225: pixel values in [0, 1] map into [-2, 2.45]
    assert item["clip"].min() >= -2.0 - 1e-5 and item["clip"].max() <= 2.4445 + 1e-4


def test_frame_indices_follow_the_factors(tiny_dataset: Path) -> None:
    ds = VideoClipDataset(tiny_dataset, "val", XS_LIKE, train=False)
    info = video_info(open_video(ds.records[0].path))
    indices = ds.clip_indices(0)
    assert len(indices) == 4 and np.all(np.diff(indices) == 6)
    # the centre window: as much video before the clip as after it
    span = 3 * 6 + 1
    assert abs(indices[0] - (info.num_frames - span) / 2) <= 1


def test_sixty_fps_source_is_resampled_by_time(tmp_path: Path) -> None:
    root30 = synthesize(tmp_path / "a", classes=2, videos_per_class=2, seed=3, size=(64, 86), seconds=(1.0, 1.0))
    root60 = synthesize(tmp_path / "b", classes=2, videos_per_class=2, seed=3, size=(64, 86), seconds=(1.0, 1.0),
                        fps=60)
    f = Factors(frames=3, stride=5, crop=48)
    ds30 = VideoClipDataset(root30, "val", f, train=False)
    ds60 = VideoClipDataset(root60, "val", f, train=False)
    info60 = video_info(open_video(ds60.records[0].path))
    assert info60.fps == pytest.approx(60, rel=0.01) and info60.num_frames == 60
    i30, i60 = ds30.clip_indices(0), ds60.clip_indices(0)
    assert np.all(np.diff(i60) == 10)  # stride 5 at 30 fps is 10 source frames at 60 fps
    # the same instants in time, up to the 30 fps source's coarser frame grid
    assert all(abs(a / 30 - b / 60) < 1 / 30 for a, b in zip(i30, i60))
    assert temporal_indices(10, 30.0, 4, 5, 0.5) == [0, 5, 9, 9]  # short video: pads with its last frame


def test_determinism_and_common_random_numbers(tiny_dataset: Path) -> None:
    a = VideoClipDataset(tiny_dataset, "train", XS_LIKE, train=True, seed=7)
    b = VideoClipDataset(tiny_dataset, "train", XS_LIKE, train=True, seed=7)
    loader_a = make_loader(a, 3, seed=7, epoch=1, shuffle=True, workers=0)
    loader_b = make_loader(b, 3, seed=7, epoch=1, shuffle=True, workers=2)  # worker count never changes data
    for x, y in zip(loader_a, loader_b):
        assert torch.equal(x["clip"], y["clip"]) and torch.equal(x["video"], y["video"])
    # another candidate (other frames and crop) with the same seed sees the same videos in the same order
    other = VideoClipDataset(tiny_dataset, "train", XS_LIKE.replace(frames=2, crop=64), train=True, seed=7)
    order = [int(v) for batch in make_loader(other, 3, seed=7, epoch=1, shuffle=True) for v in batch["video"]]
    assert order == [int(v) for batch in loader_a for v in batch["video"]]
    # and a different epoch is a different order
    assert EpochSampler(9, seed=7, epoch=2).order() != EpochSampler(9, seed=7, epoch=1).order()
    # resuming mid-epoch skips exactly the consumed items
    assert list(EpochSampler(9, seed=7, epoch=1, start=4)) == EpochSampler(9, seed=7, epoch=1).order()[4:]


def test_multi_view_validation(tiny_dataset: Path) -> None:
    ds = VideoClipDataset(tiny_dataset, "val", XS_LIKE, train=False, temporal_views=2, spatial_views=3)
    assert len(ds) == 3 * 6
    views = [ds[i] for i in range(6)]
    assert {v["video"] for v in views} == {0} and [v["view"] for v in views] == list(range(6))
    assert not torch.equal(views[0]["clip"], views[2]["clip"])  # left vs right crop


def _copy_dataset(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_bad_files_are_skipped_counted_and_stop_past_the_limit(tiny_dataset: Path, tmp_path: Path) -> None:
    root = _copy_dataset(tiny_dataset, tmp_path / "bad")
    records = load_split(root, "train")
    records[0].path.write_bytes(b"")  # zero-byte
    data = records[1].path.read_bytes()
    records[1].path.write_bytes(data[: len(data) // 8])  # truncated
    records[2].path.unlink()  # missing
    ds = VideoClipDataset(root, "train", XS_LIKE, train=True)
    health = DataHealth(max_bad_fraction=0.5, min_seen=1)
    for batch in make_loader(ds, 3, seed=0, shuffle=False):
        assert batch["clip"].shape[0] == 3  # every item still delivered, from a substitute
        health.update(batch["bad"], len(batch["label"]))
    assert sorted(health.bad_paths) == sorted(str(r.path) for r in records[:3])
    assert "3 unreadable" in health.summary()
    strict = DataHealth(max_bad_fraction=0.05, min_seen=1)
    with pytest.raises(DataError, match="too many unreadable videos") as err:
        strict.update([str(records[0].path)], 3)
    assert "\n" not in str(err.value) and str(records[0].path) in str(err.value)


def test_folder_per_class_layout(tiny_dataset: Path, tmp_path: Path) -> None:
    root = tmp_path / "folders"
    names = class_names(tiny_dataset)
    for split in ("train", "val"):
        for record in load_split(tiny_dataset, split):
            target = root / split / names[record.label] / record.path.name.replace(".mp4", ".mkv")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(record.path, target)
    assert class_names(root) == sorted(names)
    train = load_split(root, "train")
    assert len(train) == 9 and {r.path.suffix for r in train} == {".mkv"}
    by_name = {r.path.stem: sorted(names)[r.label] for r in train}
    assert all(stem.startswith(name) for stem, name in by_name.items())
    assert VideoClipDataset(root, "train", XS_LIKE, train=True)[0]["clip"].shape == (3, 4, 48, 48)


def test_list_files_with_commas_and_spaces(tiny_dataset: Path, tmp_path: Path) -> None:
    root = _copy_dataset(tiny_dataset, tmp_path / "csv")
    lines = (root / "train.csv").read_text().splitlines()
    (root / "train.csv").write_text("\n".join(row.replace(" ", ",") if i % 2 else row for i, row in enumerate(lines)))
    assert [r.label for r in load_split(root, "train")] == [int(row.split()[-1]) for row in lines]


def test_resolve_data_rejects_a_missing_root(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not found|does not exist|no such"):
        resolve_data(tmp_path / "nowhere")


def test_synthesis_is_byte_identical_for_a_seed(tmp_path: Path) -> None:
    def digest(root: Path) -> str:
        h = hashlib.sha256()
        for p in sorted(root.rglob("*")):
            if p.is_file():
                h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
        return h.hexdigest()

    kwargs = dict(classes=2, videos_per_class=2, size=(64, 86), seconds=(1.0, 1.0))
    a = synthesize(tmp_path / "a", seed=5, **kwargs)
    b = synthesize(tmp_path / "b", seed=5, **kwargs)
    c = synthesize(tmp_path / "c", seed=6, **kwargs)
    assert digest(a) == digest(b) != digest(c)


def test_cli_synth_and_check(tmp_path: Path) -> None:
    out = tmp_path / "synth"
    proc = _cli("data", "synth", str(out), "--num-classes", "2", "--videos-per-class", "2", "--size", "64x86")
    assert proc.returncode == 0, proc.stderr
    assert {"train.csv", "val.csv", "classes.txt"} <= {p.name for p in out.iterdir()}
    ok = _cli("data", "check", str(out))
    assert ok.returncode == 0 and "0 unreadable" in ok.stdout
    victim = load_split(out, "val")[0].path
    victim.write_bytes(b"not a video at all")
    bad = _cli("data", "check", str(out))
    assert bad.returncode == 1 and f"BAD {victim}" in bad.stdout
    again = _cli("data", "synth", str(out))
    assert again.returncode == 2 and len(again.stderr.strip().splitlines()) == 1
    missing = _cli("data", "check", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
