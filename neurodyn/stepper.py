"""Explicit Runge-Kutta stepping with a step size, error control, status and statistics per cue.

torchdiffeq steps the whole batch with one step size (the worst cue's) and reads it back to the
host every step. Here every cue carries its own time, step size and status (torchode's design),
accept/reject is a ``torch.where`` per cue, and the host looks at the batch once per block of
``sync_every`` steps. Between those looks nothing leaves the device; at a look, cues that are
done (end reached, steady state, failure) are dropped from the working batch, so a finished cue
costs no more right-hand sides.

Methods: Dormand-Prince 5(4) (``dopri5``, FSAL, step control by ``err^(-1/5)`` with the safety
factor and growth limits torchdiffeq uses, Hairer's 4th-order dense output for the recording
grid), and the fixed-step ``euler``, ``midpoint`` and ``rk4``, which land on the recording times.
Tableaus: Dormand & Prince (1980), dense output: Hairer, Norsett & Wanner, *Solving ODEs I*,
section II.6 (``CONTD5`` of ``dopri5.f``).

On a GPU a step may cross at most :data:`CROSSINGS` recording times (it is shortened
otherwise), so the recorded states are written by a fixed number of masked scatters per step,
with no host sync; on the CPU, where reading how many were crossed is free, a step may cross any
number of them (within the ring below), so a dense recording grid costs no extra steps.
They go into a ring of recording rows: a cue may run at most a window of rows ahead of the
slowest one, so memory stays bounded whatever the number of recording times.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

#: Recording times one step may cross on a GPU (longer steps are cut to the last of them).
CROSSINGS = 4
#: Bytes of recording rows kept on the device by default (a cue may run that far ahead).
RING_BYTES = 2**28

RUNNING, FINISHED, STEADY, FAILED = 0, 1, 2, 3
STATUS_NAMES = {RUNNING: "running", FINISHED: "finished", STEADY: "steady", FAILED: "failed"}


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
METHODS = tuple(TABLEAUS)

# Step-size control as in torchdiffeq's adaptive solvers (so that the two take comparable steps).
SAFETY, MAX_GROWTH, MAX_SHRINK = 0.9, 10.0, 0.2

Field = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


class StepFailure(RuntimeError):
    """Cues that could not be integrated: ``cues`` (their indices), ``times`` (where they stopped)
    and ``reasons``; :class:`~neurodyn.integrate.Integration` turns it into a ``SolverError``."""

    def __init__(self, cues: list[int], times: list[float], reasons: list[str]) -> None:
        self.cues, self.times, self.reasons = cues, times, reasons
        shown = ", ".join(f"cue {c} at t={t:g} ({r})" for c, t, r in list(zip(cues, times, reasons))[:3])
        super().__init__(f"{len(cues)} cue(s) failed: {shown}")


@dataclass
class CueStats:
    """Per-cue statistics, CPU tensors of shape (B,): right-hand-side evaluations, accepted and
    rejected steps, status (:data:`STATUS_NAMES`), the last step size and the time reached."""

    nfe: torch.Tensor
    accepted: torch.Tensor
    rejected: torch.Tensor
    status: torch.Tensor
    step_size: torch.Tensor
    time: torch.Tensor


class PerCueSolve:
    """Integrate ``dy/dt = rhs(t, y, rows)`` from ``y0`` (B, D) over the recording ``times``.

    ``rhs`` gets times (b,), states (b, D) and ``rows``, the indices (b,) of the cues in the
    working batch (None while it is the whole batch in order). Iterating yields ``(times,
    states)``, (T_k,) and (T_k, B, D), for the recording times every running cue has passed.
    ``steady_tol``: a cue stops when ``max |dy/dt| <= steady_tol * max(1, max |y|)`` after an
    accepted step, and its state is held on the rest of the grid (:attr:`convergence_time`: the
    time of that step). When every cue has stopped early the run ends at the first recording
    time after the last stop. ``first_step``: the adaptive methods' first step (default: Hairer's
    estimate per cue, one evaluation). ``window``: recording rows kept on the device (default:
    as many as fit :data:`RING_BYTES`, at least ``2 * CROSSINGS * sync_every``); a cue that runs
    a whole window ahead of the slowest waits for it. ``cheap_sync``: whether looking at device
    values from the host is free (default: on the CPU); False takes the GPU's sync-free path. Statistics are in :attr:`stats` afterwards;
    :attr:`rhs_rows` counts cue-evaluations computed (stopped cues ride along until the next
    host look) and :attr:`batch_calls` the calls of ``rhs``.
    """

    def __init__(self, rhs: Field, y0: torch.Tensor, times: torch.Tensor, method: str = "dopri5", *,
                 rtol: float = 1e-6, atol: float = 1e-8, step_size: float | None = None,
                 steady_tol: float | None = None, max_steps: int = 100_000, sync_every: int | None = None,
                 first_step: float | None = None, window: int | None = None,
                 cheap_sync: bool | None = None) -> None:
        if method not in TABLEAUS:
            raise ValueError(f"unknown per-cue method {method!r}; known: {', '.join(METHODS)}")
        self.tab = TABLEAUS[method]
        self.adaptive = self.tab.error is not None
        if not self.adaptive and not (step_size and step_size > 0):
            raise ValueError(f"{method} needs a step_size > 0")
        self.rhs, self.method = rhs, method
        self.rtol, self.atol, self.step, self.steady_tol = rtol, atol, step_size, steady_tol
        # A host look costs nothing on the CPU; on a GPU it waits for the device.
        self.cheap_sync = y0.device.type == "cpu" if cheap_sync is None else cheap_sync
        sync_every = sync_every or (1 if self.cheap_sync else 16)
        self.max_steps, self.sync_every, self.first_step = max_steps, max(1, int(sync_every)), first_step
        batch, dims = y0.shape
        self.y0, self.times = y0, times.to(y0.dtype)
        self.grid = torch.cat([self.times, self.times.new_full((1,), math.inf)])  # +inf: past the end
        row_bytes = max(1, batch * dims * y0.element_size())
        self.window = min(len(times), window or max(2 * CROSSINGS * self.sync_every, RING_BYTES // row_bytes))
        self.ring = y0.new_empty(self.window + 1, batch, dims)  # recording rows modulo the window; last: scratch
        self.ring[0] = y0
        self.convergence_time = torch.full((batch,), math.nan, dtype=torch.float64)
        self.wall_time = 0.0
        self.host_syncs = self.rhs_rows = self.attempts = self.batch_calls = 0
        self._full = True  # the working batch is the whole batch, in order
        self._any_stopped = False
        self._reached = 1  # the latest recording row a stopped cue had reached
        dev = y0.device
        self._counts = torch.zeros(3, batch, dtype=torch.long, device=dev)  # nfe, accepted, rejected
        self._status = torch.zeros(batch, dtype=torch.long, device=dev)
        self._h = torch.zeros(batch, dtype=y0.dtype, device=dev)
        self._t = torch.zeros(batch, dtype=y0.dtype, device=dev)
        self._stop_row = torch.full((batch,), len(times), dtype=torch.long, device=dev)  # first row held
        self._held = torch.empty_like(y0)  # a stopped cue's state, held from its stop row on
        # Recording times one step may cross: fixed steps land on the next one.
        self.crossings = (self.window if self.cheap_sync else CROSSINGS) if self.adaptive else 1

    @property
    def stats(self) -> CueStats:
        counts = self._counts.cpu()
        return CueStats(counts[0], counts[1], counts[2], self._status.cpu(), self._h.cpu(), self._t.cpu())

    def _eval(self, t: torch.Tensor, y: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        self.rhs_rows += len(rows)
        self.batch_calls += 1
        return self.rhs(t, y, None if self._full else rows)

    def _initial_step(self, t, y, f0, rows) -> torch.Tensor:
        """Hairer's starting step per cue (torchdiffeq's ``_select_initial_step``), one evaluation."""
        scale = self.atol + self.rtol * y.abs()
        d0, d1 = (y / scale).pow(2).mean(-1).sqrt(), (f0 / scale).pow(2).mean(-1).sqrt()
        h0 = torch.where((d0 < 1e-5) | (d1 < 1e-5), torch.full_like(d0, 1e-6), 0.01 * d0 / d1.clamp_min(1e-30))
        f1 = self._eval(t + h0, y + h0[:, None] * f0, rows)
        d2 = ((f1 - f0) / scale).pow(2).mean(-1).sqrt() / h0
        big = torch.maximum(d1, d2)
        h1 = torch.where(big <= 1e-15, torch.maximum(torch.full_like(h0, 1e-6), h0 * 1e-3),
                         (0.01 / big.clamp_min(1e-30)).pow(1.0 / (self.tab.order - 1)))
        return torch.minimum(100 * h0, h1)

    def _steady(self, f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return f.abs().amax(-1) <= self.steady_tol * y.abs().amax(-1).clamp_min(1.0)

    def _rows_out(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Recording rows ``[start, stop)`` from the ring, stopped cues' held states in place."""
        rows = torch.arange(start, stop, device=self.ring.device)
        states = self.ring[rows % self.window]
        if self._any_stopped:
            held = rows[:, None] >= self._stop_row[None, :]
            states = torch.where(held[..., None], self._held[None], states)
        return self.times[start:stop], states

    def _settle(self, rows, t, y, h, idx, status, counts) -> None:
        """Write the working batch's cues back to the per-cue records; stopped ones are held."""
        self._counts[:, rows] = counts
        self._status[rows], self._h[rows], self._t[rows] = status, h, t
        stopped = status != RUNNING
        if bool(stopped.any()):
            self._any_stopped = True
            gone = rows[stopped]
            self._held[gone], self._stop_row[gone] = y[stopped], idx[stopped]
            self._reached = max(self._reached, int(idx[stopped].max()))
            steady = (status == STEADY).cpu()
            self.convergence_time[rows.cpu()[steady]] = t.cpu().double()[steady]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        start = time.perf_counter()
        batch, dev = self.y0.shape[0], self.y0.device
        rows = torch.arange(batch, device=dev)
        y = self.y0
        t = self.times[:1].expand(batch).clone()
        idx = torch.ones(batch, dtype=torch.long, device=dev)  # the next recording row to write
        status = torch.full((batch,), RUNNING, dtype=torch.long, device=dev)
        counts = torch.zeros(3, batch, dtype=torch.long, device=dev)  # nfe, accepted, rejected
        f = None
        if self.tab.fsal or self.steady_tol is not None:
            f = self._eval(t, y, rows)
            counts[0] += 1
        if self.adaptive:
            h = torch.full_like(t, self.first_step) if self.first_step else self._initial_step(t, y, f, rows)
            counts[0] += 0 if self.first_step else 1
        else:
            h = torch.full_like(t, self.step)
        if self.steady_tol is not None:
            status = torch.where(self._steady(f, y), STEADY, status)
        if not self.tab.fsal:
            f = None
        yield self.times[:1], self.y0[None]
        done_rows = 1
        while True:
            for _ in range(self.sync_every):
                t, y, f, h, idx, status = self._attempt(t, y, f, h, idx, status, counts, rows, done_rows)
            self.host_syncs += 1  # the one host look per block of steps
            stopped = status != RUNNING
            if bool(stopped.any()):
                self._settle(rows, t, y, h, idx, status, counts)
                if bool((status == FAILED).any()):
                    self.wall_time = time.perf_counter() - start
                    raise self._failure(rows, t, h, status, counts)
                keep = (~stopped).nonzero().squeeze(-1)
                if len(keep) == 0:
                    break
                t, y, h, idx, status, rows = (x[keep] for x in (t, y, h, idx, status, rows))
                f = None if f is None else f[keep]
                counts = counts[:, keep]
                self._full = False
            complete = int(idx.min())  # every running cue has written the rows before it
            if complete > done_rows:
                yield self._rows_out(done_rows, complete)
                done_rows = complete
        # Every cue stopped early: the record ends at the first recording time after the last
        # stop, so that it shows every cue's final state.
        last = len(self.times) if bool((self._status == FINISHED).any()) else min(len(self.times), self._reached + 1)
        if last > done_rows:
            yield self._rows_out(done_rows, last)
        self.wall_time = time.perf_counter() - start

    def _failure(self, rows, t, h, status, counts) -> StepFailure:
        bad = (status == FAILED).nonzero().squeeze(-1)
        over = (counts[1, bad] + counts[2, bad] > self.max_steps).cpu().tolist()
        reasons = [f"more than max_steps={self.max_steps} steps" if o else
                   f"step size underflow (h={float(hb):.3g}) or a non-finite state" for o, hb in zip(over, h[bad].cpu())]
        return StepFailure(rows[bad].cpu().tolist(), t[bad].cpu().double().tolist(), reasons)

    def _attempt(self, t, y, f, h, idx, status, counts, rows, done_rows):
        """One step attempt of the working batch; cues not running are carried through unchanged."""
        tab, n_times = self.tab, len(self.times)
        self.attempts += 1
        horizon = min(n_times - 1, done_rows + self.window - 1)  # the last row the ring can take now
        active = (status == RUNNING) & (idx <= horizon)  # a cue a whole window ahead waits
        limit = self.times[(idx + (self.crossings - 1)).clamp(max=horizon)]
        # Snap a step that (almost) reaches the limit onto it; fixed steps divide the recording
        # spacing to 1e-3 (Integration checks), so rounding of t never leaves a sliver of a step.
        lands = h >= (limit - t) * (1 - (1e-6 if self.adaptive else 1e-3))
        h_step = torch.where(lands, limit - t, h)
        t_new = torch.where(lands, limit, t + h_step)
        hc = h_step[:, None]
        k = [f if tab.fsal else self._eval(t, y, rows)]
        for c_i, a_i in zip(tab.c[1:], tab.a[1:]):
            y_i = y + hc * sum(a * kj for a, kj in zip(a_i, k) if a != 0.0)
            k.append(self._eval(t + c_i * h_step, y_i, rows))
        y_new = y_i if tab.fsal else y + hc * sum(b * kj for b, kj in zip(tab.b, k) if b != 0.0)
        finite = torch.isfinite(y_new).all(-1)
        if self.adaptive:
            err = hc * sum(e * kj for e, kj in zip(tab.error, k) if e != 0.0)
            scale = self.atol + self.rtol * torch.maximum(y.abs(), y_new.abs())
            err_norm = (err / scale).pow(2).mean(-1).sqrt()
            accept = active & finite & (err_norm <= 1.0)
            factor = (SAFETY * err_norm.clamp_min(1e-30).pow(-1.0 / tab.order)).clamp(MAX_SHRINK, MAX_GROWTH)
            factor = torch.where(err_norm <= 1.0, factor.clamp_min(1.0), factor.clamp_max(1.0))
            # A step cut short by the recording grid does not shrink the next one; a non-finite
            # trial shrinks it as much as allowed.
            proposed = h_step * factor
            proposed = torch.where(accept & lands, torch.maximum(h, proposed), proposed)
            h_next = torch.where(active, torch.where(finite, proposed, h_step * MAX_SHRINK), h)
        else:
            accept = active & finite
            h_next = h
        counts[0] += active * (len(k) - (1 if tab.fsal else 0))
        counts[1] += accept
        counts[2] += active & ~accept
        crossed = (torch.searchsorted(self.times, t_new, right=True) - idx).clamp(min=0) * accept
        self._record(t, y, y_new, h_step, k, idx, crossed, rows)
        acc = accept[:, None]
        t_out, y_out = torch.where(accept, t_new, t), torch.where(acc, y_new, y)
        f_out = torch.where(acc, k[-1], f) if tab.fsal else None
        status = torch.where(accept & (t_new >= self.times[-1]), FINISHED, status)
        if self.steady_tol is not None:
            speed_f = f_out if tab.fsal else self._eval(t_out, y_out, rows)
            counts[0] += 0 if tab.fsal else accept
            status = torch.where(accept & (status == RUNNING) & self._steady(speed_f, y_out), STEADY, status)
        over = counts[1] + counts[2] > self.max_steps
        tiny = 4 * torch.finfo(t.dtype).eps * torch.maximum(t.abs(), self.times[-1].abs())
        bad = over | (~accept & (h_next <= tiny))  # the step size underflowed
        if not self.adaptive:
            bad = bad | ~finite
        status = torch.where(active & bad, FAILED, status)
        return t_out, y_out, f_out, h_next, idx + crossed, status

    def _record(self, t, y, y_new, h, k, idx, crossed, rows) -> None:
        """Write the states at the recording times an accepted step crossed (dense output for
        dopri5; fixed steps land on them) into the ring; rows not written go to its scratch row."""
        scratch, window = self.window, self.window
        if not self.adaptive:
            self.ring[torch.where(crossed > 0, idx % window, scratch), rows] = y_new
            return
        # On the CPU a look at how many times were crossed is free; on a GPU it would sync.
        n_cross = int(crossed.max()) if self.cheap_sync else self.crossings
        if n_cross == 0:
            return
        hc = h[:, None]
        dy = y_new - y
        bspl = hc * k[0] - dy
        r4 = dy - hc * k[-1] - bspl
        r5 = hc * sum(d * kj for d, kj in zip(_DENSE, k) if d != 0.0)
        for j in range(n_cross):
            target = idx + j
            theta = ((self.grid[target.clamp(max=len(self.times))] - t) / h).clamp(0.0, 1.0)[:, None]
            value = y + theta * (dy + (1 - theta) * (bspl + theta * (r4 + (1 - theta) * r5)))
            self.ring[torch.where(crossed > j, target % window, scratch), rows] = value
