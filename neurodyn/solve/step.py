"""What one step attempt of the per-cue engine is made of, whatever the method: the counted
vector field, the frame of the attempt (which cues step, by how much, to when) and the trial it
returns (accepted or not, the new state, the next step size and the dense output)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

import torch

#: ``rhs(t, y, rows)``: times (b,), states (b, D) and the cues' indices (b,) in the whole batch
#: (None while the working batch is the whole batch in order).
Field = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


class TimeDependence(Protocol):
    """How a vector field depends on time explicitly (a time-varying input current), as far as
    the solvers must know: the times where it bends or jumps (``breaks``, float64 on the
    solver's clock; None: none known), which the adaptive methods step onto; whether it jumps
    there (``jumps``: then a step lands just before, the next starts on the break with its
    derivative taken afresh, and between breaks it does not change, so implicit steps need no
    time derivative); and the time after which it no longer changes (``constant_after``; inf:
    unknown), before which no cue stops at steady state."""

    breaks: torch.Tensor | None
    jumps: bool
    constant_after: float


class CountedField:
    """The vector field, counting its batched calls and the cue-evaluations they computed."""

    def __init__(self, rhs: Field) -> None:
        self.rhs = rhs
        self.calls = self.rows = 0
        self.all_rows: torch.Tensor | None = None  # the whole batch's indices: passed on as None
        # False inside a compiled block, which counts its calls itself (a Python counter would
        # be a guard on its value, and so a recompilation per block).
        self.counting = True

    def __call__(self, t: torch.Tensor, y: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        if self.counting:
            self.rows += len(y)
            self.calls += 1
        return self.rhs(t, y, None if rows is self.all_rows else rows)


class Frame(NamedTuple):
    """One attempt's frame, per cue: whether it steps (``active``), whether its step was cut to
    land on the recording grid (``lands``), the step ``h`` and the new time (float64)."""

    active: torch.Tensor
    lands: torch.Tensor
    h: torch.Tensor
    t_new: torch.Tensor


class Trial(NamedTuple):
    """A method's attempt: which cues ``accept``, their next step size, the new time, state and
    (FSAL or implicit methods) derivative, the evaluations per cue it took (``stages``), the dense
    output ``interpolate(theta)``, states (b, n, D) at fractions (b, n, 1) of the step, and for the stiffness test the
    last two stages' and states' differences (``probe``, explicit dopri5 only)."""

    accept: torch.Tensor
    h_next: torch.Tensor
    t_new: torch.Tensor
    y_new: torch.Tensor
    f_new: torch.Tensor | None
    stages: int
    interpolate: Callable[[torch.Tensor], torch.Tensor]
    probe: tuple[torch.Tensor, torch.Tensor] | None = None
