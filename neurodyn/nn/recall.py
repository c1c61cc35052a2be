"""How a layer recalls: one-shot (UHN eq. 1, iterated) or in continuous time (UHN's projection
dynamics, integrated by torchdiffeq with backpropagation through the solver or the adjoint).

Both act on keys ``K`` (the stored patterns, or memories, ``M``), values ``V`` (the pattern
projection ``P``) and queries ``q`` (state patterns): the association weights are
``f = sep(sim(K, q))`` and the recalled pattern is ``z = f V`` (UHN eq. 1). Keys and values are
either one bank shared by every query, (N, D) and (N, O), or one per sample, (S, N, D) and
(S, N, O) with queries (S, L, D) (hopfield-layers' stored patterns as inputs).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torchdiffeq import odeint, odeint_adjoint

from .. import names
from ..errors import positive_number, whole_number
from ..lagrangians import Lagrangian
from ..similarity import Similarity

#: The library's methods that torchdiffeq has (the per-cue engine's own, auto and rosenbrock23, run without gradients).
METHODS = tuple(m for m in names.METHODS if m not in ("auto", "rosenbrock23"))


@dataclass(frozen=True)
class OneShot:
    """UHN eq. 1 once, ``z = sep(sim(K, q)) V``; ``steps > 1`` first iterates the update in the
    keys' space, ``q <- sep(sim(K, q)) K`` (hopfield-layers' ``update_steps_max``), which needs
    queries in the keys' space."""

    steps: int = 1

    def __post_init__(self) -> None:
        whole_number("steps", self.steps, 1)


@dataclass(frozen=True)
class ContinuousTime:
    """Integrate UHN's projection dynamics in the keys' space, ``dq/dt = sep(sim(K, q)) K - q``
    (the continuous form of the iterated update: its fixed points are the update's), from the
    query over ``duration`` (in units of the time constant), then read ``z = sep(sim(K, q(T))) V``.

    ``method``, ``rtol``, ``atol``, ``step_size``: torchdiffeq's (``step_size`` for fixed-step
    methods). ``adjoint``: gradients by the adjoint ODE (``torchdiffeq.odeint_adjoint``: memory
    constant in the number of steps, gradients accurate to the tolerances) instead of
    backpropagation through the solver's steps (exact for the discrete solve, memory growing
    with the steps)."""

    duration: float = 10.0
    method: str = "dopri5"
    rtol: float = 1e-6
    atol: float = 1e-8
    step_size: float | None = None
    adjoint: bool = False

    def __post_init__(self) -> None:
        positive_number("duration", self.duration)
        positive_number("rtol", self.rtol)
        positive_number("atol", self.atol)
        if self.step_size is not None:
            positive_number("step_size", self.step_size)
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r} for a layer; known: {', '.join(METHODS)}")
        if self.method in names.FIXED_METHODS and self.step_size is None:
            raise ValueError(f"the fixed-step method {self.method} needs a step_size")


Recall = OneShot | ContinuousTime


def weights(similarity: Similarity, separation: Lagrangian, keys: torch.Tensor, queries: torch.Tensor
            ) -> torch.Tensor:
    """``f = sep(sim(K, q))``: (..., N) for queries (..., D); per-sample keys (S, N, D) score
    their own queries (S, L, D) (by ``torch.vmap`` over the library's similarities)."""
    if keys.ndim == 3:
        return separation.activation(torch.vmap(similarity)(keys, queries))
    flat = queries.reshape(-1, queries.shape[-1])
    return separation.activation(similarity(keys, flat)).reshape(*queries.shape[:-1], keys.shape[0])


def recall(similarity: Similarity, separation: Lagrangian, keys: torch.Tensor, values: torch.Tensor,
           queries: torch.Tensor, how: Recall) -> torch.Tensor:
    """The recalled patterns ``z`` (..., O) of ``queries`` (..., D); see the module docstring."""
    def associate(q: torch.Tensor, into: torch.Tensor) -> torch.Tensor:
        return weights(similarity, separation, keys, q) @ into

    moves = isinstance(how, ContinuousTime) or how.steps > 1
    if moves and keys.shape[-1] != queries.shape[-1]:
        raise ValueError(f"iterated or continuous-time recall moves the queries in the keys' space: queries "
                         f"have {queries.shape[-1]} features, keys {keys.shape[-1]}")
    if isinstance(how, OneShot):
        q = queries
        for _ in range(how.steps - 1):
            q = associate(q, keys)
        return associate(q, values)
    return associate(_integrate(lambda t, v: associate(v, keys) - v, queries, how, keys), values)


def _integrate(flow: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], q0: torch.Tensor,
               how: ContinuousTime, keys: torch.Tensor) -> torch.Tensor:
    """``q(T)`` by torchdiffeq, differentiable in ``q0`` and ``keys`` (and what they depend on)."""
    t = torch.tensor([0.0, how.duration], dtype=q0.dtype, device=q0.device)
    options = {"step_size": how.step_size} if how.step_size is not None else None
    if how.adjoint:
        # The adjoint needs the tensors the flow reads that need gradients: the keys.
        return odeint_adjoint(flow, q0, t, rtol=how.rtol, atol=how.atol, method=how.method, options=options,
                              adjoint_params=(keys,) if keys.requires_grad else ())[-1]
    return odeint(flow, q0, t, rtol=how.rtol, atol=how.atol, method=how.method, options=options)[-1]


def default_scaling(dims: int) -> float:
    """hopfield-layers' (and attention's) default inverse temperature ``1 / sqrt(d)``."""
    return 1.0 / math.sqrt(dims)
