"""Streamed runs resume: an interrupted run, rerun, completes to the uninterrupted one, bit for bit,
with nothing computed twice (the engines' snapshots and the store's checkpoint)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import xarray as xr

from neurodyn import Cues, Monitor, Solver, ZarrStore, from_preset, simulate
from neurodyn.network import State
from neurodyn.record import resume
from neurodyn.solve import integrate
from neurodyn.spiking import LIF, Poisson, SpikingMemory

MEMORIES = torch.rand(30, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
NET = from_preset("mchn-l2", MEMORIES, beta=10.0)
QUERIES = MEMORIES[:4].clone()
QUERIES[:, 8:] = 0.0
CUES = Cues(QUERIES, targets=MEMORIES[:4])
MONITOR = Monitor(("v", "energy", "overlap", "speed"), n_times=201)
SOLVERS = [Solver(), Solver("auto", steady_tol=1e-3), Solver("rk4", step_size=0.05),
           Solver("dopri5", engine="torchdiffeq", steady_tol=1e-4)]


def _copy(snapshot: dict) -> dict:
    """The snapshot as saved and loaded again (it must not alias the live solve)."""
    buffer = io.BytesIO()
    torch.save(snapshot, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: f"{s.method}-{'per-cue' if s.per_cue else 'torchdiffeq'}"
                         + ("-steady" if s.steady_tol else ""))
def test_an_engine_restored_from_any_yield_goes_on_as_the_uninterrupted_one(solver):
    net = NET.integrable()
    cue = net.make_cue(MEMORIES[:6] * 0.5, "initial")

    def rhs(t, y, rows=None):
        return net.velocity(State(y), cue.select(rows)).v

    times = torch.linspace(0, 10, 201, dtype=torch.float64)
    whole = integrate(rhs, cue.v0, times, solver, block_size=7)
    blocks = [b.states for b in whole]
    for k in (1, 2, len(blocks) // 2, len(blocks) - 1, len(blocks)):
        cut = integrate(rhs, cue.v0, times, solver, block_size=7)
        it = iter(cut)
        for _ in range(k):
            next(it)
        resumed = integrate(rhs, cue.v0, times, solver, block_size=7)
        resumed.restore(_copy(cut.snapshot()))
        rest = [b.states for b in resumed]
        assert len(rest) == len(blocks) - k
        if rest:
            assert torch.equal(torch.cat(rest), torch.cat(blocks[k:])), k
        a, b = whole.stats, resumed.stats
        assert (a.nfe, a.accepted_steps, a.rejected_steps, a.blocks) == (b.nfe, b.accepted_steps, b.rejected_steps,
                                                                          b.blocks)
        assert torch.equal(whole.converged, resumed.converged)
        np.testing.assert_array_equal(whole.convergence_time.numpy(), resumed.convergence_time.numpy())


def _interrupt_after(monkeypatch, owner, name: str, calls: int) -> None:
    """Make ``owner.name`` raise KeyboardInterrupt (Ctrl-C) from its ``calls + 1``-th call on."""
    original = getattr(owner, name)
    count = {"n": 0}

    def interrupted(*args, **kwargs):
        count["n"] += 1
        if count["n"] > calls:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, interrupted)


def _same_run(ds: xr.Dataset, ref: xr.Dataset) -> None:
    assert ds.attrs["complete"] == 1
    for name in ref.data_vars:
        np.testing.assert_array_equal(ds[name].values, ref[name].values, err_msg=name)
    np.testing.assert_array_equal(ds.time.values, ref.time.values)
    for key in ("nfe", "steps_accepted", "steps_rejected"):
        assert ds.attrs[key] == ref.attrs[key], key


@pytest.mark.parametrize("solver", SOLVERS[:2] + SOLVERS[3:], ids=["auto", "auto-steady", "torchdiffeq-steady"])
@pytest.mark.parametrize("calls", [31, 150])
def test_an_interrupted_streamed_run_resumes_to_the_uninterrupted_run(solver, calls, tmp_path, monkeypatch):
    ref = simulate(NET, CUES, 10.0, method=solver, monitor=MONITOR)
    store = ZarrStore(tmp_path / "run.zarr", chunk_times=20)
    with monkeypatch.context() as patch:
        _interrupt_after(patch, type(NET), "velocity", calls)
        with pytest.raises(KeyboardInterrupt):
            simulate(NET, CUES, 10.0, method=solver, monitor=MONITOR, store=store)
    if store.path.exists():
        assert xr.open_zarr(store.path).attrs["complete"] == 0
    _same_run(simulate(NET, CUES, 10.0, method=solver, monitor=MONITOR, store=store), ref)
    assert not resume.checkpoint_path(store.path).exists()


@pytest.mark.parametrize("neuron", [Poisson(r_max=2000.0), LIF()], ids=["poisson", "lif"])
def test_an_interrupted_spiking_run_resumes_to_the_uninterrupted_run(neuron, tmp_path, monkeypatch):
    from neurodyn.spiking import run as spiking_run

    net, cues = NET.to(dtype=torch.float32), Cues(QUERIES.float(), targets=MEMORIES[:4].float())
    kw = dict(method=SpikingMemory(neuron, dt=0.1), seed=2, monitor=Monitor(("v", "spikes", "rate"), n_times=51))
    ref = simulate(net, cues, 10.0, **kw)
    assert ref.attrs["n_spikes"] > 0
    store = ZarrStore(tmp_path / "spikes.zarr", chunk_times=5)
    with monkeypatch.context() as patch:
        _interrupt_after(patch, spiking_run.SpikingRun, "step", 57)
        with pytest.raises(KeyboardInterrupt):
            simulate(net, cues, 10.0, store=store, **kw)
    assert 0 < xr.open_zarr(store.path).sizes["time"] < 51
    ds = simulate(net, cues, 10.0, store=store, **kw)
    for name in ("v", "spike_time", "spike_unit", "spike_cue", "population_rate", "rate", "recall_time"):
        np.testing.assert_array_equal(ds[name].values, ref[name].values, err_msg=name)
    assert ds.attrs["n_spikes"] == ref.attrs["n_spikes"] and ds.attrs["nfe"] == ref.attrs["nfe"]


def test_times_written_after_the_last_checkpoint_are_cut_and_computed_once(tmp_path, monkeypatch):
    """Killed between an append and its checkpoint, the store holds times the checkpoint does not
    know; the rerun cuts them and goes on from the checkpoint."""
    ref = simulate(NET, CUES, 10.0, monitor=MONITOR)
    store = ZarrStore(tmp_path / "run.zarr", chunk_times=20)
    with monkeypatch.context() as patch:
        _interrupt_after(patch, resume, "atomic_write", 3)  # the 4th checkpoint is never saved
        with pytest.raises(KeyboardInterrupt):
            simulate(NET, CUES, 10.0, monitor=MONITOR, store=store)
    saved = torch.load(resume.checkpoint_path(store.path), weights_only=False)["rows"]
    assert xr.open_zarr(store.path).sizes["time"] > saved
    _same_run(simulate(NET, CUES, 10.0, monitor=MONITOR, store=store), ref)


def test_a_rerun_with_other_settings_is_refused_and_the_store_kept(tmp_path, monkeypatch):
    store = ZarrStore(tmp_path / "run.zarr", chunk_times=20)
    with monkeypatch.context() as patch:
        _interrupt_after(patch, type(NET), "velocity", 150)
        with pytest.raises(KeyboardInterrupt):
            simulate(NET, CUES, 10.0, monitor=MONITOR, store=store)
    before = xr.open_zarr(store.path).v.values
    for kwargs, part in ((dict(cues=Cues(QUERIES * 0.5)), "cues"), (dict(duration=5.0), "monitor"),
                         (dict(method=Solver(rtol=1e-4)), "method"),
                         (dict(network=from_preset("mchn-l2", MEMORIES, beta=5.0)), "model")):
        args = {"network": NET, "cues": CUES, "duration": 10.0, "monitor": MONITOR, **kwargs}
        with pytest.raises(FileExistsError, match=f"interrupted run with another {part}; rerun it with the same"):
            simulate(args.pop("network"), args.pop("cues"), args.pop("duration"), store=store, **args)
    np.testing.assert_array_equal(xr.open_zarr(store.path).v.values, before)


def test_a_complete_store_is_refused_and_leftovers_are_swept(tmp_path):
    store = tmp_path / "run.zarr"
    left = tmp_path / ".run.zarr.999.tmp"  # a store a killed run was laying out
    left.mkdir()
    (left / "v").mkdir()
    simulate(NET, QUERIES, 2.0, monitor=Monitor(("v",), n_times=11), store=store)
    assert not left.exists()
    resume.checkpoint_path(store).write_bytes(b"left by a run killed as it finished")
    with pytest.raises(FileExistsError, match="holds a complete run"):
        simulate(NET, QUERIES, 2.0, monitor=Monitor(("v",), n_times=11), store=store)
    assert not resume.checkpoint_path(store).exists()
