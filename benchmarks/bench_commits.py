"""Side by side: the same workloads on two versions of the package (run by hand, not a test).

Refactors must not slow the hot loops (issue 16); timings on a shared machine drift by 10-15%,
so comparing against a number from another day says little. This script checks out ``--base``
(a git revision) into a temporary worktree and times each workload on it and on the working
tree, alternately, in fresh interpreters with one thread and the version's package first on
``sys.path``: the best of ``--repeat`` runs per round, over ``--rounds`` interleaved rounds.
It also counts the kernels the first workload launches (torch's profiler), which does not drift.

    python benchmarks/bench_commits.py --base 8606949

Workloads (through the public API both versions have): ``mchn-l2`` (dot product, softmax,
dopri5, rtol 1e-5) at N = 100, B = 32, I = 64 and at N = 1,000, B = 64, I = 784; the smoothed
Manhattan distance (``uhn-manhattan``, the auto method: cues go implicit) at N = 100, B = 16,
I = 64; a spiking LIF memory population (memory path) at N = 1,000, B = 16; ``tiled``: the
large ``mchn-l2`` with the bank read in 8 tiles (:mod:`neurodyn.network.tiled`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKLOAD = r'''
import json, sys, time
import torch
torch.set_num_threads(1)
from neurodyn import Monitor, Solver, from_preset, simulate
name, repeat, count = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "count"
gen = torch.Generator().manual_seed(0)

def problem(n, b, dims):
    memories = torch.sign(torch.randn(n, dims, generator=gen))
    flips = torch.rand(b, dims, generator=gen) < 0.2
    return memories, torch.where(flips, -memories[:b], memories[:b])

if name.startswith("mchn-l2"):
    n, b, dims = {"mchn-l2 small": (100, 32, 64), "mchn-l2 large": (1000, 64, 784)}[name]
    memories, cues = problem(n, b, dims)
    net = from_preset("mchn-l2", memories)
    run = lambda: simulate(net, cues, 20.0, solver=Solver("dopri5", rtol=1e-5, atol=1e-7), monitor=Monitor(("v",), n_times=21))
elif name == "tiled":
    import neurodyn.network.tiled as tiled
    tiled.TILE_ELEMENTS = 64 * 128  # the bank of 1,000 read in 8 tiles
    memories, cues = problem(1000, 64, 784)
    net = from_preset("mchn-l2", memories)
    run = lambda: simulate(net, cues, 20.0, solver=Solver("dopri5", rtol=1e-5, atol=1e-7), monitor=Monitor(("v",), n_times=21))
elif name == "manhattan":
    memories, cues = problem(100, 16, 64)
    net = from_preset("uhn-manhattan", memories)
    run = lambda: simulate(net, cues, 20.0, solver=Solver("auto"), monitor=Monitor(("v",), n_times=21))
else:
    from neurodyn.spiking import LIF, SpikingMemory
    memories, cues = problem(1000, 16, 64)
    net = from_preset("mchn-l2", memories)
    sp = SpikingMemory(LIF(), dt=0.1, tau_s=5.0, path="memory")
    run = lambda: simulate(net, cues, 50.0, spiking=sp, monitor=Monitor(("spikes",), n_times=11), seed=0)
run()
if count:
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    print(json.dumps(sum(e.count for e in prof.key_averages() if e.key.startswith("aten::"))))
else:
    best = []
    for _ in range(repeat):
        t0 = time.perf_counter(); run(); best.append(time.perf_counter() - t0)
    print(json.dumps(min(best)))
'''

NAMES = ("mchn-l2 small", "mchn-l2 large", "tiled", "manhattan", "spiking")


def measure(tree: Path, name: str, repeat: int, mode: str = "time") -> float:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", WORKLOAD, name, str(repeat), mode], env=env, check=True,
                         capture_output=True, text=True, cwd=tree).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the git revision to compare the working tree against")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=10, help="runs per round; the best counts")
    parser.add_argument("--only", nargs="*", choices=NAMES, default=list(NAMES))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), args.base], check=True,
                       capture_output=True)
        try:
            trees = {args.base: base, "working tree": ROOT}
            print(f"| workload | {args.base} (s, best per round) | working tree (s) | ratio of medians |")
            print("|---|---|---|---|")
            for name in args.only:
                times: dict[str, list[float]] = {label: [] for label in trees}
                for _ in range(args.rounds):
                    for label, tree in trees.items():
                        times[label].append(measure(tree, name, args.repeat))
                a, b = (times[label] for label in trees)
                cells = [" / ".join(f"{t:.4f}" for t in ts) for ts in (a, b)]
                print(f"| {name} | {cells[0]} | {cells[1]} | {statistics.median(b) / statistics.median(a):.3f} |",
                      flush=True)
            kernels = {label: measure(tree, NAMES[0], 1, "count") for label, tree in trees.items()}
            print(f"\naten operators launched by one `{NAMES[0]}` run: "
                  + ", ".join(f"{label}: {int(k):,}" for label, k in kernels.items()))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=True)


if __name__ == "__main__":
    main()
