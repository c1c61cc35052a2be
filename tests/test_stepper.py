"""The per-cue Runge-Kutta engine (neurodyn.stepper) against exact solutions and torchdiffeq."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchdiffeq import odeint

from neurodyn import Monitor, Solver, SolverError, SolverWarning, from_preset, simulate
from neurodyn.solve import FAILED, FINISHED, STEADY, PerCueSolve
from neurodyn.solve.ring import CROSSINGS

RATES = torch.tensor([0.5, 1.0, 5.0, 20.0], dtype=torch.float64)


def decay(t, y, rows):
    """dy/dt = -rate * y, a different rate per cue."""
    return -(RATES if rows is None else RATES[rows])[:, None] * y


def run(solve: PerCueSolve) -> tuple[torch.Tensor, torch.Tensor]:
    chunks = list(solve)
    return torch.cat([t for t, _ in chunks]), torch.cat([y for _, y in chunks])


def exact(times: torch.Tensor, y0: torch.Tensor) -> torch.Tensor:
    return torch.exp(-RATES[None, :, None] * times[:, None, None]) * y0


@pytest.fixture
def y0():
    return torch.linspace(0.5, 2.0, 12, dtype=torch.float64).reshape(4, 3)


def test_dopri5_follows_the_exact_solution_on_the_grid(y0):
    times = torch.linspace(0, 2, 11, dtype=torch.float64)
    t, ys = run(PerCueSolve(decay, y0, times, "dopri5", rtol=1e-8, atol=1e-10))
    assert torch.equal(t, times)
    assert (ys - exact(times, y0)).abs().max() < 1e-7


# Amplification factors R(z) of one step on dy/dt = lambda y, z = lambda h.
AMPLIFICATION = {"euler": lambda z: 1 + z, "midpoint": lambda z: 1 + z + z**2 / 2,
                 "rk4": lambda z: 1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24}


@pytest.mark.parametrize("method", sorted(AMPLIFICATION))
def test_fixed_steps_give_the_method_s_own_discrete_solution(y0, method):
    """y_n = R(lambda h)^n y0 exactly: the steps land on the recording times, none is cut short."""
    h = 0.01
    times = torch.linspace(0, 2, 11, dtype=torch.float64)
    t, ys = run(PerCueSolve(decay, y0, times, method, step_size=h))
    n = torch.round(times / h)
    want = AMPLIFICATION[method](-RATES * h)[None, :, None] ** n[:, None, None] * y0
    torch.testing.assert_close(ys, want, rtol=1e-12, atol=1e-15)


def test_dense_output_is_as_accurate_between_steps_as_at_them(y0):
    """A loose tolerance takes long steps; 201 recording times fall mostly inside them and are
    read from the 4th-order dense output (a linear or cubic read would be far worse)."""
    times = torch.linspace(0, 4, 201, dtype=torch.float64)
    solve = PerCueSolve(decay, y0, times, "dopri5", rtol=1e-6, atol=1e-9)
    _, ys = run(solve)
    assert int(solve.stats.accepted[0]) < 60  # the slow cue crosses several times per step
    err = (ys - exact(times, y0)).abs() / exact(times, y0).abs().clamp_min(1e-3)
    assert err.max() < 2e-5


def test_a_small_ring_of_recording_rows_gives_the_same_record(y0):
    """A cue may run only a window of rows ahead of the slowest: memory stays bounded, and the
    record is the same (the leading cue's steps are cut at the window's end, so it takes more)."""
    times = torch.linspace(0, 4, 201, dtype=torch.float64)
    wide = PerCueSolve(decay, y0, times, "dopri5", rtol=1e-6, atol=1e-9)
    narrow = PerCueSolve(decay, y0, times, "dopri5", rtol=1e-6, atol=1e-9, window=8)
    a, b = run(wide), run(narrow)
    assert narrow.ring.rows.shape[0] == 9 and wide.ring.rows.shape[0] == 202
    assert torch.equal(a[0], b[0])
    torch.testing.assert_close(b[1], a[1], rtol=1e-5, atol=1e-8)
    assert (b[1] - exact(times, y0)).abs().max() < 1e-6
    assert narrow.stats.accepted[0] > wide.stats.accepted[0]


def test_each_cue_takes_its_own_steps_and_fewer_evaluations_than_one_shared_step(y0):
    times = torch.linspace(0, 2, 5, dtype=torch.float64)
    solve = PerCueSolve(decay, y0, times, "dopri5", rtol=1e-7, atol=1e-9)
    _, ys = run(solve)
    accepted = solve.stats.accepted.tolist()
    assert accepted == sorted(accepted) and accepted[0] < accepted[-1] / 3  # slow cues, long steps
    calls = []

    def counted(t, y):
        calls.append(1)
        return decay(t, y, None)

    shared = odeint(counted, y0, times, method="dopri5", rtol=1e-7, atol=1e-9)
    assert int(solve.stats.nfe.sum()) < len(calls) * len(y0)
    torch.testing.assert_close(ys, shared, rtol=1e-5, atol=1e-7)


def test_a_cue_gets_the_same_trajectory_alone_or_in_any_batch(y0):
    times = torch.linspace(0, 2, 9, dtype=torch.float64)
    _, batch = run(PerCueSolve(decay, y0, times, "dopri5", rtol=1e-6, atol=1e-9))

    def alone(t, y, rows):
        return -RATES[2] * y

    solve = PerCueSolve(alone, y0[2:3], times, "dopri5", rtol=1e-6, atol=1e-9)
    _, single = run(solve)
    torch.testing.assert_close(single[:, 0], batch[:, 2], rtol=1e-13, atol=1e-15)


def test_finished_and_steady_cues_leave_the_working_batch(y0):
    seen = []

    def spy(t, y, rows):
        seen.append(len(y))
        return decay(t, y, rows)

    times = torch.linspace(0, 3, 31, dtype=torch.float64)
    solve = PerCueSolve(spy, y0, times, "dopri5", rtol=1e-6, atol=1e-9, steady_tol=1e-3)
    _, ys = run(solve)
    status = solve.stats.status
    assert status[3] == STEADY and status[0] == FINISHED  # rate 20 settles, rate 0.5 does not by t = 3
    assert seen[0] == 4 and min(seen) < 4
    ct = solve.convergence_time
    assert math.isnan(ct[0]) and ct[3] < ct[2]
    # speed 20 y <= 1e-3 max(1, y): y <= 5e-5
    assert 20 * float(y0[3].max()) * math.exp(-20 * ct[3]) <= 1e-3 * 1.0001
    after = times > ct[3]
    assert (ys[after, 3] == ys[after, 3][:1]).all()  # held after convergence


def test_a_run_where_every_cue_settles_stops_early(y0):
    times = torch.linspace(0, 100, 101, dtype=torch.float64)
    t, ys = run(PerCueSolve(decay, y0, times, "dopri5", rtol=1e-6, atol=1e-9, steady_tol=1e-4))
    assert t[-1] < 100 and len(t) == len(ys)


def test_blocks_between_host_looks_change_nothing_but_the_looks(y0):
    times = torch.linspace(0, 3, 16, dtype=torch.float64)
    every = PerCueSolve(decay, y0, times, "dopri5", rtol=1e-6, atol=1e-9, steady_tol=1e-3, sync_every=1)
    blocks = PerCueSolve(decay, y0, times, "dopri5", rtol=1e-6, atol=1e-9, steady_tol=1e-3, sync_every=8)
    a, b = run(every)[1], run(blocks)[1]
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    assert torch.equal(every.stats.nfe, blocks.stats.nfe) and blocks.host_syncs < every.host_syncs / 4
    assert blocks.rhs_rows >= every.rhs_rows  # stopped cues ride along until the next look


def test_the_gpu_path_without_host_looks_gives_the_same_record(y0):
    """cheap_sync=False is what a GPU runs: at most CROSSINGS recording times per step, written
    by a fixed number of masked scatters, and a host look only every sync_every steps."""
    times = torch.linspace(0, 3, 61, dtype=torch.float64)
    cpu = PerCueSolve(decay, y0, times, "dopri5", rtol=1e-7, atol=1e-9, steady_tol=1e-4)
    gpu = PerCueSolve(decay, y0, times, "dopri5", rtol=1e-7, atol=1e-9, steady_tol=1e-4, cheap_sync=False)
    a, b = run(cpu), run(gpu)
    assert gpu.sync_every == 16 and gpu.crossings == CROSSINGS and cpu.crossings == 61
    assert torch.equal(a[0], b[0])
    torch.testing.assert_close(b[1], a[1], rtol=1e-6, atol=1e-9)
    assert torch.equal(gpu.stats.status, cpu.stats.status)
    assert int(gpu.stats.accepted[0]) >= 60 // CROSSINGS > int(cpu.stats.accepted[0])


def test_a_dense_grid_costs_no_extra_steps_on_the_cpu(y0):
    coarse = PerCueSolve(decay, y0, torch.linspace(0, 2, 3, dtype=torch.float64), "dopri5", rtol=1e-6, atol=1e-9)
    dense = PerCueSolve(decay, y0, torch.linspace(0, 2, 2001, dtype=torch.float64), "dopri5", rtol=1e-6,
                        atol=1e-9)
    run(coarse), run(dense)
    assert (dense.stats.accepted <= coarse.stats.accepted + 2).all()


def test_a_failing_cue_stops_with_its_reason_and_the_others_finish(y0):
    def blows_up(t, y, rows):
        out = decay(t, y, rows)
        bad = (RATES if rows is None else RATES[rows]) == 5.0
        return torch.where(bad[:, None] & (t[:, None] > 0.3), torch.nan, out)

    times = torch.linspace(0, 1, 5, dtype=torch.float64)
    solve = PerCueSolve(blows_up, y0, times, "dopri5", rtol=1e-6, atol=1e-9)
    t, ys = run(solve)
    stats = solve.stats
    assert stats.status.tolist() == [FINISHED, FINISHED, FAILED, FINISHED]
    assert list(stats.reasons) == [2] and "NaN or infinite" in stats.reasons[2]
    assert 0.29 < float(stats.time[2]) <= 0.3 + 1e-12
    # the others are complete and exact; the failed cue's trajectory holds up to its failure
    ok = [0, 1, 3]
    assert (ys[:, ok] - exact(times, y0)[:, ok]).abs().max() < 1e-6
    assert (ys[:2, 2] - exact(times, y0)[:2, 2]).abs().max() < 1e-6 and torch.isnan(ys[2:, 2]).all()
    assert (solve.final_state[2] - exact(stats.time[2:3], y0)[0, 2]).abs().max() < 1e-6
    budget = PerCueSolve(decay, y0, times, "dopri5", rtol=1e-10, atol=1e-12, max_steps=5)
    run(budget)
    assert (budget.stats.status == FAILED).all() and "max_steps=5" in budget.stats.reasons[0]


@pytest.fixture(scope="module")
def recall_problem():
    gen = torch.Generator().manual_seed(0)
    memories = torch.rand(60, 20, generator=gen, dtype=torch.float64)
    cues = memories[:6].clone()
    cues[:, 10:] = 0.0
    return from_preset("mchn-l2", memories, beta=8.0), cues


@pytest.mark.parametrize("method", ["dopri5", "rk4"])
def test_simulate_per_cue_agrees_with_torchdiffeq(recall_problem, method):
    net, cues = recall_problem
    opts = {"rtol": 1e-8, "atol": 1e-10} if method == "dopri5" else {"step_size": 0.05}
    monitor = Monitor(("v", "energy"), n_times=21)
    ours = simulate(net, cues, 6.0, monitor=monitor, method=Solver(method, engine="per-cue", **opts))
    ref = simulate(net, cues, 6.0, monitor=monitor, method=Solver(method, engine="torchdiffeq", **opts))
    np.testing.assert_allclose(ours.v.values, ref.v.values, atol=1e-6 if method == "dopri5" else 1e-5)
    assert ours.attrs["solver_engine"] == "per-cue" and ref.attrs["solver_engine"] == "torchdiffeq"
    assert ours.solver_status.attrs["flag_meanings"] == "running finished steady failed"
    assert (ours.solver_status == FINISHED).all() and "solver_status" not in ref
    assert (ours.solver_nfe > 0).all() and ours.attrs["cue_evaluations"] >= int(ours.solver_nfe.sum())


def test_simulate_converges_per_cue_and_records_when(recall_problem):
    net, cues = recall_problem
    ds = simulate(net, cues, 50.0, monitor=Monitor(("v", "speed"), n_times=101),
                  method=Solver("dopri5", rtol=1e-7, atol=1e-9, steady_tol=1e-4))
    assert bool(ds.converged.all()) and ds.attrs["stopped_at"] < 50.0
    assert len(np.unique(ds.convergence_time.values)) > 1  # each cue at its own time
    assert (ds.solver_status == STEADY).all()
    # the speed recorded at the last time is within the tolerance for every cue
    assert (ds.speed.isel(time=-1) <= 1e-4 * np.maximum(1, np.abs(ds.v.isel(time=-1)).max("unit"))).all()


def test_solver_settings_are_checked():
    with pytest.raises(ValueError, match="engine"):
        Solver("dopri5", engine="fast")
    with pytest.raises(ValueError, match="per-cue engine"):
        Solver("bosh3", engine="per-cue")
    assert not Solver("bosh3").per_cue and Solver("dopri5").per_cue
    with pytest.raises(ValueError, match="sync_every"):
        Solver(sync_every=0)
    with pytest.raises(ValueError, match="step_size"):
        PerCueSolve(decay, torch.ones(4, 2), torch.linspace(0, 1, 3), "rk4")
    with pytest.raises(ValueError, match="torchdiffeq has no 'rosenbrock23'"):
        Solver("rosenbrock23", engine="torchdiffeq")
    with pytest.raises(ValueError, match="max_steps"):
        Solver(max_steps=2.5)
    with pytest.warns(SolverWarning, match="max_steps=3"):
        ds = simulate(from_preset("mchn", torch.eye(3) * 1e3), torch.ones(1, 3), 10.0,
                      method=Solver("dopri5", max_steps=3, rtol=1e-12, atol=1e-14))
    assert int(ds.solver_status[0]) == FAILED and "max_steps=3" in ds.attrs["solver_failures"]
    with pytest.raises(SolverError, match="max_steps"):
        simulate(from_preset("mchn", torch.eye(3) * 1e3), torch.ones(1, 3), 10.0,
                 method=Solver("dopri5", engine="torchdiffeq", max_steps=3, rtol=1e-12, atol=1e-14))


def test_dense_output_weights_are_hairers_nested_form_expanded():
    """The dense output as weights of the stages (one batched product) is Hairer's CONTD5, and at
    the end of the step it is the new state."""
    from neurodyn.solve.tableau import DOPRI5, Coefficients, combine, combine_per_cue, dense_weights

    gen = torch.Generator().manual_seed(0)
    coef = Coefficients.of(DOPRI5, torch.float64, torch.device("cpu"))
    k = torch.randn(7, 5, 3, generator=gen, dtype=torch.float64)
    y, hc = torch.randn(5, 3, generator=gen, dtype=torch.float64), torch.rand(5, 1, generator=gen, dtype=torch.float64)
    y_new = y + hc * combine(coef.b, k)
    d = torch.tensor(DOPRI5.dense, dtype=torch.float64)
    theta = torch.tensor([0.0, 0.13, 0.5, 0.91, 1.0], dtype=torch.float64)[None, :, None].expand(5, -1, -1)
    got = combine_per_cue(y, dense_weights(coef, theta, hc), k)  # (5 cues, 5 fractions, 3)
    # Hairer's nested form, on the states
    dy = y_new - y
    bspl = hc * k[0] - dy
    r4, r5 = dy - hc * k[-1] - bspl, hc * combine(d, k)
    th = theta[..., 0, None].transpose(0, 1)  # (fractions, cues, 1)
    nested = (y + th * (dy + (1 - th) * (bspl + th * (r4 + (1 - th) * r5)))).transpose(0, 1)
    torch.testing.assert_close(got, nested, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(got[:, -1], y_new, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(got[:, 0], y, rtol=0, atol=0)
