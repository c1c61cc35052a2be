"""The implicit method's two linear solves side by side (run by hand, not a test): the dense one
(a finite-difference D x D Jacobian per cue, LU per step) and the matrix-free one (GMRES on
Jacobian-vector products, neurodyn.krylov), beside dopri5 alone, on a stiff model at growing
state sizes; writes its table into docs/performance.md between the ``bench_implicit`` markers.

    python benchmarks/bench_implicit.py [--no-write]

The model is ``mchn-l2`` with the Manhattan similarity smoothed at 0.01 (stiff: the ``auto``
method moves nearly every cue to the implicit one), 100 memories, 16 cues with the bottom quarter
masked, float32 and float64, the CLI's tolerances. Sizes: digits at 8x8 and 16x16, MNIST at
28x28, CIFAR-10 at 3x32x32 (the dense solve is left out above 1,000 units: its Jacobians take
D right-hand sides each and its run minutes).
"""

from __future__ import annotations

import argparse
import re
import time
import warnings
from pathlib import Path

import torch

import neurodyn.solve.rosenbrock as rosenbrock
from neurodyn import Monitor, Solver, from_preset, simulate
from neurodyn.analysis import retrieval
from neurodyn.data import corrupt, load_dataset

DOC = Path(__file__).resolve().parents[1] / "docs" / "performance.md"
BEGIN, END = "<!-- bench_implicit:begin -->", "<!-- bench_implicit:end -->"
PROBLEMS = (("digits", 8), ("digits", 16), ("mnist", None), ("cifar10", None))
TOLERANCES = dict(rtol=1e-5, atol=1e-7, steady_tol=1e-4, max_steps=20000)


def run(net, cues, targets, method: str, dense_limit: int) -> str:
    rosenbrock.DENSE_JACOBIAN_MAX_DIM = dense_limit
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = simulate(net, cues, 20.0, monitor=Monitor(("v",), n_times=21), method=Solver(method, **TOLERANCES),
                      targets=targets)
    wall = time.perf_counter() - start
    status = ds.solver_status.values
    done = int(((status == 1) | (status == 2)).sum())
    return (f"{wall:.2f} s, {int(ds.solver_nfe.sum())} ev., {done}/{len(status)} done, "
            f"{retrieval(ds).attrs['rate']:.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    default = rosenbrock.DENSE_JACOBIAN_MAX_DIM
    lines = ["| data | units | dtype | dopri5 | auto, dense solve | auto, matrix-free solve |", "|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for name, side in PROBLEMS:
        images = load_dataset(name)
        images = (images.resized(side) if side else images).images[:100]
        memories = images.reshape(100, -1)
        cues = corrupt(images[:16], "mask", fraction=0.25, side="bottom").reshape(16, -1)
        for dtype in (torch.float32, torch.float64):
            net = from_preset("mchn-l2", memories.to(dtype), similarity="manhattan:smooth=0.01")
            q = cues.to(dtype)
            cells = [run(net, q, memories[:16], "dopri5", default)]
            dims = memories.shape[1]
            cells.append(run(net, q, memories[:16], "auto", dims) if dims <= 1000 else "(not run)")
            cells.append(run(net, q, memories[:16], "auto", 1))
            lines.append(f"| {name} | {dims} | {str(dtype)[6:]} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    rosenbrock.DENSE_JACOBIAN_MAX_DIM = default
    if args.no_write:
        return
    block = f"{BEGIN}\n" + "\n".join(lines) + f"\n{END}"
    text = DOC.read_text()
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    DOC.write_text(pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n")


if __name__ == "__main__":
    main()
