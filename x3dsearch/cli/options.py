"""Option parsing shared by several sub-commands."""
from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError, X3DSearchError
from ..factors import Factors, preset


def resolve_factors(preset_name: str | None, factors_text: str | None, model_file: str | None = None,
                    crop: int | None = None) -> Factors:
    """Exactly one of ``--preset``, ``--factors`` or ``--model`` picks the architecture."""
    given = [x for x in (preset_name, factors_text, model_file) if x]
    if len(given) != 1:
        raise ConfigError("give exactly one of --preset, --factors or --model")
    if preset_name:
        factors = preset(preset_name)
    elif factors_text:
        factors = Factors.parse(factors_text)
    else:
        from ..model_file import load_model_file

        factors = load_model_file(Path(model_file)).factors
    if crop is not None:
        factors = factors.replace(crop=crop)
    return factors


def check_out_dir(out: Path, resume: bool) -> None:
    """Refuse to overwrite: a training folder that is neither new, empty, ours-and-finished nor resumable.

    (The train package is imported here, not at the top, so commands that never train start fast.)
    """
    from ..train.checkpoint import CHECKPOINT_NAME
    from ..train.trainer import CONFIG_NAME, LOG_NAME, RESULT_NAME

    if out.exists() and not out.is_dir():
        raise X3DSearchError(f"--out {out} is a file, not a folder")
    if not out.is_dir() or all(p.name == LOG_NAME for p in out.iterdir()):
        return  # new, empty, or only the log of an attempt refused for bad input
    if not (out / CONFIG_NAME).is_file():
        raise X3DSearchError(f"--out {out} is not empty and holds no training; choose another folder")
    if (out / RESULT_NAME).is_file() or resume:
        return  # a finished training is reported (the trainer checks it is the same config)
    if (out / CHECKPOINT_NAME).is_file():
        raise X3DSearchError(f"--out {out} holds an unfinished training; add --resume to continue it")
