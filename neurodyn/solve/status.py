"""What the per-cue engine knows about each cue: its status, method, counters and failure reason,
and the working batch of cues still integrated (torchode's per-sample status and statistics)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

RUNNING, FINISHED, STEADY, FAILED = 0, 1, 2, 3
STATUS_NAMES = {RUNNING: "running", FINISHED: "finished", STEADY: "steady", FAILED: "failed"}
EXPLICIT, IMPLICIT = 0, 1
#: Rows of the per-cue counters.
COUNTERS = ("nfe", "accepted", "rejected", "jacobians", "factorizations", "solves")
NFE, ACCEPTED, REJECTED, JACOBIANS, FACTORIZATIONS, SOLVES = range(len(COUNTERS))

#: Why a cue failed, by failure code.
FAILURES = {1: "more than max_steps={max_steps} step attempts",
            2: "the step size underflowed (h={h:.3g}): the dynamics are singular or discontinuous there",
            3: "the state or its derivative became NaN or infinite (diverging dynamics: an energy "
               "unbounded below?)"}
OVER_BUDGET, UNDERFLOW, NOT_FINITE = 1, 2, 3


@dataclass
class CueStats:
    """Per-cue statistics, CPU tensors of shape (B,): right-hand-side evaluations, accepted and
    rejected steps, Jacobians built, matrices factorized and linear systems solved (implicit
    method: three solves per step, by LU or matrix-free), status
    (:data:`STATUS_NAMES`), the method the cue ended with (:data:`EXPLICIT` or :data:`IMPLICIT`),
    the time it switched to the implicit method (NaN: never), the last step size, the time reached
    and, for failed cues, the reason (``reasons``: cue index -> sentence)."""

    nfe: torch.Tensor
    accepted: torch.Tensor
    rejected: torch.Tensor
    jacobians: torch.Tensor
    factorizations: torch.Tensor
    solves: torch.Tensor
    status: torch.Tensor
    method: torch.Tensor
    switch_time: torch.Tensor
    step_size: torch.Tensor
    time: torch.Tensor
    reasons: dict[int, str]


@dataclass
class WorkingBatch:
    """The cues still integrated, one entry per cue in every tensor (``counts``: one row per
    :data:`COUNTERS`). Times and step sizes are float64; ``f`` is the derivative at ``y`` (FSAL)
    or None for methods without it; ``jac`` the cues' Jacobians once some cue is implicit."""

    rows: torch.Tensor  # (b,) the cues' indices in the whole batch
    t: torch.Tensor  # (b,) float64
    y: torch.Tensor  # (b, D)
    f: torch.Tensor | None  # (b, D)
    h: torch.Tensor  # (b,) float64: the next step to try
    idx: torch.Tensor  # (b,) the next recording row to write
    status: torch.Tensor  # (b,)
    counts: torch.Tensor  # (len(COUNTERS), b)
    implicit: torch.Tensor  # (b,) bool
    stiff_steps: torch.Tensor  # (b,) Hairer's count of stiff-looking accepted steps
    calm_steps: torch.Tensor  # (b,) and of calm ones since
    jac_age: torch.Tensor  # (b,) accepted steps since the Jacobian was built; -1: none
    rejected: torch.Tensor  # (b,) bool: the last attempt was rejected
    failure: torch.Tensor  # (b,) why a failed cue failed (a code of FAILURES)
    jac: torch.Tensor | None = None  # (b, D, D)

    @classmethod
    def start(cls, t: torch.Tensor, y: torch.Tensor, implicit: bool) -> WorkingBatch:
        """The whole batch (B cues) at times ``t`` (B,), every cue running on its first row."""
        batch, dev = y.shape[0], y.device
        zeros = torch.zeros(batch, dtype=torch.long, device=dev)
        return cls(rows=torch.arange(batch, device=dev), t=t, y=y, f=None, h=torch.zeros_like(t),
                   idx=torch.ones_like(zeros), status=zeros.clone(),
                   counts=torch.zeros(len(COUNTERS), batch, dtype=torch.long, device=dev),
                   implicit=torch.full((batch,), implicit, device=dev),
                   stiff_steps=zeros.clone(), calm_steps=zeros.clone(), jac_age=zeros - 1,
                   rejected=torch.zeros(batch, dtype=torch.bool, device=dev), failure=zeros.clone())

    def take(self, index: torch.Tensor) -> WorkingBatch:
        """The cues at ``index`` (positions in this batch)."""
        parts: dict[str, Any] = {
            name: None if value is None else (value[:, index] if name == "counts" else value[index])
            for name, value in self._items()}
        return WorkingBatch(**parts)

    def put(self, index: torch.Tensor, part: WorkingBatch) -> None:
        """Write ``part`` (the cues at ``index``, advanced) back into this batch."""
        for name, value in self._items():
            new = getattr(part, name)
            if value is None or new is None:  # (f of fixed-step methods; jac of an explicit part)
                continue
            if name == "counts":
                value[:, index] = new
            else:
                value[index] = new

    def derivative(self) -> torch.Tensor:
        """``f``, which the adaptive and implicit methods always carry (FSAL)."""
        if self.f is None:
            raise RuntimeError("this working batch carries no derivative (a fixed-step method's)")
        return self.f

    def _items(self) -> Iterator[tuple[str, torch.Tensor | None]]:
        return ((fld.name, getattr(self, fld.name)) for fld in dataclasses.fields(self))
