"""The Lyapunov check of a recorded run and the energy of noisy runs across trials."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from ..solve.status import FAILED


@dataclass(frozen=True)
class LyapunovReport:
    """The largest energy increase between consecutive recorded times, against a tolerance.

    ``tolerance`` at each interval is ``factor * ((rtol + eps) * S + atol)`` where ``S`` is the sum
    of the absolute energy components there (the energy is a difference of such terms, so its
    numerical error scales with them), ``rtol``/``atol`` are the solver's tolerances (zero for
    fixed-step methods) and ``eps`` the float precision. ``worst_ratio`` is the largest
    increase divided by its tolerance: above 1 the energy rose beyond what numerics explain.
    ``non_finite``: the energy of a cue that did not fail became NaN or infinite at ``time``
    (``max_increase`` holds that value): never monotone, whatever the theory says. ``known``:
    whether theory decides (false for a model whose parts do not declare the facts it needs;
    ``reason`` then says which).
    """

    monotone: bool
    guaranteed: bool
    worst_ratio: float
    max_increase: float
    tolerance: float
    time: float
    cue: int
    reason: str
    non_finite: bool = False
    known: bool = True

    @property
    def verdict(self) -> str:
        if self.non_finite:
            return (f"energy becomes {self.max_increase} at t={self.time:g}, cue {self.cue}: the state diverged "
                    "or overflowed (a Lyapunov function stays finite); try float64, a smaller beta or tighter "
                    "tolerances")
        if self.monotone:
            return "energy non-increasing" + (" (guaranteed by theory)" if self.guaranteed else
                                              " (observed; not guaranteed by theory)" if self.known else
                                              f" (observed; {self.reason})")
        head = (f"energy INCREASES by {self.max_increase:.3g} (tolerance {self.tolerance:.3g}) "
                f"at t={self.time:g}, cue {self.cue}")
        if self.guaranteed:
            return head + ": theory guarantees a decrease, so this is solver or float error; tighten the tolerances"
        return head + (f": expected, no Lyapunov guarantee ({self.reason})" if self.known else f" ({self.reason})")

    def __str__(self) -> str:
        return self.verdict


def lyapunov_check(ds: xr.Dataset, factor: float = 10.0) -> LyapunovReport:
    """Check that the recorded ``energy`` never increases beyond the solver's tolerance."""
    if "energy" not in ds:
        raise ValueError("the Dataset has no 'energy': record it with Monitor(variables=(..., 'energy'))")
    energy = ds["energy"].transpose("time", "cue").values.astype(np.float64)
    if energy.shape[0] < 2:
        raise ValueError("the Lyapunov check needs at least two recorded times")
    guaranteed = bool(int(ds.attrs.get("lyapunov_guaranteed", 0)))
    known = bool(int(ds.attrs.get("lyapunov_known", 1)))
    reason = str(ds.attrs.get("lyapunov_reason", ""))
    failed = ds["solver_status"].values == FAILED if "solver_status" in ds else np.zeros(energy.shape[1], bool)
    blown = ~np.isfinite(energy) & ~failed[None, :]  # a failed cue's record ends in NaN by design
    if blown.any():
        ti, ci = np.argwhere(blown)[0]
        return LyapunovReport(monotone=False, guaranteed=guaranteed, worst_ratio=float("inf"),
                              max_increase=float(energy[ti, ci]), tolerance=float("nan"),
                              time=float(ds["time"].values[ti]), cue=int(ds["cue"].values[ci]), reason=reason,
                              non_finite=True, known=known)
    parts = [ds[k].transpose("time", "cue").values.astype(np.float64) for k in ds.data_vars
             if str(k).startswith("energy_")]
    scale = np.abs(np.stack(parts)).sum(0) if parts else np.abs(energy)
    eps = float(np.finfo(ds["energy"].dtype).eps)
    rtol, atol = float(ds.attrs.get("rtol", 0.0)), float(ds.attrs.get("atol", 0.0))
    with np.errstate(over="ignore"):  # absurd tolerances (atol=1e307) make an infinite one: nothing fails it
        tol = factor * ((rtol + eps) * np.maximum(scale[1:], scale[:-1]) + atol)
    rise = np.diff(energy, axis=0)
    ratio = rise / tol
    if np.isnan(ratio).all():
        raise ValueError("no cue has a finite energy record to check (did every cue fail? see solver_status)")
    ti, ci = np.unravel_index(np.nanargmax(ratio), ratio.shape)
    worst = float(ratio[ti, ci])
    return LyapunovReport(
        monotone=bool(worst <= 1.0),
        guaranteed=guaranteed,
        worst_ratio=worst,
        max_increase=float(rise[ti, ci]),
        tolerance=float(tol[ti, ci]),
        time=float(ds["time"].values[ti + 1]),
        cue=int(ds["cue"].values[ci]),
        reason=reason,
        known=known,
    )


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
