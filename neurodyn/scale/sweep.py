"""Parameter sweeps on dask.distributed into one Zarr store (DESIGN.md section 8).

A sweep is a grid of parameters: ``[grid]`` axes form a Cartesian product, each ``[zip.NAME]``
table is one dimension ``NAME`` along which its lists vary together, and ``[fixed]`` values apply
to every point. Every point is one task that calls a point function (``recall`` by default, or
``"module:function"``) with its parameters and returns a few named scalars.

The store is laid out up front: one dimension per grid axis, one variable per output (NaN until
done), ``status`` (0 missing, 1 done, 2 failed), ``error`` (the message of a failed point) and
``compute_time``. The client alone writes: finished points are flushed at most every
``flush_seconds`` (and at the end), outputs first and ``status`` last, and Zarr replaces each
chunk file atomically. So a killed sweep keeps every point flushed before the kill, a point
caught mid-flush reads as missing, and rerunning the same config computes only what is missing.
A store made by another grid is refused before any work starts.

Runs on a LocalCluster by default, or on any Dask scheduler by address (dask-jobqueue for
SLURM/PBS, dask-kubernetes; see ``docs/sweeps.md``). Points that ask for a GPU request the
worker resource ``GPU=1`` (start such workers with ``--resources GPU=1``).
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import json
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr
import zarr

from ..record.provenance import package_versions
from .points import PointFunction

MISSING, DONE, FAILED = 0, 1, 2
ERROR_LENGTH = 200


# --------------------------------------------------------------------------- point functions
#: Point functions by short name; any other is given as ``"module:function"``.
POINT_FUNCTIONS: dict[str, str] = {"recall": "neurodyn.jobs.recall:recall_point"}


def resolve_function(spec: str) -> PointFunction:
    """A point function by name (:data:`POINT_FUNCTIONS`) or as ``"module:function"`` with an
    ``outputs`` attribute naming the scalars it returns."""
    module, _, name = POINT_FUNCTIONS.get(spec, spec).partition(":")
    if not name:
        raise ValueError(f"unknown point function {spec!r}; known: {', '.join(POINT_FUNCTIONS)} or 'module:function'")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"cannot import point function {spec!r}: {err}") from None
    if not isinstance(getattr(fn, "outputs", None), tuple) or not fn.outputs:
        raise ValueError(f"point function {spec!r} needs an 'outputs' attribute: a tuple of output names")
    return fn


# --------------------------------------------------------------------------- the grid
@dataclass(frozen=True)
class Grid:
    """Product axes, zipped dimensions and fixed values of a sweep."""

    axes: dict[str, list] = field(default_factory=dict)
    zipped: dict[str, dict[str, list]] = field(default_factory=dict)
    fixed: dict[str, object] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: dict) -> Grid:
        unknown = set(config) - {"grid", "zip", "fixed", "sweep"}
        if unknown:
            raise ValueError(f"unknown sweep config tables {sorted(unknown)}; known: sweep, grid, zip, fixed")
        grid = cls({k: list(v) if isinstance(v, (list, tuple)) else [v] for k, v in config.get("grid", {}).items()},
                   {k: {p: list(vals) for p, vals in t.items()} for k, t in config.get("zip", {}).items()},
                   dict(config.get("fixed", {})))
        grid.validate()
        return grid

    def validate(self) -> None:
        names: list[str] = list(self.axes) + [p for t in self.zipped.values() for p in t] + list(self.fixed)
        repeated = {n for n in names if names.count(n) > 1}
        if repeated:
            raise ValueError(f"parameters given more than once: {sorted(repeated)}")
        for name, values in self.axes.items():
            if not values:
                raise ValueError(f"grid axis {name!r} is empty")
            if len(set(map(repr, values))) != len(values):
                raise ValueError(f"grid axis {name!r} repeats a value: {values}")
        for dim, table in self.zipped.items():
            if dim in self.axes:
                raise ValueError(f"zip dimension {dim!r} is also a grid axis")
            lengths = {p: len(v) for p, v in table.items()}
            if not table or 0 in lengths.values() or len(set(lengths.values())) != 1:
                raise ValueError(f"zip {dim!r} needs non-empty lists of one length, got {lengths}")

    @property
    def parameters(self) -> list[str]:
        return list(self.axes) + [p for t in self.zipped.values() for p in t] + list(self.fixed)

    @property
    def dims(self) -> tuple[str, ...]:
        return tuple(self.axes) + tuple(self.zipped)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self.axes.values()) + tuple(len(next(iter(t.values())))
                                                                 for t in self.zipped.values())

    def points(self) -> Iterator[tuple[tuple[int, ...], dict]]:
        """Every point: its index in the store and its full parameters."""
        for index in itertools.product(*(range(n) for n in self.shape)):
            params = dict(self.fixed)
            for (name, values), i in zip(self.axes.items(), index):
                params[name] = values[i]
            for (_, table), i in zip(self.zipped.items(), index[len(self.axes):]):
                params.update({p: v[i] for p, v in table.items()})
            yield index, params

    def to_json(self) -> str:
        return json.dumps({"axes": self.axes, "zipped": self.zipped, "fixed": self.fixed}, sort_keys=True)


def check_parameters(fn: Callable, grid: Grid) -> None:
    """Fail before any work when the grid names a parameter the point function does not take."""
    sig = inspect.signature(fn)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return
    unknown = set(grid.parameters) - set(sig.parameters)
    if unknown:
        raise ValueError(f"unknown sweep parameter(s) {sorted(unknown)}; {fn.__name__} takes "
                         f"{', '.join(sig.parameters)}")


# --------------------------------------------------------------------------- the store
def _coordinate(values: list) -> np.ndarray:
    arr = np.asarray(values)
    return arr.astype(str) if arr.dtype == object else arr


def create_store(path: Path, grid: Grid, function: str, outputs: tuple[str, ...]) -> None:
    """Lay the store out: every variable filled with its 'not done' value, one chunk per point."""
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
    encoding = {name: {"chunks": shape} for name in data_vars}
    ds.to_zarr(path, mode="w", encoding=encoding, zarr_format=2, consolidated=True)


def _same_function(stored: object, function: str) -> bool:
    """Whether a store's function is ``function``: the same name, or one that names the same
    function elsewhere (a module moved and re-exported, as ``neurodyn.protocols`` before issue 16)."""
    if stored == function:
        return True
    try:
        return isinstance(stored, str) and resolve_function(stored) is resolve_function(function)
    except ValueError:
        return False


def open_or_create(path: Path, grid: Grid, function: str, outputs: tuple[str, ...]) -> zarr.Group:
    """The store's Zarr group, created if absent; a store of another grid or function is refused."""
    if not path.exists():
        create_store(path, grid, function, outputs)
    else:
        try:
            attrs = xr.open_zarr(path, consolidated=True).attrs
        except Exception as err:  # noqa: BLE001 - any unreadable store is reported the same way
            raise ValueError(f"{path} exists but is not a sweep store: {err}") from None
        if attrs.get("grid") != grid.to_json() or not _same_function(attrs.get("function"), function):
            raise ValueError(f"{path} was made by a different sweep (grid or function differ); "
                             "use another store path or delete it")
        missing = set(outputs) - set(xr.open_zarr(path, consolidated=True).data_vars)
        if missing:
            raise ValueError(f"{path} has no {sorted(missing)}: it was made by another version of {function}; "
                             "use another store path or delete it")
    return zarr.open_group(str(path), mode="r+", zarr_format=2)


def _array(group: zarr.Group, name: str) -> zarr.Array:
    """The variable ``name`` of a sweep store: a Zarr array (a store holds no subgroups)."""
    array = group[name]
    if not isinstance(array, zarr.Array):
        raise ValueError(f"{name!r} in the sweep store is a group, not an array")
    return array


def _read(group: zarr.Group, name: str) -> np.ndarray:
    """All of the variable ``name`` of a sweep store, in memory."""
    return np.asarray(_array(group, name)[...])


def _evaluate_each(function: str, block: list[tuple[tuple[int, ...], dict]], threads: int) -> Iterator[tuple]:
    """Run points one by one, yielding ``(index, result)``; never raises, so a failure is
    recorded and the sweep goes on."""
    import torch

    torch.set_num_threads(threads)
    fn = resolve_function(function)
    for index, params in block:
        start = time.perf_counter()
        try:
            result = {"status": DONE, "outputs": fn(**params), "error": ""}
        except Exception as err:  # noqa: BLE001 - recorded in the store
            result = {"status": FAILED, "outputs": {}, "error": f"{type(err).__name__}: {err}"[:ERROR_LENGTH]}
        yield index, {**result, "time": time.perf_counter() - start}


def _evaluate(function: str, block: list[tuple[tuple[int, ...], dict]], threads: int) -> list[tuple]:
    """A block of points as one Dask task."""
    return list(_evaluate_each(function, block, threads))


class _Results:
    """The client's copy of the store's arrays: points land in memory, flushes write them."""

    def __init__(self, group: zarr.Group, outputs: tuple[str, ...], flush_seconds: float) -> None:
        self.group, self.outputs, self.flush_seconds = group, outputs, flush_seconds
        self.arrays = {name: _read(group, name) for name in (*outputs, "compute_time", "error", "status")}
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
            for name, array in self.arrays.items():  # status last: done only once all is written
                _array(self.group, name)[...] = array
        self.last_flush, self.dirty = time.monotonic(), False


def load_config(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"sweep config not found: {path}")
    with path.open("rb") as fh:
        return tomllib.load(fh)


def run_sweep(config: dict, store: str | Path | None = None, *, scheduler: str | None = None,
              n_workers: int = 2, threads_per_worker: int = 1, retry_failed: bool = False,
              block_size: int | None = None, flush_seconds: float = 1.0,
              progress: bool | None = None) -> xr.Dataset:
    """Evaluate every missing point of the sweep ``config`` (a parsed TOML dict) and return the
    store, opened lazily. ``scheduler``: a Dask scheduler address (default: a LocalCluster of
    ``n_workers`` processes with ``threads_per_worker`` threads each; ``n_workers=0`` evaluates
    the points in this process, with the same store, resumption and failure records).
    ``block_size``: points per task (default: enough for about 16 tasks per worker, at most 32
    points; 1 for small sweeps)."""
    import dask
    import torch
    from dask.distributed import Client, LocalCluster, as_completed
    from tqdm.auto import tqdm

    settings = dict(config.get("sweep", {}))
    unknown = set(settings) - {"function", "store", "gpu"}
    if unknown:
        raise ValueError(f"unknown [sweep] keys {sorted(unknown)}; known: function, store, gpu")
    function = settings.get("function", "recall")
    fn = resolve_function(function)
    grid = Grid.from_config(config)
    check_parameters(fn, grid)
    path = Path(store or settings.get("store", "runs/sweep.zarr"))
    group = open_or_create(path, grid, function, fn.outputs)
    status = _read(group, "status")
    wanted = (MISSING, FAILED) if retry_failed else (MISSING,)
    todo = [(index, params) for index, params in grid.points() if status[index] in wanted]
    if todo and scheduler is None and n_workers == 0:  # in this process, one point after another
        results = _Results(group, fn.outputs, flush_seconds)
        points = _evaluate_each(function, todo, torch.get_num_threads())
        for index, result in tqdm(points, total=len(todo), desc="sweep", unit="point",
                                  disable=None if progress is None else not progress):
            results.add(index, result)
        results.flush()
    elif todo:
        resources = {"GPU": 1} if settings.get("gpu") else None
        block_size = block_size or max(1, min(32, len(todo) // (16 * n_workers)))
        blocks = [todo[i:i + block_size] for i in range(0, len(todo), block_size)]
        cluster = None
        if scheduler is None:  # the statistical profiler costs the tasks GIL time: off in our workers
            with dask.config.set({"distributed.worker.profile.enabled": False}):
                cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                                       processes=True, dashboard_address=None)
        with Client(scheduler or cluster) as client:
            futures = [client.submit(_evaluate, function, block, threads_per_worker, pure=False,
                                     resources=resources) for block in blocks]
            results = _Results(group, fn.outputs, flush_seconds)
            bar = tqdm(total=len(todo), desc="sweep", unit="point", disable=None if progress is None else not progress)
            with bar:
                for future in as_completed(futures):
                    block = future.result()
                    for index, result in block:
                        results.add(index, result)
                    bar.update(len(block))
            results.flush()
        if cluster is not None:
            cluster.close()
    zarr.consolidate_metadata(str(path))
    return xr.open_zarr(path, consolidated=True)


def describe_store(path: str | Path) -> str:
    """Done, failed and missing points of a sweep store, and the first errors."""
    ds = xr.open_zarr(path, consolidated=True)
    status = ds["status"].values
    lines = [f"sweep store {path}: function {ds.attrs.get('function')}, dims "
             + ", ".join(f"{d}={n}" for d, n in ds["status"].sizes.items()),
             f"points: {int((status == DONE).sum())} done, {int((status == FAILED).sum())} failed, "
             f"{int((status == MISSING).sum())} missing of {status.size}"]
    failed = np.argwhere(status == FAILED)[:5]
    for index in failed:
        where = ", ".join(f"{d}={ds[d].values[i]}" for d, i in zip(ds["status"].dims, index))
        lines.append(f"  failed at {where}: {ds['error'].values[tuple(index)]}")
    return "\n".join(lines)
