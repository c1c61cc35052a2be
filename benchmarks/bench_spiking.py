"""Spiking memory populations on the CPU: neurodyn vs Brian2 vs a plain NumPy loop (issue 8).

    python benchmarks/bench_spiking.py [--quick] [--rounds R] [--wait-quiet S] [--write-docs]
                                       [--json FILE] [--no-brian2] [--sizes N ...]

``--quick`` (N = 1,000, Brian2 idioms (a)/cython and (c)/numpy, one round) takes about 20 s once
Brian2's Cython cache is warm (the first Brian2 run compiles for a minute or so); the full run
(N = 1,000 and 10,000, every idiom, two rounds) about 15 minutes on 2 cores. ``--write-docs``
replaces the section "Spiking memory populations (issue 8)" of docs/performance.md.

Run by hand (not a test). One network in three implementations: N leaky integrate-and-fire
memory neurons and I = 784 linear rate value neurons, coupled densely both ways, dt = 0.1 ms,
100 ms simulated per cue (times in ms):

- value neurons ``tau_v dv/dt = s - v`` (``g = v``), ``v(0)`` = the cue;
- synaptic current ``tau_s ds/dt = -s``, ``s(0) = v(0)`` (neurodyn's ``cue_weight = 1``); a spike
  of memory neuron mu adds ``P_mu * 1000 / (readout_rate * tau_s)`` to ``s`` (``P = M``);
- memory neurons ``tau_m du/dt = -u + bias + gain * h - inh`` with ``h = M v``; spike at
  ``u >= 1``, reset to 0, refractory 2 ms; the population's inhibition ``inh`` jumps by ``w_inh``
  per spike and decays with ``tau_inh``.

Per step, in neurodyn's order: h from v; u relaxes exactly towards ``c - inh`` (unless
refractory); spikes; reset; inh decays and jumps; v relaxes exactly with s; s decays; spikes add
to s. The patterns are sparse MNIST-like random images (20% of the pixels on, uniform in
[0, 1]), rows scaled to unit norm; a cue is a stored pattern with its lower half (pixels
392..783) zeroed. ``bias = 0`` and ``gain`` puts the median over cues of the top initial drive
at 3 (a drive of 1.75 leaves most cues silent: v decays before the membrane reaches threshold);
``w_inh = 10`` keeps one winner per cue (its stored pattern), firing at about 360 Hz.

Implementations:

- neurodyn ``simulate`` with ``SpikingMemory(LIF(...), path="memory" | "dense")``, float32,
  2 torch threads, one cue and batches of 64 (dense: similarity in tiles of ``batch_tile = 16``);
- a float64 NumPy loop, one cue and batches of 16 (vectorized over the batch);
- Brian2 in its own virtual environment (``benchmarks/.venv-brian2``, made with
  ``python -m venv benchmarks/.venv-brian2 && benchmarks/.venv-brian2/bin/pip install
  "brian2==2.9.0" "numpy<2.4" cython``), through ``benchmarks/brian2_network.py``: (a) ``Synapses``
  both ways, (b) the same created postsynaptic-major, (c) the dense coupling in a NumPy
  ``network_operation``. Every cue is its own run.

Timing: each configuration is warmed up once (a short run), then timed; runs under 3 s take the
best of up to three. Every configuration is measured once per round, the rounds interleaved (the
machine is a shared VM whose speed drifts), and the fastest round is reported with the range.
neurodyn's time is the whole ``simulate`` call (set-up, including the memory path's Gram matrix,
stepping and the Dataset); the stepping alone is reported beside it. Brian2's is ``run()`` only
(synapse creation and compilation excluded). The share of the CPU that other processes took
during each measurement is checked from /proc/stat and flagged above 10%.

Definitions: wall per cue = wall time / cues in the batch (for one simulated 100 ms);
cue-steps/s = cues x steps / wall; synaptic events = spikes x 784 (memory -> value) plus
N x 784 per step and cue (the dense value -> memory coupling), per second of wall time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BRIAN2_PYTHON = HERE / ".venv-brian2" / "bin" / "python"
DOCS = ROOT / "docs" / "performance.md"
SECTION = "## Spiking memory populations (issue 8)"

I = 784
DT, DURATION = 0.1, 100.0
STEPS = round(DURATION / DT)
CONST = {"tau_v": 10.0, "tau_s": 5.0, "tau_m": 10.0, "tau_inh": 5.0, "threshold": 1.0, "reset": 0.0,
         "refractory": 2.0, "readout_rate": 50.0, "bias": 0.0, "w_inh": 10.0, "dt": DT}
TOP_DRIVE = 3.0


# ----------------------------------------------------------------------------- data
def make_data(n: int, n_cues: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stored patterns M (n x 784, unit rows, float64), cues (half-masked stored patterns) and
    the index of each cue's pattern."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, I)) * (rng.random((n, I)) < 0.2)
    m = x / np.linalg.norm(x, axis=1, keepdims=True)
    index = rng.choice(n, n_cues, replace=False)
    cues = m[index].copy()
    cues[:, I // 2:] = 0.0
    return m, cues, index


def choose_gain(m: np.ndarray, cues: np.ndarray) -> float:
    """The gain that puts the median (over cues) of the largest drive at TOP_DRIVE (bias 0)."""
    top = (cues @ m.T).max(axis=1)
    return TOP_DRIVE / float(np.median(top))


# ----------------------------------------------------------------------------- NumPy loop
def numpy_loop(m: np.ndarray, cues: np.ndarray, prm: dict, steps: int = STEPS) -> np.ndarray:
    """The network in a float64 NumPy loop, vectorized over the cues; returns the spike count
    of each cue."""
    b, n = cues.shape[0], m.shape[0]
    mt = np.ascontiguousarray(m.T)
    p = m * (1000.0 / (prm["readout_rate"] * prm["tau_s"]))
    a_v, a_s = math.exp(-prm["dt"] / prm["tau_v"]), math.exp(-prm["dt"] / prm["tau_s"])
    k = prm["tau_s"] / (prm["tau_s"] - prm["tau_v"]) * (a_s - a_v)  # v's response to s over a step
    a_m, a_inh = math.exp(-prm["dt"] / prm["tau_m"]), math.exp(-prm["dt"] / prm["tau_inh"])
    bias, gain, w_inh, theta = prm["bias"], prm["gain"], prm["w_inh"], prm["threshold"]
    v, s = cues.copy(), cues.copy()
    u = np.full((b, n), prm["reset"])
    left = np.zeros((b, n))
    inh = np.zeros((b, 1))
    h = np.empty((b, n))
    total = np.zeros(b, dtype=np.int64)
    for _ in range(steps):
        np.dot(v, mt, out=h)
        target = bias + gain * h - inh
        u = np.where(left <= 0, target + (u - target) * a_m, u)
        spikes = u >= theta
        u[spikes] = prm["reset"]
        left = np.where(spikes, prm["refractory"], np.maximum(left - prm["dt"], 0.0))
        count = spikes.sum(axis=1, keepdims=True)
        inh = inh * a_inh + w_inh * count
        v = a_v * v + k * s
        s *= a_s
        if count.any():
            cue_idx, units = np.nonzero(spikes)
            np.add.at(s, cue_idx, p[units])
            total += count[:, 0]
    return total


# ----------------------------------------------------------------------------- timing
@dataclass
class Row:
    impl: str
    n: int
    batch: int
    wall_s: float  # for the whole batch and one simulated DURATION (Brian2: scaled from simulated_ms)
    spikes_per_cue: float
    simulated_ms: float = DURATION
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def per_cue(self) -> float:
        return self.wall_s / self.batch

    @property
    def steps_per_s(self) -> float:
        return self.batch * STEPS / self.wall_s

    @property
    def events_per_s(self) -> float:
        events = self.batch * (self.spikes_per_cue * I + STEPS * self.n * I)
        return events / self.wall_s


def best_of(fn, repeat: int = 3, short: float = 3.0) -> tuple[float, object]:
    """(best wall time, that call's result) over up to ``repeat`` calls; stops after a call
    longer than ``short`` seconds."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        wall = time.perf_counter() - start
        if wall < best:
            best, result = wall, out
        if wall > short:
            break
    return best, result


def bench_neurodyn(m: np.ndarray, cues: np.ndarray, target: np.ndarray, prm: dict, path: str, repeat: int,
                   batch_tile: int = 16, compile: bool = False) -> Row:
    from neurodyn.network import Network
    from neurodyn.record import Monitor
    from neurodyn.simulation import simulate
    from neurodyn.spiking import LIF, SpikingMemory

    net = Network(torch.tensor(m, dtype=torch.float32), similarity="dot", separation="softmax", tau_v=prm["tau_v"])
    lif = LIF(tau_m=prm["tau_m"], threshold=prm["threshold"], reset=prm["reset"], refractory=prm["refractory"],
              bias=prm["bias"], gain=prm["gain"], normalize_drive=False, w_inh=prm["w_inh"], tau_inh=prm["tau_inh"],
              readout_rate=prm["readout_rate"])
    sp = SpikingMemory(lif, dt=prm["dt"], tau_s=prm["tau_s"], path=path, batch_tile=batch_tile, compile=compile)
    queries = torch.tensor(cues, dtype=torch.float32)

    def run(duration: float = DURATION):
        return simulate(net, queries, duration, method=sp, monitor=Monitor(("spikes",), n_times=11), seed=0)

    start = time.perf_counter()
    run(1.0)  # warm-up: a short run of the same configuration (compiles, builds the Gram matrix)
    warm_up = time.perf_counter() - start
    wall, ds = best_of(run, repeat)
    assert ds.attrs["spiking_path"] == path
    stepping = ds.attrs["wall_time_s"] - ds.attrs.get("setup_time_s", 0.0)
    note = f"stepping alone {stepping / len(cues):.3g} s/cue"
    if path == "dense":
        note += f"; batch_tile {sp.batch_tile}"
    extra = {}
    if compile:  # (the compile time goes into the note when the rounds are merged: the first round's)
        assert ds.attrs["spiking_compiled_blocks"] > 0
        note += f"; {ds.attrs['spiking_compiled_blocks']} blocks, {ds.attrs['spiking_blocks_redone']} redone eagerly"
        extra["warm_up_s"] = warm_up
    name = (f"neurodyn {path}" + (", compiled" if compile else "")
            + ("" if batch_tile == 16 else f" (batch_tile {batch_tile})"))
    cue_of, unit = ds["spike_cue"].values, ds["spike_unit"].values
    own = float(np.mean(unit == target[cue_of])) if len(unit) else float("nan")
    distinct = max((len(np.unique(unit[cue_of == c])) for c in range(len(cues))), default=0)
    return Row(name, m.shape[0], len(cues), wall, ds.attrs["n_spikes"] / len(cues), note=note,
               extra={**extra, "stepping_s": stepping, "own_pattern_share": own, "max_units_per_cue": distinct,
                      "spikes": np.bincount(cue_of, minlength=len(cues)).tolist()})


def bench_numpy(m: np.ndarray, cues: np.ndarray, prm: dict, repeat: int) -> Row:
    numpy_loop(m, cues, prm, steps=10)  # warm-up
    wall, spikes = best_of(lambda: numpy_loop(m, cues, prm), repeat)
    return Row("NumPy loop (float64)", m.shape[0], len(cues), wall, float(spikes.mean()),
               extra={"spikes": spikes.tolist()})


BRIAN2_NAMES = {"synapses": "(a) Synapses", "synapses_post": "(b) Synapses, post-major", "netop": "(c) NumPy network_operation"}


def bench_brian2(m: np.ndarray, cues: np.ndarray, prm: dict, idiom: str, target: str, tmp: str,
                 max_run_s: float = 60.0, duration: float | str = "auto") -> Row | str:
    """One Brian2 configuration in its own process; a Row, or why it did not run."""
    data = Path(tmp) / f"brian2_{m.shape[0]}.npz"
    if not data.exists():
        np.savez(data, M=m, cues=cues)
    cfg = dict(prm, data=str(data), idiom=idiom, target=target, duration_ms=duration, max_run_s=max_run_s, threads=2)
    cfg_path = Path(tmp) / "brian2_config.json"
    cfg_path.write_text(json.dumps(cfg))
    proc = subprocess.run([str(BRIAN2_PYTHON), str(HERE / "brian2_network.py"), str(cfg_path)],
                          capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        return f"Brian2 {idiom}/{target} failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}"
    res = json.loads(lines[-1][len("RESULT "):])
    scale = DURATION / res["duration_ms"]
    wall = float(np.mean(res["run_s"])) * scale
    spikes = float(np.mean(res["spikes"])) * scale
    note = f"build {res['build_s']:.1f} s"
    if target == "cpp_standalone":
        note += f", {res['threads']} OpenMP threads"
    if scale != 1:
        note += f"; ran {res['duration_ms']:g} ms, scaled x{scale:g}"
    name = f"Brian2 {BRIAN2_NAMES[idiom]}, {target}"
    return Row(name, m.shape[0], 1, wall, spikes, simulated_ms=res["duration_ms"], note=note,
               extra={"raw": res, "cues": len(cues), "spikes": [round(x * scale) for x in res["spikes"]]})


# ----------------------------------------------------------------------------- machine
class CpuShare:
    """The share of the machine's CPU time that other processes used between ``start()`` and
    ``stop()`` (busy time from /proc/stat minus this process's and its children's)."""

    def _sample(self) -> tuple[float, float, float]:
        with open("/proc/stat") as f:
            vals = [int(x) for x in f.readline().split()[1:]]
        t = os.times()
        tick = os.sysconf("SC_CLK_TCK")
        busy = (sum(vals) - vals[3] - vals[4]) / tick
        return busy, t.user + t.system + t.children_user + t.children_system, time.perf_counter()

    def start(self) -> "CpuShare":
        self.t0 = self._sample()
        return self

    def stop(self) -> float:
        busy, own, wall = (b - a for a, b in zip(self.t0, self._sample()))
        return max(0.0, busy - own) / max(1e-9, wall * (os.cpu_count() or 1))


def cpu_busy(seconds: float = 1.0) -> float:
    """The share of the CPU that other processes use over ``seconds``."""
    share = CpuShare().start()
    time.sleep(seconds)
    return share.stop()


def wait_quiet(limit: float = 0.1, max_wait: float = 0.0) -> float:
    """Wait (up to ``max_wait`` s) until other processes use less than ``limit`` of the CPU;
    returns the last share measured."""
    deadline = time.monotonic() + max_wait
    busy = cpu_busy(0.5)
    while busy > limit and time.monotonic() < deadline:
        time.sleep(2.0)
        busy = cpu_busy(0.5)
    return busy


def machine() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        flags = re.search(r"^flags\s*:(.*)$", Path("/proc/cpuinfo").read_text(), re.M).group(1).split()
    except OSError:
        flags = []
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "?"
    info = {"cpu": model, "cores": os.cpu_count(), "simd": simd, "python": platform.python_version(),
            "torch": torch.__version__, "numpy": np.__version__, "torch_threads": torch.get_num_threads(),
            "date": dt.date.today().isoformat()}
    try:
        from importlib import metadata
        info["neurodyn"] = metadata.version("neurodyn")
    except Exception:
        info["neurodyn"] = "?"
    try:  # which neurodyn: the commit, and whether neurodyn/ had uncommitted changes
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True).stdout.strip()
        diff = subprocess.run(["git", "-C", str(ROOT), "diff", "HEAD", "--", "neurodyn"], capture_output=True,
                              text=True).stdout
        if head:
            import hashlib
            info["neurodyn"] += f" (commit {head}" + (
                f" + uncommitted changes in neurodyn/, diff sha1 {hashlib.sha1(diff.encode()).hexdigest()[:8]})"
                if diff else ")")
    except OSError:
        pass
    if BRIAN2_PYTHON.exists():
        out = subprocess.run([str(BRIAN2_PYTHON), "-c", "import brian2, numpy, Cython; "
                              "print(brian2.__version__, numpy.__version__, Cython.__version__)"],
                             capture_output=True, text=True).stdout.split()
        if len(out) == 3:
            info.update(brian2=out[0], brian2_numpy=out[1], cython=out[2])
    gxx = subprocess.run(["g++", "--version"], capture_output=True, text=True) if _which("g++") else None
    info["gxx"] = gxx.stdout.splitlines()[0] if gxx and gxx.returncode == 0 else None
    return info


def _which(name: str) -> bool:
    import shutil
    return shutil.which(name) is not None


def merge_rounds(rows: list[Row]) -> list[Row]:
    """One row per configuration: the round with the least wall time, noting the range."""
    groups: dict[tuple, list[Row]] = {}
    for r in rows:
        groups.setdefault((r.impl, r.n, r.batch), []).append(r)
    merged = []
    for group in groups.values():
        fastest = min(group, key=lambda r: r.wall_s)  # (a copy: the rounds are saved as measured)
        best = Row(**{**asdict(fastest), "extra": dict(fastest.extra)})
        walls = [r.per_cue for r in group]
        best.extra["rounds_per_cue_s"] = walls
        compiling = [r.extra["warm_up_s"] for r in group if "warm_up_s" in r.extra]
        if compiling:  # the first warm-up compiles; later rounds find the graph in the process
            best.note += f"; first warm-up (compiling) {max(compiling):.0f} s"
        if len(group) > 1:
            best.note = (best.note + "; " if best.note else "") + (
                f"{len(group)} rounds: {fmt(min(walls))}-{fmt(max(walls))} s/cue")
        merged.append(best)
    return merged


# ----------------------------------------------------------------------------- report
def fmt(x: float) -> str:
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def speedups(rows: list[Row]) -> dict:
    """Per N: the fastest Brian2 per cue and the NumPy loop per cue at each batch."""
    out = {}
    for n in sorted({r.n for r in rows}):
        brian = [r for r in rows if r.n == n and r.impl.startswith("Brian2")]
        nump = {r.batch: r for r in rows if r.n == n and r.impl.startswith("NumPy")}
        out[n] = {"brian2": min(brian, key=lambda r: r.per_cue) if brian else None, "numpy": nump}
    return out


def table(rows: list[Row]) -> list[str]:
    ref = speedups(rows)
    lines = ["| implementation | N | batch | wall per cue (s) | cue-steps/s | synaptic events/s | spikes/cue "
             "| vs fastest Brian2 | vs NumPy loop | notes |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        vs_b = vs_n = ""
        if r.impl.startswith("neurodyn"):
            best = ref[r.n]["brian2"]
            vs_b = f"{best.per_cue / r.per_cue:.1f}x" if best else "n/a"
            nump = ref[r.n]["numpy"].get(1 if r.batch == 1 else 16)
            vs_n = f"{nump.per_cue / r.per_cue:.1f}x (B={nump.batch})" if nump else "n/a"
        lines.append(f"| {r.impl} | {r.n:,} | {r.batch} | {fmt(r.per_cue)} | {r.steps_per_s:,.0f} | "
                     f"{r.events_per_s:.2e} | {r.spikes_per_cue:.1f} | {vs_b} | {vs_n} | {r.note} |")
    return lines


def verdicts(rows: list[Row]) -> list[str]:
    ref = speedups(rows)
    out = []

    def per_round(row: Row) -> list[float]:
        return row.extra.get("rounds_per_cue_s", [row.per_cue])

    def tally(ratios: list[float], goal: float) -> str:
        if len(ratios) < 2:
            return ""
        met = sum(r >= goal for r in ratios)
        return f" (per round: {', '.join(f'{r:.1f}x' for r in ratios)}; met in {met} of {len(ratios)})"

    def borderline(ratio: float, goal: float) -> str:
        note = borderline_note(ratio, goal)
        return note and note + (", which is less than the spread between rounds that some rows of the table "
                                "show on this shared machine")

    for n, r in ref.items():
        mem = next((x for x in rows if x.n == n and x.impl == "neurodyn memory" and x.batch > 1), None)
        dense = next((x for x in rows if x.n == n and x.impl == "neurodyn dense" and x.batch > 1), None)
        best, nump = r["brian2"], r["numpy"].get(16)
        if mem and best:
            ratio = best.per_cue / mem.per_cue
            brian = [x for x in rows if x.n == n and x.impl.startswith("Brian2")]
            rounds = [min(per_round(b)[k] for b in brian) / t for k, t in enumerate(per_round(mem))
                      if all(len(per_round(b)) > k for b in brian)]
            out.append(f"- N = {n:,}, memory path, batch {mem.batch}: {fmt(mem.per_cue)} s per cue vs "
                       f"{fmt(best.per_cue)} s for the fastest Brian2 ({best.impl[7:]}): {ratio:.1f}x, "
                       f"target >= 10x **{'met' if ratio >= 10 else 'not met'}**{tally(rounds, 10)}{borderline(ratio, 10)}.")
        if dense and nump:
            ratio = nump.per_cue / dense.per_cue
            rounds = [a / b for a, b in zip(per_round(nump), per_round(dense))]
            out.append(f"- N = {n:,}, dense path, batch {dense.batch}: {fmt(dense.per_cue)} s per cue vs "
                       f"{fmt(nump.per_cue)} s for the NumPy loop at batch 16: {ratio:.1f}x, "
                       f"target >= 2x **{'met' if ratio >= 2 else 'not met'}**{tally(rounds, 2)}{borderline(ratio, 2)}.")
    return out


def verdicts_19(rows: list[Row]) -> list[str]:
    """Issue 19's targets: one cue, compiled, against the fastest Brian2 and the NumPy loop at
    batch 1; batch 64 keeping its 19-21x over Brian2."""
    ref = speedups(rows)
    out = []
    for n, r in ref.items():
        best, nump = r["brian2"], r["numpy"].get(1)
        mem = next((x for x in rows if x.n == n and x.impl == "neurodyn memory, compiled" and x.batch == 1), None)
        dense = next((x for x in rows if x.n == n and x.impl == "neurodyn dense, compiled (batch_tile 1)"), None)
        if mem and best:
            ratio = best.per_cue / mem.per_cue
            out.append(f"- N = {n:,}, memory path, one cue, compiled: {fmt(mem.per_cue)} s vs {fmt(best.per_cue)} s "
                       f"for the fastest Brian2: {ratio:.1f}x, target >= 5x **{'met' if ratio >= 5 else 'not met'}**"
                       f"{borderline_note(ratio, 5)}.")
        if dense and nump:
            ratio = nump.per_cue / dense.per_cue
            out.append(f"- N = {n:,}, dense path, one cue, compiled, batch_tile 1: {fmt(dense.per_cue)} s vs "
                       f"{fmt(nump.per_cue)} s for the NumPy loop at batch 1: {ratio:.1f}x, target >= 2x "
                       f"**{'met' if ratio >= 2 else 'not met'}**{borderline_note(ratio, 2)}.")
        for impl in ("neurodyn memory", "neurodyn memory, compiled"):
            batch = next((x for x in rows if x.n == n and x.impl == impl and x.batch == 64), None)
            if batch and best:
                ratio = best.per_cue / batch.per_cue
                out.append(f"- N = {n:,}, memory path{', compiled' if 'compiled' in impl else ''}, batch 64: "
                           f"{ratio:.1f}x the fastest Brian2 (issue 8 measured 19-21x).")
    return out


def borderline_note(ratio: float, goal: float) -> str:
    return "; borderline: within 25% of the target" if abs(ratio / goal - 1) < 0.25 else ""


def agreement(rows: list[Row]) -> list[str]:
    """What fired, and how the implementations' spike counts compare cue by cue."""
    out = []
    for n in sorted({r.n for r in rows}):
        ref = next((r for r in rows if r.n == n and r.impl == "neurodyn memory" and r.batch > 1), None)
        if ref is None:
            continue
        counts = np.asarray(ref.extra["spikes"])
        k = ref.extra["max_units_per_cue"]
        text = (f"N = {n:,}: {ref.extra['own_pattern_share']:.0%} of the spikes come from the cue's own pattern, "
                + ("one memory neuron fires per cue, " if k == 1 else f"at most {k} memory neurons fire per cue, ")
                + f"{counts.mean():.1f} spikes per cue ({counts.mean() / (DURATION * 1e-3):.0f} Hz).")
        same, total, brian_equal, brian_total, diffs = 0, 0, 0, 0, []
        for r in rows:
            if r.n != n or r is ref or "spikes" not in r.extra:
                continue
            other = np.asarray(r.extra["spikes"])
            mine = counts[:len(other)]
            if r.impl.startswith("Brian2"):
                brian_equal += int((other == mine).sum())
                brian_total += len(other)
                diffs.append(float((other - mine).mean()))
            else:
                same += int((other == mine).sum())
                total += len(other)
        text += (f" Spike counts per cue against the memory path at batch 64: the other neurodyn runs and the "
                 f"NumPy loop agree on {same} of {total} cues compared")
        if brian_total:
            spread = (f"{min(diffs):+.1f}" if max(diffs) - min(diffs) < 0.05 else
                      f"{min(diffs):+.1f} to {max(diffs):+.1f}")
            text += f"; Brian2 (all idioms) on {brian_equal} of {brian_total} ({spread} spikes per cue on average)"
        out.append("- " + text + ".")
    return out


def findings(rows: list[Row]) -> list[str]:
    """What the numbers say beyond the targets (computed from the rows)."""
    def get(impl: str, n: int, batch: int) -> Row | None:
        return next((r for r in rows if r.impl == impl and r.n == n and r.batch == batch), None)

    def each(fmt_one, *impls_batches) -> str:
        parts = []
        for n in sizes:
            got = [get(impl, n, batch) for impl, batch in impls_batches]
            if all(got):
                parts.append(fmt_one(*got) + f" at N = {n:,}")
        return ", ".join(parts)

    sizes = sorted({r.n for r in rows})
    out = []
    ca, cb = ("Brian2 (a) Synapses, cython", 1), ("Brian2 (b) Synapses, post-major, cython", 1)
    sa, sb = ("Brian2 (a) Synapses, cpp_standalone", 1), ("Brian2 (b) Synapses, post-major, cpp_standalone", 1)
    post = each(lambda a, b: f"{b.per_cue / a.per_cue:.1f}x", ca, cb)
    post_sa = each(lambda a, b: f"{b.per_cue / a.per_cue:.1f}x", sa, sb)
    if post:
        out.append(f"- Brian2: synapses created post-major are slower than pre-major: with Cython {post}"
                   + (f"; with cpp_standalone {post_sa}" if post_sa else "") +
                   ". Most likely because Brian2 2.9's summed-variable loop (`target[post[k]] += w[k] "
                   "v[pre[k]]`) then adds into one target many times in a row, a chain of dependent adds, where "
                   "pre-major order spreads consecutive adds over different targets.")
    same = each(lambda a, s_: f"{fmt(s_.per_cue)} s vs {fmt(a.per_cue)} s", ca, sa)
    if same:
        out.append("- Brian2: that loop is not parallelized in cpp_standalone (OpenMP only zeroes the target), "
                   f"and standalone with 2 threads gains little over Cython: {same}.")
    fastest = []
    for n in sizes:
        c = min((r for r in rows if r.n == n and r.impl.startswith("Brian2 (c)")), key=lambda r: r.per_cue, default=None)
        a = get(*ca[:1], n, 1)
        if c and a:
            fastest.append(f"{fmt(c.per_cue)} s against {fmt(a.per_cue)} s at N = {n:,}")
    if fastest:
        out.append("- Brian2: the fastest idiom hands the dense coupling to NumPy (BLAS) in a `network_operation`, "
                   "against (a) with Cython: " + ", ".join(fastest) + ".")
    one = each(lambda d, np1: f"{fmt(d.per_cue)} s vs {fmt(np1.per_cue)} s", ("neurodyn dense", 1),
               ("NumPy loop (float64)", 1))
    if one:
        out.append("- neurodyn dense, one cue, against the NumPy loop: " + one + ". The similarity runs on a "
                   "zero-padded tile of 16 cues (for batch invariance), 16 times the work for a single cue; "
                   "`batch_tile=1` pads nothing (the compiled row).")
    tile = each(lambda d, t, np16: f"{fmt(t.per_cue)} s instead of {fmt(d.per_cue)} s per cue, "
                f"{np16.per_cue / t.per_cue:.1f}x the NumPy loop", ("neurodyn dense", 64),
                ("neurodyn dense (batch_tile 64)", 64), ("NumPy loop (float64)", 16))
    if tile:
        out.append("- neurodyn dense, batch 64, with one tile of 64 instead of four of 16 (each tile multiplies "
                   "all of M): " + tile + ".")
    setup = each(lambda m1: f"{1 - m1.extra['stepping_s'] / m1.wall_s:.0%} of {fmt(m1.per_cue)} s "
                 f"(stepping {m1.extra['stepping_s'] * 1e6 / STEPS:.0f} us per step)", ("neurodyn memory", 1))
    if setup:
        out.append("- neurodyn memory path, one cue: the set-up is " + setup + ". The N x N Gram "
                   f"matrix K = P M' ({max(sizes) ** 2 * 4 / 1e6:,.0f} MB in float32 at N = {max(sizes):,}) "
                   "is kept with the bank (issue 19): the warm-up run built it, the timed runs reuse it.")
    return out


def section(rows: list[Row], info: dict, busy: tuple[float, float], quick: bool, skipped: list[str]) -> str:
    brian = (f"Brian2 {info['brian2']} (NumPy {info['brian2_numpy']}, Cython {info['cython']}, "
             f"{info['gxx'] or 'no C++ compiler'})" if "brian2" in info else "Brian2 not installed")
    lines = [SECTION, "",
             f"`benchmarks/bench_spiking.py{' --quick' if quick else ''}` (with `brian2_network.py`). Measured "
             f"{info['date']} on this machine: {info['cores']} cores, {info['cpu']} ({info['simd']}), "
             f"Python {info['python']}, torch {info['torch']} ({info['torch_threads']} threads), "
             f"NumPy {info['numpy']}, neurodyn {info['neurodyn']}; {brian}. Other processes' share of the "
             f"CPU before/after the run: {busy[0]:.0%} / {busy[1]:.0%} (rows where they took more than 10% "
             "say so).", "",
             "The network, the same everywhere: N LIF memory neurons, I = 784 linear value neurons, dense "
             "coupling both ways (`h = M v`; a spike of mu adds `P_mu * 1000 / (50 Hz * tau_s)` to `s`, "
             "`P = M`), tau_v = 10 ms, tau_s = 5 ms, tau_m = 10 ms, refractory 2 ms, feedback inhibition "
             f"w_inh = {CONST['w_inh']:g} with tau_inh = 5 ms, dt = 0.1 ms, 100 ms per cue (1,000 steps). "
             "Patterns: sparse random 28 x 28 images (20% of pixels on), rows of unit norm; cues: stored "
             f"patterns with the lower half zeroed; bias 0, gain such that the median top drive is "
             f"{TOP_DRIVE:g}. Brian2 need not agree spike for spike: its refractory period is measured "
             "on its own clock and its schedule differs in detail.", ""] + agreement(rows) + ["",
             "Definitions: wall per cue = wall time of the batch / batch size, for 100 ms simulated; "
             "cue-steps/s = batch x 1,000 / wall; synaptic events = spikes x 784 (memory -> value) + "
             "N x 784 per step and cue (the dense value -> memory coupling), per second of wall time; the "
             "same count for every implementation, whatever work it does (the memory path never forms "
             "`h = M v`, so its rate is an effective one). "
             "Every configuration is measured once per round, the rounds interleaved, and the table shows "
             "the fastest round (the range is in the notes); within a round, runs under 3 s take the best "
             "of up to 3. neurodyn is timed over the whole `simulate` call (set-up including the memory "
             "path's N x N Gram matrix, stepping, Dataset; float32, warmed up by a 1 ms run); the NumPy "
             "loop in float64; Brian2 over `run()` only, one cue per run "
             "(mean over the cues run), with compilation and synapse creation excluded (the build time "
             "is in the notes). Brian2 has no batch axis, so its rows are batch 1. \"vs NumPy loop\" "
             "compares a batch with the NumPy loop at batch 16 and a single cue with the loop at batch 1.",
             ""]
    lines += table(rows)
    lines += ["", "Targets of issue 8 (CPU, batches of 64):", ""] + verdicts(rows)
    lines += ["", "Targets of issue 19 (CPU, one cue, compiled blocks of LIF steps):", ""] + verdicts_19(rows)
    lines += ["", "Observations:", ""] + findings(rows)
    brian_rows = [r for r in rows if r.impl.startswith("Brian2")]
    if brian_rows and not any("scaled" in r.note for r in brian_rows):
        slowest = max(brian_rows, key=lambda r: r.per_cue)
        lines += ["", f"Every Brian2 run simulated the full 100 ms (the slowest, {slowest.impl[7:]} at N = "
                  f"{slowest.n:,}, took {fmt(slowest.per_cue)} s), so none needed the fallback of running 10 ms and "
                  "scaling (used when a timed 1 ms probe predicts more than 60 s)."]
    if skipped:
        lines += ["", "Not run: " + "; ".join(skipped) + "."]
    return "\n".join(wrap(line) for line in lines) + "\n"


def wrap(line: str, width: int = 96) -> str:
    """Prose and bullets wrapped like the rest of docs/performance.md; table rows kept whole."""
    if line.startswith("|") or len(line) <= width:
        return line
    indent = "  " if line.startswith("- ") else ""
    return textwrap.fill(line, width, subsequent_indent=indent, break_on_hyphens=False, break_long_words=False)


def write_docs(text: str) -> None:
    doc = DOCS.read_text() if DOCS.exists() else "# Performance\n"
    start = doc.find(SECTION)
    if start < 0:
        doc = doc.rstrip("\n") + "\n\n" + text
    else:
        nxt = doc.find("\n## ", start + len(SECTION))
        doc = doc[:start] + text + ("" if nxt < 0 else "\n" + doc[nxt + 1:])
    DOCS.write_text(doc)


# ----------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 1,000 only, fewer Brian2 idioms, no repeats")
    parser.add_argument("--no-brian2", action="store_true")
    parser.add_argument("--sizes", type=int, nargs="*", default=None)
    parser.add_argument("--write-docs", action="store_true", help=f"replace the section in {DOCS.relative_to(ROOT)}")
    parser.add_argument("--json", default=None, help="also write the raw results here")
    parser.add_argument("--rounds", type=int, default=None,
                        help="measure every configuration this many times, interleaved (default: 2; quick: 1)")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                        help="before each measurement wait up to S seconds for other processes to leave the CPU")
    parser.add_argument("--from-json", default=None, metavar="FILE",
                        help="no measurements: print (and with --write-docs write) the section from a --json file")
    args = parser.parse_args()
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        rows = merge_rounds([Row(**r) for r in saved["all_rounds"]])
        text = section(rows, saved["machine"], tuple(saved["busy"]), saved["quick"], saved["skipped"])
        print(text)
        if args.write_docs:
            write_docs(text)
            print(f"wrote the section to {DOCS}")
        return
    torch.set_num_threads(2)
    sizes = args.sizes or ([1000] if args.quick else [1000, 10_000])
    repeat = 1 if args.quick else 3
    rounds = args.rounds or (1 if args.quick else 2)
    info = machine()
    print(json.dumps(info))
    busy_before = wait_quiet(max_wait=args.wait_quiet)
    if busy_before > 0.1:
        print(f"warning: the CPU is {busy_before:.0%} busy before the benchmark (other processes); "
              "timings will be pessimistic", file=sys.stderr)
    rows: list[Row] = []
    skipped: list[str] = []
    have_brian2 = BRIAN2_PYTHON.exists() and not args.no_brian2
    if not BRIAN2_PYTHON.exists() and not args.no_brian2:
        msg = (f"Brian2 skipped: no virtual environment at {BRIAN2_PYTHON.parent.parent} (make it with "
               "`python -m venv benchmarks/.venv-brian2 && benchmarks/.venv-brian2/bin/pip install "
               "\"brian2==2.9.0\" \"numpy<2.4\" cython`)")
        print(msg, file=sys.stderr)
        skipped.append("Brian2 (no venv)")
    if args.quick:
        brian_configs = [("synapses", "cython"), ("netop", "numpy")]
    else:
        brian_configs = [("synapses", "cython"), ("synapses_post", "cython"), ("netop", "numpy"), ("netop", "cython")]
        if _which("g++"):
            brian_configs += [("synapses", "cpp_standalone"), ("synapses_post", "cpp_standalone")]
        else:
            skipped.append("Brian2 cpp_standalone (no g++)")

    def measure(fn, *fargs, **kwargs) -> None:
        wait_quiet(max_wait=args.wait_quiet)
        share = CpuShare().start()
        row = fn(*fargs, **kwargs)
        others = share.stop()
        if isinstance(row, Row):
            row.extra["others_cpu"] = others
            if others > 0.1:
                row.note = (row.note + "; " if row.note else "") + f"other processes used {others:.0%} of the CPU"
        report(row)

    def report(row: Row | str) -> None:
        if isinstance(row, str):
            print(row, file=sys.stderr)
            skipped.append(row)
            return
        rows.append(row)
        print(f"{row.impl:45s} N={row.n:<6d} B={row.batch:<3d} {row.per_cue:9.4f} s/cue  "
              f"{row.spikes_per_cue:6.1f} spikes/cue  {row.note}", flush=True)

    data = {}
    for n in sizes:
        m, cues, target = make_data(n, 64)
        data[n] = (m, cues, target, dict(CONST, gain=choose_gain(m, cues)))
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(rounds):
            if rounds > 1:
                print(f"round {round_ + 1} of {rounds}", flush=True)
            for n in sizes:
                m, cues, target, prm = data[n]
                for path in ("memory", "dense"):
                    for batch in (1, 64):
                        measure(bench_neurodyn, m, cues[:batch], target[:batch], prm, path, repeat)
                    # Issue 19: compiled blocks; a single dense cue without padding (batch_tile 1).
                    measure(bench_neurodyn, m, cues[:1], target[:1], prm, path, repeat,
                            batch_tile=1 if path == "dense" else 16, compile=True)
                    if not args.quick:
                        measure(bench_neurodyn, m, cues, target, prm, path, repeat, compile=True)
                if not args.quick:  # what the fixed similarity tile costs: one tile for the whole batch
                    measure(bench_neurodyn, m, cues, target, prm, "dense", repeat, batch_tile=len(cues))
                for batch in (1, 16):
                    measure(bench_numpy, m, cues[:batch], prm, repeat)
                if have_brian2:
                    n_cues = 1 if args.quick else (3 if n <= 1000 else 2)
                    for idiom, brian_target in brian_configs:
                        measure(bench_brian2, m, cues[:n_cues], prm, idiom, brian_target, tmp)
    all_rows = rows
    rows = merge_rounds(all_rows)
    busy_after = cpu_busy()
    text = section(rows, info, (busy_before, busy_after), args.quick, skipped)
    print()
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "busy": [busy_before, busy_after], "quick": args.quick,
                                               "skipped": skipped, "rows": [asdict(r) for r in rows],
                                               "all_rounds": [asdict(r) for r in all_rows]}, indent=1))
    if args.write_docs:
        write_docs(text)
        print(f"wrote the section to {DOCS}")


if __name__ == "__main__":
    main()
