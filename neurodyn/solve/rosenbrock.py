"""The implicit method: Rosenbrock23 attempts per cue, with its linear solves dense or matrix-free.

The L-stable Rosenbrock-W pair of order 2(3) of Shampine & Reichelt (1997, MATLAB's ``ode23s``,
DifferentialEquations.jl's ``Rosenbrock23``) with its 2nd-order dense output. Being a W-method,
it keeps its order with any approximation of the Jacobian, so the Jacobian is a finite-difference
one (any right-hand side, autograd or not), computed for all cues of the batch in a few batched
calls and reused across steps until a step is rejected with a stale one. States over
:data:`DENSE_JACOBIAN_MAX_DIM` units solve the stages matrix-free instead: GMRES on
finite-difference Jacobian-vector products (a Krylov-Rosenbrock step). torchdiffeq has no
implicit method, hence this one.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..krylov import gmres
from .control import ErrorControl
from .status import FACTORIZATIONS, JACOBIANS, NFE, SOLVES, WorkingBatch
from .step import CountedField, Frame, Trial

#: Largest state (units per cue) for which the implicit method builds a D x D Jacobian per cue
#: (D right-hand sides) and factorizes it; larger states solve its stages matrix-free (GMRES on
#: Jacobian-vector products, :mod:`neurodyn.krylov`). Measured crossover (docs/performance.md,
#: "Matrix-free implicit solve"): even at 256 units; at 784 the matrix-free solve is 2.3x
#: (float32) and 12x (float64) faster.
DENSE_JACOBIAN_MAX_DIM = 256
#: Cue-rows per right-hand-side call when building finite-difference Jacobians.
JACOBIAN_ROWS = 8192
#: Accepted steps after which a Jacobian is rebuilt even if no step was rejected.
JACOBIAN_REUSE = 20
#: The matrix-free solve's target: ``h |residual|`` at this fraction of the error control's scale.
KRYLOV_FRACTION = 1e-2
# Rosenbrock23 (Shampine & Reichelt 1997): gamma = 1 / (2 + sqrt 2), e32 = 6 + sqrt 2.
GAMMA, E32 = 1.0 / (2.0 + math.sqrt(2.0)), 6.0 + math.sqrt(2.0)

Solve = Callable[[torch.Tensor], torch.Tensor]


class Rosenbrock23:
    """Rosenbrock23 attempts (Shampine & Reichelt 1997, eq. for ode23s, autonomous form)::

        W = I - h d J,  k1 = W^-1 F0,  F1 = f(y + h k1 / 2),  k2 = W^-1 (F1 - k1) + k1,
        y1 = y + h k2,  F2 = f(y1),  k3 = W^-1 (F2 - e32 (k2 - F1) - 2 (k1 - F0)),
        err = h (k1 - 2 k2 + k3) / 6

    ``W^-1`` is an LU factorization (:meth:`dense_solver`) for ``matrix_free`` False, a
    matrix-free Krylov solve (:meth:`krylov_solver`) otherwise. ``time_derivative``: the field
    depends on ``t`` (a time-varying input current): ``T = df/dt``, a forward difference in time
    at the step's start, enters the first and third stages as ``+ h d T`` (ode23s's
    non-autonomous form); without it the field must not depend on ``t``."""

    order = 3

    def __init__(self, field: CountedField, control: ErrorControl, matrix_free: bool,
                 time_derivative: bool = False) -> None:
        self.field, self.control, self.matrix_free = field, control, matrix_free
        self.time_derivative = time_derivative

    def attempt(self, w: WorkingBatch, frame: Frame) -> Trial:
        """One attempt; also leaves the cues' Jacobians and their ages in ``w``."""
        active, h = frame.active, frame.h
        y, f0 = w.y, w.derivative()
        if self.matrix_free:
            solve, solved = self.krylov_solver(w, active, h), torch.ones_like(active)
            jac, need = None, torch.zeros_like(active)
        else:
            solve, solved, jac, need = self.dense_solver(w, active, h)
        hc = h[:, None].to(y.dtype)
        w.counts[SOLVES] += 3 * active
        hdt = self.time_term(w, active, h) if self.time_derivative else 0.0
        k1 = solve(f0 + hdt)
        f1 = self.field(w.t + 0.5 * h, y + 0.5 * hc * k1, w.rows)
        k2 = solve(f1 - k1) + k1
        y_new = y + hc * k2
        f2 = self.field(frame.t_new, y_new, w.rows)
        k3 = solve(f2 - E32 * (k2 - f1) - 2.0 * (k1 - f0) + hdt)
        err_norm = self.control.error_norm(hc / 6.0 * (k1 - 2.0 * k2 + k3), y, y_new)
        err_norm = torch.where(solved & torch.isfinite(f2).all(-1), err_norm, math.inf)
        accept, h_next = self.control.next_step(w.h, active, frame.lands, h, err_norm, self.order)

        def interpolate(theta: torch.Tensor) -> torch.Tensor:
            """ode23s's dense output at fractions ``theta`` (b, n, 1) of the step: ``y + h (s(1-s)
            k1 + s(s-2d) k2) / (1-2d)``."""
            c1, c2 = (theta * (1 - theta) / (1 - 2 * GAMMA), theta * (theta - 2 * GAMMA) / (1 - 2 * GAMMA))
            return y[:, None] + hc[:, None] * (c1 * k1[:, None] + c2 * k2[:, None])

        w.jac, w.jac_age = jac, torch.where(need, 0, w.jac_age) + accept
        return Trial(accept, h_next, frame.t_new, y_new, f2, 2, interpolate)

    def time_term(self, w: WorkingBatch, active: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """``h d df/dt`` at the step's start, ``df/dt`` by a forward difference in time (one more
        evaluation per cue; forward, so that a step starting on a kink of the input sees the
        slope it steps into)."""
        y, f0 = w.y, w.derivative()
        t_ahead = w.t + math.sqrt(torch.finfo(y.dtype).eps) * w.t.abs().clamp_min(1.0)
        delta = (t_ahead - w.t)[:, None]  # the step as represented (float64)
        w.counts[NFE] += active
        slope = (self.field(t_ahead, y, w.rows) - f0) / delta.to(y.dtype)
        return (h * GAMMA)[:, None].to(y.dtype) * slope

    def dense_solver(self, w: WorkingBatch, active: torch.Tensor,
                     h: torch.Tensor) -> tuple[Solve, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``r -> W^-1 r`` by an LU factorization of ``W = I - h d J`` per cue, with ``J`` rebuilt
        when the cue has none, after a rejected step with a stale one, and every
        :data:`JACOBIAN_REUSE` accepted steps; also which cues' factorizations succeeded, the
        Jacobians and which cues got a new one."""
        y, f0 = w.y, w.derivative()
        need = active & ((w.jac_age < 0) | (w.rejected & (w.jac_age > 0)) | (w.jac_age >= JACOBIAN_REUSE))
        jac = w.jac if w.jac is not None else y.new_zeros(len(y), y.shape[1], y.shape[1])
        if bool(need.any()):  # (one host look, to pick the cues that need one)
            sel = need.nonzero().squeeze(-1)
            jac[sel] = self.jacobian(w.t[sel], y[sel], f0[sel], w.rows[sel])
            w.counts[NFE, sel] += y.shape[1]
            w.counts[JACOBIANS, sel] += 1
        eye = torch.eye(y.shape[1], dtype=y.dtype, device=y.device)
        lu, pivots, info = torch.linalg.lu_factor_ex(eye - (h * GAMMA)[:, None, None].to(y.dtype) * jac)
        w.counts[FACTORIZATIONS] += active

        def solve(rhs: torch.Tensor) -> torch.Tensor:
            return torch.linalg.lu_solve(lu, pivots, rhs[..., None]).squeeze(-1)

        return solve, info == 0, jac, need

    def jacobian(self, t: torch.Tensor, y: torch.Tensor, f: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Forward-difference Jacobians ``df/dy`` (b, D, D) of the cues at ``y`` (derivative ``f``):
        D perturbed copies of each cue, :data:`JACOBIAN_ROWS` cue-rows per call of the field."""
        b, dims = y.shape
        delta = math.sqrt(torch.finfo(y.dtype).eps) * y.abs().clamp_min(1.0)
        delta = (y + delta) - y  # the step as represented
        jac = y.new_empty(b, dims, dims)
        per_call = max(1, JACOBIAN_ROWS // max(1, b))
        for j0 in range(0, dims, per_call):
            cols = torch.arange(j0, min(dims, j0 + per_call), device=y.device)
            n = len(cols)
            shifted = y[None].repeat(n, 1, 1)  # (n, b, D): copy c moves unit cols[c]
            step = delta[:, cols].T  # (n, b)
            shifted[torch.arange(n, device=y.device), :, cols] += step
            out = self.field(t.repeat(n), shifted.reshape(n * b, dims), rows.repeat(n)).reshape(n, b, dims)
            jac[:, :, j0:j0 + n] = ((out - f[None]) / step[..., None]).permute(1, 2, 0)
        return jac

    def krylov_solver(self, w: WorkingBatch, active: torch.Tensor, h: torch.Tensor) -> Solve:
        """``r -> W^-1 r`` without forming ``J``: GMRES (:func:`neurodyn.krylov.gmres`) on products
        ``W v = v - h d J v``, each ``J v`` a forward difference of one batched right-hand side
        along ``v`` (step ``sqrt(eps) (1 + |y|) / |v|``, Knoll & Keyes 2004), at the step's start
        ``(t, y)``: a Rosenbrock step with the current Jacobian. Each solve stops when ``h
        |residual|`` is below :data:`KRYLOV_FRACTION` of the error control's scale ``|atol + rtol
        |y||``, so that the solve's error stays well below the step's; its products count as
        evaluations."""
        y, f0 = w.y, w.derivative()
        hg = (h * GAMMA).to(y.dtype)[:, None]
        root_eps, tiny = math.sqrt(torch.finfo(y.dtype).eps), torch.finfo(y.dtype).tiny
        size = 1.0 + y.norm(dim=-1, keepdim=True)

        def apply(v: torch.Tensor) -> torch.Tensor:
            length = v.norm(dim=-1, keepdim=True)
            eps = root_eps * size / length.clamp_min(tiny)
            jv = (self.field(w.t, y + eps * v, w.rows) - f0) / eps
            return v - hg * torch.where(length > 0, jv, 0.0)

        tol = KRYLOV_FRACTION * self.control.scale(y) / h.clamp_min(1e-300)

        def solve(rhs: torch.Tensor) -> torch.Tensor:
            x, products = gmres(apply, rhs, tol)
            w.counts[NFE] += products * active
            return x

        return solve
