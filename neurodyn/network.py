"""Value and memory populations coupled through stored patterns: energy, dynamics, presets.

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
import math
from dataclasses import dataclass, field
from typing import Literal

import torch

from . import fused
from .lagrangians import Lagrangian, Quadratic, Tanh, make_lagrangian
from .numerics import flush_subnormal, flush_subnormal_nonnegative
from .similarity import Similarity, make_similarity

Dynamics = Literal["gradient", "projection"]
READOUTS = ("identity", "sign", "binary")
#: Temperature at which the integrated gradient dynamics of the exact Manhattan similarity are
#: smoothed (docs/theory.md, "Non-smooth similarities": the exact gradient jumps, so the flow
#: slides along switching surfaces and explicit solvers crawl; measured in docs/performance.md).
MANHATTAN_SMOOTHING = 0.05


def check_finite(name: str, x: torch.Tensor) -> None:
    """Raise ``ValueError`` naming ``name`` when ``x`` holds NaN or infinite values."""
    if not torch.isfinite(x).all():
        bad = (~torch.isfinite(x)).sum().item()
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s)")


@dataclass
class Cue:
    """How a batch of queries drives the network (DESIGN.md section 2, "Cues").

    ``v0``: initial value state (B, I). ``current``: persistent input current ``I`` (B, I) or None.
    ``clamp``: boolean mask (B, I) of value units held at ``v0``, or None.
    """

    v0: torch.Tensor
    current: torch.Tensor | None = None
    clamp: torch.Tensor | None = None

    @property
    def batch(self) -> int:
        return self.v0.shape[0]

    def select(self, rows: torch.Tensor | None) -> Cue:
        """The cues at ``rows`` (all of them for None)."""
        if rows is None:
            return self
        return Cue(*(None if x is None else x[rows] for x in (self.v0, self.current, self.clamp)))


@dataclass
class State:
    """The network state: value neurons ``v`` (B, I) and, for slow memory neurons, ``h`` (B, N)."""

    v: torch.Tensor
    h: torch.Tensor | None = None


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

    memories: torch.Tensor
    similarity: Similarity | str = "dot"
    separation: Lagrangian | str = "softmax"
    value_lagrangian: Lagrangian | str = field(default_factory=Quadratic)
    projection: torch.Tensor | None = None
    dynamics: Dynamics = "gradient"
    tau_v: float = 1.0
    tau_h: float | None = None
    normalize_separation: bool = False
    readout: str = "identity"
    name: str = "custom"
    sharded = False  # memories are one rank's shard (neurodyn.shard)

    def __post_init__(self) -> None:
        m = self.memories
        if not isinstance(m, torch.Tensor):
            m = torch.as_tensor(m)
        if not m.is_floating_point():
            m = m.to(torch.get_default_dtype())
        if m.ndim != 2:
            raise ValueError(f"memories must be a 2-D tensor (N memories x I features), got shape {tuple(m.shape)}")
        if m.shape[0] == 0 or m.shape[1] == 0:
            raise ValueError(f"memories are empty (shape {tuple(m.shape)}): store at least one pattern")
        check_finite("memories", m)
        self.memories = m
        if self.projection is not None:
            p = torch.as_tensor(self.projection).to(device=m.device, dtype=m.dtype)
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

    # ----------------------------------------------------------------- shapes and facts
    @property
    def n_memories(self) -> int:
        return self.memories.shape[0]

    @property
    def n_stored(self) -> int:
        """Memories in the whole bank (more than ``n_memories`` on one rank of a sharded bank)."""
        return self.n_memories

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

    def _projection_departures(self) -> list[str]:
        """Why projection dynamics differ from the gradient dynamics (empty when they coincide)."""
        if self.dynamics == "gradient":
            return []
        out = []
        if self.projection is not None:
            out.append("heteroassociative P != M")
        if not self.similarity.bilinear:
            out.append(f"the gradient of {self.similarity.name} is not M_mu, so P'f is not -dE/dg")
        if self.normalize_separation and not self.separation.sums_to_one:
            out.append(f"{self.separation.describe()} is normalized outside its Lagrangian")
        return out

    @property
    def is_gradient_flow(self) -> bool:
        """True when the integrated vector field is the energy gradient of eq. 3 (or eq. 4)."""
        return not self._projection_departures()

    @property
    def lyapunov_guaranteed(self) -> bool:
        """Whether theory guarantees ``dE/dt <= 0`` (UHN appendix A): a gradient flow with convex,
        smooth Lagrangians (and a differentiable similarity along the trajectory)."""
        return not self.lyapunov_obstacles()

    def lyapunov_reason(self, clamped: bool = False) -> str:
        """A sentence on why the energy is, or is not, guaranteed to decrease."""
        obstacles = self.lyapunov_obstacles(clamped)
        if not obstacles:
            return "gradient flow of the energy with convex, smooth Lagrangians: dE/dt <= 0"
        return "; ".join(obstacles)

    def lyapunov_obstacles(self, clamped: bool = False) -> list[str]:
        """What stands between these dynamics and ``dE/dt <= 0`` (empty: guaranteed).

        ``clamped``: some value units are held fixed, which keeps the guarantee only when the
        value Lagrangian is elementwise (then ``dg/dt = 0`` on the clamped units).
        """
        reasons = []
        departures = self._projection_departures()
        if departures:
            reasons.append(f"projection dynamics are not a gradient flow: {', '.join(departures)}")
        for role, lg in (("value", self.value_lagrangian), ("memory", self.separation)):
            if not lg.convex:
                reasons.append(f"{role} Lagrangian {lg.describe()} is not convex")
            if not lg.smooth:
                reasons.append(f"{role} Lagrangian {lg.describe()} has a discontinuous activation")
        if not self.similarity.smooth:
            reasons.append(f"{self.similarity.name} is not differentiable everywhere")
        if clamped and not self.value_lagrangian.elementwise:
            reasons.append(f"clamping units of the non-elementwise value Lagrangian "
                           f"{self.value_lagrangian.describe()} moves g on the clamped units")
        return reasons

    def integrable(self) -> Network:
        """The network whose rate dynamics :func:`~neurodyn.simulation.simulate` integrates: itself,
        except that gradient dynamics of the exact negative Manhattan distance use its smoothing
        at :data:`MANHATTAN_SMOOTHING` (its gradient jumps where a unit crosses a stored value, so
        the flow slides along those surfaces and solvers crawl; docs/theory.md section 8a).
        Feedforward retrieval and projection dynamics keep the exact distance."""
        sim = self.similarity
        if self.dynamics == "gradient" and sim.name.startswith("manhattan:negative") and not sim.smoothing:
            return dataclasses.replace(self, similarity=make_similarity(f"{sim.name},smooth={MANHATTAN_SMOOTHING:g}"))
        return self

    def retrieval_obstacle(self, with_current: bool = False) -> str:
        """Why these dynamics cannot retrieve a pattern whatever the solver (empty: none known).

        - A similarity that ignores the scale of ``g`` (cosine, normalized dot, the divergences of
          sum-normalized vectors) has a gradient orthogonal to ``g`` (Euler's theorem for a
          function homogeneous of degree 0). With no input current, gradient dynamics then give
          ``dL_v(v)/dt = g . dv/dt = -g . v / tau_v``: for value neurons whose activation has the
          sign of ``v`` (linear, ``g = v``: ``d|v|^2/dt = -2|v|^2 / tau_v``; tanh) that is < 0
          until ``v = 0``, so every cue decays to the origin, where the similarity is undefined
          and the flow turns infinitely fast.
        - The Euclidean (not squared) distance has unit-vector gradients: with a separation that
          sums to one the drive has norm <= 1, so ``v`` cannot reach a stored pattern beyond it.
        - Any dynamics whose similarity grows with ``g`` (dot, biased dot, Hamming), through a
          separation that grows at least linearly (polynomial, identity; linearly only when the gain
          ``|M|_2`` exceeds 1), with linear value neurons: the energy is unbounded below and the
          state diverges.
        """
        sim = self.similarity
        growth = _growth(self.separation)
        # The spectral norm (an SVD of the bank) only where it decides.
        if sim.grows and isinstance(self.value_lagrangian, Quadratic) and \
                (growth > 1 or (growth == 1 and float(torch.linalg.matrix_norm(self.memories, 2)) > 1.0)):
            return (f"{sim.name} with {self.separation.describe()} and linear value neurons has an energy unbounded "
                    "below: the drive grows faster than the leak -v (as |v|^n, or linearly with a gain above 1), so "
                    "every cue diverges; use a saturating value Lagrangian (value_lagrangian='tanh', as the "
                    "'hn' and 'dam' presets do) or a softmax separation")
        if self.dynamics != "gradient" or with_current:
            return ""
        offer = ("use dynamics='projection' (the papers' update P'f), an input-current cue (cue_mode "
                 "'current' or 'both'), or a similarity such as sq_euclidean or biased_dot")
        if sim.scale_invariant and isinstance(self.value_lagrangian, (Quadratic, Tanh)):
            return (f"gradient dynamics of {sim.name} cannot retrieve: the similarity ignores the scale of g, so its "
                    f"gradient is orthogonal to g = {self.value_lagrangian.name}(v) and every cue decays to v = 0, "
                    f"where the similarity is undefined; {offer}")
        if sim.name.startswith("euclidean:negative") and self.separation.sums_to_one:
            return (f"gradient dynamics of {sim.name} cannot retrieve: its gradient is a unit vector, so with "
                    f"{self.separation.describe()} (activations summing to 1) the drive has norm <= 1 and v "
                    f"cannot reach a stored pattern of larger norm; {offer}")
        return ""

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
        }

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
        """``sim(M, g)``, shape (B, N)."""
        return self.similarity(self.memories, g)

    def separate(self, h: torch.Tensor) -> torch.Tensor:
        """``f = dL_h/dh`` (the separation function)."""
        return self.separation.activation(h)

    def project(self, f: torch.Tensor) -> torch.Tensor:
        """``P' f`` (with UHN appendix E normalization when requested)."""
        if self.normalize_separation:
            total = f.sum(-1, keepdim=True)
            # The sum may be negative for signed separations; only an all-zero f is left as is.
            f = torch.where(total == 0, f, f / torch.where(total == 0, 1.0, total))
        return f @ self.P

    def drive(self, g: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """The memory population's input to the value neurons: ``sum_mu f_mu dsim_mu/dg``
        (gradient dynamics, UHN eq. 2) or ``P' f`` (projection dynamics)."""
        if self.dynamics == "gradient":
            return self.similarity.gradient(self.memories, g, f)
        return self.project(f)

    def streams(self, batch: int, project: bool = False) -> bool:
        """Whether a fast memory population is read in tiles (:mod:`neurodyn.fused`): when the
        B x N scores would not fit one tile and the separation streams."""
        return fused.tile_size(batch, self.n_memories) < self.n_memories and fused.streamable(self, project)

    def memory_pass(self, g: torch.Tensor, **options) -> fused.MemoryPass:
        """The tiled pass over the bank (:func:`neurodyn.fused.stream_memories`)."""
        return fused.stream_memories(self, g, **options)

    def memory_lagrangian(self, h: torch.Tensor) -> torch.Tensor:
        """``L_h(h)`` summed over the memory population, shape (B,)."""
        return self.separation.value(h)

    def top_memories(self, f: torch.Tensor, h: torch.Tensor, k: int) -> tuple[torch.Tensor, ...]:
        """The ``k`` largest activations ``f`` per cue (ties to the lower memory index): their
        values, the memory states ``h`` there, and the memory indices."""
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
        """``v(0)`` from the cue; slow memory neurons start at equilibrium, ``h(0) = sim(M, g(0))``."""
        h0 = None if self.fast_memory else self.scores(self.activation(cue.v0))
        return State(cue.v0, h0)

    # ----------------------------------------------------------------- dynamics and energy
    def velocity(self, state: State, cue: Cue) -> State:
        """``(dv/dt, dh/dt)`` of the gradient or projection dynamics."""
        v = state.v
        g = self.activation(v)
        if self.streams(len(g)):  # fast memory neurons only
            dv = self.memory_pass(g, lagrangian=False).drive - v
        else:
            h = self.scores(g) if self.fast_memory else state.h
            # A softmax's far memories underflow into subnormal f, slow on CPUs: set to 0.
            f = self.separate(h)
            f = flush_subnormal_nonnegative(f) if self.separation.nonnegative else flush_subnormal(f)
            dv = self.drive(g, f) - v
        if cue.current is not None:
            dv = dv + cue.current
        if cue.clamp is not None:
            dv = dv.masked_fill(cue.clamp, 0.0)
        dv = dv / self.tau_v
        dh = None if self.fast_memory else (self.scores(g) - h) / self.tau_h
        return State(dv, dh)

    def energy(self, state: State, cue: Cue | None = None) -> dict[str, torch.Tensor]:
        """Named energy components (B,) and their ``total`` (UHN eq. 3, or eq. 4 for fast memory).

        ``value`` = v.g - L_v(v); ``memory`` = h.f - L_h(h) (full) or -L_h(sim(M, g)) (reduced);
        ``interaction`` = -sum f_mu sim_mu (full only); ``input`` = -I.g.
        """
        v = state.v
        g = self.activation(v)
        parts = {"value": self.value_lagrangian.legendre(v, g)}
        if self.streams(len(g)):
            parts["memory"] = -self.memory_pass(g, drive=False).lagrangian
        elif self.fast_memory:
            parts["memory"] = -self.memory_lagrangian(self.scores(g))
        else:
            f = self.separate(state.h)
            parts["memory"] = self.separation.legendre(state.h, f)
            parts["interaction"] = -(f * self.scores(g)).sum(-1)
        current = None if cue is None else cue.current
        parts["input"] = torch.zeros_like(parts["value"]) if current is None else -(current * g).sum(-1)
        parts["total"] = sum(parts.values())
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
                q = self.read(self.memory_pass(q, lagrangian=False, project=True).drive)
            else:
                q = self.read(self.project(self.separate(self.scores(q))))
        return q

    def check_queries(self, queries: torch.Tensor, name: str = "cue") -> torch.Tensor:
        """Validate a batch of queries (B, I) and move it to the memories' device and dtype."""
        q = torch.as_tensor(queries)
        if q.ndim == 1:
            q = q[None]
        if q.ndim != 2 or q.shape[1] != self.n_features:
            raise ValueError(f"{name} must have shape (batch, {self.n_features}) to match the memories, "
                             f"got {tuple(q.shape)}")
        q = q.to(device=self.memories.device, dtype=self.memories.dtype)
        check_finite(name, q)
        return q

    def make_cue(self, queries: torch.Tensor, mode: str = "initial", clamp: torch.Tensor | None = None,
                 strength: float = 1.0) -> Cue:
        """Turn queries into a :class:`Cue`.

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
        if mode not in ("initial", "current", "both"):
            raise ValueError(f"unknown cue mode {mode!r}; known: initial, current, both")
        if not (isinstance(strength, (int, float)) and math.isfinite(strength)):
            raise ValueError(f"strength must be a finite number, got {strength!r}")
        current = strength * q if mode in ("current", "both") else None
        v0 = torch.zeros_like(q) if mode == "current" else q
        mask = None
        if clamp is not None:
            mask = torch.as_tensor(clamp, device=q.device).to(torch.bool)
            try:
                mask = mask.expand_as(q).clone()
            except RuntimeError:
                raise ValueError(f"clamp mask of shape {tuple(mask.shape)} does not fit cues of shape "
                                 f"{tuple(q.shape)}") from None
        return Cue(v0, current, mask)


def _growth(separation: Lagrangian) -> float:
    """How fast the separation grows with its input: the polynomial's degree (1 for identity),
    0 for bounded ones."""
    if separation.name == "identity":
        return 1.0
    return float(getattr(separation, "degree", 0.0)) if separation.name == "polynomial" else 0.0


# ----------------------------------------------------------------------------- presets
PRESETS: dict[str, dict] = {
    # Classical continuous Hopfield net (Hopfield 1984): tanh value neurons, Hebbian coupling
    # M'M through a linear memory population, sign read-out. Bipolar (+-1) patterns.
    "hn": dict(similarity="dot", separation="identity", value_lagrangian="tanh", readout="sign"),
    # Sparse distributed memory (Kanerva 1988): memories within Hamming radius r = 8 of the cue
    # are activated (threshold at -r - 1/2 on the negative distance, so that d = r counts) and
    # averaged; majority read-out. With no memory in range the output is all zeros.
    "sdm": dict(similarity="hamming", separation="threshold:-8.5", dynamics="projection",
                normalize_separation=True, readout="binary"),
    # Dense associative memory (Krotov & Hopfield 2016), rectified polynomial of degree n.
    "dam": dict(similarity="dot", separation="polynomial:3", value_lagrangian="tanh", readout="sign"),
    # Modern continuous Hopfield net (Ramsauer et al. 2020), UHN eq. 5-7.
    "mchn": dict(similarity="dot", separation="softmax:1"),
    # MCHN with the Euclidean similarity as a gradient flow: g.m - |m|^2/2 ranks like -|g-m|^2/2
    # and has gradient m, so the dot product's bias towards bright patterns (UHN appendix E) goes.
    "mchn-l2": dict(similarity="biased_dot", separation="softmax:10"),
}
# UHN variants as the authors' code runs them (UHN-PROTOCOL.md): normalized inverse distances,
# normalized dot product, softmax separation normalized before projection.
# The authors' "Euclidean" is 1 / sum (q - m)^2, the squared distance (its 1/2 cancels here).
for _name, _sim in (("euclidean", "sq_euclidean"), ("manhattan", "manhattan"), ("kl", "kl"),
                    ("reverse_kl", "reverse_kl"), ("js", "js")):
    PRESETS[f"uhn-{_name}"] = dict(similarity=f"{_sim}:inverse,normalized", separation="softmax:1000",
                                   dynamics="projection", normalize_separation=True)
PRESETS["uhn-dot"] = dict(similarity="normalized_dot", separation="softmax:1000", dynamics="projection",
                          normalize_separation=True)

# The data each preset is made for, where it is not the CLI's default (digits): the classical
# nets store uncorrelated bipolar patterns (their capacity analyses assume them). On digits, which
# share their background, they fall into spurious mixtures (docs/user-guide.md, "Presets").
PRESET_DATA: dict[str, str] = {"hn": "random_patterns", "dam": "random_patterns"}

_PARAM_NAMES = {"beta": "softmax", "degree": "polynomial", "k": "topk", "theta": "threshold"}


def from_preset(preset: str, memories: torch.Tensor, projection: torch.Tensor | None = None,
                **overrides) -> Network:
    """Build a :class:`Network` from a preset name in :data:`PRESETS`, with keyword overrides.

    ``beta=``, ``degree=``, ``k=`` and ``theta=`` set the preset's separation parameter.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; known: {', '.join(PRESETS)}")
    config = {**PRESETS[preset], **{k: v for k, v in overrides.items() if k not in _PARAM_NAMES}}
    for param, family in _PARAM_NAMES.items():
        if overrides.get(param) is None:
            continue
        sep = config["separation"]
        sep_name = sep.split(":")[0] if isinstance(sep, str) else sep.name
        if sep_name != family:
            raise ValueError(f"{param}= applies to a {family} separation, but preset {preset!r} uses {sep_name!r}")
        config["separation"] = make_lagrangian(family, **{param: overrides[param]})
    config.setdefault("name", preset)
    unknown = set(config) - set(Network.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown model keys {sorted(unknown)}; known: {sorted(Network.__dataclass_fields__)} "
                         f"and the separation parameters {sorted(_PARAM_NAMES)}")
    return Network(memories, projection=projection, **config)


def from_config(config: dict, memories: torch.Tensor, projection: torch.Tensor | None = None) -> Network:
    """Build a network from a declarative model dict (a ``models/*.toml`` file's ``[model]`` table).

    ``preset`` names a base preset; other keys are :class:`Network` fields and, with a preset,
    the separation parameters ``beta``, ``degree``, ``k`` and ``theta``.
    """
    config = dict(config)
    preset = config.pop("preset", None)
    if preset is not None:
        return from_preset(preset, memories, projection, **config)
    known = set(Network.__dataclass_fields__) - {"memories", "projection"}
    unknown = set(config) - known
    if unknown:
        hint = " (separation parameters need a preset, or go in the spec: separation = 'softmax:3')" \
            if unknown & set(_PARAM_NAMES) else ""
        raise ValueError(f"unknown model keys {sorted(unknown)}; known: {sorted(known)}{hint}")
    return Network(memories, projection=projection, **config)

