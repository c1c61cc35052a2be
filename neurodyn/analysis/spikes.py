"""Spike-train statistics of a spiking run: counts, rates, PSTH, ISI CV, Fano factor, count
correlations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import xarray as xr

from .compare import similarity_matrix

if TYPE_CHECKING:
    pass

# A spiking run records its spikes as events (dim ``spike``): ``spike_time`` (ms), ``spike_cue``
# and ``spike_unit``, with ``attrs["n_spiking_units"]`` memory neurons. Everything below counts
# them in a window (t_start, t_stop] cut into bins (a, b], left-open like ``population_rate``.
# Results index the memory neurons along ``spiking_unit``, as the record's per-unit ``rate`` does
# (``unit`` is the value neurons' dimension).
SPIKING_UNIT = "spiking_unit"


@dataclass(frozen=True)
class SpikeEvents:
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


def spike_events(ds: xr.Dataset) -> SpikeEvents:
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
    return SpikeEvents(time[kept], order[at[kept]], unit[kept], n_units, cues, duration)


def _window(sp: SpikeEvents, bin_ms: float | None, t_start: float, t_stop: float | None) -> _Window:
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


def _binned(sp: SpikeEvents, win: _Window, device: str | torch.device) -> tuple[torch.Tensor, ...]:
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


def _count_tensor(sp: SpikeEvents, win: _Window, device: str | torch.device) -> torch.Tensor:
    """Spike counts (bin, cue, unit) as int64."""
    b, c, u, _ = _binned(sp, win, device)
    n_cues, n = len(sp.cues), sp.n_units
    flat = (b * n_cues + c) * n + u
    return torch.bincount(flat, minlength=win.n_bins * n_cues * n).reshape(win.n_bins, n_cues, n)


def _bin_coord(win: _Window) -> tuple[str, np.ndarray, dict[str, str]]:
    return ("bin", win.centres(), {"long_name": "bin centre (time since cue onset)", "units": "ms"})


def _unit_coord(idx: np.ndarray) -> tuple[str, np.ndarray, dict[str, str]]:
    return (SPIKING_UNIT, idx, {"long_name": "memory neuron index", "units": "1"})


def unit_subset(units: Sequence[int] | None, n_units: int) -> np.ndarray:
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
    sp = spike_events(ds)
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
    sp = spike_events(ds)
    win = _window(sp, bin_ms, t_start, t_stop)
    idx = unit_subset(units, sp.n_units)
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
    sp = spike_events(ds)
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
    sp = spike_events(ds)
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
    sp = spike_events(ds)
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
