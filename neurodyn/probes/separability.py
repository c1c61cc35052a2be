"""Separability of cues and memories by similarity alone (HEN fig. 3)."""

from __future__ import annotations

import math

import numpy as np
import torch
import xarray as xr

from ..analysis import SIMILARITY_METRICS, checked_matrix, similarity_matrix


def _auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counting one half (Mann-Whitney U / n m)."""
    neg = np.sort(negative)
    below = np.searchsorted(neg, positive, side="left")
    not_above = np.searchsorted(neg, positive, side="right")
    return float((below + 0.5 * (not_above - below)).sum() / (positive.size * neg.size))


def separability(queries: object, memories: object, target_index: object = None,
                 metric: str = "cosine") -> xr.Dataset:
    """How well queries single out their own memory by similarity alone (HEN fig. 3).

    ``self`` (cue): the similarity of each query with its own memory (``target_index``, default
    query i with memory i); ``cross`` (cross_pair): its similarity with every other memory,
    with ``cross_cue`` and ``cross_memory`` coordinates; ``margin`` (cue): self minus the
    largest cross similarity of that query (> 0: the own memory is the most similar).
    ``metric``: ``cosine``, ``correlation``, ``dot`` or ``euclidean`` (minus the distance).
    ``attrs``: ``self_mean``, ``self_std``, ``cross_mean``, ``cross_std``, ``d_prime``
    (``(mean_self - mean_cross) / sqrt((var_self + var_cross) / 2)``), ``auroc`` (the
    probability that a self similarity beats a cross one, ties counting a half) and ``top1``
    (the fraction of queries most similar to their own memory; ties count as misses).
    """
    m = checked_matrix("memories", memories)
    q = checked_matrix("queries", queries, m.shape[1])
    if m.shape[0] < 2:
        raise ValueError("separability needs at least two memories (a cross similarity)")
    if target_index is None:
        if q.shape[0] > m.shape[0]:
            raise ValueError(f"{q.shape[0]} queries but {m.shape[0]} memories: pass target_index")
        ti = torch.arange(q.shape[0])
    else:
        ti = torch.as_tensor(np.asarray(target_index.cpu() if isinstance(target_index, torch.Tensor)
                                        else target_index))
        if ti.shape != (q.shape[0],) or ti.is_floating_point() or ti.min() < 0 or ti.max() >= m.shape[0]:
            raise ValueError(f"target_index must hold one memory index in [0, {m.shape[0]}) per query "
                             f"({q.shape[0]}), got shape {tuple(ti.shape)}")
        ti = ti.long()
    if metric not in SIMILARITY_METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(SIMILARITY_METRICS)}")
    sim = similarity_matrix(q, m, metric)
    own = torch.zeros_like(sim, dtype=torch.bool)
    own[torch.arange(q.shape[0]), ti] = True
    self_sim = sim[own].numpy()
    cue_idx, mem_idx = torch.nonzero(~own, as_tuple=True)
    cross = sim[~own].numpy()
    if np.isnan(self_sim).any() or np.isnan(cross).any():
        raise ValueError(f"the {metric} similarity is undefined for a zero or constant vector; use another metric")
    margin = self_sim - sim.masked_fill(own, -math.inf).amax(1).numpy()
    name = {"correlation": "correlation", "cosine": "cosine similarity", "dot": "dot product",
            "euclidean": "minus Euclidean distance"}[metric]
    pooled = math.sqrt((self_sim.var() + cross.var()) / 2)
    diff = float(self_sim.mean() - cross.mean())
    out = xr.Dataset({
        "self": ("cue", self_sim, {"long_name": f"{name} of a query with its own memory", "units": "1"}),
        "cross": ("cross_pair", cross, {"long_name": f"{name} of a query with another memory", "units": "1"}),
        "margin": ("cue", margin, {"long_name": f"own minus the largest other {name}", "units": "1"}),
        "target_index": ("cue", ti.numpy(), {"long_name": "index of the query's own memory", "units": "1"}),
    }, coords={"cue": np.arange(q.shape[0]),
               "cross_cue": ("cross_pair", cue_idx.numpy(), {"long_name": "query index", "units": "1"}),
               "cross_memory": ("cross_pair", mem_idx.numpy(), {"long_name": "memory index", "units": "1"})})
    out.attrs.update(
        metric=metric, similarity=name, self_mean=float(self_sim.mean()), self_std=float(self_sim.std()),
        cross_mean=float(cross.mean()), cross_std=float(cross.std()),
        d_prime=diff / pooled if pooled > 0 else (math.copysign(math.inf, diff) if diff else math.nan),
        auroc=_auroc(self_sim, cross), top1=float((margin > 0).mean()))
    return out
