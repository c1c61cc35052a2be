"""The spiking run loop: a memory population that spikes, stepped on a fixed grid (DESIGN.md
section 7).

The rate model of :mod:`neurodyn.network` is the mean field of a spiking one. Here the memory
neurons spike and drive an exponential synaptic current ``s`` of the value neurons::

    tau_s ds/dt = -s + sum_spikes w P_mu delta(t - t_spike)      tau_v dv/dt = s - v + I

with ``h = sim(M, g)`` the memory neurons' input (``g = dL_v/dv``, UHN eq. 2 with fast memory).
The neuron models are in :mod:`~neurodyn.spiking.neurons`, the dense and memory-space paths in
:mod:`~neurodyn.spiking.paths`, the exact filters in :mod:`~neurodyn.spiking.filters`. The linear
filters are integrated exactly over a step with the spike input held at the step's start, so
``dt`` only sets how finely spikes and the nonlinear drive are resolved.

Random numbers come from :func:`neurodyn.rng.counter_uniform` keyed on (seed, cue id, step,
neuron), so runs are reproducible from one seed and batch-invariant.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from ..network import Cue, Network
from ..rng import counter_uniform
from ..solve import Block
from .compiled import BLOCK_STEPS, REPAYS_AFTER, compile_reason, compiled_block, spike_events
from .config import SpikingMemory
from .filters import ExponentialFilters
from .neurons import (
    LIF,
    STREAM_VALUE,
    LIFState,
    Poisson,
    RandomKey,
    Rate,
    lif_drive,
    lif_step,
    poisson_counts,
    poisson_step,
    rate_step,
)
from .paths import DensePath, MemoryPath, TiledScores, value_input


@dataclass
class SpikingStats:
    """Counts for one spiking run."""

    steps: int = 0
    spikes: int = 0
    value_clipped: int = 0  # value neuron-steps with g < 0 (spiking value neurons fire at 0)
    setup_time: float = 0.0  # of wall_time: initial state, and the Gram matrix on the memory path
    wall_time: float = 0.0
    compiled_blocks: int = 0  # blocks of steps run compiled (neurodyn.spiking.compiled)
    blocks_redone: int = 0  # compiled blocks thrown away and run eagerly (a cue fired too many at once)


class SpikingRun:
    """A running spiking simulation: iterate it for :class:`~neurodyn.solve.Block` records
    of ``v`` on the recording grid; read ``spikes``, ``counts`` and ``stats`` as it goes.

    ``times``: the recording grid (ms, multiples of ``dt``). ``cue_ids``: the global ids that key
    the random numbers (default ``0..B-1``). ``count_units``: memory units whose spike counts per
    recording bin are kept (None: none; the population total is always kept). ``keep_events``:
    keep every spike (time, cue, unit) for :meth:`spike_events`.
    """

    def __init__(self, network: Network, cue: Cue, spiking: SpikingMemory, times: torch.Tensor, seed: int,
                 cue_ids: torch.Tensor | None = None, count_units: torch.Tensor | None = None,
                 keep_events: bool = True) -> None:
        self._started = time.perf_counter()  # wall_time counts the set-up too (the Gram matrix)
        spiking.check_network(network)
        if not (isinstance(seed, int) and seed >= 0):
            raise ValueError(f"a spiking run needs a seed >= 0 (its random numbers are keyed on it), got {seed!r}")
        self.network, self.cue, self.spiking, self.seed = network, cue, spiking, seed
        self.device, self.dtype = network.memories.device, network.memories.dtype
        batch = cue.batch
        ids = torch.arange(batch) if cue_ids is None else torch.as_tensor(cue_ids)
        self.cue_ids = ids.to(self.device, torch.int64)
        if self.cue_ids.shape != (batch,):
            raise ValueError(f"cue_ids must have one id per cue ({batch}), got shape {tuple(self.cue_ids.shape)}")
        if len(torch.unique(self.cue_ids)) != batch:
            raise ValueError("cue_ids must be distinct: two cues with one id would draw the same random numbers")
        grid = times.detach().double().cpu()
        steps = grid / spiking.dt
        # The grid may be float32: allow its rounding (1e-4 of a step), not a real mismatch.
        if (steps - steps.round()).abs().max() > 1e-4 or grid[0] != 0:
            raise ValueError(f"the recording times must start at 0 and be multiples of dt={spiking.dt:g} ms; "
                             "choose n_times (or times) accordingly")
        self.times = times
        self.record_steps = steps.round().long().tolist()
        reason = spiking.memory_path_reason(network, cue)
        if spiking.path == "memory" and reason is not None:
            raise ValueError(f"the memory-space path does not apply: {reason}; use path='dense'")
        self.path = "memory" if spiking.path in ("memory", "auto") and reason is None else "dense"
        self.filters = ExponentialFilters(spiking.dt, network.tau_v, spiking.tau_s)
        self.count_units, self.keep_events = count_units, keep_events
        self.stats = SpikingStats()
        self.spikes: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (step, cue, unit), on CPU
        self.counts: list[torch.Tensor] = []  # population counts per bin (B,)
        self.unit_counts: list[torch.Tensor] = []  # counts of count_units per bin (B, U)
        self.normalized_readout = isinstance(spiking.neuron, LIF) and spiking.neuron.readout_rate is None
        self.gradient_drive = network.dynamics == "gradient" and not network.similarity.bilinear
        self._setup()
        reason = compile_reason(self)
        if spiking.compile and reason is not None:
            raise ValueError(f"compile=True does not apply: {reason}; drop compile")
        self.compiled = reason is None and (spiking.compile or (
            spiking.compile is None and self.record_steps[-1] >= REPAYS_AFTER))
        self.stats.setup_time = time.perf_counter() - self._started
        self._position: tuple[int, int] | None = None  # the next recording index and step to take

    # ------------------------------------------------------------------ state
    def _weights(self, h: torch.Tensor) -> torch.Tensor:
        """The separation ``f`` the Poisson rates follow (UHN-normalized when the network is)."""
        f = self.network.normalized(self.network.separate(h))
        if (f < 0).any():
            raise ValueError(f"the separation {self.network.separation.describe()} gives negative "
                             "activations, which cannot be firing rates")
        return f

    def _spike_weight(self) -> float:
        """What one spike adds to the synaptic input (times ``P_mu``)."""
        neuron = self.spiking.neuron
        rate = neuron.r_max if isinstance(neuron, Poisson) else neuron.readout_rate if isinstance(neuron, LIF) else None
        return 1.0 if rate is None else 1e3 / (rate * self.spiking.tau_s)

    def _setup(self) -> None:
        """The initial state: the neurons', the synaptic input ``s(0)`` and the path's."""
        net, cue, sp = self.network, self.cue, self.spiking
        batch, n = cue.batch, net.n_memories
        zeros = torch.zeros(batch, n, dtype=self.dtype, device=self.device)
        self.n_hat = torch.zeros(batch, 1, dtype=self.dtype, device=self.device)  # filtered spike count
        cue_weight = 0.0  # what the cue's own synaptic input s0 = v0 - I weighs in s(0)
        self.value_trace = None
        if sp.value_rate is not None:
            self.value_trace = net.activation(cue.v0).clamp_min(0.0)
        scores = TiledScores(net, sp.batch_tile)
        g0 = self._value_output(cue.v0)
        h0 = scores(g0)
        if isinstance(sp.neuron, LIF):
            self.lif = LIFState(torch.full_like(zeros, sp.neuron.reset), torch.full_like(zeros, -math.inf),
                                zeros[:, :1].clone())
            f0 = zeros
            cue_weight = sp.neuron.cue_weight
            if self.normalized_readout:
                self.n_hat = self.n_hat + cue_weight
        else:
            f0 = self._weights(h0)  # s(0): the mean-field equilibrium of the synapse given v(0)
        current = cue.current_at(0.0)
        s0 = cue.v0 if current is None else cue.v0 - current
        # (A normalized read-out keeps s / n_hat.)
        path_class = MemoryPath if self.path == "memory" else DensePath
        s = value_input(net, f0, g0, sp.batch_tile, self.gradient_drive) + cue_weight * s0
        if self.normalized_readout and cue_weight > 0:
            s = s / cue_weight
        self.paths = path_class(net, cue, self.filters, scores, s, self.normalized_readout, self.gradient_drive)

    def _value_output(self, v: torch.Tensor) -> torch.Tensor:
        """What the memory neurons see: ``g`` or the filtered value spikes."""
        return self.network.activation(v) if self.value_trace is None else self.value_trace

    def value_state(self) -> torch.Tensor:
        """``v`` now (on the memory path, every cue's ``v`` is first brought up to date)."""
        return self.paths.value_state()

    # ------------------------------------------------------------------ one step
    def memory_spikes(self, h: torch.Tensor, step: int, t: float) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Spike counts per neuron (int64) by the neuron model's step function and, for the mean
        field, the expected counts instead."""
        sp = self.spiking
        neuron = sp.neuron
        if isinstance(neuron, LIF):
            spikes, self.lif = lif_step(lif_drive(h, neuron), self.lif, t, sp.dt, neuron)
            return spikes.to(torch.int64), None
        f = self._weights(h)
        if isinstance(neuron, Rate):
            return torch.zeros_like(f, dtype=torch.int64), rate_step(f, sp.dt, sp.tau_s)
        return poisson_step(f, RandomKey(self.seed, self.cue_ids, step), sp.dt, neuron), None

    def _value_spikes(self, step: int) -> None:
        """Advance the filtered spike trains of Poisson value neurons (when they spike)."""
        sp = self.spiking
        assert self.value_trace is not None and sp.value_rate is not None
        g = self.network.activation(self.value_state())
        self.stats.value_clipped += int((g < 0).sum())
        uniform = counter_uniform(self.seed, STREAM_VALUE, self.cue_ids, step, g.shape[-1], dtype=g.dtype)
        counts = poisson_counts(sp.value_rate * g.clamp_min(0.0), uniform, sp.dt)
        a_s = self.filters.a_s
        self.value_trace = a_s * self.value_trace + counts.to(g.dtype) * (1e3 / (sp.value_rate * sp.tau_s))

    def step(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Advance from ``t = step dt`` to ``t + dt``; returns the spikes emitted at ``t + dt`` as
        (cue index, unit) pairs, ordered by cue then unit (a neuron that fired twice, twice)."""
        sp = self.spiking
        t = step * sp.dt
        h = self.paths.memory_input(self._value_output)
        counts, expected = self.memory_spikes(h, step, t)
        # v over (t, t + dt] from the synaptic input at t; then the spikes at t + dt.
        self.paths.step(t)
        self.n_hat = self.filters.a_s * self.n_hat
        self.stats.steps += 1
        cues, units = counts.nonzero(as_tuple=True)
        if len(cues) and isinstance(self.spiking.neuron, Poisson):
            repeats = counts[cues, units]
            if bool((repeats > 1).any()):
                cues, units = cues.repeat_interleave(repeats), units.repeat_interleave(repeats)
        if expected is not None:
            self.paths.add_expected(expected, self._value_output)
        elif len(cues):
            self.paths.add_spikes(counts, cues, units, self._spike_weight(), self._readout(cues), self._value_output)
        if self.value_trace is not None:
            self._value_spikes(step)
        return cues, units

    def _readout(self, cues: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """For a normalized read-out, the spikes' new count: the cues that fired, the factor from
        their old sums to the new, and the new count per spike (None otherwise)."""
        if not self.normalized_readout:
            return None
        fired = torch.unique_consecutive(cues)  # cues come sorted from nonzero
        old = self.n_hat[fired]
        self.n_hat = self.n_hat.index_add(0, cues, torch.ones(len(cues), 1, dtype=self.dtype, device=self.device))
        return fired, old / self.n_hat[fired], self.n_hat[cues]

    # ------------------------------------------------------------------ the loop
    def _bin(self, events: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> None:
        """Count one recording bin's spikes (population, and the counted units) and keep them."""
        batch = self.cue.batch
        events_cpu = [(a.cpu(), b.cpu(), c.cpu()) for a, b, c in events]
        cues = torch.cat([e[1] for e in events_cpu]) if events else torch.zeros(0, dtype=torch.long)
        self.counts.append(torch.bincount(cues, minlength=batch))
        if self.count_units is not None:
            units = torch.cat([e[2] for e in events_cpu]) if events else torch.zeros(0, dtype=torch.long)
            position = torch.full((self.network.n_memories,), -1, dtype=torch.long)
            position[self.count_units] = torch.arange(len(self.count_units))
            keep = position[units] >= 0
            flat = cues[keep] * len(self.count_units) + position[units][keep]
            self.unit_counts.append(torch.bincount(flat, minlength=batch * len(self.count_units)).reshape(batch, -1))
        if self.keep_events:
            self.spikes.extend(events_cpu)
        self.stats.spikes += len(cues)

    def __iter__(self) -> Iterator[Block]:
        """Yields ``v`` at each recording time; after :meth:`restore`, at those after the snapshot's."""
        start = self._started
        if self._position is None:
            self._position = (1, 0)
            yield Block(self.times[:1], self.value_state()[None], None)
        first, step = self._position
        for k in range(first, len(self.record_steps)):
            events: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
            blocks: list[torch.Tensor] = []  # compiled blocks' fired units, from step blocks_from
            blocks_from = step
            while step < self.record_steps[k]:
                steps = min(BLOCK_STEPS, self.record_steps[k] - step) if self.compiled else 1
                fired = compiled_block(self, step, steps) if self.compiled else None
                if fired is not None:
                    blocks_from = blocks_from if blocks else step
                    blocks.append(fired)
                    step += steps
                    continue
                if blocks:  # (a block redone eagerly: the spikes stay in order)
                    events.append(spike_events(blocks_from, blocks))
                    blocks = []
                for _ in range(steps):
                    cues, units = self.step(step)
                    step += 1
                    if len(cues):
                        events.append((torch.full_like(cues, step), cues, units))
            if blocks:
                events.append(spike_events(blocks_from, blocks))
            self._bin(events)
            v = self.value_state()
            if not torch.isfinite(v).all():
                raise FloatingPointError(f"the value state became NaN or infinite by t={float(self.times[k]):g} ms")
            self._position = (k + 1, step)
            self.stats.wall_time = time.perf_counter() - start
            yield Block(self.times[k:k + 1], v[None], None)

    #: What the run changes as it steps, besides its path's state.
    _SNAPSHOT = ("_position", "n_hat", "value_trace", "spikes", "counts", "unit_counts")

    def snapshot(self) -> dict:
        """Everything the run needs to go on from its last yield, bit for bit (its random numbers
        are keyed on the step, so they need no state); valid until it goes on."""
        return {**{name: getattr(self, name) for name in self._SNAPSHOT}, "paths": self.paths.state(),
                "lif": getattr(self, "lif", None), "stats": dataclasses.asdict(self.stats),
                "clock": time.perf_counter() - self._started}

    def restore(self, snapshot: dict) -> None:
        """Go on from a :meth:`snapshot` of a run of the same problem."""
        dev = self.device
        trace = snapshot["value_trace"]
        self._position, self.n_hat = snapshot["_position"], snapshot["n_hat"].to(dev)
        self.value_trace = None if trace is None else trace.to(dev)
        # (spike events and bin counts are kept on the CPU)
        self.spikes, self.counts, self.unit_counts = snapshot["spikes"], snapshot["counts"], snapshot["unit_counts"]
        self.paths.load_state(snapshot["paths"])
        if snapshot["lif"] is not None:
            self.lif = LIFState(*(x.to(dev) for x in snapshot["lif"]))
        self.stats = SpikingStats(**snapshot["stats"])
        self._started = time.perf_counter() - snapshot["clock"]  # (the run's clock goes on)

    def spike_events(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """All spikes so far as (time in ms, cue index, unit), sorted by time, cue, unit."""
        if not self.spikes:
            empty = torch.zeros(0, dtype=torch.long)
            return empty.double(), empty, empty
        steps, cues, units = (torch.cat(parts) for parts in zip(*self.spikes, strict=True))
        return steps.double() * self.spiking.dt, cues, units
