"""The per-cue loop: every cue with its own time, step size, method, status and statistics.

torchdiffeq steps the whole batch with one step size (the worst cue's) and reads it back to the
host every step. Here every cue carries its own time, step size, method and status (torchode's
design), accept/reject is a ``torch.where`` per cue, and the host looks at the batch once per
block of ``sync_every`` steps. Between those looks nothing leaves the device; at a look, cues
that are done (end reached, steady state, failure) are dropped from the working batch, so a
finished cue costs no more right-hand sides, and a failed one never stops the others.

Methods: ``dopri5`` and the fixed-step ``euler``, ``midpoint`` and ``rk4``
(:mod:`~neurodyn.solve.explicit`), ``rosenbrock23`` for stiff cues
(:mod:`~neurodyn.solve.rosenbrock`), and ``auto``: dopri5 with Hairer's stiffness test per cue,
a cue found stiff continuing with rosenbrock23 from where it is
(:mod:`~neurodyn.solve.stiffness`). The step-size control is
:class:`~neurodyn.solve.control.ErrorControl`, the steady-state event
:class:`~neurodyn.solve.control.SteadyState`, the recording
:class:`~neurodyn.solve.ring.RecordingRing`.

Time and step sizes are kept in float64 whatever the state's dtype, so a float32 state can take
steps far below float32's resolution of the time span (a fast transient at t = 0).

On a GPU a step may cross at most :data:`~neurodyn.solve.ring.CROSSINGS` recording times (it is
shortened otherwise), so the recorded states are written by a fixed number of masked scatters per
step, with no host sync; on the CPU, where reading how many were crossed is free, a step may cross
any number of them (within the ring), so a dense recording grid costs no extra steps.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator
from typing import Any

import torch

from ..numerics import flush_subnormal
from . import rosenbrock
from .compiled import LOOP_ATTEMPTS, LOOP_RING_BYTES, compiled_loop, compiled_start, repays
from .control import ErrorControl, SteadyState
from .explicit import ExplicitStep
from .ring import CROSSINGS, RING_BYTES, RecordingRing
from .rosenbrock import Rosenbrock23
from .status import (
    ACCEPTED,
    COUNTERS,
    FAILED,
    FAILURES,
    FINISHED,
    NFE,
    NOT_FINITE,
    OVER_BUDGET,
    REJECTED,
    RUNNING,
    STEADY,
    UNDERFLOW,
    CueStats,
    WorkingBatch,
)
from .step import CountedField, Field, Frame, TimeDependence, Trial
from .stiffness import stiffness_switch
from .tableau import TABLEAUS

ADAPTIVE = ("auto", "dopri5", "rosenbrock23")
#: Steps between two host looks where a look waits for the device (a GPU).
DEVICE_SYNC_EVERY = 16
METHODS = ("auto", "dopri5", "rosenbrock23", "euler", "midpoint", "rk4")


class PerCueSolve:
    """Integrate ``dy/dt = rhs(t, y, rows)`` from ``y0`` (B, D) over the recording ``times``.

    ``rhs`` gets times (b,), states (b, D) and ``rows``, the indices (b,) of the cues in the
    working batch (None while it is the whole batch in order). ``time_dependence``: how ``rhs``
    depends on ``t`` (None: not at all, the network's own dynamics): adaptive steps land on its
    breaks (just before a jump, going on from the jump with a fresh derivative),
    ``rosenbrock23`` adds the time derivative of a field that changes between breaks, and no cue
    stops at steady state before the field stops changing. Iterating yields ``(times,
    states)``, (T_k,) and (T_k, B, D), for the recording times every running cue has passed.
    ``steady_tol``: a cue stops when ``max |dy/dt| <= steady_tol * max(1, max |y|)`` after an
    accepted step, and its state is held on the rest of the grid (:attr:`convergence_time`: the
    time of that step). A cue that fails stops with status ``failed`` and NaN on the rest of its
    grid; the others go on (:attr:`final_state` holds where each cue stopped). When every cue has
    stopped early the run ends at the first recording time after the last stop.
    ``first_step``: the adaptive methods' first step (default: Hairer's estimate per cue, one
    evaluation). ``window``: recording rows kept on the device (default: as many as fit
    :data:`~neurodyn.solve.ring.RING_BYTES`, at least ``2 * CROSSINGS * sync_every``; compiled:
    :data:`~neurodyn.solve.compiled.LOOP_RING_BYTES`); a cue that runs a whole window ahead of the
    slowest waits for it. ``cheap_sync``: whether looking at device values from the host is free
    (default: on the CPU); False takes the GPU's sync-free path. ``compiled``: run the explicit
    attempts as compiled loops (:mod:`~neurodyn.solve.compiled`): True, False, or None (once the
    run is projected to repay it); ``field_size``: the multiply-adds of one batched product of
    ``rhs`` where known, which sizes a compiled loop's threads. Statistics are in :attr:`stats`
    afterwards; :attr:`rhs_rows` counts cue-evaluations computed (stopped cues ride along until
    the next host look, and Jacobians count one per column) and :attr:`batch_calls` the calls of
    ``rhs``.
    """

    def __init__(self, rhs: Field, y0: torch.Tensor, times: torch.Tensor, method: str = "dopri5", *,
                 rtol: float = 1e-6, atol: float = 1e-8, step_size: float | None = None,
                 steady_tol: float | None = None, max_steps: int = 100_000, sync_every: int | None = None,
                 first_step: float | None = None, window: int | None = None,
                 cheap_sync: bool | None = None, time_dependence: TimeDependence | None = None,
                 compiled: bool | None = False, field_size: int | None = None) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown per-cue method {method!r}; known: {', '.join(METHODS)}")
        self.adaptive = method in ADAPTIVE
        if not self.adaptive and not (step_size and step_size > 0):
            raise ValueError(f"{method} needs a step_size > 0")
        batch, dims = y0.shape
        self.method, self.can_switch = method, method == "auto"
        self.field = CountedField(rhs)
        self.control = ErrorControl(rtol, atol)
        self.steady = None if steady_tol is None else SteadyState(steady_tol)
        self.tab = TABLEAUS["dopri5" if self.adaptive else method]
        self.explicit = ExplicitStep(self.tab, self.field, self.control if self.adaptive else None,
                                     probe=self.can_switch)
        # The field's calls per explicit attempt (a compiled block counts them itself).
        self.calls_per_attempt = len(self.tab.c) - (1 if self.tab.fsal else 0) + (
            1 if steady_tol is not None and not self.tab.fsal else 0)
        # Larger states solve the implicit stages matrix-free (neurodyn.krylov), smaller ones by LU.
        self.matrix_free = dims > rosenbrock.DENSE_JACOBIAN_MAX_DIM
        self.implicit = Rosenbrock23(self.field, self.control, self.matrix_free,
                                     time_derivative=time_dependence is not None and not time_dependence.jumps)
        self.step = step_size
        # Blocks of explicit attempts compiled as one function (neurodyn.solve.compiled): from the
        # start (True), never (False), or once the run is projected to repay it (None). Not where a
        # step lands on a jump of the field (finding those cues is a host look).
        self.compile_setting = compiled if time_dependence is None or not time_dependence.jumps else False
        self.compiled, self.compiled_blocks = bool(self.compile_setting), 0
        self.field_size = field_size  # (sizes a compiled loop's threads)
        # A host look costs nothing on the CPU; on a GPU it waits for the device, and inside a
        # compiled block it would cut the block.
        self.cheap_sync = (y0.device.type == "cpu" if cheap_sync is None else cheap_sync) and not self.compiled
        self.max_steps, self.first_step = max_steps, first_step
        self._sync_asked, self._window_asked = sync_every, window
        self.sync_every = max(1, int(sync_every or (
            1 if self.cheap_sync else LOOP_ATTEMPTS if self.compiled else DEVICE_SYNC_EVERY)))
        self.y0 = y0
        self.explicit.coefficients(y0)  # (built before any block: a compiled one takes them as inputs)
        self.times = times.to(torch.float64)  # time is float64 whatever the state's dtype
        # Where adaptive steps land: on the field's breaks, or just before where it jumps.
        breaks = None if time_dependence is None or not self.adaptive else time_dependence.breaks
        # (each with +inf last: past the last break, nothing limits a step)
        self.breaks = None if breaks is None else torch.cat(
            [breaks.to(device=y0.device, dtype=torch.float64), torch.full((1,), math.inf, device=y0.device)])
        self.jumps = time_dependence is not None and time_dependence.jumps
        self.landing = None if self.breaks is None else (
            torch.nextafter(self.breaks, torch.full_like(self.breaks, -math.inf)) if self.jumps else self.breaks)
        self.constant_after = -math.inf if time_dependence is None else time_dependence.constant_after
        self.span = float(self.times[-1] - self.times[0])
        # (indexed once, not on every attempt; a copy: a view would alias times in a compiled loop)
        self.t_end = self.times[-1].clone()
        # (a compiled loop carries its ring from attempt to attempt: a small one)
        self.ring = RecordingRing(self.times, y0, window, 2 * CROSSINGS * (1 if self.compiled else self.sync_every),
                                  LOOP_RING_BYTES if self.compiled else RING_BYTES)
        # Recording times one step may cross: fixed steps land on the next one.
        self.crossings = (self.ring.window if self.cheap_sync else CROSSINGS) if self.adaptive else 1
        self.convergence_time = torch.full((batch,), math.nan, dtype=torch.float64)
        self._switch_time = torch.full((batch,), math.nan, dtype=torch.float64, device=y0.device)
        # Which cues take which method: "explicit", "implicit" or "mixed" (then _split: the implicit
        # and the explicit cues' positions).
        self._plan = "explicit"
        self._split: tuple[torch.Tensor, torch.Tensor] | None = None
        self.wall_time = 0.0
        self.host_syncs = self.attempts = 0
        dev = y0.device
        self._counts = torch.zeros(len(COUNTERS), batch, dtype=torch.long, device=dev)
        self._status = torch.zeros(batch, dtype=torch.long, device=dev)
        self._method = torch.zeros(batch, dtype=torch.long, device=dev)
        self._failure = torch.zeros(batch, dtype=torch.long, device=dev)
        self._h = torch.zeros(batch, dtype=torch.float64, device=dev)
        self._t = torch.zeros(batch, dtype=torch.float64, device=dev)
        self.final_state = y0.clone()  # where each cue stopped (or ended)
        # Where the iteration stands: the working batch, the rows yielded, whether it ended.
        self._w: WorkingBatch | None = None
        self._done_rows = 0
        self._ended = False

    @property
    def rhs_rows(self) -> int:
        return self.field.rows

    @property
    def batch_calls(self) -> int:
        return self.field.calls

    @property
    def stats(self) -> CueStats:
        nfe, accepted, rejected, jacobians, factorizations, solves = self._counts.cpu()  # (COUNTERS' order)
        status, failure, h = self._status.cpu(), self._failure.cpu(), self._h.cpu()
        reasons = {int(c): FAILURES[int(failure[c])].format(max_steps=self.max_steps, h=float(h[c]))
                   for c in (status == FAILED).nonzero().flatten()}
        return CueStats(nfe, accepted, rejected, jacobians, factorizations, solves, status, self._method.cpu(),
                        self.switch_time, h, self._t.cpu(), reasons)

    @property
    def switch_time(self) -> torch.Tensor:
        """When each cue switched to the implicit method (NaN: never), a CPU tensor (B,)."""
        return self._switch_time.cpu()

    def _settle(self, w: WorkingBatch) -> None:
        """Write the working batch's cues back to the per-cue records; stopped ones are held
        (failed ones as NaN: they were not integrated past their failure)."""
        rows = w.rows
        self._counts[:, rows] = w.counts
        self._status[rows], self._h[rows], self._t[rows] = w.status, w.h, w.t
        self._method[rows], self._failure[rows] = w.implicit.long(), w.failure
        stopped = w.status != RUNNING
        if bool(stopped.any()):
            gone = rows[stopped]
            y = w.y[stopped]
            self.final_state[gone] = y
            failed = (w.status[stopped] == FAILED)[:, None]
            self.ring.hold(gone, w.idx[stopped], torch.where(failed, torch.full_like(y, math.nan), y))
            steady = (w.status == STEADY).cpu()
            self.convergence_time[rows.cpu()[steady]] = w.t.cpu()[steady]

    def _start(self) -> WorkingBatch:
        """The whole batch at the first recording time, with its first step size."""
        batch = self.y0.shape[0]
        w = WorkingBatch.start(self.times[:1].expand(batch).clone(), self.y0.clone(), self.method == "rosenbrock23")
        self.field.all_rows = w.rows
        w = (compiled_start(self, w) if self.compiled else None) or self.begin(w)
        self._switch_time[w.implicit] = float(self.times[0])
        self._replan(w)
        return w

    @property
    def start_calls(self) -> int:
        """The field's calls in :meth:`begin`."""
        return int(self.adaptive or self.steady is not None) + int(self.adaptive and not self.first_step)

    def begin(self, w: WorkingBatch) -> WorkingBatch:
        """The starting batch ``w`` with its derivative, first step size and status (touches no
        state of the solve: a compiled start runs it)."""
        if self.adaptive or self.steady is not None:
            w.f = self.field(w.t, w.y, w.rows)
            w.counts[NFE] += 1
            bad = ~torch.isfinite(w.f).all(-1)
            w.status = torch.where(bad, FAILED, w.status)
            w.failure = torch.where(bad, NOT_FINITE, w.failure)
        if not self.adaptive:
            assert self.step is not None  # (checked above)
            w.h = torch.full_like(w.t, self.step)
        elif self.first_step:
            w.h = torch.full_like(w.t, self.first_step)
        else:
            w.h = self.control.first_step(w.t, w.y, w.derivative(), self.tab.order,
                                          lambda t, y: self.field(t, y, w.rows))
            w.counts[NFE] += 1
        if self.steady is not None:
            w.status = torch.where((w.status == RUNNING) & self.steady.reached(w.derivative(), w.y), STEADY, w.status)
        if not self.adaptive:
            w.f = None
        return w

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yields the recorded rows; after :meth:`restore`, the rows after the snapshot's."""
        start = time.perf_counter() - self.wall_time  # (a restored run's clock goes on)
        if self._ended:
            return
        if self._w is None:
            self._w, self._done_rows = self._start(), 1
            yield self.times[:1].to(self.y0.dtype), self.y0[None]
        w = self._w
        while True:
            if bool((w.status == RUNNING).any()):
                stepped = None
                if self.compiled and self._plan == "explicit":
                    horizon = torch.tensor(self.ring.horizon(self._done_rows), device=w.y.device)
                    stepped = compiled_loop(self, w, horizon)
                if stepped is not None:
                    w = stepped
                else:
                    for _ in range(self.sync_every):
                        w = self._attempt(w, self.ring.horizon(self._done_rows))
            self.host_syncs += 1  # the one host look per block of steps
            running = w.status == RUNNING
            if not bool(running.all()):
                self._settle(w)
                keep = running.nonzero().squeeze(-1)
                if len(keep) == 0:
                    break
                if not self.compiled:  # (a compiled loop keeps its shapes: stopped cues ride along)
                    w = w.take(keep)
            self._replan(w)
            if self.compile_setting is None and not self.compiled and repays(self, w):
                self._enter_compiled(w)
            # Every running cue has written the rows before it.
            complete = int(torch.where(w.status == RUNNING, w.idx, len(self.times)).min())
            if complete > self._done_rows:
                rows = self.ring.read(self._done_rows, complete)
                self._w, self._done_rows = w, complete
                self.wall_time = time.perf_counter() - start
                yield rows
        # Every cue stopped: the record ends at the end when some cue finished there, otherwise at
        # the first recording time after the last stop, so that it shows every cue's final state.
        self._ended, self._w = True, None
        finished = bool((self._status == FINISHED).any())
        last = len(self.times) if finished else min(len(self.times), self.ring.reached + 1)
        done, self._done_rows = self._done_rows, max(self._done_rows, last)
        self.wall_time = time.perf_counter() - start
        if last > done:
            yield self.ring.read(done, last)

    def _enter_compiled(self, w: WorkingBatch) -> None:
        """Go on in compiled loops (the auto rule found the run long enough): a fixed number of
        recording crossings per step, as on a GPU, at most :data:`LOOP_ATTEMPTS` attempts per
        loop, and a ring the size a loop carries."""
        self.compiled, self.cheap_sync = True, False
        self.crossings = CROSSINGS if self.adaptive else 1
        self.sync_every = max(1, int(self._sync_asked or LOOP_ATTEMPTS))
        self._fit_ring(w)

    def _fit_ring(self, w: WorkingBatch | None) -> None:
        """The ring a compiled loop carries: :data:`LOOP_RING_BYTES` of rows (or the window asked)."""
        self.ring.refit(self._window_asked or self.ring.fitting(2 * CROSSINGS, LOOP_RING_BYTES), self._done_rows,
                        self._written(w))

    #: What :meth:`snapshot` saves of the solve itself (the working batch and the ring apart).
    _SNAPSHOT = ("_done_rows", "_ended", "wall_time", "host_syncs", "attempts", "convergence_time", "_switch_time",
                 "_counts", "_status", "_method", "_failure", "_h", "_t", "final_state",
                 "compiled", "compiled_blocks", "cheap_sync", "crossings", "sync_every")

    def snapshot(self) -> dict:
        """Everything the solve needs to go on from where its last yield left it, bit for bit:
        the per-cue records, the working batch, the recording rows that cues ahead already wrote,
        and the counters. Tensors are the solve's own (save them before it goes on)."""
        ring, w = self.ring, self._w
        ahead = torch.arange(self._done_rows, self._written(w), device=ring.rows.device)
        return {**{name: getattr(self, name) for name in self._SNAPSHOT},
                "field": (self.field.calls, self.field.rows),
                "batch": None if w is None else {f.name: getattr(w, f.name) for f in dataclasses.fields(w)},
                "ring": {"ahead": ring.rows[ahead % ring.window], "held": ring.held, "stop_row": ring.stop_row,
                         "reached": ring.reached, "any_held": ring.any_held}}

    def _written(self, w: WorkingBatch | None) -> int:
        """One past the farthest recording row written: by a running cue ahead, or one that
        stopped there."""
        reach = max(self.ring.reached, int(w.idx.max()) if w is not None and len(w.idx) else 0)
        return max(reach, self._done_rows)

    def restore(self, snapshot: dict) -> None:
        """Go on from a :meth:`snapshot` of a solve of the same problem (its tensors may be on
        another device: each goes where the solve keeps its own)."""
        for name in self._SNAPSHOT:  # (a checkpoint from before compiled blocks lacks their settings)
            setattr(self, name, _like(snapshot.get(name, getattr(self, name)), getattr(self, name)))
        self.field.calls, self.field.rows = snapshot["field"]
        ring, saved = self.ring, snapshot["ring"]
        ahead = torch.arange(self._done_rows, self._done_rows + len(saved["ahead"]), device=ring.rows.device)
        ring.rows[ahead % ring.window] = saved["ahead"].to(ring.rows.device)
        ring.held, ring.stop_row = _like(saved["held"], ring.held), _like(saved["stop_row"], ring.stop_row)
        ring.reached, ring.any_held = saved["reached"], saved["any_held"]
        if snapshot["batch"] is not None:
            dev = self.y0.device
            w = WorkingBatch(**{name: None if value is None else value.to(dev)  # type: ignore[arg-type]
                                for name, value in snapshot["batch"].items()})
            if len(w.rows) == len(self.y0):  # the whole batch in order: the field passes rows=None
                self.field.all_rows = w.rows
            self._w = w
            self._replan(w)
        if self.compiled:  # (the default rule had switched the run to compiled loops)
            self._fit_ring(self._w)

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
            self._plan, self._split = "mixed", (implicit.nonzero().squeeze(-1), (~implicit).nonzero().squeeze(-1))
            if w.jac is None and not self.matrix_free:
                w.jac = w.y.new_zeros(len(w.t), w.y.shape[1], w.y.shape[1])

    def _attempt(self, w: WorkingBatch, horizon: int | torch.Tensor) -> WorkingBatch:
        """One step attempt of the working batch, each cue by the method :meth:`_replan` gave it;
        cues not running are carried through unchanged."""
        self.attempts += 1
        if self._plan == "explicit":
            return self._explicit(w, horizon)
        if self._plan == "implicit":
            return self._implicit(w, horizon)
        assert self._split is not None
        imp, exp = self._split
        w.put(exp, self._explicit(w.take(exp), horizon))
        w.put(imp, self._implicit(w.take(imp), horizon))
        return w

    def _explicit(self, w: WorkingBatch, horizon: int | torch.Tensor) -> WorkingBatch:
        out, _, switch = self.explicit_attempt(w, horizon, self.ring.rows)
        if switch is not None:
            self._switch_time[out.rows] = torch.where(switch, out.t, self._switch_time[out.rows])
        return out

    def explicit_attempt(self, w: WorkingBatch, horizon: int | torch.Tensor,
                         record: torch.Tensor) -> tuple[WorkingBatch, torch.Tensor, torch.Tensor | None]:
        """One explicit attempt of ``w`` (advanced in place), its recording crossings written
        into ``record`` (:meth:`RecordingRing.write`): the batch, the record, and which cues the
        stiffness test switched now (None: no test). Touches no state of the solve itself, so
        that a compiled loop can run it (:mod:`neurodyn.solve.compiled`)."""
        frame = self._frame(w, horizon)
        trial = self.explicit.attempt(w, frame)
        out, failure, record = self._finish(w, frame, trial, record)
        switch = None
        if trial.probe is not None:
            switch = stiffness_switch(out, frame.active, trial.accept, frame.h, *trial.probe, failure)
        return out, record, switch

    def _implicit(self, w: WorkingBatch, horizon: int | torch.Tensor) -> WorkingBatch:
        frame = self._frame(w, horizon)
        return self._finish(w, frame, self.implicit.attempt(w, frame), self.ring.rows)[0]

    def _frame(self, w: WorkingBatch, horizon: int | torch.Tensor) -> Frame:
        """The attempt's frame: a cue beyond the ring's ``horizon`` (a whole window ahead) waits;
        a step that almost reaches the recording limit lands on it."""
        active = (w.status == RUNNING) & (w.idx <= horizon)
        limit = self.times[(w.idx + (self.crossings - 1)).clamp(max=horizon)]
        # Fixed steps divide the recording spacing to 1e-3 (Integration checks), so rounding of
        # t never leaves a sliver of a step.
        if self.landing is not None:  # (and onto the field's next break)
            limit = torch.minimum(limit, self.landing[torch.searchsorted(self.landing, w.t, right=True)])
        gap = limit - w.t
        lands = w.h >= gap * (1 - (1e-6 if self.adaptive else 1e-3))
        h = torch.where(lands, gap, w.h)
        return Frame(active, lands, h, torch.where(lands, limit, w.t + h))

    def _finish(self, w: WorkingBatch, frame: Frame, trial: Trial,
                record: torch.Tensor) -> tuple[WorkingBatch, torch.Tensor, torch.Tensor]:
        """Counters, recording (into ``record``), the new state of accepted cues, and their
        status; also each cue's new failure code (0: none) and the record written. The batch is
        this loop's own: it is advanced in place (cheaper than a copy per attempt); compiled,
        its counters are advanced in a copy (a compiled loop may not write into what it carries)."""
        active, accept, h, h_next = frame.active, trial.accept, frame.h, trial.h_next
        if torch.compiler.is_compiling():
            w.counts = w.counts.clone()
        w.counts[NFE] += active * trial.stages
        w.counts[ACCEPTED] += accept
        w.counts[REJECTED] += active & ~accept
        crossed = (torch.searchsorted(self.times, trial.t_new, right=True) - w.idx).clamp(min=0) * accept
        # On the CPU a look at how many times were crossed is free; on a GPU it would sync.
        n_cross = int(crossed.max()) if self.cheap_sync else self.crossings
        record = self.ring.write(record, w, h, crossed, n_cross, trial.interpolate)
        acc = accept[:, None]
        t_out = torch.where(accept, trial.t_new, w.t)
        # States decaying to 0 go subnormal, which x86 CPUs compute on 100x slower: set to 0.
        y_out = torch.where(acc, flush_subnormal(trial.y_new), w.y)
        f_out = None if trial.f_new is None else torch.where(acc, trial.f_new, w.derivative())
        if self.jumps and self.landing is not None:
            t_out, f_out = self._over_jumps(w, t_out, y_out, f_out, accept)
        status = torch.where(accept & (trial.t_new >= self.t_end), FINISHED, w.status)
        if self.steady is not None:
            speed_f = f_out if f_out is not None else self.field(t_out, y_out, w.rows)
            w.counts[NFE] += 0 if f_out is not None else accept
            at_rest = accept & (status == RUNNING) & self.steady.reached(speed_f, y_out)
            status = torch.where(at_rest & (t_out >= self.constant_after), STEADY, status)
        w.rejected = torch.where(active, ~accept, w.rejected)
        if self._may_fail(active, accept):
            failure = self._failures(w, active, accept, h_next, t_out, trial.y_new)
            w.failure = torch.where(failure > 0, failure, w.failure)
            status = torch.where(failure > 0, FAILED, status)
        else:
            failure = torch.zeros_like(w.failure)
        w.t, w.y, w.f, w.h, w.idx, w.status = t_out, y_out, f_out, h_next, w.idx + crossed, status
        return w, failure, record

    def _may_fail(self, active: torch.Tensor, accept: torch.Tensor) -> bool:
        """Whether a cue may fail on this attempt: inside a compiled loop or on a GPU, always
        (looking costs a sync); on the CPU, only when a cue that stepped rejected its step
        (underflow and non-finite states reject) or some cue may have spent its max_steps
        attempts (a cue attempts at most once per attempt of the solve). This skips a dozen
        kernels on nearly every attempt."""
        if not self.cheap_sync or torch.compiler.is_compiling():
            return True
        return self.attempts > self.max_steps or not torch.equal(accept, active)

    def _failures(self, w: WorkingBatch, active: torch.Tensor, accept: torch.Tensor, h_next: torch.Tensor,
                  t_out: torch.Tensor, y_new: torch.Tensor) -> torch.Tensor:
        """Each cue's failure code on this attempt (0: none): over its step budget, a step size
        that underflowed, or a state that is no longer finite."""
        over = w.counts[ACCEPTED] + w.counts[REJECTED] > self.max_steps
        # Underflow: the step no longer moves time at float64's resolution of the time span.
        tiny = 64 * torch.finfo(torch.float64).eps * torch.clamp_min(t_out.abs(), self.span)
        underflow = ~accept & (h_next <= tiny)
        # (a non-finite derivative makes the next trial's state so; amax keeps NaN: half isfinite's cost)
        finite = y_new.abs().amax(-1) < math.inf
        # A step size that collapsed on non-finite trials, or a fixed step to a non-finite state.
        blown = (underflow | (not self.adaptive)) & ~finite
        failure = torch.where(over, OVER_BUDGET, torch.where(blown, NOT_FINITE, torch.where(underflow, UNDERFLOW, 0)))
        return failure * active


    def _over_jumps(self, w: WorkingBatch, t_out: torch.Tensor, y_out: torch.Tensor, f_out: torch.Tensor | None,
                    accept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Cues that landed just before a jump of the field go on from the jump itself, with the
        derivative there (the step before it saw the field's value before the jump only)."""
        assert self.landing is not None and self.breaks is not None
        at = torch.searchsorted(self.landing, t_out)
        jumped = accept & (self.landing[at] == t_out)
        if not bool(jumped.any()):  # (a host look; only runs whose field jumps take it)
            return t_out, f_out
        t_out = torch.where(jumped, self.breaks[at], t_out)
        if f_out is not None:
            rows = jumped.nonzero().squeeze(-1)
            f_out = f_out.clone()
            f_out[rows] = self.field(t_out[rows], y_out[rows], w.rows[rows])
            w.counts[NFE, rows] += 1
        return t_out, f_out


def _like(saved: Any, current: object) -> Any:
    """A saved value where the solve keeps the current one (a tensor on its device)."""
    return saved.to(current.device) if isinstance(saved, torch.Tensor) and isinstance(current, torch.Tensor) else saved
