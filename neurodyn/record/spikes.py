"""A spiking run's spikes as Dataset variables (events along ``spike``, rates per unit)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from .monitor import RECORDED

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

    values: dict[str, np.ndarray] = {}
    if run.counts:
        values["population_rate"] = per_second(run.counts)
    if run.unit_counts and run.count_units is not None:
        values["rate"] = per_second(run.unit_counts)
    if events:
        t, cue, unit = run.spike_events()
        values.update(spike_time=t.numpy(), spike_cue=cue.numpy(), spike_unit=unit.numpy())
    out: dict[str, tuple] = {name: (RECORDED[name].dims, value, {"long_name": RECORDED[name].long_name,
                                                                 "units": RECORDED[name].units})
                             for name, value in values.items()}
    if "rate" in values and run.count_units is not None:
        out["spiking_unit"] = ("spiking_unit", run.count_units.cpu().numpy(),
                               {"long_name": "memory neuron index", "units": "1"})
    return out
