"""The torchdiffeq engine: one step size for the whole batch, with steady-state stopping per cue.

What torchdiffeq lacks and this module adds around it:

- solver statistics (function evaluations, accepted and rejected steps) through torchdiffeq's
  step callbacks;
- steady-state stopping per cue: the recording grid is integrated in blocks; after each block
  every cue whose speed ``max |dx/dt|`` fell to ``steady_tol * max(1, max |x|)`` or below on
  the grid is frozen (its derivative is set to zero, so it neither moves nor limits the shared
  step size) and its convergence time is the first grid time below the tolerance; when all cues
  are frozen the run stops. Blocks resume from the last accepted step size, but each block's
  last step overshoots its end and is partly wasted, so blocks cost a few steps: without
  ``steady_tol`` the whole grid is one block;
- a field that depends on time: adaptive methods step onto its breaks (torchdiffeq's
  ``step_t`` where it bends, ``jump_t`` where it jumps), and no cue is frozen before it stops
  changing;
- a :class:`~neurodyn.solve.settings.SolverError` naming the method, tolerances and time span
  when a solver cannot meet its tolerance (step underflow, step budget) or the state becomes
  non-finite.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator

import torch
from torchdiffeq import odeint

from .integration import Block, Integration, SolverStats
from .settings import Solver, SolverError
from .step import TimeDependence


class _CountingField:
    """The vector field as torchdiffeq sees it: counts evaluations and steps, zeroes frozen cues."""

    def __init__(self, rhs: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], batch: int,
                 device: torch.device) -> None:
        self.rhs = rhs
        self.frozen = torch.zeros(batch, dtype=torch.bool, device=device)
        self.stats = SolverStats()
        self.last_dt: float | None = None

    def __call__(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.stats.nfe += 1
        dy = self.rhs(t, y)
        return dy.masked_fill(self.frozen[:, None], 0.0)

    def callback_step(self, t0: torch.Tensor, y0: torch.Tensor, dt: torch.Tensor) -> None:
        self.stats.attempted_steps += 1
        self.stats.accepted_steps += 1


class _AdaptiveCountingField(_CountingField):
    """Adaptive solvers also report accepted steps; the last step size seeds the next block."""

    def callback_step(self, t0: torch.Tensor, y0: torch.Tensor, dt: torch.Tensor) -> None:
        self.stats.attempted_steps += 1

    def callback_accept_step(self, t0: torch.Tensor, y0: torch.Tensor, dt: torch.Tensor) -> None:
        self.stats.accepted_steps += 1
        self.last_dt = float(dt)


class TorchdiffeqIntegration(Integration):
    """:func:`torchdiffeq.odeint` on blocks of ``block_size`` recording intervals (the whole grid
    without ``steady_tol``); ``rhs(t, y)``."""

    def __init__(self, rhs: Callable[..., torch.Tensor], y0: torch.Tensor, times: torch.Tensor, solver: Solver,
                 block_size: int = 10, record_speed: bool = True,
                 time_dependence: TimeDependence | None = None) -> None:
        super().__init__(rhs, y0, times, solver, record_speed)
        self.time_dependence = time_dependence
        self.block_size = max(1, int(block_size)) if solver.steady_tol else len(times) - 1
        counting = _AdaptiveCountingField if solver.adaptive else _CountingField
        self.field = counting(rhs, y0.shape[0], y0.device)
        self._position: tuple[int, torch.Tensor] | None = None  # the grid index and state last yielded

    @property
    def stats(self) -> SolverStats:
        return self.field.stats

    @property
    def converged(self) -> torch.Tensor:
        return self.field.frozen.cpu()

    def _speed(self, t: torch.Tensor, states: torch.Tensor) -> torch.Tensor | None:
        return self.speed(t, states, needed=self.solver.steady_tol is not None)

    def _freeze_converged(self, tb: torch.Tensor, states: torch.Tensor, speed: torch.Tensor | None) -> None:
        tol = self.solver.steady_tol
        if tol is None or speed is None:
            return
        scale = states.abs().amax(-1).clamp_min(1.0)
        below = (speed <= tol * scale) & ~self.field.frozen[None]
        if self.time_dependence is not None:  # (a cue at rest before the input stops changing goes on)
            below &= (tb.double() >= self.time_dependence.constant_after)[:, None].to(below.device)
        newly = below.any(0)
        if newly.any():
            first = below.to(torch.int8).argmax(0)
            self.convergence_time[newly.cpu()] = tb[first].to("cpu", torch.float64)[newly.cpu()]
            self.field.frozen |= newly

    def _options(self, tb: torch.Tensor) -> dict:
        if self.solver.adaptive:
            opts: dict = {"max_num_steps": max(1, self.solver.max_steps - self.stats.accepted_steps)}
            if self.field.last_dt is not None:
                opts["first_step"] = self.field.last_dt
            timed = self.time_dependence
            if timed is not None and timed.breaks is not None:
                breaks = timed.breaks.to(tb)
                inside = breaks[(breaks > tb[0]) & (breaks < tb[-1])]
                if len(inside):
                    opts["jump_t" if timed.jumps else "step_t"] = inside
            return opts
        return {"step_size": self.step_size}

    def _solve(self, y: torch.Tensor, tb: torch.Tensor) -> torch.Tensor:
        s = self.solver
        try:
            ys = odeint(self.field, y, tb, method=s.method, rtol=s.rtol, atol=s.atol, options=self._options(tb))
        except AssertionError as err:
            raise SolverError(
                f"{s.method} could not integrate from t={float(tb[0]):g} to t={float(tb[-1]):g} "
                f"with rtol={s.rtol:g}, atol={s.atol:g} ({err}); loosen the tolerances, raise max_steps "
                f"(now {s.max_steps}), or check that the model's scale is sensible") from err
        if not torch.isfinite(ys).all():
            raise SolverError(
                f"the state became NaN or infinite between t={float(tb[0]):g} and t={float(tb[-1]):g} "
                f"({s.method}): the dynamics diverge (an energy unbounded below?) or the step is too large")
        if self.stats.accepted_steps > s.max_steps:
            raise SolverError(f"{s.method} needed more than max_steps={s.max_steps} steps to reach "
                              f"t={float(tb[-1]):g}; raise max_steps or loosen the tolerances")
        return ys

    def __iter__(self) -> Iterator[Block]:
        """Yields the recorded blocks; after :meth:`restore`, the blocks after the snapshot's."""
        start = time.perf_counter() - self.stats.wall_time  # (a restored run's clock goes on)
        t = self.times
        if self._position is None:
            y = self.y0
            speed0 = self._speed(t[:1], y[None])
            self._freeze_converged(t[:1], y[None], speed0)
            self._position = (0, y)
            yield Block(t[:1], y[None], speed0)
        i, y = self._position
        while i < len(t) - 1 and not bool(self.field.frozen.all()):
            tb = t[i:i + self.block_size + 1]
            ys = self._solve(y, tb)[1:]
            speed = self._speed(tb[1:], ys)
            self.stats.blocks += 1
            self._freeze_converged(tb[1:], ys, speed)
            y, i = ys[-1], i + len(tb) - 1
            self._position = (i, y)
            self.stats.wall_time = time.perf_counter() - start
            yield Block(tb[1:], ys, speed)

    def snapshot(self) -> dict:
        """Everything the integration needs to go on from its last yield, bit for bit (each block
        is its own torchdiffeq call, started from the last accepted step size)."""
        return {"position": self._position, "frozen": self.field.frozen, "last_dt": self.field.last_dt,
                "convergence_time": self.convergence_time, "stats": dataclasses.asdict(self.stats)}

    def restore(self, snapshot: dict) -> None:
        """Go on from a :meth:`snapshot` of an integration of the same problem."""
        dev = self.y0.device
        position = snapshot["position"]
        self._position = None if position is None else (position[0], position[1].to(dev))
        self.field.frozen, self.field.last_dt = snapshot["frozen"].to(dev), snapshot["last_dt"]
        self.convergence_time = snapshot["convergence_time"].cpu()
        self.field.stats = SolverStats(**snapshot["stats"])
