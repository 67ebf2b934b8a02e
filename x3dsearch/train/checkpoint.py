"""Training checkpoints: everything needed to continue bit-for-bit, written atomically."""
from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..utils.io import atomic_write_bytes
from .folder import TrainingFolder

#: Aliases of :class:`TrainingFolder`'s names, for callers not yet moved to it (search/runner.py).
CHECKPOINT_NAME = TrainingFolder.CHECKPOINT
MODEL_NAME = TrainingFolder.MODEL
CHECKPOINT_VERSION = 1


def rng_state() -> dict[str, Any]:
    """Every random stream the training step draws from (dropout uses torch's)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                             "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Serialise in memory, then temp file + rename: a kill never leaves a torn checkpoint."""
    buffer = io.BytesIO()
    torch.save({"version": CHECKPOINT_VERSION, **state}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    # Our own file, holding numpy/python RNG states, so full unpickling is needed.
    return torch.load(path, map_location=device, weights_only=False)


def save_model_weights(path: Path, model: torch.nn.Module, **meta: Any) -> None:
    """Final weights in the format ``--init`` reads: ``{"model_state": ..., **meta}``."""
    buffer = io.BytesIO()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"model_state": state, **meta}, buffer)
    atomic_write_bytes(path, buffer.getvalue())
