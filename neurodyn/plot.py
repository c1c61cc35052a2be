"""Figures from a recorded Dataset or an analysis of one, labelled from their CF attributes."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.ticker import MaxNLocator

from .files import atomic_write


def image_shape(ds: xr.Dataset) -> tuple[int, ...] | None:
    """The (C, H, W) shape of a cue as an image: the run's ``image_shape`` attribute (a recall
    job sets it), else a square grey (1, s, s) image of side 4 or more, or a colour (3, s, s) one
    of side 8 or more, when the number of units is one (a Python run of 8x8 digits draws them as
    digits), else None (drawn as a vector)."""
    shape = ds.attrs.get("image_shape")
    if isinstance(shape, str):
        return tuple(json.loads(shape))
    units = ds.sizes.get("unit", 0)
    for channels, smallest in ((1, 4), (3, 8)):
        side = round((units / channels) ** 0.5)
        if side >= smallest and channels * side * side == units:
            return (channels, side, side)
    return None


def _as_image(vec: np.ndarray, shape: Sequence[int] | None) -> np.ndarray:
    if shape is None:  # not an image: show the vector as one row
        return vec[None, :]
    c, h, w = shape
    img = vec.reshape(c, h, w).transpose(1, 2, 0)
    return img[..., 0] if c == 1 else np.clip(img, 0.0, 1.0)


def plot_energy(ds: xr.Dataset, ax: plt.Axes | None = None, max_cues: int = 50) -> plt.Axes:
    """Energy against time: one thin line per cue (up to ``max_cues``) and their mean."""
    ax = ax or plt.gca()
    energy = ds["energy"]
    for cue in energy["cue"].values[:max_cues]:
        # ignore[call-arg] (here, below and in plot_metastability): xarray declares DataArray.plot's
        # __call__ through functools.wraps, which mypy reads as needing another self
        energy.sel(cue=cue).plot(ax=ax, color="0.6", lw=0.6, alpha=0.6, add_legend=False)  # type: ignore[call-arg]
    energy.mean("cue").plot(ax=ax, color="C3", lw=2, label="mean over cues")  # type: ignore[call-arg]
    ax.set_title("energy")
    ax.legend(loc="upper right", fontsize="small")
    return ax


def plot_recall(ds: xr.Dataset, cues: Sequence[int] | None = None, n_snapshots: int = 4) -> plt.Figure:
    """Cue, state snapshots over time, recalled pattern and target for a few cues; energy below.

    Snapshots need ``v`` recorded on all units; images are drawn with the ``image_shape`` attribute.
    """
    shape = image_shape(ds)
    cues = list(ds["cue"].values[:4] if cues is None else cues)
    snaps = []
    if "v" in ds and "unit" in ds["v"].dims:
        idx = np.unique(np.linspace(0, ds.sizes["time"] - 1, n_snapshots + 2).round().astype(int))[1:-1]
        snaps = [int(i) for i in idx]
    columns = ["cue"] + [f"t={float(ds['time'][i]):.3g}" for i in snaps] + ["recalled"]
    columns += ["target"] if "target" in ds else []
    rows = len(cues) + (1 if "energy" in ds else 0)
    fig = plt.figure(figsize=(1.6 * len(columns) + 0.5, 1.6 * rows + 0.4), constrained_layout=True)
    grid = fig.add_gridspec(rows, len(columns))
    cmap = "gray" if shape is None or shape[0] == 1 else None
    for r, cue in enumerate(cues):
        panels = [ds["query"].sel(cue=cue).values]
        panels += [ds["v"].isel(time=i).sel(cue=cue).values for i in snaps]
        panels += [ds["recalled"].sel(cue=cue).values]
        panels += [ds["target"].sel(cue=cue).values] if "target" in ds else []
        for c, (title, vec) in enumerate(zip(columns, panels)):
            ax = fig.add_subplot(grid[r, c])
            ax.imshow(_as_image(vec, shape), cmap=cmap, vmin=0.0 if shape else None,
                      vmax=1.0 if shape else None, aspect="equal" if shape else "auto")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize="small")
            if c == 0:
                ax.set_ylabel(f"cue {cue}", fontsize="small")
    if "energy" in ds:
        plot_energy(ds, fig.add_subplot(grid[-1, :]))
    fig.suptitle(ds.attrs.get("title", "recall"), fontsize="medium")
    return fig


def _text_panel(ax: plt.Axes, text: str) -> None:
    ax.text(0.5, 0.5, textwrap.fill(text, 22), ha="center", va="center", fontsize="x-small", wrap=True)
    ax.set_axis_off()


def plot_encoded_recall(ds: xr.Dataset, cues: Sequence[int] | None = None) -> plt.Figure:
    """Recall through a codec: the query stimulus (image or caption), the read-out of the final
    state and of the target memory, with the final state's kind; energy below."""
    cues = list(ds["cue"].values[:6] if cues is None else cues)
    queries = [name for name in ds.data_vars if str(name).startswith("query_")]
    columns = [str(q).removeprefix("query_") for q in queries] + ["recalled"]
    columns += ["target"] if "output_target" in ds else []
    rows = len(cues) + (1 if "energy" in ds else 0)
    fig = plt.figure(figsize=(1.8 * len(columns) + 0.5, 1.8 * rows + 0.4), constrained_layout=True)
    grid = fig.add_gridspec(rows, len(columns))
    for r, cue in enumerate(cues):
        panels: list[np.ndarray] = [ds[q].sel(cue=cue).values for q in queries]
        panels += [ds["output"].sel(cue=cue).values]
        panels += [ds["output_target"].sel(cue=cue).values] if "output_target" in ds else []
        for c, (title, value) in enumerate(zip(columns, panels)):
            ax = fig.add_subplot(grid[r, c])
            if np.ndim(value) == 0:
                _text_panel(ax, str(value))
            else:
                ax.imshow(_as_image(value.ravel(), value.shape), cmap="gray", vmin=0.0, vmax=1.0)
                ax.set_xticks([])
                ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize="small")
            if title == "recalled" and "state" in ds:
                label = f"{ds['state'].sel(cue=cue).item()} (PR {float(ds['participation_ratio'].sel(cue=cue)):.2g})"
                if "recalled_text" in ds:
                    label = textwrap.fill(str(ds["recalled_text"].sel(cue=cue).item()), 30) + "\n" + label
                ax.set_xlabel(label, fontsize="x-small")
    if "energy" in ds:
        plot_energy(ds, fig.add_subplot(grid[-1, :]))
    fig.suptitle(f"{ds.attrs.get('title', 'recall')} through {ds.attrs.get('codec', 'a codec')}", fontsize="medium")
    return fig


def _label(da: xr.DataArray) -> str:
    """``long_name [units]``, as xarray labels its own plots."""
    name = da.attrs.get("long_name", da.name or "")
    units = da.attrs.get("units")
    return f"{name} [{units}]" if units else str(name)


def plot_completion_curve(res: xr.Dataset, ax: plt.Axes | None = None, max_memories: int = 50) -> plt.Axes:
    """Pattern completion (:func:`~neurodyn.probes.pattern_completion`): the fraction recalled
    against the fraction of the pattern given, one thin line per memory (up to ``max_memories``)
    and the mean; the output's and the cue's mean overlap with the target for comparison."""
    ax = ax or plt.gca()
    x = res["fraction"].values
    for memory in res["memory"].values[:max_memories]:
        ax.plot(x, res["success_rate"].sel(memory=memory).values, color="0.6", lw=0.6, alpha=0.6)
    ax.plot(x, res["mean_success"].values, "o-", color="C3", lw=2, label="fraction recalled")
    ax.plot(x, res["mean_overlap"].values, "s--", color="C0", label="output overlap with target")
    ax.plot(x, res["mean_cue_overlap"].values, ":", color="C2", label="cue overlap with pattern")
    ax.set_xlabel(_label(res["fraction"]))
    ax.set_ylabel("fraction recalled / cosine overlap [1]")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"pattern completion ({res.attrs.get('mode', '')})")
    ax.legend(loc="lower right", fontsize="small")
    return ax


def plot_separation_curve(res: xr.Dataset, ax: plt.Axes | None = None) -> plt.Axes:
    """Pattern separation (:func:`~neurodyn.probes.pattern_separation`): output overlap against
    input overlap, one dot per pair, the binned mean and the identity line (below it: separation,
    above it: completion)."""
    ax = ax or plt.gca()
    x, y = res["input_overlap"].values, res["output_overlap"].values
    ax.scatter(x, y, s=8, color="0.5", alpha=0.5, label="pairs")
    filled = res["count"].values > 0
    ax.plot(res["binned_input_overlap"].values[filled], res["binned_output_overlap"].values[filled], "o-",
            color="C3", lw=2, label="binned mean")
    finite = np.concatenate([x[np.isfinite(x)], y[np.isfinite(y)]])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="identity")
    ax.set_xlabel(_label(res["input_overlap"]))
    ax.set_ylabel(_label(res["output_overlap"]))
    ax.set_title(f"pattern separation (index {res.attrs.get('separation_index', float('nan')):.3g})")
    ax.legend(loc="upper left", fontsize="small")
    return ax


def plot_separability(res: xr.Dataset, ax: plt.Axes | None = None, bins: int = 40) -> plt.Axes:
    """Separability (:func:`~neurodyn.probes.separability`): overlaid histograms (densities) of
    the self and the cross similarities, with d' and the AUROC in the title."""
    ax = ax or plt.gca()
    own, cross = res["self"].values, res["cross"].values
    edges = np.histogram_bin_edges(np.concatenate([own, cross]), bins=bins)
    ax.hist(cross, bins=edges.tolist(), density=True, alpha=0.5, color="C0", label=f"cross (n={cross.size})")
    ax.hist(own, bins=edges.tolist(), density=True, alpha=0.5, color="C3", label=f"self (n={own.size})")
    ax.set_xlabel(f"{res.attrs.get('similarity', res.attrs.get('metric', 'similarity'))} [1]")
    ax.set_ylabel("density")
    ax.set_title(f"separability: d'={res.attrs.get('d_prime', float('nan')):.3g}, "
                 f"AUROC={res.attrs.get('auroc', float('nan')):.3g}")
    ax.legend(loc="upper left", fontsize="small")
    return ax


def plot_basins(res: xr.Dataset, ax: plt.Axes | None = None, max_memories: int = 50) -> plt.Axes:
    """Basins of attraction (:func:`~neurodyn.probes.basin_of_attraction`): the fraction of
    probes that return against their distance, one thin line per memory and the mean, with the
    median basin radius."""
    ax = ax or plt.gca()
    x = res["distance"].values
    for memory in res["memory"].values[:max_memories]:
        ax.plot(x, res["success_rate"].sel(memory=memory).values, color="0.6", lw=0.6, alpha=0.6)
    ax.plot(x, res["mean_success"].values, "o-", color="C3", lw=2, label="mean over memories")
    radius = float(np.median(res["radius"].values))
    ax.axvline(radius, color="C0", ls="--", lw=1, label=f"median radius {radius:.3g}")
    ax.axhline(float(res.attrs.get("level", 0.5)), color="0.3", ls=":", lw=1)
    ax.set_xlabel(_label(res["distance"]))
    ax.set_ylabel(_label(res["success_rate"]))
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"basins of attraction ({res.attrs.get('perturbation', '')}, {res.attrs.get('mode', '')})")
    ax.legend(loc="lower left", fontsize="small")
    return ax


def plot_metastability(ds: xr.Dataset, cues: Sequence[int] | None = None, max_cues: int = 20) -> plt.Figure:
    """Participation ratio and activation entropy against time, one line per cue (up to
    ``max_cues``), with the mixture threshold. ``ds``: a :func:`~neurodyn.analysis.metastability`
    Dataset, or a recorded run with ``f`` (analysed here)."""
    from .analysis import metastability

    met = ds if "entropy" in ds and "participation_ratio" in ds else metastability(ds)
    cues = list(met["cue"].values[:max_cues] if cues is None else cues)
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(6.4, 5.2), constrained_layout=True)
    for i, cue in enumerate(cues):
        color = f"C{i % 10}"
        # ignore[call-arg]: DataArray.plot's __call__ is typed through functools.wraps (see plot_energy)
        met["participation_ratio"].sel(cue=cue).plot(ax=top, color=color, lw=1,  # type: ignore[call-arg]
                                                     add_legend=False)
        met["entropy"].sel(cue=cue).plot(ax=bottom, color=color, lw=1, add_legend=False)  # type: ignore[call-arg]
    ratio = float(met.attrs.get("mixture_ratio", 1.5))
    top.axhline(ratio, color="0.3", ls=":", lw=1, label=f"mixture (ratio >= {ratio:g})")
    bottom.axhline(float(np.log(2.0)), color="0.3", ls=":", lw=1, label="log 2: even mixture of two")
    top.set_title("participation ratio")
    bottom.set_title("entropy of the memory activations")
    top.set_xlabel("")
    top.legend(loc="upper right", fontsize="small")
    bottom.legend(loc="upper right", fontsize="small")
    fig.suptitle(f"metastability ({len(cues)} cues)", fontsize="medium")
    return fig


# ----------------------------------------------------------------------------- spiking runs
def _shown_cues(ds: xr.Dataset, cues: int | Sequence[int] | None, max_cues: int) -> list:
    """The cue labels to draw: the given one(s), or the first ``max_cues``."""
    if cues is None:
        return list(ds["cue"].values[:max_cues])
    if np.ndim(cues) == 0:  # an int, a numpy integer or a 0-d array: isinstance(cues, int) would miss some
        return [cues]
    return list(cast("Sequence[int]", cues))


def plot_raster(ds: xr.Dataset, cues: int | Sequence[int] | None = None, ax: plt.Axes | None = None,
                max_cues: int = 10, units: Sequence[int] | None = None) -> plt.Axes:
    """Spike raster of a spiking run: a tick per spike at (time, unit), one colour per cue (the
    first ``max_cues`` by default; one cue is drawn in black). ``units``: only these units."""
    from .analysis import spike_events, unit_subset

    ax = ax or plt.gca()
    sp = spike_events(ds)
    shown = _shown_cues(ds, cues, max_cues)
    wanted = np.isin(sp.unit, unit_subset(units, sp.n_units))
    index = ds.indexes["cue"]
    for i, cue in enumerate(shown):
        mine = wanted & (sp.cue == index.get_loc(cue))
        ax.scatter(sp.time[mine], sp.unit[mine], marker="|", s=12, linewidths=0.8,
                   color="k" if len(shown) == 1 else f"C{i % 10}", label=f"cue {cue}")
    ax.set_xlim(0.0, sp.duration)
    ax.set_ylim(-0.5, sp.n_units - 0.5)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("time [ms]")
    ax.set_ylabel("spiking unit")
    ax.set_title(f"spikes, cue {shown[0]}" if len(shown) == 1 else f"spikes ({len(shown)} cues)")
    if 1 < len(shown) <= 10:
        ax.legend(loc="upper right", fontsize="small", markerscale=1.5)
    return ax


def plot_rates(ds: xr.Dataset, ax: plt.Axes | None = None, cues: int | Sequence[int] | None = None,
               max_cues: int = 10) -> plt.Axes:
    """The recorded ``population_rate`` against time, one step line per cue (the first
    ``max_cues`` by default); each value holds for the bin that ends at its time."""
    if "population_rate" not in ds:
        raise ValueError("the Dataset has no 'population_rate': it comes from a spiking run")
    ax = ax or plt.gca()
    rate = ds["population_rate"]
    shown = _shown_cues(ds, cues, max_cues)
    for i, cue in enumerate(shown):
        ax.step(ds["time"].values, rate.sel(cue=cue).values, where="pre", lw=1, color=f"C{i % 10}",
                label=f"cue {cue}")
    ax.set_xlabel(f"time [{ds['time'].attrs.get('units', 'ms')}]")
    ax.set_ylabel(f"population rate [{rate.attrs.get('units', 'Hz')}]")
    ax.set_title("population rate")
    if 1 < len(shown) <= 10:
        ax.legend(loc="upper right", fontsize="small")
    return ax


def plot_psth(ds: xr.Dataset, bin_ms: float = 10.0, ax: plt.Axes | None = None,
              units: Sequence[int] | None = None) -> plt.Axes:
    """Peri-stimulus time histogram (:func:`~neurodyn.analysis.psth`) over all cues: the
    population's rate (summed over units) by default, or one histogram per unit of ``units``."""
    from .analysis import psth

    ax = ax or plt.gca()
    res = psth(ds, bin_ms, units=units, population=units is None)
    edges = res.attrs["t_start"] + bin_ms * np.arange(res.sizes["bin"] + 1)
    if units is None:
        ax.stairs(res.values, edges, fill=True, alpha=0.6, color="C0", label="population")
    else:
        for i, (unit, rate) in enumerate(zip(units, res.transpose(..., "bin").values)):
            ax.stairs(rate, edges, color=f"C{i % 10}", label=f"unit {unit}")
        if len(units) <= 10:
            ax.legend(loc="upper right", fontsize="small")
    ax.set_xlabel("time since cue onset [ms]")
    ax.set_ylabel(f"{res.attrs['long_name']} [Hz]")
    ax.set_title(f"PSTH ({bin_ms:g} ms bins, {res.attrs['n_trials']} cues)")
    return ax


def plot_spiking_recall(ds: xr.Dataset, cues: Sequence[int] | None = None) -> plt.Figure:
    """A spiking run's recall, one row per cue (the first 4 by default): its spike raster, the
    cue and the recalled pattern (and the target, when recorded) as images, or as line plots
    when the run has no ``image_shape``."""
    shape = image_shape(ds)
    cues = list(ds["cue"].values[:4] if cues is None else cues)
    columns = ["query", "recalled"] + (["target"] if "target" in ds else [])
    titles = {"query": "cue", "recalled": "recalled", "target": "target"}
    fig = plt.figure(figsize=(5.0 + 1.8 * len(columns), 1.9 * len(cues) + 0.4), constrained_layout=True)
    grid = fig.add_gridspec(len(cues), 1 + len(columns), width_ratios=[3.0] + [1.0] * len(columns))
    cmap = "gray" if shape is None or shape[0] == 1 else None
    for r, cue in enumerate(cues):
        raster = plot_raster(ds, cues=cue, ax=fig.add_subplot(grid[r, 0]))
        raster.set_title(f"spikes, cue {cue}" if r == 0 else "", fontsize="small")
        raster.set_ylabel(f"cue {cue}: unit", fontsize="small")
        if r < len(cues) - 1:
            raster.set_xlabel("")
        for c, name in enumerate(columns, start=1):
            ax = fig.add_subplot(grid[r, c])
            vec = ds[name].sel(cue=cue).values
            if shape is None:
                ax.plot(np.arange(vec.size), vec, lw=1, color="C0")
                ax.set_xlabel("unit" if r == len(cues) - 1 else "", fontsize="small")
            else:
                ax.imshow(_as_image(vec, shape), cmap=cmap, vmin=0.0, vmax=1.0)
                ax.set_xticks([])
                ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[name], fontsize="small")
    fig.suptitle(ds.attrs.get("title", "spiking recall"), fontsize="medium")
    return fig


def save_figure(fig: plt.Figure, path: str, *, overwrite: bool = True) -> None:
    """Save ``fig`` atomically (:func:`neurodyn.files.atomic_write`; the format from the file's
    suffix, PNG without one) and close it."""
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format=fmt), overwrite=overwrite)
    finally:
        plt.close(fig)
