"""Core simulator costs, measured side by side in one process (run by hand: not a test).

    python benchmarks/bench_core.py [--device cuda]

Prints, for the reduced MCHN (``mchn-l2``, dopri5, rtol 1e-5) at several sizes: wall time,
right-hand-side evaluations, the cost of one right-hand side measured alone, and the solver
overhead = wall / (evaluations x one RHS). Also times ``neurodyn recall`` with no options
end to end in a fresh interpreter (the issue's target: well under a minute on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time

import torch

from neurodyn import Monitor, Solver, from_preset, simulate


def _timeit(fn, repeat: int = 3) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def solver_overhead(device: str) -> list[str]:
    rows = ["| N | B | I | wall (s) | RHS evals | one RHS (ms) | overhead |", "|---|---|---|---|---|---|---|"]
    for n, b, i in ((100, 32, 64), (1000, 64, 784), (10_000, 256, 784)):
        gen = torch.Generator().manual_seed(0)
        memories = torch.rand(n, i, generator=gen).to(device)
        cues = memories[:b].clone()
        cues[:, i // 2:] = 0.0
        net = from_preset("mchn-l2", memories, beta=10.0)
        solver = Solver("dopri5", rtol=1e-5, atol=1e-7)
        monitor = Monitor(("energy",), n_times=21)
        result = {}

        def run() -> None:
            result["ds"] = simulate(net, cues, 10.0, monitor=monitor, method=solver)

        wall = _timeit(run)
        nfe = result["ds"].attrs["nfe"]
        cue = net.make_cue(cues)
        state = net.initial_state(cue)
        rhs = _timeit(lambda: net.velocity(state, cue), repeat=20)
        rows.append(f"| {n} | {b} | {i} | {wall:.3f} | {nfe} | {rhs * 1e3:.3f} | {wall / (nfe * rhs):.2f}x |")
    return rows


def cli_default() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "neurodyn.cli", "recall", "--output", f"{tmp}/r.nc"],
                       check=True, capture_output=True)
        return f"`neurodyn recall` (defaults, incl. interpreter start and figure): {time.perf_counter() - start:.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(f"device: {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print("\n".join(solver_overhead(args.device)))
    print(cli_default())


if __name__ == "__main__":
    main()
