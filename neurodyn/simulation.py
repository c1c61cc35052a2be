"""One run: cue -> network dynamics + solver -> recorded ``xarray.Dataset``.

:func:`simulate` ties the stages together. The state integrated is ``v`` (fast memory neurons)
or ``[v, h]`` flattened per cue; the recorder sees the unpacked populations.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from .files import claim
from .network import Cue, Cues, Network, State, check_targets
from .network.timecourse import as_timecourse
from .record import Monitor, Observables, Recorder, ZarrStore, spiking_monitor
from .record.progress import progress_bar
from .record.resume import fingerprint_parts, interrupted_run
from .run_record import add_spiking_record, per_cue_record, provenance, shift_times, solver_record
from .solve import Integration, Solver, integrate
from .spiking import SpikingMemory, SpikingRun


def _pack(state: State) -> torch.Tensor:
    return state.v if state.h is None else torch.cat([state.v, state.h], dim=-1)


def simulate(network: Network, cues: Cues | torch.Tensor, duration: float = 20.0, *,
             method: Solver | SpikingMemory | str = "dopri5", monitor: Monitor | None = None,
             store: ZarrStore | str | os.PathLike | None = None, seed: int | None = None,
             progress: bool | None = False, **legacy: Any) -> xr.Dataset:
    """Integrate the network's dynamics from a batch of cues and record them.

    Parameters
    ----------
    network: the :class:`~neurodyn.network.Network`.
    cues: a :class:`~neurodyn.network.Cues` (queries, how they drive the network, what each
        should recall), or just the queries (B, I), or one query (I,).
    duration: the time span, in units of ``monitor.time_units`` (the time constants share them).
    method: how the dynamics are stepped: a :class:`~neurodyn.solve.Solver` (or a method name)
        integrates the rate ODE; a :class:`~neurodyn.spiking.SpikingMemory` makes the memory
        population spike (fixed-step stochastic stepping in ms; times must be multiples of dt).
    monitor: what to record (default: ``v``, ``energy`` and ``speed`` at 101 times; spiking:
        ``v``, ``energy`` and ``spikes``).
    store: stream the recorded time series to a new Zarr store (a
        :class:`~neurodyn.record.ZarrStore`, or its path); the result is then the store opened
        lazily. A store that an interrupted run of the same settings left is resumed and
        completed; any other existing store is refused (:class:`~neurodyn.errors.OutputExists`).
    seed: stored as provenance (a rate run is deterministic given the cues); a spiking run's
        random numbers are keyed on it (default 0).
    progress: show a progress bar over the recording blocks (None: a bar on a terminal, a line every
        few seconds on standard error otherwise).
    legacy: the keywords of neurodyn 0.x (``solver``, ``spiking``, ``cue_mode``, ``clamp``,
        ``strength``, ``targets``, ``target_index``, ``cue_ids``, ``time_units``,
        ``recall_overlap``, ``zarr_store``, ``chunk_times``, ``block_size``), accepted with a
        DeprecationWarning for one release.

    Returns a Dataset with the recorded time series plus, per cue, ``query``, ``v_final``,
    ``recalled`` (the read-out of ``g`` at the end), and ``converged`` and ``convergence_time``
    (rate runs) or the spike events, binned rates and ``recall_time`` (spiking runs).
    """
    if legacy:
        cues, method, monitor, store = _from_legacy(cues, duration, method, monitor, store, legacy)
    cues, solver, monitor, store = _settings(cues, duration, method, monitor, store, seed)
    spiking = solver if isinstance(solver, SpikingMemory) else None
    network, queries, cue = _prepare(network, cues, spiking, monitor)
    targets, target_index = check_targets(cues.targets, cues.target_index, queries, network.n_stored)
    times_np = monitor.grid(duration)
    _check_times(times_np, network.memories.dtype)
    # A streamed run holds its store: a second run streaming to the same path is refused at once.
    observables = Observables(monitor, network, cue)
    if store is None:  # (a streamed record stays bounded by its chunk)
        observables.check_size(len(times_np))
    with claim(store.path, folder=True) if store is not None else contextlib.nullcontext():
        fingerprint: dict[str, str] | None = None
        checkpoint = None
        if store is not None:  # (only a streamed run needs its fingerprint: it hashes the whole bank)
            fingerprint = _fingerprint(network, cues, cue, solver, monitor, times_np, seed)
            checkpoint = interrupted_run(Path(store.path), fingerprint)
        recorder = Recorder(observables, time_units=monitor.time_units, time_offset=cues.start_time,
                            zarr_store=None if store is None else store.path,
                            chunk_times=64 if store is None else store.chunk_times,
                            resume_rows=0 if checkpoint is None else checkpoint["rows"])
        run, last = _run(network, cue, times_np, solver, recorder, cues.ids, seed, progress,
                         None if fingerprint is None else (fingerprint, checkpoint))
        ds = recorder.dataset()
        if isinstance(run, Integration):
            assert isinstance(solver, Solver)
            variables = {**per_cue_record(network, queries, run.final_state(last), targets, target_index),
                         **solver_record(ds, run, solver, monitor.time_units)}
        else:
            ds.update(per_cue_record(network, queries, last, targets, target_index))
            add_spiking_record(ds, run, monitor)  # (which reads the targets)
            variables = {}
        ds.update({**variables, **provenance(ds, network, cues, cue, spiking, float(times_np[-1]), seed)})
        if cues.start_time:
            shift_times(ds, cues.start_time)
        return recorder.finish(ds)


def _fingerprint(network: Network, cues: Cues, cue: Cue, method: Solver | SpikingMemory, monitor: Monitor,
                 times_np: np.ndarray, seed: int | None) -> dict[str, str]:
    """What a streamed run integrates and records, one digest per part: a rerun resumes an
    interrupted store only when every part is the same."""
    described = method.describe() if isinstance(method, Solver) else {"spiking": method.describe()}
    return fingerprint_parts(
        model=(json.dumps(network.describe(), sort_keys=True), repr(network.similarity), network.memories,
               network.projection),
        cues=(cue.v0, cue.current, cue.clamp, cues.ids, cues.targets, cues.target_index,
              *_timecourse_key(cue)),
        method=(json.dumps(described, sort_keys=True), getattr(method, "block_size", None), seed),
        monitor=(repr(dataclasses.asdict(monitor)), times_np))


def _timecourse_key(cue: Cue) -> tuple:
    """What identifies a run's input time course (a function by its name)."""
    if cue.gain is None:
        return ()
    course = cue.gain.course
    if callable(course.gain):
        return (course.describe(),)
    return (course.interpolation, json.dumps(course.dims), course.times, course.gain)


def _check_times(times_np: np.ndarray, dtype: torch.dtype) -> None:
    """Refuse recording times that the network's precision cannot tell apart (or that overflow)."""
    t = torch.as_tensor(times_np, dtype=dtype)
    if not (torch.isfinite(t).all() and (t.diff() > 0).all()):
        raise ValueError(f"duration {times_np[-1]:g} with {len(times_np)} recording times cannot be resolved in "
                         f"{str(dtype).replace('torch.', '')}: its times overflow or repeat; shorten the duration "
                         "or use fewer recording times")


def _settings(cues: Cues | torch.Tensor, duration: float, method: Solver | SpikingMemory | str,
              monitor: Monitor | None, store: ZarrStore | str | os.PathLike | None, seed: int | None
              ) -> tuple[Cues, Solver | SpikingMemory, Monitor, ZarrStore | None]:
    """simulate's arguments as its objects, with their defaults; refuses a bad method or seed."""
    if not isinstance(method, (Solver, SpikingMemory, str)):
        raise ValueError(f"method must be a Solver, a SpikingMemory or a solver method name, got {method!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise ValueError(f"seed must be a whole number, got {seed!r}")
    solver = Solver(method) if isinstance(method, str) else method
    if monitor is None:
        monitor = spiking_monitor(duration, solver.dt) if isinstance(solver, SpikingMemory) else Monitor()
    return (cues if isinstance(cues, Cues) else Cues(cues), solver, monitor,
            ZarrStore(store) if isinstance(store, (str, os.PathLike)) else store)


#: The keywords of neurodyn 0.x's ``simulate``, and the object each now belongs to.
LEGACY_KEYWORDS = {"solver": "method", "spiking": "method", "block_size": "method (Solver.block_size)",
                   "cue_mode": "Cues.mode", "clamp": "Cues.clamp", "strength": "Cues.strength",
                   "targets": "Cues.targets", "target_index": "Cues.target_index", "cue_ids": "Cues.ids",
                   "time_units": "Monitor.time_units", "recall_overlap": "Monitor.recall_overlap",
                   "zarr_store": "store (ZarrStore.path)", "chunk_times": "store (ZarrStore.chunk_times)"}


def _from_legacy(cues: Cues | torch.Tensor, duration: float, method: Solver | SpikingMemory | str,
                 monitor: Monitor | None,
                 store: ZarrStore | str | os.PathLike | None,
                 legacy: dict[str, Any]
                 ) -> tuple[Cues, Solver | SpikingMemory | str, Monitor | None, ZarrStore | str | os.PathLike | None]:
    """The objects that neurodyn 0.x's keywords describe (with a DeprecationWarning naming them)."""
    unknown = set(legacy) - set(LEGACY_KEYWORDS)
    if unknown:
        raise TypeError(f"simulate() got unexpected keyword argument(s) {sorted(unknown)}")
    warnings.warn("simulate's keywords " + ", ".join(f"{k}= (now {LEGACY_KEYWORDS[k]})" for k in sorted(legacy))
                  + " are deprecated and go in the next release", DeprecationWarning, stacklevel=3)
    if isinstance(cues, Cues):
        raise ValueError("give the cue options either in Cues or as keywords, not both")
    cues = Cues(cues, mode=legacy.get("cue_mode", "initial"), clamp=legacy.get("clamp"),
                strength=legacy.get("strength", 1.0), targets=legacy.get("targets"),
                target_index=legacy.get("target_index"), ids=legacy.get("cue_ids"))
    method = legacy.get("solver", method)
    if legacy.get("spiking") is not None:
        method = legacy["spiking"]
    if legacy.get("block_size") is not None:
        solver = Solver(method) if isinstance(method, str) else method
        if isinstance(solver, Solver):
            method = dataclasses.replace(solver, block_size=legacy["block_size"])
    if {"time_units", "recall_overlap"} & set(legacy):
        base = monitor if monitor is not None else (
            spiking_monitor(duration, method.dt) if isinstance(method, SpikingMemory) else Monitor())
        monitor = dataclasses.replace(base, **{k: legacy[k] for k in ("time_units", "recall_overlap") if k in legacy})
    if legacy.get("zarr_store") is not None:
        store = ZarrStore(legacy["zarr_store"], legacy.get("chunk_times", 64))
    return cues, method, monitor, store


def _prepare(network: Network, cues: Cues, spiking: SpikingMemory | None,
             monitor: Monitor) -> tuple[Network, torch.Tensor, Cue]:
    """The network to run (the integrable one for a rate run), the checked queries and the cue;
    refuses what cannot run before any work."""
    if network.memories.dtype in (torch.float16, torch.bfloat16):
        raise ValueError(f"the network is {str(network.memories.dtype).replace('torch.', '')}: half precision cannot "
                         "resolve the dynamics' small steps; integrate in float32 "
                         "(network.to(dtype=torch.float32))")
    if spiking is not None and "speed" in monitor.variables:
        raise ValueError("'speed' (the solver's steady-state measure) is not recorded in a spiking run")
    queries = network.check_queries(cues.queries)
    cue = network.make_cue(queries, cues.mode, clamp=cues.clamp, strength=cues.strength)
    if cues.start is not None:
        cue = _started(network, cue, cues.start, spiking)
    if cues.timecourse is not None:
        if cue.current is None:
            raise ValueError("a timecourse scales the cue's input current, and mode 'initial' has none: use "
                             "Cues(mode='current') or mode='both'")
        gain = as_timecourse(cues.timecourse).bind(cue.batch, network.n_features, queries, cues.start_time)
        cue = dataclasses.replace(cue, gain=gain)
    if spiking is None:
        network = network.integrable()
        obstacle = network.retrieval_obstacle(with_current=cue.current is not None)
        if obstacle:
            raise ValueError(obstacle)
    return network, queries, cue


def _run(network: Network, cue: Cue, times_np: np.ndarray, method: Solver | SpikingMemory, recorder: Recorder,
         cue_ids: torch.Tensor | None, seed: int | None, progress: bool | None,
         streamed: tuple[dict[str, str], dict | None] | None) -> tuple[Integration | SpikingRun, torch.Tensor]:
    """Integrate (or step) the dynamics, recording each block; the run and its last state.
    ``streamed``: the run's fingerprint and the checkpoint it resumes from (None: a new run);
    the run saves its checkpoint with every chunk the recorder streams."""
    dtype, device = network.memories.dtype, network.memories.device
    times = torch.as_tensor(times_np, dtype=dtype, device=device)
    n_v = network.n_features

    def unpack(y: torch.Tensor) -> State:
        return State(y, None) if network.fast_memory else State(y[..., :n_v], y[..., n_v:])

    def rhs(t: torch.Tensor, y: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        return _pack(network.velocity(unpack(y), cue.select(rows), t))

    monitor = recorder.observables.monitor
    run: Integration | SpikingRun
    if isinstance(method, Solver):
        block_size = method.block_size or max(1, math.ceil((len(times_np) - 1) / 20))
        run = integrate(rhs, _pack(network.initial_state(cue)), times, method, block_size=block_size,
                        record_speed="speed" in monitor.variables, time_dependence=cue.gain,
                        field_size=cue.batch * network.n_memories * n_v)
    else:
        counted = _counted_units(recorder, network) if "rate" in monitor.variables else None
        run = SpikingRun(network, cue, method, times, 0 if seed is None else seed, cue_ids,
                         keep_events="spikes" in monitor.variables, count_units=counted)
    bar = progress_bar(len(times_np), progress)
    last = None
    if streamed is not None:
        fingerprint, checkpoint = streamed
        if checkpoint is not None:
            run.restore(checkpoint["engine"])
            last = checkpoint["last"].to(times.device)
            bar.update(checkpoint["rows"])
        recorder.checkpoint = lambda: {"fingerprint": fingerprint, "engine": run.snapshot(), "last": last}
    with torch.no_grad(), bar:
        for block in run:
            state = unpack(block.states)
            last = block.states[-1]
            recorder.observe(block.times, state.v, state.h, block.speed)
            bar.update(len(block.times))
    assert last is not None  # (every run yields its initial state)
    return run, last


def _started(network: Network, cue: Cue, start: tuple[torch.Tensor, torch.Tensor | None],
             spiking: SpikingMemory | None) -> Cue:
    """The cue taken on from a state (``Cues.start``): its value state, and its slow memory
    neurons' (checked against the network)."""
    if spiking is not None:
        raise ValueError("a spiking run cannot start from a saved state (its neurons' states are not saved)")
    v, h = start
    v = network.check_queries(v, "start state")
    if v.shape != cue.v0.shape:
        raise ValueError(f"the start state has {len(v)} cues, the queries {cue.batch}")
    if network.fast_memory or h is None:
        return dataclasses.replace(cue, v0=v)
    h = torch.as_tensor(h).to(v)
    if h.shape != (cue.batch, network.n_memories):
        raise ValueError(f"the start's memory state must be ({cue.batch}, {network.n_memories}), got {tuple(h.shape)}")
    return dataclasses.replace(cue, v0=v, h0=h)


def _counted_units(recorder: Recorder, network: Network) -> torch.Tensor:
    """The memory neurons whose binned rates a spiking run records: the monitor's subset, or all."""
    memories = recorder.observables.memories
    return torch.arange(network.n_memories) if memories is None else memories


