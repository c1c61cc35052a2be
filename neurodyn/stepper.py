"""Runge-Kutta stepping with a step size, error control, method, status and statistics per cue.

torchdiffeq steps the whole batch with one step size (the worst cue's) and reads it back to the
host every step. Here every cue carries its own time, step size, method and status (torchode's
design), accept/reject is a ``torch.where`` per cue, and the host looks at the batch once per
block of ``sync_every`` steps. Between those looks nothing leaves the device; at a look, cues
that are done (end reached, steady state, failure) are dropped from the working batch, so a
finished cue costs no more right-hand sides, and a failed one never stops the others.

Methods:

- ``dopri5``: Dormand-Prince 5(4), FSAL, step control by ``err^(-1/5)`` with the safety factor
  and growth limits torchdiffeq uses, Hairer's 4th-order dense output for the recording grid
  (Dormand & Prince 1980; Hairer, Norsett & Wanner, *Solving ODEs I*, section II.6, ``CONTD5``).
- ``rosenbrock23``: the L-stable Rosenbrock-W pair of order 2(3) of Shampine & Reichelt (1997,
  MATLAB's ``ode23s``, DifferentialEquations.jl's ``Rosenbrock23``) with its 2nd-order dense
  output, for stiff cues. Being a W-method, it keeps its order with any approximation of the
  Jacobian, so the Jacobian is a finite-difference one (any right-hand side, autograd or not),
  computed for all cues of the batch in a few batched calls and reused across steps until a
  step is rejected with a stale one. States over :data:`DENSE_JACOBIAN_MAX_DIM` units solve the stages
  matrix-free instead: GMRES on finite-difference Jacobian-vector products (a Krylov-Rosenbrock
  step). torchdiffeq has no implicit method, hence this one.
- ``auto``: ``dopri5`` with Hairer's stiffness test (``dopri5.f``: ``h * |k7 - k6| / |y7 - y6|
  > 3.25`` on 15 accepted steps with no 6 calm ones between) per cue; a cue found stiff, or
  whose explicit step size collapses, continues with ``rosenbrock23`` from where it is (the
  switch of LSODA and of DifferentialEquations.jl's ``AutoTsit5(Rosenbrock23())``).
- the fixed-step ``euler``, ``midpoint`` and ``rk4``, which land on the recording times.

Time and step sizes are kept in float64 whatever the state's dtype, so a float32 state can take
steps far below float32's resolution of the time span (a fast transient at t = 0).

On a GPU a step may cross at most :data:`CROSSINGS` recording times (it is shortened
otherwise), so the recorded states are written by a fixed number of masked scatters per step,
with no host sync; on the CPU, where reading how many were crossed is free, a step may cross any
number of them (within the ring below), so a dense recording grid costs no extra steps.
They go into a ring of recording rows: a cue may run at most a window of rows ahead of the
slowest one, so memory stays bounded whatever the number of recording times.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import torch

from .krylov import gmres
from .numerics import flush_subnormal

#: Recording times one step may cross on a GPU (longer steps are cut to the last of them).
CROSSINGS = 4
#: Bytes of recording rows kept on the device by default (a cue may run that far ahead).
RING_BYTES = 2**28
#: Largest state (units per cue) for which the implicit method builds a D x D Jacobian per cue
#: (D right-hand sides) and factorizes it; larger states solve its stages matrix-free (GMRES on
#: Jacobian-vector products, :mod:`neurodyn.krylov`). Measured crossover (docs/performance.md,
#: "Matrix-free implicit solve"): even at 256 units; at 784 the matrix-free solve is 2.3x
#: (float32) and 12x (float64) faster.
DENSE_JACOBIAN_MAX_DIM = 256
#: Cue-rows per right-hand-side call when building finite-difference Jacobians.
JACOBIAN_ROWS = 8192
#: Accepted steps after which a Jacobian is rebuilt even if no step was rejected.
JACOBIAN_REUSE = 20
#: The matrix-free solve's target: ``h |residual|`` at this fraction of the error control's scale.
KRYLOV_FRACTION = 1e-2

RUNNING, FINISHED, STEADY, FAILED = 0, 1, 2, 3
STATUS_NAMES = {RUNNING: "running", FINISHED: "finished", STEADY: "steady", FAILED: "failed"}
EXPLICIT, IMPLICIT = 0, 1
#: Rows of the per-cue counters.
COUNTERS = ("nfe", "accepted", "rejected", "jacobians", "factorizations", "solves")
NFE, ACCEPTED, REJECTED, JACOBIANS, FACTORIZATIONS, SOLVES = range(len(COUNTERS))


@dataclass(frozen=True)
class Tableau:
    """An explicit Runge-Kutta method: nodes ``c``, matrix ``a`` (rows), weights ``b`` and, for an
    embedded pair, ``error = b - b_hat``; ``fsal``: the last stage is ``f`` at the new point."""

    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    error: tuple[float, ...] | None = None
    order: int = 1
    fsal: bool = False


DOPRI5 = Tableau(
    c=(0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0),
    a=((), (1 / 5,), (3 / 40, 9 / 40), (44 / 45, -56 / 15, 32 / 9),
       (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
       (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
       (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84)),
    b=(35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0),
    error=(35 / 384 - 5179 / 57600, 0.0, 500 / 1113 - 7571 / 16695, 125 / 192 - 393 / 640,
           -2187 / 6784 + 92097 / 339200, 11 / 84 - 187 / 2100, -1 / 40),
    order=5, fsal=True)


class _Coefficients(NamedTuple):
    """A tableau's coefficients as tensors: ``a``, row ``i`` the ``i`` coefficients of stage ``i``;
    ``b``, ``error``, ``dense`` (S,)."""

    a: tuple[torch.Tensor, ...]
    b: torch.Tensor
    error: torch.Tensor
    dense: torch.Tensor


def _combine(coefficients: torch.Tensor, stages: torch.Tensor) -> torch.Tensor:
    """``sum_j c_j k_j`` for stages (S, B, D): one matrix-vector product."""
    return (coefficients @ stages.flatten(1)).view(stages.shape[1:])


# Hairer's dense output coefficients for DOPRI5 (CONTD5); stage 2 has none.
_DENSE = (-12715105075 / 11282082432, 0.0, 87487479700 / 32700410799, -10690763975 / 1880347072,
          701980252875 / 199316789632, -1453857185 / 822651844, 69997945 / 29380423)

TABLEAUS = {
    "dopri5": DOPRI5,
    "euler": Tableau(c=(0.0,), a=((),), b=(1.0,)),
    "midpoint": Tableau(c=(0.0, 0.5), a=((), (0.5,)), b=(0.0, 1.0), order=2),
    "rk4": Tableau(c=(0.0, 0.5, 0.5, 1.0), a=((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)),
                   b=(1 / 6, 1 / 3, 1 / 3, 1 / 6), order=4),
}
ADAPTIVE = ("auto", "dopri5", "rosenbrock23")
METHODS = ("auto", "dopri5", "rosenbrock23", "euler", "midpoint", "rk4")

# Step-size control as in torchdiffeq's adaptive solvers (so that the two take comparable steps).
SAFETY, MAX_GROWTH, MAX_SHRINK = 0.9, 10.0, 0.2
# Hairer's stiffness test in dopri5.f: h * lambda beyond the stability boundary (about 3.3)
# on STIFF_STEPS accepted steps, with a run of CALM_STEPS below it resetting the count.
STIFF_H_LAMBDA, STIFF_STEPS, CALM_STEPS = 3.25, 15, 6
# A cue whose explicit steps are rejected more often than accepted, this many times, switches too.
STRUGGLE_REJECTS = 50
# Rosenbrock23 (Shampine & Reichelt 1997): gamma = 1 / (2 + sqrt 2), e32 = 6 + sqrt 2.
_GAMMA, _E32 = 1.0 / (2.0 + math.sqrt(2.0)), 6.0 + math.sqrt(2.0)

Field = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


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

    def take(self, index: torch.Tensor) -> WorkingBatch:
        """The cues at ``index`` (positions in this batch)."""
        return WorkingBatch(**{
            name: None if value is None else (value[:, index] if name == "counts" else value[index])
            for name, value in self._items()})

    def put(self, index: torch.Tensor, part: WorkingBatch) -> None:
        """Write ``part`` (the cues at ``index``, advanced) back into this batch."""
        for name, value in self._items():
            new = getattr(part, name)
            if new is None:  # (f of fixed-step methods; jac of an explicit part)
                continue
            if name == "counts":
                value[:, index] = new
            else:
                value[index] = new

    def _items(self) -> Iterator[tuple[str, torch.Tensor | None]]:
        return ((fld.name, getattr(self, fld.name)) for fld in dataclasses.fields(self))


# Why a cue failed.
FAILURES = {1: "more than max_steps={max_steps} step attempts",
            2: "the step size underflowed (h={h:.3g}): the dynamics are singular or discontinuous there",
            3: "the state or its derivative became NaN or infinite (diverging dynamics: an energy "
               "unbounded below?)"}
OVER_BUDGET, UNDERFLOW, NOT_FINITE = 1, 2, 3


class PerCueSolve:
    """Integrate ``dy/dt = rhs(t, y, rows)`` from ``y0`` (B, D) over the recording ``times``.

    ``rhs`` gets times (b,), states (b, D) and ``rows``, the indices (b,) of the cues in the
    working batch (None while it is the whole batch in order); it must not depend on ``t`` for
    ``rosenbrock23`` (the network's dynamics are autonomous). Iterating yields ``(times,
    states)``, (T_k,) and (T_k, B, D), for the recording times every running cue has passed.
    ``steady_tol``: a cue stops when ``max |dy/dt| <= steady_tol * max(1, max |y|)`` after an
    accepted step, and its state is held on the rest of the grid (:attr:`convergence_time`: the
    time of that step). A cue that fails stops with status ``failed`` and NaN on the rest of its
    grid; the others go on (:attr:`final_state` holds where each cue stopped). When every cue has
    stopped early the run ends at the first recording time after the last stop.
    ``first_step``: the adaptive methods' first step (default: Hairer's estimate per cue, one
    evaluation). ``window``: recording rows kept on the device (default: as many as fit
    :data:`RING_BYTES`, at least ``2 * CROSSINGS * sync_every``); a cue that runs a whole window
    ahead of the slowest waits for it. ``cheap_sync``: whether looking at device values from the
    host is free (default: on the CPU); False takes the GPU's sync-free path. Statistics are in
    :attr:`stats` afterwards; :attr:`rhs_rows` counts cue-evaluations computed (stopped cues ride
    along until the next host look, and Jacobians count one per column) and :attr:`batch_calls`
    the calls of ``rhs``.
    """

    def __init__(self, rhs: Field, y0: torch.Tensor, times: torch.Tensor, method: str = "dopri5", *,
                 rtol: float = 1e-6, atol: float = 1e-8, step_size: float | None = None,
                 steady_tol: float | None = None, max_steps: int = 100_000, sync_every: int | None = None,
                 first_step: float | None = None, window: int | None = None,
                 cheap_sync: bool | None = None) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown per-cue method {method!r}; known: {', '.join(METHODS)}")
        self.adaptive = method in ADAPTIVE
        if not self.adaptive and not (step_size and step_size > 0):
            raise ValueError(f"{method} needs a step_size > 0")
        batch, dims = y0.shape
        self.tab = TABLEAUS["dopri5" if self.adaptive else method]
        self.rhs, self.method = rhs, method
        self.can_switch = method == "auto"
        # Larger states solve the implicit stages matrix-free (neurodyn.krylov), smaller ones by LU.
        self.matrix_free = dims > DENSE_JACOBIAN_MAX_DIM
        self.rtol, self.atol, self.step, self.steady_tol = rtol, atol, step_size, steady_tol
        # A host look costs nothing on the CPU; on a GPU it waits for the device.
        self.cheap_sync = y0.device.type == "cpu" if cheap_sync is None else cheap_sync
        sync_every = sync_every or (1 if self.cheap_sync else 16)
        self.max_steps, self.sync_every, self.first_step = max_steps, max(1, int(sync_every)), first_step
        self.y0 = y0
        self.times = times.to(torch.float64)  # time is float64 whatever the state's dtype
        self.grid = torch.cat([self.times, self.times.new_full((1,), math.inf)])  # +inf: past the end
        self.span = float(self.times[-1] - self.times[0])
        row_bytes = max(1, batch * dims * y0.element_size())
        self.window = min(len(times), window or max(2 * CROSSINGS * self.sync_every, RING_BYTES // row_bytes))
        self.ring = y0.new_empty(self.window + 1, batch, dims)  # recording rows modulo the window; last: scratch
        self.ring[0] = y0
        self.convergence_time = torch.full((batch,), math.nan, dtype=torch.float64)
        self._switch_time = torch.full((batch,), math.nan, dtype=torch.float64, device=y0.device)
        self._plan: tuple[torch.Tensor, torch.Tensor] | str = "explicit"  # which cues take which method
        self._coef: _Coefficients | None = None  # the tableau as tensors (built at the first step)
        self.wall_time = 0.0
        self.host_syncs = self.rhs_rows = self.attempts = self.batch_calls = 0
        self._any_stopped = False
        self._reached = 1  # the latest recording row a stopped cue had reached
        dev = y0.device
        self._counts = torch.zeros(len(COUNTERS), batch, dtype=torch.long, device=dev)
        self._status = torch.zeros(batch, dtype=torch.long, device=dev)
        self._method = torch.zeros(batch, dtype=torch.long, device=dev)
        self._failure = torch.zeros(batch, dtype=torch.long, device=dev)
        self._h = torch.zeros(batch, dtype=torch.float64, device=dev)
        self._t = torch.zeros(batch, dtype=torch.float64, device=dev)
        self._stop_row = torch.full((batch,), len(times), dtype=torch.long, device=dev)  # first row held
        self._held = torch.empty_like(y0)  # a stopped cue's state, held from its stop row on
        self.final_state = y0.clone()  # where each cue stopped (or ended)
        # Recording times one step may cross: fixed steps land on the next one.
        self.crossings = (self.window if self.cheap_sync else CROSSINGS) if self.adaptive else 1

    @property
    def stats(self) -> CueStats:
        counts = self._counts.cpu()
        status, failure, h = self._status.cpu(), self._failure.cpu(), self._h.cpu()
        reasons = {int(c): FAILURES[int(failure[c])].format(max_steps=self.max_steps, h=float(h[c]))
                   for c in (status == FAILED).nonzero().flatten()}
        return CueStats(*counts, status, self._method.cpu(), self.switch_time, h, self._t.cpu(), reasons)

    @property
    def switch_time(self) -> torch.Tensor:
        """When each cue switched to the implicit method (NaN: never), a CPU tensor (B,)."""
        return self._switch_time.cpu()

    def _eval(self, t: torch.Tensor, y: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
        self.rhs_rows += len(y)
        self.batch_calls += 1
        return self.rhs(t, y, None if rows is self._all_rows else rows)

    def _initial_step(self, t, y, f0, rows) -> torch.Tensor:
        """Hairer's starting step per cue (torchdiffeq's ``_select_initial_step``), one evaluation;
        norms in float64."""
        yd, fd = y.double(), f0.double()
        scale = self.atol + self.rtol * yd.abs()
        d0, d1 = (yd / scale).pow(2).mean(-1).sqrt(), (fd / scale).pow(2).mean(-1).sqrt()
        h0 = torch.where((d0 < 1e-5) | (d1 < 1e-5), torch.full_like(d0, 1e-6), 0.01 * d0 / d1.clamp_min(1e-300))
        f1 = self._eval(t + h0, y + (h0[:, None] * fd).to(y.dtype), rows)
        d2 = ((f1.double() - fd) / scale).pow(2).mean(-1).sqrt() / h0
        big = torch.maximum(d1, d2)
        h1 = torch.where(big <= 1e-15, torch.maximum(torch.full_like(h0, 1e-6), h0 * 1e-3),
                         (0.01 / big.clamp_min(1e-300)).pow(1.0 / (self.tab.order - 1)))
        h = torch.minimum(100 * h0, h1)
        return torch.where(torch.isfinite(h) & (h > 0), h, torch.full_like(h, 1e-6))

    def _steady(self, f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return f.abs().amax(-1) <= self.steady_tol * y.abs().amax(-1).clamp_min(1.0)

    def _rows_out(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Recording rows ``[start, stop)`` from the ring, stopped cues' held states in place."""
        rows = torch.arange(start, stop, device=self.ring.device)
        states = self.ring[rows % self.window]
        if self._any_stopped:
            held = rows[:, None] >= self._stop_row[None, :]
            states = torch.where(held[..., None], self._held[None], states)
        return self.times[start:stop].to(self.y0.dtype), states

    def _settle(self, w: WorkingBatch) -> None:
        """Write the working batch's cues back to the per-cue records; stopped ones are held
        (failed ones as NaN: they were not integrated past their failure)."""
        rows = w.rows
        self._counts[:, rows] = w.counts
        self._status[rows], self._h[rows], self._t[rows] = w.status, w.h, w.t
        self._method[rows], self._failure[rows] = w.implicit.long(), w.failure
        stopped = w.status != RUNNING
        if bool(stopped.any()):
            self._any_stopped = True
            gone = rows[stopped]
            y = w.y[stopped]
            self.final_state[gone] = y
            failed = (w.status[stopped] == FAILED)[:, None]
            self._held[gone] = torch.where(failed, torch.full_like(y, math.nan), y)
            self._stop_row[gone] = w.idx[stopped]
            self._reached = max(self._reached, int(w.idx[stopped].max()))
            steady = (w.status == STEADY).cpu()
            self.convergence_time[rows.cpu()[steady]] = w.t.cpu()[steady]

    def _start(self) -> WorkingBatch:
        """The whole batch at the first recording time, with its first step size."""
        batch, dev = self.y0.shape[0], self.y0.device
        rows = self._all_rows = torch.arange(batch, device=dev)
        y = self.y0.clone()
        t = self.times[:1].expand(batch).clone()
        zeros = torch.zeros(batch, dtype=torch.long, device=dev)
        w = WorkingBatch(rows=rows, t=t, y=y, f=None, h=torch.zeros_like(t),
                         idx=torch.ones_like(zeros), status=zeros.clone(),
                         counts=torch.zeros(len(COUNTERS), batch, dtype=torch.long, device=dev),
                         implicit=torch.full((batch,), self.method == "rosenbrock23", device=dev),
                         stiff_steps=zeros.clone(), calm_steps=zeros.clone(), jac_age=zeros - 1,
                         rejected=torch.zeros(batch, dtype=torch.bool, device=dev), failure=zeros.clone())
        if self.adaptive or self.steady_tol is not None:
            w.f = self._eval(t, y, rows)
            w.counts[NFE] += 1
            bad = ~torch.isfinite(w.f).all(-1)
            w.status = torch.where(bad, FAILED, w.status)
            w.failure = torch.where(bad, NOT_FINITE, w.failure)
        if self.adaptive:
            w.h = torch.full_like(t, self.first_step) if self.first_step else self._initial_step(t, y, w.f, rows)
            w.counts[NFE] += 0 if self.first_step else 1
        else:
            w.h = torch.full_like(t, self.step)
        if self.steady_tol is not None:
            w.status = torch.where((w.status == RUNNING) & self._steady(w.f, y), STEADY, w.status)
        if not self.adaptive:
            w.f = None
        self._switch_time[w.implicit] = float(self.times[0])
        self._replan(w)
        return w

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        start = time.perf_counter()
        w = self._start()
        yield self.times[:1].to(self.y0.dtype), self.y0[None]
        done_rows = 1
        while True:
            if bool((w.status == RUNNING).any()):
                for _ in range(self.sync_every):
                    w = self._attempt(w, done_rows)
            self.host_syncs += 1  # the one host look per block of steps
            stopped = w.status != RUNNING
            if bool(stopped.any()):
                self._settle(w)
                keep = (~stopped).nonzero().squeeze(-1)
                if len(keep) == 0:
                    break
                w = w.take(keep)
            self._replan(w)
            complete = int(w.idx.min())  # every running cue has written the rows before it
            if complete > done_rows:
                yield self._rows_out(done_rows, complete)
                done_rows = complete
        # Every cue stopped: the record ends at the end when some cue finished there, otherwise at
        # the first recording time after the last stop, so that it shows every cue's final state.
        last = len(self.times) if bool((self._status == FINISHED).any()) else min(len(self.times), self._reached + 1)
        if last > done_rows:
            yield self._rows_out(done_rows, last)
        self.wall_time = time.perf_counter() - start

    # ----------------------------------------------------------------- one step attempt
    def _replan(self, w: WorkingBatch) -> None:
        """Which cues take which method until the next host look (deciding it costs a look, so a
        cue found stiff between two looks switches at the next one; on the CPU that is the next
        step)."""
        if not self.can_switch and self.method != "rosenbrock23":
            return
        implicit = w.implicit & (w.status == RUNNING)
        if not bool(implicit.any()):
            self._plan = "explicit"
        elif bool((implicit | (w.status != RUNNING)).all()):
            self._plan = "implicit"
        else:
            self._plan = implicit.nonzero().squeeze(-1), (~implicit).nonzero().squeeze(-1)
            if w.jac is None and not self.matrix_free:
                w.jac = w.y.new_zeros(len(w.t), w.y.shape[1], w.y.shape[1])

    def _attempt(self, w: WorkingBatch, done_rows: int) -> WorkingBatch:
        """One step attempt of the working batch, each cue by the method :meth:`_replan` gave it;
        cues not running are carried through unchanged."""
        self.attempts += 1
        if self._plan == "explicit":
            return self._explicit(w, done_rows)
        if self._plan == "implicit":
            return self._implicit(w, done_rows)
        imp, exp = self._plan
        w.put(exp, self._explicit(w.take(exp), done_rows))
        w.put(imp, self._implicit(w.take(imp), done_rows))
        return w

    def _frame(self, w: WorkingBatch, done_rows: int) -> tuple[torch.Tensor, ...]:
        """The attempt's step: which cues step (``active``), the step ``h`` (float64; a step that
        almost reaches the recording limit lands on it) and the new time."""
        horizon = min(len(self.times) - 1, done_rows + self.window - 1)  # the last row the ring can take now
        active = (w.status == RUNNING) & (w.idx <= horizon)  # a cue a whole window ahead waits
        limit = self.times[(w.idx + (self.crossings - 1)).clamp(max=horizon)]
        # Fixed steps divide the recording spacing to 1e-3 (Integration checks), so rounding of
        # t never leaves a sliver of a step.
        lands = w.h >= (limit - w.t) * (1 - (1e-6 if self.adaptive else 1e-3))
        h = torch.where(lands, limit - w.t, w.h)
        return active, lands, h, torch.where(lands, limit, w.t + h)

    def _error_norm(self, err: torch.Tensor, y: torch.Tensor, y_new: torch.Tensor) -> torch.Tensor:
        scale = torch.maximum(y.abs(), y_new.abs()).mul_(self.rtol).add_(self.atol)
        # The root mean square of err / scale (one reduction: this runs every attempt).
        norm = torch.linalg.vector_norm(err.div_(scale), dim=-1).double() / math.sqrt(err.shape[-1])
        return torch.where(torch.isfinite(norm), norm, math.inf)

    def _next_step(self, w, active, lands, h, err_norm, order) -> tuple[torch.Tensor, torch.Tensor]:
        """Accept where the error is within tolerance; the next step size by ``err^(-1/order)``.
        A step cut short by the recording grid does not shrink the next one; a non-finite trial
        shrinks it as much as allowed."""
        accept = active & (err_norm <= 1.0)  # NaN or infinite trials have err_norm = inf
        factor = (SAFETY * err_norm.clamp_min(1e-30).pow(-1.0 / order)).clamp(MAX_SHRINK, MAX_GROWTH)
        factor = torch.where(err_norm <= 1.0, factor.clamp_min(1.0), factor.clamp_max(1.0))
        proposed = torch.where(accept & lands, torch.maximum(w.h, h * factor), h * factor)
        return accept, torch.where(active, torch.where(torch.isfinite(err_norm), proposed, h * MAX_SHRINK), w.h)

    def _finish_attempt(self, w: WorkingBatch, active, accept, t_new, y_new, f_new, h, h_next, stages,
                        interpolate) -> tuple[WorkingBatch, torch.Tensor]:
        """Counters, recording, the new state of accepted cues, and their status; also each cue's
        new failure code (0: none)."""
        w.counts[NFE] += active * stages
        w.counts[ACCEPTED] += accept
        w.counts[REJECTED] += active & ~accept
        crossed = (torch.searchsorted(self.times, t_new, right=True) - w.idx).clamp(min=0) * accept
        self._record(w, h, crossed, interpolate)
        acc = accept[:, None]
        t_out = torch.where(accept, t_new, w.t)
        # States decaying to 0 go subnormal, which x86 CPUs compute on 100x slower: set to 0.
        y_out = torch.where(acc, flush_subnormal(y_new), w.y)
        f_out = None if f_new is None else torch.where(acc, f_new, w.f)
        status = torch.where(accept & (t_new >= self.times[-1]), FINISHED, w.status)
        if self.steady_tol is not None:
            speed_f = f_out if f_out is not None else self._eval(t_out, y_out, w.rows)
            w.counts[NFE] += 0 if f_out is not None else accept
            status = torch.where(accept & (status == RUNNING) & self._steady(speed_f, y_out), STEADY, status)
        over = w.counts[ACCEPTED] + w.counts[REJECTED] > self.max_steps
        # Underflow: the step no longer moves time at float64's resolution of the time span.
        tiny = 64 * torch.finfo(torch.float64).eps * torch.clamp_min(t_out.abs(), self.span)
        underflow = ~accept & (h_next <= tiny)
        finite = torch.isfinite(y_new).all(-1)  # (a non-finite derivative makes the next trial's state so)
        # A step size that collapsed on non-finite trials, or a fixed step to a non-finite state.
        blown = (underflow | (not self.adaptive)) & ~finite
        failure = torch.where(over, OVER_BUDGET, torch.where(blown, NOT_FINITE, torch.where(underflow, UNDERFLOW, 0)))
        failure = failure * active
        # The batch is this loop's own: it is advanced in place (cheaper than a copy per attempt).
        w.rejected = torch.where(active, ~accept, w.rejected)
        w.failure = torch.where(failure > 0, failure, w.failure)
        w.t, w.y, w.f, w.h, w.idx = t_out, y_out, f_out, h_next, w.idx + crossed
        w.status = torch.where(failure > 0, FAILED, status)
        return w, failure

    def _explicit(self, w: WorkingBatch, done_rows: int) -> WorkingBatch:
        """A Runge-Kutta attempt (dopri5 or a fixed-step method), with Hairer's stiffness test."""
        tab = self.tab
        active, lands, h, t_new = self._frame(w, done_rows)
        hc = h[:, None].to(w.y.dtype)
        coef = self._coefficients(w.y)
        # The stages in one buffer, so that each combination sum_j a_ij k_j is one matrix product
        # (a Python sum of scaled tensors launched 11 kernels per dopri5 stage).
        k = w.y.new_empty(len(tab.c), *w.y.shape)
        k[0] = w.f if tab.fsal else self._eval(w.t, w.y, w.rows)
        y_prev = y_i = w.y
        for i in range(1, len(tab.c)):
            y_prev, y_i = y_i, torch.addcmul(w.y, hc, _combine(coef.a[i], k[:i]))
            k[i] = self._eval(torch.add(w.t, h, alpha=tab.c[i]), y_i, w.rows)
        y_new = y_i if tab.fsal else torch.addcmul(w.y, hc, _combine(coef.b, k))
        if self.adaptive:
            err_norm = self._error_norm(hc * _combine(coef.error, k), w.y, y_new)
            accept, h_next = self._next_step(w, active, lands, h, err_norm, tab.order)
        else:
            accept, h_next = active & torch.isfinite(y_new).all(-1), w.h
        y = w.y

        def interpolate(theta: torch.Tensor) -> torch.Tensor:
            """Hairer's dense output of dopri5 at fractions ``theta`` (b, 1) of the step."""
            dy = y_new - y
            bspl = hc * k[0] - dy
            r4 = dy - hc * k[-1] - bspl
            r5 = hc * _combine(coef.dense, k)
            return y + theta * (dy + (1 - theta) * (bspl + theta * (r4 + (1 - theta) * r5)))

        out, failure = self._finish_attempt(w, active, accept, t_new, y_new, k[-1] if tab.fsal else None, h,
                                            h_next, len(tab.c) - (1 if tab.fsal else 0),
                                            interpolate if self.adaptive else lambda theta: y_new)
        if self.method == "auto":
            out = self._stiffness(out, accept, h, k[-1] - k[-2], y_new - y_prev, failure)
        return out

    def _coefficients(self, y: torch.Tensor) -> _Coefficients:
        """The tableau as tensors in the state's dtype and device (built once per run)."""
        if self._coef is None or self._coef.b.dtype != y.dtype or self._coef.b.device != y.device:
            tab, n = self.tab, len(self.tab.c)
            as_tensor = lambda v: torch.tensor(v if v else (0.0,) * n, dtype=y.dtype, device=y.device)  # noqa: E731
            self._coef = _Coefficients(tuple(as_tensor(row)[:i] for i, row in enumerate(tab.a)), as_tensor(tab.b),
                                       as_tensor(tab.error), as_tensor(_DENSE if tab is DOPRI5 else None))
        return self._coef

    def _stiffness(self, w: WorkingBatch, accept, h, dk, dy, failure) -> WorkingBatch:
        """Hairer's stiffness test after an accepted dopri5 step: ``h * |k7 - k6| / |y7 - y6|``
        estimates ``h`` times the dominant eigenvalue; beyond the stability boundary on
        :data:`STIFF_STEPS` accepted steps (no :data:`CALM_STEPS` calm ones between), the cue
        switches to the implicit method; so does a cue whose explicit step size underflows, or
        with :data:`STRUGGLE_REJECTS` rejected steps, more than it accepted."""
        if not self.can_switch:
            return w
        num, den = dk.pow(2).sum(-1).double(), dy.pow(2).sum(-1).double()
        h_lambda = h * (num / den.clamp_min(1e-300)).sqrt()
        looks_stiff = accept & (den > 0) & (h_lambda > STIFF_H_LAMBDA)
        calm = accept & ~looks_stiff
        calm_steps = torch.where(calm, w.calm_steps + 1, torch.where(looks_stiff, 0, w.calm_steps))
        stiff_steps = torch.where(looks_stiff, w.stiff_steps + 1, w.stiff_steps)
        stiff_steps = torch.where(calm_steps >= CALM_STEPS, 0, stiff_steps)
        rescue = failure == UNDERFLOW  # (on the explicit path, also a cue flagged since the last look)
        # Error control that rejects more steps than it accepts is held back by something other
        # than accuracy (Hairer's test sees accepted steps only).
        struggling = (w.counts[REJECTED] >= STRUGGLE_REJECTS) & (w.counts[REJECTED] > w.counts[ACCEPTED])
        switch = ((stiff_steps >= STIFF_STEPS) | struggling | rescue) & ~w.implicit
        w.calm_steps, w.stiff_steps = calm_steps, stiff_steps
        # No host sync here: the switch is recorded on the device and acted on at the next look.
        self._switch_time[w.rows] = torch.where(switch, w.t, self._switch_time[w.rows])
        w.implicit, w.jac_age = w.implicit | switch, torch.where(switch, -1, w.jac_age)
        w.status, w.failure = torch.where(rescue, RUNNING, w.status), torch.where(rescue, 0, w.failure)
        return w

    def _jacobian(self, t: torch.Tensor, y: torch.Tensor, f: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Forward-difference Jacobians ``df/dy`` (b, D, D) of the cues at ``y`` (derivative ``f``):
        D perturbed copies of each cue, :data:`JACOBIAN_ROWS` cue-rows per call of ``rhs``."""
        b, dims = y.shape
        delta = math.sqrt(torch.finfo(y.dtype).eps) * y.abs().clamp_min(1.0)
        delta = (y + delta) - y  # the step as represented
        jac = y.new_empty(b, dims, dims)
        per_call = max(1, JACOBIAN_ROWS // max(1, b))
        for j0 in range(0, dims, per_call):
            cols = torch.arange(j0, min(dims, j0 + per_call), device=y.device)
            n = len(cols)
            shifted = y[None].repeat(n, 1, 1)  # (n, b, D): copy c moves unit cols[c]
            step = delta[:, cols].T  # (n, b)
            shifted[torch.arange(n, device=y.device), :, cols] += step
            out = self._eval(t.repeat(n), shifted.reshape(n * b, dims), rows.repeat(n)).reshape(n, b, dims)
            jac[:, :, j0:j0 + n] = ((out - f[None]) / step[..., None]).permute(1, 2, 0)
        return jac

    def _implicit(self, w: WorkingBatch, done_rows: int) -> WorkingBatch:
        """A Rosenbrock23 attempt (Shampine & Reichelt 1997, eq. for ode23s, autonomous form)::

            W = I - h d J,  k1 = W^-1 F0,  F1 = f(y + h k1 / 2),  k2 = W^-1 (F1 - k1) + k1,
            y1 = y + h k2,  F2 = f(y1),  k3 = W^-1 (F2 - e32 (k2 - F1) - 2 (k1 - F0)),
            err = h (k1 - 2 k2 + k3) / 6

        ``W^-1`` is an LU factorization (:meth:`_dense_solver`) up to :data:`DENSE_JACOBIAN_MAX_DIM`
        units, a matrix-free Krylov solve beyond (:meth:`_krylov_solver`)."""
        active, lands, h, t_new = self._frame(w, done_rows)
        y, f0 = w.y, w.f
        if self.matrix_free:
            solve, solved = self._krylov_solver(w, active, h), torch.ones_like(active)
            jac, need = None, torch.zeros_like(active)
        else:
            solve, solved, jac, need = self._dense_solver(w, active, h)
        hc = h[:, None].to(y.dtype)
        w.counts[SOLVES] += 3 * active
        k1 = solve(f0)
        f1 = self._eval(w.t + 0.5 * h, y + 0.5 * hc * k1, w.rows)
        k2 = solve(f1 - k1) + k1
        y_new = y + hc * k2
        f2 = self._eval(t_new, y_new, w.rows)
        k3 = solve(f2 - _E32 * (k2 - f1) - 2.0 * (k1 - f0))
        err_norm = self._error_norm(hc / 6.0 * (k1 - 2.0 * k2 + k3), y, y_new)
        err_norm = torch.where(solved & torch.isfinite(f2).all(-1), err_norm, math.inf)
        accept, h_next = self._next_step(w, active, lands, h, err_norm, 3)

        def interpolate(theta: torch.Tensor) -> torch.Tensor:
            """ode23s's dense output: ``y + h (s(1-s) k1 + s(s-2d) k2) / (1-2d)``."""
            return y + hc * (theta * (1 - theta) * k1 + theta * (theta - 2 * _GAMMA) * k2) / (1 - 2 * _GAMMA)

        jac_age = torch.where(need, 0, w.jac_age) + accept
        out, _ = self._finish_attempt(w, active, accept, t_new, y_new, f2, h, h_next, 2, interpolate)
        out.jac, out.jac_age = jac, jac_age
        return out

    def _dense_solver(self, w: WorkingBatch, active: torch.Tensor, h: torch.Tensor):
        """``r -> W^-1 r`` by an LU factorization of ``W = I - h d J`` per cue, with ``J`` rebuilt
        when the cue has none, after a rejected step with a stale one, and every
        :data:`JACOBIAN_REUSE` accepted steps; also which cues' factorizations succeeded, the
        Jacobians and which cues got a new one."""
        y, f0 = w.y, w.f
        need = active & ((w.jac_age < 0) | (w.rejected & (w.jac_age > 0)) | (w.jac_age >= JACOBIAN_REUSE))
        jac = w.jac if w.jac is not None else y.new_zeros(len(y), y.shape[1], y.shape[1])
        if bool(need.any()):  # (one host look, to pick the cues that need one)
            sel = need.nonzero().squeeze(-1)
            jac[sel] = self._jacobian(w.t[sel], y[sel], f0[sel], w.rows[sel])
            w.counts[NFE, sel] += y.shape[1]
            w.counts[JACOBIANS, sel] += 1
        eye = torch.eye(y.shape[1], dtype=y.dtype, device=y.device)
        lu, pivots, info = torch.linalg.lu_factor_ex(eye - (h * _GAMMA)[:, None, None].to(y.dtype) * jac)
        w.counts[FACTORIZATIONS] += active

        def solve(rhs: torch.Tensor) -> torch.Tensor:
            return torch.linalg.lu_solve(lu, pivots, rhs[..., None]).squeeze(-1)

        return solve, info == 0, jac, need

    def _krylov_solver(self, w: WorkingBatch, active: torch.Tensor, h: torch.Tensor):
        """``r -> W^-1 r`` without forming ``J`` (states over :data:`DENSE_JACOBIAN_MAX_DIM` units):
        GMRES (:func:`neurodyn.krylov.gmres`) on products ``W v = v - h d J v``, each ``J v`` a
        forward difference of one batched right-hand side along ``v`` (step ``sqrt(eps) (1 +
        |y|) / |v|``, Knoll & Keyes 2004), at the step's start ``(t, y)``: a Rosenbrock step with
        the current Jacobian. Each solve stops when ``h |residual|`` is below
        :data:`KRYLOV_FRACTION` of the error control's scale ``|atol + rtol |y||``, so that the
        solve's error stays well below the step's; its products count as evaluations."""
        y, f0 = w.y, w.f
        hg = (h * _GAMMA).to(y.dtype)[:, None]
        root_eps, tiny = math.sqrt(torch.finfo(y.dtype).eps), torch.finfo(y.dtype).tiny
        size = 1.0 + y.norm(dim=-1, keepdim=True)

        def apply(v: torch.Tensor) -> torch.Tensor:
            length = v.norm(dim=-1, keepdim=True)
            eps = root_eps * size / length.clamp_min(tiny)
            jv = (self._eval(w.t, y + eps * v, w.rows) - f0) / eps
            return v - hg * torch.where(length > 0, jv, 0.0)

        scale = (self.atol + self.rtol * y.double().abs()).norm(dim=-1)
        tol = KRYLOV_FRACTION * scale / h.clamp_min(1e-300)

        def solve(rhs: torch.Tensor) -> torch.Tensor:
            x, products = gmres(apply, rhs, tol)
            w.counts[NFE] += products * active
            return x

        return solve

    def _record(self, w: WorkingBatch, h: torch.Tensor, crossed: torch.Tensor, interpolate) -> None:
        """Write the states at the recording times an accepted step crossed (dense output for the
        adaptive methods; fixed steps land on them) into the ring; rows not written go to its
        scratch row."""
        scratch, window = self.window, self.window
        # On the CPU a look at how many times were crossed is free; on a GPU it would sync.
        n_cross = int(crossed.max()) if self.cheap_sync else self.crossings
        for j in range(n_cross):
            target = w.idx + j
            theta = ((self.grid[target.clamp(max=len(self.times))] - w.t) / h).clamp(0.0, 1.0)[:, None]
            value = interpolate(theta.to(w.y.dtype))
            self.ring[torch.where(crossed > j, target % window, scratch), w.rows] = value
