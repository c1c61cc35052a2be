"""Which engine integrates a :class:`~neurodyn.solve.settings.Solver`: the per-cue engine
(:mod:`neurodyn.solve.per_cue`), where it has the method, or torchdiffeq
(:mod:`neurodyn.solve.torchdiffeq_engine`). The per-cue engine never raises for a cue: a cue that
fails gets status ``failed``, its reason and its trajectory up to the failure, and the others
finish (diffrax's ``throw=False``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from .integration import Block, Integration, SolverStats
from .per_cue import PerCueSolve
from .settings import Solver
from .status import FAILED, STEADY
from .step import TimeDependence
from .torchdiffeq_engine import TorchdiffeqIntegration


class PerCueIntegration(Integration):
    """:class:`~neurodyn.solve.per_cue.PerCueSolve` as an integration; ``rhs(t, y, rows)``."""

    def __init__(self, rhs: Callable[..., torch.Tensor], y0: torch.Tensor, times: torch.Tensor, solver: Solver,
                 record_speed: bool = True, time_dependence: TimeDependence | None = None,
                 field_size: int | None = None) -> None:
        super().__init__(rhs, y0, times, solver, record_speed)
        s = solver
        self.run = PerCueSolve(rhs, y0, times, s.method, rtol=s.rtol, atol=s.atol, step_size=self.step_size,
                               steady_tol=s.steady_tol, max_steps=s.max_steps, sync_every=s.sync_every,
                               time_dependence=time_dependence, compiled=s.compile, field_size=field_size)

    @property
    def stats(self) -> SolverStats:
        """Per-cue engine: ``nfe`` counts batched right-hand-side calls, ``attempted_steps`` batched
        step attempts, ``accepted_steps`` the most any cue accepted; each cue's own counts are in
        ``per_cue``."""
        run = self.run
        per_cue = run.stats
        return SolverStats(nfe=run.batch_calls, attempted_steps=run.attempts,
                           accepted_steps=int(per_cue.accepted.max()), blocks=run.host_syncs,
                           wall_time=run.wall_time, cue_evaluations=run.rhs_rows, per_cue=per_cue,
                           compiled_blocks=run.compiled_blocks)

    @property
    def converged(self) -> torch.Tensor:
        return self.run.stats.status == STEADY

    def final_state(self, last: torch.Tensor) -> torch.Tensor:
        """A failed cue's state is where it failed (its record is NaN after that)."""
        failed = (self.run.stats.status == FAILED).to(last.device)
        return torch.where(failed[:, None], self.run.final_state, last)

    def failures(self) -> dict[int, str]:
        """Failed cues and why (where: ``stats.per_cue.time``)."""
        return self.run.stats.reasons

    def snapshot(self) -> dict:
        return self.run.snapshot()

    def restore(self, snapshot: dict) -> None:
        self.run.restore(snapshot)
        self.convergence_time = self.run.convergence_time

    def __iter__(self) -> Iterator[Block]:
        try:
            for tb, ys in self.run:
                yield Block(tb, ys, self.speed(tb, ys))
        finally:
            self.convergence_time = self.run.convergence_time


def integrate(rhs: Callable[..., torch.Tensor], y0: torch.Tensor, times: torch.Tensor, solver: Solver, *,
              block_size: int = 10, record_speed: bool = True,
              time_dependence: TimeDependence | None = None, field_size: int | None = None) -> Integration:
    """An integration of ``rhs`` from ``y0`` (B, D) over ``times`` by ``solver``'s engine;
    ``block_size``: recording intervals per torchdiffeq block when stopping at steady state;
    ``time_dependence``: how ``rhs`` depends on ``t`` (None: it does not); ``field_size``: the
    multiply-adds of one batched product of ``rhs`` where known (B x N x I for a network), which
    sizes a compiled loop's threads (:data:`~neurodyn.solve.compiled.SMALL_FIELD`)."""
    if solver.per_cue:
        return PerCueIntegration(rhs, y0, times, solver, record_speed, time_dependence, field_size)
    return TorchdiffeqIntegration(rhs, y0, times, solver, block_size, record_speed, time_dependence)
