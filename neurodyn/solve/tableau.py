"""Runge-Kutta tableaus: the explicit methods of the per-cue engine and their coefficients.

Dormand-Prince 5(4) (Dormand & Prince 1980) with Hairer's 4th-order dense output (*Solving ODEs
I*, section II.6, ``CONTD5``), and the fixed-step ``euler``, ``midpoint`` and ``rk4``. A new
explicit method is one :class:`Tableau` and one row of :data:`TABLEAUS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch


@dataclass(frozen=True)
class Tableau:
    """An explicit Runge-Kutta method: nodes ``c``, matrix ``a`` (rows), weights ``b`` and, for an
    embedded pair, ``error = b - b_hat``; ``fsal``: the last stage is ``f`` at the new point;
    ``dense``: the coefficients of Hairer's dense output, where the method has one."""

    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    error: tuple[float, ...] | None = None
    order: int = 1
    fsal: bool = False
    dense: tuple[float, ...] | None = None


DOPRI5 = Tableau(
    c=(0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0),
    a=((), (1 / 5,), (3 / 40, 9 / 40), (44 / 45, -56 / 15, 32 / 9),
       (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
       (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
       (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84)),
    b=(35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0),
    error=(35 / 384 - 5179 / 57600, 0.0, 500 / 1113 - 7571 / 16695, 125 / 192 - 393 / 640,
           -2187 / 6784 + 92097 / 339200, 11 / 84 - 187 / 2100, -1 / 40),
    order=5, fsal=True,
    # Hairer's CONTD5 coefficients; stage 2 has none.
    dense=(-12715105075 / 11282082432, 0.0, 87487479700 / 32700410799, -10690763975 / 1880347072,
           701980252875 / 199316789632, -1453857185 / 822651844, 69997945 / 29380423))

TABLEAUS = {
    "dopri5": DOPRI5,
    "euler": Tableau(c=(0.0,), a=((),), b=(1.0,)),
    "midpoint": Tableau(c=(0.0, 0.5), a=((), (0.5,)), b=(0.0, 1.0), order=2),
    "rk4": Tableau(c=(0.0, 0.5, 0.5, 1.0), a=((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)),
                   b=(1 / 6, 1 / 3, 1 / 3, 1 / 6), order=4),
}


class Coefficients(NamedTuple):
    """A tableau's coefficients as tensors: ``a``, row ``i`` the ``i`` coefficients of stage ``i``;
    ``b``, ``error`` (S,), zeros where the tableau has none; ``dense`` (4, S): the dense output
    as polynomials in the fraction ``theta`` of the step, row ``p`` the coefficients of
    ``theta^(p+1)`` (:func:`dense_weights`; zeros where the tableau has none), and ``powers``
    the exponents 1 to 4."""

    a: tuple[torch.Tensor, ...]
    b: torch.Tensor
    error: torch.Tensor
    dense: torch.Tensor
    powers: torch.Tensor

    @classmethod
    def of(cls, tab: Tableau, dtype: torch.dtype, device: torch.device) -> Coefficients:
        n = len(tab.c)

        def as_tensor(values: tuple[float, ...] | None) -> torch.Tensor:
            return torch.tensor(values if values else (0.0,) * n, dtype=dtype, device=device)

        b = torch.tensor(tab.b, dtype=torch.float64)
        dense = torch.zeros(4, n, dtype=torch.float64)
        if tab.dense is not None:
            # Hairer's CONTD5 (valid for an FSAL pair: the last stage is f at the new point):
            # y(theta) = y + theta (dy + (1 - theta) (bspl + theta (r4 + (1 - theta) r5))), with
            # dy = h sum b_j k_j, bspl = h k_1 - dy, r4 = 2 dy - h k_1 - h k_S and
            # r5 = h sum d_j k_j, is linear in the stages: y + h sum_j w_j(theta) k_j, where w_j is
            # the polynomial below (its value at theta = 1 is b_j, its slope at 0 is 1 for k_1).
            eye, d = torch.eye(n, dtype=torch.float64), torch.tensor(tab.dense, dtype=torch.float64)
            first, last = eye[0], eye[-1]
            dense = torch.stack((first, 3 * b - 2 * first - last + d, -2 * b + first + last - 2 * d, d))
        return cls(tuple(as_tensor(row)[:i] for i, row in enumerate(tab.a)), as_tensor(tab.b),
                   as_tensor(tab.error), dense.to(dtype=dtype, device=device),
                   torch.arange(1, 5, dtype=dtype, device=device))


def combine(coefficients: torch.Tensor, stages: torch.Tensor) -> torch.Tensor:
    """``sum_j c_j k_j`` for stages (S, B, D): one matrix-vector product eagerly (one kernel);
    inside a compiled function a sum, which inductor fuses with what consumes it (a product
    there is an external call per combination)."""
    if torch.compiler.is_compiling():
        return (coefficients.view(-1, 1, 1) * stages).sum(0)
    return (coefficients @ stages.flatten(1)).view(stages.shape[1:])


def dense_weights(coef: Coefficients, theta: torch.Tensor, hc: torch.Tensor) -> torch.Tensor:
    """The stages' weights ``h w_j(theta)`` (B, n, S) of the dense output at fractions ``theta``
    (B, n, 1) of steps ``hc`` (B, 1): three small kernels, where evaluating Hairer's nested form
    on the states took sixteen of the states' size per recording time. Inside a compiled
    function by Horner's rule: the powers and the product there ran the compiled loop about
    10% slower than the nested form it replaced (N = 100, B = 32); Horner's rule runs it as fast
    as before, within this machine's noise."""
    if torch.compiler.is_compiling():
        weights = coef.dense[-1]
        for power in range(len(coef.dense) - 2, -1, -1):
            weights = coef.dense[power] + theta * weights
        return theta * weights * hc[:, :, None]
    return (theta.pow(coef.powers) @ coef.dense) * hc[:, :, None]


def combine_per_cue(y: torch.Tensor, weights: torch.Tensor, stages: torch.Tensor) -> torch.Tensor:
    """``y + sum_j w_bnj k_bj`` (B, n, D) for states ``y`` (B, D), weights (B, n, S) and stages
    (S, B, D): one batched product eagerly; inside a compiled function the sum over the stages
    written out, which inductor fuses into one element-wise kernel."""
    if torch.compiler.is_compiling():
        out = y[:, None]
        for j in range(len(stages)):
            out = out + weights[..., j, None] * stages[j][:, None]
        return out
    return torch.baddbmm(y[:, None, :], weights, stages.transpose(0, 1))
