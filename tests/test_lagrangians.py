"""Tests for neurodyn.lagrangians: closed forms, gradients, convexity, Legendre terms, spec parsing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from neurodyn.lagrangians import LAGRANGIANS, Lagrangian, make_lagrangian

SETTINGS = settings(max_examples=25, deadline=None)

# Every family, with several parameters where it has one.
SPECS = [
    "identity", "quadratic",
    "polynomial:0.5", "polynomial:1", "polynomial:2", "polynomial:3", "polynomial:10",
    "softmax:0.1", "softmax:1", "softmax:100",
    "max", "topk:3", "topk:10",
    "threshold:0", "threshold:-0.7",
    "log",
    "sigmoid", "sigmoid:4",
    "tanh", "tanh:5",
]


def test_specs_cover_every_family():
    assert {s.split(":")[0] for s in SPECS} == set(LAGRANGIANS)


def _vec(units: int, lo: float, hi: float, unique: bool = False):
    return hnp.arrays(np.float64, units, unique=unique,
                      elements=st.floats(lo, hi, allow_nan=False, allow_infinity=False))


def _inputs(name: str, units: int = 6):
    """Input vectors in the family's domain (positive for log, distinct for max/top-k)."""
    if name == "log":
        return _vec(units, 1e-3, 20.0)
    if name in ("max", "topk"):
        return _vec(units, -5.0, 5.0, unique=True)
    return _vec(units, -5.0, 5.0)


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=torch.float64)


def _autograd(lg: Lagrangian, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(lg.value(x).sum(), x)
    return grad


# ------------------------------------------------------------------ value: independent formulas
def _ref_value(spec: str, x: np.ndarray) -> float:
    name, _, arg = spec.partition(":")
    x = np.asarray(x, dtype=np.float64)
    if name in ("identity", "quadratic"):
        return 0.5 * float(np.sum(x * x))
    if name == "polynomial":
        n = float(arg)
        return float(np.sum(np.maximum(x, 0) ** (n + 1))) / (n + 1)
    if name == "softmax":
        b = float(arg)
        z = b * x
        return (z.max() + math.log(np.sum(np.exp(z - z.max())))) / b
    if name == "max":
        return float(x.max())
    if name == "topk":
        k = min(int(arg), x.size)
        return float(np.sort(x)[::-1][:k].sum())
    if name == "threshold":
        return float(np.sum(np.maximum(x - float(arg), 0)))
    if name == "log":
        return float(np.sum(x * np.log(x) - x))
    if name == "sigmoid":
        b = float(arg or 1)
        return float(np.sum(np.logaddexp(0.0, b * x))) / b
    if name == "tanh":
        b = float(arg or 1)
        return float(np.sum([math.log(math.cosh(b * xi)) for xi in x])) / b
    raise KeyError(spec)


@pytest.mark.parametrize("spec", SPECS)
@SETTINGS
@given(data=st.data())
def test_value_and_legendre_match_reference_formulas(spec, data):
    """``value`` is the documented formula; ``legendre(x)`` is ``x . act(x) - L(x)``."""
    name = spec.split(":")[0]
    x = data.draw(_inputs(name))
    lg = make_lagrangian(spec)
    xt = _t(x)
    want = _ref_value(spec, x)
    assert lg.value(xt).item() == pytest.approx(want, rel=1e-12, abs=1e-12)
    act = lg.activation(xt)
    assert lg.legendre(xt).item() == pytest.approx(float(np.dot(x, act.numpy())) - want, rel=1e-10, abs=1e-10)
    # an explicitly passed activation is used as given
    assert lg.legendre(xt, torch.zeros_like(xt)).item() == pytest.approx(-want, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("spec", SPECS)
def test_value_reduces_last_dimension(spec):
    lg = make_lagrangian(spec)
    x = torch.rand(3, 4, 5, dtype=torch.float64) + 0.1
    assert lg.value(x).shape == (3, 4)
    assert lg.activation(x).shape == (3, 4, 5)


# ------------------------------------------------------------------ activation = dL/dx
@pytest.mark.parametrize("spec", SPECS)
@SETTINGS
@given(data=st.data())
def test_activation_is_autograd_of_value(spec, data):
    name, _, arg = spec.partition(":")
    x = data.draw(_inputs(name))
    if name == "threshold":  # move inputs off the step (hypothesis likes exact zeros)
        x = np.where(np.abs(x - float(arg)) > 1e-9, x, float(arg) + 0.5)
    lg = make_lagrangian(spec)
    xt = _t(x)
    closed = lg.activation(xt)
    auto = _autograd(lg, xt)
    assert closed.dtype == torch.float64
    torch.testing.assert_close(closed, auto, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("spec", SPECS)
def test_activation_is_autograd_of_value_batched(spec):
    """Batched (B, units) inputs: the gradient stays per row (softmax, max, top-k couple units)."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(5, 7, dtype=torch.float64, generator=gen) * 2
    if spec == "log":
        x = x.abs() + 0.05
    lg = make_lagrangian(spec)
    torch.testing.assert_close(lg.activation(x), _autograd(lg, x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("beta", [1.0, 3.0])
def test_sigmoid_activation_matches_gradient_for_large_inputs(beta):
    """Past softplus's linearization threshold (beta x > 20) the float64 value must stay exact."""
    lg = make_lagrangian("sigmoid", beta=beta)
    x = torch.tensor([[21.0, 25.0, 30.0]], dtype=torch.float64) / beta
    torch.testing.assert_close(lg.activation(x), _autograd(lg, x), rtol=1e-12, atol=1e-12)
    want = float(np.sum(np.logaddexp(0.0, beta * x.numpy()))) / beta
    assert lg.value(x).item() == pytest.approx(want, rel=1e-14)


def test_known_activation_values():
    x = torch.tensor([[-1.0, 0.5, 2.0]], dtype=torch.float64)
    torch.testing.assert_close(make_lagrangian("polynomial:2").activation(x),
                               torch.tensor([[0.0, 0.25, 4.0]], dtype=torch.float64))
    torch.testing.assert_close(make_lagrangian("max").activation(x),
                               torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64))
    torch.testing.assert_close(make_lagrangian("topk:2").activation(x),
                               torch.tensor([[0.0, 1.0, 1.0]], dtype=torch.float64))
    torch.testing.assert_close(make_lagrangian("threshold:0.7").activation(x),
                               torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64))
    torch.testing.assert_close(make_lagrangian("identity").activation(x), x)
    # top-k with k larger than the population activates everything
    torch.testing.assert_close(make_lagrangian("topk:10").activation(x), torch.ones_like(x))


def test_log_activation_floored_and_finite():
    lg = make_lagrangian("log")
    x = torch.tensor([[0.0, -3.0, 1.0]], dtype=torch.float64)
    act = lg.activation(x)
    assert torch.isfinite(act).all()
    assert act[0, 0].item() == pytest.approx(math.log(1e-12))
    assert act[0, 2].item() == 0.0
    assert torch.isfinite(lg.value(x)).all()


# ------------------------------------------------------------------ convexity
CONVEX_SPECS = [s for s in SPECS if make_lagrangian(s).convex]


def test_all_families_claim_convexity():
    # The energy argument (UHN appendix A) needs every Lagrangian offered to be convex.
    assert CONVEX_SPECS == SPECS


@pytest.mark.parametrize("spec", CONVEX_SPECS)
@SETTINGS
@given(data=st.data(), t=st.floats(0.0, 1.0))
def test_convexity(spec, data, t):
    """Jensen's inequality L(tx + (1-t)y) <= t L(x) + (1-t) L(y), and its first-order form: the
    activation is monotone, (grad L(x) - grad L(y)).(x - y) >= 0."""
    name = spec.split(":")[0]
    x = _t(data.draw(_inputs(name)))
    y = _t(data.draw(_inputs(name)))
    lg = make_lagrangian(spec)
    lx, ly = lg.value(x).item(), lg.value(y).item()
    lhs = lg.value(t * x + (1 - t) * y).item()
    rhs = t * lx + (1 - t) * ly
    scale = 1.0 + abs(t * lx) + abs((1 - t) * ly)
    assert lhs <= rhs + 1e-12 * scale
    assert ((lg.activation(x) - lg.activation(y)) * (x - y)).sum().item() >= -1e-12


@SETTINGS
@given(x=_vec(5, -5.0, 5.0), y=_vec(5, -5.0, 5.0), t=st.floats(0.0, 1.0))
def test_log_floor_continuation_stays_convex(x, y, t):
    """Below eps the log Lagrangian continues linearly; it must remain convex across the floor."""
    lg = make_lagrangian("log", eps=1e-2)
    x, y = _t(x), _t(y)
    lhs = lg.value(t * x + (1 - t) * y).item()
    rhs = t * lg.value(x).item() + (1 - t) * lg.value(y).item()
    assert lhs <= rhs + 1e-12 * (1 + abs(rhs))


def test_smoothness_flags():
    for s in ("max", "topk:2", "threshold:0"):
        assert make_lagrangian(s).smooth is False, s
    for s in ("identity", "polynomial:2", "softmax:3", "log", "sigmoid", "tanh"):
        assert make_lagrangian(s).smooth is True, s


# ------------------------------------------------------------------ Legendre terms
@SETTINGS
@given(x=_vec(6, -10.0, 10.0))
def test_quadratic_legendre_is_half_squared_norm(x):
    lg = make_lagrangian("identity")
    assert lg.legendre(_t(x)).item() == pytest.approx(0.5 * float(np.dot(x, x)), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("beta", [0.5, 1.0, 7.0, 100.0])
@SETTINGS
@given(x=_vec(6, -3.0, 3.0))
def test_logsumexp_legendre_is_negative_entropy_over_beta(beta, x):
    """x.softmax(bx) - lse(bx)/b = (1/b) sum p log p with p = softmax(bx)."""
    lg = make_lagrangian("softmax", beta=beta)
    z = beta * x
    p = np.exp(z - z.max())
    p /= p.sum()
    neg_entropy = float(np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0))) / beta
    assert lg.legendre(_t(x)).item() == pytest.approx(neg_entropy, rel=1e-9, abs=1e-11)
    # bounded by -log(units)/beta <= . <= 0
    assert -math.log(x.size) / beta - 1e-12 <= lg.legendre(_t(x)).item() <= 1e-12


# ------------------------------------------------------------------ softmax -> max
def test_softmax_with_huge_beta_approaches_max():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(4, 9, dtype=torch.float64, generator=gen)
    hard = make_lagrangian("max").activation(x)
    gaps = []
    for beta in (1.0, 10.0, 1e3, 1e5):
        soft = make_lagrangian("softmax", beta=beta).activation(x)
        gaps.append((soft - hard).abs().max().item())
    assert gaps == sorted(gaps, reverse=True)
    assert gaps[-1] < 1e-12
    assert make_lagrangian("softmax:1e5").value(x) == pytest.approx(make_lagrangian("max").value(x), abs=1e-4)


# ------------------------------------------------------------------ spec parsing
def test_spec_parsing_sets_the_main_parameter():
    sm = make_lagrangian("softmax:100")
    assert type(sm) is LAGRANGIANS["softmax"] and sm.beta == 100.0
    poly = make_lagrangian("polynomial:3")
    assert type(poly) is LAGRANGIANS["polynomial"] and poly.degree == 3.0
    tk = make_lagrangian("topk:5")
    assert type(tk) is LAGRANGIANS["topk"] and tk.k == 5 and isinstance(tk.k, int)
    th = make_lagrangian("threshold:-8")
    assert th.theta == -8.0
    assert make_lagrangian("sigmoid:2.5").beta == 2.5
    assert make_lagrangian("tanh:0.5").beta == 0.5
    assert make_lagrangian("log:1e-6").eps == 1e-6
    assert make_lagrangian(" SoftMax:2").beta == 2.0
    assert make_lagrangian("softmax", beta=4).beta == 4.0
    assert make_lagrangian("quadratic").name == "identity"


def test_spec_defaults_and_instances_pass_through():
    assert make_lagrangian("softmax").beta == 1.0
    assert make_lagrangian("polynomial").degree == 2.0
    assert make_lagrangian("topk").k == 1
    lg = make_lagrangian("tanh:2")
    assert make_lagrangian(lg) is lg
    for name, cls in LAGRANGIANS.items():
        assert isinstance(make_lagrangian(name), cls)


def test_describe_names_parameters():
    assert make_lagrangian("softmax:100").describe() == "softmax(beta=100)"
    assert make_lagrangian("identity").describe() == "identity"
    assert "degree=3" in make_lagrangian("polynomial:3").describe()


@pytest.mark.parametrize(
    "args, kwargs, needle",
    [
        (("bogus",), {}, "bogus"),
        (("softmx:3",), {}, "softmx"),
        (("softmax:0",), {}, "beta"),
        (("softmax:-1",), {}, "beta"),
        (("softmax:inf",), {}, "beta"),
        (("softmax:nan",), {}, "beta"),
        (("softmax",), {"beta": 0.0}, "beta"),
        (("sigmoid:0",), {}, "beta"),
        (("tanh:-2",), {}, "beta"),
        (("polynomial:0",), {}, "degree"),
        (("polynomial:-2",), {}, "degree"),
        (("polynomial",), {"degree": 0}, "degree"),
        (("topk:0",), {}, "k"),
        (("topk:-3",), {}, "k"),
        (("topk",), {"k": 2.5}, "k"),
        (("topk:2.5",), {}, "topk:2.5"),
        (("softmax:abc",), {}, "softmax:abc"),
        (("identity:2",), {}, "identity"),
        (("max:3",), {}, "max"),
        (("softmax",), {"gamma": 2.0}, "gamma"),
        ((3,), {}, "int"),
    ],
)
def test_bad_specs_raise_informative_value_error(args, kwargs, needle):
    with pytest.raises(ValueError) as info:
        make_lagrangian(*args, **kwargs)
    assert needle in str(info.value)


def test_instance_with_parameters_is_rejected():
    with pytest.raises(ValueError, match="parameters"):
        make_lagrangian(make_lagrangian("softmax"), beta=2.0)


@pytest.mark.parametrize("bad", ["log:0", "log:-1", "log:nan"])
def test_log_floor_must_be_positive(bad):
    """A floor eps <= 0 makes log's activation -inf or NaN; it must be rejected like beta <= 0."""
    with pytest.raises(ValueError, match="eps"):
        make_lagrangian(bad)


def test_threshold_must_be_a_number():
    """A NaN threshold silently switches every memory off; it must be rejected."""
    with pytest.raises(ValueError, match="theta|threshold"):
        make_lagrangian("threshold:nan")


@pytest.mark.parametrize("name", ["identity", "polynomial", "softmax", "max", "topk", "threshold:0.5", "log",
                                  "sigmoid", "tanh"])
def test_the_nonnegative_flag_says_whether_activations_can_be_negative(name):
    # the velocity flushes subnormal f with a one-kernel threshold where the flag is set
    lag = make_lagrangian(name)
    x = torch.linspace(-30, 30, 601, dtype=torch.float64)[None].repeat(2, 1)
    assert bool((lag.activation(x) >= 0).all()) == lag.nonnegative


@pytest.mark.parametrize("spec", SPECS)
def test_each_lagrangian_combines_over_parts_of_a_bank_as_it_declares(spec):
    """``combines`` is what the tiled pass and the shards rely on to read a bank in two parts:
    ``sum`` activations depend on their own unit alone; ``log_sum_exp`` ones are a softmax whose
    parts' log-sum-exps give the whole; ``top`` ones mark the ``winners`` largest units."""
    lag = make_lagrangian(spec)
    x = torch.linspace(-2.0, 3.0, 12, dtype=torch.float64).roll(5)[None]
    left, right = x[:, :5], x[:, 5:]
    whole = lag.activation(x)
    if lag.combines == "sum":
        assert lag.elementwise and lag.winners == 0
        assert torch.allclose(torch.cat([lag.activation(left), lag.activation(right)], -1), whole)
        assert torch.allclose(lag.value(left) + lag.value(right), lag.value(x))
    elif lag.combines == "log_sum_exp":
        parts = torch.stack([torch.logsumexp(lag.beta * p, -1) for p in (left, right)], -1)
        assert torch.allclose(torch.logsumexp(parts, -1) / lag.beta, lag.value(x))
        assert torch.allclose(whole, torch.softmax(lag.beta * x, -1))
    else:
        assert lag.combines == "top" and lag.winners >= 1
        top = torch.argsort(x, -1, descending=True)[..., :lag.winners]
        assert torch.equal(whole.nonzero()[:, 1].sort().values, top[0].sort().values)
        assert torch.allclose(lag.value(x), x.gather(-1, top).sum(-1))
