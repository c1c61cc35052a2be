"""An input current that varies in time (issue 18, item 5: Brian2's TimedArray).

The reference for a switched input is the same run cut at the switches and continued with a
constant current on each piece (``Cues(start=..., start_time=...)``), integrated tightly: that
path has no time dependence at all.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

import neurodyn as nd
from neurodyn import Cues, Solver, Timecourse, simulate
from neurodyn.network.timecourse import as_timecourse
from neurodyn.spiking import SpikingMemory

TIGHT = Solver("dopri5", rtol=1e-10, atol=1e-12)


@pytest.fixture(scope="module")
def setup() -> tuple[nd.Network, torch.Tensor]:
    memories = torch.sign(torch.randn(5, 32, generator=torch.Generator().manual_seed(0))).double()
    queries = memories[:3].clone()
    queries[:, :10] *= -1
    return nd.from_preset("hn", memories), queries


def piecewise(network: nd.Network, queries: torch.Tensor, pieces: list[tuple[float, float]]) -> np.ndarray:
    """The final state after constant currents ``strength`` for ``duration``, one piece after another."""
    start, t0 = None, 0.0
    for duration, strength in pieces:
        ds = simulate(network, Cues(queries, mode="both", strength=strength, start=start, start_time=t0), duration,
                      method=TIGHT)
        start, t0 = (torch.as_tensor(ds.v_final.values), None), t0 + duration
    return ds.v_final.values


def test_gain_on_a_grid_and_as_brian2_holds_it() -> None:
    t = np.array([-1.0, 0.0, 0.5, 1.0, 1.99, 2.0, 2.5, 9.0])
    linear = Timecourse(xr.DataArray([0.0, 2.0, 2.0], dims="time", coords={"time": [0.0, 1.0, 2.0]}))
    np.testing.assert_allclose(linear.gain_at(t), [0, 0, 1, 2, 2, 2, 2, 2])
    held = Timecourse.steps([3.0, 1.0, 4.0], dt=1.0)  # TimedArray: values[int(t / dt)], the last beyond the end
    np.testing.assert_allclose(held.gain_at(t), [3, 3, 3, 1, 1, 4, 4, 4])
    np.testing.assert_allclose(Timecourse.pulse(1.0, 2.0).gain_at(t), [0, 0, 0, 1, 1, 0, 0, 0])
    per_cue = Timecourse.steps([[1.0, 2.0], [3.0, 4.0]], dt=1.0)
    assert per_cue.gain_at(np.array([0.5, 1.5])).tolist() == [[1.0, 2.0], [3.0, 4.0]]
    by_unit = Timecourse(xr.DataArray([[0.0, 1.0]], dims=("time", "unit"), coords={"time": [0.0]}))
    assert by_unit.dims == ("time", "unit")
    assert Timecourse(lambda s: s * 2).gain_at(np.array([1.0, 2.0])).tolist() == [2.0, 4.0]
    assert repr(Timecourse.pulse(1.0, 2.0)) == "Timecourse(3 times from 0 to 2, previous)"


def test_a_pulse_matches_the_run_cut_at_its_switches(setup) -> None:
    network, queries = setup
    reference = piecewise(network, queries, [(2.0, 0.0), (3.0, 1.0), (5.0, 0.0)])
    constant = piecewise(network, queries, [(10.0, 0.0)])
    assert np.abs(reference - constant).max() > 1.0  # (the pulse matters)
    for solver, tol in ((Solver("dopri5"), 1e-4), (Solver("dopri5", engine="torchdiffeq"), 1e-4),
                        (Solver("rosenbrock23"), 2e-3), (Solver("auto"), 1e-4)):
        ds = simulate(network, Cues(queries, mode="both", timecourse=Timecourse.pulse(2.0, 5.0)), 10.0, method=solver)
        assert np.abs(ds.v_final.values - reference).max() < tol * np.abs(reference).max(), solver


def test_a_pulse_shorter_than_a_step_is_not_stepped_over(setup) -> None:
    network, queries = setup
    reference = piecewise(network, queries, [(3.0, 0.0), (0.01, 100.0), (2.99, 0.0)])
    ds = simulate(network, Cues(queries, mode="both", timecourse=Timecourse.pulse(3.0, 3.01, gain=100.0)), 6.0)
    assert np.abs(ds.v_final.values - reference).max() < 1e-5 * np.abs(reference).max()


def test_no_cue_stops_at_rest_before_the_input_stops_changing(setup) -> None:
    network, queries = setup
    for engine in ("per-cue", "torchdiffeq"):
        ds = simulate(network, Cues(queries, mode="both", timecourse=Timecourse.pulse(8.0, 9.0)), 30.0,
                      method=Solver("dopri5", engine=engine, steady_tol=1e-3))
        assert ds.converged.values.any()
        assert np.nanmin(ds.convergence_time.values) >= 9.0, engine
        before = simulate(network, Cues(queries, mode="both", strength=0.0), 8.0,
                          method=Solver("dopri5", engine=engine, steady_tol=1e-3))
        assert np.nanmin(before.convergence_time.values) < 8.0  # (without the input they would have stopped)


def test_the_verdict_and_the_energy_say_the_input_varies(setup) -> None:
    network, queries = setup
    ds = simulate(network, Cues(queries, mode="both", timecourse=Timecourse.pulse(2.0, 5.0)), 10.0)
    assert ds.attrs["lyapunov_guaranteed"] == 0 and ds.attrs["lyapunov_known"] == 1
    assert "varies in time" in ds.attrs["lyapunov_reason"]
    energy = ds.energy.sel(cue=0)
    assert float(energy.sel(time=5.1, method="nearest")) > float(energy.sel(time=4.9, method="nearest"))  # switched off
    constant = simulate(network, Cues(queries, mode="both"), 10.0)
    assert constant.attrs["lyapunov_guaranteed"] == 1
    # Between the switches the energy falls, as with a constant input.
    for lo, hi in ((2.0, 5.0), (5.0, 10.0)):
        piece = ds.energy.sel(time=slice(lo + 1e-9, hi - 1e-9))
        assert float(piece.diff("time").max()) <= 1e-9 * float(abs(piece).max())


def test_rosenbrock_takes_the_time_derivative_of_the_input(setup, monkeypatch) -> None:
    network, queries = setup
    cues = Cues(queries, mode="both", timecourse=lambda t: 1 + torch.sin(3 * t))
    reference = simulate(network, cues, 6.0, method=TIGHT).v_final.values

    def error() -> float:
        return float(np.abs(simulate(network, cues, 6.0, method=Solver("rosenbrock23")).v_final.values
                            - reference).max())

    with_derivative = error()
    monkeypatch.setattr("neurodyn.solve.rosenbrock.Rosenbrock23.time_term", lambda self, w, active, h: 0.0)
    assert with_derivative < error()


def test_a_spiking_run_takes_the_current_at_each_step(setup) -> None:
    memories, queries = setup[0].memories, setup[1]
    network = nd.from_preset("mchn", memories)
    pulse = simulate(network, Cues(queries, mode="both", timecourse=Timecourse.pulse(20.0, 50.0)), 100.0,
                     method=SpikingMemory())
    off = simulate(network, Cues(queries, mode="both", strength=0.0), 100.0, method=SpikingMemory())
    assert pulse.attrs["spiking_path"] == "dense"
    gap = np.abs(pulse.v - off.v).max(["cue", "unit"])
    assert float(gap.sel(time=slice(0, 19)).max()) < 1e-12 and float(gap.sel(time=slice(21, 50)).min()) > 0.1
    with pytest.raises(ValueError, match="varies in time"):
        simulate(network, Cues(queries, mode="both", timecourse=Timecourse.pulse(20.0, 50.0)), 100.0,
                 method=SpikingMemory(path="memory"))


def test_a_run_goes_on_with_its_input(setup, tmp_path) -> None:
    network, queries = setup
    course = Timecourse.pulse(12.0, 15.0)
    whole = simulate(network, Cues(queries, mode="both", timecourse=course), 20.0, method=TIGHT)
    first = simulate(network, Cues(queries, mode="both", timecourse=course), 10.0, method=TIGHT)
    nd.save_netcdf(first, tmp_path / "first.nc")
    reopened, _ = nd.open_run(tmp_path / "first.nc")
    more = simulate(network, Cues.continuing(reopened), 10.0, method=TIGHT)
    assert float(more.time[0]) == 10.0
    np.testing.assert_allclose(more.v_final.values, whole.v_final.values, rtol=1e-8, atol=1e-8)

    def fn(t: torch.Tensor) -> torch.Tensor:
        return (t > 12) & (t < 15)

    sampled = simulate(network, Cues(queries, mode="both", timecourse=fn), 10.0)
    assert sampled.input_gain.attrs["function"].endswith("fn")
    with pytest.raises(ValueError, match="holds only as samples"):
        Cues.continuing(sampled)
    assert Cues.continuing(sampled, timecourse=Timecourse(fn)).timecourse is not None


@pytest.mark.parametrize(("given", "message"), [
    (dict(mode="initial", timecourse=Timecourse.pulse(1.0, 2.0)), "mode 'initial' has none"),
    (dict(mode="current", timecourse=np.ones(3)), "a timecourse is a Timecourse"),
    (dict(mode="current", timecourse=Timecourse.steps(np.ones((4, 2)), 1.0)), "2 entries along 'cue'"),
    (dict(mode="current", timecourse=xr.DataArray(np.ones((2, 7)), dims=("time", "unit"), coords={"time": [0, 1]})),
     "7 entries along 'unit'"),
    (dict(mode="current", timecourse=lambda t: torch.ones(2)), "one gain per time"),
])
def test_a_bad_timecourse_is_refused_with_what_to_do(setup, given, message) -> None:
    network, queries = setup
    with pytest.raises(ValueError, match=message):
        simulate(network, Cues(queries, **given), 2.0)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: Timecourse(np.ones(3), times=[0.0, 2.0, 1.0]), "increasing"),
    (lambda: Timecourse(np.ones(3), times=[0.0, 1.0]), "one finite, increasing time per gain"),
    (lambda: Timecourse(np.array([1.0, np.nan]), times=[0.0, 1.0]), "finite"),
    (lambda: Timecourse(np.ones(2), times=[0.0, 1.0], interpolation="cubic"), "unknown interpolation"),
    (lambda: as_timecourse(xr.DataArray(np.ones(2), dims="t")), "'time' dimension"),
    (lambda: Timecourse(xr.DataArray(np.ones((2, 2)), dims=("time", "x"), coords={"time": [0, 1]})), "x too"),
    (lambda: Timecourse.steps([1.0], dt=0.0), "dt must be a positive"),
    (lambda: Timecourse.pulse(2.0, 1.0), "0 <= on < off"),
])
def test_a_bad_timecourse_is_refused_when_made(make, message) -> None:
    with pytest.raises(ValueError, match=message):
        make()
