"""Compiled blocks of per-cue steps (issue 19, item 1; neurodyn.solve.compiled).

The default tests trace the block with ``torch.compile``'s ``"eager"`` backend: it checks that
the block traces whole (``fullgraph``) and runs what was traced, without the 30-70 s of code
generation; the test marked slow compiles with inductor, as runs do.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import xarray as xr

import neurodyn.solve.compiled as compiled
from neurodyn import Cues, Monitor, Solver, from_preset, simulate
from neurodyn.errors import SolverWarning
from neurodyn.similarity import user_similarity


@pytest.fixture(autouse=True)
def traced_only(monkeypatch, request) -> None:
    if "slow" not in request.keywords:
        monkeypatch.setattr(compiled, "BACKEND", "eager")


@pytest.fixture(scope="module")
def problem() -> tuple:
    memories = torch.rand(60, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cues = memories[:6].clone()
    cues[:, 16:] = 0.0
    return from_preset("mchn-l2", memories, beta=10.0), cues


# Blocks of 2 attempts: tracing takes time in proportion to the block.
@pytest.mark.parametrize("solver", [Solver("auto", rtol=1e-7, atol=1e-9, sync_every=2),
                                    Solver("rk4", step_size=0.05, sync_every=2),
                                    Solver("dopri5", rtol=1e-7, atol=1e-9, steady_tol=1e-4, sync_every=2)])
def test_a_compiled_run_takes_the_eager_runs_steps(problem, solver) -> None:
    network, cues = problem
    eager = simulate(network, cues, 10.0, method=solver)
    ran = simulate(network, cues, 10.0, method=dataclasses.replace(solver, compile=True))
    assert ran.attrs["solver_compiled_blocks"] > 0 and eager.attrs["solver_compiled_blocks"] == 0
    assert ran.solver_status.values.tolist() == eager.solver_status.values.tolist()
    if solver.method == "rk4":  # (fixed steps: the same steps; stage sums in another order)
        np.testing.assert_allclose(ran.v.values, eager.v.values, rtol=1e-13, atol=1e-14)
    else:  # (a compiled step crosses at most 4 recording times, as on a GPU: other steps)
        np.testing.assert_allclose(ran.v_final.values, eager.v_final.values, atol=1e-4 if solver.steady_tol else 1e-6)
    if solver.steady_tol:  # cues stopped early rode along in the block, held
        assert ran.converged.values.all()
        assert np.isfinite(ran.v.values).all()


def test_a_compiled_run_follows_a_time_varying_input(problem) -> None:
    network, cues = problem
    ramp = xr.DataArray([0.0, 2.0, 2.0], dims="time", coords={"time": [0.0, 3.0, 10.0]})
    given = Cues(cues, mode="both", timecourse=ramp)
    eager = simulate(network, given, 10.0, method=Solver("dopri5", rtol=1e-8, atol=1e-10))
    ran = simulate(network, given, 10.0, method=Solver("dopri5", rtol=1e-8, atol=1e-10, compile=True, sync_every=2))
    assert ran.attrs["solver_compiled_blocks"] > 0
    np.testing.assert_allclose(ran.v_final.values, eager.v_final.values, atol=1e-6)


def test_a_long_run_compiles_by_itself(problem, monkeypatch) -> None:
    network, cues = problem
    monkeypatch.setattr(compiled, "REPAYS_AFTER", 200)
    monkeypatch.setattr(compiled, "PROBE_ATTEMPTS", 16)
    solver = Solver("rk4", step_size=0.01, sync_every=2)  # 2,000 attempts over 20
    monitor = Monitor(("v",), n_times=11)
    long = simulate(network, cues, 20.0, method=solver, monitor=monitor)
    assert long.attrs["solver_compiled_blocks"] > 0
    assert simulate(network, cues, 1.0, method=solver, monitor=monitor).attrs["solver_compiled_blocks"] == 0  # 100
    never = simulate(network, cues, 20.0, method=dataclasses.replace(solver, compile=False), monitor=monitor)
    assert never.attrs["solver_compiled_blocks"] == 0
    np.testing.assert_allclose(long.v.values, never.v.values, rtol=1e-13, atol=1e-14)


def scaled_dot(memories: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """A similarity that reads a value into Python (torch.compile cannot trace it whole)."""
    return (g @ memories.T) / max(1.0, float(memories.abs().max()))


def test_a_field_that_cannot_be_compiled_runs_eagerly_with_a_warning(problem) -> None:
    network, cues = problem
    network = dataclasses.replace(network, similarity=user_similarity(scaled_dot))
    eager = simulate(network, cues, 5.0, method=Solver("dopri5"))
    with pytest.warns(SolverWarning, match="could not be compiled"):
        ran = simulate(network, cues, 5.0, method=Solver("dopri5", compile=True))
    assert ran.attrs["solver_compiled_blocks"] == 0
    np.testing.assert_allclose(ran.v_final.values, eager.v_final.values, atol=1e-6)


@pytest.mark.parametrize(("settings", "message"), [
    (dict(compile="yes"), "compile must be True, False or None"),
    (dict(method="dopri5", engine="torchdiffeq", compile=True), "per-cue engine"),
])
def test_compile_settings_are_checked(settings, message) -> None:
    with pytest.raises(ValueError, match=message):
        Solver(**settings)


@pytest.mark.slow
def test_an_inductor_compiled_run_agrees_with_the_eager_one(problem) -> None:
    network, cues = problem
    eager = simulate(network, cues, 10.0, method=Solver("dopri5", rtol=1e-7, atol=1e-9))
    ran = simulate(network, cues, 10.0, method=Solver("dopri5", rtol=1e-7, atol=1e-9, compile=True))
    assert ran.attrs["solver_compiled_blocks"] > 0
    np.testing.assert_allclose(ran.v_final.values, eager.v_final.values, atol=1e-6)


@pytest.mark.parametrize("setting", [True, None])
def test_a_compiled_run_restored_from_any_yield_goes_on_as_the_uninterrupted_one(problem, monkeypatch, setting):
    """A streamed run's checkpoint (issue 17) keeps whether it ran compiled: one restored from any
    yield, including after the default rule switched it, gives the uninterrupted run's rows."""
    import io

    from neurodyn.network import State
    from neurodyn.solve import integrate

    monkeypatch.setattr(compiled, "REPAYS_AFTER", 100)
    monkeypatch.setattr(compiled, "PROBE_ATTEMPTS", 10)
    network, cues = problem
    cue = network.make_cue(cues)

    def rhs(t, y, rows=None):
        return network.velocity(State(y), cue.select(rows), t).v

    times = torch.linspace(0, 10, 101, dtype=torch.float64)
    solver = Solver("rk4", step_size=0.02, compile=setting, sync_every=2)
    whole = integrate(rhs, cue.v0, times, solver)
    blocks = [b.states for b in whole]
    assert whole.stats.compiled_blocks > 0
    for k in (1, len(blocks) // 2, len(blocks) - 1):
        cut = integrate(rhs, cue.v0, times, solver)
        it = iter(cut)
        for _ in range(k):
            next(it)
        buffer = io.BytesIO()
        torch.save(cut.snapshot(), buffer)
        buffer.seek(0)
        resumed = integrate(rhs, cue.v0, times, solver)
        resumed.restore(torch.load(buffer, weights_only=False))
        rest = [b.states for b in resumed]
        assert torch.equal(torch.cat(rest), torch.cat(blocks[k:])), k
        assert resumed.stats.compiled_blocks == whole.stats.compiled_blocks
