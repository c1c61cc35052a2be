"""When a cue of the ``auto`` method leaves dopri5 for rosenbrock23.

Hairer's stiffness test (``dopri5.f``): after an accepted step, ``h * |k7 - k6| / |y7 - y6|``
estimates ``h`` times the dominant eigenvalue; beyond the stability boundary (about 3.3) on
:data:`STIFF_STEPS` accepted steps, with no run of :data:`CALM_STEPS` calm ones between, the cue
switches to the implicit method (the switch of LSODA and of DifferentialEquations.jl's
``AutoTsit5(Rosenbrock23())``). So does a cue whose explicit step size underflows, or which
rejected more steps than it accepted, :data:`STRUGGLE_REJECTS` of them at least.
"""

from __future__ import annotations

import torch

from .status import ACCEPTED, REJECTED, RUNNING, UNDERFLOW, WorkingBatch

STIFF_H_LAMBDA, STIFF_STEPS, CALM_STEPS = 3.25, 15, 6
# Error control that rejects more steps than it accepts is held back by something other than
# accuracy (Hairer's test sees accepted steps only).
STRUGGLE_REJECTS = 50


def stiffness_switch(w: WorkingBatch, active: torch.Tensor, accept: torch.Tensor, h: torch.Tensor,
                     dk: torch.Tensor, dy: torch.Tensor, failure: torch.Tensor) -> torch.Tensor:
    """Update the cues' stiffness counts after a dopri5 attempt (``dk = k7 - k6``, ``dy = y7 -
    y6``) and mark the ``active`` cues that switch (``w.implicit``; a cue rescued from a step-size underflow
    runs on); returns which cues switched now. No host sync: the switch is recorded on the device
    and acted on at the next look."""
    num, den = dk.pow(2).sum(-1).double(), dy.pow(2).sum(-1).double()
    h_lambda = h * (num / den.clamp_min(1e-300)).sqrt()
    looks_stiff = accept & (den > 0) & (h_lambda > STIFF_H_LAMBDA)
    calm = accept & ~looks_stiff
    calm_steps = torch.where(calm, w.calm_steps + 1, torch.where(looks_stiff, 0, w.calm_steps))
    stiff_steps = torch.where(looks_stiff, w.stiff_steps + 1, w.stiff_steps)
    stiff_steps = torch.where(calm_steps >= CALM_STEPS, 0, stiff_steps)
    rescue = failure == UNDERFLOW  # (on the explicit path, also a cue flagged since the last look)
    struggling = (w.counts[REJECTED] >= STRUGGLE_REJECTS) & (w.counts[REJECTED] > w.counts[ACCEPTED])
    switch = ((stiff_steps >= STIFF_STEPS) | struggling | rescue) & ~w.implicit & active
    w.calm_steps, w.stiff_steps = calm_steps, stiff_steps
    w.implicit, w.jac_age = w.implicit | switch, torch.where(switch, -1, w.jac_age)
    w.status, w.failure = torch.where(rescue, RUNNING, w.status), torch.where(rescue, 0, w.failure)
    return switch
