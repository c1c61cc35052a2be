"""Probe (issue 19): a whole per-cue dopri5 solve as one compiled ``while_loop``.

    python benchmarks/probe_while_loop.py [N,B,I ...]

Not the engine: a measurement of the structure the next step of issue 19 could take. The
per-cue engine's compiled blocks (``neurodyn.solve.compiled``) unroll 4 attempts and look at the
host between blocks; here one ``torch._higher_order_ops.while_loop`` runs attempts until every cue
reached the end, compiled once (inductor compiles the loop body, not an unrolled block). The
vector field is the reduced MCHN of ``bench_compiled.py`` (``mchn-l2``, beta 10) written out,
with the memories passed as loop inputs: captured from the network, the memories and a view of
them reach the loop as two aliasing inputs, which ``while_loop`` refuses. Only the final state is
kept (no recording grid, statistics, steady state or failures), with the per-cue step control
of ``neurodyn.solve.control`` (dopri5 at rtol 1e-4, atol 1e-6, 10 time units). It prints the
compile time, the attempts, the largest difference to torchdiffeq's final state and the best
solve times against torchdiffeq's.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from torch._higher_order_ops.while_loop import while_loop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_compiled import ATOL, DURATION, RTOL, best, problem, torchdiffeq_run  # noqa: E402

from neurodyn.network import State  # noqa: E402
from neurodyn.solve.control import MAX_GROWTH, MAX_SHRINK, SAFETY  # noqa: E402
from neurodyn.solve.tableau import TABLEAUS  # noqa: E402

BETA = 10.0
MAX_ATTEMPTS = 1000
TAB = TABLEAUS["dopri5"]


def field(y: torch.Tensor, memories: torch.Tensor, half_norms: torch.Tensor) -> torch.Tensor:
    """``softmax(beta (M y - |M|^2 / 2))' M - y``: mchn-l2's velocity with linear value neurons."""
    return torch.softmax(BETA * (y @ memories.T - half_norms), -1) @ memories - y


def attempt(k, t, y, f, h, memories, half_norms):
    """One dopri5 attempt of every running cue (FSAL), accepted or rejected per cue."""
    hc = h[:, None].to(y.dtype)
    stages = [f]
    for row in TAB.a[1:]:
        y_i = y + hc * sum(a * s for a, s in zip(row, stages, strict=False) if a != 0)
        stages.append(field(y_i, memories, half_norms))
    err = hc * sum(e * s for e, s in zip(TAB.error, stages, strict=True) if e != 0)
    scale = ATOL + RTOL * torch.maximum(y.abs(), y_i.abs())
    norm = (err / scale).pow(2).mean(-1).sqrt().double()
    running = t < DURATION
    accept = running & (norm <= 1)
    factor = (SAFETY * norm.clamp_min(1e-30) ** (-1 / TAB.order)).clamp(MAX_SHRINK, MAX_GROWTH)
    t_end = torch.where(t + h >= DURATION - 1e-9, torch.full_like(t, DURATION), t + h)
    t = torch.where(accept, t_end, t)
    h = torch.where(running, torch.minimum(h * factor, (DURATION - t).clamp_min(1e-12)), h)
    return (k + 1, t, torch.where(accept[:, None], y_i, y), torch.where(accept[:, None], stages[-1], f), h,
            memories.clone(), half_norms.clone())  # (outputs may not alias inputs)


def unfinished(k, t, y, f, h, memories, half_norms):
    return (k < MAX_ATTEMPTS) & (t < DURATION).any()


def solve(t, y, f, h, memories, half_norms):
    return while_loop(unfinished, attempt, (torch.zeros((), dtype=torch.long), t, y, f, h, memories, half_norms))


def measure(compiled, n: int, b: int, i: int) -> str:
    net, cue = problem(n, b, i)
    memories = net.memories.clone()
    half_norms = 0.5 * (memories * memories).sum(-1)
    y0 = cue.v0.clone()
    assert torch.equal(field(y0, memories, half_norms), net.velocity(State(y0), cue).v)

    def run():
        with torch.no_grad():
            return compiled(torch.zeros(b, dtype=torch.float64), y0, field(y0, memories, half_norms),
                            torch.full((b,), 0.05, dtype=torch.float64), memories, half_norms)

    start = time.perf_counter()
    out = run()
    compiling = time.perf_counter() - start
    reference = torchdiffeq_run(net, cue)
    diff = float((out[2] - reference()).abs().max())
    rounds = [(best(run, 20), best(reference, 5)) for _ in range(3)]
    return (f"N={n} B={b} I={i}: compile {compiling:.1f} s, {int(out[0])} attempts, max diff {diff:.1e}; "
            + "; ".join(f"while_loop {a * 1e3:.2f} ms vs torchdiffeq {r * 1e3:.2f} ms ({r / a:.1f}x)"
                        for a, r in rounds))


def main() -> None:
    torch.set_num_threads(2)
    compiled = torch.compile(solve, fullgraph=True, dynamic=False, options={"cpp_wrapper": True})
    for size in sys.argv[1:] or ["100,32,64", "1000,64,784"]:
        print(measure(compiled, *map(int, size.split(","))), flush=True)


if __name__ == "__main__":
    main()
