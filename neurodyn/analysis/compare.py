"""Similarities between sets of patterns (cosine, correlation, dot, Euclidean), with their input
checks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    pass

def checked_matrix(name: str, x: object, n_cols: int | None = None) -> torch.Tensor:
    """``x`` as a finite, non-empty 2-D float64 CPU tensor (rows x ``n_cols``)."""
    if x is None:
        raise ValueError(f"{name} is missing")
    t = x.detach().cpu() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.dtype == torch.bool or t.is_complex():
        raise ValueError(f"{name} must hold real numbers, got {t.dtype}")
    t = t.to(torch.float64)
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows x features), got shape {tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)})")
    if n_cols is not None and t.shape[1] != n_cols:
        raise ValueError(f"{name} must have {n_cols} columns, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains {int((~torch.isfinite(t)).sum())} NaN or infinite value(s)")
    return t








# ----------------------------------------------------------------------------- similarities
SIMILARITY_METRICS = ("cosine", "correlation", "dot", "euclidean")


def prepared(x: torch.Tensor, metric: str) -> torch.Tensor:
    if metric not in SIMILARITY_METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(SIMILARITY_METRICS)}")
    if metric == "correlation":
        x = x - x.mean(-1, keepdim=True)
    if metric in ("cosine", "correlation"):
        norm = x.norm(dim=-1, keepdim=True)
        x = torch.where(norm > 0, x / torch.where(norm > 0, norm, 1.0), torch.nan)  # a zero vector has no direction
    return x


def similarity_matrix(x: torch.Tensor, y: torch.Tensor, metric: str = "cosine") -> torch.Tensor:
    """Similarity of every row of ``x`` with every row of ``y`` (len x, len y): ``cosine``,
    ``correlation`` (Pearson's r across units, the cosine of the centred vectors), ``dot`` or
    ``euclidean`` (minus the Euclidean distance, so that larger is more similar always). A
    zero (cosine) or constant (correlation) vector has no direction and gives NaN."""
    if metric == "euclidean":
        return -torch.cdist(x, y)
    return prepared(x, metric) @ prepared(y, metric).T


def paired_similarity(x: torch.Tensor, y: torch.Tensor, metric: str) -> torch.Tensor:
    """Similarity of row i of ``x`` with row i of ``y``."""
    if metric == "euclidean":
        return -(x - y).norm(dim=-1)
    return (prepared(x, metric) * prepared(y, metric)).sum(-1)
