"""The spiking memory network of ``bench_spiking.py`` in Brian2; prints its timings as JSON.

Runs in its own virtual environment (Brian2 needs NumPy < 2.4; see ``bench_spiking.py``)::

    benchmarks/.venv-brian2/bin/python benchmarks/brian2_network.py CONFIG.json

CONFIG names an ``.npz`` file with the stored patterns ``M`` (N x I, float64, ``P = M``) and
the cues (B x I), the network's constants, and how to build and run it:

- ``idiom``: ``"synapses"`` (a): ``Synapses`` both ways, value -> memory as a summed variable
  ``h_post = w v_pre`` and memory -> value ``on_pre: s_post += w``, created presynaptic-major
  (all synapses of source neuron 0, then of source neuron 1, ...);
  ``"synapses_post"`` (b): the same synapses created postsynaptic-major;
  ``"netop"`` (c): no dense ``Synapses``; one ``network_operation`` before the groups computes
  ``h = M v`` with NumPy, one after the resets adds the rows of ``P`` of the neurons that fired
  to ``s`` and steps the inhibition.
- ``target``: ``"cython"`` or ``"numpy"`` (runtime), or ``"cpp_standalone"``.
- ``duration_ms``: simulated time per cue; ``"auto"``: 100 ms, or 10 ms when a timed 1 ms probe
  says 100 ms would take more than ``max_run_s`` seconds (runtime targets only; the caller
  scales the time).

Timed is the ``run()`` of each cue (the binary's own run timer for ``cpp_standalone``); code
generation, compilation and synapse creation are reported separately as ``build_s``. Brian2 has
no batch axis: every cue is its own run, with the state reset in between.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import tempfile
import time

import numpy as np


def build(cfg: dict, M: np.ndarray, cue0: np.ndarray):
    import brian2 as b2
    from brian2 import ms

    N, I = M.shape
    tau_v, tau_s, tau_m, tau_inh = (cfg[k] * ms for k in ("tau_v", "tau_s", "tau_m", "tau_inh"))
    namespace = {"tau_v": tau_v, "tau_s": tau_s, "tau_m": tau_m, "tau_inh": tau_inh, "bias": cfg["bias"],
                 "gain": cfg["gain"], "w_inh": cfg["w_inh"], "theta": cfg["threshold"]}
    spike_weight = 1000.0 / (cfg["readout_rate"] * cfg["tau_s"])  # each spike adds P_mu * this to s
    idiom = cfg["idiom"]
    objects = []

    # Value neurons: linear rate units driven by the synaptic current s; the pair is linear, so
    # 'exact' integrates it in closed form over the step (as neurodyn does).
    V = b2.NeuronGroup(I, "dv/dt = (s - v) / tau_v : 1\nds/dt = -s / tau_s : 1", method="exact",
                       namespace=namespace, name="values", order=1)
    V.v = cue0
    V.s = cue0
    objects.append(V)
    # Memory neurons: LIF driven by c = bias + gain h minus the population's feedback inhibition.
    # 'exponential_euler' is exact for u with c and inh held over the step (neurodyn's scheme).
    if idiom == "netop":
        inh_decl = "inh : 1 (shared)"
    else:
        inh_decl = "inh : 1 (linked)"
    mem_eqs = f"""
    du/dt = (bias + gain * h - inh - u) / tau_m : 1 (unless refractory)
    h : 1
    {inh_decl}
    fired : 1
    """
    Mem = b2.NeuronGroup(N, mem_eqs, threshold="u >= theta", reset="u = 0\nfired = 1", refractory=2 * ms,
                         method="exponential_euler", namespace=namespace, name="memories", order=0)
    objects.append(Mem)
    counter = b2.SpikeMonitor(Mem, record=False, name="counter")
    objects.append(counter)

    if idiom in ("synapses", "synapses_post"):
        # The inhibition: one unit that decays and jumps by w_inh per spike; memories read it linked.
        Inh = b2.NeuronGroup(1, "dinh/dt = -inh / tau_inh : 1", method="exact", namespace=namespace,
                             name="inhibition", order=2)
        Mem.inh = b2.linked_var(Inh, "inh", index=np.zeros(N, dtype=int))
        to_inh = b2.Synapses(Mem, Inh, on_pre="inh_post += w_inh", namespace=namespace, name="to_inh")
        to_inh.connect(i=np.arange(N, dtype=np.int32), j=np.zeros(N, dtype=np.int32))
        if idiom == "synapses":  # presynaptic-major: all targets of source 0, then of source 1...
            val_i, mem_j = np.repeat(np.arange(I), N), np.tile(np.arange(N), I)
            mem_i, val_j = np.repeat(np.arange(N), I), np.tile(np.arange(I), N)
        else:  # postsynaptic-major: all sources of target 0, then of target 1...
            val_i, mem_j = np.tile(np.arange(I), N), np.repeat(np.arange(N), I)
            mem_i, val_j = np.tile(np.arange(N), I), np.repeat(np.arange(I), N)
        up = b2.Synapses(V, Mem, "w : 1\nh_post = w * v_pre : 1 (summed)", name="value_to_memory")
        up.connect(i=val_i.astype(np.int32), j=mem_j.astype(np.int32))
        up.w = M[mem_j, val_i]
        del val_i, mem_j
        down = b2.Synapses(Mem, V, "w : 1", on_pre="s_post += w", name="memory_to_value")
        down.connect(i=mem_i.astype(np.int32), j=val_j.astype(np.int32))
        down.w = spike_weight * M[mem_i, val_j]
        del mem_i, val_j
        objects += [Inh, to_inh, up, down]
    else:
        # Dense coupling in NumPy on the groups' own arrays (runtime targets only).
        h_arr = Mem.variables["h"].get_value()
        fired_arr = Mem.variables["fired"].get_value()
        inh_arr = Mem.variables["inh"].get_value()
        v_arr, s_arr = V.variables["v"].get_value(), V.variables["s"].get_value()
        P = np.ascontiguousarray(spike_weight * M)
        decay_inh = math.exp(-cfg["dt"] / cfg["tau_inh"])

        @b2.network_operation(when="before_groups", name="similarity")
        def similarity():
            np.dot(M, v_arr, out=h_arr)

        @b2.network_operation(when="after_resets", name="spike_input")
        def spike_input():
            idx = np.flatnonzero(fired_arr)
            inh_arr[0] = inh_arr[0] * decay_inh + cfg["w_inh"] * len(idx)
            if len(idx):
                s_arr[:] += P[idx].sum(axis=0)
                fired_arr[idx] = 0

        objects += [similarity, spike_input]
    return b2.Network(*objects), V, Mem, counter, objects


def reset_state(objects, V, Mem, cue: np.ndarray) -> None:
    import brian2 as b2

    V.v = cue
    V.s = cue
    Mem.u = 0
    Mem.fired = 0
    Mem.lastspike = -1e9 * b2.ms
    Mem.not_refractory = True
    for obj in objects:
        if getattr(obj, "name", "") == "inhibition":
            obj.inh = 0
    if isinstance(objects[-1], b2.NetworkOperation):  # netop idiom: inh is a shared variable of Mem
        Mem.inh = 0


def run_runtime(cfg: dict, M: np.ndarray, cues: np.ndarray) -> dict:
    import brian2 as b2

    b2.prefs.codegen.target = cfg["target"]
    b2.defaultclock.dt = cfg["dt"] * b2.ms
    start = time.perf_counter()
    net, V, Mem, counter, objects = build(cfg, M, cues[0])
    built = time.perf_counter() - start
    # Warm-up: generates (and for cython compiles or loads from the cache) every code object.
    start = time.perf_counter()
    net.run(1 * b2.ms)
    warmup = time.perf_counter() - start
    duration = cfg["duration_ms"]
    probe = None
    if duration == "auto":
        reset_state(objects, V, Mem, cues[0])
        start = time.perf_counter()
        net.run(1 * b2.ms)
        probe = time.perf_counter() - start
        duration = 100.0 if probe * 100 <= cfg["max_run_s"] else 10.0
    runs, spikes = [], []
    for cue in cues:
        reset_state(objects, V, Mem, cue)
        before = int(counter.num_spikes)
        start = time.perf_counter()
        net.run(duration * b2.ms)
        runs.append(time.perf_counter() - start)
        spikes.append(int(counter.num_spikes) - before)
    return {"build_s": built, "warmup_s": warmup, "probe_1ms_s": probe, "duration_ms": duration,
            "run_s": runs, "spikes": spikes}


def run_standalone(cfg: dict, M: np.ndarray, cues: np.ndarray) -> dict:
    import brian2 as b2

    directory = tempfile.mkdtemp(prefix="brian2_standalone_")
    try:
        b2.set_device("cpp_standalone", directory=directory, build_on_run=False)
        b2.prefs.devices.cpp_standalone.openmp_threads = cfg.get("threads", 2)
        b2.defaultclock.dt = cfg["dt"] * b2.ms
        duration = cfg["duration_ms"]
        if duration == "auto":
            duration = 100.0
        start = time.perf_counter()
        net, V, Mem, counter, objects = build(cfg, M, cues[0])
        net.run(duration * b2.ms)
        b2.device.build(directory=directory, run=False)  # code generation, static arrays, compilation
        built = time.perf_counter() - start
        runs, spikes, binary = [], [], []
        for cue in cues:
            start = time.perf_counter()
            b2.device.run(run_args={V.v: cue, V.s: cue})
            binary.append(time.perf_counter() - start)
            runs.append(b2.device._last_run_time)
            spikes.append(int(counter.num_spikes))
        return {"build_s": built, "duration_ms": duration, "run_s": runs, "binary_s": binary, "spikes": spikes,
                "threads": cfg.get("threads", 2)}
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    with open(sys.argv[1]) as f:
        cfg = json.load(f)
    data = np.load(cfg["data"])
    M, cues = np.ascontiguousarray(data["M"], dtype=np.float64), np.asarray(data["cues"], dtype=np.float64)
    import brian2 as b2

    b2.BrianLogger.log_level_warn()
    if cfg["target"] == "cpp_standalone":
        result = run_standalone(cfg, M, cues)
    else:
        result = run_runtime(cfg, M, cues)
    result.update({"brian2": b2.__version__, "numpy": np.__version__, "idiom": cfg["idiom"], "target": cfg["target"],
                   "N": int(M.shape[0])})
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
