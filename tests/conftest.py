"""Shared fixtures.  Real-MNIST tests read ``$NNSCRATCH_DATA`` (CI points it at the local copy)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from nnscratch.data import MNIST_FILES, _find, default_cache_dir


def _mnist_dir() -> Path | None:
    for candidate in (os.environ.get("NNSCRATCH_DATA"), default_cache_dir()):
        if candidate and all(_find(Path(candidate), stem) for stem in MNIST_FILES):
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    directory = _mnist_dir()
    if directory is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs the MNIST files: set NNSCRATCH_DATA to a directory holding them")
        pytest.skip("MNIST not available: set NNSCRATCH_DATA or run 'nnscratch train' once to download it")
    return directory


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    from nnscratch.data import load_dataset

    return load_dataset(mnist_dir)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def tiny_data(rng):
    """A small separable problem: 4 Gaussian blobs in 12 dimensions, values in [0, 1]."""
    centres = rng.random((4, 12))
    y = rng.integers(0, 4, 400)
    X = np.clip(centres[y] + 0.05 * rng.standard_normal((400, 12)), 0.0, 1.0)
    return X, y
