"""Runs that stream their record to Zarr as they go (simulate(..., zarr_store=...))."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from neurodyn import Monitor, from_preset, simulate
from neurodyn.spiking import Poisson, SpikingMemory


@pytest.fixture(scope="module")
def problem():
    gen = torch.Generator().manual_seed(3)
    memories = torch.rand(30, 16, generator=gen, dtype=torch.float64)
    cues = memories[:4].clone()
    cues[:, 8:] = 0.0
    return from_preset("mchn-l2", memories, beta=10.0), cues, memories[:4]


MONITOR = Monitor(("v", "energy", "overlap", "speed"), n_times=201)


def test_a_streamed_run_equals_the_in_memory_one(problem, tmp_path):
    net, cues, targets = problem
    ref = simulate(net, cues, 10.0, monitor=MONITOR, targets=targets)
    ds = simulate(net, cues, 10.0, monitor=MONITOR, targets=targets, zarr_store=tmp_path / "run.zarr",
                  chunk_times=50)
    assert ds.attrs["complete"] == 1 and ds.v.chunks is not None  # lazy, from the store
    assert max(ds.v.chunks[0]) < 201  # written in chunks as the run went
    assert set(ref.data_vars) <= set(ds.data_vars)
    for name in ref.data_vars:
        np.testing.assert_array_equal(ds[name].values, ref[name].values, err_msg=name)
    np.testing.assert_array_equal(ds.time.values, ref.time.values)
    assert ds.attrs["nfe"] == ref.attrs["nfe"] and ds.attrs["memories_sha256"] == ref.attrs["memories_sha256"]
    reopened = xr.open_zarr(tmp_path / "run.zarr")
    assert reopened.sizes == ds.sizes


def test_an_interrupted_run_leaves_a_readable_store_of_what_was_done(problem, tmp_path, monkeypatch):
    net, cues, _ = problem
    ref = simulate(net, cues, 10.0, monitor=MONITOR)
    calls = {"n": 0}
    velocity = type(net).velocity

    def interrupted(self, *args):
        calls["n"] += 1
        if calls["n"] > 150:
            raise KeyboardInterrupt
        return velocity(self, *args)

    monkeypatch.setattr(type(net), "velocity", interrupted)
    store = tmp_path / "cut.zarr"
    with pytest.raises(KeyboardInterrupt):
        simulate(net, cues, 10.0, monitor=MONITOR, zarr_store=store, chunk_times=20)
    done = xr.open_zarr(store)
    assert done.attrs["complete"] == 0
    n = done.sizes["time"]
    assert 20 <= n < 201
    np.testing.assert_array_equal(done.v.values, ref.v.values[:n])
    np.testing.assert_array_equal(done.time.values, ref.time.values[:n])


def test_an_existing_store_is_never_overwritten(problem, tmp_path):
    net, cues, _ = problem
    store = tmp_path / "run.zarr"
    first = simulate(net, cues, 2.0, monitor=Monitor(("v",), n_times=11), zarr_store=store)
    with pytest.raises(FileExistsError, match="run.zarr exists"):
        simulate(net, cues, 2.0, zarr_store=store)
    np.testing.assert_array_equal(xr.open_zarr(store).v.values, first.v.values)
    with pytest.raises(ValueError, match="chunk_times"):
        simulate(net, cues, 2.0, zarr_store=tmp_path / "other.zarr", chunk_times=0)


def test_a_spiking_run_streams_too(problem, tmp_path):
    net, cues, targets = problem
    spiking = SpikingMemory(Poisson(r_max=400.0), dt=0.1)
    kw = dict(spiking=spiking, targets=targets, seed=2, monitor=Monitor(("v", "spikes"), n_times=21))
    ref = simulate(net.to(dtype=torch.float32), cues.float(), 10.0, **kw)
    ds = simulate(net.to(dtype=torch.float32), cues.float(), 10.0, zarr_store=tmp_path / "spikes.zarr",
                  chunk_times=5, **kw)
    for name in ("v", "spike_time", "spike_unit", "population_rate", "recall_time"):
        np.testing.assert_array_equal(ds[name].values, ref[name].values, err_msg=name)
