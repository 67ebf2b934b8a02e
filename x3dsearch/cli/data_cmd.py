"""``x3dsearch data``: generate the synthetic dataset and check a dataset's videos."""
from __future__ import annotations

import sys

import click

from .aliases import num_classes_option


def _parse_size(text: str) -> tuple[int, int]:
    height, sep, width = text.lower().partition("x")
    if not sep or not height.strip().isdigit() or not width.strip().isdigit():
        raise click.BadParameter(f"expected HEIGHTxWIDTH such as 192x256, got {text!r}")
    return int(height), int(width)


@click.group(short_help="Generate the synthetic dataset, or check a dataset's videos.")
def data() -> None:
    """Generate the synthetic dataset, or check a dataset's videos."""


@data.command(short_help="Write the synthetic dataset (mp4 files and list files) to OUT.")
@click.argument("out", type=click.Path(file_okay=False, writable=True))
@num_classes_option(dest="classes", type=int, default=None, help="Number of classes (2-8) [default: 8].")
@click.option("--videos-per-class", type=int, default=None,
              help="Videos per class; a third go to val and, with --test, a third to test. [default: 38]")
@click.option("--test/--no-test", default=True, show_default=True,
              help="Hold out a test split as large as val (as far as one training video per class remains).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of every video's draw; the same seed gives byte-identical files.")
@click.option("--size", default="256x340", show_default=True,
              help="Frame size HEIGHTxWIDTH (even numbers); the class design assumes a 256 px short side.")
@click.option("--fps", type=float, default=30.0, show_default=True,
              help="Frame rate of the encoded videos (clips are read on a 30 fps timeline whatever it is).")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True, help="Encoding processes.")
def synth(out: str, classes: int | None, videos_per_class: int | None, test: bool, seed: int, size: str, fps: float,
          workers: int) -> None:
    """Write the synthetic action dataset (H.264 mp4, train.csv, val.csv, test.csv, classes.txt) to OUT.

    The same seed gives byte-identical files; the defaults give the cached `synthetic` dataset.
    The class design is in dataset.yaml.
    """
    from ..data.synthetic import DEFAULT_CLASSES, DEFAULT_TEST_FRACTION, DEFAULT_VIDEOS_PER_CLASS, synthesize
    from ..utils.logging import setup_logging

    setup_logging()
    root = synthesize(out, DEFAULT_CLASSES if classes is None else classes,
                      DEFAULT_VIDEOS_PER_CLASS if videos_per_class is None else videos_per_class, seed,
                      size=_parse_size(size), fps=fps, test_fraction=DEFAULT_TEST_FRACTION if test else 0.0,
                      workers=workers, progress=True)
    lists = ", ".join(f"{s}.csv" for s in ("train", "val", "test") if (root / f"{s}.csv").is_file())
    click.echo(f"wrote {root} ({lists}, classes.txt, dataset.yaml, videos/)")


@data.command(short_help="Decode every video of ROOT and list the unreadable ones.")
@click.argument("root")
@click.option("--split", type=click.Choice(["all", "train", "val", "test", "both"]), default="all", show_default=True,
              help="all: every split the dataset has (test too, when present); both: train and val.")
@click.option("--quick", is_flag=True, help="Decode only the first, middle and last frame of each video.")
def check(root: str, split: str, quick: bool) -> None:
    """Decode every video of ROOT (or 'synthetic') and list the unreadable ones.

    Exit code 0 when all are readable, 1 when some are not, 2 on bad input.
    """
    from ..data.check import check_dataset
    from ..data.layout import SPLITS, present_splits, resolve_data
    from ..utils.logging import setup_logging

    setup_logging()
    path = resolve_data(root)
    splits = {"all": present_splits(path), "both": SPLITS}.get(split, (split,))
    report = check_dataset(path, splits, full=not quick)
    for bad_path, reason in report.bad:
        click.echo(f"BAD {bad_path}: {reason}")
    click.echo(f"{report.checked} videos of {', '.join(splits)} checked ({report.frames} frames decoded), "
               f"{len(report.bad)} unreadable")
    sys.exit(1 if report.bad else 0)
