"""Step-size control per cue: the first step, the error norm, accept or reject and the next step.

The rules are torchdiffeq's (so that the two engines take comparable steps): Hairer's starting
step (*Solving ODEs I*, section II.4), the root mean square of the error over ``atol + rtol
|y|``, and the next step ``h * clamp(SAFETY * err^(-1/order), MAX_SHRINK, MAX_GROWTH)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

SAFETY, MAX_GROWTH, MAX_SHRINK = 0.9, 10.0, 0.2


@dataclass(frozen=True)
class ErrorControl:
    """Tolerances of the adaptive methods; every tensor here has one entry per cue."""

    rtol: float = 1e-6
    atol: float = 1e-8

    def first_step(self, t: torch.Tensor, y: torch.Tensor, f0: torch.Tensor, order: int,
                   evaluate: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """Hairer's starting step per cue (torchdiffeq's ``_select_initial_step``), one evaluation
        of ``evaluate(t, y)``; norms in float64."""
        yd, fd = y.double(), f0.double()
        scale = self.atol + self.rtol * yd.abs()
        d0, d1 = (yd / scale).pow(2).mean(-1).sqrt(), (fd / scale).pow(2).mean(-1).sqrt()
        h0 = torch.where((d0 < 1e-5) | (d1 < 1e-5), torch.full_like(d0, 1e-6), 0.01 * d0 / d1.clamp_min(1e-300))
        f1 = evaluate(t + h0, y + (h0[:, None] * fd).to(y.dtype))
        d2 = ((f1.double() - fd) / scale).pow(2).mean(-1).sqrt() / h0
        big = torch.maximum(d1, d2)
        h1 = torch.where(big <= 1e-15, torch.maximum(torch.full_like(h0, 1e-6), h0 * 1e-3),
                         (0.01 / big.clamp_min(1e-300)).pow(1.0 / (order - 1)))
        h = torch.minimum(100 * h0, h1)
        return torch.where(torch.isfinite(h) & (h > 0), h, torch.full_like(h, 1e-6))

    def scale(self, y: torch.Tensor) -> torch.Tensor:
        """The norm of the error's scale ``|atol + rtol |y||`` per cue, float64."""
        return (self.atol + self.rtol * y.double().abs()).norm(dim=-1)

    def error_norm(self, err: torch.Tensor, y: torch.Tensor, y_new: torch.Tensor) -> torch.Tensor:
        """The root mean square of ``err / (atol + rtol max(|y|, |y_new|))`` per cue (float64;
        infinite where not finite). ``err`` is overwritten."""
        scale = torch.maximum(y.abs(), y_new.abs()).mul_(self.rtol).add_(self.atol)
        # One reduction: this runs every attempt.
        norm = torch.linalg.vector_norm(err.div_(scale), dim=-1).double() / math.sqrt(err.shape[-1])
        return torch.nan_to_num(norm, nan=math.inf, posinf=math.inf)  # (a norm is never -inf)

    @staticmethod
    def next_step(h_tried: torch.Tensor, active: torch.Tensor, lands: torch.Tensor, h: torch.Tensor,
                  err_norm: torch.Tensor, order: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Which cues accept the step ``h`` (error within tolerance), and the next step size of
        each. ``h_tried``: the step the cue wanted; ``lands``: whether ``h`` was cut short to land
        on the recording grid (then the next step does not shrink); a non-finite trial shrinks it
        as much as allowed; inactive cues keep ``h_tried``."""
        within = err_norm <= 1.0  # NaN or infinite trials have err_norm = inf, so factor MAX_SHRINK
        accept = active & within
        factor = err_norm.clamp_min(1e-30).pow_(-1.0 / order).mul_(SAFETY).clamp_(MAX_SHRINK, MAX_GROWTH)
        # An accepted step does not shrink the next; a rejected one's factor is below SAFETY < 1.
        factor = torch.maximum(factor, within.to(factor.dtype))
        h_factor = h * factor
        proposed = torch.where(accept & lands, torch.maximum(h_tried, h_factor), h_factor)
        return accept, torch.where(active, proposed, h_tried)


@dataclass(frozen=True)
class SteadyState:
    """The steady-state event: a cue stops when ``max |dy/dt| <= tol * max(1, max |y|)``."""

    tol: float

    def reached(self, f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return f.abs().amax(-1) <= self.tol * y.abs().amax(-1).clamp_min(1.0)
