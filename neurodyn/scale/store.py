"""A sweep's Zarr store: laid out whole before it appears, held by one writer, refused when it is
no sweep store, and filled by the client alone (:mod:`neurodyn.scale.sweep` says how)."""


from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr
import zarr

from ..errors import InputFileError, OutputError
from ..files import claim, umask
from ..record.provenance import package_versions
from .grid import Grid, resolve_function

if TYPE_CHECKING:
    pass

MISSING, DONE, FAILED = 0, 1, 2
ERROR_LENGTH = 200


# --------------------------------------------------------------------------- the store
STORE_REMEDY = "give the folder of a sweep store (`neurodyn sweep CONFIG --store FOLDER` makes one)"
DAMAGED_REMEDY = "it is damaged or incomplete: move it away and rerun the sweep (its points are computed again)"


def _coordinate(values: list) -> np.ndarray:
    arr = np.asarray(values)
    return arr.astype(str) if arr.dtype == object else arr


def brief(err: BaseException) -> str:
    """An exception as one short line."""
    return " ".join(f"{type(err).__name__}: {err}".split())[:ERROR_LENGTH]


def _layout(grid: Grid, function: str, outputs: tuple[str, ...]) -> tuple[xr.Dataset, dict]:
    """The store as a Dataset, every variable at its 'not done' value, and its encoding."""
    shape, dims = grid.shape, grid.dims
    data_vars: dict[str, tuple[tuple[str, ...], np.ndarray, dict[str, object]]] = {
        name: (dims, np.full(shape, np.nan), {"long_name": name, "units": "1"}) for name in outputs}
    data_vars["compute_time"] = (dims, np.full(shape, np.nan), {"long_name": "task wall time", "units": "s"})
    data_vars["status"] = (dims, np.zeros(shape, np.int8),
                           {"long_name": "point status", "flag_values": [0, 1, 2], "units": "1",
                            "flag_meanings": "missing done failed"})
    data_vars["error"] = (dims, np.full(shape, "", dtype=f"<U{ERROR_LENGTH}"),
                          {"long_name": "error message of a failed point", "units": "1"})
    coords = {name: (name, _coordinate(values)) for name, values in grid.axes.items()}
    for dim, table in grid.zipped.items():
        coords[dim] = (dim, np.arange(len(next(iter(table.values())))))
        coords.update({p: (dim, _coordinate(v)) for p, v in table.items()})
    ds = xr.Dataset(data_vars, coords=coords, attrs={
        "grid": grid.to_json(), "function": function, "versions": package_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    # One chunk per variable: the client rewrites whole (small) arrays at each flush.
    return ds, {name: {"chunks": shape} for name in data_vars}


def _layouts(path: Path) -> list[Path]:
    """Layouts of the store ``path`` under way or left by killed sweeps (``.NAME.layout-*`` beside it)."""
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.layout-*"))


def create_store(path: Path, grid: Grid, function: str, outputs: tuple[str, ...]) -> None:
    """Lay the store out: every variable filled with its 'not done' value, one chunk per variable.
    It is written in a temporary folder beside ``path`` and renamed into place once whole, so a
    process killed at any moment leaves either a whole store or none (and a temporary folder that
    the next :func:`claim_store` removes). ``path`` must be absent or an empty folder."""
    ds, encoding = _layout(grid, function, outputs)
    try:
        temporary = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.layout-"))
    except OSError as err:
        raise OutputError(f"cannot lay out sweep store {path}: {err.strerror or err}") from err
    try:
        ds.to_zarr(temporary, mode="w", encoding=encoding, zarr_format=2, consolidated=True)
        os.chmod(temporary, 0o777 & ~umask())  # mkdtemp makes it private; a store gets the umask
        os.rename(temporary, path)  # atomic; replaces an empty folder, refuses any other
    except OSError as err:
        shutil.rmtree(temporary, ignore_errors=True)
        raise OutputError(f"cannot lay out sweep store {path}: {err.strerror or err}") from err
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


@contextlib.contextmanager
def claim_store(path: str | Path) -> Iterator[Path]:
    """Hold the store ``path`` as this process's output (:func:`neurodyn.files.claim`: one writer,
    released when the process dies, re-entrant within a process) and remove the layouts killed
    sweeps left; yields it absolute. Raises :class:`OutputError` naming the store and the pid of
    the process that holds it."""
    path = Path(path).expanduser().absolute()
    with claim(path, folder=True):
        for stale in _layouts(path):  # no live writer owns them while the claim is held
            shutil.rmtree(stale, ignore_errors=True)
        yield path


def _same_function(stored: object, function: str) -> bool:
    """Whether a store's function is ``function``: the same name, or one that names the same
    function elsewhere (a module moved and re-exported, as ``neurodyn.protocols`` before issue 16)."""
    if stored == function:
        return True
    try:
        return isinstance(stored, str) and resolve_function(stored) is resolve_function(function)
    except ValueError:
        return False


def open_store(path: str | Path) -> xr.Dataset:
    """The sweep store at ``path``, opened lazily. Raises :class:`InputFileError` naming it when it
    is absent, a file, a folder that is no sweep store, or a damaged Zarr store."""
    path = Path(path)
    if not path.is_dir():
        raise InputFileError(path, "a file, not a sweep store (a folder)" if path.exists() else "no such sweep store",
                             STORE_REMEDY)
    if not any((path / name).exists() for name in (".zmetadata", ".zgroup", "zarr.json")):
        raise InputFileError(path, "a folder without Zarr metadata, not a sweep store", STORE_REMEDY)
    try:
        ds = xr.open_zarr(path, consolidated=True)
    except Exception as err:  # noqa: BLE001 - zarr, xarray and json raise many kinds for one broken store
        raise InputFileError(path, f"not a readable sweep store ({brief(err)})", DAMAGED_REMEDY) from None
    missing = [name for name in ("status", "error", "compute_time") if name not in ds.data_vars]
    missing += [f"attribute {name!r}" for name in ("grid", "function") if name not in ds.attrs]
    if missing:
        raise InputFileError(path, f"a Zarr store but not a sweep store: it has no {', '.join(missing)}",
                             STORE_REMEDY)
    return ds


def open_or_create(path: Path, grid: Grid, function: str, outputs: tuple[str, ...]) -> zarr.Group:
    """The store's Zarr group, laid out if absent (or an empty folder); a store of another grid or
    function is refused (``ValueError``), a folder that is no sweep store too
    (:class:`InputFileError`). Call it under :func:`claim_store`."""
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        create_store(path, grid, function, outputs)
    ds = open_store(path)
    if ds.attrs.get("grid") != grid.to_json() or not _same_function(ds.attrs.get("function"), function):
        raise ValueError(f"{path} was made by a different sweep (grid or function differ); "
                         "use another store path or delete it")
    missing = set(outputs) - set(ds.data_vars)
    if missing:
        raise ValueError(f"{path} has no {sorted(missing)}: it was made by another version of {function}; "
                         "use another store path or delete it")
    try:
        return zarr.open_group(str(path), mode="r+", zarr_format=2)
    except Exception as err:  # noqa: BLE001 - as in open_store
        raise InputFileError(path, f"not a writable sweep store ({brief(err)})", DAMAGED_REMEDY) from None


def _array(group: zarr.Group, name: str) -> zarr.Array:
    """The variable ``name`` of a sweep store: a Zarr array (a store holds no subgroups)."""
    array = group[name]
    if not isinstance(array, zarr.Array):
        raise ValueError(f"{name!r} in the sweep store is a group, not an array")
    return array


def read_array(group: zarr.Group, name: str, path: Path) -> np.ndarray:
    """All of the variable ``name`` of a sweep store, in memory; :class:`InputFileError` when its
    chunks cannot be read (a truncated or overwritten file)."""
    try:
        return np.asarray(_array(group, name)[...])
    except Exception as err:  # noqa: BLE001 - codecs raise many kinds for one bad chunk
        raise InputFileError(path, f"its variable {name!r} cannot be read ({brief(err)})", DAMAGED_REMEDY) from None


class Results:
    """The client's copy of the store's arrays: points land in memory, flushes write them."""

    def __init__(self, group: zarr.Group, arrays: dict[str, np.ndarray], outputs: tuple[str, ...],
                 flush_seconds: float) -> None:
        self.group, self.arrays, self.outputs, self.flush_seconds = group, arrays, outputs, flush_seconds
        self.last_flush, self.dirty = time.monotonic(), False

    def add(self, index: tuple[int, ...], result: dict) -> None:
        for name in self.outputs:
            self.arrays[name][index] = float(result["outputs"].get(name, np.nan))
        self.arrays["compute_time"][index] = result["time"]
        self.arrays["error"][index] = result["error"]
        self.arrays["status"][index] = result["status"]
        self.dirty = True
        if time.monotonic() - self.last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        if self.dirty:
            for name in (*self.outputs, "compute_time", "error", "status"):  # status last: done once all is written
                _array(self.group, name)[...] = self.arrays[name]
        self.last_flush, self.dirty = time.monotonic(), False


