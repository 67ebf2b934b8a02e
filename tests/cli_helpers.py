"""The CLI called in the test's own process: the same ``main`` as the installed entry point, without
the 3-4 s a new interpreter spends importing torch. Tests of the entry point itself, of progress
output and of anything that trains use a real subprocess instead."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from x3dsearch.cli.main import main


@dataclass
class Outcome:
    """What a CompletedProcess would hold, so the same checks read either."""

    returncode: int
    stdout: str
    stderr: str


def invoke(capsys: pytest.CaptureFixture, *args: str | Path) -> Outcome:
    capsys.readouterr()  # start from nothing
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    code = exit_info.value.code
    return Outcome(code if isinstance(code, int) else 1, captured.out, captured.err)
