"""Sweep throughput: points per second on a LocalCluster vs one process (run by hand: not a test).

    python benchmarks/bench_sweep.py [--points 1000] [--workers 2] [--rounds 3]

The points are small recalls (10 digits, 5 time units, dopri5). "One process" evaluates them in
a plain loop with one torch thread; the sweep runs them on ``--workers`` processes of one thread
each, writing every point to the Zarr store as it finishes (cluster start included). This VM's
speed drifts by tens of per cent within minutes, so the two are measured in interleaved rounds
and every round's ratio is printed; the verdict uses the median ratio. Target (issue 7): >= 1.7x
on 2 workers.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from neurodyn.sweep import Grid, recall_point, run_sweep


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = config(args.points)
    recall_point(**next(Grid.from_config(cfg).points())[1])  # warm-up: imports, data
    ratios = []
    for r in range(args.rounds):
        one, many = serial(cfg), swept(cfg, args.workers)
        ratios.append(one / many)
        print(f"round {r + 1}: {args.points} recalls, one process {one:.1f} s ({args.points / one:.0f}/s); "
              f"sweep on {args.workers} workers {many:.1f} s ({args.points / many:.0f}/s, incl. cluster start); "
              f"speed-up {one / many:.2f}x", flush=True)
    median = statistics.median(ratios)
    print(f"speed-up: median {median:.2f}x, range {min(ratios):.2f}-{max(ratios):.2f}x over {args.rounds} rounds; "
          f"target 1.7x {'met' if median >= 1.7 else 'missed'}")


if __name__ == "__main__":
    main()
