"""What to record and on which time grid: :class:`Monitor` (declared before the run, as with
Brian2's monitors), the recordable variables and their names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ..errors import positive_number, whole_number

if TYPE_CHECKING:
    pass

from ..names import VARIABLES
from ..reprs import concise_repr


class Recorded(NamedTuple):
    """One recorded variable: its dimensions, its CF ``long_name`` and ``units``. Dimension names
    in capitals are decided by the monitor: ``UNIT`` (``unit``, or ``unit_subset`` for a subset of
    value units) and ``MEMORY`` (``memory``, or ``rank`` for the top-k memories)."""

    dims: tuple[str, ...]
    long_name: str
    units: str = "1"


#: Every variable a run can record, one row each: a new variable is one row here and the lines
#: that compute it (:class:`~neurodyn.record.observables.Observables`, or the spiking record).
RECORDED = {
    "v": Recorded(("time", "cue", "UNIT"), "value neuron state v"),
    "g": Recorded(("time", "cue", "UNIT"), "value neuron activation g = dL_v/dv"),
    "h": Recorded(("time", "cue", "MEMORY"), "memory neuron state h"),
    "f": Recorded(("time", "cue", "MEMORY"), "memory neuron activation f = dL_h/dh (separation)"),
    "memory_index": Recorded(("time", "cue", "MEMORY"), "index of the k-th most active memory neuron (by f)"),
    "energy": Recorded(("time", "cue"), "energy E (UHN eq. 3; eq. 4 for fast memory neurons)"),
    "energy_value": Recorded(("time", "cue"), "value population energy v.g - L_v(v)"),
    "energy_memory": Recorded(("time", "cue"), "memory population energy h.f - L_h(h) (reduced: -L_h(sim(M, g)))"),
    "energy_interaction": Recorded(("time", "cue"), "interaction energy -sum_mu f_mu sim(M_mu, g)"),
    "energy_input": Recorded(("time", "cue"), "input energy -I.g"),
    "overlap": Recorded(("time", "cue", "pattern"), "cosine overlap of g with stored pattern P_mu"),
    "speed": Recorded(("time", "cue"), "max over units of |dx/dt| (value and memory neurons)"),
    "rate": Recorded(("time", "cue", "spiking_unit"), "firing rate of memory neuron in the bin ending at the time",
                     "Hz"),
    "population_rate": Recorded(("time", "cue"),
                                "firing rate of the memory population (all neurons) in the bin ending at the time",
                                "Hz"),
    "spike_time": Recorded(("spike",), "spike time", "ms"),
    "spike_cue": Recorded(("spike",), "cue (trial) of the spike"),
    "spike_unit": Recorded(("spike",), "memory neuron that fired"),
}
#: The variables' long names (from :data:`RECORDED`).
LONG_NAMES = {name: row.long_name for name, row in RECORDED.items()}


@dataclass(frozen=True)
class Monitor:
    """What to record and when.

    ``variables``: names from :data:`VARIABLES`. ``n_times`` evenly spaced times from 0 to the
    run's duration, or explicit ``times`` (starting at 0). ``units``: value-unit subset for
    ``v``/``g``. ``memories``: memory subset for ``h``/``f``; or ``top_k``: record only the k most
    active memories per cue and time (with their indices). ``overlap_with``: stored patterns for
    ``overlap`` (default: all, which costs B x N per time point). Spiking runs also record
    ``spikes`` (events on a ``spike`` dimension) and ``rate`` (binned per memory neuron of
    ``memories``, or all); the population rate comes with either. ``time_units``: the unit of the
    ``time`` coordinate (the network's time constants share it). ``recall_overlap``: a spiking run
    with targets gets ``recall_time``, the first recorded time from which ``g`` stays at a cosine
    overlap of at least this with its target. ``max_bytes``: the most the record may take in
    memory (None: no bound); a run whose record would take more is refused before it starts
    (:class:`~neurodyn.errors.RecordTooLarge`, which says what to reduce), unless it streams to
    a store.
    """

    __repr__ = concise_repr

    variables: tuple[str, ...] = ("v", "energy", "speed")
    n_times: int = 101
    times: tuple[float, ...] | None = None
    units: tuple[int, ...] | None = None
    memories: tuple[int, ...] | None = None
    top_k: int | None = None
    overlap_with: tuple[int, ...] | None = None
    time_units: str = "ms"
    recall_overlap: float = 0.9
    max_bytes: int | None = 2**28

    def __post_init__(self) -> None:
        if isinstance(self.variables, str):
            object.__setattr__(self, "variables", (self.variables,))
        unknown = set(self.variables) - set(VARIABLES)
        if unknown:
            raise ValueError(f"cannot record {sorted(unknown)}; known variables: {', '.join(VARIABLES)}")
        if self.times is None:
            whole_number("n_times", self.n_times, 2)
        if self.top_k is not None and self.memories is not None:
            raise ValueError("give either memories= (a fixed subset) or top_k=, not both")
        if self.top_k is not None:
            whole_number("top_k", self.top_k, 1)
        if self.max_bytes is not None:
            whole_number("max_bytes", self.max_bytes, 1)
        if not (isinstance(self.recall_overlap, (int, float)) and -1.0 <= self.recall_overlap <= 1.0):
            raise ValueError(f"recall_overlap is a cosine overlap in [-1, 1], got {self.recall_overlap!r}")
        for name in ("times", "units", "memories", "overlap_with"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(value))

    def grid(self, duration: float) -> np.ndarray:
        """The recording times for a run of ``duration``."""
        duration = positive_number("duration", duration)
        if self.times is None:
            return np.linspace(0.0, duration, self.n_times)
        t = np.asarray(self.times, dtype=float)
        if t[0] != 0 or np.any(np.diff(t) <= 0) or t[-1] > duration:
            raise ValueError("times must start at 0, increase strictly and end by the duration")
        return t


def spiking_monitor(duration: float, dt: float, max_times: int = 101) -> Monitor:
    """The default record of a spiking run: ``v``, energy and spikes on at most ``max_times``
    evenly spaced times that fall on the ``dt`` grid."""
    n_steps = round(duration / dt)
    if n_steps < 1 or abs(n_steps * dt - duration) > 1e-6 * duration:
        raise ValueError(f"a spiking run's duration ({duration:g} ms) must be a positive multiple of dt ({dt:g} ms)")
    n_bins = max(d for d in range(1, min(n_steps, max_times - 1) + 1) if n_steps % d == 0)
    return Monitor(("v", "energy", "spikes"), n_times=n_bins + 1)
