"""Sweep throughput: points per second on a LocalCluster vs one process (run by hand: not a test).

    python benchmarks/bench_sweep.py [--points 1000] [--workers 2] [--rounds 3]

The points are small recalls (10 digits, 5 time units, dopri5). "One process" evaluates them in
a plain loop with one torch thread; the sweep runs them on ``--workers`` processes of one thread
each, writing every point to the Zarr store as it finishes (cluster start included). This VM's
speed drifts by tens of per cent within minutes, so the two are measured in interleaved rounds
and every round's ratio is printed; the verdict uses the median ratio. Each round also times the
sweep against a cluster started and warmed beforehand (a long-lived or existing cluster, as with
``--scheduler``), which leaves out the workers' start: imports and data, about 4 s each here.
Target (issue 7): >= 1.7x on 2 workers.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from neurodyn.jobs.recall import recall_point
from neurodyn.scale.sweep import Grid, run_sweep


def config(points: int) -> dict:
    return {"grid": {"seed": list(range(points))},
            "fixed": {"data": "digits", "n_memories": 10, "duration": 5.0, "model": "mchn-l2"}}


def serial(cfg: dict) -> float:
    start = time.perf_counter()
    for _, params in Grid.from_config(cfg).points():
        recall_point(**params)
    return time.perf_counter() - start


def swept(cfg: dict, workers: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        run_sweep(cfg, f"{tmp}/bench.zarr", n_workers=workers, progress=False)
        return time.perf_counter() - start


def swept_warm(cfg: dict, workers: int) -> tuple[float, float]:
    """A cluster started and warmed (imports, data) first, as a long-lived or existing cluster
    is: (seconds to start and warm it, seconds for the sweep against its scheduler)."""
    import dask
    from dask.distributed import LocalCluster

    start = time.perf_counter()
    with dask.config.set({"distributed.worker.profile.enabled": False}), \
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            tempfile.TemporaryDirectory() as tmp:
        warm = {**cfg, "grid": {"seed": list(range(4 * workers))}}
        run_sweep(warm, f"{tmp}/warm.zarr", scheduler=cluster.scheduler_address, progress=False)
        ready = time.perf_counter()
        run_sweep(cfg, f"{tmp}/bench.zarr", scheduler=cluster.scheduler_address, progress=False)
        return ready - start, time.perf_counter() - ready


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = config(args.points)
    recall_point(**next(Grid.from_config(cfg).points())[1])  # warm-up: imports, data
    ratios, warm_ratios = [], []
    for r in range(args.rounds):
        one, many = serial(cfg), swept(cfg, args.workers)
        startup, warm = swept_warm(cfg, args.workers)
        ratios.append(one / many)
        warm_ratios.append(one / warm)
        print(f"round {r + 1}: {args.points} recalls, one process {one:.1f} s ({args.points / one:.0f}/s); "
              f"sweep on {args.workers} workers {many:.1f} s ({args.points / many:.0f}/s, incl. cluster start), "
              f"speed-up {one / many:.2f}x; on a warm cluster {warm:.1f} s (start and warm-up {startup:.1f} s), "
              f"speed-up {one / warm:.2f}x", flush=True)
    for label, values in (("cold (cluster started by the sweep)", ratios), ("warm cluster", warm_ratios)):
        median = statistics.median(values)
        print(f"speed-up, {label}: median {median:.2f}x, range {min(values):.2f}-{max(values):.2f}x over "
              f"{args.rounds} rounds; target 1.7x {'met' if median >= 1.7 else 'missed'}")


if __name__ == "__main__":
    main()
