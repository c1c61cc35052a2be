"""Convex Lagrangians of neuron populations; activations are their gradients.

A population is defined by a Lagrangian ``L(x)`` summed over its units (Krotov & Hopfield 2020;
UHN eq. 3). Its activation is the gradient ``dL/dx``: ``g = dL_v/dv`` for value neurons and
``f = dL_h/dh`` for memory neurons, where ``f`` is the UHN *separation function*. Activations are
never declared separately: each class gives ``value`` and, where it is cheap, the closed-form
gradient as ``activation``; the tests check every closed form against autograd of ``value``.

Each Lagrangian also states the facts the Lyapunov argument of UHN appendix A needs (``None``:
not declared, as for a user's Lagrangian that does not say; the verdict is then "not known",
never "guaranteed"):

- ``convex``: the Hessian is positive semi-definite on the domain (``dE/dt <= 0``);
- ``sums_to_one``: activations sum to 1 (softmax, max), so UHN's normalization changes nothing;
- ``elementwise``: a sum over units (diagonal Hessian), so clamping units keeps ``dE/dt <= 0``;
- ``smooth``: the activation is continuous, so the chain rule along a trajectory holds. The
  non-smooth ones (max, top-k, threshold) are the heuristic limits the UHN paper mentions
  below its eq. 4; the tool runs them but never calls their energy decrease guaranteed.

And how its activations combine when a memory bank is read in parts (tiles of
:mod:`neurodyn.network.tiled`, shards of :mod:`neurodyn.scale.shard`), ``combines``: ``"sum"``
(elementwise: each part stands alone and the parts add up), ``"log_sum_exp"`` (softmax: the
parts' log-sum-exps weigh them) or ``"top"`` (the ``winners`` largest units of the whole bank).
A new separation declares it here; the tiled pass and the shards read it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .named import import_named


def _positive(name: str, value: float) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def log_sum_exp(z: torch.Tensor) -> torch.Tensor:
    """``logsumexp(z)`` over the last dimension as ``max z - log(max softmax(z))``: the same
    value, but torch's softmax kernel stays fast where ``exp(z - max)`` is subnormal, which makes
    ``torch.logsumexp`` 10-17x slower on the CPU (measured, float32, B x N = 64 x 10,000)."""
    top = z.argmax(-1, keepdim=True)  # one index for both terms, so the gradient is softmax(z)
    return (z.gather(-1, top) - torch.log(torch.softmax(z, -1).gather(-1, top))).squeeze(-1)


class Lagrangian:
    """A convex function of a population's state, summed over its last dimension."""

    name: str = ""
    convex: bool | None = None
    smooth: bool | None = None
    sums_to_one: bool = False  # activations already sum to 1 (then normalizing them is a no-op)
    nonnegative: bool = False  # activations are >= 0 (a softmax, a rectified polynomial, ...)
    elementwise: bool | None = True  # L is a sum over units of one function: a diagonal Hessian
    combines: str = "sum"  # how parts of a bank combine: "sum", "log_sum_exp" or "top"
    beta: float = 1.0  # the inverse temperature of a "log_sum_exp" combination

    @property
    def winners(self) -> int:
        """The units that win when ``combines == "top"`` (0 otherwise)."""
        return 0

    def value(self, x: torch.Tensor) -> torch.Tensor:
        """``L(x)`` for a batch ``x`` of shape (..., units); returns shape (...)."""
        raise NotImplementedError

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        """``dL/dx``, same shape as ``x``. Default: autograd of :meth:`value`."""
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.value(x).sum(), x)
        return grad

    def legendre(self, x: torch.Tensor, act: torch.Tensor | None = None) -> torch.Tensor:
        """The single-population energy ``x . dL/dx - L(x)`` (a bracket of UHN eq. 3)."""
        act = self.activation(x) if act is None else act
        return (x * act).sum(-1) - self.value(x)

    def params(self) -> dict[str, float]:
        """Parameters for provenance records."""
        return {k: v for k, v in vars(self).items() if isinstance(v, (int, float))}

    def describe(self) -> str:
        args = ", ".join(f"{k}={v:g}" for k, v in self.params().items())
        return f"{self.name}({args})" if args else self.name

    def __repr__(self) -> str:
        return self.describe()


class Declared(Lagrangian):
    """The library's own Lagrangians, which declare their facts: convex, and smooth unless one
    says otherwise (max, top-k, threshold)."""

    convex = True
    smooth = True


class Quadratic(Declared):
    """``L = sum x^2 / 2``; activation identity. Classical HN separation, linear value neurons."""

    name = "identity"

    def value(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (x * x).sum(-1)

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        return x


@dataclass(repr=False)
class RectifiedPolynomial(Declared):
    """``L = sum relu(x)^(n+1) / (n+1)``; activation ``relu(x)^n`` (DAM, Krotov & Hopfield 2016).

    Any real degree ``n > 0`` is allowed: ``n = 0.5`` is UHN table 3's square root, ``n = 2, 3,
    4, 10`` its polynomials. Convex for every ``n > 0``; the activation is continuous for ``n > 0``.
    """

    degree: float = 2.0
    name = "polynomial"
    nonnegative = True

    def __post_init__(self) -> None:
        self.degree = _positive("polynomial degree", self.degree)

    def value(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x).pow(self.degree + 1).sum(-1) / (self.degree + 1)

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x).pow(self.degree)


@dataclass(repr=False)
class LogSumExp(Declared):
    """``L = logsumexp(beta x) / beta``; activation ``softmax(beta x)`` (MCHN, UHN eq. 5)."""

    beta: float = 1.0
    name = "softmax"
    nonnegative = True
    sums_to_one = True
    elementwise = False
    combines = "log_sum_exp"

    def __post_init__(self) -> None:
        self.beta = _positive("beta (inverse temperature)", self.beta)

    def value(self, x: torch.Tensor) -> torch.Tensor:
        return log_sum_exp(self.beta * x) / self.beta

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.beta * x, dim=-1)


class Max(Declared):
    """``L = max(x)``; activation one-hot at the arg-max: the ``beta -> inf`` limit of softmax.

    Convex but not differentiable where the maximum is tied; heuristic (UHN section 4).
    """

    name = "max"
    nonnegative = True
    smooth = False
    sums_to_one = True
    elementwise = False
    combines = "top"

    @property
    def winners(self) -> int:
        return 1

    def value(self, x: torch.Tensor) -> torch.Tensor:
        return x.max(dim=-1).values

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        return F.one_hot(x.argmax(dim=-1), x.shape[-1]).to(x.dtype)


@dataclass(repr=False)
class TopK(Declared):
    """``L = sum of the k largest x``; activation the indicator of the top k (SDM-like).

    Convex (a sum of order statistics); not differentiable at ties.
    """

    k: int = 1
    name = "topk"
    nonnegative = True
    smooth = False
    elementwise = False
    combines = "top"

    @property
    def winners(self) -> int:
        return self.k

    def __post_init__(self) -> None:
        if not (isinstance(self.k, int) and self.k >= 1):
            raise ValueError(f"top-k needs an integer k >= 1, got {self.k!r}")

    def _k(self, x: torch.Tensor) -> int:
        return min(self.k, x.shape[-1])

    def value(self, x: torch.Tensor) -> torch.Tensor:
        return x.topk(self._k(x), dim=-1).values.sum(-1)

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        # Ties go to the lower index (torch.topk leaves them unspecified), as Max's argmax does.
        idx = torch.argsort(x, dim=-1, descending=True, stable=True)[..., :self._k(x)]
        return torch.zeros_like(x).scatter_(-1, idx, 1.0)


@dataclass(repr=False)
class Threshold(Declared):
    """``L = sum relu(x - theta)``; activation the step ``H(x - theta)`` (SDM's activation radius).

    Convex; the activation jumps at ``theta``, so the energy is only piecewise smooth.
    """

    theta: float = 0.0
    name = "threshold"
    nonnegative = True
    smooth = False

    def __post_init__(self) -> None:
        if not (isinstance(self.theta, (int, float)) and math.isfinite(self.theta)):
            raise ValueError(f"threshold theta must be a finite number, got {self.theta!r}")
        self.theta = float(self.theta)

    def value(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x - self.theta).sum(-1)

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        return (x > self.theta).to(x.dtype)


@dataclass(repr=False)
class Log(Declared):
    """``L = sum (x log x - x)`` for ``x > 0``; activation ``log x`` (UHN table 3's log).

    Convex on ``x > 0`` (Hessian ``1/x``). Inputs are floored at ``eps`` so the activation stays
    finite; the floor makes the Lagrangian linear below ``eps`` (still convex).
    """

    eps: float = 1e-12
    name = "log"

    def __post_init__(self) -> None:
        self.eps = _positive("log floor eps", self.eps)

    def value(self, x: torch.Tensor) -> torch.Tensor:
        xc = x.clamp_min(self.eps)
        # Continued linearly below eps with slope log(eps): convex and C^1.
        return (xc * torch.log(xc) - xc + (x - xc) * math.log(self.eps)).sum(-1)

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(x.clamp_min(self.eps))


@dataclass(repr=False)
class Sigmoid(Declared):
    """``L = sum softplus(beta x) / beta``; activation the logistic ``sigmoid(beta x)`` in (0, 1)."""

    beta: float = 1.0
    name = "sigmoid"
    nonnegative = True

    def __post_init__(self) -> None:
        self.beta = _positive("beta (gain)", self.beta)

    def value(self, x: torch.Tensor) -> torch.Tensor:
        # logaddexp(y, 0) = softplus(y) without F.softplus's linear cut-off above y = 20.
        return (torch.logaddexp(self.beta * x, torch.zeros_like(x)) / self.beta).sum(-1)

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.beta * x)


@dataclass(repr=False)
class Tanh(Declared):
    """``L = sum log cosh(beta x) / beta``; activation ``tanh(beta x)`` in (-1, 1)."""

    beta: float = 1.0
    name = "tanh"

    def __post_init__(self) -> None:
        self.beta = _positive("beta (gain)", self.beta)

    def value(self, x: torch.Tensor) -> torch.Tensor:
        bx = self.beta * x
        # log cosh(y) = |y| + log1p(exp(-2|y|)) - log 2, stable for large |y|.
        return ((bx.abs() + torch.log1p(torch.exp(-2 * bx.abs())) - math.log(2.0)) / self.beta).sum(-1)

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.beta * x)


class UserLagrangian(Lagrangian):
    """A user's Lagrangian by its value alone: ``value(x)`` maps (..., units) to (...); the
    activation is its gradient by autograd (or ``activation``, if given). The Lyapunov facts are
    what the user declares (``convex``, ``smooth``, ``elementwise``; None: not known, and the
    verdict says so). ``name``: how runs and model files name it; to reopen a run in another
    process, define the Lagrangian at module level and name it ``"module:attribute"``."""

    def __init__(self, value: Callable[[torch.Tensor], torch.Tensor], *, name: str | None = None,
                 activation: Callable[[torch.Tensor], torch.Tensor] | None = None, convex: bool | None = None,
                 smooth: bool | None = None, elementwise: bool | None = None, nonnegative: bool = False) -> None:
        if not callable(value):
            raise ValueError(f"a Lagrangian's value must be a function of x, got {type(value).__name__}")
        self._value, self._activation = value, activation
        self.name = name or f"{value.__module__}:{value.__qualname__}"
        self.convex, self.smooth, self.elementwise, self.nonnegative = convex, smooth, elementwise, nonnegative

    def value(self, x: torch.Tensor) -> torch.Tensor:
        return self._value(x)

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        return super().activation(x) if self._activation is None else self._activation(x)

    def params(self) -> dict[str, float]:
        return {}


LAGRANGIANS: dict[str, type[Lagrangian]] = {
    "identity": Quadratic,
    "quadratic": Quadratic,
    "polynomial": RectifiedPolynomial,
    "softmax": LogSumExp,
    "max": Max,
    "topk": TopK,
    "threshold": Threshold,
    "log": Log,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
}

# The positional parameter of each family, for short specs such as "softmax:100" or "polynomial:3".
_MAIN_PARAM = {"polynomial": "degree", "softmax": "beta", "topk": "k", "threshold": "theta",
               "sigmoid": "beta", "tanh": "beta", "log": "eps"}


def make_lagrangian(spec: str | Lagrangian | type[Lagrangian] | Callable[[torch.Tensor], torch.Tensor],
                    **params: float) -> Lagrangian:
    """Build a Lagrangian from a name (``"softmax"``), a short spec (``"softmax:100"``,
    ``"polynomial:3"``, ``"topk:5"``), a user's ``"module:attribute"`` (a Lagrangian, a
    Lagrangian class or a value function), a Lagrangian class, a value function
    (:class:`UserLagrangian`, facts not known), or return an instance unchanged."""
    if isinstance(spec, Lagrangian):
        if params:
            raise ValueError("parameters given together with a Lagrangian instance")
        return spec
    if isinstance(spec, type) and issubclass(spec, Lagrangian):
        return spec(**params)
    if callable(spec) and not isinstance(spec, (str, type)):
        if params:
            raise ValueError("parameters given together with a Lagrangian's value function")
        return UserLagrangian(spec)
    if not isinstance(spec, str):
        raise ValueError(f"a Lagrangian is a name, a Lagrangian or a value function, got {type(spec).__name__}")
    name, _, arg = spec.partition(":")
    name = name.strip().lower()
    if name not in LAGRANGIANS and arg:  # a user's, by import name
        try:
            user = import_named(spec.strip(), "Lagrangian")
        except ValueError as err:
            raise ValueError(f"unknown Lagrangian/separation {name!r} (known: {', '.join(sorted(LAGRANGIANS))}), "
                             f"and {err}") from None
        if isinstance(user, str) or not (isinstance(user, Lagrangian) or callable(user)):
            raise ValueError(f"{spec!r} names a {type(user).__name__}, not a Lagrangian or a value function")
        made = make_lagrangian(user, **params)
        if isinstance(made, UserLagrangian) and not isinstance(user, Lagrangian):
            made.name = spec.strip()  # (named as given, so that a run reopens it)
        return made
    if name not in LAGRANGIANS:
        raise ValueError(f"unknown Lagrangian/separation {name!r}; known: {', '.join(sorted(LAGRANGIANS))}, or a "
                         "user's as 'module:attribute'")
    if arg:
        if name not in _MAIN_PARAM:
            raise ValueError(f"{name!r} takes no parameter, got {spec!r}")
        try:
            params[_MAIN_PARAM[name]] = int(arg) if name == "topk" else float(arg)
        except ValueError:
            kind = "an integer" if name == "topk" else "a number"
            raise ValueError(f"cannot read the parameter of {spec!r} as {kind}") from None
    try:
        return LAGRANGIANS[name](**params)
    except TypeError as err:
        raise ValueError(f"bad parameters for {name!r}: {err}") from None
