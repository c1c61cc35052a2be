"""Runs that reopen: what a run's Dataset holds so that it can be analysed alone, and
:func:`open_run`, which reads a run file (or store) back with its rebuilt network.

A run holds its model as plain ``model_*`` attributes (:meth:`~neurodyn.network.Network.settings`),
its memories (``memories``, and ``projection`` for a heteroassociative model) when they take at
most :data:`MEMORIES_IN_FILE` bytes, and always their SHA-256 (``memories_sha256``), so that a
bank too large to keep can be given back and checked.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import xarray as xr

from ..errors import InputFileError
from ..network import Network, from_settings
from .netcdf import load_netcdf

#: The largest memory bank (bytes) a run keeps in its file; larger ones keep their hash only.
MEMORIES_IN_FILE = 2**28


def sha256(array: torch.Tensor | np.ndarray) -> str:
    """The SHA-256 of an array's bytes in C order (``hashlib.sha256(a.tobytes())`` in numpy)."""
    values = array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else array
    return hashlib.sha256(np.ascontiguousarray(values).tobytes()).hexdigest()


def model_record(attrs: dict, network: Network) -> dict[str, tuple]:
    """The model's settings as ``model_*`` attributes (into ``attrs``), and its memories as the
    variables to add (see the module docstring)."""
    attrs.update({f"model_{key}": value for key, value in network.settings().items()})
    if network.shards is not None:  # (a rank holds a slice of the bank: the file cannot rebuild it)
        attrs["memories_in_file"] = 0
        return {}
    m = network.memories
    attrs["memories_sha256"] = sha256(m)
    size = m.numel() * m.element_size() + (0 if network.projection is None else
                                           network.projection.numel() * network.projection.element_size())
    attrs["memories_in_file"] = int(size <= MEMORIES_IN_FILE)
    if size > MEMORIES_IN_FILE:
        return {}
    variables = {"memories": (("stored", "unit"), m.detach().cpu().numpy(),
                              {"long_name": "stored patterns M (one per row)", "units": "1"})}
    if network.projection is not None:
        variables["projection"] = (("stored", "output"), network.projection.detach().cpu().numpy(),
                                   {"long_name": "projection P of the stored patterns (one row per memory)",
                                    "units": "1"})
    return variables


class Run(NamedTuple):
    """A reopened run: its Dataset and the network that made it."""

    dataset: xr.Dataset
    network: Network


def open_run(path: str | os.PathLike[str], *, memories: torch.Tensor | np.ndarray | None = None,
             projection: torch.Tensor | np.ndarray | None = None, device: str | torch.device = "cpu") -> Run:
    """A saved run (a NetCDF file, or a streamed run's Zarr store) and its network rebuilt from the
    file: its settings and its memories. ``memories`` (and ``projection``): the bank of a run too
    large to keep it, checked against the file's hash. Raises
    :class:`~neurodyn.errors.InputFileError` naming the file when it is not a run or cannot
    rebuild its network."""
    path = Path(path)
    ds = xr.open_zarr(path) if path.is_dir() else load_netcdf(path)
    return Run(ds, run_network(ds, memories=memories, projection=projection, device=device, source=str(path)))


def run_network(ds: xr.Dataset, *, memories: torch.Tensor | np.ndarray | None = None,
                projection: torch.Tensor | np.ndarray | None = None, device: str | torch.device = "cpu",
                source: str = "the run") -> Network:
    """The network a run's Dataset describes (see :func:`open_run`)."""
    settings = {key.removeprefix("model_"): value for key, value in ds.attrs.items() if key.startswith("model_")}
    if not settings:
        raise InputFileError(source, "holds no model_* attributes: it is not a run, or one saved before runs "
                             "kept their model", "rerun it to save the model with it")
    dtype = getattr(torch, str(ds.attrs.get("dtype", "float32")))
    m = _bank(ds, "memories", memories, source)
    p = _bank(ds, "projection", projection, source) if settings.get("heteroassociative") else None
    if "memories" not in ds and ds.attrs.get("memories_sha256") not in (None, sha256(m.to(dtype))):
        raise InputFileError(source, "was made with other memories than those given (their SHA-256 differs)",
                             "give the bank the run stored, in its dtype")
    try:
        return from_settings(settings, m.to(device=device, dtype=dtype),
                             None if p is None else p.to(device=device, dtype=dtype))
    except ValueError as err:
        raise InputFileError(source, f"cannot rebuild its network: {err}", "rebuild it yourself") from None


def _bank(ds: xr.Dataset, name: str, given: torch.Tensor | np.ndarray | None, source: str) -> torch.Tensor:
    if name in ds:
        return torch.as_tensor(ds[name].values)
    if given is None:
        raise InputFileError(source, f"does not keep its {name} (a bank over {MEMORIES_IN_FILE >> 20} MB)",
                             f"pass them: open_run(path, {name}=...); the file's memories_sha256 checks them")
    return torch.as_tensor(given)
