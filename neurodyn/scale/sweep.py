"""Parameter sweeps on dask.distributed into one Zarr store (DESIGN.md section 8).

A sweep is a grid of parameters: ``[grid]`` axes form a Cartesian product, each ``[zip.NAME]``
table is one dimension ``NAME`` along which its lists vary together, and ``[fixed]`` values apply
to every point. Every point is one task that calls a point function (``recall`` by default, or
``"module:function"``) with its parameters and returns a few named scalars.

The store is laid out up front: one dimension per grid axis, one variable per output (NaN until
done), ``status`` (0 missing, 1 done, 2 failed), ``error`` (the message of a failed point) and
``compute_time``. It is laid out in a temporary folder beside its path and renamed into place
when whole, so a sweep killed while laying it out leaves none. One sweep at a time writes a
store: a run holds it (:func:`neurodyn.files.claim`) and a second one fails at once with
:class:`~neurodyn.errors.OutputError`. The client alone writes: finished points are flushed at
most every ``flush_seconds`` (and at the end), outputs first and ``status`` last, and Zarr
replaces each chunk file atomically. So a killed sweep keeps every point flushed before the
kill, a point caught mid-flush reads as missing, and rerunning the same config computes only
what is missing. A store made by another grid is refused before any work starts, a folder that
is no sweep store with :class:`~neurodyn.errors.InputFileError`.

A point whose worker process dies (a segfault, the out-of-memory killer) is retried, at last
alone, then recorded as failed ("worker died: ..."); the sweep goes on. A scheduler address
that cannot be reached fails within ``connect_timeout`` seconds
(:class:`~neurodyn.errors.ResourceUnavailable`), and a sweep in which no point finishes for
:data:`STALL_SECONDS` says on stderr what it waits for.

Runs on a LocalCluster by default, or on any Dask scheduler by address (dask-jobqueue for
SLURM/PBS, dask-kubernetes; see ``docs/sweeps.md``). Points that ask for a GPU request the
worker resource ``GPU=1`` (start such workers with ``--resources GPU=1``).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr
import zarr

from ..errors import InputFileError, ResourceUnavailable
from .grid import POINT_FUNCTIONS, Grid, check_parameters, load_config, resolve_function
from .store import (
    DAMAGED_REMEDY,
    DONE,
    ERROR_LENGTH,
    FAILED,
    MISSING,
    Results,
    brief,
    claim_store,
    open_or_create,
    open_store,
    read_array,
)

if TYPE_CHECKING:
    from dask.distributed import Client, Future, as_completed
    from tqdm.auto import tqdm


__all__ = ["DONE", "FAILED", "MISSING", "POINT_FUNCTIONS", "Grid", "check_parameters", "claim_store",
           "describe_store", "load_config", "open_store", "resolve_function", "run_sweep"]


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


def _died(err: BaseException) -> dict:
    """The record of a point whose worker process died under it, also when it ran alone."""
    worker = getattr(getattr(err, "last_worker", None), "address", "unknown")
    return {"status": FAILED, "outputs": {}, "time": np.nan,
            "error": (f"worker died: the worker process running this point exited, also when it ran alone (last "
                      f"{worker}): a crash, the out-of-memory killer or os._exit; see the worker's log")[:ERROR_LENGTH]}


# --------------------------------------------------------------------------- running
ALLOWED_FAILURES = 0
"""Retries by the LocalCluster's scheduler of a task whose worker died (Dask's
``distributed.scheduler.allowed-failures``; a scheduler given by address keeps its own, 3 by
default). 0: the sweep retries such points itself (:class:`_Suspects`), which tells the point
that kills its worker from the points that were beside it."""
CONNECT_TIMEOUT = 20.0
"""Seconds to reach a scheduler given by address before :class:`ResourceUnavailable`."""
STALL_SECONDS = 60.0
"""When no point finishes for this long, the runner says on stderr what it waits for (and again
after as long again)."""


def _check_counts(n_workers: int, threads_per_worker: int, block_size: int | None, flush_seconds: float) -> None:
    if n_workers < 0:
        raise ValueError(f"n_workers must be 0 (run the points in this process) or more, got {n_workers}")
    if threads_per_worker < 1:
        raise ValueError(f"threads_per_worker must be 1 or more, got {threads_per_worker}")
    if block_size is not None and block_size < 1:
        raise ValueError(f"block_size must be 1 or more (or None: chosen from the sweep's size), got {block_size}")
    if not flush_seconds >= 0:
        raise ValueError(f"flush_seconds must be 0 or more, got {flush_seconds}")


@contextlib.contextmanager
def _dask_client(scheduler: str | None, n_workers: int, threads_per_worker: int,
                 connect_timeout: float) -> Iterator[Client]:
    """A client of the scheduler at ``scheduler``, or of a LocalCluster of ``n_workers`` processes;
    :class:`ResourceUnavailable` when neither can be had within its time."""
    import dask
    from dask.distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=connect_timeout)
        except ValueError as err:
            raise ValueError(f"bad scheduler address {scheduler!r}: {err}") from None
        except Exception as err:  # noqa: BLE001 - OSError, TimeoutError, or whatever a wrong service answers
            raise ResourceUnavailable(
                f"cannot reach the Dask scheduler at {scheduler} within {connect_timeout:g} s ({brief(err)}); "
                "check the address and that the scheduler is running (`dask scheduler`), or leave the "
                "scheduler out to run on a LocalCluster") from None
        with client:
            yield client
        return
    # The statistical profiler costs the tasks GIL time: off in our workers. The tasks of a worker
    # that dies are given up after ALLOWED_FAILURES retries; the sweep retries their points.
    settings = {"distributed.worker.profile.enabled": False,
                "distributed.scheduler.allowed-failures": ALLOWED_FAILURES}
    with dask.config.set(settings):
        try:
            cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                                   processes=True, dashboard_address=None)
        except (OSError, TimeoutError, RuntimeError) as err:
            raise ResourceUnavailable(
                f"cannot start a LocalCluster of {n_workers} worker processes ({brief(err)}); a script "
                "that runs sweeps needs `if __name__ == '__main__':`, or pass n_workers=0") from err
    with cluster, Client(cluster) as client:
        yield client


def _run_here(function: str, todo: list[tuple[tuple[int, ...], dict]], results: Results, bar: tqdm) -> None:
    """Evaluate the points in this process, one after another. A point that ends the process
    (a crash, the out-of-memory killer, ``os._exit``) ends the sweep with it; the next run
    resumes, but computes that point again first: only worker processes are survived."""
    import torch

    for index, result in _evaluate_each(function, todo, torch.get_num_threads()):
        results.add(index, result)
        bar.update()


def _completed(pending: as_completed, waiting: Callable[[], str]) -> Iterator[Future]:
    """The futures of ``pending`` as they complete (it may grow meanwhile); when none completes
    for :data:`STALL_SECONDS`, prints ``waiting()`` on stderr."""
    last = time.monotonic()
    while not pending.is_empty():
        batch = pending.next_batch(block=False)
        if batch:
            last = time.monotonic()
            yield from batch
        elif time.monotonic() - last >= STALL_SECONDS:
            print(f"sweep: no point finished in {STALL_SECONDS:g} s; {waiting()}", file=sys.stderr, flush=True)
            last = time.monotonic()
        else:
            time.sleep(0.05)


class _Suspects:
    """Points of tasks that were on a worker when it died, with the point that killed it among
    them. Each is retried alone among the suspects, beside the sweep's other tasks; one killed
    again is retried once more alone on the cluster (then nothing runs beside it to blame), and
    one killed then is the point that kills its worker."""

    BESIDE, ALONE = 1, 2

    def __init__(self) -> None:
        self.beside: list = []
        self.alone: list = []

    def killed(self, block: list, stage: int) -> bool:
        """Take the points of a task whose worker died; whether they are to be recorded as failed."""
        if stage == 0:
            self.beside.extend(block)
        elif stage == self.BESIDE:
            self.alone.extend(block)
        return stage == self.ALONE

    def next(self, in_flight: set[int]) -> tuple[list, int] | None:
        """The next retry (its points and stage), given the stages of the tasks in flight."""
        if self.ALONE in in_flight:
            return None
        if self.beside and self.BESIDE not in in_flight:
            return [self.beside.pop(0)], self.BESIDE
        if self.alone and not in_flight:
            return [self.alone.pop(0)], self.ALONE
        return None


def _run_on_dask(client: Client, function: str, todo: list[tuple[tuple[int, ...], dict]], results: Results,
                 bar: tqdm, *, threads: int, block_size: int, gpu: bool) -> None:
    """Evaluate the points in blocks (one Dask task each) on the client's workers.

    A worker that dies takes every task it holds with it, the point that killed it and the
    points beside it alike; the scheduler retries them (its ``allowed-failures``), then gives them
    up (``KilledWorker``). Their points are then retried as :class:`_Suspects`: the point that
    kills its worker is recorded as failed ("worker died: ..."), the others are stored."""
    from concurrent.futures import CancelledError

    from dask.distributed import as_completed
    from distributed import KilledWorker

    resources = {"GPU": 1} if gpu else None
    tasks: dict[object, tuple[list, int]] = {}  # by task key: its points, and 0 or its _Suspects stage
    suspects = _Suspects()
    pending = as_completed()

    def submit(block: list, stage: int = 0) -> None:
        future = client.submit(_evaluate, function, block, threads, pure=False, resources=resources)
        tasks[future.key] = block, stage
        pending.add(future)

    def waiting() -> str:
        address = client.scheduler.address if client.scheduler else "?"
        try:
            workers = f"{len(client.nthreads(callback_timeout=5))} workers on the scheduler {address}"
        except Exception as err:  # noqa: BLE001 - it says why the sweep waits; the wait goes on
            return f"{bar.n} of {bar.total} points done; the scheduler {address} does not answer ({brief(err)})"
        return f"{bar.n} of {bar.total} points done, {workers} (none: start some with `dask worker ADDRESS`)"

    for i in range(0, len(todo), block_size):
        submit(todo[i:i + block_size])
    for future in _completed(pending, waiting):
        block, stage = tasks.pop(future.key)
        try:
            evaluated = future.result()
        except KilledWorker as err:
            evaluated = [(block[0][0], _died(err))] if suspects.killed(block, stage) else []
        except CancelledError as err:  # the scheduler went away (or someone cancelled the tasks)
            raise ResourceUnavailable(f"the sweep's tasks were cancelled ({brief(err)}); the points finished "
                                      "so far are stored: rerun the sweep to go on") from None
        for index, result in evaluated:
            results.add(index, result)
        bar.update(len(evaluated))
        if suspects.beside or suspects.alone:
            retry = suspects.next({stage for _, stage in tasks.values()})
            if retry:
                submit(*retry)


def run_sweep(config: dict, store: str | Path | None = None, *, scheduler: str | None = None,
              n_workers: int = 2, threads_per_worker: int = 1, retry_failed: bool = False,
              block_size: int | None = None, flush_seconds: float = 1.0, progress: bool | None = None,
              connect_timeout: float = CONNECT_TIMEOUT) -> xr.Dataset:
    """Evaluate every missing point of the sweep ``config`` (a parsed TOML dict) and return the
    store, opened lazily. ``scheduler``: a Dask scheduler address, reached within
    ``connect_timeout`` seconds or :class:`ResourceUnavailable` (default: a LocalCluster of
    ``n_workers`` processes with ``threads_per_worker`` threads each; ``n_workers=0`` evaluates
    the points in this process, with the same store, resumption and failure records, but a point
    that kills the process, as a segfault or ``os._exit`` does, kills the sweep: worker processes
    that die are recorded as failed points instead). ``block_size``: points per task (default:
    enough for about 16 tasks per worker, at most 32 points; 1 for small sweeps).

    The store is held for this run (:func:`claim_store`): a second sweep on it fails at once with
    :class:`OutputError`. A store that is no sweep store raises :class:`InputFileError`."""
    from tqdm.auto import tqdm

    _check_counts(n_workers, threads_per_worker, block_size, flush_seconds)
    settings = dict(config.get("sweep", {}))
    unknown = set(settings) - {"function", "store", "gpu"}
    if unknown:
        raise ValueError(f"unknown [sweep] keys {sorted(unknown)}; known: function, store, gpu")
    function = settings.get("function", "recall")
    fn = resolve_function(function)
    grid = Grid.from_config(config)
    check_parameters(fn, grid)
    with claim_store(store or settings.get("store", "runs/sweep.zarr")) as path:
        group = open_or_create(path, grid, function, fn.outputs)
        names = (*fn.outputs, "compute_time", "error", "status")
        results = Results(group, {name: read_array(group, name, path) for name in names}, fn.outputs, flush_seconds)
        wanted = (MISSING, FAILED) if retry_failed else (MISSING,)
        todo = [(index, params) for index, params in grid.points() if results.arrays["status"][index] in wanted]
        if todo:
            bar = tqdm(total=len(todo), desc="sweep", unit="point", disable=None if progress is None else not progress)
            try:
                if scheduler is None and n_workers == 0:
                    _run_here(function, todo, results, bar)
                else:
                    with _dask_client(scheduler, n_workers, threads_per_worker, connect_timeout) as client:
                        workers = n_workers if scheduler is None else max(1, len(client.nthreads()))
                        _run_on_dask(client, function, todo, results, bar, threads=threads_per_worker,
                                     gpu=bool(settings.get("gpu")),
                                     block_size=block_size or max(1, min(32, len(todo) // (16 * workers))))
            finally:  # what finished is kept, whatever ended the run (Ctrl-C, a lost scheduler, a bug)
                bar.close()
                results.flush()
        zarr.consolidate_metadata(str(path))
    return xr.open_zarr(path, consolidated=True)


def describe_store(path: str | Path) -> str:
    """Done, failed and missing points of a sweep store, and the first errors; an
    :class:`InputFileError` naming ``path`` when it is no sweep store or a damaged one."""
    ds = open_store(path)
    try:
        status, errors = ds["status"].values, ds["error"].values
    except Exception as err:  # noqa: BLE001 - as in _read
        raise InputFileError(path, f"its points cannot be read ({brief(err)})", DAMAGED_REMEDY) from None
    lines = [f"sweep store {path}: function {ds.attrs.get('function')}, dims "
             + ", ".join(f"{d}={n}" for d, n in ds["status"].sizes.items()),
             f"points: {int((status == DONE).sum())} done, {int((status == FAILED).sum())} failed, "
             f"{int((status == MISSING).sum())} missing of {status.size}"]
    failed = np.argwhere(status == FAILED)[:5]
    for index in failed:
        where = ", ".join(f"{d}={ds[d].values[i]}" for d, i in zip(ds["status"].dims, index))
        lines.append(f"  failed at {where}: {errors[tuple(index)]}")
    return "\n".join(lines)
