"""The training folder: the one place that knows the names of the files a training leaves behind.

=====================  =========================================================
``config.json``        what was trained (factors, classes, seed, budget, data)
``checkpoint.pt``      the latest resumable state (needed only until the result)
``metrics.jsonl``      one line per epoch
``train.log``          everything the training logged
``model.pt``           the final weights, readable by ``--init`` and ``evaluate_split``
``result.json``        the :class:`TrainResult`
``val_outcomes.json``  per-video outcomes of the validation
``test_outcomes.json`` per-video outcomes of the held-out split, once evaluated
=====================  =========================================================

Every write is atomic (temporary file, then rename), so a ``kill -9`` leaves
either the old file or the new one.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from ..errors import X3DSearchError
from ..outcomes import SplitOutcomes
from ..status import TrialStatus
from ..utils.io import atomic_write_json, atomic_write_text
from .result import TrainResult


class TrainingFolder:
    """Paths and reads/writes of one training's folder."""

    CONFIG = "config.json"
    CHECKPOINT = "checkpoint.pt"
    METRICS = "metrics.jsonl"
    LOG = "train.log"
    MODEL = "model.pt"
    RESULT = "result.json"
    OUTCOMES = "{split}_outcomes.json"

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"TrainingFolder({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    # --- paths ------------------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.path / self.CONFIG

    @property
    def checkpoint(self) -> Path:
        return self.path / self.CHECKPOINT

    @property
    def metrics(self) -> Path:
        return self.path / self.METRICS

    @property
    def log(self) -> Path:
        return self.path / self.LOG

    @property
    def model(self) -> Path:
        return self.path / self.MODEL

    @property
    def result(self) -> Path:
        return self.path / self.RESULT

    def outcomes(self, split: str) -> Path:
        return self.path / self.OUTCOMES.format(split=split)

    # --- state ------------------------------------------------------------------------------
    def is_empty(self) -> bool:
        """New, empty, or holding only the log of an attempt refused for bad input."""
        return not self.path.is_dir() or all(p.name == self.LOG for p in self.path.iterdir())

    def holds_training(self) -> bool:
        return self.config.is_file()

    def is_finished(self) -> bool:
        """A result is stored that the trainer will return as it is (anything but ``failed``)."""
        result = self.read_result()
        return result is not None and result.status != TrialStatus.FAILED

    # --- reads and writes -------------------------------------------------------------------
    def read_config(self) -> dict[str, Any] | None:
        if not self.config.is_file():
            return None
        try:
            return json.loads(self.config.read_text())
        except (OSError, json.JSONDecodeError):
            raise X3DSearchError(f"{self.config} is unreadable; use another output folder") from None

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_json(self.config, config)

    def read_result(self) -> TrainResult | None:
        """The stored result; a damaged one is refused, naming the file and the way out."""
        if not self.result.is_file():
            return None
        try:
            return TrainResult.load(self.result)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError, ValueError, AttributeError) as exc:
            raise X3DSearchError(f"{self.result} is corrupt ({type(exc).__name__}: {exc}); delete it and run "
                                 f"again: the training is redone{self._from_where()}") from None

    def check_checkpoint(self) -> None:
        """A ``checkpoint.pt`` cut short or overwritten is refused (``torch.save`` writes a zip archive whose
        members carry checksums), so a training never resumes from a damaged state."""
        if not self.checkpoint.is_file():
            return
        try:
            with zipfile.ZipFile(self.checkpoint) as archive:
                bad = archive.testzip()
        except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
            bad = f"{type(exc).__name__}: {exc}"
        if bad is not None:
            raise X3DSearchError(f"{self.checkpoint} is corrupt ({bad}); delete it and run again: the training "
                                 f"starts again from its beginning")

    def _from_where(self) -> str:
        return " from its checkpoint" if self.checkpoint.is_file() else " from its beginning"

    def write_result(self, result: TrainResult) -> None:
        atomic_write_json(self.result, result.to_dict())

    def read_outcomes(self, split: str = "val") -> SplitOutcomes | None:
        path = self.outcomes(split)
        if not path.is_file():
            return None
        try:
            return SplitOutcomes.from_dict(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError, ValueError) as exc:
            raise X3DSearchError(f"{path} is unreadable ({exc})") from None

    def write_outcomes(self, outcomes: SplitOutcomes) -> None:
        """One video per line, so the file stays readable and diffs well."""
        record = outcomes.to_dict()
        videos = record.pop("videos")
        head = json.dumps(record)[:-1]
        lines = [f"  {json.dumps(key)}: {json.dumps(value)}" for key, value in videos.items()]
        body = "{\n" + ",\n".join(lines) + "\n}" if lines else "{}"
        atomic_write_text(self.outcomes(outcomes.split), f'{head}, "videos": {body}}}\n')

    def write_metrics(self, lines: list[dict[str, Any]]) -> None:
        atomic_write_text(self.metrics, "".join(json.dumps(line) + "\n" for line in lines))

    def drop_checkpoint(self) -> bool:
        """Delete ``checkpoint.pt`` once nothing needs it: the result is stored and is not ``failed``
        (a failed training resumes from its checkpoint). Returns whether a file was deleted.

        Unlinking is atomic: after a kill the checkpoint is either whole or gone, and a finished
        folder returns its stored result without it.
        """
        if not self.is_finished():
            return False
        try:
            self.checkpoint.unlink()
        except FileNotFoundError:
            return False
        return True

    def drop_weights(self) -> bool:
        """Delete ``model.pt`` of a finished training whose weights nobody will read again (a candidate the
        search did not keep, under ``--keep chosen``); its result and outcomes stay."""
        if not self.is_finished():
            return False
        try:
            self.model.unlink()
        except FileNotFoundError:
            return False
        return True

    def stale_files(self) -> tuple[Path, ...]:
        """What a fresh start (no checkpoint) must remove: results of an earlier attempt."""
        return (self.result, self.metrics, self.model, self.outcomes("val"), self.outcomes("test"))
