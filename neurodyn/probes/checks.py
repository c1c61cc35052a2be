"""Checks of the probes' inputs: grids of levels, counts, and the seeded generator."""

from __future__ import annotations

import numpy as np
import torch


def levels(name: str, values: object, low: float | None = 0.0, high: float | None = None) -> np.ndarray:
    """A non-empty, strictly increasing 1-D grid of finite levels inside [low, high]."""
    a = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {a.shape}")
    if not np.isfinite(a).all() or np.any(np.diff(a) <= 0):
        raise ValueError(f"{name} must be finite and strictly increasing, got {a.tolist()}")
    if (low is not None and a[0] < low) or (high is not None and a[-1] > high):
        raise ValueError(f"{name} must lie in [{low}, {'inf' if high is None else high}], got {a.tolist()}")
    return a


def seeded_generator(seed: int | None) -> tuple[torch.Generator, int]:
    """A CPU generator seeded with ``seed``; None draws a seed (from torch's global generator),
    which is returned so that it can be stored with the result."""
    seed = int(torch.randint(2 ** 31 - 1, ()).item()) if seed is None else int(seed)
    return torch.Generator().manual_seed(seed), seed


def positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)
