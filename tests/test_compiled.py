"""Per-cue attempts run as compiled loops (issue 19, item 1; neurodyn.solve.compiled).

The default tests trace the loop with ``torch.compile``'s ``"eager"`` backend: it checks that
the loop traces whole (``fullgraph``) and runs what was traced, without the 10-40 s of code
generation; the test marked slow compiles with inductor, as runs do.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch
import xarray as xr

import neurodyn.compiling as compiling
import neurodyn.solve.compiled as compiled
from neurodyn import Cues, Monitor, Solver, from_preset, simulate
from neurodyn.errors import SolverWarning
from neurodyn.network import State
from neurodyn.similarity import SIMILARITIES, user_similarity
from neurodyn.solve import PerCueSolve
from neurodyn.solve.status import FAILED, FINISHED


@pytest.fixture(autouse=True)
def traced_only(monkeypatch, request) -> None:
    if "slow" not in request.keywords:
        monkeypatch.setattr(compiling, "BACKEND", "eager")


@pytest.fixture(scope="module")
def problem() -> tuple:
    memories = torch.rand(60, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cues = memories[:6].clone()
    cues[:, 16:] = 0.0
    return from_preset("mchn-l2", memories, beta=10.0), cues


# Loops of at most 2 attempts between host looks: the solve goes through many loops.
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
    if solver.steady_tol:  # cues stopped early rode along in the loop, held
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


@pytest.mark.parametrize(("similarity", "dynamics"),
                         [(name, "projection") for name in SIMILARITIES] + [("manhattan", "gradient")])
def test_every_similarity_runs_in_the_compiled_loop(similarity, dynamics) -> None:
    """Each built-in field traces into the loop whole (a view such as ``memories.T`` of a captured
    tensor would reach ``while_loop`` as a second, aliasing input, which it refuses). The smoothed
    Manhattan drive of gradient dynamics remembers eagerly which batch its buffers hold; in the
    loop its fused expression is traced instead."""
    memories = torch.rand(12, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    network = from_preset("mchn-l2", memories, similarity=similarity, separation="softmax:4", dynamics=dynamics)
    cues = memories[:3] * 0.8
    eager = simulate(network, cues, 2.0, method=Solver("dopri5", rtol=1e-8, atol=1e-10))
    with warnings.catch_warnings():
        warnings.simplefilter("error", SolverWarning)
        ran = simulate(network, cues, 2.0, method=Solver("dopri5", rtol=1e-8, atol=1e-10, compile=True))
    assert ran.attrs["solver_compiled_blocks"] > 0
    np.testing.assert_allclose(ran.v_final.values, eager.v_final.values, atol=1e-6)


def test_a_ring_smaller_than_the_grid_is_read_between_loops(problem) -> None:
    """A loop ends when every running cue waits for the ring to be read; the next goes on from
    there, and the rows are the eager run's (to the tolerance: a compiled step crosses at most 4
    recording times)."""
    network, cues = problem
    cue = network.make_cue(cues)

    def rhs(t, y, rows=None):
        return network.velocity(State(y), cue.select(rows), t).v

    times = torch.linspace(0, 5, 81, dtype=torch.float64)
    runs = [PerCueSolve(rhs, cue.v0, times, "dopri5", rtol=1e-9, atol=1e-11, window=window, compiled=compiled)
            for window, compiled in ((None, False), (9, True))]
    eager, looped = (torch.cat([ys for _, ys in run]) for run in runs)
    assert runs[1].compiled_blocks >= 80 // 9 and runs[1].ring.window == 9
    torch.testing.assert_close(looped, eager, rtol=0, atol=1e-7)


def test_a_cue_over_max_steps_fails_inside_the_loop_and_the_others_finish(problem) -> None:
    network, cues = problem
    cue = network.make_cue(cues)
    slow = torch.ones(len(cues), dtype=torch.float64)
    slow[2] = 200.0  # (one cue's dynamics 200 times faster: it needs many more steps)

    def rhs(t, y, rows=None):
        return network.velocity(State(y), cue.select(rows), t).v * (slow if rows is None else slow[rows])[:, None]

    run = PerCueSolve(rhs, cue.v0, torch.linspace(0, 10, 11, dtype=torch.float64), "dopri5", rtol=1e-9,
                      atol=1e-11, max_steps=150, compiled=True)
    rows = torch.cat([ys for _, ys in run])
    status = run.stats.status.tolist()
    assert status[2] == FAILED and "max_steps=150" in run.stats.reasons[2]
    assert all(s == FINISHED for c, s in enumerate(status) if c != 2)
    assert torch.isfinite(rows[:, [0, 1, 3, 4, 5]]).all() and torch.isnan(rows[-1, 2]).all()
    assert run.compiled_blocks > 0


def test_a_small_field_loops_on_one_thread_and_gives_the_threads_back(problem, monkeypatch) -> None:
    network, cues = problem
    asked: list[int] = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (asked.append(n), real(n)))
    before = torch.get_num_threads()
    simulate(network, cues, 2.0, method=Solver("dopri5", compile=True))  # 6 x 60 x 32 multiply-adds
    assert 1 in asked and asked[-1] == before == torch.get_num_threads()
    asked.clear()
    monkeypatch.setattr(compiled, "SMALL_FIELD", 100)
    simulate(network, cues, 2.0, method=Solver("dopri5", compile=True))
    assert 1 not in asked or before == 1
