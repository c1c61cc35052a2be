"""The solver stage: integrating the network's vector field on a recording grid.

One concept per module:

- :mod:`~neurodyn.solve.settings`: :class:`Solver`, the settings object, and the solver errors;
- :mod:`~neurodyn.solve.engines`: :func:`integrate`, which picks the engine for a solver;
- :mod:`~neurodyn.solve.integration`: what an integration yields (:class:`Block`) and counts
  (:class:`SolverStats`);
- :mod:`~neurodyn.solve.per_cue`: the per-cue loop (:class:`PerCueSolve`), with
  :mod:`~neurodyn.solve.tableau` (Runge-Kutta tableaus), :mod:`~neurodyn.solve.explicit` (an
  explicit attempt), :mod:`~neurodyn.solve.rosenbrock` (an implicit attempt),
  :mod:`~neurodyn.solve.control` (step-size control and the steady-state event),
  :mod:`~neurodyn.solve.stiffness` (the switch from explicit to implicit),
  :mod:`~neurodyn.solve.ring` (the recording ring), :mod:`~neurodyn.solve.step` (what one
  attempt is made of) and :mod:`~neurodyn.solve.status` (per-cue status and counters);
- :mod:`~neurodyn.solve.compiled`: blocks of per-cue explicit attempts compiled by
  ``torch.compile``, and the rule for when a run compiles;
- :mod:`~neurodyn.solve.torchdiffeq_engine`: torchdiffeq with statistics and steady-state stopping.

A new explicit method is one :class:`~neurodyn.solve.tableau.Tableau` and one row of
``TABLEAUS``; a new implicit one is a class with ``attempt(batch, frame) -> Trial``.
"""

from .engines import PerCueIntegration, integrate
from .integration import Block, Integration, SolverStats
from .per_cue import PerCueSolve
from .settings import ENGINES, METHODS, Solver, SolverError, SolverWarning
from .status import EXPLICIT, FAILED, FINISHED, IMPLICIT, RUNNING, STATUS_NAMES, STEADY, CueStats
from .torchdiffeq_engine import TorchdiffeqIntegration

__all__ = ["Block", "CueStats", "ENGINES", "EXPLICIT", "FAILED", "FINISHED", "IMPLICIT", "Integration", "METHODS",
           "PerCueIntegration", "PerCueSolve", "RUNNING", "STATUS_NAMES", "STEADY", "Solver", "SolverError",
           "SolverStats", "SolverWarning", "TorchdiffeqIntegration", "integrate"]
