"""Probing a network with families of cues, the standard hippocampal (CA3) analyses: basins of
attraction, pattern completion curves (recall vs the fraction of the cue given), pattern
separation curves (output overlap vs input overlap of pairs of cues), and the separability of
cues and memories (self vs cross similarity, HEN fig. 3). Each recalls its cues with the
continuous dynamics or the one-step update (:func:`recall_cues`) and returns a Dataset with
named dimensions. Definitions and examples: docs/analysis.md."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import xarray as xr

from .analysis import (
    MNIST_SIZE,
    SIMILARITY_METRICS,
    UHN_THRESHOLD,
    checked_matrix,
    paired_similarity,
    retrieval,
    similarity_matrix,
)

if TYPE_CHECKING:
    from .network import Network
    from .solve import Solver


# ----------------------------------------------------------------------------- input checks
def _levels(name: str, values: object, low: float | None = 0.0, high: float | None = None) -> np.ndarray:
    """A non-empty, strictly increasing 1-D grid of finite levels inside [low, high]."""
    a = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {a.shape}")
    if not np.isfinite(a).all() or np.any(np.diff(a) <= 0):
        raise ValueError(f"{name} must be finite and strictly increasing, got {a.tolist()}")
    if (low is not None and a[0] < low) or (high is not None and a[-1] > high):
        raise ValueError(f"{name} must lie in [{low}, {'inf' if high is None else high}], got {a.tolist()}")
    return a


def _generator(seed: int | None) -> tuple[torch.Generator, int]:
    """A CPU generator seeded with ``seed``; None draws a seed (from torch's global generator),
    which is returned so that it can be stored with the result."""
    seed = int(torch.randint(2 ** 31 - 1, ()).item()) if seed is None else int(seed)
    return torch.Generator().manual_seed(seed), seed


def _positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


# ----------------------------------------------------------------------------- recall of many cues
RECALL_MODES = ("dynamics", "one-step")


def default_probe_solver() -> Solver:
    """The solver the cue sweeps use unless given one: dopri5 with steady-state stopping."""
    from .solve import Solver

    return Solver("dopri5", rtol=1e-5, atol=1e-7, steady_tol=1e-4)


def recall_cues(network: Network, cues: torch.Tensor, mode: str = "dynamics", *, duration: float = 20.0,
                solver: object = None, steps: int = 1, cue_mode: str = "initial",
                clamp: torch.Tensor | None = None, batch_size: int = 4096) -> torch.Tensor:
    """The recalled patterns (B, O) for cues (B, I), in float64 on the CPU.

    ``mode="dynamics"``: integrate the network (:func:`~neurodyn.simulation.simulate`) for
    ``duration`` and read out ``g`` at the end (``solver`` default :func:`default_probe_solver`;
    ``cue_mode`` and ``clamp`` as there). ``mode="one-step"``: the feedforward UHN update
    :meth:`~neurodyn.network.Network.retrieve`, iterated ``steps`` times. Cues go in batches of
    ``batch_size``."""
    if mode not in RECALL_MODES:
        raise ValueError(f"unknown mode {mode!r}; known: {', '.join(RECALL_MODES)}")
    batch_size = _positive_int("batch_size", batch_size)
    q = network.check_queries(cues)
    if mode == "one-step":
        if clamp is not None:
            raise ValueError("clamping needs mode='dynamics': a one-step update has no units to hold")
        with torch.no_grad():
            out = [network.retrieve(q[i:i + batch_size], steps=steps) for i in range(0, len(q), batch_size)]
        return torch.cat(out).detach().to("cpu", torch.float64)
    from .network import Cues
    from .record import Monitor
    from .simulation import simulate

    solver = default_probe_solver() if solver is None else solver
    mask = None if clamp is None else torch.as_tensor(clamp, dtype=torch.bool)
    if mask is not None and mask.ndim == 1:
        mask = mask.expand(q.shape)
    out = []
    for i in range(0, len(q), batch_size):
        part = None if mask is None else mask[i:i + batch_size]
        ds = simulate(network, Cues(q[i:i + batch_size], cue_mode, clamp=part), duration, method=solver,
                      monitor=Monitor(("speed",), n_times=21))
        out.append(torch.as_tensor(ds["recalled"].transpose("cue", "unit").values, dtype=torch.float64))
    return torch.cat(out)


@dataclass(frozen=True)
class _Probes:
    """Clean patterns to probe, the stored memory each should recall, and that memory's output."""

    patterns: torch.Tensor  # (K, I) float64
    target_index: torch.Tensor  # (K,) long
    targets: torch.Tensor  # (K, O) float64
    outputs: torch.Tensor  # (N, O): every stored memory's output, the candidates


def _probes(network: Network, patterns: object) -> _Probes:
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
        return _Probes(p, index, outputs[index], outputs)
    return _Probes(memories[index], index, outputs[index], outputs)


def _score(probes: _Probes, recalled: torch.Tensor, which: torch.Tensor, criterion: str, threshold: float,
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


_CRITERIA = ("both", "sse", "nearest")


def _probe_levels(network: Network, patterns: object, levels: np.ndarray, level_dim: str, n_probes: int,
                  seed: int | None, make: object, *, mode: str, criterion: str, threshold: float,
                  reference_size: int | None, clamp_given: bool = False, **recall: object) -> xr.Dataset:
    """Probe each pattern ``n_probes`` times at each level: ``make(clean (B, I), level, generator)``
    returns cues (B, I) and the mask of units given (B, I); recall them all and score them.
    Dims (memory, level_dim, probe)."""
    if criterion not in _CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; known: {', '.join(_CRITERIA)}")
    n_probes = _positive_int("n_probes", n_probes)
    probes = _probes(network, patterns)
    k = probes.patterns.shape[0]
    generator, seed = _generator(seed)
    clean = probes.patterns.repeat_interleave(n_probes, dim=0)  # (K * P, I), probes of a pattern together
    cues, given = [], []
    for level in levels:
        c, g = make(clean, float(level), generator)
        cues.append(c)
        given.append(g)
    cues_t = torch.cat(cues)  # (L * K * P, I)
    given_t = torch.cat(given)
    recalled = recall_cues(network, cues_t, mode, clamp=given_t if clamp_given else None, **recall)
    which = torch.arange(k).repeat_interleave(n_probes).repeat(len(levels))
    scores = _score(probes, recalled, which, criterion, threshold, reference_size)
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
    out["success_rate"] = out["success"].mean("probe").assign_attrs(
        long_name="fraction of probes recalled", units="1")
    out["mean_success"] = out["success_rate"].mean("memory").assign_attrs(
        long_name="fraction of cues recalled", units="1")
    out["mean_overlap"] = out["overlap"].mean(("memory", "probe")).assign_attrs(
        long_name="mean cosine overlap of the output with the target", units="1")
    out["mean_cue_overlap"] = out["cue_overlap"].mean(("memory", "probe")).assign_attrs(
        long_name="mean cosine overlap of the cue with the clean pattern", units="1")
    out.attrs.update(mode=mode, criterion=criterion, sse_limit=float(scores["sse_limit"]),
                     n_probes=n_probes, seed=seed,
                     model=json.dumps(network.describe(), sort_keys=True))
    if mode == "dynamics":
        out.attrs["duration"] = float(recall.get("duration", 20.0))
    return out


def _random_units(shape: tuple[int, int], count: int, generator: torch.Generator) -> torch.Tensor:
    """A boolean mask with exactly ``count`` random units set in each row."""
    order = torch.rand(shape, generator=generator, dtype=torch.float64).argsort(dim=1)
    return order.argsort(dim=1) < count


PERTURBATIONS = ("flip", "mask", "gaussian")


def basin_of_attraction(network: Network, patterns: object = None,
                        distances: object = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5), *,
                        perturbation: str = "flip", n_probes: int = 8, seed: int | None = 0,
                        mode: str = "dynamics", duration: float = 20.0, solver: object = None, steps: int = 1,
                        criterion: str = "both", threshold: float = UHN_THRESHOLD,
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
    d = _levels("distances", distances, 0.0, None if perturbation == "gaussian" else 1.0)
    probes = _probes(network, patterns)
    lo, hi = float(probes.patterns.min()), float(probes.patterns.max())
    n_units = network.n_features

    def make(clean: torch.Tensor, dist: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if perturbation == "gaussian":
            u = torch.randn(clean.shape, generator=generator, dtype=torch.float64)
            u = u / u.norm(dim=-1, keepdim=True)
            return clean + dist * clean.norm(dim=-1, keepdim=True) * u, torch.ones_like(clean, dtype=torch.bool)
        hit = _random_units(tuple(clean.shape), round(dist * n_units), generator)
        moved = lo + hi - clean if perturbation == "flip" else torch.full_like(clean, float(fill))
        return torch.where(hit, moved, clean), ~hit

    out = _probe_levels(network, patterns, d, "distance", n_probes, seed, make, mode=mode, criterion=criterion,
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


def pattern_completion(network: Network, patterns: object = None,
                       fractions: object = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0), *,
                       n_probes: int = 4, seed: int | None = 0, given: str = "random", fill: float = 0.0,
                       clamp_given: bool = False, mode: str = "dynamics", duration: float = 20.0,
                       solver: object = None, steps: int = 1, criterion: str = "both",
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
    fr = _levels("fractions", fractions, 0.0, 1.0)
    n_units = network.n_features

    def make(clean: torch.Tensor, fraction: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        count = round(fraction * n_units)
        if given == "random":
            keep = _random_units(tuple(clean.shape), count, generator)
        else:
            keep = (torch.arange(n_units) < count).expand(clean.shape)
        return torch.where(keep, clean, torch.full_like(clean, float(fill))), keep

    out = _probe_levels(network, patterns, fr, "fraction", n_probes, seed, make, mode=mode, criterion=criterion,
                        threshold=threshold, reference_size=reference_size, clamp_given=clamp_given,
                        duration=duration, solver=solver, steps=steps)
    out["fraction"].attrs.update(long_name="fraction of the pattern given in the cue", units="1")
    out.attrs.update(given=given, fill=float(fill), clamp_given=int(clamp_given))
    return out


def pattern_separation(network: Network, patterns: object = None, *, n_pairs: int = 100, method: str = "morph",
                       noise: float = 1.0, cues: tuple[object, object] | None = None, metric: str = "correlation",
                       bins: int | object = 10, seed: int | None = 0, mode: str = "dynamics",
                       duration: float = 20.0, solver: object = None, steps: int = 1) -> xr.Dataset:
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
    generator, seed = _generator(seed)
    probes = _probes(network, patterns)
    if cues is not None:
        if len(cues) != 2:
            raise ValueError("cues must be a pair (cues_a, cues_b)")
        xa = checked_matrix("cues_a", cues[0], network.n_features)
        xb = checked_matrix("cues_b", cues[1], network.n_features)
        if xa.shape != xb.shape:
            raise ValueError(f"cues_a and cues_b must have the same shape, got {tuple(xa.shape)} and {tuple(xb.shape)}")
        first = second = torch.full((xa.shape[0],), -1)
        sa = sb = torch.full((xa.shape[0],), math.nan, dtype=torch.float64)
    else:
        n_pairs = _positive_int("n_pairs", n_pairs)
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
            xa = a + sa[:, None] * (b - a)
            xb = a + sb[:, None] * (b - a)
        else:
            if not (math.isfinite(noise) and noise >= 0):
                raise ValueError(f"noise must be a finite number >= 0, got {noise}")
            second = first
            sa, sb = noise * torch.rand((2, n_pairs), generator=generator, dtype=torch.float64)
            a = probes.patterns[first]
            u = torch.randn((2, *a.shape), generator=generator, dtype=torch.float64)
            u = u / u.norm(dim=-1, keepdim=True)
            xa = a + sa[:, None] * a.norm(dim=-1, keepdim=True) * u[0]
            xb = a + sb[:, None] * a.norm(dim=-1, keepdim=True) * u[1]
    n = xa.shape[0]
    recalled = recall_cues(network, torch.cat([xa, xb]), mode, duration=duration, solver=solver, steps=steps)
    ya, yb = recalled[:n], recalled[n:]
    x_ov = paired_similarity(xa, xb, metric).numpy()
    y_ov = paired_similarity(ya, yb, metric).numpy()
    nearest = torch.cdist(recalled, probes.outputs).argmin(1)
    finite = np.isfinite(x_ov)
    if isinstance(bins, (int, np.integer)):
        _positive_int("bins", bins)
        lo, hi = (float(x_ov[finite].min()), float(x_ov[finite].max())) if finite.any() else (0.0, 1.0)
        edges = np.linspace(lo, hi if hi > lo else lo + 1e-9, int(bins) + 1)
    else:
        edges = _levels("bins", bins, None, None)
        if edges.size < 2:
            raise ValueError("bin edges need at least two values")
    where = np.clip(np.searchsorted(edges, x_ov, side="right") - 1, 0, len(edges) - 2)
    where[~finite | (x_ov < edges[0]) | (x_ov > edges[-1])] = -1
    count = np.array([(where == i).sum() for i in range(len(edges) - 1)])

    def binned(values: np.ndarray) -> np.ndarray:
        return np.array([np.nanmean(values[where == i]) if count[i] else np.nan for i in range(len(edges) - 1)])

    name = {"correlation": "correlation", "cosine": "cosine overlap", "dot": "dot product",
            "euclidean": "minus Euclidean distance"}[metric]
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
        "binned_input_overlap": ("bin", binned(x_ov), {"long_name": f"mean input {name}", "units": "1"}),
        "binned_output_overlap": ("bin", binned(y_ov), {"long_name": f"mean output {name}", "units": "1"}),
        "count": ("bin", count, {"long_name": "pairs in the bin", "units": "1"}),
    }, coords={"pair": np.arange(n),
               "bin": ("bin", (edges[:-1] + edges[1:]) / 2, {"long_name": f"input {name} (bin centre)", "units": "1"}),
               "bin_edge": ("bin_edge", edges, {"long_name": f"input {name} bin edges", "units": "1"})})
    both = np.isfinite(x_ov) & np.isfinite(y_ov)
    out.attrs.update(method="given" if cues is not None else method, metric=metric, mode=mode,
                     seed=seed,
                     separation_index=float(np.mean(x_ov[both] - y_ov[both])) if both.any() else math.nan,
                     model=json.dumps(network.describe(), sort_keys=True))
    return out


# ----------------------------------------------------------------------------- separability
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
