"""Deprecated: the tiled pass moved to :mod:`neurodyn.network.tiled` (issue 16); these names keep
resolving for one release."""

import warnings

from .network.tiled import TILE_ELEMENTS, MemoryPass, Partial, finish, scan, stream_memories, streamable, tile_size

warnings.warn("neurodyn.fused is deprecated and goes in the next release; import neurodyn.network.tiled",
              DeprecationWarning, stacklevel=2)

__all__ = ["MemoryPass", "Partial", "TILE_ELEMENTS", "finish", "scan", "stream_memories", "streamable", "tile_size"]
