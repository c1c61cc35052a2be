"""What a run adds to its Dataset beside the recorded time series: per cue, the final state,
the recalled pattern and the targets; the solver's or the spiking stepping's statistics; and
the provenance (the model and its memories, the cue, the Lyapunov facts, versions).
:func:`~neurodyn.simulation.simulate` calls these once the run is done. Each returns the
variables to add (attributes go straight into the Dataset's): the caller adds them in one
update, since every update aligns the whole Dataset again (a millisecond each for a small run)."""

from __future__ import annotations

import datetime as _dt
import json
import warnings

import numpy as np
import torch
import xarray as xr

from . import analysis
from .network import Cue, Cues, Network
from .network.timecourse import Timecourse
from .record import Monitor, spike_variables
from .record.provenance import flat_attributes, package_versions
from .record.reopen import model_record
from .solve import EXPLICIT, IMPLICIT, STATUS_NAMES, CueStats, Integration, Solver, SolverWarning
from .spiking import SpikingMemory, SpikingRun


def per_cue_record(network: Network, queries: torch.Tensor, final_packed: torch.Tensor,
                   targets: torch.Tensor | None, target_index: np.ndarray | None) -> dict[str, tuple]:
    """Per cue: the query, the final value state, the recalled pattern, and the (checked) targets."""
    final_v = final_packed[..., :network.n_features]
    per_cue: dict[str, tuple[tuple[str, ...], torch.Tensor, str]] = {
        "query": (("cue", "unit"), queries, "cue (query) given to the network"),
        "v_final": (("cue", "unit"), final_v, "value neuron state at the end of the run"),
        "recalled": (("cue", "unit"), network.read(network.activation(final_v)),
                     "recalled pattern: read-out of g at the end"),
    }
    if not network.fast_memory:
        per_cue["h_final"] = (("cue", "stored"), final_packed[..., network.n_features:],
                              "memory neuron state at the end of the run")
    if targets is not None:
        per_cue["target"] = (("cue", "unit"), targets.to(dtype=network.memories.dtype),
                             "pattern the cue should recall")
    variables: dict[str, tuple] = {
        name: (dims, value.detach().cpu().numpy(), {"long_name": long_name, "units": "1"})
        for name, (dims, value, long_name) in per_cue.items()}
    variables["unit"] = ("unit", np.arange(network.n_features), {"long_name": "value neuron index", "units": "1"})
    if target_index is not None:
        variables["target_index"] = ("cue", target_index, {
            "long_name": "index of the stored pattern the cue comes from", "units": "1"})
    return variables


def provenance(ds: xr.Dataset, network: Network, cues: Cues, cue: Cue, spiking: SpikingMemory | None,
               duration: float, seed: int | None) -> dict[str, tuple | xr.DataArray]:
    """What ran: the model (and its memories: :mod:`~neurodyn.record.reopen`), the cue mode, the
    Lyapunov facts, dtype, device, seed and versions."""
    variables: dict[str, tuple | xr.DataArray] = {**model_record(ds.attrs, network)}
    clamped, timed = cue.clamp is not None, cue.gain is not None
    times = ds["time"].values
    if cue.gain is not None:
        variables["input_gain"] = recorded_gain(cue.gain.course, times)
    if cue.clamp is not None:
        variables["clamp"] = (("cue", "unit"), cue.clamp.cpu().numpy().astype(np.int8),
                              {"long_name": "value units held at their initial state (1: held)", "units": "1"})
    ds.attrs.update({
        "title": f"neurodyn {'spiking ' if spiking is not None else ''}recall with {network.name}",
        "duration": duration,
        "stopped_at": float(times[-1]),
        "cue_mode": cues.mode,
        "cue_strength": float(cues.strength),
        "started_at": float(cues.start_time),
        "clamped": int(cues.clamp is not None),
        "lyapunov_guaranteed": int(spiking is None and not network.lyapunov_obstacles(clamped, timed)
                                   and network.lyapunov_known(clamped, timed)),
        "lyapunov_known": int(spiking is not None or network.lyapunov_known(clamped, timed)),
        "lyapunov_reason": network.lyapunov_reason(clamped, timed) if spiking is None else
        "spiking run: no Lyapunov guarantee holds for one noisy trial (check the trial mean of the rate "
        "model's energy); the synaptic filter also makes the mean field second order",
        "dtype": str(network.memories.dtype).replace("torch.", ""),
        "device": str(network.memories.device),
        "seed": -1 if seed is None else int(seed),
        "versions": package_versions(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "Conventions": "CF-1.10",
    })
    return variables


def recorded_gain(course: Timecourse, times: np.ndarray) -> xr.DataArray:
    """What a run keeps of its input's time course, as ``input_gain`` on its own ``input_time``
    dimension: the grid as given, or a function sampled at the recorded ``times`` with its name
    (the file cannot hold the function; :func:`~neurodyn.network.timecourse.saved_timecourse`)."""
    attrs = {"long_name": "gain s(t) of the input current I(t) = s(t) strength q", "units": "1"}
    if callable(course.gain):
        return xr.DataArray(course.gain_at(times), dims="input_time", coords={"input_time": times},
                            attrs={**attrs, "function": course.describe()})
    assert course.dims is not None
    return xr.DataArray(course.gain, dims=("input_time", *course.dims[1:]), coords={"input_time": course.times},
                        attrs={**attrs, "interpolation": course.interpolation})


#: Per-cue variables that are moments on the run's clock (a step size, also in time units, is not).
MOMENTS = ("convergence_time", "solver_switch_time", "solver_time_reached", "recall_time")


def shift_times(ds: xr.Dataset, offset: float) -> None:
    """A run taken on at ``offset``: its per-cue moments on the clock of the run it continues
    (the recorder shifted the recorded times)."""
    for name in MOMENTS:
        if name in ds:
            ds[name] = ds[name].copy(data=ds[name].values + offset)


def solver_record(ds: xr.Dataset, run: Integration, solver: Solver, time_units: str) -> dict[str, tuple]:
    """Steady-state convergence per cue and the solver's provenance and statistics."""
    when = ("time of the step after which the cue was at steady state (NaN: never)" if solver.per_cue else
            "first recorded time at steady state (NaN: never)")
    records = {
        "converged": ("cue", run.converged.numpy(), {
            "long_name": "reached steady state (speed <= steady_tol * max(1, max|x|))", "units": "1"}),
        "convergence_time": ("cue", run.convergence_time.numpy(), {"long_name": when, "units": time_units}),
    }
    stats = run.stats
    if stats.per_cue is not None:
        records.update(_per_cue_stats(stats.per_cue, time_units))
        failures = run.failures()
        ds.attrs.update({"cue_evaluations": stats.cue_evaluations, "host_syncs": stats.blocks,
                         "solver_compiled_blocks": stats.compiled_blocks,
                         "solver_failures": json.dumps({str(c): r for c, r in failures.items()})})
        if failures:
            cue, reason = next(iter(failures.items()))
            warnings.warn(SolverWarning(
                f"{len(failures)} of {len(stats.per_cue.status)} cue(s) failed and stop with status 'failed' "
                f"(NaN after their failure in the record; reasons in attrs['solver_failures']); cue {cue}: "
                f"{reason} at t={float(stats.per_cue.time[cue]):g} ({json.dumps(solver.describe())})"), stacklevel=3)
    ds.attrs.update(flat_attributes("solver", solver.describe(), skip=("rtol", "atol", "step_size")))
    ds.attrs.update({
        "solver_engine": "per-cue" if solver.per_cue else "torchdiffeq",
        "solver_method": solver.method,
        "rtol": solver.rtol if solver.adaptive else 0.0,
        "atol": solver.atol if solver.adaptive else 0.0,
        "step_size": 0.0 if solver.adaptive else run.step_size,
        "nfe": stats.nfe,
        "steps_accepted": stats.accepted_steps,
        "steps_rejected": stats.rejected_steps,
        "wall_time_s": stats.wall_time,
    })
    return records


def _per_cue_stats(per_cue: CueStats, time_units: str) -> dict[str, tuple]:
    """Each cue's solver counts and status (the per-cue engine, :mod:`neurodyn.solve.per_cue`)."""
    codes = sorted(STATUS_NAMES)
    out = {"solver_status": ("cue", per_cue.status.numpy().astype(np.int8), {
        "long_name": "how the cue's integration ended", "units": "1",
        "flag_values": np.array(codes, dtype=np.int8),
        "flag_meanings": " ".join(STATUS_NAMES[c] for c in codes)})}
    out["solver_method_used"] = ("cue", per_cue.method.numpy().astype(np.int8), {
        "long_name": "the method the cue's integration ended with", "units": "1",
        "flag_values": np.array([EXPLICIT, IMPLICIT], dtype=np.int8),
        "flag_meanings": "explicit_dopri5_or_fixed_step implicit_rosenbrock23"})
    for name, value, long_name, units in (
            ("solver_nfe", per_cue.nfe, "right-hand-side evaluations of the cue (Jacobians count one per unit)", "1"),
            ("solver_steps_accepted", per_cue.accepted, "accepted steps of the cue", "1"),
            ("solver_steps_rejected", per_cue.rejected, "rejected steps of the cue", "1"),
            ("solver_jacobians", per_cue.jacobians, "Jacobians built for the cue (implicit method)", "1"),
            ("solver_factorizations", per_cue.factorizations,
             "LU factorizations of I - h d J for the cue (three linear solves each)", "1"),
            ("solver_linear_solves", per_cue.solves,
             "linear systems I - h d J solved for the cue (by LU, or by GMRES above 256 units)", "1"),
            ("solver_switch_time", per_cue.switch_time, "time the cue switched to the implicit method (NaN: never)",
             time_units),
            ("solver_time_reached", per_cue.time, "time the cue's integration reached", time_units),
            ("solver_step_size", per_cue.step_size, "the cue's last proposed step size", time_units)):
        out[name] = ("cue", value.numpy(), {"long_name": long_name, "units": units})
    return out


def add_spiking_record(ds: xr.Dataset, run: SpikingRun, monitor: Monitor) -> None:
    """Spike events, binned rates, recall time per cue and the stepping's provenance."""
    sp, stats = run.spiking, run.stats
    if sp.model != "rate" and ("spikes" in monitor.variables or "rate" in monitor.variables):
        ds.update(spike_variables(ds["time"].values, run, "spikes" in monitor.variables))
    if "target" in ds and ("v" in ds or "g" in ds or "overlap" in ds):
        patterns = run.network.P.detach().cpu().numpy() if run.network.P.shape[1] == ds.sizes["unit"] else None
        ds["recall_time"] = analysis.recall_time(ds, monitor.recall_overlap, patterns=patterns)
    ds.attrs.update(flat_attributes("spiking", sp.describe(), skip=("model", "dt", "tau_s", "path")))
    ds.attrs.update({
        "solver_method": f"spiking-{sp.model}",
        "neuron_model": sp.model,
        "spiking_path": run.path,
        "dt": sp.dt,
        "tau_s": sp.tau_s,
        "step_size": sp.dt,
        "rtol": 0.0,
        "atol": 0.0,
        "nfe": stats.steps,
        "steps_accepted": stats.steps,
        "steps_rejected": 0,
        "n_spikes": stats.spikes,
        "n_spiking_units": run.network.n_memories,
        "value_clipped_steps": stats.value_clipped,
        "wall_time_s": stats.wall_time,
        "setup_time_s": stats.setup_time,
        "spiking_compiled_blocks": stats.compiled_blocks,
        "spiking_blocks_redone": stats.blocks_redone,
    })
