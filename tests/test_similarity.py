"""Tests for neurodyn.similarity against plain numpy references, autograd and finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from neurodyn.similarity import DISTANCES, SIMILARITIES, make_similarity

try:
    import reference as ref
except ImportError:  # tests/ imported as a package
    from tests import reference as ref

SETTINGS = settings(max_examples=25, deadline=None)

ALL_SPECS = ref.all_specs(False) + ref.all_specs(True)
IDS = [ref.spec(*s) for s in ALL_SPECS]


def test_reference_covers_every_similarity():
    assert set(ref.NAMED + ref.DISTANCE_NAMES) == set(SIMILARITIES)
    assert set(ref.DISTANCE_NAMES) == set(DISTANCES)


def _data(seed: int, n: int = 5, i: int = 6, b: int = 4, positive: bool = False):
    rng = np.random.default_rng(seed)
    if positive:
        M = rng.uniform(0.05, 1.0, (n, i))
        G = rng.uniform(0.05, 1.0, (b, i))
    else:
        M = rng.normal(size=(n, i))
        G = rng.normal(size=(b, i))
    return M, G


def _t(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=torch.float64)


def _positive_only(name: str, form: str | None, normalized: bool) -> bool:
    # A normalized dot/cosine of mixed-sign data divides by a sum that may be ~0 (ill-conditioned);
    # Hamming is defined for patterns in [0, 1] (its relaxation can go negative outside).
    return (normalized and name in ("dot", "cosine")) or name == "hamming"


# ------------------------------------------------------------------ values
@pytest.mark.parametrize("sim", ALL_SPECS, ids=IDS)
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 6), b=st.integers(1, 4),
       positive=st.booleans())
@example(seed=62, n=1, b=1, positive=False)  # found by hypothesis: one memory at zero JS divergence, 0/0
def test_scores_match_numpy_reference(sim, seed, n, b, positive):
    name, form, normalized = sim
    positive = positive or _positive_only(*sim)
    M, G = _data(seed, n=n, b=b, positive=positive)
    s = make_similarity(ref.spec(*sim))
    got = s(_t(M), _t(G))
    assert got.shape == (b, n)
    assert got.dtype == torch.float64
    assert torch.isfinite(got).all()
    want = ref.similarity(name, form, normalized, M, G)
    rtol = 1e-9
    if form == "inverse":
        # 1/(d + eps) amplifies the rounding error of d (~1e-16) by 1/(d + eps)^2 near d = 0
        # (floored KL/JS of near one-hot vectors): allow for that conditioning.
        rtol += 1e-14 * np.abs(ref.similarity(name, form, False, M, G)).max()
    np.testing.assert_allclose(got.numpy(), want, rtol=rtol, atol=1e-10)


@pytest.mark.parametrize("sim", ALL_SPECS, ids=IDS)
def test_scores_match_reference_with_kwargs_spelling(sim):
    """``form=`` and ``normalized=`` keywords build the same similarity as the spec string."""
    name, form, normalized = sim
    M, G = _data(11, positive=True)
    s = make_similarity(name, form=form, normalized=normalized)
    np.testing.assert_allclose(s(_t(M), _t(G)).numpy(), ref.similarity(*sim, M, G), rtol=1e-9, atol=1e-10)


def test_distances_default_to_negative_form():
    M, G = _data(2)
    for d in DISTANCES:
        np.testing.assert_allclose(make_similarity(d)(_t(M), _t(G)).numpy(),
                                   ref.similarity(d, "negative", False, M, G), rtol=1e-9, atol=1e-10)


def test_custom_eps_is_used():
    """Inverse form is ``1/(d + eps)``: with d = 0 the score is exactly 1/eps."""
    M = np.array([[1.0, 0.0, 1.0]])
    s = make_similarity("manhattan:inverse", eps=0.25)
    assert s(_t(M), _t(M)).item() == pytest.approx(4.0)


def test_kl_floors_negative_entries():
    """Sum-normalization floors entries at eps first: a negative entry counts as ~0 mass."""
    M = np.array([[1.0, 1.0, 0.0]])
    G = np.array([[1.0, 1.0, -5.0]])
    for name in ("kl", "reverse_kl", "js"):
        d = -make_similarity(name)(_t(M), _t(G)).item()
        assert d == pytest.approx(0.0, abs=1e-6), name
        assert d == pytest.approx(ref.pair_distance(name, M[0], G[0]), abs=1e-12)


# ------------------------------------------------------------------ gradients
def _autograd(s, M: torch.Tensor, G: torch.Tensor, F: torch.Tensor) -> torch.Tensor:
    G = G.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad((F * s(M, G)).sum(), G)
    return grad


def _finite_difference(sim, M: np.ndarray, G: np.ndarray, F: np.ndarray, h: float = 1e-6) -> np.ndarray:
    out = np.zeros_like(G)
    for b in range(G.shape[0]):
        for i in range(G.shape[1]):
            gp, gm = G.copy(), G.copy()
            gp[b, i] += h
            gm[b, i] -= h
            fp = (F * ref.similarity(*sim, M, gp)).sum()
            fm = (F * ref.similarity(*sim, M, gm)).sum()
            out[b, i] = (fp - fm) / (2 * h)
    return out


@pytest.mark.parametrize("sim", ALL_SPECS, ids=IDS)
def test_gradient_matches_finite_differences_of_reference(sim):
    """``gradient(M, g, f) = d/dg sum_mu f_mu sim(M_mu, g)``: against central differences of the
    numpy reference scores, and against autograd of the library's own scores."""
    name = sim[0]
    # Positive data keeps KL/JS away from their eps floor and normalized sums away from zero.
    positive = name in ("kl", "reverse_kl", "js", "normalized_dot") or sim[2]
    M, G = _data(17, n=4, i=5, b=3, positive=positive)
    F = np.random.default_rng(18).uniform(-1.0, 1.0, (3, 4))
    s = make_similarity(ref.spec(*sim))
    got = s.gradient(_t(M), _t(G), _t(F))
    assert got.shape == G.shape
    torch.testing.assert_close(got, _autograd(s, _t(M), _t(G), _t(F)), rtol=1e-10, atol=1e-10)
    fd = _finite_difference(sim, M, G, F)
    np.testing.assert_allclose(got.numpy(), fd, rtol=1e-5, atol=1e-6 * (1 + np.abs(fd).max()))


@pytest.mark.parametrize("spec", ["dot", "sq_euclidean:negative", "sq_euclidean"])
@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 6), b=st.integers(1, 4))
def test_closed_form_gradient_equals_autograd(spec, seed, n, b):
    s = make_similarity(spec)
    assert s.closed_gradient is not None
    M, G = _data(seed, n=n, b=b)
    F = np.random.default_rng(seed).normal(size=(b, n))
    torch.testing.assert_close(s.gradient(_t(M), _t(G), _t(F)), _autograd(s, _t(M), _t(G), _t(F)),
                               rtol=1e-10, atol=1e-10)


def test_closed_form_gradients():
    M, G = _data(5)
    F = np.random.default_rng(6).normal(size=(4, 5))
    dot = make_similarity("dot").gradient(_t(M), _t(G), _t(F)).numpy()
    np.testing.assert_allclose(dot, F @ M, rtol=1e-12, atol=1e-12)
    sq = make_similarity("sq_euclidean:negative").gradient(_t(M), _t(G), _t(F)).numpy()
    want = sum(F[:, [mu]] * (M[mu][None, :] - G) for mu in range(M.shape[0]))
    np.testing.assert_allclose(sq, want, rtol=1e-12, atol=1e-12)


def test_gradient_does_not_leak_autograd_state():
    M, G = _data(8, positive=True)
    F = np.ones((4, 5))
    g = _t(G)
    out = make_similarity("manhattan:inverse,normalized").gradient(_t(M), g, _t(F))
    assert not out.requires_grad and not g.requires_grad


# ------------------------------------------------------------------ ranking facts
RANKED = [(d, f) for d in ("euclidean", "sq_euclidean", "manhattan", "kl", "reverse_kl", "js")
          for f in ref.FORMS] + [("cosine", None)]


@pytest.mark.parametrize("name, form", RANKED, ids=[ref.spec(n, f) for n, f in RANKED])
@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), target=st.integers(0, 5))
def test_identical_memory_ranks_first(name, form, seed, target):
    positive = name in ("kl", "reverse_kl", "js")
    M, _ = _data(seed, n=6, positive=positive)
    G = M[[target]] * 1.0
    s = make_similarity(ref.spec(name, form))(_t(M), _t(G))
    assert s.argmax(-1).item() == target
    top2 = s[0].topk(2).values
    assert (top2[0] - top2[1]).item() > 0


@pytest.mark.parametrize("form", ref.FORMS)
@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), target=st.integers(0, 7))
def test_hamming_identical_binary_pattern_ranks_first(form, seed, target):
    rng = np.random.default_rng(seed)
    M = rng.integers(0, 2, (8, 12)).astype(np.float64)
    M[:, :3] = [[(k >> j) & 1 for j in range(3)] for k in range(8)]  # 8 distinct rows
    s = make_similarity(f"hamming:{form}")(_t(M), _t(M[[target]]))
    assert s.argmax(-1).item() == target
    top2 = s[0].topk(2).values
    assert (top2[0] - top2[1]).item() > 0


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1))
def test_hamming_counts_differing_bits(seed):
    rng = np.random.default_rng(seed)
    M = rng.integers(0, 2, (5, 16)).astype(np.float64)
    G = rng.integers(0, 2, (3, 16)).astype(np.float64)
    d = -make_similarity("hamming")(_t(M), _t(G)).numpy()
    want = (G[:, None, :] != M[None, :, :]).sum(-1)
    np.testing.assert_array_equal(d, want)


def test_negative_sq_euclidean_is_dot_minus_half_norm_up_to_per_cue_constant():
    """DESIGN.md: -|g-m|^2/2 ranks like g.m - |m|^2/2; the gap is -|g|^2/2 for every memory."""
    M, G = _data(9, n=7)
    s = make_similarity("sq_euclidean:negative")(_t(M), _t(G)).numpy()
    alt = G @ M.T - 0.5 * (M * M).sum(-1)[None, :]
    gap = s - alt
    np.testing.assert_allclose(gap, np.broadcast_to(-0.5 * (G * G).sum(-1, keepdims=True), gap.shape),
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(s.argsort(-1), alt.argsort(-1))


@pytest.mark.parametrize("name", DISTANCES)
def test_inverse_normalized_keeps_ranking(name):
    positive = name in ("kl", "reverse_kl", "js", "hamming")  # hamming: patterns in [0, 1]
    M, G = _data(4, n=6, positive=positive)
    plain = make_similarity(f"{name}:inverse")(_t(M), _t(G))
    normed = make_similarity(f"{name}:inverse,normalized")(_t(M), _t(G))
    np.testing.assert_array_equal(plain.argsort(-1).numpy(), normed.argsort(-1).numpy())
    np.testing.assert_allclose(normed.sum(-1).numpy(), 1.0, rtol=1e-12)
    assert (normed > 0).all()


def test_normalization_never_reverses_ranking():
    """``normalized`` is meant to cancel the similarity's scale (UHN appendix E), not its sign.

    Negative-form distances are all <= 0, so dividing by their (negative) sum turns ``-d`` into
    ``d / sum d``: the *farthest* memory then scores highest. The same happens to a dot product
    whose scores are all negative. Either such combinations are refused with a ValueError, or the
    normalized scores must rank memories as the plain ones do.
    """
    M, _ = _data(12, n=5, positive=True)
    G = M[[2]] * 1.0 + 0.01  # closest to memory 2
    flipped = []
    cases = [(d, "negative") for d in DISTANCES] + [("dot", None), ("cosine", None)]
    for name, form in cases:
        q = -G if name in ("dot", "cosine") else G  # all dot/cosine scores negative
        try:
            normed = make_similarity(ref.spec(name, form, True))
        except ValueError:
            continue
        plain = make_similarity(ref.spec(name, form, False))
        a = plain(_t(M), _t(q)).argmax(-1).item()
        b = normed(_t(M), _t(q)).argmax(-1).item()
        if a != b:
            flipped.append(f"{ref.spec(name, form, True)}: best memory {a} -> {b}")
    assert not flipped, "normalization reversed the ranking for " + "; ".join(flipped)


# ------------------------------------------------------------------ flags and errors
@pytest.mark.parametrize("sim", ALL_SPECS, ids=IDS)
def test_bilinear_only_for_plain_and_biased_dot(sim):
    s = make_similarity(ref.spec(*sim))
    assert s.bilinear == (sim[0] in ("dot", "biased_dot") and not sim[2])


def test_similarity_instance_passes_through():
    s = make_similarity("manhattan:inverse")
    assert make_similarity(s) is s


def test_normalized_dot_is_always_normalized():
    assert make_similarity("normalized_dot").normalized


def test_smooth_flags():
    assert not make_similarity("euclidean").smooth
    assert not make_similarity("manhattan:inverse").smooth
    assert make_similarity("sq_euclidean").smooth and make_similarity("dot").smooth


@pytest.mark.parametrize(
    "args, kwargs, needle",
    [
        (("bogus",), {}, "bogus"),
        (("euclidian",), {}, "euclidian"),
        (("dot:bogus",), {}, "bogus"),
        (("manhattan:inverse,squared",), {}, "squared"),
        (("kl:inverse:normalized",), {}, "inverse:normalized"),
        (("cosine:inverse",), {}, "cosine"),
        (("dot:negative",), {}, "dot"),
        (("normalized_dot",), {"form": "inverse"}, "normalized_dot"),
        (("euclidean",), {"form": "bogus"}, "bogus"),
        (("euclidean",), {"eps": 0.0}, "eps"),
        (("euclidean",), {"eps": -1.0}, "eps"),
        (("euclidean",), {"eps": float("nan")}, "eps"),
        ((3,), {}, "int"),
    ],
)
def test_bad_specs_raise_informative_value_error(args, kwargs, needle):
    with pytest.raises(ValueError) as info:
        make_similarity(*args, **kwargs)
    assert needle in str(info.value)


@pytest.mark.parametrize("spec", ["js", "manhattan:smooth=0.05", "manhattan:inverse,smooth=0.05"])
def test_chunked_terms_equal_one_block(monkeypatch, spec):
    """The Jensen-Shannon and smoothed Manhattan kernels bound their B x N x I temporaries by
    chunking the cues, and reuse them from call to call; the scores and drives are the same as in
    one block, with or without an autograd graph, and whatever was computed in between."""
    from neurodyn import similarity as sim_module

    gen = torch.Generator().manual_seed(0)
    m, g = torch.rand(7, 20, generator=gen, dtype=torch.float64), torch.rand(9, 20, generator=gen, dtype=torch.float64)
    other, f = torch.rand(9, 20, generator=gen, dtype=torch.float64), torch.rand(9, 7, generator=gen, dtype=torch.float64)
    whole = sim_module.make_similarity(spec)
    expected = (whole(m, g), whole.gradient(m, g, f))
    # one chunk, held for the drive; chunks of 5 and 4 cues; one chunk over KEPT_MAX (fresh temporaries)
    for chunks, kept_max in ((9, 2**24), (5, 2**24), (9, 7 * 20)):
        monkeypatch.setattr(sim_module, "CHUNK_ELEMENTS", 7 * 20 * chunks)
        monkeypatch.setattr(sim_module.TermBuffers, "KEPT_MAX", kept_max)
        sim = sim_module.make_similarity(spec)
        for between in (None, other, None):  # the later times through reused temporaries
            if between is not None:
                sim(m, between)  # the terms of another batch in the temporaries in between
            torch.testing.assert_close(sim(m, g), expected[0], rtol=0, atol=1e-14)
            torch.testing.assert_close(sim.gradient(m, g, f), expected[1], rtol=1e-13, atol=1e-14)
            sim(m, other)
            torch.testing.assert_close(sim.gradient(m, g, f), expected[1], rtol=1e-13, atol=1e-14)
        with torch.enable_grad():
            x = g.clone().requires_grad_(True)
            sim(m, x).sum().backward()
        torch.testing.assert_close(x.grad, sim.gradient(m, g, torch.ones_like(f)), rtol=1e-12, atol=1e-12)


def test_squared_norms_are_kept_until_the_memories_change():
    from neurodyn.numerics import DERIVED
    from neurodyn.similarity import squared_norms

    memories = torch.rand(5, 3, dtype=torch.float64)
    first = squared_norms(memories)
    assert squared_norms(memories) is first  # kept
    memories.mul_(2.0)  # in place: recomputed
    torch.testing.assert_close(squared_norms(memories), (memories * memories).sum(-1))
    before = len(DERIVED)
    assert squared_norms(memories[1:]).shape == (4,) and len(DERIVED) == before  # views: not kept
    kept = squared_norms(memories)
    assert squared_norms(memories) is kept
    memories.requires_grad_(True)  # a graph is wanted: computed with it, the kept value not used
    assert squared_norms(memories).requires_grad
    memories.requires_grad_(False)
    key = ("squared_norms", id(memories))
    assert key in DERIVED
    del memories
    assert key not in DERIVED  # freed with the tensor
