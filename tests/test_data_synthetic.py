"""The synthetic dataset's class design holds on real encoded files, and its cache is written atomically."""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from x3dsearch.data import ensure_synthetic, load_split, resolve_data
from x3dsearch.data.decode import open_video, video_info
from x3dsearch.data.synthetic import CLASS_DESIGNS, SYNTHETIC_VERSION, VARIANTS, Geometry, film
from x3dsearch.errors import ConfigError
from x3dsearch.factors import preset

REPO = Path(__file__).resolve().parents[1]


def _scene(name: str, seed: int = 0, fps: float = 30.0, seconds: float = 3.5):
    """The class's frames (scene only, no distractors or noise) on a flat grey world."""
    label = [d.name for d in CLASS_DESIGNS].index(name)
    g = Geometry(256, 340, fps, int(seconds * fps))
    scene = CLASS_DESIGNS[label].make(VARIANTS["default"].video_rng(seed, label, 0), g)
    world = np.full((g.height, g.width, 3), 128.0, dtype=np.float32)

    def frame(t: float) -> np.ndarray:
        return film(scene, world, t).img
    return frame, g


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flicker_is_invisible_at_stride_12_and_visible_at_stride_6(seed: int) -> None:
    flicker, _ = _scene("flicker", seed)
    for start in (0, 5, 31):
        t = start / 30
        assert np.array_equal(flicker(t), flicker(t + 12 / 30))  # one phase every 12 frames: looks steady
        a, b = flicker(t), flicker(t + 6 / 30)  # half a period later the light has switched level
        assert abs(a.mean() / b.mean() - 1) > 0.4 and (np.abs(a - b).mean(axis=2) > 20).mean() > 0.9
    steady, _ = _scene("steady", seed)
    assert np.array_equal(steady(0.1), steady(0.3))


@pytest.mark.parametrize("seed", [0, 1])
def test_light_ramps_in_the_class_direction_from_a_random_middle_level(seed: int) -> None:
    for name, sign in (("brightening", 1), ("dimming", -1)):
        frame, _ = _scene(name, seed)
        a, b = frame(1.0).mean(), frame(1.4).mean()  # X3D-XS's frame spacing (12 frames at 30 fps)
        assert sign * math.log(b / a) > 0.19  # the log level changes by at least 0.5 per second
    # the level at the middle (1.75 s) is drawn per video from one range (0.75-1.25) for both classes,
    # so a single frame carries no class information
    levels = [np.median(_scene(name, s)[0](1.75)) / 128 for name in ("brightening", "dimming") for s in range(12)]
    assert all(0.75 <= v <= 1.25 for v in levels) and min(levels) < 0.8 and max(levels) > 1.2


@pytest.mark.parametrize("seconds", [3.0, 3.5, 4.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_lights_change_only_late(seconds: float, seed: int) -> None:
    for name, sign in (("lights-out", -1), ("lights-up", 1)):
        frame, g = _scene(name, seed, seconds=seconds)
        early, centre, end = frame(0.2).mean(), frame(g.duration / 2).mean(), frame(g.duration - 0.05).mean()
        assert early == pytest.approx(centre) and sign * (end - centre) > 40
        # the centre window of X3D-XS (4 x 12) ends before the event; X3D-S (13 x 6) reaches it
        for f, sees in ((preset("x3d-xs"), False), (preset("x3d-s"), True)):
            span = (f.frames - 1) * f.stride + 1
            last = (g.num_frames - span) // 2 + span - 1
            assert (abs(frame(last / 30).mean() - centre) > 10) == sees, f.short()


@pytest.mark.parametrize("index", [0, 1])
def test_stripes_vanish_at_crop_112_and_show_at_crop_160(tmp_path: Path, index: int) -> None:
    """A striped video and its plain twin (same generator: same scene, panel, noise) through x264,
    decord and the validation transform: identical at crop 112 up to codec noise, different at 160."""
    import decord

    from x3dsearch.data.sampling import VAL_SCALE, crop_box
    from x3dsearch.data.synthetic import encode_mp4, render_video
    from x3dsearch.data.transforms import frames_to_clip

    names = [d.name for d in CLASS_DESIGNS]
    clips = {}
    for name in ("striped", "plain"):
        frames = render_video(CLASS_DESIGNS[names.index(name)], VARIANTS["default"].video_rng(0, 6, index),
                              (256, 340), 30.0, (0.3, 0.3))
        encode_mp4(tmp_path / f"{name}.mp4", frames, 30.0)
        decoded = torch.from_numpy(decord.VideoReader(str(tmp_path / f"{name}.mp4")).get_batch([0, 5]).asnumpy())
        for crop in (112, 160):
            box = crop_box(256, 340, crop, VAL_SCALE, 0.5, 0.5)
            clips[name, crop, "raw"] = frames_to_clip(torch.from_numpy(frames[[0, 5]]), box, crop, False)
            clips[name, crop, "mp4"] = frames_to_clip(decoded, box, crop, False)

    def diff(crop: int, kind: str) -> float:
        return float((clips["striped", crop, kind] - clips["plain", crop, kind]).abs().mean())

    assert diff(112, "raw") < 0.005 < 0.05 < diff(160, "raw")  # the 2:1 resize cancels 1-pixel stripes
    assert diff(112, "mp4") < 0.4 * diff(160, "mp4")  # after H.264, codec noise is what is left


def test_files_are_real_h264_at_the_requested_rate(tiny_dataset: Path) -> None:
    import av

    for record in load_split(tiny_dataset, "val"):
        info = video_info(open_video(record.path))
        assert (info.height, info.width) == (64, 86) and info.fps == pytest.approx(30)
        assert 30 <= info.num_frames <= 45  # 1.0-1.5 s
        with av.open(str(record.path)) as container:
            assert container.streams.video[0].codec_context.name == "h264"
    assert (tiny_dataset / "classes.txt").read_text().split() == [d.name for d in CLASS_DESIGNS[:3]]


def test_synthesize_rejects_bad_arguments(tmp_path: Path) -> None:
    from x3dsearch.data import synthesize

    for kwargs in ({"classes": 1}, {"classes": 14}, {"videos_per_class": 1}, {"size": (63, 86)}):
        with pytest.raises(ConfigError):
            synthesize(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()


def test_default_splits_and_a_held_out_test_split(tmp_path: Path) -> None:
    from x3dsearch.data import synthesize
    from x3dsearch.data.synthetic import DEFAULT_TEST_FRACTION, DEFAULT_VIDEOS_PER_CLASS, split_sizes

    # the cached default: 96 training videos (quick was tuned on them), 104 in val and in test
    assert split_sizes(DEFAULT_VIDEOS_PER_CLASS, test_fraction=DEFAULT_TEST_FRACTION) == (12, 13, 13)
    assert split_sizes(2, test_fraction=DEFAULT_TEST_FRACTION) == (1, 1, 0)  # train and val come first
    assert split_sizes(4) == (3, 1, 0)
    root = synthesize(tmp_path / "d", classes=2, videos_per_class=5, seed=0, size=(32, 44), seconds=(0.5, 0.5),
                      test_fraction=DEFAULT_TEST_FRACTION)
    sizes = [len(load_split(root, s)) for s in ("train", "val", "test")]
    assert sizes == [2, 4, 4]
    listed = [r.path.name for s in ("train", "val", "test") for r in load_split(root, s)]
    assert len(set(listed)) == 10  # every video in exactly one split
    import yaml

    meta = yaml.safe_load((root / "dataset.yaml").read_text())
    assert (meta["val_per_class"], meta["test_per_class"]) == (2, 2)
    with pytest.raises(ConfigError, match="test fraction"):
        synthesize(tmp_path / "e", classes=2, videos_per_class=5, val_fraction=0.5, test_fraction=0.5)


def test_ensure_synthetic_generates_once_into_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X3DSEARCH_CACHE", str(tmp_path))
    root = ensure_synthetic(classes=2, videos_per_class=2, seed=4)
    assert root.parent == tmp_path and (root / "train.csv").is_file()
    stamp = (root / "train.csv").stat().st_mtime_ns
    assert ensure_synthetic(classes=2, videos_per_class=2, seed=4) == root
    assert (root / "train.csv").stat().st_mtime_ns == stamp  # reused, not regenerated
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == [root.name]


def test_ensure_synthetic_regenerates_a_cache_made_with_other_parameters(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy under the same name but from other settings (an older commit's defaults) is replaced."""
    import yaml

    monkeypatch.setenv("X3DSEARCH_CACHE", str(tmp_path))
    root = ensure_synthetic(classes=2, videos_per_class=2, seed=4)
    meta = yaml.safe_load((root / "dataset.yaml").read_text())
    (root / "dataset.yaml").write_text(yaml.safe_dump({**meta, "videos_per_class": 3}))
    (root / "stale-marker").write_text("from the old copy")
    assert ensure_synthetic(classes=2, videos_per_class=2, seed=4) == root
    assert yaml.safe_load((root / "dataset.yaml").read_text()) == meta
    assert not (root / "stale-marker").exists() and len(load_split(root, "train")) + len(load_split(root, "val")) == 4
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == [root.name]


@pytest.mark.slow
@pytest.mark.fault  # injects a fault: make test-faults runs it, make test does not
def test_ensure_synthetic_waits_for_a_concurrent_generation(tmp_path: Path) -> None:
    """Two processes asking at once: one generates, the other waits and reuses it; a stale temp dir goes."""
    stale = tmp_path / f".synthetic-v{SYNTHETIC_VERSION}-c2-k2-s9.x.tmp"
    stale.mkdir()
    code = ("from x3dsearch.utils.logging import setup_logging; setup_logging(); "
            "from x3dsearch.data import ensure_synthetic; "
            "print(ensure_synthetic(classes=2, videos_per_class=2, seed=9))")
    env = {**os.environ, "X3DSEARCH_CACHE": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert outs[0][0] == outs[1][0] and f"synthetic-v{SYNTHETIC_VERSION}-c2-k2-s9" in outs[0][0]
    assert sum("generating" in err for _, err in outs) == 1  # one generation, one reuse
    assert not stale.exists()


def test_resolve_data_checks_the_root(tiny_dataset: Path, tmp_path: Path) -> None:
    assert resolve_data(str(tiny_dataset)) == tiny_dataset
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"neither train\.csv"):
        resolve_data(tmp_path / "empty")


@pytest.mark.slow
@pytest.mark.fault  # injects a fault: make test-faults runs it, make test does not
def test_killed_generation_leaves_no_half_dataset(tmp_path: Path) -> None:
    out = tmp_path / "synth"
    proc = subprocess.Popen([str(REPO / ".venv" / "bin" / "x3dsearch") if (REPO / ".venv").exists() else "x3dsearch",
                             "data", "synth", str(out), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(tmp_path.glob(".synth.*/videos/*/*.mp4")):
            time.sleep(0.2)
        assert any(tmp_path.glob(".synth.*/videos/*/*.mp4")), "generation never started writing"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not out.exists()  # the half-written dataset stays in a hidden temporary folder
    # a later run writes the complete dataset
    done = subprocess.run([sys.executable, "-m", "x3dsearch.cli.main", "data", "synth", str(out), "--classes", "2",
                           "--videos-per-class", "2", "--size", "64x86"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(load_split(out, "train")) + len(load_split(out, "val")) == 4


def test_synthetic_modules_have_one_job_and_no_cycle_with_layout() -> None:
    """Rendering, encoding and caching are separate modules under 400 lines; synthetic never imports layout."""
    package = REPO / "x3dsearch" / "data" / "synthetic"
    modules = {p.stem for p in package.glob("*.py")}
    assert {"draw", "classes", "render", "encode", "generate", "cache"} <= modules
    assert all(len(p.read_text().splitlines()) <= 400 for p in package.glob("*.py"))
    code = ("import sys, x3dsearch.data.synthetic; "
            "print(sorted(m for m in sys.modules if m.startswith('x3dsearch.data.')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "x3dsearch.data.layout" not in loaded and "x3dsearch.data.synthetic.cache" in loaded


@pytest.mark.parametrize("pair", [("horizontal", "vertical"), ("rising", "falling"), ("woven", "plaid")])
def test_detail_variant_weakens_its_cue_at_low_resolution_without_erasing_it(pair: tuple[str, str]) -> None:
    """Twins of one pair (same generator: same panel, colours, phase) through the validation transform:
    the classes differ at every crop, less at 112 and about half as much at 80 as at 160."""
    from x3dsearch.data.sampling import VAL_SCALE, crop_box
    from x3dsearch.data.synthetic import VARIANTS, render_video
    from x3dsearch.data.transforms import frames_to_clip

    variant = VARIANTS["detail"]
    names = [d.name for d in variant.designs]
    frames = {n: torch.from_numpy(render_video(variant.designs[names.index(n)], variant.video_rng(0, 0, 1),
                                               (256, 340), 30.0, (0.1, 0.1))[:1]) for n in pair}
    diff = {}
    for crop in (160, 112, 80):
        box = crop_box(256, 340, crop, VAL_SCALE, 0.5, 0.5)
        a, b = (frames_to_clip(frames[n], box, crop, False) for n in pair)
        diff[crop] = float((a - b).abs().mean())
    assert diff[160] > 0.15  # plainly visible to the teacher
    assert 0.3 * diff[160] < diff[80] < 0.7 * diff[160] and diff[80] < diff[112] < 0.9 * diff[160]


def test_detail_variant_holds_out_a_test_split(tmp_path: Path) -> None:
    from x3dsearch.data import synthesize
    from x3dsearch.data.synthetic import VARIANTS, variant_of

    root = synthesize(tmp_path / "d", classes=2, videos_per_class=6, variant="detail", size=(64, 86),
                      seconds=(0.5, 0.5), test_fraction=VARIANTS["detail"].test_fraction)
    sizes = {split: len(load_split(root, split)) for split in ("train", "val", "test")}
    assert sizes == {"train": 6, "val": 2, "test": 4}  # per class: 3 train, 1 val, 2 test
    paths = [r.path for split in sizes for r in load_split(root, split)]
    assert len(set(paths)) == 12
    meta = yaml.safe_load((root / "dataset.yaml").read_text())
    assert meta["variant"] == "detail" and meta["test_per_class"] == 2
    with pytest.raises(ConfigError, match="no test split"):
        load_split(synthesize(tmp_path / "plain", classes=2, videos_per_class=2, size=(64, 86),
                              seconds=(0.5, 0.5)), "test")
    assert variant_of("synthetic").name == "default" and variant_of("synthetic-detail").name == "detail"
    assert variant_of("./synthetic") is None and variant_of("synthetic-nope") is None
    from x3dsearch.cli.options import data_spec

    # --data: a synthetic dataset's name stays a name; anything else is a folder relative to the caller
    assert data_spec("synthetic-detail") == "synthetic-detail" and data_spec(" synthetic") == "synthetic"
    assert data_spec("./synthetic") == str(Path.cwd() / "synthetic")
