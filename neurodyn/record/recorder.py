"""How a run's states become an ``xarray.Dataset``: recorded quantities are reduced on the fly
(index subsets, top-k, overlaps, energy), so what is kept per time point is what was asked for,
not the whole state. Every variable carries CF ``units`` and ``long_name`` attributes."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import xarray as xr

from ..network import Cue, Network, State
from .monitor import LONG_NAMES, Monitor
from .netcdf import netcdf_attr

if TYPE_CHECKING:
    pass

def _indices(name: str, idx: Sequence[int] | None, size: int) -> torch.Tensor | None:
    if idx is None:
        return None
    t = torch.as_tensor(idx, dtype=torch.long)
    if t.ndim != 1 or t.numel() == 0 or t.min() < 0 or t.max() >= size:
        raise ValueError(f"{name} must be a non-empty list of indices in [0, {size}), got {list(idx)}")
    return t


@dataclass
class Recorder:
    """Accumulates the monitored quantities, block by block, into numpy arrays.

    With ``zarr_store`` (a path) the time series stream to a Zarr store instead: once
    ``chunk_times`` recorded times are pending (whole solver blocks, so a little more), they are
    appended along ``time`` and dropped from memory, so memory stays bounded by the chunk whatever
    the run's length. Each append
    rewrites the consolidated metadata, so a run interrupted part way leaves a store that opens
    with the times written so far (its ``complete`` attribute is 0 until the run finishes).
    """

    monitor: Monitor
    network: Network
    cue: Cue
    time_units: str = "ms"
    zarr_store: str | os.PathLike | None = None
    chunk_times: int = 64
    _store: dict[str, list[np.ndarray]] = field(default_factory=dict, init=False)
    _times: list[np.ndarray] = field(default_factory=list, init=False)
    _written: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.zarr_store is not None:
            self.zarr_store = Path(self.zarr_store)
            if self.zarr_store.exists():
                raise FileExistsError(f"{self.zarr_store} exists: a run streams into a new store (remove it, or "
                                      "choose another path)")
            if self.chunk_times < 1:
                raise ValueError(f"chunk_times must be >= 1, got {self.chunk_times}")
        net = self.network
        self.units = _indices("units", self.monitor.units, net.n_features)
        self.memories = _indices("memories", self.monitor.memories, net.n_memories)
        self.patterns = _indices("overlap_with", self.monitor.overlap_with, net.n_memories)
        self.top_k = None if self.monitor.top_k is None else min(self.monitor.top_k, net.n_stored)
        if net.sharded and ("overlap" in self.monitor.variables or (
                {"h", "f"} & set(self.monitor.variables) and self.top_k is None)):
            raise ValueError("a sharded network records h and f only as top_k memories, and no overlap")
        if self.patterns is None:
            self.patterns = torch.arange(net.n_memories)
        if "overlap" in self.monitor.variables:
            p = net.P[self.patterns.to(net.memories.device)]
            self._pattern_unit = p / p.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(p.dtype).tiny)

    def _put(self, name: str, value: torch.Tensor) -> None:
        self._store.setdefault(name, []).append(value.detach().cpu().numpy())

    @torch.no_grad()
    def observe(self, times: torch.Tensor, v: torch.Tensor, h: torch.Tensor | None,
                speed: torch.Tensor | None) -> None:
        """Record states at ``times`` (T,): ``v`` (T, B, I), ``h`` (T, B, N) or None, ``speed`` (T, B)."""
        want = set(self.monitor.variables)
        n_t, batch = v.shape[:2]
        net = self.network
        flat_v = v.reshape(n_t * batch, -1)
        g = net.activation(flat_v)
        self._times.append(times.detach().cpu().numpy().astype(float))

        def unflat(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(n_t, batch, *x.shape[1:])

        sub = (lambda x: x) if self.units is None else (lambda x: x[..., self.units.to(x.device)])
        if "v" in want:
            self._put("v", sub(v))
        if "g" in want:
            self._put("g", sub(unflat(g)))
        flat_h = None if h is None else h.reshape(n_t * batch, -1)
        if "energy" in want:
            current = None if self.cue.current is None else self.cue.current.repeat(n_t, 1)
            parts = net.energy(State(flat_v, flat_h), Cue(flat_v, current))
            for key, value in parts.items():
                self._put("energy" if key == "total" else f"energy_{key}", unflat(value))
        if (want & {"h", "f"} and self.top_k is not None and h is None and net.separation.combines == "log_sum_exp"
                and net.streams(len(g))):
            picked, indices = self._streamed_top(g)
            self._put("memory_index", unflat(indices))
            for key in ("h", "f"):
                if key in want:
                    self._put(key, unflat(picked[key]))
        elif want & {"h", "f"}:
            flat_h = net.scores(g) if flat_h is None else flat_h
            f = net.separate(flat_h)
            if self.top_k is not None:
                f_top, h_top, indices = net.top_memories(f, flat_h, self.top_k)
                self._put("memory_index", unflat(indices))
                picked = {"f": f_top, "h": h_top}
            elif self.memories is not None:
                idx = self.memories.to(f.device)
                picked = {"f": f[:, idx], "h": flat_h[:, idx]}
            else:
                picked = {"f": f, "h": flat_h}
            for key in ("h", "f"):
                if key in want:
                    self._put(key, unflat(picked[key]))
        if "overlap" in want:
            gu = g / g.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(g.dtype).tiny)
            self._put("overlap", unflat(gu @ self._pattern_unit.T))
        if "speed" in want:
            self._put("speed", speed)
        if self.zarr_store is not None and sum(len(x) for x in self._times) >= self.chunk_times:
            self._flush()

    def _flush(self) -> None:
        """Append the pending times to the Zarr store and forget them."""
        if not self._times:
            return
        part = self._frame()
        part.attrs["complete"] = 0  # an append rewrites the attributes
        if self._written == 0:
            part.to_zarr(self.zarr_store, mode="w-", zarr_format=2, consolidated=True)
        else:
            part.to_zarr(self.zarr_store, append_dim="time", zarr_format=2, consolidated=True)
        self._written += part.sizes["time"]
        self._store.clear()
        self._times.clear()

    def finish(self, ds: xr.Dataset) -> xr.Dataset:
        """Complete a streamed run: write what ``ds`` adds to the store (final states, per-cue
        variables, attributes), mark it complete and open it lazily. Without a store: ``ds``."""
        if self.zarr_store is None:
            return ds
        with xr.open_zarr(self.zarr_store, consolidated=True) as stored:
            extra = ds[[name for name in ds.data_vars if name not in stored.data_vars]]
        extra.attrs = {k: netcdf_attr(v) for k, v in {**ds.attrs, "complete": 1}.items()}
        extra.to_zarr(self.zarr_store, mode="a", zarr_format=2, consolidated=True)
        return xr.open_zarr(self.zarr_store, consolidated=True)

    def _streamed_top(self, g: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The top-k memories of a softmax bank too large for one tile, from one streamed pass:
        ranked by score ``h``, which is the order of ``f`` (where ``f`` underflows to a tie at 0,
        the score still orders the memories, the plain path their index)."""
        sep = self.network.separation
        out = self.network.memory_pass(g, drive=False, top_k=self.top_k)
        f_top = torch.exp(sep.beta * (out.scores - out.lagrangian[:, None]))
        return {"h": out.scores, "f": f_top}, out.indices

    def dataset(self) -> xr.Dataset:
        """The recorded time series as a Dataset (without the run's final-state variables); for a
        streamed run, the store opened lazily."""
        if self.zarr_store is None:
            return self._frame()
        self._flush()
        return xr.open_zarr(self.zarr_store, consolidated=True)

    def _frame(self) -> xr.Dataset:
        """The pending time series as a Dataset."""
        coords: dict[str, tuple] = {
            "time": ("time", np.concatenate(self._times), {"units": self.time_units, "long_name": "time"}),
            "cue": ("cue", np.arange(self.cue.batch), {"long_name": "cue index", "units": "1"}),
        }
        # A subset of value units gets its own dimension, so that final states keep ``unit``.
        unit_dim = "unit" if self.units is None else "unit_subset"
        units_idx = np.arange(self.network.n_features) if self.units is None else self.units.numpy()
        mem_dim = "rank" if self.top_k is not None else "memory"
        mem_idx = (np.arange(self.top_k) if self.top_k is not None else
                   np.arange(self.network.n_memories) if self.memories is None else self.memories.numpy())
        data_vars = {}
        for name, chunks in self._store.items():
            arr = np.concatenate(chunks, axis=0)
            if name in ("v", "g"):
                dims = ("time", "cue", unit_dim)
            elif name in ("h", "f", "memory_index"):
                dims = ("time", "cue", mem_dim)
            elif name == "overlap":
                dims = ("time", "cue", "pattern")
            else:
                dims = ("time", "cue")
            data_vars[name] = (dims, arr, {"long_name": LONG_NAMES[name], "units": "1"})
        if any(name in data_vars for name in ("v", "g")):
            coords[unit_dim] = (unit_dim, units_idx, {"long_name": "value neuron index", "units": "1"})
        if any(name in data_vars for name in ("h", "f")):
            label = "rank of memory activation" if self.top_k is not None else "memory neuron index"
            coords[mem_dim] = (mem_dim, mem_idx, {"long_name": label, "units": "1"})
        if "overlap" in data_vars:
            coords["pattern"] = ("pattern", self.patterns.numpy(), {"long_name": "stored pattern index",
                                                                   "units": "1"})
        return xr.Dataset(data_vars, coords=coords)
