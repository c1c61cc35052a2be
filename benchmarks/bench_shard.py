"""Cost of the exact combine in sharded recall (run by hand: not a test).

    python benchmarks/bench_shard.py [--n 1000000] [--ranks 2] [--cues 64] [--features 784]

Each of ``--ranks`` gloo processes (one thread each) holds N / ranks random float32 memories
(generated on the rank: the full bank never exists anywhere). It times one right-hand side of
the reduced softmax dynamics (mchn-l2) twice: on the sharded network (scoring + the log-sum-exp
all-reduce + the summed drive) and on the same shard as a plain network (scoring only). The
difference is what the combine adds. Target (issue 7): at most 15% at N=10^6, I=784, B=64.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from neurodyn import Network, State
from neurodyn.scale.shard import Shards, shard_bounds


def _median_times(fns, repeat: int) -> list[float]:
    """Median wall time of each function, calls interleaved so that drifts hit all alike."""
    times = [[] for _ in fns]
    for fn in fns:
        fn()
    for _ in range(repeat):
        for fn, out in zip(fns, times):
            dist.barrier()
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return [sorted(t)[len(t) // 2] for t in times]


def _rank(rank: int, world: int, init: str, n: int, b: int, i: int, repeat: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world)
    start, stop = shard_bounds(n, world, rank)
    gen = torch.Generator().manual_seed(rank)
    shard = torch.rand(stop - start, i, generator=gen)
    cues = torch.rand(b, i, generator=torch.Generator().manual_seed(1234))
    kw = dict(similarity="biased_dot", separation="softmax:10")
    sharded = Network(shard, shards=Shards(start, n), **kw)
    local = Network(shard, **kw)
    cue = local.make_cue(cues)
    state = State(cues)
    t_sharded, t_local = _median_times([lambda: sharded.velocity(state, cue), lambda: local.velocity(state, cue)],
                                       repeat)
    if rank == 0:
        print(f"N={n:,} over {world} ranks ({stop - start:,} memories each), B={b}, I={i}: "
              f"local scoring {t_local * 1e3:.1f} ms, sharded RHS {t_sharded * 1e3:.1f} ms, "
              f"combine adds {100 * (t_sharded / t_local - 1):.1f}%")
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--cues", type=int, default=64)
    parser.add_argument("--features", type=int, default=784)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        mp.start_processes(_rank, args=(args.ranks, os.path.join(tmp, "init"), args.n, args.cues, args.features,
                                        args.repeat), nprocs=args.ranks, start_method="spawn")


if __name__ == "__main__":
    main()
