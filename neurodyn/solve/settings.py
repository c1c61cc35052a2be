"""Solver settings: the method, its tolerances or step, the step budget, the steady-state event
and the engine, in one frozen object (diffrax's ``solver`` and ``stepsize_controller`` in one)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import SolverError as SolverError  # (defined there: the CLI knows them without torch)
from ..errors import SolverWarning as SolverWarning
from ..errors import positive_number, whole_number
from ..names import ADAPTIVE_METHODS, ENGINES, METHODS
from ..reprs import concise_repr
from . import per_cue


@dataclass(frozen=True)
class Solver:
    """Solver settings.

    ``rtol``/``atol`` apply to adaptive methods; ``step_size`` to fixed-step ones (default: the
    recording grid's smallest spacing; it must divide every spacing). ``max_steps`` bounds a
    cue's attempted steps (per-cue engine) or the run's accepted steps (torchdiffeq, checked
    after each block). ``steady_tol`` enables steady-state
    stopping when ``max |dx/dt| <= steady_tol * max(1, max |x|)`` (None: integrate to the end).
    ``method``: ``"auto"`` (dopri5, switching a cue to rosenbrock23 when it turns out stiff),
    ``"rosenbrock23"`` (implicit, L-stable), or another name of :data:`METHODS`.
    ``engine``: ``"per-cue"`` (:mod:`neurodyn.solve.per_cue`: a step size, method, status and
    statistics per cue), ``"torchdiffeq"`` (one step size for the batch), or ``"auto"``: per-cue
    where it has the method (auto, dopri5, rosenbrock23, euler, midpoint, rk4), torchdiffeq
    otherwise. ``sync_every``: per-cue steps
    between two looks of the host at the batch (default: every step on the CPU, where a look
    costs nothing, and every 16 on a GPU, where it waits for the device). ``block_size``:
    recording intervals per torchdiffeq call when stopping at steady state (default: a twentieth
    of the grid). ``compile``: run the per-cue engine's blocks of explicit steps as one function
    compiled by ``torch.compile`` (:mod:`neurodyn.solve.compiled`): True from the start, False
    never, None (default) when the run turns out long enough to repay the compilation
    (:data:`~neurodyn.solve.compiled.REPAYS_AFTER` attempts projected).
    """

    __repr__ = concise_repr

    method: str = "auto"
    rtol: float = 1e-6
    atol: float = 1e-8
    step_size: float | None = None
    max_steps: int = 100_000
    steady_tol: float | None = None
    engine: str = "auto"
    sync_every: int | None = None
    block_size: int | None = None
    compile: bool | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown solver method {self.method!r}; known: {', '.join(METHODS)}")
        if self.engine not in ENGINES:
            raise ValueError(f"unknown solver engine {self.engine!r}; known: {', '.join(ENGINES)}")
        if self.engine == "torchdiffeq" and self.method in ("auto", "rosenbrock23"):
            raise ValueError(f"torchdiffeq has no {self.method!r} method (it has no implicit one); "
                             "use engine='per-cue' or the method dopri5")
        if self.engine == "per-cue" and self.method not in per_cue.METHODS:
            raise ValueError(f"the per-cue engine has {', '.join(per_cue.METHODS)}, not {self.method!r}; "
                             "use engine='torchdiffeq'")
        if self.compile is not None and not isinstance(self.compile, bool):
            raise ValueError(f"compile must be True, False or None (when it repays), got {self.compile!r}")
        if self.compile and not self.per_cue:
            raise ValueError("compile applies to the per-cue engine's blocks of steps; torchdiffeq runs eagerly "
                             "(use engine='per-cue' or drop compile)")
        for name in ("sync_every", "block_size", "max_steps"):  # (only max_steps has no "off")
            if getattr(self, name) is not None or name == "max_steps":
                whole_number(name, getattr(self, name), 1)
        for name in ("rtol", "atol", "step_size", "steady_tol"):  # (only the tolerances have no "off")
            if getattr(self, name) is not None or name in ("rtol", "atol"):
                positive_number(f"solver {name}", getattr(self, name))

    @property
    def adaptive(self) -> bool:
        return self.method in ADAPTIVE_METHODS

    @property
    def per_cue(self) -> bool:
        """Whether the per-cue engine runs this solver."""
        return self.engine == "per-cue" or (self.engine == "auto" and self.method in per_cue.METHODS)

    def describe(self) -> dict:
        out = {"method": self.method, "max_steps": self.max_steps, "steady_tol": self.steady_tol,
               "engine": "per-cue" if self.per_cue else "torchdiffeq"}
        if self.per_cue:
            out["sync_every"] = self.sync_every
            if self.compile is not None:
                out["compile"] = self.compile
        if self.adaptive:
            out.update(rtol=self.rtol, atol=self.atol)
        else:
            out["step_size"] = self.step_size
        return out
