"""Counter-based random numbers: a uniform variate is a hash of (seed, cue, step, neuron).

Spiking runs draw every random number from its coordinates instead of from a stateful stream, so
a cue's spikes do not depend on which other cues share its batch, on the batch's order, or on
the device (DESIGN.md section 7). torch's generators are stateful streams; Philox-style counter
generators exist inside torch but are not exposed per element, so this module hashes the
counters itself.

The hash is a chain of 32-bit integer finalizer rounds (xor-shift and multiply, the construction
of MurmurHash3's ``fmix32`` and of Wellons' ``lowbias32``) computed in int64 with the values kept
below 2^32 and the multipliers below 2^31, so no product overflows int64 on any device. Each
coordinate is folded in with its own round, which makes the variates of neighbouring counters
(cue k and k + 1, step n and n + 1) look independent; ``tests/test_spiking.py`` checks
uniformity and the absence of correlation between neighbours.
"""

from __future__ import annotations

import torch

_MASK32 = 0xFFFFFFFF
# Odd multipliers below 2^31 (so that a 32-bit value times one stays below 2^63).
_MULTIPLIERS = (0x7FEB352D, 0x5BD1E995, 0x2C1B3C6D, 0x297A2D39)
_INV_2_32 = 1.0 / 4294967296.0


def _mix(x: torch.Tensor) -> torch.Tensor:
    """One avalanche round on 32-bit values held in int64."""
    for mult in _MULTIPLIERS[:2]:
        x = x ^ (x >> 16)
        x = (x * mult) & _MASK32
    return x ^ (x >> 15)


def _fold(state: torch.Tensor, value: torch.Tensor | int) -> torch.Tensor:
    """Absorb one counter into the hash state."""
    return _mix((state ^ ((torch.as_tensor(value, dtype=torch.int64, device=state.device) & _MASK32)
                          * _MULTIPLIERS[2] & _MASK32)) + _MULTIPLIERS[3] & _MASK32)


def counter_uniform(seed: int, stream: int, cues: torch.Tensor, step: int, n_units: int,
                    dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Uniform variates in [0, 1) of shape (len(cues), n_units), one per (cue, unit), for a step.

    ``seed``: the run's seed. ``stream``: separates independent uses within one run (memory
    spikes, value spikes). ``cues``: the cues' global ids (int64, on the device that the result
    should live on). ``step``: the integration step number. The variate of (cue, unit) depends
    only on (seed, stream, cue id, step, unit).
    """
    cues = cues.to(torch.int64)
    units = torch.arange(n_units, dtype=torch.int64, device=cues.device)
    head = _fold(_fold(_fold(torch.tensor(seed & _MASK32, device=cues.device), seed >> 32), stream), step)
    x = _fold(_fold(head.expand(len(cues), 1), cues[:, None]), units[None, :])
    # 32 random bits give a grid of 2^-32: finer than any spike probability we use.
    return x.to(dtype) * _INV_2_32
