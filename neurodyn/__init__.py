"""neurodyn: associative memory as continuous-time neural dynamics.

Data flow: stimulus -> (codec) -> cue -> :class:`Network` + :class:`Solver` -> recorded
``xarray.Dataset`` -> analysis / plots.
"""

from .integrate import Solver, SolverError, SolverWarning
from .lagrangians import make_lagrangian
from .network import PRESETS, Cue, Network, State, from_config, from_preset
from .record import Monitor, load_netcdf, save_netcdf
from .similarity import make_similarity
from .simulation import simulate

__version__ = "0.1.0"

__all__ = [
    "Cue", "Monitor", "Network", "PRESETS", "Solver", "SolverError", "SolverWarning", "State", "from_config",
    "from_preset", "load_netcdf", "make_lagrangian", "make_similarity", "save_netcdf", "simulate",
]
