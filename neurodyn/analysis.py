"""Analyses of a recorded run: Lyapunov check, retrieval metrics, nearest stored pattern, and
what kind of state each cue ended in (a stored memory, a mixture of memories, or spurious);
recall time and metastability along the trajectories; and the analyses that sweep cues through
a network (basins of attraction, pattern completion and separation) or compare codes
(separability). Definitions and examples: docs/analysis.md."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from typing import TYPE_CHECKING

import numpy as np
import torch
import xarray as xr

if TYPE_CHECKING:
    from .integrate import Solver
    from .network import Network

UHN_THRESHOLD = 50.0  # UHN appendix E: sum of squared errors below 50 counts as recalled
MNIST_SIZE = 784  # the pattern size that threshold refers to


@dataclass(frozen=True)
class LyapunovReport:
    """The largest energy increase between consecutive recorded times, against a tolerance.

    ``tolerance`` at each interval is ``factor * ((rtol + eps) * S + atol)`` where ``S`` is the sum
    of the absolute energy components there (the energy is a difference of such terms, so its
    numerical error scales with them), ``rtol``/``atol`` are the solver's tolerances (zero for
    fixed-step methods) and ``eps`` the float precision. ``worst_ratio`` is the largest
    increase divided by its tolerance: above 1 the energy rose beyond what numerics explain.
    """

    monotone: bool
    guaranteed: bool
    worst_ratio: float
    max_increase: float
    tolerance: float
    time: float
    cue: int
    reason: str

    @property
    def verdict(self) -> str:
        if self.monotone:
            return "energy non-increasing" + (" (guaranteed by theory)" if self.guaranteed else
                                              " (observed; not guaranteed by theory)")
        head = (f"energy INCREASES by {self.max_increase:.3g} (tolerance {self.tolerance:.3g}) "
                f"at t={self.time:g}, cue {self.cue}")
        if self.guaranteed:
            return head + ": theory guarantees a decrease, so this is solver or float error; tighten the tolerances"
        return head + f": expected, no Lyapunov guarantee ({self.reason})"

    def __str__(self) -> str:
        return self.verdict


def lyapunov_check(ds: xr.Dataset, factor: float = 10.0) -> LyapunovReport:
    """Check that the recorded ``energy`` never increases beyond the solver's tolerance."""
    if "energy" not in ds:
        raise ValueError("the Dataset has no 'energy': record it with Monitor(variables=(..., 'energy'))")
    energy = ds["energy"].transpose("time", "cue").values.astype(np.float64)
    if energy.shape[0] < 2:
        raise ValueError("the Lyapunov check needs at least two recorded times")
    parts = [ds[k].transpose("time", "cue").values for k in ds.data_vars if str(k).startswith("energy_")]
    scale = np.abs(np.stack(parts)).sum(0) if parts else np.abs(energy)
    eps = float(np.finfo(ds["energy"].dtype).eps)
    rtol, atol = float(ds.attrs.get("rtol", 0.0)), float(ds.attrs.get("atol", 0.0))
    tol = factor * ((rtol + eps) * np.maximum(scale[1:], scale[:-1]) + atol)
    rise = np.diff(energy, axis=0)
    ratio = rise / tol
    ti, ci = np.unravel_index(np.nanargmax(ratio), ratio.shape)
    worst = float(ratio[ti, ci])
    return LyapunovReport(
        monotone=bool(worst <= 1.0),
        guaranteed=bool(int(ds.attrs.get("lyapunov_guaranteed", 0))),
        worst_ratio=worst,
        max_increase=float(rise[ti, ci]),
        tolerance=float(tol[ti, ci]),
        time=float(ds["time"].values[ti + 1]),
        cue=int(ds["cue"].values[ci]),
        reason=str(ds.attrs.get("lyapunov_reason", "")),
    )


def _targets(ds: xr.Dataset, targets: np.ndarray | torch.Tensor | None) -> xr.DataArray:
    if targets is not None:
        t = np.asarray(torch.as_tensor(targets).cpu())
        if t.shape != ds["recalled"].shape:
            raise ValueError(f"targets must have shape {ds['recalled'].shape}, got {t.shape}")
        return xr.DataArray(t, dims=ds["recalled"].dims)
    if "target" not in ds:
        raise ValueError("no targets: pass targets= here or to simulate()")
    return ds["target"]


def retrieval(ds: xr.Dataset, threshold: float = UHN_THRESHOLD, reference_size: int | None = MNIST_SIZE,
              targets: np.ndarray | torch.Tensor | None = None) -> xr.Dataset:
    """Per-cue retrieval metrics of the recalled patterns (UHN appendix E).

    ``sse``: sum of squared differences to the target; ``mse``: its mean over units;
    ``success``: ``sse * reference_size / I <= threshold``. UHN's criterion is ``sse <= 50`` on
    784-pixel MNIST images (the authors' code uses 60 and can rescale by image size); by default
    the threshold is rescaled to the pattern size ``I`` so that it means the same per-pixel error
    on 64-pixel digits or 3072-value CIFAR images. ``reference_size=None`` compares the raw
    ``sse`` with ``threshold``. ``attrs["rate"]`` is the fraction of cues recalled.
    """
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    err = (ds["recalled"] - _targets(ds, targets)) ** 2
    sse = err.sum("unit")
    limit = threshold if reference_size is None else threshold * ds.sizes["unit"] / reference_size
    success = sse <= limit
    out = xr.Dataset({
        "sse": sse.assign_attrs(long_name="sum of squared errors of the recalled pattern", units="1"),
        "mse": err.mean("unit").assign_attrs(long_name="mean squared error of the recalled pattern", units="1"),
        "success": success.assign_attrs(long_name=f"retrieved (sse <= {limit:.4g})", units="1"),
    })
    out.attrs.update(threshold=float(threshold), sse_limit=float(limit), rate=float(success.mean()))
    return out


def nearest_pattern(ds: xr.Dataset, patterns: np.ndarray | torch.Tensor) -> xr.Dataset:
    """Which stored pattern each recalled state is nearest to (Euclidean), and how near."""
    p = torch.as_tensor(np.asarray(torch.as_tensor(patterns).cpu()), dtype=torch.float64)
    r = torch.as_tensor(ds["recalled"].transpose("cue", "unit").values, dtype=torch.float64)
    if p.ndim != 2 or p.shape[1] != r.shape[1]:
        raise ValueError(f"patterns must be (N, {r.shape[1]}), got {tuple(p.shape)}")
    d = torch.cdist(r, p)
    dist, idx = d.min(dim=1)
    return xr.Dataset({
        "nearest": ("cue", idx.numpy(), {"long_name": "index of the nearest stored pattern", "units": "1"}),
        "distance": ("cue", dist.numpy(), {"long_name": "Euclidean distance to the nearest stored pattern",
                                           "units": "1"}),
    }, coords={"cue": ds["cue"].values})


def summarize(ds: xr.Dataset, threshold: float = UHN_THRESHOLD) -> str:
    """A few lines on a run: model, solver statistics, retrieval rate, Lyapunov verdict."""
    model = json.loads(ds.attrs["model"]) if "model" in ds.attrs else {}
    lines = [
        f"model: {model.get('name', '?')} ({model.get('similarity', '?')}, {model.get('separation', '?')}, "
        f"{model.get('dynamics', '?')} dynamics, {'fast' if model.get('tau_h') is None else 'slow'} memory), "
        f"N={model.get('n_memories', '?')}, I={model.get('n_features', '?')}",
        f"cues: {ds.sizes['cue']}, time 0..{float(ds['time'][-1]):g} {ds['time'].attrs.get('units', '')}",
        f"solver: {ds.attrs.get('solver_method', '?')} rtol={ds.attrs.get('rtol', 0):g} "
        f"atol={ds.attrs.get('atol', 0):g}; {ds.attrs.get('nfe', '?')} evaluations, "
        f"{ds.attrs.get('steps_accepted', '?')} steps ({ds.attrs.get('steps_rejected', '?')} rejected), "
        f"{float(ds.attrs.get('wall_time_s', float('nan'))):.2f} s",
    ]
    if "converged" in ds:
        n_conv = int(ds["converged"].sum())
        ct = ds["convergence_time"].values
        median = f", median convergence time {np.nanmedian(ct):g}" if n_conv else ""
        lines.append(f"steady state: {n_conv}/{ds.sizes['cue']} cues{median}")
    if "correct" in ds:  # recall through a codec: identity in code space, read-out error in stimulus space
        err = float(((ds["output"] - ds["output_target"]) ** 2).mean())
        lines.append(f"recall: {float(ds['correct'].mean()):.1%} of cues end nearest their target memory "
                     f"(code space); read-out MSE to the target's read-out {err:.3g}")
    elif "target" in ds:
        r = retrieval(ds, threshold)
        lines.append(f"retrieval: {r.attrs['rate']:.1%} of cues within sse <= {r.attrs['sse_limit']:.3g} "
                     f"(UHN's {threshold:g} per 784 pixels; median sse {float(r['sse'].median()):.3g})")
    if "state" in ds:
        lines.append(f"final states: {ds.attrs.get('state_counts', '?')} (mixture: participation ratio >= "
                     f"{ds.attrs.get('state_mixture_ratio', '?')})")
    if "mixture_time" in ds:
        lingered = ds["mixture_time"].values > 0
        lines.append(f"metastable mixtures: {int(lingered.sum())}/{ds.sizes['cue']} cues passed through a mixture"
                     + (f" (longest {float(ds['mixture_time'].max()):.3g} {ds['mixture_time'].attrs['units']})"
                        if lingered.any() else ""))
    if "energy" in ds:
        lines.append(f"Lyapunov: {lyapunov_check(ds).verdict}")
    return "\n".join(lines)


def participation_ratio(weights: torch.Tensor) -> torch.Tensor:
    """``1 / sum_mu p_mu^2`` with ``p = |f| / sum |f|`` over the last axis: the effective number
    of memories that share a state (1 for one memory, 2 for an even mixture of two, N when all
    share it equally). Rows of zeros give NaN."""
    w = weights.abs()
    p = w / w.sum(-1, keepdim=True)
    return 1.0 / (p ** 2).sum(-1)


def participation_over_time(ds: xr.Dataset) -> xr.DataArray:
    """The participation ratio of the recorded memory activations ``f`` at every recorded time
    (over all memories, or over the top-k recorded ranks, a close lower bound when k covers the
    active ones). Dims (time, cue)."""
    if "f" not in ds:
        raise ValueError("record 'f' (Monitor(variables=(..., 'f'))) to follow the participation ratio")
    f = ds["f"]
    dim = "memory" if "memory" in f.dims else "rank"
    ratio = xr.apply_ufunc(lambda a: participation_ratio(torch.as_tensor(a)).numpy(), f, input_core_dims=[[dim]])
    return ratio.assign_attrs(long_name="effective number of active memories", units="1")


def mixture_time(ds: xr.Dataset, mixture_ratio: float = 1.5) -> xr.DataArray:
    """Time each cue spends in a mixture state (participation ratio >= ``mixture_ratio``): the
    metastable episodes of HEN hypothesis 3. Each recorded interval counts when its start is in
    a mixture. Dims (cue,), in the time units."""
    pr = participation_over_time(ds)
    dt = ds["time"].diff("time")
    inside = (pr >= mixture_ratio).isel(time=slice(None, -1)).assign_coords(time=dt["time"].values)
    return (inside * dt.values[:, None]).sum("time").assign_attrs(
        long_name=f"time spent in a mixture (participation ratio >= {mixture_ratio:g})",
        units=ds["time"].attrs.get("units", "1"))


def final_states(ds: xr.Dataset, network: Network, mixture_ratio: float = 1.5,
                 spurious_distance: float = 0.5, units: torch.Tensor | None = None) -> xr.Dataset:
    """Classify each cue's final state by the memory activations ``f`` it leaves on.

    ``participation_ratio`` of ``f = sep(sim(M, g))`` at the end (:func:`participation_ratio`);
    the state is a ``mixture`` (a blend of several memories, HEN hypothesis 3) when it is at
    least ``mixture_ratio``; otherwise ``spurious`` when ``g`` lies farther from its
    nearest stored memory than ``spurious_distance`` times the median distance between a memory
    and its nearest neighbour, and ``memory`` when it lies near one. ``components``: the two
    most active memories. ``attrs["counts"]`` counts each kind. ``units``: a boolean mask of the
    value units that distances are measured on (default all; a recall that clamps a given
    modality measures on the free ones, since the clamped part cannot move towards a memory).
    With ``f`` recorded, ``mixture_time`` says how long each cue lingered in a mixture on its way
    (a metastable state that the dynamics left).
    """
    if not mixture_ratio >= 1:
        raise ValueError(f"mixture_ratio must be >= 1, got {mixture_ratio}")
    m = network.memories
    v = torch.as_tensor(ds["v_final"].transpose("cue", "unit").values).to(m)
    with torch.no_grad():
        g = network.activation(v)
        f = network.separate(network.scores(g))
        ratio = participation_ratio(f)
        top = torch.argsort(f.abs(), dim=-1, descending=True, stable=True)[:, :2]
        if units is not None:
            g, m = g[:, units.to(g.device)], m[:, units.to(m.device)]
        dist, nearest = torch.cdist(g, m).min(dim=1)
        between = torch.cdist(m, m).fill_diagonal_(float("inf")).min(dim=1).values
        finite = between[torch.isfinite(between)]
        spacing = float(finite.median()) if finite.numel() else float("inf")
    kind = np.where(ratio.cpu().numpy() >= mixture_ratio, "mixture",
                    np.where(dist.cpu().numpy() > spurious_distance * spacing, "spurious", "memory"))
    out = xr.Dataset({
        "participation_ratio": ("cue", ratio.cpu().numpy(),
                                {"long_name": "effective number of active memories at the end", "units": "1"}),
        "state": ("cue", kind.astype(str), {"long_name": "final state: memory, mixture or spurious"}),
        "nearest": ("cue", nearest.cpu().numpy(), {"long_name": "index of the nearest stored memory", "units": "1"}),
        "distance": ("cue", dist.cpu().numpy(), {"long_name": "distance of g to the nearest stored memory",
                                                 "units": "1"}),
        "components": (("cue", "component"), top.cpu().numpy(),
                       {"long_name": "the two most active memories at the end", "units": "1"}),
    }, coords={"cue": ds["cue"].values, "component": [0, 1][:top.shape[1]]})
    if "f" in ds:
        out["mixture_time"] = mixture_time(ds, mixture_ratio)
    out.attrs.update(mixture_ratio=mixture_ratio, spurious_distance=spurious_distance, memory_spacing=spacing,
                     counts=json.dumps({k: int((kind == k).sum()) for k in ("memory", "mixture", "spurious")}))
    return out


# ----------------------------------------------------------------------------- input checks
def _matrix(name: str, x: object, n_cols: int | None = None) -> torch.Tensor:
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


# ----------------------------------------------------------------------------- similarities
SIMILARITY_METRICS = ("cosine", "correlation", "dot", "euclidean")


def _prepared(x: torch.Tensor, metric: str) -> torch.Tensor:
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
    return _prepared(x, metric) @ _prepared(y, metric).T


def _paired_similarity(x: torch.Tensor, y: torch.Tensor, metric: str) -> torch.Tensor:
    """Similarity of row i of ``x`` with row i of ``y``."""
    if metric == "euclidean":
        return -(x - y).norm(dim=-1)
    return (_prepared(x, metric) * _prepared(y, metric)).sum(-1)


# ----------------------------------------------------------------------------- recall time
def _target_positions(ds: xr.Dataset, target_index: object) -> np.ndarray | None:
    """Per cue, the position of its target memory on the ``pattern`` axis of ``overlap``
    (-1: not recorded), or None when no target index is known."""
    if target_index is None:
        if "target_index" not in ds:
            return None
        target_index = ds["target_index"].values
    ti = np.asarray(torch.as_tensor(target_index).cpu(), dtype=np.int64)
    if ti.shape != (ds.sizes["cue"],):
        raise ValueError(f"target_index must have one entry per cue ({ds.sizes['cue']}), got shape {ti.shape}")
    recorded = {int(p): i for i, p in enumerate(ds["pattern"].values)}
    return np.array([recorded.get(int(t), -1) for t in ti])


def _on_target(ds: xr.Dataset, threshold: float, target_index: object, targets: object, patterns: object,
               nearest: bool) -> tuple[np.ndarray, str]:
    """(time, cue) booleans: the state overlaps its target by at least ``threshold`` (and, with
    ``nearest``, at least as much as any other candidate memory); and how that was measured."""
    if "overlap" in ds:
        pos = _target_positions(ds, target_index)
        if pos is not None and (pos >= 0).all():
            ov = ds["overlap"].transpose("time", "cue", "pattern").values.astype(np.float64)
            on = np.take_along_axis(ov, pos[None, :, None], axis=2)[..., 0]
            ok = on >= threshold
            if nearest:
                ok &= on >= ov.max(axis=2)
            return ok, "recorded overlap with the target memory" + (" (and the largest one)" if nearest else "")
        if pos is not None and targets is None and "target" not in ds:
            missing = np.flatnonzero(pos < 0).tolist()
            raise ValueError(f"the target memory of cue(s) {missing[:10]} is not among the recorded overlaps "
                             "(Monitor(overlap_with=...)); record it, or record 'g'/'v' with targets")
    state = "g" if "g" in ds else "v" if "v" in ds else None
    if state is None:
        raise ValueError("recall_time needs 'overlap' (with target_index) or 'g'/'v' (with targets) recorded")
    if targets is None:
        if "target" not in ds:
            raise ValueError("no targets: pass targets= here or to simulate(), or record 'overlap' with target_index")
        targets = ds["target"].transpose("cue", "unit").values
    unit_dim = "unit_subset" if "unit_subset" in ds[state].dims else "unit"
    units = ds[unit_dim].values
    n_units = ds.sizes["unit"] if "unit" in ds.sizes else len(units)
    tgt = _matrix("targets", targets, n_units)
    if tgt.shape[0] != ds.sizes["cue"]:
        raise ValueError(f"targets must have one row per cue ({ds.sizes['cue']}), got {tgt.shape[0]}")
    units_t = torch.as_tensor(np.array(units), dtype=torch.long)
    s = torch.as_tensor(ds[state].transpose("time", "cue", unit_dim).values, dtype=torch.float64)
    s_unit = _prepared(s, "cosine")
    on = (s_unit * _prepared(tgt[:, units_t], "cosine")[None]).sum(-1)
    ok = (on >= threshold).numpy()
    how = f"cosine overlap of the recorded {state} with the target"
    if nearest and patterns is not None:
        p = _matrix("patterns", patterns, n_units)[:, units_t]
        best = (s_unit @ _prepared(p, "cosine").T).amax(-1)
        ok &= (on >= best - 1e-9).numpy()  # the target itself is among the patterns: allow its rounding
        how += " (and the largest over the given patterns)"
    return ok, how


def recall_time(ds: xr.Dataset, overlap_threshold: float = 0.9, *, target_index: object = None,
                targets: object = None, patterns: object = None, nearest: bool = True) -> xr.DataArray:
    """Per cue, the first recorded time from which the state stays on its target memory until the
    end of the recording; NaN when it is not on it at the end.

    "On the target" means a cosine overlap with the target of at least ``overlap_threshold``
    and, with ``nearest``, no smaller than the overlap with any other candidate memory. It is
    measured on the recorded ``overlap`` (Monitor variable; the target is ``target_index``, from
    here or from ``simulate(target_index=...)``, and the candidates are the recorded patterns),
    otherwise on the recorded ``g`` (or ``v``, equal to ``g`` for the quadratic value Lagrangian)
    against ``targets`` (from here or ``simulate(targets=...)``; candidates: ``patterns``, when
    given). The resolution is the recording grid.

    This is a behavioural time (when is the memory retrieved?), unlike the solver's
    ``convergence_time`` (when did the state stop moving?): a cue can sit on its memory long
    before the residual motion dies down, or settle on a wrong memory or mixture (converged,
    recall time NaN).
    """
    if not -1.0 <= overlap_threshold <= 1.0:
        raise ValueError(f"overlap_threshold must lie in [-1, 1] (a cosine), got {overlap_threshold}")
    ok, how = _on_target(ds, overlap_threshold, target_index, targets, patterns, nearest)
    stays = np.flip(np.logical_and.accumulate(np.flip(ok, 0), axis=0), 0)  # on target from here to the end
    times = ds["time"].values
    first = np.where(stays.any(0), times[stays.argmax(0)], np.nan)
    return xr.DataArray(first, dims="cue", coords={"cue": ds["cue"].values}, name="recall_time", attrs={
        "long_name": f"time from which the state stays on its target (overlap >= {overlap_threshold:g})",
        "units": ds["time"].attrs.get("units", "1"), "criterion": how,
        "overlap_threshold": float(overlap_threshold)})


# ----------------------------------------------------------------------------- metastability
def activation_entropy(ds: xr.Dataset) -> xr.DataArray:
    """Shannon entropy (nats) of the normalized memory activations ``p = |f| / sum |f|`` at every
    recorded time: 0 on one memory, ``log 2`` on an even mixture of two, ``log N`` when all N share
    the state. It weighs every active memory (the participation ratio ``1/sum p^2`` is dominated
    by the largest ones); ``exp(entropy)`` is the perplexity, another effective number of memories.
    With top-k recording the activations outside the top k are missing. Dims (time, cue)."""
    if "f" not in ds:
        raise ValueError("record 'f' (Monitor(variables=(..., 'f'))) to follow the activation entropy")
    f = ds["f"]
    dim = "memory" if "memory" in f.dims else "rank"

    def entropy(a: np.ndarray) -> np.ndarray:
        w = torch.as_tensor(a, dtype=torch.float64).abs()
        return torch.special.entr(w / w.sum(-1, keepdim=True)).sum(-1).numpy()

    return xr.apply_ufunc(entropy, f, input_core_dims=[[dim]]).assign_attrs(
        long_name="entropy of the memory activations", units="nat")


def mixture_episodes(ds: xr.Dataset, mixture_ratio: float = 1.5) -> xr.Dataset:
    """The metastable mixture episodes of each cue: maximal runs of recorded times at which the
    participation ratio of ``f`` is at least ``mixture_ratio`` (:func:`participation_over_time`).

    ``in_mixture`` (time, cue); per cue and episode (NaN-padded): ``start`` (first time in the
    mixture), ``end`` (first recorded time after it, or the last time when it lasts to the end),
    ``duration = end - start`` and ``final`` (it lasts to the end: the cue ends in a mixture, see
    :func:`final_states`); ``n_episodes``. The durations of a cue add up to :func:`mixture_time`.
    """
    if not mixture_ratio >= 1:
        raise ValueError(f"mixture_ratio must be >= 1, got {mixture_ratio}")
    inside = (participation_over_time(ds) >= mixture_ratio).transpose("time", "cue")
    flags = inside.values
    times = ds["time"].values
    episodes: list[list[tuple[float, float, bool]]] = []
    for c in range(flags.shape[1]):
        padded = np.concatenate([[False], flags[:, c], [False]]).astype(np.int8)
        starts = np.flatnonzero(np.diff(padded) == 1)
        stops = np.flatnonzero(np.diff(padded) == -1)  # first index after each run
        episodes.append([(times[a], times[min(b, len(times) - 1)], b == len(times)) for a, b in zip(starts, stops)])
    n = max((len(e) for e in episodes), default=0)
    start = np.full((len(episodes), n), np.nan)
    end = np.full((len(episodes), n), np.nan)
    final = np.zeros((len(episodes), n), dtype=bool)
    for c, eps in enumerate(episodes):
        for k, (a, b, last) in enumerate(eps):
            start[c, k], end[c, k], final[c, k] = a, b, last
    units = ds["time"].attrs.get("units", "1")
    out = xr.Dataset({
        "in_mixture": inside.assign_attrs(long_name=f"in a mixture (participation ratio >= {mixture_ratio:g})",
                                          units="1"),
        "start": (("cue", "episode"), start, {"long_name": "start of the mixture episode", "units": units}),
        "end": (("cue", "episode"), end, {"long_name": "end of the mixture episode", "units": units}),
        "duration": (("cue", "episode"), end - start, {"long_name": "duration of the mixture episode",
                                                       "units": units}),
        "final": (("cue", "episode"), final, {"long_name": "episode lasts to the end of the recording",
                                              "units": "1"}),
        "n_episodes": ("cue", np.array([len(e) for e in episodes]),
                       {"long_name": "number of mixture episodes", "units": "1"}),
    }, coords={"cue": ds["cue"].values, "episode": np.arange(n)})
    out.attrs["mixture_ratio"] = float(mixture_ratio)
    return out


def metastability(ds: xr.Dataset, network: Network | None = None, mixture_ratio: float = 1.5,
                  spurious_distance: float = 0.5) -> xr.Dataset:
    """Everything on metastable states in one Dataset: ``participation_ratio`` and ``entropy``
    over time (:func:`participation_over_time`, :func:`activation_entropy`), the mixture episodes
    (:func:`mixture_episodes`) and ``mixture_time``; with the ``network``, the final state's kind
    (memory, mixture or spurious attractor) from :func:`final_states` as ``state``, ``nearest``,
    ``distance`` and ``final_participation_ratio``. Needs ``f`` recorded."""
    out = mixture_episodes(ds, mixture_ratio)
    out["participation_ratio"] = participation_over_time(ds).transpose("time", "cue")
    out["entropy"] = activation_entropy(ds).transpose("time", "cue")
    out["mixture_time"] = mixture_time(ds, mixture_ratio)
    if network is not None:
        states = final_states(ds, network, mixture_ratio, spurious_distance)
        out["final_participation_ratio"] = states["participation_ratio"]
        for name in ("state", "nearest", "distance"):
            out[name] = states[name]
        out.attrs.update(counts=states.attrs["counts"], memory_spacing=states.attrs["memory_spacing"],
                         spurious_distance=spurious_distance)
    return out


# ----------------------------------------------------------------------------- recall of many cues
RECALL_MODES = ("dynamics", "one-step")


def default_probe_solver() -> Solver:
    """The solver the cue sweeps use unless given one: dopri5 with steady-state stopping."""
    from .integrate import Solver

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
    from .record import Monitor
    from .simulation import simulate

    solver = default_probe_solver() if solver is None else solver
    mask = None if clamp is None else torch.as_tensor(clamp, dtype=torch.bool)
    if mask is not None and mask.ndim == 1:
        mask = mask.expand(q.shape)
    out = []
    for i in range(0, len(q), batch_size):
        part = None if mask is None else mask[i:i + batch_size]
        ds = simulate(network, q[i:i + batch_size], duration, monitor=Monitor(("speed",), n_times=21),
                      solver=solver, cue_mode=cue_mode, clamp=part)
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
        p = _matrix("patterns", patterns, network.n_features)
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
        "overlap": _paired_similarity(recalled, targets, "cosine").numpy(),
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
        "cue_overlap": (dims, arr(_paired_similarity(cues_t, clean.repeat(len(levels), 1), "cosine").numpy()),
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
        xa = _matrix("cues_a", cues[0], network.n_features)
        xb = _matrix("cues_b", cues[1], network.n_features)
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
    x_ov = _paired_similarity(xa, xb, metric).numpy()
    y_ov = _paired_similarity(ya, yb, metric).numpy()
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
    m = _matrix("memories", memories)
    q = _matrix("queries", queries, m.shape[1])
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
