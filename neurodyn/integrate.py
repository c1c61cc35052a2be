"""Deprecated: solver settings and engines moved to :mod:`neurodyn.solve` (issue 16); these names
keep resolving for one release (an integration is now made by :func:`neurodyn.solve.integrate`)."""

import warnings

from .names import ADAPTIVE_METHODS, ENGINES, FIXED_METHODS, METHODS
from .solve.integration import Block, Integration, SolverStats
from .solve.settings import Solver, SolverError, SolverWarning

warnings.warn("neurodyn.integrate is deprecated and goes in the next release; import from neurodyn.solve",
              DeprecationWarning, stacklevel=2)

__all__ = ["ADAPTIVE_METHODS", "Block", "ENGINES", "FIXED_METHODS", "Integration", "METHODS", "Solver",
           "SolverError", "SolverStats", "SolverWarning"]
