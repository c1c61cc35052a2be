"""The two ways a spiking run advances the value neurons and their synaptic input, as strategies
with one interface (:class:`DensePath`, :class:`MemoryPath`).

- ``dense``: any similarity, separation and value Lagrangian. ``v`` and the synaptic input
  ``s`` (B, I) are stepped every step; the similarity is evaluated in fixed tiles of
  ``batch_tile`` cues (padded), so every cue's floating-point results, and hence its spikes, are
  the same whatever batch it runs in; a spike of mu adds row mu of ``P``.
- ``memory``: the event-driven memory-space path for a bilinear similarity (dot, biased dot),
  linear value neurons and no clamp. Then ``y = M v`` and ``z = M s`` obey the same linear
  filters as ``v`` and ``s``, and a spike of mu adds row mu of the Gram matrix ``K = P M'``:
  a step costs O(N) per cue instead of O(N I). ``v`` and ``s`` themselves are advanced lazily,
  in closed form, only when their cue spikes and at recording times.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..network import Cue, Network
from ..numerics import derived
from .batching import tiled, tiled_matmul
from .filters import ExponentialFilters


def value_input(network: Network, weights: torch.Tensor, g: torch.Tensor, tile: int,
                gradient_drive: bool) -> torch.Tensor:
    """The value-space input of memory activity ``weights`` (B, N): ``P' weights``, or with
    gradient dynamics of a non-bilinear similarity (``gradient_drive``) ``sum_mu weights_mu d
    sim(M_mu, g)/dg`` (UHN eq. 2 with ``f`` replaced by the spikes); in fixed tiles of cues."""
    if gradient_drive:
        return tiled(network.drive, tile, g, weights)
    return tiled_matmul(weights, network.P, tile)


class TiledScores:
    """``sim(M, g)`` in fixed tiles of ``tile`` cues; a bilinear similarity as one batched product
    plus its bias ``sim(M, 0)`` (a bilinear similarity is ``M g + sim(M, 0)``)."""

    def __init__(self, network: Network, tile: int) -> None:
        self.network, self.tile = network, tile
        m = network.memories
        self.bias = network.scores(m.new_zeros(1, network.n_features)) if network.similarity.bilinear else None

    def __call__(self, g: torch.Tensor) -> torch.Tensor:
        if self.bias is not None:
            return tiled_matmul(g, self.network.memories.T, self.tile) + self.bias
        return tiled(self.network.scores, self.tile, g)


@dataclass
class Synapse:
    """A filtered spike input: its ``value`` (B, D) and what a spike of memory mu adds to it, row
    mu of ``rows`` (N, D)."""

    value: torch.Tensor
    rows: torch.Tensor


class DensePath:
    """``v`` and ``s`` in value space, stepped every step. ``s0``: the synaptic input at t = 0;
    ``normalized``: the read-out holds ``s / n_hat``, constant between spikes; ``gradient_drive``:
    spikes drive through the similarity's gradient (gradient dynamics of a non-bilinear one)."""

    name = "dense"

    def __init__(self, network: Network, cue: Cue, filters: ExponentialFilters, scores: TiledScores,
                 s0: torch.Tensor, normalized: bool, gradient_drive: bool) -> None:
        self.network, self.cue, self.filters, self.scores = network, cue, filters, scores
        self.normalized, self.gradient_drive, self.tile = normalized, gradient_drive, scores.tile
        self.current: torch.Tensor | float = cue.current if cue.current is not None else 0.0
        self.v = cue.v0.clone()
        self.s = Synapse(s0, network.P)

    @property
    def synapses(self) -> list[Synapse]:
        return [self.s]

    def dense_input(self, weights: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return value_input(self.network, weights, g, self.tile, self.gradient_drive)

    def memory_input(self, value_output: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """``h``: the similarity of what the memory neurons see of ``v``."""
        return self.scores(value_output(self.v))

    def advance(self, x: torch.Tensor, syn: torch.Tensor, current: torch.Tensor | float) -> torch.Tensor:
        """One step of ``v`` (or ``y = M v``) with the synaptic input ``syn`` (a normalized
        read-out holds ``s / n_hat``, constant between spikes)."""
        if self.normalized:
            return self.filters.held(x, syn, current)
        return self.filters.decaying(x, syn, current)

    def decay(self, syn: torch.Tensor) -> torch.Tensor:
        """A synaptic input after one step without spikes (a normalized read-out's ratio does not
        decay)."""
        return syn if self.normalized else self.filters.a_s * syn

    def step(self, t: float) -> None:
        """``v`` over one step from ``t``, from the synaptic input and the input current at its
        start, then the synapse's decay (a normalized read-out's ratio does not decay)."""
        current = self.current if self.cue.gain is None else self.cue.current_at(t)
        assert current is not None  # (a time course comes with a current)
        v = self.advance(self.v, self.s.value, current)
        if self.cue.clamp is not None:
            v = torch.where(self.cue.clamp, self.cue.v0, v)
        self.v = v
        self.s.value = self.decay(self.s.value)

    def catch_up(self, rows: torch.Tensor) -> None:
        """Bring ``v`` and ``s`` of cues ``rows`` up to date (dense: they are)."""

    def value_state(self) -> torch.Tensor:
        return self.v

    def add_spikes(self, counts: torch.Tensor, cues: torch.Tensor, units: torch.Tensor, weight: float,
                   readout: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None,
                   value_output: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Add the spikes (``cues``, ``units`` pairs; ``counts`` (B, N)) to the synapses: the rows
        of each synapse of the neurons that fired, times ``weight``. ``readout``: for a
        normalized read-out, the cues that fired, the factor that rescales their sums to the new
        spike count, and the new count ``n_hat`` per spike (each row is divided by it).
        ``index_add`` adds each cue's rows in the order of ``nonzero`` (by unit), so a cue's sum
        does not depend on the other cues in the batch."""
        if readout is not None:
            fired, scale, n_hat = readout
            for syn in self.synapses:
                syn.value[fired] *= scale
                syn.value = syn.value.index_add(0, cues, syn.rows[units] / n_hat)
        elif self.gradient_drive:
            self.s.value = self.s.value + weight * self.dense_input(counts.to(self.v.dtype), value_output(self.v))
        else:
            for syn in self.synapses:
                syn.value = syn.value.index_add(0, cues, syn.rows[units], alpha=weight)

    def add_expected(self, expected: torch.Tensor, value_output: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Add the mean field's expected spike input ``expected`` (B, N)."""
        self.s.value = self.s.value + self.dense_input(expected, value_output(self.v))

    def state(self) -> dict:
        """What the path changes as it steps (for a run's snapshot)."""
        return {"v": self.v, "s": self.s.value}

    def load_state(self, state: dict) -> None:
        """Take up a :meth:`state` of a path of the same run."""
        self.v, self.s.value = state["v"].to(self.v.device), state["s"].to(self.v.device)


class MemoryPath(DensePath):
    """``y = M v`` and ``z = M s`` stepped every step; ``v`` and ``s`` advanced lazily. Needs a
    bilinear similarity (so ``h = y + sim(M, 0)``), linear value neurons and no clamp."""

    name = "memory"

    def __init__(self, network: Network, cue: Cue, filters: ExponentialFilters, scores: TiledScores,
                 s0: torch.Tensor, normalized: bool, gradient_drive: bool) -> None:
        super().__init__(network, cue, filters, scores, s0, normalized, gradient_drive)
        m, tile = network.memories, self.tile
        self.steps = 0
        self.last = torch.zeros(cue.batch, 1, dtype=torch.int64, device=m.device)  # the step v, s stand at
        # K[mu] = M P_mu: what a spike of mu adds to z = M s; N x N, so kept with the bank until it
        # changes (at N = 10,000 it took 1.06 s of a 1.16 s single-cue run).
        p = network.P
        gram = derived("gram", lambda: p @ m.T, p, m)
        self.y = tiled_matmul(cue.v0, m.T, tile)  # M v0
        self.y_current: torch.Tensor | float = 0.0 if cue.current is None else tiled_matmul(cue.current, m.T, tile)
        self.z = Synapse(tiled_matmul(s0, m.T, tile), gram)  # M s (or M s / n_hat)

    @property
    def synapses(self) -> list[Synapse]:
        return [self.s, self.z]

    def memory_input(self, value_output: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        assert self.scores.bias is not None  # (bilinear)
        return self.y + self.scores.bias

    def step(self, t: float) -> None:
        self.y = self.advance(self.y, self.z.value, self.y_current)
        self.z.value = self.decay(self.z.value)
        self.steps += 1

    def catch_up(self, rows: torch.Tensor) -> None:
        """Advance ``v`` and ``s`` of cues ``rows`` in closed form from their last update to the
        current step: exact, as the input is a decaying (or, for a normalized read-out,
        constant) synaptic current between spikes."""
        steps = self.steps - self.last[rows]
        if not bool((steps > 0).any()):
            return
        fl = self.filters.over(steps.to(self.v.dtype))
        current = self.current if isinstance(self.current, float) else self.current[rows]
        v, s = self.v[rows], self.s.value[rows]
        if self.normalized:
            self.v[rows] = fl.held(v, s, current)
        else:
            self.v[rows] = fl.decaying(v, s, current)
            self.s.value[rows] = fl.a_s * s
        self.last[rows] = self.steps

    def value_state(self) -> torch.Tensor:
        self.catch_up(torch.arange(self.cue.batch, device=self.v.device))
        return self.v.clone()  # updated in place later: the records must not alias it

    def add_spikes(self, counts: torch.Tensor, cues: torch.Tensor, units: torch.Tensor, weight: float,
                   readout: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None,
                   value_output: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.catch_up(torch.unique_consecutive(cues))  # cues come sorted from nonzero
        super().add_spikes(counts, cues, units, weight, readout, value_output)

    def add_expected(self, expected: torch.Tensor, value_output: Callable[[torch.Tensor], torch.Tensor]) -> None:
        # The mean field changes s every step: nothing to gain from laziness.
        self.catch_up(torch.arange(self.cue.batch, device=self.v.device))
        self.z.value = self.z.value + tiled_matmul(expected, self.z.rows, self.tile)  # sum_mu e_mu K[mu]
        super().add_expected(expected, value_output)

    def state(self) -> dict:
        return {**super().state(), "steps": self.steps, "last": self.last, "y": self.y, "z": self.z.value}

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        dev = self.v.device
        self.steps, self.last, self.y, self.z.value = (state["steps"], state["last"].to(dev), state["y"].to(dev),
                                                       state["z"].to(dev))
