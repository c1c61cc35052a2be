"""Pattern separation: the output overlap of pairs of cues against their input overlap."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

import numpy as np
import torch
import xarray as xr

from ..analysis import SIMILARITY_METRICS, checked_matrix, paired_similarity
from .checks import levels, positive_int, seeded_generator
from .recall import recall_cues
from .scoring import Probes, probes_of

if TYPE_CHECKING:
    from ..network import Network
    from ..solve import Solver


_OVERLAP_NAMES = {"correlation": "correlation", "cosine": "cosine overlap", "dot": "dot product",
                  "euclidean": "minus Euclidean distance"}
"""How the overlap of each similarity metric is named in the labels."""


def pattern_separation(network: Network, patterns: object = None, *, n_pairs: int = 100, method: str = "morph",
                       noise: float = 1.0, cues: tuple[object, object] | None = None, metric: str = "correlation",
                       bins: int | object = 10, seed: int | None = 0, mode: str = "dynamics",
                       duration: float = 20.0, solver: Solver | str | None = None, steps: int = 1) -> xr.Dataset:
    """Output overlap against input overlap for pairs of cues: the pattern separation curve.

    Pairs (``n_pairs``) are drawn from ``patterns`` (as in :func:`basin_of_attraction`) with the
    generator seeded by ``seed``: ``method="morph"`` takes two different patterns ``a``, ``b``
    and two points on the line between them, ``(1 - s) a + s b``, whose distance ``|s_a - s_b|``
    is uniform on [0, 1] (input overlaps from that of ``a`` and ``b`` up to 1); ``"noise"`` adds to one pattern
    ``a`` two random directions of norms ``s |a|``, ``s ~ U(0, noise)`` each. Or give the pairs:
    ``cues=(cues_a, cues_b)``, two (n_pairs, I) matrices. Both cues are recalled (``mode`` as in
    :func:`recall_cues`) and the overlap of the two inputs and of the two outputs is measured
    with ``metric`` (default Pearson correlation across units; see :func:`similarity_matrix`).

    Below the identity line (output overlap < input overlap) the network separates the pair;
    above it, it completes them onto one memory. Returns per pair ``input_overlap``,
    ``output_overlap``, ``same_memory`` (both outputs nearest the same stored memory) and the
    binned curve over ``bin`` (``bins`` equal bins of input overlap, or their edges):
    ``binned_output_overlap``, ``binned_input_overlap``, ``count``. ``attrs["separation_index"]``:
    the mean of input minus output overlap.
    """
    if method not in ("morph", "noise"):
        raise ValueError(f"method must be 'morph' or 'noise', got {method!r}")
    if metric not in SIMILARITY_METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(SIMILARITY_METRICS)}")
    generator, seed = seeded_generator(seed)
    probes = probes_of(network, patterns)
    first, second, sa, sb, xa, xb = _pairs(network, probes, cues, method, n_pairs, noise, generator)
    n = xa.shape[0]
    recalled = recall_cues(network, torch.cat([xa, xb]), mode, duration=duration, solver=solver, steps=steps)
    ya, yb = recalled[:n], recalled[n:]
    x_ov = paired_similarity(xa, xb, metric).numpy()
    y_ov = paired_similarity(ya, yb, metric).numpy()
    nearest = torch.cdist(recalled, probes.outputs).argmin(1)
    name = _OVERLAP_NAMES[metric]
    curve, bin_coords = _binned_curve(x_ov, y_ov, bins, name)
    out = xr.Dataset({
        "input_overlap": ("pair", x_ov, {"long_name": f"input {name} of the two cues", "units": "1"}),
        "output_overlap": ("pair", y_ov, {"long_name": f"output {name} of the two recalled patterns", "units": "1"}),
        "same_memory": ("pair", (nearest[:n] == nearest[n:]).numpy(),
                        {"long_name": "both outputs nearest the same stored memory", "units": "1"}),
        "pattern_a": ("pair", first.numpy(), {"long_name": "pattern of the first cue (-1: given cues)", "units": "1"}),
        "pattern_b": ("pair", second.numpy(), {"long_name": "pattern of the second cue (-1: given cues)",
                                               "units": "1"}),
        "position_a": ("pair", sa.numpy(), {"long_name": "morph position or noise level of the first cue",
                                            "units": "1"}),
        "position_b": ("pair", sb.numpy(), {"long_name": "morph position or noise level of the second cue",
                                            "units": "1"}),
        **curve,
    }, coords={"pair": np.arange(n), **bin_coords})
    both = np.isfinite(x_ov) & np.isfinite(y_ov)
    out.attrs.update(method="given" if cues is not None else method, metric=metric, mode=mode,
                     seed=seed,
                     separation_index=float(np.mean(x_ov[both] - y_ov[both])) if both.any() else math.nan,
                     model=json.dumps(network.describe(), sort_keys=True))
    return out


def _binned_curve(x_ov: np.ndarray, y_ov: np.ndarray, bins: int | object,
                  name: str) -> tuple[dict[str, tuple], dict[str, tuple]]:
    """The separation curve: mean input and output overlaps and counts over bins of input overlap
    (data variables over ``bin``), and the bins' centres and edges (coordinates)."""
    edges = _bin_edges(x_ov, bins)
    where, count = _bin_members(x_ov, edges)
    variables = {
        "binned_input_overlap": ("bin", _binned_mean(x_ov, where, count),
                                 {"long_name": f"mean input {name}", "units": "1"}),
        "binned_output_overlap": ("bin", _binned_mean(y_ov, where, count),
                                  {"long_name": f"mean output {name}", "units": "1"}),
        "count": ("bin", count, {"long_name": "pairs in the bin", "units": "1"}),
    }
    coords = {"bin": ("bin", (edges[:-1] + edges[1:]) / 2, {"long_name": f"input {name} (bin centre)", "units": "1"}),
              "bin_edge": ("bin_edge", edges, {"long_name": f"input {name} bin edges", "units": "1"})}
    return variables, coords


def _bin_members(x_ov: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each pair's bin of input overlap (-1: NaN or outside the edges) and the number of pairs in each bin."""
    finite = np.isfinite(x_ov)
    where = np.clip(np.searchsorted(edges, x_ov, side="right") - 1, 0, len(edges) - 2)
    where[~finite | (x_ov < edges[0]) | (x_ov > edges[-1])] = -1
    count = np.array([(where == i).sum() for i in range(len(edges) - 1)])
    return where, count


def _binned_mean(values: np.ndarray, where: np.ndarray, count: np.ndarray) -> np.ndarray:
    """The mean of ``values`` over the pairs of each bin (NaN for an empty bin)."""
    return np.array([np.nanmean(values[where == i]) if count[i] else np.nan for i in range(len(count))])


Pairs = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _pairs(network: Network, probes: Probes, cues: tuple[object, object] | None, method: str, n_pairs: int,
           noise: float, generator: torch.Generator) -> Pairs:
    """The pairs of cues: the patterns each comes from (-1: given), their morph positions or noise
    levels (NaN: given), and the two cues (n_pairs, I) each."""
    if cues is not None:
        if len(cues) != 2:
            raise ValueError("cues must be a pair (cues_a, cues_b)")
        xa = checked_matrix("cues_a", cues[0], network.n_features)
        xb = checked_matrix("cues_b", cues[1], network.n_features)
        if xa.shape != xb.shape:
            raise ValueError(f"cues_a and cues_b must have the same shape, got {tuple(xa.shape)} and {tuple(xb.shape)}")
        given = torch.full((xa.shape[0],), -1)
        unknown = torch.full((xa.shape[0],), math.nan, dtype=torch.float64)
        return given, given, unknown, unknown, xa, xb
    n_pairs = positive_int("n_pairs", n_pairs)
    k = probes.patterns.shape[0]
    first = torch.randint(k, (n_pairs,), generator=generator)
    if method == "morph":
        if k < 2:
            raise ValueError("morphing needs at least two patterns")
        second = (first + torch.randint(1, k, (n_pairs,), generator=generator)) % k
        # the gap between the two positions is uniform, so that input overlaps cover their range
        gap, centre = torch.rand((2, n_pairs), generator=generator, dtype=torch.float64)
        centre = gap / 2 + centre * (1 - gap)
        sa, sb = centre - gap / 2, centre + gap / 2
        a, b = probes.patterns[first], probes.patterns[second]
        return first, second, sa, sb, a + sa[:, None] * (b - a), a + sb[:, None] * (b - a)
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0, got {noise}")
    sa, sb = noise * torch.rand((2, n_pairs), generator=generator, dtype=torch.float64)
    a = probes.patterns[first]
    u = torch.randn((2, *a.shape), generator=generator, dtype=torch.float64)
    u = u / u.norm(dim=-1, keepdim=True)
    size = a.norm(dim=-1, keepdim=True)
    return first, first, sa, sb, a + sa[:, None] * size * u[0], a + sb[:, None] * size * u[1]


def _bin_edges(x_ov: np.ndarray, bins: int | object) -> np.ndarray:
    """``bins`` equal bins over the finite input overlaps, or the given edges."""
    finite = np.isfinite(x_ov)
    if isinstance(bins, (int, np.integer)):
        positive_int("bins", int(bins))
        lo, hi = (float(x_ov[finite].min()), float(x_ov[finite].max())) if finite.any() else (0.0, 1.0)
        return np.linspace(lo, hi if hi > lo else lo + 1e-9, int(bins) + 1)
    edges = levels("bins", bins, None, None)
    if edges.size < 2:
        raise ValueError("bin edges need at least two values")
    return edges
