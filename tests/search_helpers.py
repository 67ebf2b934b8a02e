"""What the end-to-end search tests share: the CLI as a subprocess, a cut-down space, the run's files."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from x3dsearch.budget import BUDGET_DIR
from x3dsearch.search.space import DEFAULT_SPACE

X3DSEARCH = Path(sys.executable).parent / "x3dsearch"


def cli_env() -> dict[str, str]:
    """The caller's environment without RAY_ variables, so a search never joins a stray cluster."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([str(X3DSEARCH), *args], capture_output=True, text=True, timeout=timeout, env=cli_env())


def space_file(folder: Path, axes: tuple[str, ...], **changes: object) -> Path:
    """The default space cut down to ``axes`` (fewer candidates per step), with top-level ``changes``
    (``proposal="nearest"``), written into ``folder``."""
    data = yaml.safe_load(DEFAULT_SPACE.read_text())
    data["axes"] = {k: v for k, v in data["axes"].items() if k in axes}
    data["name"] = "-".join(axes)
    data.update(changes)
    path = folder / "space.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def corrupt_videos(root: Path, index: dict[str, int]) -> dict:
    """Corrupt the ``index[split]``-th video of each split of the dataset at ``root``: the training and test
    ones cut to a tenth, the validation one emptied; returns their records by split."""
    from x3dsearch.data import load_split

    bad = {}
    for split, i in index.items():
        record = load_split(root, split)[i]
        data = record.path.read_bytes()
        record.path.write_bytes(data[: len(data) // 10] if split != "val" else b"")
        bad[split] = record
    return bad


def load_log(run_dir: Path) -> dict:
    return yaml.safe_load((run_dir / "expansion_path.yaml").read_text())


def state_trials(run_dir: Path) -> list[dict]:
    """The seed and every step's candidates as ``state.json`` holds them; empty while it is not written
    yet (a search may be replacing it: the read is retried by the caller's loop)."""
    try:
        state = json.loads((run_dir / "state.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return []
    return [state["seed"], *[c for s in state["steps"] for c in s["candidates"]]]


def trial_dirs(run_dir: Path, prefix: str) -> list[Path]:
    folder = run_dir / "candidates"
    return sorted(p for p in folder.glob(f"{prefix}*")) if folder.is_dir() else []


def checkpointed_smoke_budget(folder: Path) -> Path:
    """The smoke budget plus a checkpoint after every step (which changes no number), so a kill
    lands between checkpoints of a running trial."""
    data = yaml.safe_load((BUDGET_DIR / "smoke.yaml").read_text())
    data["checkpoint_every"] = 1
    path = folder / "smoke-ckpt.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


#: One epoch over ``signal_dataset``'s 56 training clips in batches of 8 (7 steps, lr 0.2), BN statistics
#: recomputed over 2 batches before validating, and every validation video scored (the smoke budget
#: scores 4). Written by the tests, not shipped: these numbers mean something only for that data
#: (sized in test_search_decides.py).
DECIDE_BUDGET = {"epochs": 1, "batch_size": 8, "lr": 0.2, "lr_batch": 8, "warmup_epochs": 0, "train_fraction": 1.0,
                 "eval_clips": None, "precise_bn_batches": 2, "dropout": 0.0, "workers": 0,
                 "notes": "tests/search_helpers.py: sized for conftest's signal_dataset only"}

#: The candidates of a step from X2D that read two frames, and so see signal_dataset's cue.
SEES_TWO_FRAMES = frozenset({"x-fast", "x-temporal"})


def decide_budget(folder: Path, **changes: object) -> Path:
    """``DECIDE_BUDGET`` (plus ``changes``, e.g. a checkpoint after every step) as ``folder/decide.yaml``."""
    path = folder / "decide.yaml"
    path.write_text(yaml.safe_dump({**DECIDE_BUDGET, **changes}, sort_keys=False))
    return path


def assert_decided_on_scores(step: dict, winners: frozenset[str] = SEES_TWO_FRAMES) -> None:
    """The step chose among ``winners`` (the candidates that can see the data's cue), and its simultaneous
    bounds put every other candidate below the choice: a decision made on scores, not on a tie-break."""
    decision = step["decision"]
    assert step["chosen"] == decision["winner"] and decision["winner"] in winners, decision
    losers = {c["axis"] for c in step["candidates"] if c["status"] == "ok"} - set(winners)
    assert losers, "no candidate that misses the cue: nothing to decide"
    for axis in losers:
        against = decision["against"][axis]
        assert against["excluded"] is True and against["ci"][0] > 0, (axis, against)
    assert set(decision["tied"]) <= set(winners) and decision["significant"] is (not decision["tied"])


def without_nodes(entry: dict | None) -> dict | None:
    """A log entry without the Ray nodes its models trained on, at any depth (a contraction's ``from``
    names one too): a new local Ray has a new node id."""
    if entry is None:
        return None
    return {k: without_nodes(v) if isinstance(v, dict) else v for k, v in entry.items() if k != "node"}


def path_of(log: dict) -> dict:
    """What must not depend on interruptions or placement: choices, candidates, their metrics, the result."""
    def cand(c: dict) -> tuple:
        return (c["axis"], json.dumps(c["factors"]), c["gflops"], c["params_m"], c["top1"], c["top5"],
                c["status"], c["train_macs"])

    return {"steps": [(s["step"], s["chosen"], json.dumps(without_nodes(s["from"])), [cand(c) for c in s["candidates"]])
                      for s in log["steps"]],
            "contraction": without_nodes(log["contraction"]), "final": log["final"]}
