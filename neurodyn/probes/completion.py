"""Pattern completion: recall against the fraction of the pattern given in the cue."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import xarray as xr

from ..analysis import MNIST_SIZE, UHN_THRESHOLD
from .checks import levels
from .scoring import probe_levels, random_units

if TYPE_CHECKING:
    from ..network import Network
    from ..solve import Solver


def pattern_completion(network: Network, patterns: object = None,
                       fractions: object = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0), *,
                       n_probes: int = 4, seed: int | None = 0, given: str = "random", fill: float = 0.0,
                       clamp_given: bool = False, mode: str = "dynamics", duration: float = 20.0,
                       solver: Solver | str | None = None, steps: int = 1, criterion: str = "both",
                       threshold: float = UHN_THRESHOLD, reference_size: int | None = MNIST_SIZE) -> xr.Dataset:
    """Recall from partial cues: success and output overlap against the fraction of the pattern given.

    For each pattern (as in :func:`basin_of_attraction`) and each fraction ``f``,
    ``round(f * I)`` units keep their values and the rest are set to ``fill`` (no information for
    patterns in [0, 1] or bipolar ones when 0). ``given="random"``: a random subset per probe;
    ``"first"``: the first units (the top rows of a flattened image; every probe is the same).
    ``clamp_given`` holds the given units at their values during the dynamics (a persistent
    input, as in CA3 models with a continuing entorhinal drive). Recall and scoring as in
    :func:`basin_of_attraction`.

    Returns per-probe ``success``, ``overlap``, ``sse``, ``nearest``, ``cue_overlap`` (dims memory,
    fraction, probe), ``success_rate`` (memory, fraction), and the curves ``mean_success``,
    ``mean_overlap`` (output with target) and ``mean_cue_overlap`` (cue with the clean pattern, the
    target itself for a stored autoassociative memory) over ``fraction``.
    """
    if given not in ("random", "first"):
        raise ValueError(f"given must be 'random' or 'first', got {given!r}")
    if clamp_given and mode != "dynamics":
        raise ValueError("clamp_given needs mode='dynamics'")
    fr = levels("fractions", fractions, 0.0, 1.0)
    n_units = network.n_features

    def make(clean: torch.Tensor, fraction: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        count = round(fraction * n_units)
        if given == "random":
            keep = random_units(tuple(clean.shape), count, generator)
        else:
            keep = (torch.arange(n_units) < count).expand(clean.shape)
        return torch.where(keep, clean, torch.full_like(clean, float(fill))), keep

    out = probe_levels(network, patterns, fr, "fraction", n_probes, seed, make, mode=mode, criterion=criterion,
                        threshold=threshold, reference_size=reference_size, clamp_given=clamp_given,
                        duration=duration, solver=solver, steps=steps)
    out["fraction"].attrs.update(long_name="fraction of the pattern given in the cue", units="1")
    out.attrs.update(given=given, fill=float(fill), clamp_given=int(clamp_given))
    return out
