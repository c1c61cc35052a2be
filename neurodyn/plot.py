"""Figures from a recorded Dataset, labelled from its CF attributes."""

from __future__ import annotations

import json
import textwrap
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr


def image_shape(ds: xr.Dataset) -> tuple[int, ...] | None:
    """The (C, H, W) shape of a cue as an image, if the run recorded one in ``attrs``."""
    shape = ds.attrs.get("image_shape")
    return tuple(json.loads(shape)) if isinstance(shape, str) else None


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
        energy.sel(cue=cue).plot(ax=ax, color="0.6", lw=0.6, alpha=0.6, add_legend=False)
    energy.mean("cue").plot(ax=ax, color="C3", lw=2, label="mean over cues")
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
        panels: list[object] = [ds[q].sel(cue=cue).values for q in queries]
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


def save_figure(fig: plt.Figure, path: str) -> None:
    fig.savefig(path, dpi=120)
    plt.close(fig)
