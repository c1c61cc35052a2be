"""Analyses of a recorded run: Lyapunov check, retrieval metrics, nearest stored pattern."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr

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
    if "target" in ds:
        r = retrieval(ds, threshold)
        lines.append(f"retrieval: {r.attrs['rate']:.1%} of cues within sse <= {r.attrs['sse_limit']:.3g} "
                     f"(UHN's {threshold:g} per 784 pixels; median sse {float(r['sse'].median()):.3g})")
    if "energy" in ds:
        lines.append(f"Lyapunov: {lyapunov_check(ds).verdict}")
    return "\n".join(lines)
