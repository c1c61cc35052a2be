"""Sweep throughput: points per second on a LocalCluster vs one process (run by hand: not a test).

    python benchmarks/bench_sweep.py [--points 1000] [--workers 2]

The points are small recalls (10 digits, 5 time units, dopri5). "One process" evaluates them in
a plain loop with one torch thread; the sweep runs them on ``--workers`` processes of one thread
each, writing every point to the Zarr store as it finishes. Target (issue 7): >= 1.7x on 2 workers.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from neurodyn.sweep import Grid, recall_point, run_sweep


def config(points: int) -> dict:
    return {"grid": {"seed": list(range(points))},
            "fixed": {"data": "digits", "n_memories": 10, "duration": 5.0, "model": "mchn-l2"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = config(args.points)
    recall_point(**next(Grid.from_config(cfg).points())[1])  # warm-up: imports, data
    start = time.perf_counter()
    for _, params in Grid.from_config(cfg).points():
        recall_point(**params)
    serial = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        run_sweep(cfg, f"{tmp}/bench.zarr", n_workers=args.workers, progress=False)
        swept = time.perf_counter() - start
    print(f"{args.points} recalls: one process {serial:.1f} s ({args.points / serial:.0f}/s); "
          f"sweep on {args.workers} workers {swept:.1f} s ({args.points / swept:.0f}/s, incl. cluster start); "
          f"speed-up {serial / swept:.2f}x")


if __name__ == "__main__":
    main()
