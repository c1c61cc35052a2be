"""Energy, dynamics and integration: the mathematics of DESIGN.md section 2, checked numerically."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neurodyn import Monitor, Network, Solver, SolverError, SolverWarning, from_preset, simulate
from neurodyn.analysis import lyapunov_check

ENERGY = Monitor(variables=("energy",), n_times=41)


def random_problem(seed: int, n: int, i: int, b: int = 4, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    memories = torch.randn(n, i, generator=gen, dtype=dtype) / i ** 0.5
    cues = memories[torch.arange(b) % n] + 0.3 * torch.randn(b, i, generator=gen, dtype=dtype) / i ** 0.5
    return memories, cues


def test_one_euler_step_is_the_mchn_update():
    """UHN eq. 6-7: one Euler step, dt = tau_v = 1, of the reduced MCHN gives M' softmax(beta M q)."""
    memories, cues = random_problem(0, 20, 16, b=5, dtype=torch.float32)
    beta = 3.0
    net = from_preset("mchn", memories, beta=beta)
    ds = simulate(net, cues, 1.0, monitor=Monitor(("v",), n_times=2), method=Solver("euler", step_size=1.0))
    expected = torch.softmax(beta * cues @ memories.T, dim=-1) @ memories
    np.testing.assert_allclose(ds["v_final"].values, expected.numpy(), rtol=0, atol=2e-7)
    assert ds.attrs["steps_accepted"] == 1


# Memory Lagrangians with continuous activations; value Lagrangians that keep the energy bounded
# below for them (the quadratic only with bounded separations).
BOUNDED_SEPARATIONS = ["softmax:4", "sigmoid", "tanh"]
UNBOUNDED_SEPARATIONS = ["identity", "polynomial:1", "polynomial:2", "polynomial:3"]
CASES = ([(sep, val) for sep in BOUNDED_SEPARATIONS for val in ("identity", "tanh")]
         + [(sep, "tanh") for sep in UNBOUNDED_SEPARATIONS])


@pytest.mark.parametrize("separation,value", CASES)
@pytest.mark.parametrize("similarity", ["dot", "sq_euclidean"])
@pytest.mark.parametrize("tau_h", [None, 0.5])
@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 12), i=st.integers(2, 10),
       method=st.sampled_from(["dopri5", "bosh3", "adaptive_heun"]))
def test_gradient_dynamics_never_increase_the_energy(separation, value, similarity, tau_h, seed, n, i, method):
    """UHN appendix A: convex Lagrangians under gradient dynamics make E a Lyapunov function."""
    memories, cues = random_problem(seed, n, i)
    net = Network(memories, similarity=similarity, separation=separation, value_lagrangian=value, tau_h=tau_h)
    assert net.lyapunov_guaranteed
    # Low-order methods get looser tolerances (the check's tolerance follows them).
    rtol = {"dopri5": 1e-8, "bosh3": 1e-7, "adaptive_heun": 1e-5}[method]
    ds = simulate(net, cues, 5.0, monitor=ENERGY, method=Solver(method, rtol=rtol, atol=rtol * 1e-2))
    report = lyapunov_check(ds)
    assert report.monotone, report.verdict
    # The energy does move: the check is not passing on a flat line.
    assert float((ds.energy[0] - ds.energy[-1]).max()) > 1e-6


@pytest.mark.parametrize("separation", ["max", "topk:2", "threshold:0.1"])
@pytest.mark.parametrize("value", ["identity", "tanh"])
@pytest.mark.parametrize("similarity", ["dot", "sq_euclidean"])
@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 10), i=st.integers(2, 8))
def test_nonsmooth_convex_separations_descend_the_reduced_energy(separation, value, similarity, seed, n, i):
    """Max, top-k and threshold are convex but not differentiable: the tool does not call them
    guaranteed, yet with fast memory neurons E(v) is continuous and piecewise a gradient flow, so
    the recorded energy still must not rise."""
    memories, cues = random_problem(seed, n, i)
    net = Network(memories, similarity=similarity, separation=separation, value_lagrangian=value)
    assert not net.lyapunov_guaranteed and "discontinuous activation" in net.lyapunov_reason()
    ds = simulate(net, cues, 5.0, monitor=ENERGY, method=Solver("dopri5", rtol=1e-8, atol=1e-10))
    assert lyapunov_check(ds).monotone, lyapunov_check(ds).verdict


@pytest.mark.parametrize("tau_h", [None, 0.5])
def test_log_separation_on_positive_scores(tau_h):
    """The log Lagrangian (x log x - x) is convex on x > 0: positive patterns and cues."""
    memories, cues = random_problem(5, 8, 6)
    memories, cues = memories.abs() + 0.1, cues.abs() + 0.1
    net = Network(memories, similarity="dot", separation="log", value_lagrangian="tanh", tau_h=tau_h)
    assert net.lyapunov_guaranteed
    ds = simulate(net, cues, 5.0, monitor=ENERGY, method=Solver("dopri5", rtol=1e-8, atol=1e-10))
    assert lyapunov_check(ds).monotone


@pytest.mark.parametrize("method,kw", [("dopri8", {}), ("bosh3", {}), ("adaptive_heun", {}), ("fehlberg2", {}),
                                       ("euler", {"step_size": 0.005}), ("midpoint", {"step_size": 0.05}),
                                       ("rk4", {"step_size": 0.1})])
def test_every_method_reaches_the_same_state(method, kw):
    memories, cues = random_problem(14, 10, 8)
    net = from_preset("mchn", memories, beta=3.0)
    mon = Monitor(("energy",), n_times=11)
    reference = simulate(net, cues, 2.0, monitor=mon, method=Solver("dopri5", rtol=1e-10, atol=1e-12))
    ds = simulate(net, cues, 2.0, monitor=mon, method=Solver(method, rtol=1e-7, atol=1e-9, **kw))
    # Global error exceeds the per-step tolerance, and torchdiffeq interpolates the recorded
    # times inside steps (low-order for dopri8), hence a looser bound than rtol.
    tol = {"euler": 5e-3, "midpoint": 1e-3, "rk4": 1e-5}.get(method, 5e-5)
    np.testing.assert_allclose(ds.v_final, reference.v_final, atol=tol)
    assert ds.attrs["nfe"] > 0 and ds.attrs["steps_accepted"] > 0


def test_iterated_retrieval_repeats_the_one_shot_update():
    memories, cues = random_problem(15, 10, 8)
    net = from_preset("uhn-manhattan", memories.abs())
    once = net.retrieve(cues.abs())
    torch.testing.assert_close(net.retrieve(cues.abs(), steps=3), net.retrieve(net.retrieve(once)))


def test_sdm_preset_recalls_binary_patterns():
    """Kanerva's SDM: memories within Hamming radius 8 vote; majority read-out."""
    gen = torch.Generator().manual_seed(16)
    memories = (torch.rand(30, 64, generator=gen) < 0.5).double()
    flip = torch.rand(30, 64, generator=gen) < 0.05
    cues = torch.where(flip, 1 - memories, memories)
    net = from_preset("sdm", memories)
    np.testing.assert_array_equal(net.retrieve(cues).numpy(), memories.numpy())
    ds = simulate(net, cues, 5.0)
    np.testing.assert_array_equal(ds.recalled.values, memories.numpy())


def test_lyapunov_check_catches_an_increase():
    """An Euler step beyond stability (dt = 2.5 tau_v overshoots and oscillates) raises the
    energy; the check must report it and blame the numerics, since theory guarantees a decrease."""
    memories, cues = random_problem(1, 10, 8)
    net = from_preset("mchn", memories, beta=8.0)
    ds = simulate(net, cues, 20.0, monitor=Monitor(("energy",), n_times=9), method=Solver("euler", step_size=2.5))
    report = lyapunov_check(ds)
    assert not report.monotone
    assert "INCREASES" in report.verdict and "solver" in report.verdict


def test_projection_dynamics_with_manhattan_are_reported_as_not_guaranteed():
    memories, cues = random_problem(2, 10, 8)
    net = Network(memories, similarity="manhattan", separation="softmax:5", dynamics="projection")
    assert not net.lyapunov_guaranteed
    assert "not a gradient flow" in net.lyapunov_reason()
    ds = simulate(net, cues, 5.0, monitor=ENERGY)
    report = lyapunov_check(ds)
    assert not report.guaranteed
    assert ("not guaranteed" in report.verdict) or ("expected, no Lyapunov guarantee" in report.verdict)


def test_projection_equals_gradient_for_dot_similarity():
    memories, cues = random_problem(3, 10, 8)
    kw = dict(similarity="dot", separation="softmax:3")
    a = simulate(Network(memories, dynamics="gradient", **kw), cues, 3.0, monitor=ENERGY)
    b = simulate(Network(memories, dynamics="projection", **kw), cues, 3.0, monitor=ENERGY)
    np.testing.assert_allclose(a.v_final, b.v_final, atol=1e-9)
    assert Network(memories, dynamics="projection", **kw).lyapunov_guaranteed


def test_projection_differs_from_gradient_for_sq_euclidean():
    """With -|g-m|^2/2 the gradient drive is M'f - (sum f) g, not M'f: the two dynamics differ."""
    memories, cues = random_problem(4, 10, 8)
    kw = dict(similarity="sq_euclidean", separation="softmax:3")
    a = simulate(Network(memories, dynamics="gradient", **kw), cues, 3.0, monitor=ENERGY)
    b = simulate(Network(memories, dynamics="projection", **kw), cues, 3.0, monitor=ENERGY)
    assert float(np.abs(a.v_final - b.v_final).max()) > 1e-2


def test_fast_memory_limit_of_the_full_dynamics():
    """tau_h -> 0: the two-population trajectory approaches the reduced one (UHN eq. 4)."""
    memories, cues = random_problem(5, 8, 6)
    kw = dict(similarity="dot", separation="softmax:2", value_lagrangian="tanh")
    reduced = simulate(Network(memories, **kw), cues, 4.0, monitor=Monitor(("v",), n_times=9))
    errors = []
    for tau_h in (0.1, 0.01):
        full = simulate(Network(memories, tau_h=tau_h, **kw), cues, 4.0, monitor=Monitor(("v",), n_times=9))
        errors.append(float(np.abs(full.v - reduced.v).max()))
    assert errors[1] < 0.2 * errors[0] and errors[1] < 5e-3


def test_full_energy_at_equilibrium_equals_reduced_energy():
    memories, cues = random_problem(6, 7, 5)
    full = Network(memories, similarity="dot", separation="softmax:2", tau_h=1.0)
    reduced = Network(memories, similarity="dot", separation="softmax:2")
    cue = full.make_cue(cues)
    e_full = full.energy(full.initial_state(cue), cue)["total"]  # h(0) = sim(M, g(0))
    e_red = reduced.energy(reduced.initial_state(cue), cue)["total"]
    torch.testing.assert_close(e_full, e_red)


def test_clamped_units_stay_at_the_cue_and_energy_still_decreases():
    memories, cues = random_problem(7, 10, 8)
    clamp = torch.zeros(8, dtype=torch.bool)
    clamp[:3] = True
    net = Network(memories, similarity="dot", separation="softmax:3")
    ds = simulate(net, cues, 5.0, clamp=clamp, monitor=Monitor(("v", "energy")))
    np.testing.assert_array_equal(ds.v.values[:, :, :3], np.broadcast_to(cues[:, :3].numpy(), ds.v.shape[:2] + (3,)))
    assert float(np.abs(ds.v.values[-1, :, 3:] - cues[:, 3:].numpy()).max()) > 1e-3
    assert lyapunov_check(ds).monotone


def test_clamping_a_non_elementwise_value_population_voids_the_guarantee():
    """With a softmax value Lagrangian, g of clamped units still moves: no guarantee, and the
    run's provenance says so (an elementwise one keeps it)."""
    memories, cues = random_problem(17, 6, 5)
    clamp = torch.tensor([True, False, False, False, False])
    soft = Network(memories, similarity="dot", separation="softmax:3", value_lagrangian="softmax:2")
    assert soft.lyapunov_guaranteed and soft.lyapunov_obstacles(clamped=True)
    ds = simulate(soft, cues, 5.0, clamp=clamp, monitor=ENERGY)
    assert ds.attrs["lyapunov_guaranteed"] == 0 and "clamping" in ds.attrs["lyapunov_reason"]
    tanh = Network(memories, similarity="dot", separation="softmax:3", value_lagrangian="tanh")
    assert simulate(tanh, cues, 1.0, clamp=clamp, monitor=ENERGY).attrs["lyapunov_guaranteed"] == 1


def test_max_steps_caps_the_whole_run():
    """torchdiffeq's engine counts the run's accepted steps (the per-cue engine each cue's
    attempts: tests/test_stiff.py)."""
    memories, cues = random_problem(18, 10, 8)
    net = from_preset("mchn", memories, beta=5.0)
    solver = dict(method="dopri5", engine="torchdiffeq", rtol=1e-9, atol=1e-11)
    free = simulate(net, cues, 20.0, method=Solver(**solver))
    budget = free.attrs["steps_accepted"] // 2
    with pytest.raises(SolverError, match="max_steps"):
        simulate(net, cues, 20.0, method=Solver(**solver, max_steps=budget))


def test_input_current_cue_drives_from_zero():
    memories, cues = random_problem(8, 6, 8)
    net = Network(memories, similarity="dot", separation="softmax:3")
    ds = simulate(net, memories[:2], 10.0, cue_mode="current", strength=0.5, monitor=Monitor(("v", "energy")))
    assert float(np.abs(ds.v.values[0]).max()) == 0.0
    assert float(np.abs(ds.energy_input.values[-1]).min()) > 0
    assert lyapunov_check(ds).monotone


def test_steady_state_stopping_per_cue():
    memories, _ = random_problem(9, 5, 6)
    # One cue already on a near-fixed point, one far away: they converge at different times.
    net = from_preset("mchn", memories, beta=20.0)
    far = torch.zeros(1, 6, dtype=torch.float64)
    near = net.retrieve(net.retrieve(memories[:1]))
    ds = simulate(net, torch.cat([near, far]), 50.0, method=Solver(steady_tol=1e-6), monitor=Monitor(n_times=201))
    assert bool(ds.converged.all())
    t_near, t_far = ds.convergence_time.values
    assert t_near < t_far < 50.0
    assert float(ds.time[-1]) < 50.0  # the run stopped early
    # the per-cue engine stops a cue at a step, held from the next recording time on
    after = ds.speed.sel(cue=1).where(ds.time >= t_far, drop=True)
    assert float(after[0]) < 1e-6 and float(after.max()) < 1e-6


def test_solver_error_when_the_step_budget_is_exhausted():
    memories, cues = random_problem(10, 10, 8)
    net = from_preset("mchn", memories, beta=5.0)
    with pytest.raises(SolverError, match="max_steps"):
        simulate(net, cues, 50.0, method=Solver("dopri5", engine="torchdiffeq", rtol=1e-12, atol=1e-14, max_steps=5))
    with pytest.warns(SolverWarning, match="max_steps=5"):
        ds = simulate(net, cues, 50.0, method=Solver(rtol=1e-12, atol=1e-14, max_steps=5))
    assert (ds.solver_status == 3).all()


def test_fixed_step_must_divide_the_recording_spacing():
    memories, cues = random_problem(1, 10, 8)
    with pytest.raises(ValueError, match="step_size"):
        simulate(from_preset("mchn", memories), cues, 20.0, monitor=Monitor(n_times=11),
                 method=Solver("euler", step_size=3.0))


def test_solver_error_when_the_state_diverges():
    memories, cues = random_problem(11, 10, 8)
    # Linear value neurons with a linear memory population of gain > 1: E is unbounded below, so
    # the model is refused up front; built from a Similarity object the check is the same.
    net = Network(memories * 10, similarity="dot", separation="identity")
    with pytest.raises(ValueError, match="unbounded below"):
        simulate(net, cues, 1e4, method=Solver("euler", step_size=1.0), monitor=Monitor(n_times=3))
    # A sound model with an unstable fixed step (Euler at h = 2.5 multiplies the leak's part by
    # -1.5 per step) blows up; each cue fails with its reason.
    with pytest.warns(SolverWarning, match="NaN or infinite"):
        ds = simulate(from_preset("mchn", memories), cues, 1e4, method=Solver("euler", step_size=2.5),
                      monitor=Monitor(n_times=3))
    assert (ds.solver_status == 3).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_is_kept(dtype):
    memories, cues = random_problem(12, 5, 4, dtype=dtype)
    ds = simulate(from_preset("mchn", memories), cues, 1.0, monitor=Monitor(("v", "energy"), n_times=3))
    assert ds.v.dtype == (np.float32 if dtype == torch.float32 else np.float64)
    assert ds.attrs["dtype"] == str(dtype).replace("torch.", "")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.gpu
def test_cuda_matches_cpu():
    memories, cues = random_problem(13, 50, 32)
    net = from_preset("mchn", memories, beta=4.0)
    cpu = simulate(net, cues, 5.0)
    gpu = simulate(net.to("cuda"), cues, 5.0)
    np.testing.assert_allclose(cpu.v_final, gpu.v_final, atol=1e-6)
