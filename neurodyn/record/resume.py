"""Streamed runs that resume: the checkpoint a streamed run keeps beside its Zarr store.

With every chunk of recorded times appended to the store, the run saves a checkpoint beside the
store (``.NAME.resume.pt``, written by :func:`~neurodyn.files.atomic_write`; Zarr warns about
files of its own inside a store): the rows written, the
run's fingerprint (what it integrates: the model, the cues, the method, the monitor, the time
grid) and its engine's snapshot (:meth:`~neurodyn.solve.Integration.snapshot`: every per-cue
time, step size, status and counter, so that the rest of the run is the uninterrupted one's, bit
for bit). A rerun of the same run on an interrupted store (``complete = 0``) cuts any times
written after the checkpoint and goes on from it; the checkpoint goes when the run completes.

Why a checkpoint of our own: the engines are generators over the recording grid with state on
the device; torch's ``state_dict`` convention (a dict of tensors, ``torch.save``) fits them, and
neither torchdiffeq nor xarray keeps a solver's state.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import xarray as xr
import zarr

from ..errors import OutputExists
from ..files import atomic_write
from .provenance import digest


def checkpoint_path(store: Path) -> Path:
    """Where the checkpoint of a streamed run into ``store`` lies (``.NAME.resume.pt`` beside it)."""
    return store.with_name(f".{store.name}.resume.pt")


def save_checkpoint(store: Path, payload: dict) -> None:
    """Write the checkpoint of ``store`` atomically (a reader sees the old one or the new)."""
    atomic_write(checkpoint_path(store), lambda tmp: torch.save(payload, tmp))


def discard_checkpoint(store: Path) -> None:
    checkpoint_path(store).unlink(missing_ok=True)


def interrupted_run(store: Path, fingerprint: dict[str, str]) -> dict | None:
    """The checkpoint to resume a run of ``fingerprint`` from, or None when ``store`` does not
    exist. Raises :class:`~neurodyn.errors.OutputExists` naming the store when it is complete,
    is not an interrupted run, or is one of other settings. Cuts the store back to the
    checkpoint's rows (times appended after it, by a run killed before it was saved)."""
    if not store.exists():
        discard_checkpoint(store)  # (one left by a run killed as it laid the store out)
        return None
    try:
        complete = int(xr.open_zarr(store, consolidated=True).attrs.get("complete", 0))
    except (OSError, ValueError, KeyError) as err:
        raise OutputExists(f"{store} exists and is not a run's store ({err}); remove it or choose another "
                           "path") from None
    if complete:
        discard_checkpoint(store)  # (one left by a run killed as it finished)
        raise OutputExists(f"{store} exists and holds a complete run; remove it or choose another path")
    if not checkpoint_path(store).exists():
        raise OutputExists(f"{store} holds an interrupted run that cannot resume (there is no "
                           f"{checkpoint_path(store).name} beside it: it was written before runs could resume, "
                           "or its checkpoint was removed); remove it to run again")
    checkpoint = torch.load(checkpoint_path(store), map_location="cpu", weights_only=False)
    changed = sorted(k for k in fingerprint.keys() | checkpoint["fingerprint"].keys()
                     if fingerprint.get(k) != checkpoint["fingerprint"].get(k))
    if changed:
        raise OutputExists(f"{store} holds an interrupted run with another {', '.join(changed)}; rerun it "
                           "with the same settings to complete it, or remove it (or choose another path)")
    _cut(store, checkpoint["rows"])
    return checkpoint


def _cut(store: Path, rows: int) -> None:
    """Cut every array along ``time`` to ``rows`` and consolidate the metadata again."""
    group = zarr.open_group(store, mode="r+", zarr_format=2, use_consolidated=False)
    for _, array in group.arrays():
        dims = array.attrs.get("_ARRAY_DIMENSIONS")
        if isinstance(dims, list) and "time" in dims and array.shape[dims.index("time")] != rows:
            shape = list(array.shape)
            shape[dims.index("time")] = rows
            array.resize(tuple(shape))
    zarr.consolidate_metadata(os.fspath(store), zarr_format=2)


def fingerprint_parts(**parts: Any) -> dict[str, str]:
    """One digest per named part of a run (each part a tuple of values)."""
    return {name: digest(*(value if isinstance(value, tuple) else (value,))) for name, value in parts.items()}


__all__ = ["checkpoint_path", "discard_checkpoint", "fingerprint_parts", "interrupted_run", "save_checkpoint"]
