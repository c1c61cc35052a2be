"""What to record, on which time grid, and how it becomes an ``xarray.Dataset``.

Declare a :class:`Monitor` before the run (as with Brian2's monitors), then read the result by
name against the ``time`` coordinate. Dimensions: ``time``, ``cue``, ``unit`` (value neurons),
``unit_subset`` (a recorded subset of them), ``memory`` (memory neurons), ``rank`` (top-k memories)
and ``pattern`` (stored patterns that
overlaps are taken with); ``stored`` indexes the run's memories (``memories``, kept for
:func:`open_run`). Every variable carries CF ``units`` and ``long_name`` attributes.

Recorded quantities are reduced on the fly (index subsets, top-k, overlaps, energy), so what is
kept per time point is what was asked for, not the whole state.
"""

from .monitor import VARIABLES, Monitor, spiking_monitor
from .netcdf import load_netcdf, save_netcdf
from .observables import Observables
from .recorder import Recorder
from .reopen import Run, open_run
from .spikes import spike_variables
from .store import ZarrStore

__all__ = ["VARIABLES", "Monitor", "Observables", "Recorder", "Run", "ZarrStore", "load_netcdf", "open_run",
           "save_netcdf", "spike_variables", "spiking_monitor"]
