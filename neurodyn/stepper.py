"""Deprecated: the per-cue engine moved to :mod:`neurodyn.solve` (issue 16); these names keep
resolving for one release."""

import warnings

from .solve.control import MAX_GROWTH, MAX_SHRINK, SAFETY
from .solve.per_cue import ADAPTIVE, METHODS, PerCueSolve
from .solve.ring import CROSSINGS, RING_BYTES
from .solve.rosenbrock import DENSE_JACOBIAN_MAX_DIM, JACOBIAN_REUSE, JACOBIAN_ROWS, KRYLOV_FRACTION
from .solve.status import (
    ACCEPTED,
    COUNTERS,
    EXPLICIT,
    FACTORIZATIONS,
    FAILED,
    FAILURES,
    FINISHED,
    IMPLICIT,
    JACOBIANS,
    NFE,
    NOT_FINITE,
    OVER_BUDGET,
    REJECTED,
    RUNNING,
    SOLVES,
    STATUS_NAMES,
    STEADY,
    UNDERFLOW,
    CueStats,
    WorkingBatch,
)
from .solve.step import Field
from .solve.stiffness import CALM_STEPS, STIFF_H_LAMBDA, STIFF_STEPS, STRUGGLE_REJECTS
from .solve.tableau import DOPRI5, TABLEAUS, Tableau

warnings.warn("neurodyn.stepper is deprecated and goes in the next release; import from neurodyn.solve",
              DeprecationWarning, stacklevel=2)

__all__ = ["ACCEPTED", "ADAPTIVE", "CALM_STEPS", "COUNTERS", "CROSSINGS", "CueStats", "DENSE_JACOBIAN_MAX_DIM",
           "DOPRI5", "EXPLICIT", "FACTORIZATIONS", "FAILED", "FAILURES", "FINISHED", "Field", "IMPLICIT",
           "JACOBIANS", "JACOBIAN_REUSE", "JACOBIAN_ROWS", "KRYLOV_FRACTION", "MAX_GROWTH", "MAX_SHRINK", "METHODS",
           "NFE", "NOT_FINITE", "OVER_BUDGET", "PerCueSolve", "REJECTED", "RING_BYTES", "RUNNING", "SAFETY",
           "SOLVES", "STATUS_NAMES", "STEADY", "STIFF_H_LAMBDA", "STIFF_STEPS", "STRUGGLE_REJECTS", "TABLEAUS",
           "Tableau", "UNDERFLOW", "WorkingBatch"]
