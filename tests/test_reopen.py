"""Runs that reopen: a saved run holds its model and memories, and reopened alone (in a fresh
process) gives the analyses the process that made it gave."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from neurodyn import Cues, Monitor, Network, from_preset, open_run, save_netcdf, simulate
from neurodyn.analysis import final_states, metastability, retrieval
from neurodyn.cli import main
from neurodyn.errors import InputFileError
from neurodyn.network import PRESETS, from_settings
from neurodyn.record import reopen

MEMORIES = torch.rand(40, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
QUERIES = MEMORIES[:6] * torch.linspace(0.4, 1.0, 16, dtype=torch.float64)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_is_rebuilt_from_its_settings(preset):
    net = from_preset(preset, MEMORIES)
    assert from_settings(net.settings(), MEMORIES).describe() == net.describe()


def test_a_heteroassociative_model_and_slow_memory_are_rebuilt():
    projection = torch.rand(40, 3, dtype=torch.float64)
    net = Network(MEMORIES, "manhattan:smooth=0.1", "topk:3", "tanh", projection=projection, dynamics="projection",
                  tau_h=0.5, name="mine")
    back = from_settings(net.settings(), MEMORIES, projection)
    assert back.describe() == net.describe() and torch.equal(back.P, projection)
    with pytest.raises(ValueError, match="heteroassociative: give its projection"):
        from_settings(net.settings(), MEMORIES)
    with pytest.raises(ValueError, match=r"stores 40 x 16 memories, got \(39, 16\)"):
        from_settings(net.settings(), MEMORIES[1:], projection[1:])


def _analyses(ds, network=None) -> dict:
    states = final_states(ds, network)
    meta = metastability(ds, network)
    return {"state": states["state"].values.tolist(), "nearest": states["nearest"].values.tolist(),
            "distance": states["distance"].values.tolist(), "counts": meta.attrs["counts"],
            "mixture_time": meta["mixture_time"].values.tolist(), "success": retrieval(ds)["success"].values.tolist(), "sse": retrieval(ds)["sse"].values.tolist()}


def test_a_run_reopened_in_a_fresh_process_gives_the_same_analyses(tmp_path):
    net = from_preset("mchn", MEMORIES, beta=8.0)
    ds = simulate(net, Cues(QUERIES, targets=MEMORIES[:6]), 10.0, monitor=Monitor(("v", "f", "energy"), n_times=41))
    here = _analyses(ds, net)
    path = save_netcdf(ds, tmp_path / "run.nc")
    code = f"""
        import json
        from neurodyn import open_run
        from tests.test_reopen import _analyses
        ds, net = open_run({str(path)!r})
        print(json.dumps(_analyses(ds)))
        print(repr(net))
    """
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parents[1]).stdout.splitlines()
    assert json.loads(out[0]) == here
    assert out[1] == repr(net)


def test_a_bank_too_large_to_keep_is_given_back_and_checked(tmp_path, monkeypatch):
    monkeypatch.setattr(reopen, "MEMORIES_IN_FILE", 1024)
    net = from_preset("mchn-l2", MEMORIES)
    path = save_netcdf(simulate(net, QUERIES, 2.0, monitor=Monitor(("v",), n_times=3)), tmp_path / "big.nc")
    with pytest.raises(InputFileError, match="does not keep its memories .* pass them: open_run"):
        open_run(path)
    with pytest.raises(InputFileError, match="other memories than those given"):
        open_run(path, memories=MEMORIES + 1e-9)
    ds, back = open_run(path, memories=MEMORIES.numpy())
    assert "memories" not in ds and back.describe() == net.describe()


def test_a_file_without_a_model_is_named(tmp_path):
    ds = simulate(from_preset("mchn", MEMORIES), QUERIES, 2.0, monitor=Monitor(("v",), n_times=3))
    for key in [k for k in ds.attrs if k.startswith("model_")]:
        del ds.attrs[key]
    path = save_netcdf(ds, tmp_path / "old.nc")
    with pytest.raises(InputFileError, match="old.nc: holds no model_\\* attributes"):
        open_run(path)


def test_a_cli_run_keeps_its_command_line_memories_labels_and_sources(tmp_path):
    from neurodyn import data

    out = tmp_path / "r.nc"
    argv = ["recall", "--n-memories", "12", "--duration", "3", "--no-figure", "--output", str(out)]
    assert main(argv) == 0
    ds, net = open_run(out)
    assert ds.attrs["command_line"] == "neurodyn " + " ".join(argv)
    digits = data.load_digits()
    index = ds["memory_source_index"].values
    np.testing.assert_array_equal(ds["memory_label"].values, digits.labels[index].numpy())
    np.testing.assert_allclose(ds["memories"].values, digits.images[index].flatten(1).numpy())
    assert net.n_memories == 12 and ds.attrs["memories_sha256"] == reopen.sha256(ds["memories"].values)


# ------------------------------------------------------------------------------------ going on
@pytest.mark.parametrize("slow", [False, True], ids=["fast-memory", "slow-memory"])
def test_a_run_goes_on_from_where_it_ended_as_one_longer_run(slow, tmp_path):
    """Brian2's second net.run: 0..10 then 10..20 is the 0..20 run (to the rounding of the time
    grid), clamp, current and slow memory neurons included; also from the reopened file."""
    from neurodyn import Solver

    net = from_preset("mchn", MEMORIES, beta=6.0, **({"tau_h": 0.5} if slow else {}))
    clamp = torch.arange(16) < 4
    cues, rk4 = Cues(QUERIES, mode="both", clamp=clamp, targets=MEMORIES[:6]), Solver("rk4", step_size=0.05)
    whole = simulate(net, cues, 20.0, method=rk4, monitor=Monitor(("v", "energy"), n_times=41))
    first = simulate(net, cues, 10.0, method=rk4, monitor=Monitor(("v", "energy"), n_times=21))
    ds, rebuilt = open_run(save_netcdf(first, tmp_path / "first.nc"))
    for source, network in ((first, net), (ds, rebuilt)):
        more = simulate(network, Cues.continuing(source), 10.0, method=rk4, monitor=Monitor(("v", "energy"), n_times=21))
        np.testing.assert_array_equal(more.time.values, whole.time.values[20:])
        for name in ("v", "energy"):
            np.testing.assert_allclose(more[name].values, whole[name].values[20:], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(more["v_final"].values, whole["v_final"].values, rtol=1e-12, atol=1e-14)
        assert more.attrs["started_at"] == 10.0 and np.array_equal(more["target"].values, whole["target"].values)


def test_going_on_shifts_per_cue_times_and_refuses_what_cannot_go_on():
    from neurodyn import Solver
    from neurodyn.spiking import LIF, SpikingMemory

    net = from_preset("mchn", MEMORIES, beta=6.0)
    first = simulate(net, QUERIES, 0.5, method=Solver(steady_tol=1e-3), monitor=Monitor(("v",), n_times=6))
    more = simulate(net, Cues.continuing(first), 30.0, method=Solver(steady_tol=1e-3), monitor=Monitor(("v",), n_times=61))
    converged = more["convergence_time"].values[np.isfinite(more["convergence_time"].values)]
    assert converged.size and (converged >= 0.5).all() and (more["solver_time_reached"].values >= 0.5).all()
    # the same start on a clock from 0: moments move by 0.5, step sizes (durations) do not
    at_zero = simulate(net, dataclasses.replace(Cues.continuing(first), start_time=0.0), 30.0,
                       method=Solver(steady_tol=1e-3), monitor=Monitor(("v",), n_times=61))
    np.testing.assert_array_equal(more["solver_step_size"].values, at_zero["solver_step_size"].values)
    np.testing.assert_allclose(more["solver_time_reached"].values, at_zero["solver_time_reached"].values + 0.5)
    spiking = simulate(net.to(dtype=torch.float32), QUERIES.float(), 2.0, method=SpikingMemory(LIF()), seed=0)
    with pytest.raises(ValueError, match="a spiking run cannot be continued"):
        Cues.continuing(spiking)
    slow = simulate(from_preset("mchn", MEMORIES, tau_h=0.5), QUERIES, 1.0, monitor=Monitor(("v",), n_times=3))
    with pytest.raises(ValueError, match="the run lacks h_final"):
        Cues.continuing(slow.drop_vars("h_final"))
    clamped = simulate(net, Cues(QUERIES, mode="both", clamp=torch.arange(16) < 4), 1.0,
                       monitor=Monitor(("v",), n_times=3))
    old = clamped.drop_vars("clamp")
    del old.attrs["cue_strength"]
    with pytest.raises(ValueError, match="the run lacks clamp, cue_strength"):
        Cues.continuing(old)
