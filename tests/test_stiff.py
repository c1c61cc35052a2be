"""Stiff and non-smooth dynamics: the implicit Rosenbrock23 method, the per-cue switch to it,
float64 time, smoothed and refused similarities, and failures that lose nothing."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from neurodyn import Monitor, Network, Solver, SolverWarning, from_preset, load_netcdf, save_netcdf, simulate
from neurodyn.analysis import lyapunov_check, retrieval
from neurodyn.cli import main
from neurodyn.data import corrupt, load_digits
from neurodyn.network import MANHATTAN_SMOOTHING, State
from neurodyn.solve import EXPLICIT, FAILED, FINISHED, IMPLICIT, STEADY, PerCueSolve

# A linear system per cue, dy/dt = A_b (y - c): eigenvalues -1 and -LAMBDA_b (stiff for large ones).
LAMBDAS = torch.tensor([2.0, 300.0, 3e3], dtype=torch.float64)
_Q = torch.linalg.qr(torch.tensor([[1.0, 2.0, 0.5], [0.3, -1.0, 2.0], [1.5, 0.2, 1.0]], dtype=torch.float64))[0]
CENTRE = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)


def matrices(rows=None) -> torch.Tensor:
    lam = LAMBDAS if rows is None else LAMBDAS[rows]
    diag = torch.stack([-torch.ones_like(lam), -lam, -0.5 * lam], -1)
    return _Q @ torch.diag_embed(diag) @ _Q.T


def linear(t, y, rows):
    return torch.einsum("bij,bj->bi", matrices(rows), y - CENTRE)


def exact(times: torch.Tensor, y0: torch.Tensor) -> torch.Tensor:
    return CENTRE + torch.einsum("tbij,bj->tbi", torch.linalg.matrix_exp(times[:, None, None, None] * matrices()),
                                 y0 - CENTRE)


def run(solve: PerCueSolve) -> torch.Tensor:
    return torch.cat([y for _, y in solve])


@pytest.fixture
def y0():
    return torch.tensor([[1.0, 2.0, 3.0]] * 3, dtype=torch.float64)


def test_rosenbrock23_follows_the_exact_solution_of_stiff_systems(y0):
    """Global error of the order-2 method falls like rtol^(2/3) (local error control of order 3):
    about 21x per 100x in rtol; a first-order slip would give 10x."""
    times = torch.linspace(0, 2, 21, dtype=torch.float64)
    errors = {}
    for rtol in (1e-6, 1e-8):
        solve = PerCueSolve(linear, y0, times, "rosenbrock23", rtol=rtol, atol=rtol * 1e-3)
        errors[rtol] = float((run(solve) - exact(times, y0)).abs().max())
    assert errors[1e-6] < 5e-5 and errors[1e-6] / errors[1e-8] > 15
    solve = PerCueSolve(linear, y0, times, "rosenbrock23", rtol=1e-6, atol=1e-9)
    run(solve)
    # L-stable: the stiffest cue takes about as many steps as the mildest, not lambda times more
    assert int(solve.stats.accepted[2]) < 3 * int(solve.stats.accepted[0])
    assert (solve.stats.jacobians >= 1).all() and (solve.stats.factorizations >= solve.stats.accepted).all()


def test_auto_switches_only_the_stiff_cues_and_saves_their_work(y0):
    times = torch.linspace(0, 2, 21, dtype=torch.float64)
    auto = PerCueSolve(linear, y0, times, "auto", rtol=1e-6, atol=1e-9)
    explicit = PerCueSolve(linear, y0, times, "dopri5", rtol=1e-6, atol=1e-9)
    ys, ye = run(auto), run(explicit)
    assert auto.stats.method.tolist() == [EXPLICIT, IMPLICIT, IMPLICIT]
    assert math.isnan(auto.switch_time[0]) and (auto.switch_time[1:] < 0.5).all()
    assert (ys - exact(times, y0)).abs().max() < 5e-5  # the implicit cues' order-2 global error
    assert torch.equal(ys[:, 0], ye[:, 0])  # the mild cue is untouched by the switch
    # dopri5 pays lambda-proportional steps on the stiffest cue; the switch does not
    assert int(auto.stats.nfe[2]) * 10 < int(explicit.stats.nfe[2])


def test_the_gpu_path_switches_at_its_host_looks_with_the_same_answer(y0):
    """cheap_sync=False (a GPU's path, run here on the CPU): the stiffness test runs on the
    device and a flagged cue moves to the implicit method at the next of the looks 16 steps apart."""
    times = torch.linspace(0, 2, 21, dtype=torch.float64)
    cpu = PerCueSolve(linear, y0, times, "auto", rtol=1e-6, atol=1e-9)
    gpu = PerCueSolve(linear, y0, times, "auto", rtol=1e-6, atol=1e-9, cheap_sync=False)
    a, b = run(cpu), run(gpu)
    assert gpu.sync_every == 16 and gpu.host_syncs < cpu.host_syncs / 4
    assert gpu.stats.method.tolist() == cpu.stats.method.tolist() == [EXPLICIT, IMPLICIT, IMPLICIT]
    torch.testing.assert_close(gpu.switch_time, cpu.switch_time, equal_nan=True)  # flagged at the same step
    assert (b - exact(times, y0)).abs().max() < 5e-5 and (a - b).abs().max() < 5e-5


def test_time_is_float64_so_float32_states_take_tiny_steps():
    """A float32 state with a transient of time scale 1e-6 at t = 0 over a span of 100: its first
    steps are about 1e-7 long, which the old test judged underflow (below 4 eps32 x 100)."""
    def fast(t, y, rows):
        return (-1e6 * torch.exp(-1e6 * t))[:, None].to(y.dtype) * (y - 1)

    times = torch.linspace(0, 100, 3)
    solve = PerCueSolve(fast, torch.full((2, 1), 2.0), times, "dopri5", rtol=1e-5, atol=1e-7)
    ys = run(solve)
    assert (solve.stats.status == FINISHED).all() and float(solve._h.min()) > 1.0
    # y - 1 = (y0 - 1) exp(-(1 - exp(-1e6 t)))
    assert abs(float(ys[-1, 0, 0]) - (1 + math.exp(-1))) < 1e-4


@pytest.fixture(scope="module")
def digits():
    images = load_digits().take(100)
    cues = corrupt(images.images, "mask", fraction=0.25, side="bottom").reshape(100, -1)
    return images.flat(), cues


CLI_SOLVER = Solver("auto", rtol=1e-5, atol=1e-7, steady_tol=1e-4)
RECORD = Monitor(("v", "energy"), n_times=41)


def test_dam_in_float32_no_longer_fails_at_t0(digits):
    """The DAM preset's first steps are about 5e-7 long; float32 time took them for underflow."""
    memories, cues = digits
    ds = simulate(from_preset("dam", memories), cues[:8], 20.0, method=Solver("dopri5", rtol=1e-5, atol=1e-7))
    assert (ds.solver_status == FINISHED).all()
    assert float(ds.solver_step_size.min()) > 0


def test_smoothed_manhattan_gradient_dynamics_solve_recall_and_descend(digits):
    memories, cues = digits
    net = from_preset("mchn-l2", memories, similarity="manhattan")
    smoothed = f"manhattan:negative,smooth={MANHATTAN_SMOOTHING:g}"
    assert net.integrable().similarity.name == smoothed and net.integrable().similarity.smooth
    ds = simulate(net, cues[:12], 20.0, monitor=RECORD, method=CLI_SOLVER, targets=memories[:12])
    assert ds.attrs["model_similarity"] == smoothed
    assert (ds.solver_status == STEADY).all()
    assert retrieval(ds).attrs["rate"] == 1.0
    check = lyapunov_check(ds)
    assert check.guaranteed and check.monotone
    # the exact distance is still there for one-shot retrieval and projection dynamics
    assert net.similarity.smoothing == 0.0
    projection = from_preset("mchn-l2", memories, similarity="manhattan", dynamics="projection")
    assert projection.integrable() is projection


def test_a_stiff_smoothing_switches_cues_to_the_implicit_method_and_the_energy_still_falls(digits):
    memories, cues = digits
    net = from_preset("mchn-l2", memories, similarity="manhattan:smooth=0.01")
    ds = simulate(net, cues[:6], 20.0, monitor=RECORD, method=CLI_SOLVER, targets=memories[:6])
    assert (ds.solver_status == STEADY).all()
    assert int((ds.solver_method_used == IMPLICIT).sum()) >= 3 and int(ds.solver_jacobians.sum()) > 0
    check = lyapunov_check(ds)
    assert check.guaranteed and check.monotone


def test_trajectories_agree_with_torchdiffeq_and_scipy_radau():
    gen = torch.Generator().manual_seed(3)
    memories = torch.rand(30, 12, generator=gen, dtype=torch.float64)
    cues = memories[:3] * torch.rand(3, 12, generator=gen, dtype=torch.float64)
    net = from_preset("mchn-l2", memories, beta=6.0, similarity="manhattan:smooth=0.05")
    monitor = Monitor(("v",), n_times=11)
    tight = dict(rtol=1e-9, atol=1e-11)
    ref = simulate(net, cues, 4.0, monitor=monitor, method=Solver("dopri5", engine="torchdiffeq", **tight))
    for method, tol in (("auto", 1e-6), ("rosenbrock23", 1e-5)):
        ours = simulate(net, cues, 4.0, monitor=monitor, method=Solver(method, **tight))
        np.testing.assert_allclose(ours.v.values, ref.v.values, atol=tol)
    cue = net.make_cue(cues[:1])

    def rhs(t, y):
        from neurodyn.network import State
        return net.velocity(State(torch.from_numpy(y)[None]), cue).v[0].numpy()

    radau = solve_ivp(rhs, (0.0, 4.0), cues[0].numpy(), method="Radau", t_eval=ref.time.values, **tight)
    np.testing.assert_allclose(radau.y.T, ref.v.values[:, 0], atol=1e-6)


def test_uhn_kl_in_float32_completes_as_quickly_as_in_float64(digits):
    """The KL matrix-product expansion cancels near a stored pattern; in float32 its noise went
    negative and 1 / (KL + eps) flipped sign, so cues chattered until max_steps."""
    memories, cues = digits
    runs = {dt: simulate(from_preset("uhn-kl", memories.to(dt)), cues.to(dt), 20.0, monitor=Monitor(("v",)),
                         method=CLI_SOLVER) for dt in (torch.float32, torch.float64)}
    for ds in runs.values():
        assert (ds.solver_status == STEADY).all()
    assert int(runs[torch.float32].solver_nfe.sum()) < 1.2 * int(runs[torch.float64].solver_nfe.sum())


@pytest.mark.parametrize("similarity", ["cosine", "normalized_dot", "dot:normalized", "kl", "reverse_kl", "js"])
def test_scale_invariant_similarities_have_gradients_orthogonal_to_g(similarity):
    # and unrefused, tanh value neurons decay to the origin as linear ones do (measured: the dam
    # preset with normalized_dot ended every digit cue at |v| ~ 3e-9)
    gen = torch.Generator().manual_seed(1)
    memories, g = torch.rand(7, 5, generator=gen, dtype=torch.float64), torch.rand(3, 5, generator=gen,
                                                                                   dtype=torch.float64)
    net = Network(memories, similarity=similarity)
    assert net.similarity.scale_invariant
    drive = net.similarity.gradient(memories, g, torch.rand(3, 7, generator=gen, dtype=torch.float64))
    assert float((drive * g).sum(-1).abs().max()) < 1e-12 * float(drive.abs().max())
    with pytest.raises(ValueError, match="decays to v = 0"):
        simulate(net, g, 1.0)
    with pytest.raises(ValueError, match="orthogonal to g = tanh"):  # tanh(v) has the sign of v too
        simulate(Network(memories, similarity=similarity, value_lagrangian="tanh"), g, 1.0)
    simulate(net, g, 1.0, cue_mode="both")  # an input current gives the flow somewhere else to go
    simulate(Network(memories, similarity=similarity, dynamics="projection"), g, 1.0)


def test_euclidean_gradient_dynamics_with_a_normalized_separation_are_refused():
    memories = torch.rand(5, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="unit vector"):
        simulate(Network(memories, similarity="euclidean"), memories, 1.0)
    simulate(Network(memories, similarity="euclidean", dynamics="projection"), memories, 1.0)


def test_half_precision_and_non_finite_settings_are_refused_before_any_work():
    memories = torch.rand(5, 4)
    with pytest.raises(ValueError, match="float32"):
        simulate(from_preset("mchn", memories.half()), memories.half(), 1.0)
    with pytest.raises(ValueError, match="strength"):
        simulate(from_preset("mchn", memories), memories, 1.0, cue_mode="current", strength=math.nan)
    with pytest.raises(ValueError, match="duration"):
        simulate(from_preset("mchn", memories), memories, math.inf)


def test_a_batch_with_failing_cues_returns_and_saves_the_others(digits, tmp_path):
    memories, cues = digits
    net = from_preset("mchn-l2", memories)
    free = simulate(net, cues[:20], 20.0, monitor=RECORD, method=CLI_SOLVER)
    attempts = (free.solver_steps_accepted + free.solver_steps_rejected).values
    budget = int(np.median(attempts))
    with pytest.warns(SolverWarning, match="failed"):
        ds = simulate(net, cues[:20], 20.0, monitor=RECORD, method=Solver("auto", rtol=1e-5, atol=1e-7,
                                                                          steady_tol=1e-4, max_steps=budget))
    failed = ds.solver_status.values == FAILED
    assert 0 < failed.sum() < 20 and (attempts[failed] > budget).all()
    # the others are exactly the free run; the failed ones hold their trajectory up to the failure
    np.testing.assert_array_equal(ds.v.values[:, ~failed], free.v.values[:, ~failed])
    for cue in np.flatnonzero(failed):
        reached = float(ds.solver_time_reached[cue])
        before = ds.time.values <= reached
        np.testing.assert_array_equal(ds.v.values[before, cue], free.v.values[before, cue])
        assert np.isnan(ds.v.values[~before, cue]).all() and np.isfinite(ds.v_final.values[cue]).all()
    reasons = json.loads(ds.attrs["solver_failures"])
    assert sorted(map(int, reasons)) == np.flatnonzero(failed).tolist()
    path = save_netcdf(ds, tmp_path / "partial.nc")
    back = load_netcdf(path)
    np.testing.assert_array_equal(back.solver_status.values, ds.solver_status.values)
    check = lyapunov_check(back)  # the failed cues' NaN rows are left out, not fatal
    assert math.isfinite(check.worst_ratio) and check.monotone


def test_cli_reports_failed_cues_after_writing_the_file(tmp_path, capsys):
    out = tmp_path / "run.nc"
    # the default run takes 14 to 19 attempts per cue at 40 memories: some finish within 16
    code = main(["recall", "--n-memories", "40", "--max-steps", "16", "--output", str(out), "--no-figure"])
    captured = capsys.readouterr()
    assert code == 3 and out.exists()
    assert "cues failed (more than max_steps=16 step attempts)" in captured.err
    assert "Traceback" not in captured.err and "per cue:" in captured.out
    ds = load_netcdf(out)
    assert (ds.solver_status == FAILED).any() and (ds.solver_status != FAILED).any()


@pytest.mark.parametrize("similarity,separation", [("dot", "polynomial:3"), ("biased_dot", "polynomial:2"),
                                                   ("hamming", "polynomial:3"), ("dot", "identity")])
def test_energies_unbounded_below_are_refused_with_linear_value_neurons(similarity, separation):
    memories = torch.rand(20, 8, dtype=torch.float64) + 0.5  # |M|_2 > 1
    for dynamics in ("gradient", "projection"):
        with pytest.raises(ValueError, match="unbounded below"):
            simulate(Network(memories, similarity=similarity, separation=separation, dynamics=dynamics), memories, 1.0)
    # saturating value neurons bound it, and the run completes
    net = Network(memories, similarity=similarity, separation=separation, value_lagrangian="tanh")
    ds = simulate(net, memories[:3], 5.0, method=CLI_SOLVER)
    assert (ds.solver_status != FAILED).all()
    # a linear separation with a gain below 1 is a contraction: allowed
    assert not Network(memories / 100, similarity="dot", separation="identity").retrieval_obstacle()


def test_progress_goes_to_the_log_when_standard_error_is_not_a_terminal(monkeypatch, capsys):
    from neurodyn.record import progress

    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.0)
    memories = torch.rand(5, 4, dtype=torch.float64)
    simulate(from_preset("mchn", memories), memories, 2.0, monitor=Monitor(("v",), n_times=5), progress=None)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("recall: ")]
    assert lines and lines[-1].startswith("recall: 5/5 recording times")
    simulate(from_preset("mchn", memories), memories, 2.0, monitor=Monitor(("v",), n_times=5))  # progress=False
    assert "recall:" not in capsys.readouterr().err


def test_random_patterns_are_fixed_balanced_bits_and_need_no_data_root(monkeypatch):
    from neurodyn.data import DATA_ENV, load_dataset, load_random_patterns

    monkeypatch.delenv(DATA_ENV, raising=False)
    patterns = load_dataset("random_patterns")
    assert patterns.images.shape == (1000, 1, 28, 28) and patterns.labels is None
    assert set(patterns.images.unique().tolist()) == {0.0, 1.0}
    assert abs(float(patterns.images.mean()) - 0.5) < 0.01
    assert torch.equal(load_random_patterns().images, patterns.images)  # the same set every time
    # uncorrelated: overlaps of distinct bipolar patterns are O(sqrt(I)), not O(I) as for digits
    bipolar = 2 * patterns.flat()[:100] - 1
    overlaps = (bipolar @ bipolar.T).fill_diagonal_(0).abs()
    assert float(overlaps.max()) < 5 * 784 ** 0.5


@pytest.mark.parametrize("preset,memories,low,high", [("hn", 100, 0.85, 1.0), ("hn", 200, 0.0, 0.3),
                                                      ("dam", 300, 0.95, 1.0)])
def test_classical_presets_recall_their_own_data_from_the_cli_up_to_their_capacity(tmp_path, capsys, preset,
                                                                                   memories, low, high):
    # hn stores about 0.14 I = 110 uncorrelated patterns of 784 bits; dam's cubic separation many more
    out = tmp_path / "run.nc"
    code = main(["recall", "--model", preset, "--n-memories", str(memories), "--n-cues", "40", "--output", str(out),
                 "--no-figure"])
    assert code == 0
    ds = load_netcdf(out)
    assert ds.attrs["data"] == "random_patterns"
    assert low <= retrieval(ds).attrs["rate"] <= high
    assert lyapunov_check(ds).monotone


def test_subnormal_values_are_flushed_from_the_state_and_the_separation():
    from neurodyn.numerics import flush_subnormal

    tiny = torch.finfo(torch.float32).tiny
    x = torch.tensor([tiny / 4, -tiny / 2, tiny, -2 * tiny, 0.0, 1.0])
    assert flush_subnormal(x).tolist() == [0.0, 0.0, tiny, -2 * tiny, 0.0, 1.0]
    # a unit decaying at rate 1 from 1e-30 is subnormal from t = 18 (9e-44 at t = 30): the solve
    # steps on 0 instead
    solve = PerCueSolve(lambda t, y, rows: -y, torch.tensor([[1e-30, 1.0]]), torch.linspace(0, 30, 4), rtol=1e-5,
                        atol=1e-40)
    run(solve)
    assert solve.final_state[0, 0] == 0.0 and 9e-14 < solve.final_state[0, 1] < 1e-13
    # a memory 9.2 score units below the best has softmax:10 weight exp(-92) ~ 1e-40, subnormal in
    # float32: the velocity takes it as 0, so the unit only it drives gets 0, not 5e-40
    net = from_preset("mchn-l2", torch.tensor([[0.0, 1.0], [4.17, 0.0]]))
    g = torch.tensor([[0.0, 1.0]])
    f = net.separate(net.scores(g))
    assert 0 < f[0, 1] < tiny  # the record keeps the value as computed
    dv = net.velocity(State(g), net.make_cue(g)).v
    assert dv[0, 0] == 0.0 and dv[0, 1] == 0.0
