"""Option parsing shared by several sub-commands."""
from __future__ import annotations

from pathlib import Path

from ..budget import BUDGET_NAMES
from ..errors import ConfigError, X3DSearchError
from ..factors import Factors, preset


def user_path(text: str | Path) -> Path:
    """A path the user gave, made absolute against where they stand: trials and resumed runs work
    in other directories, and a stored path must mean the same file there."""
    return Path(text).expanduser().resolve()


def data_spec(text: str) -> str:
    """A synthetic dataset's name (``synthetic``, ``synthetic-detail``) as it is; a dataset folder as an
    absolute path."""
    from ..data.synthetic import variant_of

    return text.strip() if variant_of(text) is not None else str(user_path(text))


def budget_spec(text: str) -> str:
    """A shipped budget's name (or a file that does not exist, for the error) as it is; a budget file as
    an absolute path."""
    return text if text in BUDGET_NAMES or not Path(text).expanduser().is_file() else str(user_path(text))


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

        assert model_file is not None  # exactly one of the three was given

        factors = load_model_file(Path(model_file)).factors
    if crop is not None:
        factors = factors.replace(crop=crop)
    return factors


def split_models(text: str) -> list[str]:
    """``x2d,frames=4,stride=12,...,depth=2.2,run/final_model.yaml`` -> three models: consecutive
    ``name=value`` items are one factor string."""
    models: list[str] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        if "=" in item and models and "=" in models[-1]:
            models[-1] += "," + item
        else:
            models.append(item)
    return models
def check_out_dir(out: Path, resume: bool) -> None:
    """Refuse to overwrite: a training folder that is neither new, empty, ours-and-finished nor resumable.

    (The train package is imported here, not at the top, so commands that never train start fast.)
    """
    from ..train import TrainingFolder

    if out.exists() and not out.is_dir():
        raise X3DSearchError(f"--out {out} is a file, not a folder")
    folder = TrainingFolder(out)
    if folder.is_empty():
        return  # new, empty, or only the log of an attempt refused for bad input
    if not folder.holds_training():
        raise X3DSearchError(f"--out {out} is not empty and holds no training; choose another folder")
    if folder.result.is_file() or resume:
        return  # a finished training is reported (the trainer checks it is the same config)
    if folder.checkpoint.is_file():
        raise X3DSearchError(f"--out {out} holds an unfinished training; add --resume to continue it")
