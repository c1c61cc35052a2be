"""The model: value and memory populations coupled through stored patterns; energy and dynamics.

Notation of DESIGN.md section 2 and UHN section 4. Memories ``M`` (N x I), projection ``P``
(N x O, ``P = M`` for autoassociation), value state ``v`` with activation ``g = dL_v/dv``, memory
state ``h`` with activation ``f = dL_h/dh`` (the separation function). Energy (UHN eq. 3)::

    E(v, h) = [v.g - L_v(v)] + [h.f - L_h(h)] - sum_mu f_mu sim(M_mu, g) - I.g

Gradient dynamics (UHN eq. 2, completed)::

    tau_v dv/dt = sum_mu f_mu dsim_mu/dg - v + I        tau_h dh/dt = sim(M, g) - h

Projection dynamics replace the first drive by ``P' f``. With fast memory neurons
(``tau_h=None``) ``h = sim(M, g)`` and the energy is the reduced one (UHN eq. 4)::

    E(v) = v.g - L_v(v) - L_h(sim(M, g)) - I.g

A clamp mask holds chosen value units at their initial values (``dv/dt = 0`` there).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import torch

from ..lagrangians import Lagrangian, Quadratic, make_lagrangian
from ..numerics import divide_nonzero, flush_subnormal, flush_subnormal_nonnegative
from ..similarity import Similarity, make_similarity
from . import theory, tiled
from .cue import Cue, State, as_queries, check_finite, cue_from_queries

if TYPE_CHECKING:
    from ..shard import Shards

Dynamics = Literal["gradient", "projection"]
READOUTS = ("identity", "sign", "binary")


@dataclass
class Network:
    """A Universal Hopfield Network as two neuron populations.

    Parameters
    ----------
    memories: stored patterns ``M``, one per row (N x I).
    similarity: a :class:`~neurodyn.similarity.Similarity` or its name (``"dot"``, ``"manhattan"``...).
    separation: the memory population's Lagrangian or its name (``"softmax:100"``, ``"polynomial:3"``).
    value_lagrangian: the value population's Lagrangian (default quadratic, ``g = v``).
    projection: ``P`` (N x O) for heteroassociation; None means ``P = M``.
    dynamics: ``"gradient"`` (descends the energy) or ``"projection"`` (``tau_v dv/dt = P'f - v + I``).
    tau_v, tau_h: time constants; ``tau_h=None`` makes memory neurons fast (reduced dynamics, eq. 4).
    normalize_separation: divide ``f`` by its sum before projecting (UHN appendix E). It has no
        Lagrangian, so it is allowed only with projection dynamics and feedforward retrieval.
    readout: ``"identity"``, ``"sign"`` (classical HN) or ``"binary"`` (threshold 0.5, SDM),
        applied to ``g`` to give the recalled pattern.
    """

    # The similarity and the Lagrangians may be given by name; they are held as objects
    # (__post_init__ builds them), as the type checker sees through the __init__ stated below.
    memories: torch.Tensor
    similarity: Similarity = field(default_factory=lambda: make_similarity("dot"))
    separation: Lagrangian = field(default_factory=lambda: make_lagrangian("softmax"))
    value_lagrangian: Lagrangian = field(default_factory=Quadratic)
    projection: torch.Tensor | None = None
    dynamics: Dynamics = "gradient"
    tau_v: float = 1.0
    tau_h: float | None = None
    normalize_separation: bool = False
    readout: str = "identity"
    name: str = "custom"
    # One rank's shard of a bank split across processes, and how it combines with the others
    # (neurodyn.scale.shard); None: this network holds the whole bank.
    shards: Shards | None = field(default=None, repr=False)

    if TYPE_CHECKING:  # what the dataclass's __init__ accepts (it is generated at run time)
        def __init__(self, memories: torch.Tensor, similarity: Similarity | str = ...,
                     separation: Lagrangian | str = ..., value_lagrangian: Lagrangian | str = ...,
                     projection: torch.Tensor | None = None, dynamics: Dynamics = "gradient", tau_v: float = 1.0,
                     tau_h: float | None = None, normalize_separation: bool = False, readout: str = "identity",
                     name: str = "custom", shards: Shards | None = None) -> None: ...

    def __post_init__(self) -> None:
        m = self.memories
        if not isinstance(m, torch.Tensor):
            m = torch.as_tensor(m)
        if m.is_complex():
            raise ValueError(f"memories must be real, got {str(m.dtype).replace('torch.', '')}")
        if not m.is_floating_point():
            m = m.to(torch.get_default_dtype())
        if m.ndim != 2:
            raise ValueError(f"memories must be a 2-D tensor (N memories x I features), got shape {tuple(m.shape)}")
        if m.shape[0] == 0 or m.shape[1] == 0:
            raise ValueError(f"memories are empty (shape {tuple(m.shape)}): store at least one pattern")
        check_finite("memories", m)
        self.memories = m
        if self.projection is not None:
            p = torch.as_tensor(self.projection)
            if p.is_complex():
                raise ValueError(f"projection must be real, got {str(p.dtype).replace('torch.', '')}")
            p = p.to(device=m.device, dtype=m.dtype)
            if p.ndim != 2 or p.shape[0] != m.shape[0]:
                raise ValueError(f"projection must have one row per memory ({m.shape[0]}), got shape {tuple(p.shape)}")
            check_finite("projection", p)
            self.projection = p
        self.similarity = make_similarity(self.similarity)
        self.separation = make_lagrangian(self.separation)
        self.value_lagrangian = make_lagrangian(self.value_lagrangian)
        if self.dynamics not in ("gradient", "projection"):
            raise ValueError(f"unknown dynamics {self.dynamics!r}; known: gradient, projection")
        for label, tau in (("tau_v", self.tau_v), ("tau_h", self.tau_h)):
            if tau is not None and not (math.isfinite(tau) and tau > 0):
                raise ValueError(f"{label} must be > 0, got {tau}")
        if self.readout not in READOUTS:
            raise ValueError(f"unknown readout {self.readout!r}; known: {', '.join(READOUTS)}")
        if self.normalize_separation and self.dynamics == "gradient" and not self.separation.sums_to_one:
            raise ValueError(f"normalizing {self.separation.describe()} has no Lagrangian (it breaks f = dL_h/dh); "
                             "use dynamics='projection' or feedforward retrieval")
        if self.shards is not None:
            self.shards.check(self)

    # ----------------------------------------------------------------- shapes and facts
    @property
    def n_memories(self) -> int:
        return self.memories.shape[0]

    @property
    def n_stored(self) -> int:
        """Memories in the whole bank (more than ``n_memories`` on one rank of a sharded bank)."""
        return self.n_memories if self.shards is None else self.shards.n_total

    @property
    def n_features(self) -> int:
        return self.memories.shape[1]

    @property
    def P(self) -> torch.Tensor:
        """The projection matrix (``M`` itself when autoassociative)."""
        return self.memories if self.projection is None else self.projection

    @property
    def fast_memory(self) -> bool:
        return self.tau_h is None

    @property
    def recurrent(self) -> bool:
        """Whether the projected output lives in the value space, so the loop can close."""
        return self.P.shape[1] == self.n_features

    @property
    def is_gradient_flow(self) -> bool:
        """True when the integrated vector field is the energy gradient of eq. 3 (or eq. 4)."""
        return not theory.projection_departures(self)

    @property
    def lyapunov_guaranteed(self) -> bool:
        """Whether theory guarantees ``dE/dt <= 0`` (UHN appendix A): a gradient flow with convex,
        smooth Lagrangians (and a differentiable similarity along the trajectory), each declared."""
        return not self.lyapunov_obstacles() and not theory.lyapunov_unknowns(self)

    def lyapunov_known(self, clamped: bool = False, timed: bool = False) -> bool:
        """Whether theory decides either way: false when nothing refutes the guarantee but a part
        does not declare a fact it needs (a user's Lagrangian or similarity)."""
        return bool(self.lyapunov_obstacles(clamped, timed)) or not theory.lyapunov_unknowns(self, clamped)

    def lyapunov_reason(self, clamped: bool = False, timed: bool = False) -> str:
        """A sentence on why the energy is, or is not, guaranteed to decrease, or why that is not
        known (``clamped``: some value units are held; ``timed``: the input current varies in time)."""
        obstacles = self.lyapunov_obstacles(clamped, timed)
        if obstacles:
            return "; ".join(obstacles)
        unknowns = theory.lyapunov_unknowns(self, clamped)
        if unknowns:
            return ("not known: the model does not declare " + "; ".join(unknowns)
                    + " (declare it: UserLagrangian(..., convex=, smooth=), user_similarity(..., smooth=))")
        return "gradient flow of the energy with convex, smooth Lagrangians: dE/dt <= 0"

    def lyapunov_obstacles(self, clamped: bool = False, timed: bool = False) -> list[str]:
        """What stands between these dynamics and ``dE/dt <= 0`` (empty: guaranteed;
        :func:`neurodyn.network.theory.lyapunov_obstacles`)."""
        return theory.lyapunov_obstacles(self, clamped, timed)

    def integrable(self) -> Network:
        """The network whose rate dynamics :func:`~neurodyn.simulation.simulate` integrates
        (:func:`neurodyn.network.theory.integrable`: the exact Manhattan distance's gradient
        dynamics smoothed)."""
        return theory.integrable(self)

    def retrieval_obstacle(self, with_current: bool = False) -> str:
        """Why these dynamics cannot retrieve a pattern whatever the solver (empty: none known;
        :func:`neurodyn.network.theory.retrieval_obstacle`)."""
        return theory.retrieval_obstacle(self, with_current)

    def __repr__(self) -> str:
        """One line (the dataclass's would print the memories): what :meth:`describe` says."""
        d = self.describe()
        memory = "fast memory" if self.tau_h is None else f"tau_h={self.tau_h:g}"
        hetero = ", heteroassociative" if d["heteroassociative"] else ""
        sharded = f", a shard of {self.n_stored}" if self.shards is not None else ""
        return (f"Network({d['name']}: N={d['n_memories']}{sharded}, I={d['n_features']}{hetero}, {d['similarity']}, "
                f"{d['separation']}, {d['dynamics']} dynamics, tau_v={self.tau_v:g}, {memory}, "
                f"{str(self.memories.dtype).replace('torch.', '')} on {self.memories.device})")

    def describe(self) -> dict:
        """Model provenance as a JSON-serializable dict."""
        return {
            "name": self.name,
            "n_memories": self.n_memories,
            "n_features": self.n_features,
            "heteroassociative": self.projection is not None,
            "similarity": self.similarity.name,
            "separation": self.separation.describe(),
            "value_lagrangian": self.value_lagrangian.describe(),
            "dynamics": self.dynamics,
            "tau_v": self.tau_v,
            "tau_h": self.tau_h,
            "normalize_separation": self.normalize_separation,
            "readout": self.readout,
            **({} if self.shards is None else self.shards.describe(self)),
        }

    def settings(self) -> dict[str, str | float | int]:
        """The model as flat, plain values (a run file's ``model_*`` attributes: netCDF holds them
        as they are, no JSON), from which :func:`~neurodyn.network.from_settings` rebuilds it
        given the memories. A Lagrangian is its name and one entry per parameter."""
        out: dict[str, str | float | int] = {
            "name": self.name, "n_memories": self.n_memories, "n_features": self.n_features,
            "heteroassociative": int(self.projection is not None), "similarity": self.similarity.name,
            "dynamics": self.dynamics, "tau_v": float(self.tau_v),
            "normalize_separation": int(self.normalize_separation), "readout": self.readout}
        if self.tau_h is not None:
            out["tau_h"] = float(self.tau_h)
        for role, lagrangian in (("separation", self.separation), ("value_lagrangian", self.value_lagrangian)):
            out[role] = lagrangian.name
            out.update({f"{role}_{key}": value for key, value in lagrangian.params().items()})
        return out

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Network:
        """A copy (of the same class) with memories and projection on another device or dtype."""
        projection = None if self.projection is None else self.projection.to(device=device, dtype=dtype)
        return dataclasses.replace(self, memories=self.memories.to(device=device, dtype=dtype),
                                   projection=projection)

    # ----------------------------------------------------------------- building blocks
    def activation(self, v: torch.Tensor) -> torch.Tensor:
        """``g = dL_v/dv``."""
        return self.value_lagrangian.activation(v)

    def scores(self, g: torch.Tensor) -> torch.Tensor:
        """``sim(M, g)``, shape (B, N) (on a shard: its memories' scores)."""
        if self.shards is not None:
            return self.shards.scores(self, g)
        return self.similarity(self.memories, g)

    def separate(self, h: torch.Tensor) -> torch.Tensor:
        """``f = dL_h/dh`` (the separation function; on a shard: its part of the whole ``f``)."""
        if self.shards is not None:
            return self.shards.separate(self, h)
        return self.separation.activation(h)

    def normalized(self, f: torch.Tensor) -> torch.Tensor:
        """``f`` divided by its sum when ``normalize_separation`` (UHN appendix E). The sum may be
        negative for signed separations; only an all-zero ``f`` is left as is."""
        return divide_nonzero(f, f.sum(-1, keepdim=True)) if self.normalize_separation else f

    def project(self, f: torch.Tensor) -> torch.Tensor:
        """``P' f`` (with UHN appendix E normalization when requested)."""
        if self.shards is not None:
            return self.shards.project(self, f)
        return self.normalized(f) @ self.P

    def drive(self, g: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """The memory population's input to the value neurons: ``sum_mu f_mu dsim_mu/dg``
        (gradient dynamics, UHN eq. 2) or ``P' f`` (projection dynamics)."""
        if self.dynamics == "gradient":
            grad = self.similarity.gradient(self.memories, g, f)
            return grad if self.shards is None else self.shards.sum(grad)
        return self.project(f)

    def bank(self, project: bool = False) -> tiled.Bank:
        """What the tiled pass over the memories needs (:class:`neurodyn.network.tiled.Bank`).
        ``project``: the drive is ``P' f`` whatever the dynamics (feedforward retrieval)."""
        return tiled.Bank(self.similarity, self.separation, self.memories, self.P,
                          project or self.dynamics == "projection", self.normalize_separation)

    def can_stream(self, project: bool = False) -> bool:
        """Whether the memory population may be read in tiles: fast memory neurons, and a bank
        the pass handles (:meth:`neurodyn.network.tiled.Bank.streamable`)."""
        return self.fast_memory and self.bank(project).streamable()

    def streams(self, batch: int, project: bool = False) -> bool:
        """Whether a fast memory population is read in tiles (:mod:`neurodyn.network.tiled`): when
        the B x N scores would not fit one tile and the separation streams."""
        if self.shards is not None:
            return self.shards.streams(self, batch, project)
        return tiled.tile_size(batch, self.n_memories) < self.n_memories and self.can_stream(project)

    def memory_pass(self, g: torch.Tensor, *, drive: bool = True, lagrangian: bool = True, top_k: int | None = None,
                    project: bool = False, tile: int | None = None) -> tiled.MemoryPass:
        """The tiled pass over the bank (:func:`neurodyn.network.tiled.stream_memories`; on a
        shard, combined with the others'). ``project``: the drive is ``P' f`` whatever the
        dynamics."""
        if self.shards is not None:
            return self.shards.memory_pass(self, g, drive=drive, lagrangian=lagrangian, top_k=top_k,
                                           project=project, tile=tile)
        return tiled.stream_memories(self.bank(project), g, drive=drive, lagrangian=lagrangian, top_k=top_k,
                                     tile=tile)

    def memory_lagrangian(self, h: torch.Tensor) -> torch.Tensor:
        """``L_h(h)`` summed over the memory population, shape (B,)."""
        if self.shards is not None:
            return self.shards.memory_lagrangian(self, h)
        return self.separation.value(h)

    def top_memories(self, f: torch.Tensor, h: torch.Tensor, k: int) -> tuple[torch.Tensor, ...]:
        """The ``k`` largest activations ``f`` per cue (ties to the lower memory index): their
        values, the memory states ``h`` there, and the memory indices (on a shard: merged over all)."""
        if self.shards is not None:
            return self.shards.merged_top(f, h, k)
        order = torch.argsort(f, dim=-1, descending=True, stable=True)[..., :k]
        return f.gather(-1, order), h.gather(-1, order), order

    def read(self, g: torch.Tensor) -> torch.Tensor:
        """The recalled pattern from the value activations."""
        if self.readout == "sign":
            return torch.where(g >= 0, 1.0, -1.0).to(g.dtype)
        if self.readout == "binary":
            return (g >= 0.5).to(g.dtype)
        return g

    def initial_state(self, cue: Cue) -> State:
        """``v(0)`` from the cue; slow memory neurons start at ``cue.h0``, or at equilibrium,
        ``h(0) = sim(M, g(0))``."""
        h0 = None if self.fast_memory else cue.h0 if cue.h0 is not None else self.scores(self.activation(cue.v0))
        return State(cue.v0, h0)

    # ----------------------------------------------------------------- dynamics and energy
    def velocity(self, state: State, cue: Cue, t: torch.Tensor | float | None = None) -> State:
        """``(dv/dt, dh/dt)`` of the gradient or projection dynamics at time ``t`` (a number, or
        one per cue; needed only when the cue's input current varies in time)."""
        v = state.v
        g = self.activation(v)
        if self.streams(len(g)):  # fast memory neurons only
            dv = self.memory_pass(g, lagrangian=False).get_drive() - v
        else:
            h = self.scores(g) if self.fast_memory else state.memory()
            # A softmax's far memories underflow into subnormal f, slow on CPUs: set to 0.
            f = self.separate(h)
            f = flush_subnormal_nonnegative(f) if self.separation.nonnegative else flush_subnormal(f)
            dv = self.drive(g, f) - v
        current = cue.current_at(t)
        if current is not None:
            dv = dv + current
        if cue.clamp is not None:
            dv = dv.masked_fill(cue.clamp, 0.0)
        if self.tau_v != 1.0:  # (a division per right-hand side otherwise)
            dv = dv / self.tau_v
        dh = None if self.tau_h is None else (self.scores(g) - state.memory()) / self.tau_h
        return State(dv, dh)

    def energy(self, state: State, cue: Cue | None = None,
               t: torch.Tensor | float | None = None) -> dict[str, torch.Tensor]:
        """Named energy components (B,) and their ``total`` (UHN eq. 3, or eq. 4 for fast memory),
        at time ``t`` where the cue's input current varies in time.

        ``value`` = v.g - L_v(v); ``memory`` = h.f - L_h(h) (full) or -L_h(sim(M, g)) (reduced);
        ``interaction`` = -sum f_mu sim_mu (full only); ``input`` = -I(t).g.
        """
        v = state.v
        g = self.activation(v)
        parts = {"value": self.value_lagrangian.legendre(v, g)}
        if self.streams(len(g)):
            parts["memory"] = -self.memory_pass(g, drive=False).get_lagrangian()
        elif self.fast_memory:
            parts["memory"] = -self.memory_lagrangian(self.scores(g))
        else:
            h = state.memory()
            f = self.separate(h)
            parts["memory"] = self.separation.legendre(h, f)
            parts["interaction"] = -(f * self.scores(g)).sum(-1)
        current = None if cue is None else cue.current_at(t)
        parts["input"] = torch.zeros_like(parts["value"]) if current is None else -(current * g).sum(-1)
        parts["total"] = functools.reduce(torch.add, parts.values())
        return parts

    # ----------------------------------------------------------------- feedforward retrieval
    def retrieve(self, queries: torch.Tensor, steps: int = 1) -> torch.Tensor:
        """The UHN update ``z = read(P' sep(sim(M, q)))`` (UHN eq. 1), iterated ``steps`` times.

        Iterating is the discrete-time map ``q <- read(P' sep(sim(M, q)))`` and needs ``O = I``.
        The value Lagrangian is not applied: ``q`` enters the similarity directly, as in the papers.
        """
        q = self.check_queries(queries)
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if steps > 1 and not self.recurrent:
            raise ValueError("iterated retrieval needs a projection with as many columns as features")
        for _ in range(steps):
            if self.streams(len(q), project=True):
                q = self.read(self.memory_pass(q, lagrangian=False, project=True).get_drive())
            else:
                q = self.read(self.project(self.separate(self.scores(q))))
        return q

    def check_queries(self, queries: torch.Tensor, name: str = "cue") -> torch.Tensor:
        """Validate a batch of queries (B, I) and move it to the memories' device and dtype."""
        return as_queries(queries, self.n_features, self.memories, name)

    def make_cue(self, queries: torch.Tensor, mode: str = "initial", clamp: torch.Tensor | None = None,
                 strength: float = 1.0) -> Cue:
        """Turn queries into a :class:`~neurodyn.network.cue.Cue`.

        ``mode``: ``"initial"`` (``v(0) = q``), ``"current"`` (``I = strength * q``, ``v(0) = 0``)
        or ``"both"``. ``clamp``: a boolean mask (I,) or (B, I) of units held at ``v(0)``.
        """
        q = self.check_queries(queries)
        if self.projection is not None and self.dynamics == "gradient":
            raise ValueError("gradient dynamics descend the energy of M alone and would ignore the projection P; "
                             "use dynamics='projection' for heteroassociative recall")
        if not self.recurrent:
            raise ValueError(f"dynamics need the projection's output ({self.P.shape[1]} columns) to live in the "
                             f"value space ({self.n_features} units); use Network.retrieve for one-shot "
                             "heteroassociation into another space")
        return cue_from_queries(q, mode, clamp, strength)
