"""The similarities' (cue, memory, unit) kernels, eager and compiled (run by hand, not a test).

    python benchmarks/bench_fused.py [--sizes B,N,I ...] [--rounds R]

For each size and dtype, one right-hand side's worth of each kernel: the smoothed Manhattan
distance and its drive (``manhattan:smooth=0.05``, its score then its gradient with the same
cues, as the velocity asks for them) and the Jensen-Shannon score. Eager (the chunked form,
``FUSED_AFTER = inf``) against compiled (``FUSED_AFTER = 0``: inductor, dynamic shapes), best of
``--rounds`` interleaved rounds; the largest relative difference between the two; the first
compiled call's time (tracing and compiling, or loading inductor's cache). Run from a checkout
without compiled kernels (before issue 15's fused kernels) it times the eager column only.
Results go in docs/performance.md by hand.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from neurodyn import similarity

SPECS = ("manhattan:smooth=0.05", "js")


def one_call(sim, memories: torch.Tensor, cues: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The score, and for the Manhattan distance its drive with the same cues."""
    score = sim(memories, cues)
    return torch.cat([score, sim.gradient(memories, cues, weights)], -1) if sim.closed_gradient else score


def build(spec: str, after: float):
    similarity.FUSED_AFTER = after
    return similarity.make_similarity(spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["100,1000,784", "1,1000,784", "100,100,64"])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    fused = hasattr(similarity, "FUSED_AFTER")
    print("| kernel | B, N, I | dtype | eager | compiled | speed-up | max difference | first compiled call |")
    print("|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        b, n, i = map(int, size.split(","))
        for dtype in (torch.float64, torch.float32):
            gen = torch.Generator().manual_seed(0)
            memories = torch.rand(n, i, generator=gen, dtype=dtype) + 0.01
            cues = torch.rand(b, i, generator=gen, dtype=dtype) + 0.01
            weights = torch.rand(b, n, generator=gen, dtype=dtype)
            for spec in SPECS:
                eager = build(spec, math.inf) if fused else similarity.make_similarity(spec)
                reference = one_call(eager, memories, cues, weights)
                cells = ["", "", "", ""]
                times: dict[str, list[float]] = {"eager": [], "compiled": []}
                if fused:
                    compiled = build(spec, 0)
                    start = time.perf_counter()
                    out = one_call(compiled, memories, cues, weights)
                    first = time.perf_counter() - start
                    diff = float((out - reference).abs().max() / reference.abs().max())
                for _ in range(args.rounds):  # interleaved, so that a change of load hits both
                    for name, sim in (("eager", eager), ("compiled", compiled)) if fused else (("eager", eager),):
                        start = time.perf_counter()
                        one_call(sim, memories, cues, weights)
                        times[name].append(time.perf_counter() - start)
                e = min(times["eager"])
                if fused:
                    c = min(times["compiled"])
                    cells = [f"{c * 1e3:.1f} ms", f"{e / c:.1f}x", f"{diff:.0e}", f"{first:.1f} s"]
                print(f"| {spec} | {b}, {n}, {i} | {str(dtype).removeprefix('torch.')} | {e * 1e3:.1f} ms | "
                      + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
