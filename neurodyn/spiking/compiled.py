"""Blocks of LIF spiking steps compiled as one function (issue 19, item 2).

An eager spiking step is about twenty small tensor operations dispatched from Python, plus a
``nonzero`` to find who fired: one cue at N = 1,000 spends about 0.1 ms a step on dispatch, not
arithmetic. :func:`compiled_block` runs :data:`BLOCK_STEPS` steps of LIF neurons as one function
compiled by ``torch.compile`` (fused loops on the CPU, Triton kernels on a GPU), from the same
step functions as the eager loop (:func:`~neurodyn.spiking.neurons.lif_drive`,
:func:`~neurodyn.spiking.neurons.lif_step`, the path's filters and scores).

What differs from the eager step, so that one graph serves every block:

- who fired is read with ``topk`` for at most :data:`MAX_SPIKES` neurons per cue and step
  instead of ``nonzero`` (whose size depends on the data); a block in which some cue fired more
  is thrown away and run eagerly (the block is a pure function of the state, so nothing is lost;
  :attr:`~neurodyn.spiking.run.SpikingStats.blocks_redone` counts them);
- the value state ``v`` and its synaptic input ``s`` are stepped every step on both paths (the
  memory path's eager loop advances them lazily in closed form, the same value but for rounding);
- a block shorter than :data:`BLOCK_STEPS` (before a recording time) masks its last steps.

The spikes are the eager loop's wherever a threshold is not crossed within rounding (fused
arithmetic rounds differently in the last bit); tests/test_spiking_compiled.py compares them.

When it is used (``SpikingMemory(compile=...)``): True from the start, False never, None (the
default) for runs of at least :data:`REPAYS_AFTER` steps. Measured at N = 1,000: a step saves
0.06 ms for one cue and 0.38 ms for 64, and compiling takes 35-50 s cold, 5-10 s with inductor's
cache, so a cold compilation repays after 100,000 to 800,000 steps. Only LIF
neurons with rate value neurons and an input constant in time compile
(:func:`compile_reason` says why not otherwise). The backend and the limit on configurations
are :mod:`neurodyn.compiling`'s.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

from ..compiling import call_compiled
from ..errors import SolverWarning
from .neurons import LIF, LIFState, lif_drive, lif_step
from .paths import MemoryPath

if TYPE_CHECKING:
    from .run import SpikingRun

#: Steps per compiled block (unrolled: compiling takes longer the more there are).
BLOCK_STEPS = 10
#: Neurons per cue and step whose spikes a compiled block adds (winner-take-all populations fire
#: one at a time); a block where a cue fires more is run eagerly instead.
MAX_SPIKES = 4
#: Steps of a run from which the default compiles (``SpikingMemory(compile=None)``): where a
#: cold compilation has repaid itself for a single cue (docs/spiking.md).
REPAYS_AFTER = 500_000


class BlockState(NamedTuple):
    """What a block of steps changes: the LIF state, the filtered spike count ``n_hat`` (B, 1),
    ``v`` and ``s`` (B, I), and on the memory path ``y = M v`` and ``z = M s`` (B, N)."""

    lif: LIFState
    n_hat: torch.Tensor
    v: torch.Tensor
    s: torch.Tensor
    y: torch.Tensor | None
    z: torch.Tensor | None


def compile_reason(run: SpikingRun) -> str | None:
    """Why the run's steps cannot be compiled (None: they can)."""
    sp, cue = run.spiking, run.cue
    if not isinstance(sp.neuron, LIF):
        return f"{sp.model} neurons step eagerly (only LIF neurons compile)"
    if sp.value_rate is not None:
        return "spiking value neurons step eagerly"
    if cue.gain is not None:
        return "an input current that varies in time steps eagerly"
    if cue.clamp is not None:
        return "clamped value units step eagerly"
    if run.gradient_drive:
        return "gradient dynamics of a non-bilinear similarity step eagerly"
    return None


def _step(run: SpikingRun, state: BlockState, t: torch.Tensor) -> tuple[BlockState, torch.Tensor, torch.Tensor]:
    """One step from ``t`` (float64, 0-d), as :meth:`SpikingRun.step` takes it: the new state,
    and the first :data:`MAX_SPIKES` neurons that fired per cue with whether each did (B, S)."""
    sp, paths = run.spiking, run.paths
    neuron = sp.neuron
    assert isinstance(neuron, LIF)
    memory = paths if isinstance(paths, MemoryPath) else None
    if memory is not None and state.y is not None and memory.scores.bias is not None:
        h = memory.scores.bias + state.y  # (as MemoryPath.memory_input)
    else:
        h = paths.scores(run.network.activation(state.v))
    spiked, lif = lif_step(lif_drive(h, neuron), state.lif, t, sp.dt, neuron)
    current = paths.current
    v = paths.advance(state.v, state.s, current)
    s = paths.decay(state.s)
    y = z = None
    if memory is not None and state.y is not None and state.z is not None:
        y = paths.advance(state.y, state.z, memory.y_current)
        z = paths.decay(state.z)
    n_hat = run.filters.a_s * state.n_hat
    fired, units = torch.topk(spiked.to(h.dtype), min(MAX_SPIKES, spiked.shape[-1]), dim=-1)
    fired = fired > 0
    count = spiked.sum(-1, keepdim=True).to(h.dtype)
    # The eager loop's arithmetic term for term (a row over n_hat, or times the spike's weight).
    if run.normalized_readout:  # s holds the filtered mean of the fired patterns (SpikingRun._readout)
        n_new = n_hat + count
        scale = torch.where(count > 0, n_hat / n_new, 1.0)
        n_hat = n_new

        def add(value: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            return value * scale + (fired[..., None] * (rows[units] / n_new[..., None])).sum(1)
    else:
        weight = run._spike_weight()

        def add(value: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            return value + (fired[..., None] * (weight * rows[units])).sum(1)

    s = add(s, paths.s.rows)
    if memory is not None and z is not None:
        z = add(z, memory.z.rows)
    over = count[:, 0] > MAX_SPIKES
    return BlockState(lif, n_hat, v, s, y, z), torch.where(fired, units, -1), over


def _block(run: SpikingRun, state: BlockState, step0: torch.Tensor,
           live: torch.Tensor) -> tuple[BlockState, torch.Tensor, torch.Tensor]:
    """:data:`BLOCK_STEPS` steps from step ``step0`` (int64, 0-d), the ones at or after ``live``
    masked: the state after them, the fired units per step (BLOCK_STEPS, B, S; -1 where none)
    and whether some cue fired more than :data:`MAX_SPIKES` at once."""
    units, over = [], torch.zeros((), dtype=torch.bool, device=step0.device)
    for j in range(BLOCK_STEPS):
        t = (step0 + j).to(torch.float64) * run.spiking.dt
        new, fired, too_many = _step(run, state, t)
        on = live > j
        state = BlockState._make(None if old is None else _where(on, n, old) for n, old in zip(new, state, strict=True))
        units.append(torch.where(on, fired, -1))
        over = over | (on & too_many.any())
    return state, torch.stack(units), over


def _where(on: torch.Tensor, new: Any, old: Any) -> Any:
    if isinstance(old, LIFState):
        return LIFState(*(torch.where(on, a, b) for a, b in zip(new, old, strict=True)))
    return torch.where(on, new, old)


def compiled_block(run: SpikingRun, step: int, steps: int) -> torch.Tensor | None:
    """Advance ``run`` by ``steps`` (at most :data:`BLOCK_STEPS`) steps from ``step`` in one
    compiled call; returns the fired units per step (steps, B, :data:`MAX_SPIKES`; -1 where
    none, read by :func:`spike_events`), or None when the block must run eagerly (a cue fired
    more than :data:`MAX_SPIKES` neurons at once, or the block cannot be compiled: then with a
    SolverWarning, and the run steps eagerly from here on)."""
    paths = run.paths
    memory = paths if isinstance(paths, MemoryPath) else None
    if memory is not None:  # (its v and s brought up to date: the block steps them every step)
        memory.catch_up(torch.arange(run.cue.batch, device=paths.v.device))
    state = BlockState(run.lif, run.n_hat, paths.v, paths.s.value, None if memory is None else memory.y,
                       None if memory is None else memory.z.value)
    device = paths.v.device
    out, reason = call_compiled(_block, device, run, state, torch.tensor(step, device=device),
                                torch.tensor(steps, device=device))
    if out is None:
        run.compiled = False
        warnings.warn(f"the spiking steps could not be compiled ({reason}); they run eagerly", SolverWarning,
                      stacklevel=3)
        return None
    new, units, over = out
    if bool(over):
        run.stats.blocks_redone += 1
        return None
    run.lif, run.n_hat = new.lif, new.n_hat
    paths.v, paths.s.value = new.v, new.s
    if memory is not None and new.y is not None and new.z is not None:
        memory.y, memory.z.value = new.y, new.z
        memory.steps += steps
        memory.last.fill_(memory.steps)
    run.stats.steps += steps
    run.stats.compiled_blocks += 1
    return units[:steps]


def spike_events(first_step: int, blocks: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The spikes of consecutive blocks' fired units (from :func:`compiled_block`, the first
    from step ``first_step``) as (step at which they were emitted, cue index, unit), ordered as
    the eager loop gives them: by step, cue, unit (one look for all the blocks of a bin)."""
    units = torch.cat(blocks)
    at, cues, slot = (units >= 0).nonzero(as_tuple=True)  # (by step, then cue)
    unit = units[at, cues, slot]
    order = torch.argsort((at * units.shape[1] + cues) * (int(units.max()) + 1) + unit)
    return at[order] + first_step + 1, cues[order], unit[order]
