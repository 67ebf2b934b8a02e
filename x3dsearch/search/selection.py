"""Which candidate a step keeps."""
from __future__ import annotations

from ..runlog import Trial
from ..utils.logging import get_logger

log = get_logger("search")


def select(candidates: list[Trial], start: Trial, criterion: str) -> Trial:
    """Best evaluated candidate: top-1 (ties to lower GFLOPs), or top-1 gained per added GFLOP."""
    usable = [c for c in candidates if c.evaluated]
    if not usable:
        raise ValueError("no usable candidate")
    if criterion == "gain-per-gflop" and start.top1 is not None:
        def key(c: Trial) -> tuple:
            return ((c.top1 - start.top1) / max(c.gflops - start.gflops, 1e-12), -c.gflops)
    else:
        if criterion == "gain-per-gflop":
            log.warning("the start model has no top-1; selecting by top-1")

        def key(c: Trial) -> tuple:
            return (c.top1, -c.gflops)
    return max(usable, key=key)  # max keeps the first of equals: the space's axis order
