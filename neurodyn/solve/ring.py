"""The recording ring: the states on the recording grid, written on the device as cues cross it.

A cue may run at most a window of rows ahead of the slowest one, so memory stays bounded
whatever the number of recording times. Stopped cues are held: a steady cue's last state, a
failed cue's NaN, from the row where it stopped.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .status import WorkingBatch

#: Recording times one step may cross on a GPU (longer steps are cut to the last of them).
CROSSINGS = 4
#: Bytes of recording rows kept on the device by default (a cue may run that far ahead).
RING_BYTES = 2**28


class RecordingRing:
    """Rows of the recording grid ``times`` (float64, T) modulo a ``window`` (default: as many as
    fit :data:`RING_BYTES`, at least ``min_window``), for a batch starting at ``y0`` (B, D)."""

    def __init__(self, times: torch.Tensor, y0: torch.Tensor, window: int | None, min_window: int,
                 max_bytes: int = RING_BYTES) -> None:
        batch, dims = y0.shape
        self.times, self.dtype = times, y0.dtype
        # +inf past the end, as far as a step's crossings may look (no clamp on every attempt)
        self.grid = torch.cat([times, times.new_full((max(len(times), CROSSINGS),), math.inf)])
        self.crossing = torch.arange(max(len(times), CROSSINGS), device=times.device)  # (j = 0, 1, ...)
        self.row_bytes = max(1, batch * dims * y0.element_size())
        self.window = min(len(times), window or self.fitting(min_window, max_bytes))
        self.rows = y0.new_empty(self.window + 1, batch, dims)  # rows modulo the window; last: scratch
        self.rows[0] = y0
        self.any_held = False
        self.held = torch.empty_like(y0)  # a stopped cue's state, held from its stop row on
        self.stop_row = torch.full((batch,), len(times), dtype=torch.long, device=y0.device)  # first row held
        self.reached = 1  # the latest row a stopped cue had reached

    def fitting(self, min_window: int, max_bytes: int) -> int:
        """As many rows as fit ``max_bytes``, at least ``min_window``."""
        return max(min_window, max_bytes // self.row_bytes)

    def refit(self, window: int, done_rows: int, written: int) -> None:
        """Keep ``window`` rows from now on (more where the rows written but not yet read, from
        ``done_rows`` up to ``written``, need them)."""
        window = min(len(self.times), max(window, written - done_rows + 1))
        if window == self.window:
            return
        kept = torch.arange(done_rows, max(done_rows, written), device=self.rows.device)
        rows = self.rows.new_empty(window + 1, *self.rows.shape[1:])
        rows[kept % window] = self.rows[kept % self.window]
        self.rows, self.window = rows, window

    def horizon(self, done_rows: int) -> int:
        """The last row the ring can take while rows before ``done_rows`` are still unread."""
        return min(len(self.times) - 1, done_rows + self.window - 1)

    def write(self, rows: torch.Tensor, w: WorkingBatch, h: torch.Tensor, crossed: torch.Tensor, n_cross: int,
              interpolate: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """Write the states at the (at most ``n_cross``) recording times each cue's accepted step
        crossed, by the step's dense output (``interpolate(theta)``: fractions (b, n, 1) of the
        step to states (b, n, D)), into ``rows`` (the ring's own :attr:`rows`, or a
        compiled loop's carried copy); rows not written go to the scratch row. Returns the rows
        written: ``rows`` itself eagerly, a new buffer inside a compiled function (a compiled
        loop may not write into what it carries)."""
        if n_cross == 0:
            return rows
        # Every crossing at once: the j-th recording time after each cue's last, (b, n_cross).
        j = self.crossing[:n_cross]
        target = w.idx[:, None] + j
        theta = ((self.grid[target] - w.t[:, None]) / h[:, None]).clamp_(0.0, 1.0)
        index = (torch.where(crossed[:, None] > j, target % self.window, self.window),  # (the last row: scratch)
                 w.rows[:, None].expand_as(target))
        value = interpolate(theta[..., None].to(w.y.dtype))
        return rows.index_put(index, value) if torch.compiler.is_compiling() else rows.index_put_(index, value)

    def hold(self, cues: torch.Tensor, stop_rows: torch.Tensor, states: torch.Tensor) -> None:
        """Hold ``states`` for the stopped ``cues`` from their ``stop_rows`` on."""
        self.any_held = True
        self.held[cues] = states
        self.stop_row[cues] = stop_rows
        self.reached = max(self.reached, int(stop_rows.max()))

    def read(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows ``[start, stop)``: their times (in the states' dtype) and states, stopped cues'
        held states in place."""
        rows = torch.arange(start, stop, device=self.rows.device)
        states = self.rows[rows % self.window]
        if self.any_held:
            held = rows[:, None] >= self.stop_row[None, :]
            states = torch.where(held[..., None], self.held[None], states)
        return self.times[start:stop].to(self.dtype), states
