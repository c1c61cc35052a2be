"""Batched, restarted GMRES for the matrix-free implicit step (Saad & Schultz 1986).

The implicit method solves ``(I - h d J) x = r`` per cue. Up to
:data:`neurodyn.solve.rosenbrock.DENSE_JACOBIAN_MAX_DIM` units it factorizes that matrix; beyond, forming a
D x D Jacobian per cue costs D right-hand sides and D^2 memory, so the solve is matrix-free:
GMRES needs only products ``J v``, one batched right-hand side each (a finite difference along
``v``). Neither torch nor torchdiffeq has a Krylov solver, and scipy's ``gmres`` takes one
system at a time on the host; here every cue of the batch is one system, all advanced by the
same batched products, each stopping its updates when its own residual is small enough.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

#: Krylov vectors per cycle before a restart.
RESTART = 30
#: Products ``J v`` per solve at most (a solve that has not converged returns its best iterate:
#: the Rosenbrock-W step's error estimate then judges it).
MAX_ITERATIONS = 90


def gmres(apply: Callable[[torch.Tensor], torch.Tensor], rhs: torch.Tensor, tol: torch.Tensor, *,
          restart: int = RESTART, max_iterations: int = MAX_ITERATIONS) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve ``A x = rhs`` for a batch of systems, ``A`` given by ``apply`` (B, D) -> (B, D).

    ``tol`` (B,): each system's target for the Euclidean norm of its residual. Returns ``x``
    (B, D) and the products ``A v`` each system needed (B,) (all systems ride along in the
    batched products until every one has converged or ``max_iterations`` is reached).
    The least-squares problem of each cycle is solved by Givens rotations, which also give every
    system's residual norm after each product at no extra cost.
    """
    batch = rhs.shape[0]
    work = torch.float64 if rhs.dtype == torch.float64 else torch.float32
    x = torch.zeros_like(rhs)
    residual = rhs.clone()
    used = torch.zeros(batch, dtype=torch.long, device=rhs.device)
    tiny = torch.finfo(work).tiny
    total = 0
    while total < max_iterations:
        beta = residual.to(work).norm(dim=-1)
        open_ = beta > tol
        if not bool(open_.any()):
            break
        cycle = open_.clone()  # the systems this cycle works for
        steps = min(restart, max_iterations - total)
        basis = [(residual.to(work) / beta.clamp_min(tiny)[:, None])]
        hess = rhs.new_zeros(batch, steps + 1, steps, dtype=work)
        cos = rhs.new_zeros(batch, steps, dtype=work)
        sin = rhs.new_zeros(batch, steps, dtype=work)
        g = rhs.new_zeros(batch, steps + 1, dtype=work)
        g[:, 0] = beta
        done = 0
        for j in range(steps):
            w = apply(basis[j].to(rhs.dtype)).to(work)
            total += 1
            used += open_
            _orthogonalize(w, basis, hess, j, tiny)
            _rotate(hess, cos, sin, g, j, tiny)
            done = j + 1
            open_ = open_ & (g[:, j + 1].abs() > tol)
            if not bool(open_.any()):
                break
        x = x + _cycle_update(hess, g, basis, done).to(rhs.dtype)
        residual = rhs - apply(x)  # the true residual (rounding and finite differences drift)
        total += 1
        used += cycle
    return x, used


def _orthogonalize(w: torch.Tensor, basis: list[torch.Tensor], hess: torch.Tensor, j: int, tiny: float) -> None:
    """Arnoldi step: ``w = A v_j`` made orthogonal to ``basis`` (modified Gram-Schmidt), its
    coefficients and norm written to column ``j`` of ``hess``, its direction appended to ``basis``."""
    for i, v in enumerate(basis):
        hess[:, i, j] = (w * v).sum(-1)
        w = w - hess[:, i, j, None] * v
    norm = w.norm(dim=-1)
    hess[:, j + 1, j] = norm
    basis.append(w / norm.clamp_min(tiny)[:, None])


def _rotate(hess: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, g: torch.Tensor, j: int, tiny: float) -> None:
    """Givens step on column ``j`` of ``hess``, in place: the earlier rotations, then a new one
    (``cos[:, j]``, ``sin[:, j]``) that zeroes its subdiagonal, also applied to ``g``, whose entry
    ``j + 1`` is then each system's residual norm."""
    for i in range(j):  # the earlier rotations on the new column
        a, b = hess[:, i, j].clone(), hess[:, i + 1, j].clone()
        hess[:, i, j], hess[:, i + 1, j] = cos[:, i] * a + sin[:, i] * b, -sin[:, i] * a + cos[:, i] * b
    a, b = hess[:, j, j], hess[:, j + 1, j]
    radius = torch.hypot(a, b)
    # A system already solved (a zero column) keeps an identity rotation.
    cos[:, j] = torch.where(radius > 0, a / radius.clamp_min(tiny), 1.0)
    sin[:, j] = torch.where(radius > 0, b / radius.clamp_min(tiny), 0.0)
    hess[:, j, j], hess[:, j + 1, j] = torch.where(radius > 0, radius, 1.0), 0.0
    g[:, j + 1] = -sin[:, j] * g[:, j]
    g[:, j] = cos[:, j] * g[:, j]


def _cycle_update(hess: torch.Tensor, g: torch.Tensor, basis: list[torch.Tensor], done: int) -> torch.Tensor:
    """A cycle's correction to ``x`` after ``done`` products: the triangular system R y = g, then V y."""
    coeff = torch.linalg.solve_triangular(hess[:, :done, :done], g[:, :done, None], upper=True).squeeze(-1)
    return torch.einsum("bk,kbd->bd", coeff, torch.stack(basis[:done]))
