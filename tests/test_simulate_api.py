"""simulate's entry point: a few parameters, each one object (Cues, method, Monitor, store), and
neurodyn 0.x's keywords still accepted for one release, with a DeprecationWarning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from neurodyn import Cues, Monitor, Solver, ZarrStore, from_preset, simulate
from neurodyn.spiking import Poisson, SpikingMemory


@pytest.fixture
def problem():
    gen = torch.Generator().manual_seed(0)
    memories = torch.sign(torch.randn(12, 20, generator=gen, dtype=torch.float64))
    cues = torch.where(torch.rand(4, 20, generator=gen) < 0.2, -memories[:4], memories[:4])
    return from_preset("mchn-l2", memories), memories, cues


def _same(a: xr.Dataset, b: xr.Dataset) -> None:
    for name in ("v", "v_final", "recalled", "target", "target_index"):
        if name in a or name in b:
            np.testing.assert_array_equal(a[name].values, b[name].values)


def test_the_objects_and_the_old_keywords_give_the_same_run(problem):
    net, memories, cues = problem
    solver = Solver("dopri5", rtol=1e-7, atol=1e-9, block_size=3)
    new = simulate(net, Cues(cues, "both", clamp=torch.arange(20) < 4, strength=0.5, targets=memories[:4],
                             target_index=torch.arange(4)), 5.0, method=solver,
                   monitor=Monitor(("v",), n_times=11, time_units="s"), seed=3)
    with pytest.warns(DeprecationWarning, match=r"cue_mode= \(now Cues.mode\).*time_units= \(now Monitor.time_units\)"):
        old = simulate(net, cues, 5.0, solver=Solver("dopri5", rtol=1e-7, atol=1e-9), block_size=3,
                       cue_mode="both", clamp=torch.arange(20) < 4, strength=0.5, targets=memories[:4],
                       target_index=torch.arange(4), monitor=Monitor(("v",), n_times=11), time_units="s", seed=3)
    _same(new, old)
    assert new.time.attrs["units"] == old.time.attrs["units"] == "s"
    assert new.attrs["cue_mode"] == old.attrs["cue_mode"] == "both" and new.attrs["clamped"] == 1


def test_a_spiking_method_and_its_old_keywords_give_the_same_run(problem):
    net, memories, cues = problem
    sp = SpikingMemory(Poisson(800.0))
    new = simulate(net, Cues(cues, targets=memories[:4], ids=torch.arange(10, 14)), 10.0, method=sp,
                   monitor=Monitor(("v", "spikes"), n_times=11, recall_overlap=0.8), seed=1)
    with pytest.warns(DeprecationWarning, match="spiking="):
        old = simulate(net, cues, 10.0, spiking=sp, targets=memories[:4], cue_ids=torch.arange(10, 14),
                       monitor=Monitor(("v", "spikes"), n_times=11), recall_overlap=0.8, seed=1)
    _same(new, old)
    np.testing.assert_array_equal(new.spike_time.values, old.spike_time.values)
    np.testing.assert_array_equal(new.recall_time.values, old.recall_time.values)
    assert new.attrs["n_spikes"] > 0


def test_a_store_is_a_zarr_store_or_its_path(problem, tmp_path):
    net, _, cues = problem
    by_path = simulate(net, cues, 2.0, method="rk4", monitor=Monitor(("v",), n_times=5), store=tmp_path / "a.zarr")
    by_object = simulate(net, cues, 2.0, method="rk4", monitor=Monitor(("v",), n_times=5),
                         store=ZarrStore(tmp_path / "b.zarr", chunk_times=2))
    with pytest.warns(DeprecationWarning, match="zarr_store="):
        old = simulate(net, cues, 2.0, method="rk4", monitor=Monitor(("v",), n_times=5),
                       zarr_store=tmp_path / "c.zarr", chunk_times=2)
    for ds in (by_path, by_object, old):
        assert ds.attrs["complete"] == 1
        np.testing.assert_array_equal(ds.v.values, by_path.v.values)


def test_bad_options_are_refused_by_name(problem):
    net, _, cues = problem
    with pytest.raises(TypeError, match="unexpected keyword argument.*'solvr'"):
        simulate(net, cues, 1.0, solvr="rk4")
    with pytest.raises(ValueError, match="either in Cues or as keywords"), pytest.warns(DeprecationWarning):
        simulate(net, Cues(cues), 1.0, cue_mode="current")
    with pytest.raises(ValueError, match="chunk_times"):
        ZarrStore("x.zarr", chunk_times=0)
    with pytest.raises(ValueError, match="recall_overlap"):
        Monitor(recall_overlap=2.0)
    with pytest.raises(ValueError, match="block_size"):
        Solver(block_size=0)
    with pytest.raises(ValueError, match="unknown cue mode 'sideways'"):
        simulate(net, Cues(cues, "sideways"), 1.0)
