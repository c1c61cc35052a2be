"""Spike events of a spiking run in the layouts of other tools: Neo objects (``to_neo``, needs
``pip install 'neurodyn[neo]'``) and the NWB Units table (``to_nwb_units``, plain numpy arrays, no
pynwb needed). Layouts and examples: docs/analysis.md."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from .analysis import SpikeEvents, spike_events


def _trains(ds: xr.Dataset, sp: SpikeEvents, cue: Any) -> tuple[np.ndarray, np.ndarray]:
    """Spike times (ms) of one cue (a label) sorted by (unit, time), and the end of each unit's
    run in them."""
    mine = sp.cue == ds.indexes["cue"].get_loc(cue)
    time, unit = sp.time[mine], sp.unit[mine]
    order = np.lexsort((time, unit))
    return time[order], np.searchsorted(unit[order], np.arange(sp.n_units), side="right")


def to_neo(ds: xr.Dataset, cue: Any = None) -> Any:
    """The spikes as a ``neo.Block``: one ``neo.Segment`` per cue (only ``cue``, a cue label,
    when given), each with one ``neo.SpikeTrain`` per spiking unit (ms, from 0 to the run's
    duration; annotations ``unit`` and ``cue``), and one ``neo.Group`` per unit that collects its
    trains across cues (trials). Needs neo: ``pip install 'neurodyn[neo]'``."""
    try:
        import neo
        import quantities as pq
    except ImportError as err:
        raise ImportError("to_neo needs neo and quantities: pip install 'neurodyn[neo]'") from err
    sp = spike_events(ds)
    shown = list(ds["cue"].values) if cue is None else [cue]
    block = neo.Block(name=ds.attrs.get("title", "spiking run"), n_spiking_units=sp.n_units,
                      duration_ms=sp.duration)
    groups = [neo.Group(name=f"unit {u}", unit=u) for u in range(sp.n_units)]
    for c in shown:
        label = c.item() if isinstance(c, np.generic) else c
        times, ends = _trains(ds, sp, c)
        segment = neo.Segment(name=f"cue {label}", cue=label)
        for u, (a, b) in enumerate(zip(np.concatenate([[0], ends[:-1]]), ends)):
            train = neo.SpikeTrain(times[a:b] * pq.ms, t_start=0.0 * pq.ms, t_stop=sp.duration * pq.ms, units="ms",
                                   name=f"unit {u}", unit=u, cue=label)
            segment.spiketrains.append(train)
            groups[u].add(train)
        block.segments.append(segment)
    block.groups.extend(groups)
    return block


def to_nwb_units(ds: xr.Dataset, cue: Any = 0) -> dict[str, np.ndarray]:
    """One cue's spikes in the layout of the NWB Units table: ``spike_times`` (float64, seconds,
    all units' times concatenated, sorted within each unit), ``spike_times_index`` (int64, the
    end of each unit's times in ``spike_times``: unit i owns ``spike_times[index[i-1]:index[i]]``,
    as NWB's VectorIndex) and ``id`` (int64 unit ids 0..N-1). Times are from the cue onset."""
    sp = spike_events(ds)
    times, ends = _trains(ds, sp, cue)
    return {"spike_times": times / 1000.0, "spike_times_index": ends.astype(np.int64),
            "id": np.arange(sp.n_units, dtype=np.int64)}
