"""How a run's recorded quantities become an ``xarray.Dataset``, in memory or streamed to a Zarr
store. What is recorded is computed by :class:`~neurodyn.record.observables.Observables`; every
variable carries CF ``units`` and ``long_name`` attributes."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from ..errors import OutputExists
from .monitor import RECORDED
from .netcdf import netcdf_attr
from .observables import Observables
from .resume import discard_checkpoint, save_checkpoint


@dataclass
class Recorder:
    """Accumulates the monitored quantities, block by block, into numpy arrays.

    With ``zarr_store`` (a path) the time series stream to a Zarr store instead: once
    ``chunk_times`` recorded times are pending (whole solver blocks, so a little more), they are
    appended along ``time`` and dropped from memory, so memory stays bounded by the chunk whatever
    the run's length. Each append rewrites the consolidated metadata, so a run interrupted part
    way leaves a store that opens with the times written so far (its ``complete`` attribute is 0
    until the run finishes). The first chunk is written beside the store and renamed into place
    (a claim sweeps the folder a killed run left there).
    ``checkpoint``: the run's state, saved beside the store after each append
    (:mod:`~neurodyn.record.resume`); ``resume_rows``: go on appending to the interrupted store
    that holds this many times. ``time_offset``: added to the recorded times (a run taken on from
    where another ended).
    """

    observables: Observables
    time_units: str = "ms"
    zarr_store: str | os.PathLike | None = None
    chunk_times: int = 64
    checkpoint: Callable[[], dict] | None = None
    resume_rows: int = 0
    time_offset: float = 0.0
    _store: dict[str, list[np.ndarray]] = field(default_factory=dict, init=False)
    _times: list[np.ndarray] = field(default_factory=list, init=False)
    _written: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.zarr_store is not None:
            self.zarr_store = Path(self.zarr_store)
            if self.chunk_times < 1:
                raise ValueError(f"chunk_times must be >= 1, got {self.chunk_times}")
            if self.resume_rows:
                self._written = self.resume_rows
            elif self.zarr_store.exists():
                raise OutputExists(f"{self.zarr_store} exists: a run streams into a new store (remove it, or "
                                   "choose another path)")

    def _put(self, name: str, value: torch.Tensor) -> None:
        self._store.setdefault(name, []).append(value.detach().cpu().numpy())

    def observe(self, times: torch.Tensor, v: torch.Tensor, h: torch.Tensor | None,
                speed: torch.Tensor | None) -> None:
        """Record states at ``times`` (T,): ``v`` (T, B, I), ``h`` (T, B, N) or None, ``speed`` (T, B)."""
        self._times.append(times.detach().cpu().numpy().astype(float) + self.time_offset)
        for name, value in self.observables(times, v, h, speed).items():
            self._put(name, value)
        if self.zarr_store is not None and sum(len(x) for x in self._times) >= self.chunk_times:
            self._flush()

    def _flush(self) -> None:
        """Append the pending times to the Zarr store and forget them."""
        if not self._times:
            return
        part = self._frame()
        part.attrs["complete"] = 0  # an append rewrites the attributes
        assert self.zarr_store is not None  # (only a streaming recorder flushes)
        store = Path(self.zarr_store)
        # The first chunk is laid out beside, and renamed into place once its checkpoint is saved.
        beside = store.with_name(f".{store.name}.{os.getpid()}.tmp") if self._written == 0 else None
        if beside is not None:
            part.to_zarr(beside, mode="w", zarr_format=2, consolidated=True)
        else:
            part.to_zarr(store, append_dim="time", zarr_format=2, consolidated=True)
        self._written += part.sizes["time"]
        if self.checkpoint is not None:
            save_checkpoint(store, {"rows": self._written, **self.checkpoint()})
        if beside is not None:
            os.replace(beside, store)
        self._store.clear()
        self._times.clear()

    def finish(self, ds: xr.Dataset) -> xr.Dataset:
        """Complete a streamed run: write what ``ds`` adds to the store (final states, per-cue
        variables, attributes), mark it complete and open it lazily. Without a store: ``ds``."""
        if self.zarr_store is None:
            return ds
        with xr.open_zarr(self.zarr_store, consolidated=True) as stored:
            # Every variable the appends did not write (one an interrupted finish wrote is written again).
            extra = ds[[name for name in ds.data_vars if name not in stored.data_vars or "time" not in ds[name].dims]]
        extra.attrs = {k: netcdf_attr(v) for k, v in {**ds.attrs, "complete": 1}.items()}
        extra.to_zarr(self.zarr_store, mode="a", zarr_format=2, consolidated=True)
        discard_checkpoint(Path(self.zarr_store))
        return xr.open_zarr(self.zarr_store, consolidated=True)

    def dataset(self) -> xr.Dataset:
        """The recorded time series as a Dataset (without the run's final-state variables); for a
        streamed run, the store opened lazily."""
        if self.zarr_store is None:
            return self._frame()
        self._flush()
        return xr.open_zarr(self.zarr_store, consolidated=True)

    def _frame(self) -> xr.Dataset:
        """The pending time series as a Dataset."""
        obs = self.observables
        coords: dict[str, tuple] = {
            "time": ("time", np.concatenate(self._times), {"units": self.time_units, "long_name": "time"}),
            "cue": ("cue", np.arange(obs.cue.batch), {"long_name": "cue index", "units": "1"}),
        }
        # A subset of value units gets its own dimension, so that final states keep ``unit``.
        unit_dim = "unit" if obs.units is None else "unit_subset"
        units_idx = np.arange(obs.network.n_features) if obs.units is None else obs.units.numpy()
        mem_dim = "rank" if obs.top_k is not None else "memory"
        mem_idx = (np.arange(obs.top_k) if obs.top_k is not None else
                   np.arange(obs.network.n_memories) if obs.memories is None else obs.memories.numpy())
        named = {"UNIT": unit_dim, "MEMORY": mem_dim}
        data_vars = {}
        for name, chunks in self._store.items():
            row = RECORDED[name]
            dims = tuple(named.get(d, d) for d in row.dims)
            data_vars[name] = (dims, np.concatenate(chunks, axis=0), {"long_name": row.long_name, "units": row.units})
        if any(name in data_vars for name in ("v", "g")):
            coords[unit_dim] = (unit_dim, units_idx, {"long_name": "value neuron index", "units": "1"})
        if any(name in data_vars for name in ("h", "f")):
            label = "rank of memory activation" if obs.top_k is not None else "memory neuron index"
            coords[mem_dim] = (mem_dim, mem_idx, {"long_name": label, "units": "1"})
        if "overlap" in data_vars:
            coords["pattern"] = ("pattern", obs.patterns.numpy(), {"long_name": "stored pattern index",
                                                                   "units": "1"})
        return xr.Dataset(data_vars, coords=coords)
