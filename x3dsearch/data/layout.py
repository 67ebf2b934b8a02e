"""Dataset layouts on disk: where the videos of a split are and what their labels mean.

Two layouts are read, the two video researchers use:

* list files, as Kinetics/SlowFast ship them: ``ROOT/train.csv`` and ``ROOT/val.csv``,
  one ``relative/path.mp4 label_index`` per line (space or comma separated; paths
  relative to ROOT or absolute; blank lines and ``#`` comments ignored);
* one folder per class: ``ROOT/{train,val}/<class_name>/*.{mp4,avi,mkv,webm}``.

``train`` and ``val`` are required. A held-out ``test`` split is optional
(``ROOT/test.csv`` or ``ROOT/test/<class_name>/``, in the dataset's layout): the
validation split selects models, so only a split nothing was chosen on gives an
unbiased accuracy. List files win when both exist. Class names come from ``ROOT/classes.txt`` (one per
line, line i is label i), else from the class folders (sorted), else they are the
label numbers. ``ROOT/dataset.yaml`` may set ``flip: false`` for datasets where
left and right mean different classes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..utils.io import read_yaml
from .synthetic import ensure_synthetic, variant_of

#: The splits every dataset has.
SPLITS = ("train", "val")
#: Splits a dataset may add: ``test``, held out from training and from every choice made on val.
OPTIONAL_SPLITS = ("test",)
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm")


@dataclass(frozen=True)
class VideoRecord:
    path: Path
    label: int
    #: The video's name in per-video outcomes: its path relative to the data root, or the path as
    #: written in the list file when it lies outside the root.
    key: str = ""


def resolve_data(spec: str | Path) -> Path:
    """``"synthetic"`` (or ``"synthetic-<variant>"``, e.g. ``synthetic-detail``) -> the cached synthetic
    dataset (generated on first use); else a checked ROOT.

    Write ``./synthetic`` to mean a folder of that name.
    """
    variant = variant_of(spec) if isinstance(spec, str) else None
    if variant is not None:
        return ensure_synthetic(variant=variant.name)
    root = Path(spec).expanduser().resolve()
    if not root.is_dir():
        raise ConfigError(f"data root {root} does not exist (give a dataset folder or 'synthetic')")
    if layout(root) is None:
        raise ConfigError(f"data root {root} holds neither train.csv + val.csv nor train/ + val/ class folders")
    return root


def layout(root: Path) -> str | None:
    """``"csv"``, ``"folders"`` or None."""
    if all((root / f"{s}.csv").is_file() for s in SPLITS):
        return "csv"
    if all((root / s).is_dir() for s in SPLITS):
        return "folders"
    return None


def _check_split(split: str) -> None:
    if split not in SPLITS + OPTIONAL_SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS + OPTIONAL_SPLITS)}, got {split!r}")


def has_split(root: str | Path, split: str) -> bool:
    """Whether ``root`` holds ``split`` in its own layout (``train`` and ``val`` always do)."""
    root = Path(root)
    _check_split(split)
    kind = layout(root)
    if kind == "csv":
        return (root / f"{split}.csv").is_file()
    if kind == "folders":
        return (root / split).is_dir()
    return False


def present_splits(root: str | Path) -> tuple[str, ...]:
    """``train``, ``val``, and ``test`` when the dataset has one."""
    return SPLITS + tuple(s for s in OPTIONAL_SPLITS if has_split(root, s))


def _key(root: Path, path: Path, written: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return written.as_posix()


def _read_csv(root: Path, split: str) -> list[VideoRecord]:
    path = root / f"{split}.csv"
    records = []
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(",", 1) if "," in line else line.rsplit(None, 1)
        label_text = parts[-1].strip() if len(parts) == 2 else ""
        if len(parts) != 2 or not parts[0].strip() or not label_text.isdigit():
            raise ConfigError(f"{path}:{lineno}: expected 'relative/path.mp4 label_index', got {line!r}")
        video = Path(parts[0].strip())
        full = video if video.is_absolute() else root / video
        records.append(VideoRecord(full, int(label_text), _key(root, full, video)))
    return records


def _folder_classes(root: Path) -> list[str]:
    names = {p.name for s in SPLITS + OPTIONAL_SPLITS if (root / s).is_dir()
             for p in (root / s).iterdir() if p.is_dir() and not p.name.startswith(".")}
    return sorted(names)


def _read_folders(root: Path, split: str, names: list[str]) -> list[VideoRecord]:
    index = {name: i for i, name in enumerate(names)}
    records = []
    for folder in sorted(p for p in (root / split).iterdir() if p.is_dir() and not p.name.startswith(".")):
        if folder.name not in index:
            raise ConfigError(f"class folder {folder} is not listed in {root / 'classes.txt'}")
        for video in sorted(folder.iterdir()):
            if video.suffix.lower() in VIDEO_EXTENSIONS and not video.name.startswith("."):
                records.append(VideoRecord(video, index[folder.name], _key(root, video, video)))
    return records


def class_names(root: str | Path) -> list[str]:
    root = Path(root)
    listed = root / "classes.txt"
    if listed.is_file():
        names = [line.strip() for line in listed.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not names:
            raise ConfigError(f"{listed} lists no classes")
        return names
    kind = layout(root)
    if kind == "folders":
        return _folder_classes(root)
    if kind == "csv":
        labels = [r.label for s in present_splits(root) for r in _read_csv(root, s)]
        return [str(i) for i in range(max(labels, default=-1) + 1)]
    raise ConfigError(f"data root {root} holds neither train.csv + val.csv nor train/ + val/ class folders")


def load_split(root: str | Path, split: str) -> list[VideoRecord]:
    """The videos of ``split`` in file order (list files) or sorted by class, then name (folders).

    A video listed twice keeps both entries; the second one's key gets ``#2`` (and so on), so
    every entry has its own outcome.
    """
    root = Path(root)
    _check_split(split)
    kind = layout(root)
    if kind is not None and not has_split(root, split):
        where = f"{split}.csv" if kind == "csv" else f"{split}/<class>/"
        raise ConfigError(f"data root {root} has no {split} split (no {where})")
    names = class_names(root)
    if kind == "csv":
        records = _read_csv(root, split)
    elif kind == "folders":
        records = _read_folders(root, split, names)
    else:
        raise ConfigError(f"data root {root} holds neither train.csv + val.csv nor train/ + val/ class folders")
    if not records:
        raise ConfigError(f"the {split} split of {root} lists no videos")
    for r in records:
        if r.label >= len(names):
            raise ConfigError(f"{r.path}: label {r.label} is out of range for {len(names)} classes")
    return _unique_keys(records)


def _unique_keys(records: list[VideoRecord]) -> list[VideoRecord]:
    seen: dict[str, int] = {}
    out = []
    for r in records:
        n = seen[r.key] = seen.get(r.key, 0) + 1
        out.append(r if n == 1 else VideoRecord(r.path, r.label, f"{r.key}#{n}"))
    return out


def dataset_options(root: str | Path) -> dict[str, Any]:
    """``ROOT/dataset.yaml`` as a mapping ({} when absent)."""
    path = Path(root) / "dataset.yaml"
    if not path.is_file():
        return {}
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping")
    return data


def allows_flip(root: str | Path) -> bool:
    """False when the dataset says left and right matter (``flip: false`` in dataset.yaml)."""
    return bool(dataset_options(root).get("flip", True))
