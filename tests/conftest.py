"""Shared fixtures. Every test gets a private cache folder, so nothing touches ~/.cache."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("x3dsearch-cache")
    os.environ["X3DSEARCH_CACHE"] = str(cache)
    return cache
