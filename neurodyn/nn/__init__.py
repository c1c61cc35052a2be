"""Associative memories as ``torch.nn`` layers, trained with the rest of a model.

- :class:`AssociativeMemory`: a bank of memories (and projections) held as parameters;
- :class:`Hopfield`: hopfield-layers' layer (stored, state and projection patterns as inputs,
  heads, layer norms, learned maps);
- :class:`OneShot` and :class:`ContinuousTime`: how they recall (UHN eq. 1, iterated, or UHN's
  projection dynamics integrated by torchdiffeq, with backpropagation or the adjoint).

Any similarity and separation of the library serves (by name or object).
"""

from .layers import AssociativeMemory, Hopfield
from .recall import ContinuousTime, OneShot, recall

__all__ = ["AssociativeMemory", "ContinuousTime", "Hopfield", "OneShot", "recall"]
