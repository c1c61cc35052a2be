"""Explicit per-cue attempts run as one compiled loop (issue 19).

Between two host looks the per-cue loop takes attempts of the working batch, each dozens of
small tensor operations dispatched from Python: for a small network that dispatch, not the
arithmetic, is the run's cost. :func:`compiled_loop` runs attempts in one
``torch._higher_order_ops.while_loop`` compiled by ``torch.compile`` (inductor: fused C++ loops
on the CPU, Triton kernels on a GPU) until no cue can step (every one stopped, or waiting for the
recording ring to be read), a cue switches to the implicit method, or :data:`LOOP_ATTEMPTS`
attempts; :func:`compiled_start` compiles the start (the first derivative and step size). The
loop's body is the eager attempt's own code (:meth:`PerCueSolve.explicit_attempt`), traced once,
so a compiled run takes the eager engine's steps and agrees with it to the rounding of fused
arithmetic, well within the tolerances.

What the loop needs of the solve, so that one compiled graph serves the whole run: the working
batch keeps its shape (stopped cues ride along, inactive, until the run ends), the recording
ring's rows are carried from attempt to attempt (a copy each time, so a compiled run keeps
:data:`LOOP_RING_BYTES` of them), the ring's horizon comes as a tensor, a step crosses at most a
fixed number of recording times (as on a GPU), and the field's calls are counted outside
(:attr:`~neurodyn.solve.step.CountedField.counting`). The field must not hand the loop two views
of one tensor (``memories`` and ``memories.T`` captured from a network reach it as two aliasing
inputs, which ``while_loop`` refuses; the similarities write ``memories.t()``, which is traced
inside). On the CPU a small field's loop runs on one thread (:data:`SMALL_FIELD`).

When it is used (``Solver(compile=...)``): from the start (True), never (False), or by default
(None) once the run is projected to take :data:`REPAYS_AFTER` more attempts, judged after
:data:`PROBE_ATTEMPTS` eager ones (with every cue on the explicit method) from how far the
slowest running cue got. The rule counts attempts, not seconds, so that whether a run compiles
does not depend on the machine's load.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch._higher_order_ops.while_loop import while_loop

from ..compiling import call_compiled
from ..errors import SolverWarning
from .status import RUNNING, WorkingBatch

if TYPE_CHECKING:
    from .per_cue import PerCueSolve

#: Attempts of one compiled call at most (between two host looks; a call also ends when the
#: recording ring is full, or when a cue stops being explicit).
LOOP_ATTEMPTS = 1024
#: Bytes of recording rows a compiled run keeps (at least ``2 * CROSSINGS`` rows): the loop
#: carries them from attempt to attempt, a copy each time.
LOOP_RING_BYTES = 2**20
#: A compiled loop on the CPU runs on one thread when the field's batched products are smaller
#: than this many multiply-adds (B x N x I, where the run says): their kernels are too small to
#: repay the threads' synchronisation (bench_compiled, N = 100, B = 32, I = 64: 3.9 ms on one
#: thread against 4.5-5.2 ms on two; N = 1,000, B = 64, I = 784: 131-143 ms against 84-85 ms).
SMALL_FIELD = 2**20
#: Attempts a run is projected to take beyond which compiling repays (docs/performance.md,
#: "Compiled step loops": compiling takes about 30 s with an empty inductor cache and 10 s with
#: the loop in it; a small network's attempt costs about 1.3 ms eagerly and 0.15-0.2 ms
#: compiled, so a cold compilation repays after about 30,000 attempts: the rule keeps a margin).
REPAYS_AFTER = 100_000
#: Eager attempts before the rule judges: enough that the run is long already, and that the
#: projection does not extrapolate a first transient (a stiff cue crawls at first, and a model
#: matrix run whose first 64 attempts projected 10^5 finished in a few thousand).
PROBE_ATTEMPTS = 5_000
#: The working batch's tensors a compiled loop carries from attempt to attempt (``rows`` and
#: ``jac`` do not change on the explicit path).
CARRIED = ("t", "y", "f", "h", "idx", "status", "counts", "implicit", "stiff_steps", "calm_steps", "jac_age",
           "rejected", "failure")


def _carried(w: WorkingBatch) -> list[str]:
    """The fields of :data:`CARRIED` that ``w`` has (``f`` is None for fixed-step methods)."""
    return [name for name in CARRIED if getattr(w, name) is not None]


def _batch(w: WorkingBatch, names: list[str], values: Sequence[torch.Tensor]) -> WorkingBatch:
    """``w`` with the tensors ``values`` of the fields ``names`` (of :data:`CARRIED`; the others
    None)."""
    carried: dict[str, Any] = dict.fromkeys(CARRIED) | dict(zip(names, values, strict=True))
    return WorkingBatch(rows=w.rows, jac=w.jac, **carried)


def _loop(solve: PerCueSolve, w: WorkingBatch, record: torch.Tensor, horizon: torch.Tensor,
          limit: int) -> tuple[torch.Tensor, ...]:
    """Explicit attempts of the working batch ``w`` until none of its cues can step (every one
    stopped, or waiting at the recording ring's ``horizon``), some running cue switched to the
    implicit method, or ``limit`` attempts: the attempts taken, the record (the ring's rows) and
    the batch's :data:`CARRIED` tensors, advanced. One ``while_loop``: inductor compiles the
    attempt once, whatever the number of attempts."""
    names = _carried(w)

    def batch(values: tuple[torch.Tensor, ...]) -> WorkingBatch:
        return _batch(w, names, values)

    def going(k: torch.Tensor, record: torch.Tensor, *values: torch.Tensor) -> torch.Tensor:
        part = batch(values)
        running = part.status == RUNNING
        return (k < limit) & (running & (part.idx <= horizon)).any() & ~(running & part.implicit).any()

    def attempt(k: torch.Tensor, record: torch.Tensor, *values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out, record, _ = solve.explicit_attempt(batch(values), horizon, record)
        # (a loop's outputs may not alias its inputs: a tensor the attempt left alone is copied)
        new = [getattr(out, name) for name in names]
        return (k + 1, record, *(n.clone() if n is v else n for n, v in zip(new, values, strict=True)))

    start = torch.zeros((), dtype=torch.long, device=w.y.device)
    return while_loop(going, attempt, (start, record, *(getattr(w, name) for name in names)))


def _begin(solve: PerCueSolve, w: WorkingBatch) -> tuple[torch.Tensor | None, ...]:
    begun = solve.begin(w)
    return tuple(getattr(begun, name) for name in CARRIED)


def compiled_start(solve: PerCueSolve, w: WorkingBatch) -> WorkingBatch | None:
    """The start of a compiled run (:meth:`PerCueSolve.begin`: the first derivative and step
    size) as one compiled call; None when it cannot be compiled."""
    begun = _call(solve, w, _begin, solve, w)
    if begun is None:
        return None
    _count(solve, solve.start_calls, len(w.t))
    return _batch(w, list(CARRIED), begun)


def compiled_loop(solve: PerCueSolve, w: WorkingBatch, horizon: torch.Tensor) -> WorkingBatch | None:
    """Explicit attempts of the whole working batch ``w`` as one compiled call (:func:`_loop`,
    at most ``solve.sync_every`` of them), the field's calls, the attempts and the cues that
    switched method recorded here; None when it cannot be compiled."""
    looped = _call(solve, w, _loop, solve, w, solve.ring.rows, horizon, solve.sync_every)
    if looped is None:
        return None
    attempts, solve.ring.rows, *values = looped
    entered = w.implicit
    w = _batch(w, _carried(w), values)
    switched = w.implicit & ~entered  # (each stopped stepping when it switched: its time is the switch's)
    solve._switch_time[w.rows] = torch.where(switched, w.t, solve._switch_time[w.rows])
    taken = int(attempts)
    _count(solve, taken * solve.calls_per_attempt, len(w.t))
    solve.attempts += taken
    solve.compiled_blocks += 1
    return w


def _call(solve: PerCueSolve, w: WorkingBatch, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` compiled (:func:`call_compiled`), on one thread for a small field
    (:data:`SMALL_FIELD`), the field's calls counted by the caller; None when it cannot be
    compiled (a field ``torch.compile`` cannot trace, a user's similarity in NumPy say): the
    solve then goes on eagerly, with a :class:`~neurodyn.errors.SolverWarning` saying why."""
    field, threads = solve.field, torch.get_num_threads()
    single = w.y.device.type == "cpu" and solve.field_size is not None and solve.field_size < SMALL_FIELD
    field.counting = False
    try:
        if single:
            torch.set_num_threads(1)
        result, reason = call_compiled(fn, w.y.device, *args)
    finally:
        field.counting = True
        torch.set_num_threads(threads)
    if result is None:  # (compiling fails before anything runs)
        solve.compiled = False
        warnings.warn(f"the per-cue solver's steps could not be compiled ({reason}); they run eagerly",
                      SolverWarning, stacklevel=5)
    return result


def _count(solve: PerCueSolve, calls: int, rows: int) -> None:
    solve.field.calls += calls
    solve.field.rows += calls * rows


def repays(solve: PerCueSolve, w: WorkingBatch) -> bool:
    """Whether the run, judged after :data:`PROBE_ATTEMPTS` attempts, is projected to take
    :data:`REPAYS_AFTER` more: the attempts so far scaled by the span left over the span the
    slowest running cue covered."""
    if solve.attempts < PROBE_ATTEMPTS or solve._plan != "explicit":  # (implicit steps run eagerly)
        return False
    t0 = float(solve.times[0])
    slowest = float(torch.where(w.status == RUNNING, w.t, math.inf).min())
    covered = slowest - t0
    if not math.isfinite(slowest) or covered <= 0:
        return False
    return solve.attempts * (solve.span - covered) / covered >= REPAYS_AFTER
