"""The model matrix: every preset, and every similarity x {softmax, max, polynomial} x {gradient,
projection}, in float32 and float64, recalled from the CLI's default problem (run by hand, not
a test; it writes its tables into docs/performance.md between the ``bench_models`` markers).

    python benchmarks/bench_models.py [--data digits|mnist] [--anchors] [--no-write]

Each row is one ``neurodyn recall`` as the CLI builds it (``--model`` or ``--similarity/
--separation/--dynamics`` over the default preset ``mchn-l2``), solved by ``Solver("auto")``
at the CLI's tolerances (rtol 1e-5, atol 1e-7, steady_tol 1e-4): how it ended (refused up
front, or the cues' statuses), wall time, right-hand-side evaluations, steps, Jacobians, cues
on the implicit method, retrieval and the Lyapunov verdict. ``--anchors`` adds, for the float64
rows, torchdiffeq's dopri5 on the same batch and scipy's ``solve_ivp`` (LSODA and Radau, one cue
at a time, on the first ``--anchor-cues`` cues, with the same steady-state stop as a terminal
event), each under a time limit, as seconds per cue beside ours.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import signal
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from neurodyn import Monitor, Solver, SolverError
from neurodyn.analysis import lyapunov_check, retrieval
from neurodyn.network import PRESETS, State
from neurodyn.jobs.recall import model_config, prepare_memory
from neurodyn.similarity import SIMILARITIES, make_similarity
from neurodyn.simulation import simulate

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- bench_models:begin -->", "<!-- bench_models:end -->"
SEPARATIONS = ("softmax:10", "max", "polynomial:3")
TOLERANCES = dict(rtol=1e-5, atol=1e-7, steady_tol=1e-4)
SIZES = {"digits": 100, "mnist": 1000}


class TimeLimit(Exception):
    pass


def _alarm(signum, frame):
    raise TimeLimit()


def limited(seconds: float, fn):
    """``fn()`` or TimeLimit after ``seconds`` (SIGALRM: torch's kernels are short, so it lands)."""
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def combinations() -> list[tuple[str, dict]]:
    out = [(f"preset {name}", model_config(name)) for name in PRESETS]
    for sim in SIMILARITIES:
        for sep in SEPARATIONS:
            for dyn in ("gradient", "projection"):
                out.append((f"{sim} / {sep} / {dyn}", model_config("mchn-l2", similarity=sim, separation=sep,
                                                                     dynamics=dyn)))
    return out


def scipy_anchor(net, queries: torch.Tensor, method: str, limit: float) -> float | str:
    """Seconds per cue of scipy's solve_ivp on each cue alone (float64), or why none."""
    from scipy.integrate import solve_ivp

    net = net.to(dtype=torch.float64)
    spent = 0.0
    for q in queries.double():
        cue = net.make_cue(q[None])
        y0 = net.initial_state(cue).v[0].numpy()

        def rhs(t, y):
            with torch.no_grad():
                return net.velocity(State(torch.from_numpy(y)[None]), cue).v[0].numpy()

        def steady(t, y):
            return np.abs(rhs(t, y)).max() - TOLERANCES["steady_tol"] * max(1.0, np.abs(y).max())

        steady.terminal = True
        start = time.perf_counter()
        try:
            sol = limited(limit, lambda: solve_ivp(rhs, (0.0, 20.0), y0, method=method, rtol=TOLERANCES["rtol"],
                                                   atol=TOLERANCES["atol"], events=steady))
        except TimeLimit:
            return f"> {limit:g} s"
        spent += time.perf_counter() - start
        if sol.status < 0:
            return f"failed ({sol.message[:40]})"
    return spent / len(queries)


def torchdiffeq_anchor(net, queries, limit: float) -> float | str:
    solver = Solver("dopri5", engine="torchdiffeq", rtol=TOLERANCES["rtol"], atol=TOLERANCES["atol"],
                    steady_tol=TOLERANCES["steady_tol"])
    start = time.perf_counter()
    try:
        limited(limit, lambda: simulate(net, queries, 20.0, monitor=Monitor(("v",), n_times=101), method=solver))
    except TimeLimit:
        return f"> {limit:g} s"
    except SolverError as err:
        return f"failed ({str(err)[:40]})"
    return (time.perf_counter() - start) / len(queries)


def fresh(net):
    """``net`` with a new similarity of the same spec, as a new run builds it: its fused kernels
    (``neurodyn.similarity.FUSED_AFTER``) start eager again, so that each anchor pays its own
    eager terms and compilation instead of inheriting ours."""
    return dataclasses.replace(net, similarity=make_similarity(net.similarity.name))


def _cell(x: float | str) -> str:
    return f"{x * 1e3:.1f} ms" if isinstance(x, float) else x


def row(label: str, model: dict, data_name: str, dtype: str, args) -> str:
    try:
        _, net, stored, queries = prepare_memory(data_name, SIZES[data_name], "mask:0.25,side=bottom", model,
                                                 dtype=dtype)
        stored, queries = stored[:100], queries[:100]  # 100 cues
        net = net.integrable()  # what simulate integrates (smoothed Manhattan), also for the anchors
        obstacle = net.retrieval_obstacle()  # simulate's refusals, before any work
        if obstacle:
            raise ValueError(obstacle)
    except ValueError as err:
        return f"| {label} | {dtype} | refused: {str(err).split(';')[0][:110]} |" + " |" * (9 if args.anchors else 6)
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = limited(args.limit, lambda: simulate(net, queries, 20.0, monitor=Monitor(("v", "energy"), n_times=101),
                                                      method=Solver("auto", **TOLERANCES), targets=stored))
    except TimeLimit:
        return f"| {label} | {dtype} | over {args.limit:g} s |" + " |" * (9 if args.anchors else 6)
    wall = time.perf_counter() - start
    status = ds.solver_status.values
    counts = "/".join(str(int((status == c).sum())) for c in (1, 2, 3))
    implicit = int((ds.solver_method_used == 1).sum())
    rate = retrieval(ds).attrs["rate"]
    try:
        check = lyapunov_check(ds)
        verdict = ("ok" if check.monotone else "RISES") + (" (guaranteed)" if check.guaranteed else "")
    except ValueError:
        verdict = "no finite energy"
    cells = [label, dtype, counts, f"{wall:.2f}", f"{int(ds.solver_nfe.sum())}",
             f"{int(ds.solver_steps_accepted.sum() + ds.solver_steps_rejected.sum())}",
             f"{int(ds.solver_jacobians.sum())}", str(implicit), f"{rate:.0%}", verdict]
    if args.anchors:
        if dtype == "float64":
            ours = wall / len(queries)
            cells += [_cell(ours) + " / " + _cell(torchdiffeq_anchor(fresh(net), queries, args.anchor_limit))]
            cells += [_cell(scipy_anchor(fresh(net), queries[:args.anchor_cues], m, args.anchor_limit))
                      for m in ("LSODA", "Radau")]
        else:
            cells += ["", "", ""]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=tuple(SIZES), default="digits")
    parser.add_argument("--anchors", action="store_true", help="torchdiffeq and scipy beside the float64 rows")
    parser.add_argument("--anchor-cues", type=int, default=3)
    parser.add_argument("--anchor-limit", type=float, default=20.0, help="seconds per anchor run")
    parser.add_argument("--limit", type=float, default=120.0, help="seconds per run of ours")
    parser.add_argument("--only", default=None, help="a regular expression on the row labels")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    header = ["combination", "dtype", "finished/steady/failed", "wall (s)", "evaluations", "steps",
              "Jacobians", "implicit cues", "retrieval", "energy"]
    if args.anchors:
        header += ["per cue: ours / torchdiffeq dopri5", f"scipy LSODA ({args.anchor_cues} cues)",
                   f"scipy Radau ({args.anchor_cues} cues)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    print("\n".join(lines), flush=True)
    row("warm-up", model_config("mchn-l2"), args.data, "float32", argparse.Namespace(**{**vars(args), "anchors": False}))
    for label, model in combinations():
        if args.only and not re.search(args.only, label):
            continue
        for dtype in ("float32", "float64"):
            lines.append(row(label, model, args.data, dtype, args))
            print(lines[-1], flush=True)
    if args.no_write:
        return
    title = f"### {args.data}: {SIZES[args.data]} memories, 100 cues"
    block = f"{BEGIN}\n{title}\n\n" + "\n".join(lines) + f"\n{END}"
    text = DOC.read_text()
    pattern = re.compile(re.escape(BEGIN) + r"\n" + re.escape(title) + r".*?" + re.escape(END), re.S)
    DOC.write_text(pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n")


if __name__ == "__main__":
    main()
