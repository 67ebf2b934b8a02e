"""Option parsing shared by several sub-commands."""
from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
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
