"""The matrix-free implicit solve: batched GMRES and the Krylov-Rosenbrock step of large states."""

from __future__ import annotations

import pytest
import torch

import neurodyn.solve.rosenbrock as rosenbrock
from neurodyn import Monitor, Solver, from_preset, simulate
from neurodyn.analysis import lyapunov_check, retrieval
from neurodyn.data import corrupt, load_digits
from neurodyn.krylov import gmres
from neurodyn.solve import IMPLICIT, STEADY, PerCueSolve


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gmres_solves_each_system_of_the_batch_to_its_own_tolerance(dtype):
    gen = torch.Generator().manual_seed(0)
    b, d = 5, 40
    # I - h J for a dissipative J of varied stiffness per system
    a = torch.randn(b, d, d, generator=gen, dtype=torch.float64)
    jac = -(a @ a.transpose(1, 2)) * torch.tensor([0.01, 0.1, 1.0, 10.0, 100.0], dtype=torch.float64)[:, None, None]
    mat = (torch.eye(d, dtype=torch.float64) - 0.05 * jac).to(dtype)
    rhs = torch.randn(b, d, generator=gen, dtype=torch.float64).to(dtype)
    rhs[0] = 0.0  # solved from the start
    tol = torch.full((b,), 1e-4, dtype=dtype) * rhs.norm(dim=-1).clamp_min(1.0)
    x, products = gmres(lambda v: torch.einsum("bij,bj->bi", mat, v), rhs, tol, restart=20, max_iterations=400)
    residual = (rhs - torch.einsum("bij,bj->bi", mat, x)).norm(dim=-1)
    assert (residual <= 1.01 * tol).all()
    assert torch.equal(x[0], torch.zeros(d, dtype=dtype)) and products[0] == 0
    # the stiffer systems need more products (restarts included) than the mild ones
    assert products[4] > products[1] > 0
    exact = torch.linalg.solve(mat.double(), rhs.double()[..., None]).squeeze(-1)
    # |A^-1| <= 1 for A = I - h J with J negative definite: the error is at most the residual
    slack = 1e-5 if dtype == torch.float32 else 1e-12
    assert ((x.double() - exact).norm(dim=-1) <= 1.01 * tol.double() + slack).all()


def test_the_matrix_free_step_follows_stiff_systems_as_the_dense_one(monkeypatch):
    from test_stiff import exact, linear, run  # the stiff linear systems with their exact solution

    y0 = torch.tensor([[1.0, 2.0, 3.0]] * 3, dtype=torch.float64)
    times = torch.linspace(0.0, 2.0, 11, dtype=torch.float64)
    dense = PerCueSolve(linear, y0, times, "rosenbrock23", rtol=1e-7, atol=1e-9)
    dense_error = float((run(dense) - exact(times, y0)).abs().max())
    # three linear solves per implicit attempt, here each by the LU factorization of its step
    assert torch.equal(dense.stats.solves, 3 * dense.stats.factorizations) and int(dense.stats.solves.sum()) > 0
    monkeypatch.setattr(rosenbrock, "DENSE_JACOBIAN_MAX_DIM", 2)
    for method in ("rosenbrock23", "auto"):
        solve = PerCueSolve(linear, y0, times, method, rtol=1e-7, atol=1e-9)
        out = run(solve)
        assert solve.matrix_free
        # as accurate as the dense solve (the stiffest cue's eigenvalue is -3,000)
        assert float((out - exact(times, y0)).abs().max()) <= 1.5 * dense_error
        assert int(solve.stats.jacobians.sum()) == 0 and int(solve.stats.factorizations.sum()) == 0
        assert int(solve.stats.solves.sum()) > 0
    assert int((solve.stats.method == IMPLICIT).sum()) >= 2  # auto switched the stiff cues


def test_a_stiff_network_of_400_units_solves_matrix_free_in_fewer_evaluations_than_dopri5():
    images = load_digits().resized(20).images[:40]  # 400 units: beyond the dense Jacobian's size
    memories = images.reshape(40, -1).double()
    cues = corrupt(images[:6], "mask", fraction=0.25, side="bottom").reshape(6, -1).double()
    net = from_preset("mchn-l2", memories, similarity="manhattan:smooth=0.01")
    solver = dict(rtol=1e-5, atol=1e-7, steady_tol=1e-4, max_steps=20000)
    monitor = Monitor(("v", "energy"), n_times=21)
    auto = simulate(net, cues, 20.0, monitor=monitor, method=Solver("auto", **solver), targets=memories[:6])
    explicit = simulate(net, cues, 20.0, monitor=monitor, method=Solver("dopri5", **solver), targets=memories[:6])
    assert (auto.solver_status == STEADY).all()
    assert int((auto.solver_method_used == IMPLICIT).sum()) >= 3 and int(auto.solver_jacobians.sum()) == 0
    implicit = auto.solver_method_used == IMPLICIT
    solves = auto.solver_linear_solves
    assert (solves.where(implicit, 1) > 0).all() and (solves.where(~implicit, 0) == 0).all()
    assert int(auto.solver_nfe.sum()) < int(explicit.solver_nfe.sum()) / 2
    assert retrieval(auto).attrs["rate"] == retrieval(explicit).attrs["rate"] == 1.0
    check = lyapunov_check(auto)
    assert check.guaranteed and check.monotone
