"""Integration of a batched vector field on a recording grid, with steady-state stopping.

Two engines (:class:`Solver`'s ``engine``): the per-cue engine of :mod:`neurodyn.stepper`
(auto, dopri5, rosenbrock23, euler, midpoint, rk4; the default where it has the method), and
torchdiffeq's solvers (adaptive: dopri5, dopri8, bosh3, adaptive_heun, fehlberg2; fixed-step:
euler, midpoint, rk4). ``auto``, the default method, is dopri5 with a switch per cue to the
implicit rosenbrock23 where the cue turns out stiff (:mod:`neurodyn.stepper`).
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
- a :class:`SolverError` naming the method, tolerances and time span when a solver cannot meet
  its tolerance (step underflow, step budget) or the state becomes non-finite. The per-cue
  engine never raises for a cue: a cue that fails gets status ``failed``, its reason and its
  trajectory up to the failure, and the others finish (diffrax's ``throw=False``).

torchdiffeq takes one step size for the whole batch. The per-cue engine gives every cue its own
step size, error control, status and statistics, stops each cue at its own steady state after
any accepted step, drops finished cues from the work and looks at the host once per block of
steps (DESIGN.md section 6).
The loop yields :class:`Block` records, so any stepper that yields blocks (a stochastic spiking
one, say) plugs into the same recording.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torchdiffeq import odeint

from . import stepper

ADAPTIVE_METHODS = ("auto", "dopri5", "rosenbrock23", "dopri8", "bosh3", "adaptive_heun", "fehlberg2")
FIXED_METHODS = ("euler", "midpoint", "rk4")
METHODS = ADAPTIVE_METHODS + FIXED_METHODS
ENGINES = ("auto", "per-cue", "torchdiffeq")


class SolverError(RuntimeError):
    """The solver could not integrate the system to its tolerance."""


class SolverWarning(RuntimeWarning):
    """Some cues could not be integrated; the others finished (their statuses say which)."""


@dataclass(frozen=True)
class Solver:
    """Solver settings.

    ``rtol``/``atol`` apply to adaptive methods; ``step_size`` to fixed-step ones (default: the
    recording grid's smallest spacing; it must divide every spacing). ``max_steps`` bounds a
    cue's attempted steps (per-cue engine) or the run's accepted steps (torchdiffeq, checked
    after each block). ``steady_tol`` enables steady-state
    stopping when ``max |dx/dt| <= steady_tol * max(1, max |x|)`` (None: integrate to the end).
    ``method``: ``"auto"`` (dopri5, switching a cue to rosenbrock23 when it turns out stiff),
    ``"rosenbrock23"`` (implicit, L-stable), or another name of :data:`METHODS`.
    ``engine``: ``"per-cue"`` (:mod:`neurodyn.stepper`: a step size, method, status and
    statistics per cue), ``"torchdiffeq"`` (one step size for the batch), or ``"auto"``: per-cue
    where it has the method (auto, dopri5, rosenbrock23, euler, midpoint, rk4), torchdiffeq
    otherwise. ``sync_every``: per-cue steps
    between two looks of the host at the batch (default: every step on the CPU, where a look
    costs nothing, and every 16 on a GPU, where it waits for the device).
    """

    method: str = "auto"
    rtol: float = 1e-6
    atol: float = 1e-8
    step_size: float | None = None
    max_steps: int = 100_000
    steady_tol: float | None = None
    engine: str = "auto"
    sync_every: int | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown solver method {self.method!r}; known: {', '.join(METHODS)}")
        if self.engine not in ENGINES:
            raise ValueError(f"unknown solver engine {self.engine!r}; known: {', '.join(ENGINES)}")
        if self.engine == "torchdiffeq" and self.method in ("auto", "rosenbrock23"):
            raise ValueError(f"torchdiffeq has no {self.method!r} method (it has no implicit one); "
                             "use engine='per-cue' or the method dopri5")
        if self.engine == "per-cue" and self.method not in stepper.METHODS:
            raise ValueError(f"the per-cue engine has {', '.join(stepper.METHODS)}, not {self.method!r}; "
                             "use engine='torchdiffeq'")
        if self.sync_every is not None and self.sync_every < 1:
            raise ValueError(f"sync_every must be >= 1, got {self.sync_every}")
        for name in ("rtol", "atol", "step_size", "steady_tol"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"solver {name} must be > 0, got {value}")
        if isinstance(self.max_steps, bool) or not isinstance(self.max_steps, int) or self.max_steps < 1:
            raise ValueError(f"max_steps must be a whole number >= 1, got {self.max_steps!r}")

    @property
    def adaptive(self) -> bool:
        return self.method in ADAPTIVE_METHODS

    @property
    def per_cue(self) -> bool:
        """Whether the per-cue engine runs this solver."""
        return self.engine == "per-cue" or (self.engine == "auto" and self.method in stepper.METHODS)

    def describe(self) -> dict:
        out = {"method": self.method, "max_steps": self.max_steps, "steady_tol": self.steady_tol,
               "engine": "per-cue" if self.per_cue else "torchdiffeq"}
        if self.per_cue:
            out["sync_every"] = self.sync_every
        if self.adaptive:
            out.update(rtol=self.rtol, atol=self.atol)
        else:
            out["step_size"] = self.step_size
        return out


@dataclass
class SolverStats:
    """Counts for one run: batched right-hand-side calls and steps (torchdiffeq steps all cues
    together; for the per-cue engine, steps are step attempts of the working batch and
    :attr:`per_cue` holds each cue's own counts)."""

    nfe: int = 0
    attempted_steps: int = 0
    accepted_steps: int = 0
    blocks: int = 0
    wall_time: float = 0.0
    cue_evaluations: int = 0  # right-hand sides of single cues computed (batch size x calls)
    per_cue: stepper.CueStats | None = None

    @property
    def rejected_steps(self) -> int:
        return self.attempted_steps - self.accepted_steps


@dataclass
class Block:
    """States on part of the recording grid: ``times`` (T,), ``states`` (T, B, D), ``speed`` (T, B)
    or None when nobody asked for it."""

    times: torch.Tensor
    states: torch.Tensor
    speed: torch.Tensor | None


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


@dataclass
class Integration:
    """A running integration: iterate it for blocks; read stats and convergence afterwards."""

    rhs: Callable[..., torch.Tensor]  # rhs(t, y) or, for the per-cue engine, rhs(t, y, rows)
    y0: torch.Tensor
    times: torch.Tensor
    solver: Solver
    block_size: int = 10
    record_speed: bool = True  # speed is evaluated anyway when steady_tol is set
    field_: _CountingField = field(init=False)
    convergence_time: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        if self.y0.ndim != 2:
            raise ValueError(f"the state must be (batch, dims), got {tuple(self.y0.shape)}")
        t = self.times
        if t.ndim != 1 or t.numel() < 2 or not bool((t[1:] > t[:-1]).all()):
            raise ValueError("the recording times must be a strictly increasing 1-D grid with at least 2 points")
        self.block_size = max(1, int(self.block_size)) if self.solver.steady_tol else len(t) - 1
        self.step_size: float | None = None
        counting = _AdaptiveCountingField if self.solver.adaptive else _CountingField
        self.field_ = counting(self.rhs, self.y0.shape[0], self.y0.device)
        if not self.solver.adaptive:
            self._check_fixed_step()
        self.convergence_time = torch.full((self.y0.shape[0],), math.nan, dtype=torch.float64)
        self.per_cue: stepper.PerCueSolve | None = None
        if self.solver.per_cue:
            s = self.solver
            self.per_cue = stepper.PerCueSolve(self.rhs, self.y0, self.times, s.method, rtol=s.rtol, atol=s.atol,
                                               step_size=self.step_size, steady_tol=s.steady_tol,
                                               max_steps=s.max_steps, sync_every=s.sync_every)

    def _check_fixed_step(self) -> None:
        """Blocks restart the fixed grid at recording times, so the step must divide their spacing
        (otherwise torchdiffeq would silently shorten the last step of every block)."""
        spacing = torch.diff(self.times.double()).cpu().numpy()
        step = self.step_size = self.solver.step_size or float(spacing.min())
        ratio = spacing / step
        # The grid may be float32: allow its rounding, not a real mismatch.
        if not (ratio.round() >= 1).all() or abs(ratio - ratio.round()).max() > 1e-3:
            raise ValueError(f"step_size={step:g} must divide the recording spacing "
                             f"({spacing.min():g}..{spacing.max():g}); choose n_times so that it does")

    @property
    def stats(self) -> SolverStats:
        """The run's counts. Per-cue engine: ``nfe`` counts batched right-hand-side calls,
        ``attempted_steps`` batched step attempts, ``accepted_steps`` the most any cue accepted;
        each cue's own counts are in ``per_cue``."""
        run = self.per_cue
        if run is None:
            return self.field_.stats
        per_cue = run.stats
        return SolverStats(nfe=run.batch_calls, attempted_steps=run.attempts,
                           accepted_steps=int(per_cue.accepted.max()), blocks=run.host_syncs,
                           wall_time=run.wall_time, cue_evaluations=run.rhs_rows, per_cue=per_cue)

    @property
    def converged(self) -> torch.Tensor:
        if self.per_cue is not None:
            return self.per_cue.stats.status == stepper.STEADY
        return self.field_.frozen.cpu()

    def speed(self, t: torch.Tensor, states: torch.Tensor) -> torch.Tensor | None:
        """``max |dx/dt|`` per cue for states (T, B, D), not counted as solver work (one extra
        right-hand side per recorded time, so only when recorded or needed for steady state)."""
        if not (self.record_speed or (self.solver.steady_tol and self.per_cue is None)):
            return None
        return torch.stack([self.rhs(ti, yi).abs().amax(-1) for ti, yi in zip(t, states)])

    def _freeze_converged(self, tb: torch.Tensor, states: torch.Tensor, speed: torch.Tensor) -> None:
        tol = self.solver.steady_tol
        if tol is None or speed is None:
            return
        scale = states.abs().amax(-1).clamp_min(1.0)
        below = (speed <= tol * scale) & ~self.field_.frozen[None]
        newly = below.any(0)
        if newly.any():
            first = below.to(torch.int8).argmax(0)
            self.convergence_time[newly.cpu()] = tb[first].to("cpu", torch.float64)[newly.cpu()]
            self.field_.frozen |= newly

    def _options(self) -> dict:
        if self.solver.adaptive:
            opts = {"max_num_steps": max(1, self.solver.max_steps - self.stats.accepted_steps)}
            if self.field_.last_dt is not None:
                opts["first_step"] = self.field_.last_dt
            return opts
        return {"step_size": self.step_size}

    def _solve(self, y: torch.Tensor, tb: torch.Tensor) -> torch.Tensor:
        s = self.solver
        try:
            ys = odeint(self.field_, y, tb, method=s.method, rtol=s.rtol, atol=s.atol, options=self._options())
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

    def _per_cue_blocks(self) -> Iterator[Block]:
        run = self.per_cue
        try:
            for tb, ys in run:
                yield Block(tb, ys, self.speed(tb, ys))
        finally:
            self.convergence_time = run.convergence_time

    def final_state(self, last: torch.Tensor) -> torch.Tensor:
        """Each cue's state where its integration ended, given the last recorded states: a
        failed cue's is where it failed (its record is NaN after that)."""
        if self.per_cue is None:
            return last
        failed = (self.per_cue.stats.status == stepper.FAILED).to(last.device)
        return torch.where(failed[:, None], self.per_cue.final_state, last)

    def failures(self) -> dict[int, str]:
        """Failed cues (per-cue engine) and why (where: ``stats.per_cue.time``)."""
        return {} if self.per_cue is None else self.per_cue.stats.reasons

    def __iter__(self) -> Iterator[Block]:
        if self.per_cue is not None:
            yield from self._per_cue_blocks()
            return
        start = time.perf_counter()
        t, y = self.times, self.y0
        speed0 = self.speed(t[:1], y[None])
        self._freeze_converged(t[:1], y[None], speed0)
        yield Block(t[:1], y[None], speed0)
        i = 0
        while i < len(t) - 1 and not bool(self.field_.frozen.all()):
            tb = t[i:i + self.block_size + 1]
            ys = self._solve(y, tb)[1:]
            speed = self.speed(tb[1:], ys)
            self.stats.blocks += 1
            self._freeze_converged(tb[1:], ys, speed)
            y, i = ys[-1], i + len(tb) - 1
            self.stats.wall_time = time.perf_counter() - start
            yield Block(tb[1:], ys, speed)
