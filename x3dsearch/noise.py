"""Seed-noise models: how far one training's score moves with its seed, so single-seed intervals can say it.

A search trains each candidate once, and a video bootstrap of one training
cannot see how much another seed would have moved it. ``x3dsearch calibrate``
measures that (the ``noise`` block of ``calibration.yaml``: per criterion, the
SD over seeds of a paired difference of two models on the same videos), and the
search widens its single-seed intervals by it (``expand --noise``).

``--noise auto`` (the default) uses the model this package ships for the
default proxy on the synthetic data (``calibrations/synthetic-quick.yaml``: ``quick``
from scratch, measured by ``x3dsearch calibrate``), and none elsewhere: there the intervals
cover the videos only, and the search says so and names the command that
measures the noise. ``none`` never widens; a path reads a calibration's file.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError
from .simultaneous import NoiseModel
from .utils.io import read_yaml

#: The data, proxy budget and proxy init the shipped noise model was measured on.
SHIPPED = {("synthetic", "quick", "scratch"): "synthetic-quick.yaml"}


def noise_block(document: Mapping[str, Any], source: str) -> Mapping[str, Any]:
    block = document.get("noise") if isinstance(document, Mapping) else None
    if not isinstance(block, Mapping) or not isinstance(block.get("sd"), Mapping):
        raise ConfigError(f"--noise {source} has no noise block (run `x3dsearch calibrate` to measure one)")
    return block


def _from_block(block: Mapping[str, Any], criterion: str, source: str) -> NoiseModel:
    sd = block["sd"].get(criterion)
    if sd is None:
        measured = ", ".join(k for k, v in block["sd"].items() if v is not None) or "none"
        raise ConfigError(f"--noise {source} was measured on other criteria ({measured}), not {criterion}")
    try:
        value = float(sd)
    except (TypeError, ValueError):
        raise ConfigError(f"--noise {source}: noise.sd.{criterion} is not a number ({sd!r})") from None
    if not value >= 0:
        raise ConfigError(f"--noise {source}: noise.sd.{criterion} must be at least 0, got {value:g}")
    return NoiseModel(criterion, value, source, block.get("budget"), block.get("data"))


def load_noise(spec: str, criterion: str, data: str, budget: str, init: str) -> NoiseModel | None:
    """The noise model ``--noise spec`` names for a search by ``criterion`` on ``data`` with ``budget`` and
    candidates that start as ``init`` says (grown ones share their parent's weights, and so their noise
    differs); None: intervals cover the videos only. Bad files end as one line (:class:`ConfigError`)."""
    if criterion == "gain-per-gflop" and spec == "auto":
        return None  # a gain's noise scales with each candidate's added GFLOPs: no single SD applies
    if spec == "none":
        return None
    if spec == "auto":
        name = SHIPPED.get((data, budget, init))
        if name is None:
            return None
        text = resources.files("x3dsearch").joinpath(f"calibrations/{name}").read_text()
        import yaml
        return _from_block(noise_block(yaml.safe_load(text), f"shipped:{name}"), criterion, f"shipped:{name}")
    path = Path(spec)
    if path.is_dir():
        path = path / "calibration.yaml"
    if not path.is_file():
        raise ConfigError(f"--noise {spec}: no such file")
    return _from_block(noise_block(read_yaml(path), str(path)), criterion, str(path))


def noise_to_config(noise: NoiseModel | None) -> dict[str, Any] | None:
    """What ``config.yaml`` keeps, so a resume uses the same model even if its file has gone."""
    if noise is None:
        return None
    return {"criterion": noise.criterion, "sd": noise.sd, "source": noise.source, "budget": noise.budget,
            "data": noise.data}


def noise_from_config(entry: Mapping[str, Any] | None) -> NoiseModel | None:
    if not entry:
        return None
    return NoiseModel(str(entry["criterion"]), float(entry["sd"]), str(entry["source"]), entry.get("budget"),
                      entry.get("data"))


def videos_only_warning(data: str, budget: str) -> str:
    """What the search says when its single-seed intervals hold no seed noise."""
    return (f"no seed-noise model for this data and budget: single-seed intervals cover the validation videos "
            f"only and are too narrow for seed noise; measure it with `x3dsearch calibrate --data {data} "
            f"--budget {budget} --out DIR` and pass `--noise DIR/calibration.yaml`, or train --repeats 2 or more")
