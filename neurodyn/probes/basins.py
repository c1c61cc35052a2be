"""Basins of attraction: how far from a stored pattern a cue may start and still come back."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import xarray as xr

from ..analysis import MNIST_SIZE, UHN_THRESHOLD
from .checks import levels
from .scoring import probe_levels, probes_of, random_units

if TYPE_CHECKING:
    from ..network import Network
    from ..solve import Solver

PERTURBATIONS = ("flip", "mask", "gaussian")


def basin_of_attraction(network: Network, patterns: object = None,
                        distances: object = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5), *,
                        perturbation: str = "flip", n_probes: int = 8, seed: int | None = 0,
                        mode: str = "dynamics", duration: float = 20.0, solver: Solver | str | None = None,
                        steps: int = 1, criterion: str = "both", threshold: float = UHN_THRESHOLD,
                        reference_size: int | None = MNIST_SIZE, level: float = 0.5,
                        fill: float = 0.0) -> xr.Dataset:
    """How far from a stored pattern a cue may start and still come back to it.

    Each pattern (``patterns``: None for all stored memories, memory indices, or a (K, I) matrix
    whose rows recall their nearest memory) is perturbed ``n_probes`` times at each of the
    ``distances``: ``"flip"`` reflects a random fraction ``d`` of the units about the middle of
    the patterns' value range (``lo + hi - x``: a bit flip for binary or bipolar patterns, an
    inverted pixel for images); ``"mask"`` sets a random fraction ``d`` to ``fill``;
    ``"gaussian"`` adds a random direction of norm ``d * |pattern|``. The cues are recalled
    (``mode="dynamics"``: :func:`~neurodyn.simulation.simulate` for ``duration``; ``"one-step"``:
    ``steps`` UHN updates) and scored: ``criterion="both"`` (default) counts a probe as recalled
    when the output is within :func:`retrieval`'s sse threshold of the memory's output (UHN's 50
    per 784 values, rescaled by ``threshold * I / reference_size``) and no other stored memory is
    nearer; ``"sse"`` or ``"nearest"`` use one of the two. (The sse threshold alone is lenient on
    digits: the mean of 20 digits lies within it of several of them.)

    Returns per-probe ``success``, ``overlap``, ``sse``, ``nearest``, ``cue_distance`` (dims
    memory, distance, probe), ``success_rate`` (memory, distance), ``mean_success`` (distance)
    and ``radius`` (memory): the largest tested distance up to which the success rate stays at
    least ``level`` at every tested distance (0 when the smallest tested distance already fails).
    The true radius lies between it and the next tested distance.
    """
    if perturbation not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation {perturbation!r}; known: {', '.join(PERTURBATIONS)}")
    if not 0.0 < level <= 1.0:
        raise ValueError(f"level must lie in (0, 1], got {level}")
    d = levels("distances", distances, 0.0, None if perturbation == "gaussian" else 1.0)
    probes = probes_of(network, patterns)
    lo, hi = float(probes.patterns.min()), float(probes.patterns.max())
    n_units = network.n_features

    def make(clean: torch.Tensor, dist: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if perturbation == "gaussian":
            u = torch.randn(clean.shape, generator=generator, dtype=torch.float64)
            u = u / u.norm(dim=-1, keepdim=True)
            return clean + dist * clean.norm(dim=-1, keepdim=True) * u, torch.ones_like(clean, dtype=torch.bool)
        hit = random_units(tuple(clean.shape), round(dist * n_units), generator)
        moved = lo + hi - clean if perturbation == "flip" else torch.full_like(clean, float(fill))
        return torch.where(hit, moved, clean), ~hit

    out = probe_levels(network, patterns, d, "distance", n_probes, seed, make, mode=mode, criterion=criterion,
                        threshold=threshold, reference_size=reference_size, duration=duration, solver=solver,
                        steps=steps)
    label = {"flip": "fraction of units flipped", "mask": "fraction of units masked",
             "gaussian": "norm of the added noise relative to the pattern's"}[perturbation]
    out["distance"].attrs.update(long_name=label, units="1")
    ok = (out["success_rate"] >= level).transpose("memory", "distance").values
    run = np.logical_and.accumulate(ok, axis=1)
    radius = np.where(run.any(1), d[np.maximum(run.sum(1) - 1, 0)], 0.0)
    out["radius"] = ("memory", radius, {"long_name": f"basin radius ({label} with success >= {level:g})",
                                        "units": "1"})
    out.attrs.update(perturbation=perturbation, level=float(level))
    return out
