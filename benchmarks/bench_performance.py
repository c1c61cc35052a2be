"""Memory kernels and solvers side by side in one process; prints a table and writes it to
docs/performance.md (between the ``bench_performance`` markers). Run by hand, not a test:

    python benchmarks/bench_performance.py [--device cuda] [--quick] [--no-write]

1. One right-hand side ``softmax(beta sim(M, g)) @ M`` for dot, squared-L2 and L1 similarities:
   plain PyTorch (the B x N score matrix, ``torch.cdist(p=1)`` for L1) against the tiled pass of
   ``neurodyn.network.tiled`` (with the Triton L1 kernel on CUDA). Throughput counts 4 B N I operations;
   memory is the peak allocated on CUDA, and on the CPU the scores held at once (B x N or B x tile).
2. How the tiled step's cost grows with N, B and I.
3. Solvers on the reduced MCHN with half-masked cues (dopri5, rtol 1e-4, atol 1e-6): torchdiffeq,
   torchode and the per-cue engine (``neurodyn.solve.per_cue``), with wall time, batched RHS calls, the
   cue-evaluations computed, and overhead = wall / (batched calls x one RHS); then the same with
   steady-state stopping, where cues settle at different times.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import re
import time
from pathlib import Path

import torch

from neurodyn import Monitor, Network, Solver, from_preset, simulate, triton_distance
from neurodyn.network import State, tiled

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- bench_performance:begin -->", "<!-- bench_performance:end -->"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, repeat: int = 3) -> float:
    """Best of ``repeat`` wall times after a warm-up call."""
    fn()
    _sync(device)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def peak_bytes(fn, device: str) -> int | None:
    if not device.startswith("cuda"):
        return None
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    _sync(device)
    return torch.cuda.max_memory_allocated() - base


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.0f} MiB"


def plain_step(net: Network, g: torch.Tensor) -> torch.Tensor:
    """The unfused right-hand side: the whole B x N score matrix, softmax, projection."""
    return net.project(net.separate(net.scores(g)))


def matmul_peak(device: str, n: int = 2048) -> float:
    """The device's fp32 matrix-product rate measured here (FLOP/s): the practical peak."""
    a = torch.rand(n, n, device=device)
    return 2 * n**3 / timed(lambda: a @ a, device, repeat=5)


def kernel_rows(device: str, sizes: list[tuple[int, int, int]]) -> list[str]:
    peak = matmul_peak(device)
    rows = [f"fp32 matrix product measured here: {peak / 1e9:.0f} G FLOP/s (the practical peak below).", "",
            "| similarity | B | N | I | plain PyTorch | tiled (ours) | speed-up | ours, G op/s | of peak | "
            "scores held, plain / tiled | peak memory, plain / tiled |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for b, n, i in sizes:
        gen = torch.Generator().manual_seed(0)
        memories = torch.rand(n, i, generator=gen).to(device)
        g = torch.rand(b, i, generator=gen).to(device)
        for sim in ("dot", "sq_euclidean", "manhattan"):
            net = Network(memories, similarity=sim, separation="softmax:5", dynamics="projection")
            tile = tiled.tile_size(b, n)
            plain = timed(lambda: plain_step(net, g), device)
            ours = timed(lambda: tiled.stream_memories(net.bank(), g, lagrangian=False), device)
            mem = (peak_bytes(lambda: plain_step(net, g), device),
                   peak_bytes(lambda: tiled.stream_memories(net.bank(), g, lagrangian=False), device))
            rate = 4 * b * n * i / ours / 1e9
            rows.append(f"| {sim} | {b} | {n} | {i} | {plain * 1e3:.1f} ms | {ours * 1e3:.1f} ms | "
                        f"{plain / ours:.2f}x | {rate:.1f} | {rate * 1e9 / peak:.0%} | {b * n:,} / {b * tile:,} | "
                        f"{_mib(mem[0])} / {_mib(mem[1])} |")
    return rows


def l1_score_rows(device: str, sizes: list[tuple[int, int, int]]) -> list[str]:
    """The L1 score matrix alone: ``torch.cdist(p=1)`` vs the Triton kernel (CUDA only; on the CPU
    both paths are ``cdist``). An L1 term costs two fp32 instructions (a subtraction and an add
    of the absolute value), and an instruction of the matrix product's fp32 peak is an FMA, two
    FLOP: the instruction limit is ``peak / 4`` terms per second."""
    from neurodyn.similarity import manhattan_distance

    peak = matmul_peak(device)
    kernel = triton_distance.available(device) and device.startswith("cuda")
    rows = ["| B | N | I | torch.cdist(p=1) | of L1 limit | Triton kernel | of L1 limit | speed-up |",
            "|---|---|---|---|---|---|---|---|"]
    for b, n, i in sizes:
        gen = torch.Generator().manual_seed(2)
        memories, g = torch.rand(n, i, generator=gen).to(device), torch.rand(b, i, generator=gen).to(device)
        ref = timed(lambda: torch.cdist(g, memories, p=1.0), device)
        limit = peak / 4
        if kernel:
            ours = timed(lambda: manhattan_distance(memories, g), device)
            rows.append(f"| {b} | {n} | {i} | {ref * 1e3:.2f} ms | {b * n * i / ref / limit:.0%} | "
                        f"{ours * 1e3:.2f} ms | {b * n * i / ours / limit:.0%} | {ref / ours:.1f}x |")
        else:
            rows.append(f"| {b} | {n} | {i} | {ref * 1e3:.2f} ms | {b * n * i / ref / limit:.0%} | - | - | - |")
    return rows


# Linux: writing 5 to /proc/self/clear_refs resets the peak resident size (VmHWM) to the current
# one, so the peak read after the step is the step's own (values in kB).
PEAK_CHILD = """
import sys, torch
from neurodyn import Network
from neurodyn.network import tiled
b, n, i, how = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
gen = torch.Generator().manual_seed(0)
net = Network(torch.rand(n, i, generator=gen), similarity="dot", separation="softmax:5", dynamics="projection")
g = torch.rand(b, i, generator=gen)
def status(key):
    return int(next(l for l in open("/proc/self/status") if l.startswith(key)).split()[1])
open("/proc/self/clear_refs", "w").write("5")
base = status("VmRSS:")
if how == "plain":
    net.project(net.separate(net.scores(g)))
else:
    tiled.stream_memories(net.bank(), g)
print(status("VmHWM:") - base)
"""


def cpu_peak_rows(sizes: list[tuple[int, int, int]]) -> list[str]:
    """Peak resident memory added by one step, plain vs tiled, each in a fresh process."""
    import subprocess
    import sys

    rows = ["| B | N | I | bank | plain: peak added | tiled: peak added |", "|---|---|---|---|---|---|"]
    for b, n, i in sizes:
        added = [int(subprocess.run([sys.executable, "-c", PEAK_CHILD, str(b), str(n), str(i), how], check=True,
                                    capture_output=True, text=True).stdout.split()[-1]) * 1024
                 for how in ("plain", "tiled")]
        rows.append(f"| {b} | {n:,} | {i} | {_mib(n * i * 4)} | {_mib(added[0])} | {_mib(added[1])} |")
    return rows


def scaling_rows(device: str, base: tuple[int, int, int], factors: tuple[int, ...]) -> list[str]:
    rows = ["| grows | B | N | I | tiled L1 step | time / (B N I) relative to the first |", "|---|---|---|---|---|---|"]
    for axis in ("N", "B", "I"):
        first = None
        for f in factors:
            b, n, i = base
            b, n, i = (b * f, n, i) if axis == "B" else (b, n * f, i) if axis == "N" else (b, n, i * f)
            gen = torch.Generator().manual_seed(1)
            net = Network(torch.rand(n, i, generator=gen).to(device), similarity="manhattan",
                          separation="softmax:5", dynamics="projection")
            g = torch.rand(b, i, generator=gen).to(device)
            sec = timed(lambda: tiled.stream_memories(net.bank(), g, lagrangian=False), device, repeat=2)
            per = sec / (b * n * i)
            first = first or per
            rows.append(f"| {axis} | {b} | {n} | {i} | {sec * 1e3:.1f} ms | {per / first:.2f} |")
    return rows


def _problem(n: int, b: int, i: int, device: str, spread: bool = False):
    """Half-masked cues; with ``spread``, cue k masks a fraction from 0.1 to 0.9 of its features,
    so that cues settle at different times."""
    gen = torch.Generator().manual_seed(0)
    memories = torch.rand(n, i, generator=gen).to(device)
    cues = memories[:b].clone()
    fractions = torch.linspace(0.1, 0.9, b) if spread else torch.full((b,), 0.5)
    for k, frac in enumerate(fractions.tolist()):
        cues[k, int(i * (1 - frac)):] = 0.0
    return from_preset("mchn-l2", memories, beta=10.0), cues


def _torchdiffeq_like(net, cues, duration, rtol, atol, device, engine, steady_tol=None):
    monitor = Monitor(("v",), n_times=21)
    solver = Solver("dopri5", rtol=rtol, atol=atol, engine=engine, steady_tol=steady_tol)
    out = {}

    def go():
        out["ds"] = simulate(net, cues, duration, monitor=monitor, method=solver)

    wall = timed(go, device, repeat=2)
    ds = out["ds"]
    cue_evals = ds.attrs.get("cue_evaluations", ds.attrs["nfe"] * len(cues))
    return wall, ds.attrs["nfe"], cue_evals, ds


def _torchode(net, cues, duration, rtol, atol, device):
    import torchode as to

    cue = net.make_cue(cues)
    term = to.ODETerm(lambda t, y: net.velocity(State(y), cue).v)
    solver = to.AutoDiffAdjoint(to.Dopri5(term=term), to.IntegralController(atol=atol, rtol=rtol, term=term))
    t_eval = torch.linspace(0, duration, 21, device=device).expand(len(cues), -1)
    out = {}

    def go():
        with torch.no_grad():
            out["sol"] = solver.solve(to.InitialValueProblem(y0=cues, t_eval=t_eval))

    wall = timed(go, device, repeat=2)
    stats = out["sol"].stats
    n_f = stats["n_f_evals"]
    return wall, int(n_f.max()), int(n_f.sum()), out["sol"].ys.transpose(0, 1)


def solver_rows(device: str, sizes: list[tuple[int, int, int]], rtol: float = 1e-4, atol: float = 1e-6) -> list[str]:
    rows = ["| N | B | I | solver | wall | batched RHS calls | cue-evaluations | one RHS | overhead | "
            "vs torchdiffeq | max abs diff to torchdiffeq |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    duration = 10.0
    for n, b, i in sizes:
        net, cues = _problem(n, b, i, device)
        cue = net.make_cue(cues)
        state = net.initial_state(cue)
        one = timed(lambda: net.velocity(state, cue), device, repeat=20)
        ref_wall, ref_nfe, ref_evals, ref = _torchdiffeq_like(net, cues, duration, rtol, atol, device, "torchdiffeq")
        results = [("torchdiffeq dopri5", ref_wall, ref_nfe, ref_evals, 0.0)]
        try:
            w, nfe, evals, ys = _torchode(net, cues, duration, rtol, atol, device)
            results.append(("torchode Dopri5", w, nfe, evals, float((ys.cpu() - torch.as_tensor(ref.v.values)).abs().max())))
        except ImportError:
            pass
        w, nfe, evals, ds = _torchdiffeq_like(net, cues, duration, rtol, atol, device, "per-cue")
        results.append(("per-cue dopri5 (ours)", w, nfe, evals, float(abs(ds.v.values - ref.v.values).max())))
        for name, w, nfe, evals, diff in results:
            rows.append(f"| {n} | {b} | {i} | {name} | {w * 1e3:.0f} ms | {nfe} | {evals:,} | {one * 1e3:.2f} ms | "
                        f"{w / (nfe * one):.2f}x | {ref_wall / w:.2f}x | {diff:.1e} |")
    return rows


def steady_rows(device: str, sizes: list[tuple[int, int, int]], rtol: float = 1e-4, atol: float = 1e-6) -> list[str]:
    rows = ["| N | B | I | engine | wall | batched RHS calls | cue-evaluations | cues converged | "
            "convergence times (min..max) |", "|---|---|---|---|---|---|---|---|---|"]
    for n, b, i in sizes:
        net, cues = _problem(n, b, i, device, spread=True)
        for engine in ("torchdiffeq", "per-cue"):
            w, nfe, evals, ds = _torchdiffeq_like(net, cues, 50.0, rtol, atol, device, engine, steady_tol=1e-3)
            ct = ds.convergence_time.values
            rows.append(f"| {n} | {b} | {i} | {engine} | {w * 1e3:.0f} ms | {nfe} | {evals:,} | "
                        f"{int(ds.converged.sum())}/{b} | {ct.min():.2f}..{ct.max():.2f} |")
    return rows


def header(device: str) -> list[str]:
    import torchdiffeq

    try:
        import torchode
        tode = torchode.__version__
    except ImportError:
        tode = "not installed"
    name = torch.cuda.get_device_name() if device.startswith("cuda") else f"{platform.processor() or platform.machine()} CPU"
    return [f"Measured {dt.date.today().isoformat()} on {name} ({device}, {torch.get_num_threads()} threads), "
            f"torch {torch.__version__}, torchdiffeq {torchdiffeq.__version__}, torchode {tode}, "
            f"Triton kernel in use: {triton_distance.available(device) and device.startswith('cuda')}. "
            "Float32, TF32 off."]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a check that it runs)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/performance.md alone")
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = args.device
    gpu = dev.startswith("cuda")
    if args.quick:
        k_sizes, s_sizes, base = [(64, 2000, 64)], [(100, 32, 64)], (16, 500, 32)
    elif gpu:
        k_sizes, s_sizes, base = [(1024, 10_000, 784), (1024, 100_000, 784)], \
            [(100, 32, 784), (1000, 64, 784), (10_000, 1024, 784)], (256, 10_000, 784)
    else:
        k_sizes, s_sizes, base = [(64, 10_000, 784), (256, 10_000, 784), (1024, 10_000, 784)], \
            [(100, 32, 784), (1000, 64, 784)], (64, 2_000, 256)
    sections = [
        *header(dev), "",
        "**One right-hand side** (softmax, beta 5, projection): plain PyTorch vs the tiled pass, forced "
        "(the default path tiles only when B x N exceeds 2^22 scores; below, it is the plain one).", "",
        *kernel_rows(dev, k_sizes), "",
        "**The L1 score matrix alone** (the Triton kernel runs on CUDA only).", "",
        *l1_score_rows(dev, k_sizes), "",
        *([] if gpu else ["**Peak memory of one step on the CPU** (dot, softmax; resident memory added "
                          "by the step, each in a fresh process).", "",
                          *cpu_peak_rows([(1024, 20_000, 784), (1024, 100_000, 784)]), ""]),
        "**Scaling of the tiled L1 step** (each axis x1, x2, x4 from the base size).", "",
        *scaling_rows(dev, base, (1, 2, 4)), "",
        "**Solvers** (reduced MCHN, half-masked cues, dopri5, rtol 1e-4, atol 1e-6, 10 time units, "
        "21 recording times).", "",
        *solver_rows(dev, s_sizes), "",
        "**Cues that settle at different times** (masks of 10% to 90% of the features, steady_tol 1e-3, "
        "up to 50 time units).", "",
        *steady_rows(dev, s_sizes),
    ]
    text = "\n".join(sections)
    print(text)
    if not args.no_write and not args.quick:
        doc = DOC.read_text()
        block = f"{BEGIN}\n### {'GPU' if gpu else 'CPU'}\n\n{text}\n{END}"
        pattern = re.compile(re.escape(BEGIN) + r"\n### " + ("GPU" if gpu else "CPU") + r".*?" + re.escape(END), re.S)
        doc = pattern.sub(block, doc) if pattern.search(doc) else doc.rstrip() + "\n\n" + block + "\n"
        DOC.write_text(doc)
        print(f"written to {DOC}")


if __name__ == "__main__":
    main()
