"""Test settings: small problems run fastest on one thread, and figures need no display."""

import os
from pathlib import Path

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
torch.set_num_threads(int(os.environ.get("NEURODYN_TEST_THREADS", "1")))


@pytest.fixture
def real_root() -> Path:
    """The shared data root from $NEURODYN_DATA; tests that need real data skip without it."""
    root = os.environ.get("NEURODYN_DATA")
    if not root:
        pytest.skip("NEURODYN_DATA is not set: point it at the shared data folder to run this")
    return Path(root)
