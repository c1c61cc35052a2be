"""Paper experiments: a parameter grid run as a sweep, then a Dataset, a figure and a report.

An experiment is a script ``experiments/NAME.py`` (``-`` in the name becomes ``_``) that defines
``EXPERIMENT = Experiment(...)``: a sweep config for the full run (point function, grid, fixed
values), the smaller grid of ``--quick``, a figure and a Markdown report of the paper's numbers
beside ours. ``neurodyn experiment NAME [--quick]`` (or :func:`run_experiment`) evaluates the
grid through :func:`neurodyn.sweep.run_sweep` into ``OUT/NAME.zarr`` (resumable, on a
LocalCluster or any Dask scheduler), then writes ``OUT/NAME.nc`` (NetCDF, written atomically),
``OUT/NAME.png`` and ``OUT/NAME.md``; ``--quick`` results are named ``NAME-quick``.

Scripts live in the source checkout's ``experiments/`` folder (or ``$NEURODYN_EXPERIMENTS``);
their point functions live in the package (:mod:`neurodyn.protocols`), so any Dask worker can
import them.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from ..files import atomic_write, writable_place

EXPERIMENTS_ENV = "NEURODYN_EXPERIMENTS"
SWEEP_TABLES = ("sweep", "grid", "zip", "fixed")


@dataclass(frozen=True)
class Experiment:
    """One paper figure or table as a sweep.

    ``config``: the full run's sweep config (tables ``sweep`` with the point ``function``,
    ``grid``, ``zip``, ``fixed``; see :mod:`neurodyn.sweep`). ``quick``: tables whose entries
    replace the full run's for ``--quick`` (a reduced grid that runs in seconds to minutes).
    ``figure(ds)`` and ``report(ds)`` (Markdown) read the finished grid; ``cost`` says what the
    full run costs, as measured.
    """

    name: str
    title: str
    config: dict
    figure: Callable[[xr.Dataset], plt.Figure]
    report: Callable[[xr.Dataset], str]
    quick: dict = field(default_factory=dict)
    cost: str = ""

    def sweep_config(self, quick: bool = False, overrides: Mapping[str, object] | None = None) -> dict:
        """The sweep config of the full run, or of ``--quick``, with a user's ``overrides``
        (:func:`override`) on top."""
        config = copy.deepcopy(self.config)
        for table, entries in (self.quick if quick else {}).items():
            if table not in SWEEP_TABLES:
                raise ValueError(f"experiment {self.name}: unknown quick table {table!r}")
            if table == "zip":
                config["zip"] = copy.deepcopy(entries)
            else:
                config.setdefault(table, {}).update(copy.deepcopy(entries))
        for name, value in (overrides or {}).items():
            override(config, name, value)
        return config


def override(config: dict, name: str, value: object) -> None:
    """Set parameter ``name`` of a sweep config where it lives: a list replaces a grid axis (or
    becomes one), a single value a fixed value (or a grid axis of one value); a zipped
    parameter cannot be set alone (its partners would no longer pair with it)."""
    grid, fixed = config.setdefault("grid", {}), config.setdefault("fixed", {})
    for dim, table in config.get("zip", {}).items():
        if name in table:
            raise ValueError(f"{name!r} is zipped with {sorted(set(table) - {name})} in dimension {dim!r}: a "
                             "zipped parameter cannot be overridden (its partners would no longer pair with it)")
    values = list(value) if isinstance(value, (list, tuple)) else None
    if name in grid or values is not None:
        fixed.pop(name, None)
        grid[name] = values if values is not None else [value]
    else:
        fixed[name] = value


def experiments_dir() -> Path:
    """Where the experiment scripts are: ``$NEURODYN_EXPERIMENTS`` or the checkout's ``experiments/``."""
    return Path(os.environ.get(EXPERIMENTS_ENV) or Path(__file__).resolve().parents[2] / "experiments")


def available_experiments() -> list[str]:
    folder = experiments_dir()
    return sorted(p.stem.replace("_", "-") for p in folder.glob("*.py") if not p.stem.startswith("_"))


def load_experiment(name: str) -> Experiment:
    """The ``EXPERIMENT`` of ``experiments/NAME.py``."""
    folder = experiments_dir()
    path = folder / f"{name.replace('-', '_')}.py"
    if not path.is_file():
        if not folder.is_dir():
            raise ValueError(f"no experiments folder at {folder}: the experiment scripts ship with the source "
                             f"checkout (git clone, pip install -e .) or set ${EXPERIMENTS_ENV}")
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(available_experiments())}")
    spec = importlib.util.spec_from_file_location(f"neurodyn_experiments.{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot load the experiment script {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    experiment = getattr(module, "EXPERIMENT", None)
    if not isinstance(experiment, Experiment):
        raise ValueError(f"{path} defines no EXPERIMENT = Experiment(...)")
    return experiment


@dataclass(frozen=True)
class ExperimentResult:
    dataset: xr.Dataset
    netcdf: Path
    figure: Path
    report: Path


def run_experiment(name: str, quick: bool = False, out: str | os.PathLike = "runs", *,
                   scheduler: str | None = None, n_workers: int = 2, threads_per_worker: int = 1,
                   progress: bool | None = None, overrides: Mapping[str, object] | None = None) -> ExperimentResult:
    """Run (or resume) an experiment's grid and write its Dataset, figure and report.
    ``overrides``: parameters set by the user (:func:`override`: a data set, a threshold, a
    narrower grid); the outputs are then named ``NAME-SUFFIX`` after a hash of them, and the
    report opens with what was overridden."""
    from ..plot import save_figure
    from ..record import save_netcdf
    from ..scale.sweep import describe_store, run_sweep

    experiment = load_experiment(name)
    config = experiment.sweep_config(quick, overrides)
    said = ", ".join(f"{k} = {v!r}" for k, v in (overrides or {}).items())
    suffix = ("-quick" if quick else "") + (f"-{hashlib.sha256(said.encode()).hexdigest()[:8]}" if said else "")
    stem = writable_place(Path(out) / (experiment.name + suffix))  # before any work
    store = run_sweep(config, stem.with_suffix(".zarr"), scheduler=scheduler,
                      n_workers=n_workers, threads_per_worker=threads_per_worker, progress=progress)
    ds = store.load()
    # The fixed values become scalar coordinates, so figures and reports read them like the axes.
    fixed = config.get("fixed", {})
    ds = ds.assign_coords({k: v for k, v in fixed.items() if k not in ds.variables and v is not None})
    ds.attrs.update(experiment=experiment.name, title=experiment.title, quick=int(quick), overrides=said)
    if (ds["status"] != 1).any():
        raise RuntimeError(describe_store(stem.with_suffix(".zarr")))
    netcdf = save_netcdf(ds.drop_vars(["error"]), stem.with_suffix(".nc"))
    figure = experiment.figure(ds)
    figure.suptitle(experiment.title + (" (--quick)" if quick else ""), fontsize=10)
    figure.tight_layout(rect=(0, 0, 1, 0.96))
    save_figure(figure, str(stem.with_suffix(".png")))
    plt.close(figure)
    report = stem.with_suffix(".md")
    overridden = f"Overridden by the user: {said} (the paper's numbers below are for its own settings).\n\n" \
        if said else ""
    text = f"# {experiment.title}{' (--quick)' if quick else ''}\n\n{overridden}{experiment.report(ds)}\n"
    atomic_write(report, lambda tmp: tmp.write_text(text))
    return ExperimentResult(ds, netcdf, stem.with_suffix(".png"), report)


# --------------------------------------------------------------------------- helpers for scripts
def over_seeds(da: xr.DataArray, dim: str = "seed") -> tuple[xr.DataArray, xr.DataArray]:
    """Mean and standard deviation over the repeats (error bars)."""
    return da.mean(dim), da.std(dim, ddof=1) if da.sizes.get(dim, 1) > 1 else xr.zeros_like(da.mean(dim))


def plot_curves(ds: xr.Dataset, variable: str, x: str, hue: str, panel: str | None = None,
                logx: bool = False, ylabel: str | None = None, title: str = "", floor: str | None = None,
                axes: Sequence[plt.Axes] | None = None) -> plt.Figure:
    """Mean +- standard deviation over seeds of ``variable`` against ``x``, one line per ``hue``
    value, one panel per ``panel`` value (titled ``title`` and the panel's value). ``floor``: a
    variable drawn dashed (averaged over everything but ``x``), such as the rate that the mean
    pattern would score."""
    panels = list(ds[panel].values) if panel else [None]
    if axes is None:
        _, grid = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
        axes = list(grid[0])
    fig = cast(plt.Figure, axes[0].figure)
    for ax, value in zip(axes, panels):
        sub = ds[variable] if value is None else ds[variable].sel({panel: value})
        mean, std = over_seeds(sub)
        for h in mean[hue].values:
            m, s = mean.sel({hue: h}), std.sel({hue: h})
            xs = m[x].values
            ax.errorbar(xs, m.values, yerr=s.values, marker="o", ms=3, capsize=2, label=str(h))
        if floor is not None:
            base = ds[floor] if value is None else ds[floor].sel({panel: value})
            base = base.mean([d for d in base.dims if d != x])
            ax.plot(base[x].values, base.values, "k--", lw=0.8, label=floor.replace("_", " "))
        ax.set_xlabel(x.replace("_", " "))
        ax.set_ylabel(ylabel or variable.replace("_", " "))
        if logx:
            ax.set_xscale("log")
        ax.set_title(", ".join(filter(None, [title, None if value is None else f"{panel} = {value}"])), fontsize=8)
    axes[-1].legend(fontsize=7, title=hue.replace("_", " "), title_fontsize=7)
    fig.tight_layout()
    return fig


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(v: object) -> str:
        return f"{v:.3g}" if isinstance(v, (float, np.floating)) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def mean_std(da: xr.DataArray, scale: float = 1.0, fmt: str = "{:.1f} ± {:.1f}") -> str:
    """``mean ± std`` over seeds of a scalar grid cell, as text."""
    mean, std = over_seeds(da)
    return fmt.format(float(mean) * scale, float(std) * scale)
