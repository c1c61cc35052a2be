"""Families of probes of stored patterns, recalled and scored against their targets, level by
level (the machinery of the basin and completion curves)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import xarray as xr

from ..analysis import checked_matrix, paired_similarity, retrieval
from .checks import positive_int, seeded_generator
from .recall import recall_cues

if TYPE_CHECKING:
    from ..network import Network


@dataclass(frozen=True)
class Probes:
    """Clean patterns to probe, the stored memory each should recall, and that memory's output."""

    patterns: torch.Tensor  # (K, I) float64
    target_index: torch.Tensor  # (K,) long
    targets: torch.Tensor  # (K, O) float64
    outputs: torch.Tensor  # (N, O): every stored memory's output, the candidates


def probes_of(network: Network, patterns: object) -> Probes:
    """``patterns``: None (every stored memory), a 1-D sequence of memory indices, or a (K, I)
    matrix of patterns (each recalls the stored memory nearest to it, in Euclidean distance)."""
    memories = network.memories.detach().to("cpu", torch.float64)
    outputs = network.P.detach().to("cpu", torch.float64)
    if patterns is None:
        index = torch.arange(network.n_memories)
    elif np.ndim(np.asarray(patterns.cpu() if isinstance(patterns, torch.Tensor) else patterns)) == 1:
        index = torch.as_tensor(np.asarray(patterns.cpu() if isinstance(patterns, torch.Tensor) else patterns))
        if index.numel() == 0 or index.is_floating_point() or index.min() < 0 or index.max() >= network.n_memories:
            raise ValueError(f"memory indices must be a non-empty list of integers in [0, {network.n_memories})")
        index = index.long()
    else:
        p = checked_matrix("patterns", patterns, network.n_features)
        index = torch.cdist(p, memories).argmin(1)
        return Probes(p, index, outputs[index], outputs)
    return Probes(memories[index], index, outputs[index], outputs)


def score(probes: Probes, recalled: torch.Tensor, which: torch.Tensor, criterion: str, threshold: float,
           reference_size: int | None) -> dict[str, np.ndarray]:
    """Score recalled patterns (B, O) against the targets of probes ``which`` (B,): ``success`` by
    ``criterion`` (``"sse"``: :func:`retrieval`'s criterion; ``"nearest"``: the stored memory
    whose output is nearest the recalled pattern is the target; ``"both"``: both hold), ``sse``,
    ``overlap`` (cosine with the target) and ``nearest``."""
    targets = probes.targets[which]
    r = retrieval(xr.Dataset({"recalled": (("cue", "unit"), recalled.numpy())}), threshold, reference_size,
                  targets=targets)
    nearest = torch.cdist(recalled, probes.outputs).argmin(1)
    correct = (nearest == probes.target_index[which]).numpy()
    return {
        "success": {"sse": r["success"].values, "nearest": correct, "both": r["success"].values & correct}[criterion],
        "sse": r["sse"].values,
        "overlap": paired_similarity(recalled, targets, "cosine").numpy(),
        "nearest": nearest.numpy(),
        "sse_limit": r.attrs["sse_limit"],
    }


CRITERIA = ("both", "sse", "nearest")


#: Cues at one level: ``make(clean (B, I), level, generator) -> (cues (B, I), units given (B, I))``.
MakeCues = Callable[[torch.Tensor, float, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


def probe_levels(network: Network, patterns: object, levels: np.ndarray, level_dim: str, n_probes: int,
                 seed: int | None, make: MakeCues, *, mode: str, criterion: str, threshold: float,
                 reference_size: int | None, clamp_given: bool = False, **recall: Any) -> xr.Dataset:
    """Probe each pattern ``n_probes`` times at each level: ``make(clean (B, I), level, generator)``
    returns cues (B, I) and the mask of units given (B, I); recall them all and score them.
    Dims (memory, level_dim, probe)."""
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; known: {', '.join(CRITERIA)}")
    n_probes = positive_int("n_probes", n_probes)
    probes = probes_of(network, patterns)
    k = probes.patterns.shape[0]
    generator, seed = seeded_generator(seed)
    clean = probes.patterns.repeat_interleave(n_probes, dim=0)  # (K * P, I), probes of a pattern together
    cues_t, given_t = _level_cues(clean, levels, make, generator)  # (L * K * P, I)
    recalled = recall_cues(network, cues_t, mode, clamp=given_t if clamp_given else None, **recall)
    which = torch.arange(k).repeat_interleave(n_probes).repeat(len(levels))
    scores = score(probes, recalled, which, criterion, threshold, reference_size)
    shape = (len(levels), k, n_probes)

    def arr(a: np.ndarray) -> np.ndarray:
        return np.moveaxis(np.asarray(a).reshape(shape), 0, 1)  # (memory, level, probe)

    distance = (cues_t - clean.repeat(len(levels), 1)).norm(dim=-1) / clean.repeat(len(levels), 1).norm(
        dim=-1).clamp_min(torch.finfo(torch.float64).tiny)
    dims = ("memory", level_dim, "probe")
    success_long = {"sse": f"recalled: sse to the target <= {scores['sse_limit']:.4g}",
                    "nearest": "recalled: the target is the stored memory nearest the output",
                    "both": f"recalled: sse to the target <= {scores['sse_limit']:.4g} and no other stored memory "
                            "nearer"}[criterion]
    out = xr.Dataset({
        "success": (dims, arr(scores["success"]), {"long_name": success_long, "units": "1"}),
        "overlap": (dims, arr(scores["overlap"]), {"long_name": "cosine overlap of the output with the target",
                                                    "units": "1"}),
        "sse": (dims, arr(scores["sse"]), {"long_name": "sum of squared errors of the output", "units": "1"}),
        "nearest": (dims, arr(scores["nearest"]), {"long_name": "stored memory nearest the output", "units": "1"}),
        "cue_distance": (dims, arr(distance.numpy()),
                         {"long_name": "distance of the cue from the clean pattern, relative to its norm",
                          "units": "1"}),
        "cue_overlap": (dims, arr(paired_similarity(cues_t, clean.repeat(len(levels), 1), "cosine").numpy()),
                        {"long_name": "cosine overlap of the cue with the clean pattern", "units": "1"}),
        "target_index": ("memory", probes.target_index.numpy(),
                         {"long_name": "stored memory each pattern should recall", "units": "1"}),
    }, coords={"memory": np.arange(k), level_dim: levels, "probe": np.arange(n_probes)})
    _add_means(out)
    out.attrs.update(mode=mode, criterion=criterion, sse_limit=float(scores["sse_limit"]),
                     n_probes=n_probes, seed=seed,
                     model=json.dumps(network.describe(), sort_keys=True))
    if mode == "dynamics":
        out.attrs["duration"] = float(recall.get("duration", 20.0))
    return out


def _level_cues(clean: torch.Tensor, levels: np.ndarray, make: MakeCues,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The cues made of ``clean`` at every level, one level after another, and the units each gives."""
    cues, given = [], []
    for level in levels:
        c, g = make(clean, float(level), generator)
        cues.append(c)
        given.append(g)
    return torch.cat(cues), torch.cat(given)


def _add_means(out: xr.Dataset) -> None:
    """Add the averages to ``out``: each memory's success rate, and the success and overlaps over all cues."""
    out["success_rate"] = out["success"].mean("probe").assign_attrs(
        long_name="fraction of probes recalled", units="1")
    out["mean_success"] = out["success_rate"].mean("memory").assign_attrs(
        long_name="fraction of cues recalled", units="1")
    out["mean_overlap"] = out["overlap"].mean(("memory", "probe")).assign_attrs(
        long_name="mean cosine overlap of the output with the target", units="1")
    out["mean_cue_overlap"] = out["cue_overlap"].mean(("memory", "probe")).assign_attrs(
        long_name="mean cosine overlap of the cue with the clean pattern", units="1")


def random_units(shape: tuple[int, ...], count: int, generator: torch.Generator) -> torch.Tensor:
    """A boolean mask with exactly ``count`` random units set in each row."""
    order = torch.rand(shape, generator=generator, dtype=torch.float64).argsort(dim=1)
    return order.argsort(dim=1) < count
