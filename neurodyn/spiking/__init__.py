"""Spiking memory populations and their fixed-step stochastic stepping (DESIGN.md section 7).

One concept per module:

- :mod:`~neurodyn.spiking.neurons`: the neuron models (:class:`Poisson`, :class:`Rate`,
  :class:`LIF`) as parameters, states and pure step functions;
- :mod:`~neurodyn.spiking.config`: :class:`SpikingMemory`, how a population spikes and is
  stepped (one object for :func:`neurodyn.simulate`), and :func:`make_spiking`;
- :mod:`~neurodyn.spiking.paths`: the dense and the memory-space paths, as strategies;
- :mod:`~neurodyn.spiking.filters`: the synaptic and value filters, integrated exactly;
- :mod:`~neurodyn.spiking.batching`: products in fixed tiles, for batch invariance;
- :mod:`~neurodyn.spiking.run`: the run loop (:class:`SpikingRun`), its bins and spike events.
"""

from .batching import tiled, tiled_matmul
from .config import MODELS, PATHS, SpikingMemory, make_spiking
from .neurons import (
    LIF,
    LIFState,
    NeuronModel,
    Poisson,
    RandomKey,
    Rate,
    lif_drive,
    lif_step,
    poisson_counts,
    poisson_step,
    population_counts,
    rate_step,
)
from .run import SpikingRun, SpikingStats

__all__ = ["LIF", "LIFState", "MODELS", "NeuronModel", "PATHS", "Poisson", "RandomKey", "Rate", "SpikingMemory",
           "SpikingRun", "SpikingStats", "lif_drive", "lif_step", "make_spiking", "poisson_counts", "poisson_step",
           "population_counts", "rate_step", "tiled", "tiled_matmul"]
