"""A spiking run's spikes as Dataset variables (events along ``spike``, rates per unit)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from .monitor import LONG_NAMES

if TYPE_CHECKING:
    from ..spiking import SpikingRun

def spike_variables(times: np.ndarray, run: SpikingRun, events: bool = True) -> dict[str, tuple]:
    """The spiking run's records: the population rate (time, cue) in Hz over the bins ending at the
    recording times (NaN at t = 0), per-unit rates when counted, and with ``events`` the spikes
    as ``spike_time`` (ms), ``spike_cue`` and ``spike_unit`` on a ``spike`` dimension, sorted by
    time, cue and unit (the NWB Units layout is one sort away, see docs/analysis.md)."""
    width = np.diff(times)[:, None] * 1e-3  # s

    def per_second(counts: list[torch.Tensor]) -> np.ndarray:
        rates = torch.stack(counts).numpy() / (width if counts[0].ndim == 1 else width[..., None])
        return np.concatenate([np.full_like(rates[:1], np.nan), rates])

    out: dict[str, tuple] = {}
    if run.counts:
        out["population_rate"] = (("time", "cue"), per_second(run.counts),
                                  {"long_name": LONG_NAMES["population_rate"], "units": "Hz"})
    if run.unit_counts and run.count_units is not None:
        out["rate"] = (("time", "cue", "spiking_unit"), per_second(run.unit_counts),
                       {"long_name": LONG_NAMES["rate"], "units": "Hz"})
        out["spiking_unit"] = ("spiking_unit", run.count_units.cpu().numpy(),
                               {"long_name": "memory neuron index", "units": "1"})
    if events:
        t, cue, unit = run.spike_events()
        out["spike_time"] = ("spike", t.numpy(), {"long_name": LONG_NAMES["spike_time"], "units": "ms"})
        out["spike_cue"] = ("spike", cue.numpy(), {"long_name": LONG_NAMES["spike_cue"], "units": "1"})
        out["spike_unit"] = ("spike", unit.numpy(), {"long_name": LONG_NAMES["spike_unit"], "units": "1"})
    return out
