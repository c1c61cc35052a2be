"""neurodyn: associative memory as continuous-time neural dynamics.

Data flow: stimulus -> (codec) -> cue -> :class:`Network` + :class:`Solver` -> recorded
``xarray.Dataset`` -> analysis / plots.

A lazy facade (PEP 562): ``import neurodyn`` loads no solver, xarray or torchdiffeq; each public
name, and each submodule reached as an attribute (``neurodyn.analysis``), is imported on first use.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the submodule that defines it.
_EXPORTS = {
    "Solver": "solve", "SolverError": "solve", "SolverWarning": "solve",
    "make_lagrangian": "lagrangians",
    "PRESETS": "network", "Cue": "network", "Cues": "network", "Network": "network", "State": "network",
    "Timecourse": "network", "from_config": "network", "from_preset": "network",
    "Monitor": "record", "ZarrStore": "record", "load_netcdf": "record", "open_run": "record", "save_netcdf": "record",
    "make_similarity": "similarity",
    "simulate": "simulation",
}

__all__ = [
    "PRESETS", "Cue", "Cues", "Monitor", "Network", "Solver", "SolverError", "SolverWarning", "State", "Timecourse",
    "ZarrStore", "from_config", "from_preset", "load_netcdf", "make_lagrangian", "make_similarity", "open_run",
    "save_netcdf", "simulate",
]

if TYPE_CHECKING:  # what type checkers and editors see
    from .lagrangians import make_lagrangian as make_lagrangian
    from .network import PRESETS as PRESETS
    from .network import Cue as Cue
    from .network import Cues as Cues
    from .network import Network as Network
    from .network import State as State
    from .network import Timecourse as Timecourse
    from .network import from_config as from_config
    from .network import from_preset as from_preset
    from .record import Monitor as Monitor
    from .record import ZarrStore as ZarrStore
    from .record import load_netcdf as load_netcdf
    from .record import open_run as open_run
    from .record import save_netcdf as save_netcdf
    from .similarity import make_similarity as make_similarity
    from .simulation import simulate as simulate
    from .solve import Solver as Solver
    from .solve import SolverError as SolverError
    from .solve import SolverWarning as SolverWarning


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
