"""What an integration yields and counts, whichever engine runs it (:mod:`neurodyn.solve.engines`).

An integration yields :class:`Block` records, states on consecutive parts of the recording grid,
so any stepper that yields blocks (a stochastic spiking one, say) plugs into the same recording.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from .settings import Solver
from .status import CueStats


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
    compiled_blocks: int = 0  # loops of steps run compiled (neurodyn.solve.compiled)
    per_cue: CueStats | None = None

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


class Integration:
    """A running integration of ``rhs`` from ``y0`` (B, D) over the recording ``times``: iterate it
    for :class:`Block` records; read :attr:`stats`, :attr:`converged` and
    :attr:`convergence_time` afterwards. ``record_speed``: whether blocks carry the speed ``max
    |dx/dt|`` per cue. :attr:`step_size`: a fixed-step method's step (None: adaptive)."""

    def __init__(self, rhs: Callable[..., torch.Tensor], y0: torch.Tensor, times: torch.Tensor, solver: Solver,
                 record_speed: bool = True) -> None:
        if y0.ndim != 2:
            raise ValueError(f"the state must be (batch, dims), got {tuple(y0.shape)}")
        if times.ndim != 1 or times.numel() < 2 or not bool((times[1:] > times[:-1]).all()):
            raise ValueError("the recording times must be a strictly increasing 1-D grid with at least 2 points")
        self.rhs, self.y0, self.times, self.solver = rhs, y0, times, solver
        self.record_speed = record_speed
        self.step_size = None if solver.adaptive else self._fixed_step()
        self.convergence_time = torch.full((y0.shape[0],), math.nan, dtype=torch.float64)

    def _fixed_step(self) -> float:
        """The fixed step: blocks restart the fixed grid at recording times, so the step must
        divide their spacing (otherwise torchdiffeq would silently shorten the last step of every
        block)."""
        spacing = torch.diff(self.times.double()).cpu().numpy()
        step = self.solver.step_size or float(spacing.min())
        ratio = spacing / step
        # The grid may be float32: allow its rounding, not a real mismatch.
        if not (ratio.round() >= 1).all() or abs(ratio - ratio.round()).max() > 1e-3:
            raise ValueError(f"step_size={step:g} must divide the recording spacing "
                             f"({spacing.min():g}..{spacing.max():g}); choose n_times so that it does")
        return step

    def speed(self, t: torch.Tensor, states: torch.Tensor, needed: bool = False) -> torch.Tensor | None:
        """``max |dx/dt|`` per cue for states (T, B, D), not counted as solver work (one extra
        right-hand side per recorded time, so only when recorded or ``needed``)."""
        if not (self.record_speed or needed):
            return None
        return torch.stack([self.rhs(ti, yi).abs().amax(-1) for ti, yi in zip(t, states, strict=True)])

    @property
    def stats(self) -> SolverStats:
        raise NotImplementedError

    @property
    def converged(self) -> torch.Tensor:
        """Which cues reached steady state, a CPU tensor (B,) of bools."""
        raise NotImplementedError

    def final_state(self, last: torch.Tensor) -> torch.Tensor:
        """Each cue's state where its integration ended, given the last recorded states."""
        return last

    def failures(self) -> dict[int, str]:
        """Failed cues and why (an engine that raises instead has none)."""
        return {}

    def snapshot(self) -> dict:
        """What the integration needs to go on from its last yielded block, bit for bit, as a
        dict of tensors and numbers (``torch.save`` writes it); valid until it goes on."""
        raise NotImplementedError

    def restore(self, snapshot: dict) -> None:
        """Go on from a :meth:`snapshot` taken of an integration of the same problem: iterating
        then yields the blocks after the snapshot's."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[Block]:
        raise NotImplementedError
