"""Blocks of explicit per-cue attempts compiled as one function (issue 19).

Between two host looks the per-cue loop takes ``sync_every`` attempts of the working batch, each
dozens of small tensor operations dispatched from Python: for a small network that dispatch, not
the arithmetic, is the run's cost. :func:`compiled_block` runs those attempts as one function
compiled by ``torch.compile`` (inductor: fused C++ loops on the CPU, Triton kernels on a GPU).
It is the eager attempts' own code, traced once, so a compiled run takes the eager engine's
steps and agrees with it to the rounding of fused arithmetic, well within the tolerances.

What the block needs of the loop, so that one compiled graph serves every block of a run: the
working batch keeps its shape (stopped cues ride along, inactive, until the run ends), the
ring's horizon comes as a tensor, a step crosses at most a fixed number of recording times (as
on a GPU), and the field's calls are counted outside
(:attr:`~neurodyn.solve.step.CountedField.counting`).

When it is used (``Solver(compile=...)``): from the start (True), never (False), or by default
(None) once the run is projected to take :data:`REPAYS_AFTER` more attempts, judged after
:data:`PROBE_ATTEMPTS` eager ones (with every cue on the explicit method) from how far the
slowest running cue got. The rule counts
attempts, not seconds, so that whether a run compiles does not depend on the machine's load.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from ..errors import SolverWarning
from .status import RUNNING

if TYPE_CHECKING:
    from .per_cue import PerCueSolve
    from .status import WorkingBatch

#: Attempts per compiled block (between two host looks).
BLOCK_ATTEMPTS = 4
#: Attempts a run is projected to take beyond which compiling repays (docs/performance.md,
#: "Compiled step blocks": compiling takes about 60 s with an empty inductor cache and 8 s with
#: the block in it; a small network's attempt costs about 1.2 ms eagerly and 0.3 ms compiled, so
#: a cold compilation repays after about 70,000 attempts).
REPAYS_AFTER = 100_000
#: Eager attempts before the rule judges: enough that the run is long already, and that the
#: projection does not extrapolate a first transient (a stiff cue crawls at first, and a model
#: matrix run whose first 64 attempts projected 10^5 finished in a few thousand).
PROBE_ATTEMPTS = 5_000
#: The ``torch.compile`` backend (tests trace with ``"eager"``, which checks the block traces whole
#: without generating code).
BACKEND = "inductor"


def _block(solve: PerCueSolve, w: WorkingBatch, horizon: torch.Tensor) -> WorkingBatch:
    for _ in range(solve.sync_every):
        w = solve._explicit(w, horizon)
    return w


#: Configurations (shapes, dtypes, the settings a block reads as constants) one process compiles
#: a block for. Dynamo's default, 8, fails the ninth with ``fullgraph``: a sweep over parameters
#: in one process would stop there.
RECOMPILE_LIMIT = 256


@functools.cache
def _compiled(fn: Callable[..., Any], backend: str, device: str) -> Any:
    """``fn`` compiled once per process, backend and device type (dynamo keeps a graph per
    shape, dtype and setting it guards on; inductor caches the generated code on disk across
    processes). Whole (``fullgraph``): a function it cannot trace fails at once instead of
    falling back silently. On the CPU inductor's wrapper is C++ too (``cpp_wrapper``): its
    Python wrapper spent about 0.2 ms per block launching kernels and allocating buffers (6.4
    against 5.6 ms for a whole solve at N = 100, B = 32)."""
    options: dict[str, Any] | None = {"cpp_wrapper": True} if backend == "inductor" and device == "cpu" else None
    return torch.compile(fn, backend=backend, fullgraph=True, dynamic=False, options=options)


def call_compiled(fn: Callable[..., Any], device: torch.device, *args: Any) -> tuple[Any, str | None]:
    """``fn(*args)`` compiled by :data:`BACKEND` for ``device``: (its result, None), or (None,
    why) when it cannot be compiled (a function ``torch.compile`` cannot trace whole). Dynamo's
    limit on configurations is raised to :data:`RECOMPILE_LIMIT` only when a new one needs it
    (patching it on every call cost 20 us)."""
    compiled = _compiled(fn, BACKEND, device.type)
    try:
        try:
            return compiled(*args), None
        except torch._dynamo.exc.FailOnRecompileLimitHit:
            with torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT):
                return compiled(*args), None
    except (torch._dynamo.exc.TorchDynamoException, torch._dynamo.exc.FailOnRecompileLimitHit) as err:
        return None, str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def compiled_block(solve: PerCueSolve, w: WorkingBatch, horizon: torch.Tensor) -> WorkingBatch | None:
    """``solve.sync_every`` explicit attempts of the whole working batch ``w`` as one compiled
    call, the field's calls and the attempts counted here; None when the block cannot be compiled
    (a field ``torch.compile`` cannot trace, a user's similarity in NumPy say): the solve then
    goes on eagerly, with a :class:`~neurodyn.errors.SolverWarning` saying why."""
    field = solve.field
    field.counting = False
    try:
        stepped, reason = call_compiled(_block, w.y.device, solve, w, horizon)
    finally:
        field.counting = True
    if stepped is None:  # (compiling fails before the block runs)
        solve.compiled = False
        warnings.warn(f"the per-cue solver's steps could not be compiled ({reason}); they run eagerly",
                      SolverWarning, stacklevel=4)
        return None
    w = stepped
    calls = solve.sync_every * solve.calls_per_attempt
    field.calls += calls
    field.rows += calls * len(w.t)
    solve.attempts += solve.sync_every
    solve.compiled_blocks += 1
    return w


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
