"""The linear filters of a spiking run, integrated exactly over a step (exponential integration)."""

from __future__ import annotations

import math

import torch


class ExponentialFilters:
    """Exact integration over one step of ``tau_v dv/dt = s - v + I`` with ``tau_s ds/dt = -s``
    (the cascade of the synaptic and value filters), for ``v`` in value or memory space."""

    def __init__(self, dt: float, tau_v: float, tau_s: float) -> None:
        # Decays over one step (floats), or per row over several (tensors, :meth:`over`).
        self.a_v: float | torch.Tensor = math.exp(-dt / tau_v)
        self.a_s: float | torch.Tensor = math.exp(-dt / tau_s)
        self.equal = math.isclose(tau_v, tau_s)
        self.dt_over_tau = dt / tau_v
        self.ratio = 1.0 if self.equal else tau_s / (tau_s - tau_v)
        self.k = self.k_of(self.a_v, self.a_s, 1)

    def over(self, steps: torch.Tensor) -> ExponentialFilters:
        """The same filters over ``steps`` steps at once (a (R, 1) tensor of counts, one per row)."""
        out = ExponentialFilters.__new__(ExponentialFilters)
        out.a_v, out.a_s = self.a_v ** steps, self.a_s ** steps
        out.k = self.k_of(out.a_v, out.a_s, steps)
        return out

    def k_of(self, a_v: float | torch.Tensor, a_s: float | torch.Tensor,
             steps: int | torch.Tensor) -> float | torch.Tensor:
        """The cascade gain over ``steps`` steps given the decays over them."""
        if self.equal:
            return steps * self.dt_over_tau * a_v
        return self.ratio * (a_s - a_v)

    def decaying(self, v: torch.Tensor, s: torch.Tensor, current: torch.Tensor | float) -> torch.Tensor:
        """``v`` after a step driven by a synaptic current ``s`` that decays over the step."""
        out = torch.add(self.a_v * v, s, alpha=self.k) if isinstance(self.k, float) else self.a_v * v + self.k * s
        return out if isinstance(current, float) and current == 0.0 else out + (1 - self.a_v) * current

    def held(self, v: torch.Tensor, s: torch.Tensor, current: torch.Tensor | float) -> torch.Tensor:
        """``v`` after a step driven by an input ``s`` held constant over the step (the
        normalized read-out: numerator and denominator decay alike)."""
        return torch.lerp(s + current, v, self.a_v)
