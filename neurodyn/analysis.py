"""Analyses of a recorded run: Lyapunov check, retrieval metrics, nearest stored pattern, and
what kind of state each cue ended in (a stored memory, a mixture of memories, or spurious);
recall time and metastability along the trajectories; spike-train statistics of a spiking run
(rates, PSTH, ISI CV, Fano factor, count correlations). The studies that probe a network with
families of cues (basins, pattern completion and separation, separability) are in
:mod:`neurodyn.probes`. Definitions and examples: docs/analysis.md."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import xarray as xr

if TYPE_CHECKING:
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
    if np.isnan(ratio).all():
        raise ValueError("no cue has a finite energy record to check (did every cue fail? see solver_status)")
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
    if "solver_method_used" in ds:
        status, implicit = ds["solver_status"].values, ds["solver_method_used"].values == 1
        lines.append(f"per cue: {int((status == 1).sum())} finished, {int((status == 2).sum())} steady, "
                     f"{int((status == 3).sum())} failed; {int(implicit.sum())} on the implicit rosenbrock23 "
                     f"({int(np.isfinite(ds['solver_switch_time'].values).sum())} switched there as stiff), "
                     f"{int((~implicit).sum())} explicit")
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
    if "spike_time" in ds:
        rate = float(ds["population_rate"].mean()) if "population_rate" in ds else float("nan")
        model, path = ds.attrs.get("neuron_model", "?"), ds.attrs.get("spiking_path", "?")
        lines.append(f"spiking: {model} memory neurons ({path} "
                     f"path), dt {ds.attrs.get('dt', float('nan')):g} ms; {ds.sizes['spike']} spikes, population "
                     f"rate {rate:.3g} Hz on average")
    if "recall_time" in ds:
        rt = ds["recall_time"].values
        lines.append(f"recall time: {int(np.isfinite(rt).sum())}/{len(rt)} cues on their target"
                     + (f", median {np.nanmedian(rt):g} {ds['recall_time'].attrs.get('units', '')}"
                        if np.isfinite(rt).any() else ""))
    if "energy" in ds:
        lines.append(f"Lyapunov: {lyapunov_check(ds).verdict}")
        if "neuron_model" in ds.attrs and ds.sizes["cue"] > 1:
            te = trial_energy(ds)
            lines.append(f"energy over the {te.attrs['n_trials']} cues as trials: the mean rises by at most "
                         f"{te.attrs['max_rise_sem']:.2g} standard errors; single trials rise in "
                         f"{te.attrs['rising_fraction']:.0%} of the recorded steps")
    return "\n".join(lines)


def trial_energy(ds: xr.Dataset) -> xr.Dataset:
    """The energy of a noisy (spiking) run across its cues taken as trials: ``mean`` and its
    standard error ``sem`` over cues per recorded time, and in ``attrs`` ``max_rise_sem`` (the
    largest rise of the mean between consecutive times, in standard errors of that step's mean;
    <= 3 reads as non-increasing), ``rising_fraction`` (the share of single-trial steps in which
    the energy rose) and ``largest_single_rise``. No Lyapunov guarantee holds for one noisy
    trial; the trial mean is what to check (docs/spiking.md)."""
    if "energy" not in ds:
        raise ValueError("trial_energy needs 'energy' recorded")
    if ds.sizes["cue"] < 2:
        raise ValueError("trial_energy needs at least 2 cues (trials)")
    e = ds["energy"].transpose("time", "cue").values.astype(np.float64)
    step = np.diff(e, axis=0)
    step_sem = step.std(axis=1, ddof=1) / np.sqrt(e.shape[1])
    mean_step = step.mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(step_sem > 0, mean_step / step_sem, np.where(mean_step > 0, np.inf, 0.0))
    out = xr.Dataset({
        "mean": ("time", e.mean(axis=1), {"long_name": "energy, mean over cues", "units": "1"}),
        "sem": ("time", e.std(axis=1, ddof=1) / np.sqrt(e.shape[1]),
                {"long_name": "standard error of the mean energy", "units": "1"}),
    }, coords={"time": ds["time"]})
    out.attrs.update(max_rise_sem=float(ratio.max()), rising_fraction=float((step > 0).mean()),
                     largest_single_rise=float(step.max()), n_trials=int(e.shape[1]))
    return out


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


# ----------------------------------------------------------------------------- spike-train statistics
# A spiking run records its spikes as events (dim ``spike``): ``spike_time`` (ms), ``spike_cue``
# and ``spike_unit``, with ``attrs["n_spiking_units"]`` memory neurons. Everything below counts
# them in a window (t_start, t_stop] cut into bins (a, b], left-open like ``population_rate``.
# Results index the memory neurons along ``spiking_unit``, as the record's per-unit ``rate`` does
# (``unit`` is the value neurons' dimension).
SPIKING_UNIT = "spiking_unit"


@dataclass(frozen=True)
class _Spikes:
    """The spike events of a run as arrays: time (ms), position on the ``cue`` axis, unit."""

    time: np.ndarray
    cue: np.ndarray
    unit: np.ndarray
    n_units: int
    cues: np.ndarray
    duration: float


@dataclass(frozen=True)
class _Window:
    """``n_bins`` bins of ``width`` ms from ``start`` to ``stop`` (one bin: the whole window)."""

    start: float
    stop: float
    n_bins: int
    width: float
    binned: bool = True

    def centres(self) -> np.ndarray:
        return self.start + self.width * (np.arange(self.n_bins) + 0.5)

    def attrs(self) -> dict[str, float]:
        edges = {"t_start": self.start, "t_stop": self.stop}
        return {**edges, "bin_ms": self.width} if self.binned else edges


def _spikes(ds: xr.Dataset) -> _Spikes:
    """Read and check the spike events; spikes of cues missing from the ``cue`` axis (a
    Dataset cut with ``isel(cue=...)``) are dropped."""
    missing = [name for name in ("spike_time", "spike_cue", "spike_unit") if name not in ds]
    if missing:
        raise ValueError(f"the Dataset has no {', '.join(map(repr, missing))}: spike events come from a "
                         "spiking run (spike_time, spike_cue and spike_unit along the 'spike' dimension)")
    if "n_spiking_units" not in ds.attrs:
        raise ValueError("the Dataset has no attrs['n_spiking_units'] (the number of spiking units N), "
                         "which a spiking run records")
    n_units = int(ds.attrs["n_spiking_units"])
    time = np.asarray(ds["spike_time"].values, dtype=np.float64)
    cue = np.asarray(ds["spike_cue"].values, dtype=np.int64)
    unit = np.asarray(ds["spike_unit"].values, dtype=np.int64)
    if unit.size and (unit.min() < 0 or unit.max() >= n_units):
        raise ValueError(f"spike_unit must lie in [0, {n_units}) (n_spiking_units), "
                         f"got values in [{unit.min()}, {unit.max()}]")
    cues = np.asarray(ds["cue"].values)
    order = np.argsort(cues, kind="stable")
    at = np.clip(np.searchsorted(cues[order], cue), 0, max(len(cues) - 1, 0))
    kept = cues[order][at] == cue if len(cues) else np.zeros(cue.shape, dtype=bool)
    duration = float(ds.attrs["duration"]) if "duration" in ds.attrs else float(ds["time"].values[-1])
    return _Spikes(time[kept], order[at[kept]], unit[kept], n_units, cues, duration)


def _window(sp: _Spikes, bin_ms: float | None, t_start: float, t_stop: float | None) -> _Window:
    """The counting window, cut into whole bins of ``bin_ms`` (a last partial bin is dropped)."""
    start = float(t_start)
    stop = sp.duration if t_stop is None else float(t_stop)
    if not (np.isfinite(start) and np.isfinite(stop) and stop > start):
        raise ValueError(f"the window needs finite t_start < t_stop, got ({start}, {stop}]")
    if bin_ms is None:
        return _Window(start, stop, 1, stop - start, binned=False)
    if not (np.isfinite(bin_ms) and bin_ms > 0):
        raise ValueError(f"bin_ms must be a positive number of ms, got {bin_ms}")
    n_bins = int(np.floor((stop - start) / bin_ms + 1e-9))
    if n_bins < 1:
        raise ValueError(f"bin_ms={bin_ms:g} is longer than the window ({start:g}, {stop:g}] ms")
    return _Window(start, start + n_bins * float(bin_ms), n_bins, float(bin_ms))


def _binned(sp: _Spikes, win: _Window, device: str | torch.device) -> tuple[torch.Tensor, ...]:
    """(bin, cue, unit, time) tensors of the spikes inside the window; a spike at t lies in bin k
    when ``start + k w < t <= start + (k + 1) w`` (times within 1e-9 bins of an edge count as on it)."""
    t = torch.as_tensor(sp.time, dtype=torch.float64, device=device)
    x = (t - win.start) / win.width
    x = torch.where((x - x.round()).abs() <= 1e-9 * x.abs().clamp_min(1.0), x.round(), x)
    b = torch.ceil(x).long() - 1
    inside = (b >= 0) & (b < win.n_bins)
    cue = torch.as_tensor(sp.cue, dtype=torch.long, device=device)
    unit = torch.as_tensor(sp.unit, dtype=torch.long, device=device)
    return b[inside], cue[inside], unit[inside], t[inside]


def _count_tensor(sp: _Spikes, win: _Window, device: str | torch.device) -> torch.Tensor:
    """Spike counts (bin, cue, unit) as int64."""
    b, c, u, _ = _binned(sp, win, device)
    n_cues, n = len(sp.cues), sp.n_units
    flat = (b * n_cues + c) * n + u
    return torch.bincount(flat, minlength=win.n_bins * n_cues * n).reshape(win.n_bins, n_cues, n)


def _bin_coord(win: _Window) -> tuple[str, np.ndarray, dict[str, str]]:
    return ("bin", win.centres(), {"long_name": "bin centre (time since cue onset)", "units": "ms"})


def _unit_coord(idx: np.ndarray) -> tuple[str, np.ndarray, dict[str, str]]:
    return (SPIKING_UNIT, idx, {"long_name": "memory neuron index", "units": "1"})


def _unit_subset(units: Sequence[int] | None, n_units: int) -> np.ndarray:
    if units is None:
        return np.arange(n_units)
    idx = np.asarray(units, dtype=np.int64).reshape(-1)
    if idx.size == 0 or idx.min() < 0 or idx.max() >= n_units:
        raise ValueError(f"units must be a non-empty subset of 0..{n_units - 1}, got {units}")
    return idx


def spike_counts(ds: xr.Dataset, bin_ms: float | None = None, t_start: float = 0.0, t_stop: float | None = None,
                 device: str | torch.device = "cpu") -> xr.DataArray:
    """Spike counts per (cue, spiking_unit) in the window ``(t_start, t_stop]`` ms (default: the whole run,
    ``attrs["duration"]``); with ``bin_ms``, per (bin, cue, spiking_unit) in consecutive bins of that width
    (``bin`` coordinate: bin centres, ms; a last partial bin is dropped, ``attrs["t_stop"]`` says
    where the bins end). A spike at exactly ``t_start`` is not counted, one at ``t_stop`` is."""
    sp = _spikes(ds)
    win = _window(sp, bin_ms, t_start, t_stop)
    counts = _count_tensor(sp, win, device).cpu().numpy()
    coords = {"cue": sp.cues, SPIKING_UNIT: _unit_coord(np.arange(sp.n_units))}
    attrs = {"long_name": "spike count", "units": "1", **win.attrs()}
    if bin_ms is None:
        return xr.DataArray(counts[0], dims=("cue", SPIKING_UNIT), coords=coords, name="spike_count", attrs=attrs)
    return xr.DataArray(counts, dims=("bin", "cue", SPIKING_UNIT), coords={"bin": _bin_coord(win), **coords},
                        name="spike_count", attrs=attrs)


def firing_rates(ds: xr.Dataset, t_start: float = 0.0, t_stop: float | None = None,
                 device: str | torch.device = "cpu") -> xr.DataArray:
    """Mean firing rate (Hz) per (cue, spiking_unit) over the window ``(t_start, t_stop]`` ms: the spike
    count divided by the window's length in seconds."""
    counts = spike_counts(ds, None, t_start, t_stop, device)
    rate = counts.astype(np.float64) / ((counts.attrs["t_stop"] - counts.attrs["t_start"]) / 1000.0)
    return rate.rename("rate").assign_attrs(counts.attrs, long_name="firing rate", units="Hz")


def psth(ds: xr.Dataset, bin_ms: float, units: Sequence[int] | None = None, population: bool = False,
         t_start: float = 0.0, t_stop: float | None = None, device: str | torch.device = "cpu") -> xr.DataArray:
    """Peri-stimulus time histogram: the rate (Hz) in each bin of ``bin_ms``, averaged over cues
    (trials; the cue is presented at t = 0), per (bin, spiking_unit) for ``units`` (default all). With
    ``population``, summed over those units: dims (bin,), the population rate's mean over cues."""
    sp = _spikes(ds)
    win = _window(sp, bin_ms, t_start, t_stop)
    idx = _unit_subset(units, sp.n_units)
    b, _, u, _ = _binned(sp, win, device)
    counts = torch.bincount(b * sp.n_units + u, minlength=win.n_bins * sp.n_units).reshape(win.n_bins, sp.n_units)
    counts = counts[:, torch.as_tensor(idx, device=counts.device)].to(torch.float64)
    rate = counts / (len(sp.cues) * win.width / 1000.0)  # no cues: 0/0 = NaN
    attrs = {"units": "Hz", **win.attrs(), "n_trials": len(sp.cues)}
    if population:
        return xr.DataArray(rate.sum(1).cpu().numpy(), dims="bin", coords={"bin": _bin_coord(win)}, name="psth",
                            attrs={"long_name": "population rate, mean over cues", **attrs})
    return xr.DataArray(rate.cpu().numpy(), dims=("bin", SPIKING_UNIT),
                        coords={"bin": _bin_coord(win), SPIKING_UNIT: _unit_coord(idx)},
                        name="psth", attrs={"long_name": "firing rate, mean over cues", **attrs})


def isi_cv(ds: xr.Dataset, t_start: float = 0.0, t_stop: float | None = None,
           device: str | torch.device = "cpu") -> xr.DataArray:
    """Coefficient of variation of the inter-spike intervals per (cue, spiking_unit): the sample standard
    deviation (n - 1 in the denominator) of the intervals between consecutive spikes in the
    window, divided by their mean. 0 for a regular train, about 1 for a Poisson train; NaN where
    a train has fewer than 3 spikes (fewer than two intervals)."""
    sp = _spikes(ds)
    win = _window(sp, None, t_start, t_stop)
    _, c, u, t = _binned(sp, win, device)
    n_trains = len(sp.cues) * sp.n_units
    train = c * sp.n_units + u
    order = torch.sort(t, stable=True).indices
    order = order[torch.sort(train[order], stable=True).indices]  # by train, then by time
    train, t = train[order], t[order]
    same = train[1:] == train[:-1]
    gap, owner = (t[1:] - t[:-1])[same], train[1:][same]
    zeros = torch.zeros(n_trains, dtype=torch.float64, device=t.device)
    n = torch.bincount(owner, minlength=n_trains).to(torch.float64)
    mean = zeros.index_add(0, owner, gap) / n
    var = zeros.index_add(0, owner, (gap - mean[owner]) ** 2) / (n - 1)
    cv = torch.where(n >= 2, var.sqrt() / mean, torch.nan).reshape(len(sp.cues), sp.n_units)
    return xr.DataArray(cv.cpu().numpy(), dims=("cue", SPIKING_UNIT),
                        coords={"cue": sp.cues, SPIKING_UNIT: _unit_coord(np.arange(sp.n_units))}, name="isi_cv",
                        attrs={"long_name": "coefficient of variation of the inter-spike intervals", "units": "1",
                               **win.attrs()})


def fano_factor(ds: xr.Dataset, bin_ms: float | None = None, t_start: float = 0.0, t_stop: float | None = None,
                device: str | torch.device = "cpu") -> xr.DataArray:
    """Variance over mean of the spike counts across cues, per unit: counts in the window
    ``(t_start, t_stop]`` give dims (spiking_unit,); with ``bin_ms``, counts per bin give a time-resolved
    Fano factor with dims (bin, spiking_unit). The variance is the sample variance (n - 1 in the
    denominator), so it is about 1 for Poisson trains. NaN where the mean count is 0, or with
    fewer than two cues.

    This is the trial-to-trial Fano factor when the cues are repeated trials of the same stimulus;
    over different cues it also measures how much the response depends on the cue."""
    sp = _spikes(ds)
    win = _window(sp, bin_ms, t_start, t_stop)
    counts = _count_tensor(sp, win, device).to(torch.float64)
    mean = counts.mean(1)
    var = counts.var(1, correction=1) if len(sp.cues) > 1 else torch.full_like(mean, torch.nan)
    ff = torch.where(mean > 0, var / mean, torch.nan).cpu().numpy()
    attrs = {"long_name": "Fano factor of the spike counts across cues", "units": "1", **win.attrs(),
             "n_trials": len(sp.cues)}
    units = {SPIKING_UNIT: _unit_coord(np.arange(sp.n_units))}
    if bin_ms is None:
        return xr.DataArray(ff[0], dims=SPIKING_UNIT, coords=units, name="fano_factor", attrs=attrs)
    return xr.DataArray(ff, dims=("bin", SPIKING_UNIT), coords={"bin": _bin_coord(win), **units}, name="fano_factor",
                        attrs=attrs)


def count_correlations(ds: xr.Dataset, t_start: float = 0.0, t_stop: float | None = None,
                       device: str | torch.device = "cpu") -> xr.DataArray:
    """Pearson correlation between the cues' spike-count vectors over units (window
    ``(t_start, t_stop]``), dims (cue, cue_other): how similar the population responses to two
    cues are. NaN in the row and column of a cue whose counts are all equal (silent, say)."""
    sp = _spikes(ds)
    win = _window(sp, None, t_start, t_stop)
    counts = _count_tensor(sp, win, device)[0].to(torch.float64)
    r = similarity_matrix(counts, counts, "correlation").clamp(-1.0, 1.0)
    return xr.DataArray(r.cpu().numpy(), dims=("cue", "cue_other"), coords={"cue": sp.cues, "cue_other": sp.cues},
                        name="count_correlation", attrs={"long_name": "correlation of the spike counts over units",
                                                         "units": "1", **win.attrs()})


def spike_train_statistics(ds: xr.Dataset, bin_ms: float = 10.0, t_start: float = 0.0, t_stop: float | None = None,
                           device: str | torch.device = "cpu") -> xr.Dataset:
    """The spike-train statistics of a spiking run in one Dataset: ``rate`` (cue, spiking_unit; Hz),
    ``mean_rate`` (cue,), ``mean_isi_cv`` (cue,: the mean over units with a defined CV, NaN when
    none has), ``fano_factor`` (spiking_unit,), ``count_correlation`` (cue, cue_other) over the window, and
    the population PSTH ``population_psth`` (bin,) in bins of ``bin_ms``."""
    rate = firing_rates(ds, t_start, t_stop, device)
    cv = isi_cv(ds, t_start, t_stop, device)
    mean_cv = torch.nanmean(torch.as_tensor(cv.values), dim=1).numpy()
    out = xr.Dataset({
        "rate": rate,
        "mean_rate": rate.mean(SPIKING_UNIT).assign_attrs(long_name="firing rate, mean over units", units="Hz"),
        "mean_isi_cv": ("cue", mean_cv, {"long_name": "inter-spike interval CV, mean over units", "units": "1"}),
        "fano_factor": fano_factor(ds, None, t_start, t_stop, device),
        "count_correlation": count_correlations(ds, t_start, t_stop, device),
        "population_psth": psth(ds, bin_ms, population=True, t_start=t_start, t_stop=t_stop, device=device),
    })
    out.attrs.update(t_start=rate.attrs["t_start"], t_stop=rate.attrs["t_stop"], bin_ms=float(bin_ms),
                     n_spiking_units=int(ds.attrs["n_spiking_units"]))
    return out
