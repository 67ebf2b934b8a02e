"""Shared fixtures. Every test gets a private cache folder, so nothing touches ~/.cache."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]

# `make test` runs two pytest processes on the machine's cores. Torch's default of one intra-op thread per
# core in each of them oversubscribes the cores, and the OpenMP threads that spin while they wait slowed
# some tests 15-fold (test_train.py's resume test: 1.3 s alone, 18.9 s beside the other process). Each
# process, and every training it starts through the CLI or Ray, gets its share of the cores instead.
#
# The share is also pinned (the affinity mask, which children inherit): a search started by a test then
# sees its process's cores only (x3dsearch.utils.cpus.local_cpus), so its local Ray offers one CPU on
# 2 cores, trains one trial at a time and reuses one Tune actor for a step's trials instead of starting
# two. Each actor process imports torch, Tune and torch._dynamo (about 4.5 CPU-s) before it trains, so
# on 2 cores this cut make test from 661 to 581 CPU-s and from 5 min 54 s to 5 min 18 s (47 trial actors
# to 29; experiments/cpu_by_process.py, 2026-12-04). X3DSEARCH_TEST_PIN=0 turns the pinning off.
if os.environ.get("PYTEST_XDIST_WORKER"):
    _cores = sorted(os.sched_getaffinity(0))
    _workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    _share = max(1, len(_cores) // _workers)
    os.environ.setdefault("OMP_NUM_THREADS", str(_share))
    if os.environ.get("X3DSEARCH_TEST_PIN", "1") == "1" and len(_cores) >= _workers:
        _index = int(os.environ["PYTEST_XDIST_WORKER"].removeprefix("gw"))
        os.sched_setaffinity(0, _cores[_index * _share:(_index + 1) * _share])


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder for the whole run, shared by the xdist workers (their base folders are siblings):
    a preset's fvcore count (up to 15 s for X3D-XL) is then made once, not once per worker. Its
    writers are safe side by side (x3dsearch.complexity); tests of the cache itself use their own."""
    base = tmp_path_factory.getbasetemp()
    cache = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "x3dsearch-cache"
    cache.mkdir(exist_ok=True)
    os.environ["X3DSEARCH_CACHE"] = str(cache)
    return cache


@pytest.fixture(scope="session")
def shared_ray() -> Iterator[str]:
    """The address of one Ray head (``ray start``, one CPU) that this pytest process's end-to-end searches
    join with ``--address``, started at the first test that asks for it.

    A search that starts its own local Ray spends about 5 s on starting and stopping it (a one-step
    search on one core: about 21 s alone, 16 s joining a running head; docs/results.md). The searches that
    stand for a user's, on their own local Ray, do not use it: test_search_run.py's reference search,
    test_search_cli's cluster check and the fault tests. One CPU: trials run one at a time, in the order
    the tests expect."""
    from ray_nodes import ray_head

    with ray_head(1) as address:
        yield address


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic dataset of real H.264 mp4 files: 3 classes x 4 videos (3 train, 1 val), 64x86 px."""
    from x3dsearch.data import synthesize

    root = tmp_path_factory.mktemp("data") / "tiny"
    return synthesize(root, classes=3, videos_per_class=4, seed=0, size=(64, 86), seconds=(1.0, 1.5))


@pytest.fixture(scope="session")
def signal_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Data on which a short training decides: brightening vs dimming, 40 videos each (28 train and 12 val
    per class, 24 val videos), 32x44 px real H.264.

    The light's middle level is random, so no single frame tells the classes apart and any two frames do:
    from X2D (1 frame) the candidates that read two frames (X-Fast, X-Temporal) score 100% under
    ``search_helpers.DECIDE_BUDGET`` and the 1-frame ones about 50-60% (measured in
    test_search_decides.py). Validation upscales the short side for the crop; the light level is the whole
    signal, so the small frames lose nothing and are quick to write and decode."""
    from x3dsearch.data import synthesize

    root = tmp_path_factory.mktemp("data") / "ramp"
    return synthesize(root, classes=2, videos_per_class=40, seed=0, size=(32, 44), seconds=(1.0, 1.5),
                      val_fraction=0.3)


@pytest.fixture(scope="session")
def broken_signal(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """``signal_dataset``'s videos (brightening vs dimming: the same 56 training and 24 validation videos,
    byte for byte) plus a test split of 6 videos per class; one video of each split corrupt
    (``search_helpers.corrupt_videos``). Returns ``{"root": ..., "bad": {split: record}}``.

    A training under ``search_helpers.DECIDE_BUDGET`` reads about 96 videos (56 training, 16 for
    precise-BN, 24 validation): its 2 or 3 failed reads stay under the 5% limit."""
    from x3dsearch.data import synthesize

    from search_helpers import corrupt_videos

    root = synthesize(tmp_path_factory.mktemp("broken") / "ramp", classes=2, videos_per_class=46, seed=0,
                      size=(32, 44), seconds=(1.0, 1.5), val_fraction=12 / 46, test_fraction=6 / 46)
    return {"root": root, "bad": corrupt_videos(root, {"train": 4, "val": 7, "test": 5})}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files with end-to-end (slow) tests first, the files with the most of them first.

    `make test` hands whole files to two pytest processes in collection order; started last, the
    long search files would run alone at the end while the other process sits idle.
    """
    slow: dict[str, int] = {}
    for item in items:
        slow.setdefault(item.path.name, 0)
        if item.get_closest_marker("slow"):
            slow[item.path.name] += 1
    items.sort(key=lambda item: -slow[item.path.name])  # stable: a file's tests keep their order
