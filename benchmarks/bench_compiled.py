"""Compiled loops of per-cue steps against the eager engine, torchdiffeq and torchode (issue 19).

    python benchmarks/bench_compiled.py [--sizes N,B,I ...] [--rounds R] [--write-docs]

Run by hand (not a test). For the reduced MCHN (``mchn-l2``, beta 10, float32, dopri5 at rtol
1e-4, atol 1e-6, 10 time units, 21 recording times; cues: stored patterns with their second half
zeroed), times the solve alone on the same vector field ``network.velocity``:

- torchdiffeq's dopri5 (one step size for the batch);
- torchode's Dopri5 with its integral controller (per-sample step sizes), where installed;
- the per-cue engine eagerly (``Solver(compile=False)``), and as compiled loops of attempts
  (``compile=True``), after a warm-up run that compiles;

and, for the compiled engine, how long compiling takes in a fresh process with an empty inductor
cache (cold) and again with the cache it left (warm): the one-time cost a run must repay. Each
solve's time is the best of ``--repeat`` runs, taken in ``--rounds`` interleaved rounds (the
machine is a shared VM); the table gives the fastest round. ``--write-docs`` replaces the
table of docs/performance.md's section "Compiled step loops".
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torchdiffeq import odeint

from neurodyn import from_preset
from neurodyn.network import State
from neurodyn.solve import PerCueSolve

ROOT = Path(__file__).resolve().parents[1]
DURATION, N_TIMES, RTOL, ATOL = 10.0, 21, 1e-4, 1e-6


def problem(n: int, b: int, i: int):
    memories = torch.rand(n, i, generator=torch.Generator().manual_seed(0))
    cues = memories[:b].clone()
    cues[:, i // 2:] = 0.0
    net = from_preset("mchn-l2", memories, beta=10.0)
    return net, net.make_cue(cues)


def best(fn, repeat: int) -> float:
    fn()  # (warm-up)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def per_cue(net, cue, compiled: bool):
    times = torch.linspace(0, DURATION, N_TIMES)

    def rhs(t, y, rows=None):
        return net.velocity(State(y), cue.select(rows), t).v

    def run():
        solve = PerCueSolve(rhs, cue.v0, times, "dopri5", rtol=RTOL, atol=ATOL, compiled=compiled,
                            field_size=cue.batch * net.n_memories * net.n_features)
        with torch.no_grad():
            rows = [ys for _, ys in solve]
        return solve, torch.cat(rows)[-1]

    return run


def torchdiffeq_run(net, cue):
    times = torch.linspace(0, DURATION, N_TIMES)

    def run():
        with torch.no_grad():
            return odeint(lambda t, y: net.velocity(State(y), cue).v, cue.v0, times, method="dopri5", rtol=RTOL,
                          atol=ATOL)[-1]

    return run


def torchode_run(net, cue):
    try:
        import torchode as to
    except ImportError:
        return None
    term = to.ODETerm(lambda t, y: net.velocity(State(y), cue).v)
    solver = to.AutoDiffAdjoint(to.Dopri5(term=term), to.IntegralController(atol=ATOL, rtol=RTOL, term=term))
    t_eval = torch.linspace(0, DURATION, N_TIMES).expand(cue.batch, -1)

    def run():
        with torch.no_grad():
            return solver.solve(to.InitialValueProblem(y0=cue.v0, t_eval=t_eval)).ys[:, -1]

    return run


def compile_seconds(n: int, b: int, i: int, cache: str) -> float:
    """The first compiled solve in a fresh process with inductor's cache at ``cache``, less the
    same process's eager solve (the compile's share of the first run)."""
    code = (f"import sys, time, torch; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); "
            "from bench_compiled import problem, per_cue; torch.set_num_threads(2); "
            f"net, cue = problem({n}, {b}, {i}); eager = per_cue(net, cue, False); eager(); "
            "s = time.perf_counter(); eager(); e = time.perf_counter() - s; "
            f"s = time.perf_counter(); per_cue(net, cue, True)(); print(time.perf_counter() - s - e)")
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def measure(sizes: list[tuple[int, int, int]], rounds: int, repeat: int) -> list[str]:
    torch.set_num_threads(2)
    rows = ["| N | B | I | torchdiffeq dopri5 | torchode Dopri5 | per-cue eager | per-cue compiled "
            "| compiled vs torchdiffeq | compiled vs eager | max abs diff to torchdiffeq | compiled loops, attempts | "
            "compile: cold / warm cache |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for n, b, i in sizes:
        net, cue = problem(n, b, i)
        runs = {"torchdiffeq": torchdiffeq_run(net, cue), "torchode": torchode_run(net, cue),
                "eager": per_cue(net, cue, False), "compiled": per_cue(net, cue, True)}
        runs["compiled"]()  # (compiles in this process)
        walls: dict[str, float] = {}
        for _ in range(rounds):
            for name, run in runs.items():
                if run is not None:
                    walls[name] = min(walls.get(name, float("inf")), best(run, repeat))
        ref = runs["torchdiffeq"]()
        solve, last = runs["compiled"]()
        diff = float((last - ref).abs().max())
        with tempfile.TemporaryDirectory() as cache:
            cold = compile_seconds(n, b, i, cache)
            warm = compile_seconds(n, b, i, cache)

        def ms(name: str) -> str:
            return f"{walls[name] * 1e3:.1f} ms" if name in walls else "not installed"

        rows.append(f"| {n:,} | {b} | {i} | {ms('torchdiffeq')} | {ms('torchode')} | {ms('eager')} | "
                    f"{ms('compiled')} | {walls['torchdiffeq'] / walls['compiled']:.2f}x | "
                    f"{walls['eager'] / walls['compiled']:.2f}x | {diff:.1e} | {solve.compiled_blocks}, "
                    f"{solve.attempts} | {cold:.0f} s / {warm:.1f} s |")
        print(rows[-1], flush=True)
    return rows


def write_docs(rows: list[str]) -> None:
    """Replace the table between the markers of docs/performance.md's "Compiled step loops"."""
    path = ROOT / "docs" / "performance.md"
    text = path.read_text()
    table = (f"The solve alone on the same vector field, float32, dopri5 at rtol {RTOL:g}, atol {ATOL:g}, "
             f"{DURATION:g} time units, {N_TIMES} recording times; 2 torch threads on this machine (2 cores, "
             f"CPU build of torch {torch.__version__.split('+')[0]}), best of interleaved rounds. Compile: the "
             "first compiled solve in a fresh process less its eager solve, with an empty inductor cache "
             "(cold) and with the cache that left (warm).\n\n" + "\n".join(rows) + "\n")
    begin, end = "<!-- bench_compiled:begin -->\n", "<!-- bench_compiled:end -->"
    if begin not in text:
        raise SystemExit("docs/performance.md has no bench_compiled markers")
    head, rest = text.split(begin, 1)
    path.write_text(head + begin + table + rest[rest.index(end):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["100,32,64", "1000,64,784"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    sizes = [tuple(int(x) for x in s.split(",")) for s in args.sizes]
    rows = measure(sizes, args.rounds, args.repeat)  # type: ignore[arg-type]
    print("\n".join(rows))
    if args.write_docs:
        write_docs(rows)


if __name__ == "__main__":
    main()
