"""Where a run's time series go when they should not stay in memory: :class:`ZarrStore`."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..reprs import concise_repr


@dataclass(frozen=True)
class ZarrStore:
    """Stream the recorded time series to a new Zarr store at ``path``, ``chunk_times`` recorded
    times at a time, so that memory stays bounded whatever the run's length. The run's result is
    then the store opened lazily (``complete`` = 1 once the run finished). An interrupted run
    leaves the times written so far, with ``complete`` = 0, and a checkpoint beside the store:
    the same run again resumes from it and completes the store to the uninterrupted run's
    (:mod:`~neurodyn.record.resume`)."""

    __repr__ = concise_repr

    path: str | os.PathLike
    chunk_times: int = 64

    def __post_init__(self) -> None:
        if isinstance(self.chunk_times, bool) or not isinstance(self.chunk_times, int) or self.chunk_times < 1:
            raise ValueError(f"chunk_times must be a whole number >= 1, got {self.chunk_times!r}")
