"""Input validation (bad input -> a ValueError that says what was wrong) and feedforward retrieval
checked against an independent numpy reference for every similarity x separation pair."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurodyn import Monitor, Network, Solver, from_preset, simulate
from neurodyn.similarity import SIMILARITIES

try:
    import reference as ref
except ImportError:  # tests/ imported as a package
    from tests import reference as ref

N, I, B = 5, 6, 3


def _memories(seed: int = 0, positive: bool = False, n: int = N, i: int = I) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    if positive:
        return torch.rand(n, i, dtype=torch.float64, generator=gen) * 0.95 + 0.05
    return torch.randn(n, i, dtype=torch.float64, generator=gen)


@pytest.fixture
def M() -> torch.Tensor:
    return _memories()


@pytest.fixture
def net(M) -> Network:
    return Network(M, similarity="dot", separation="softmax:2")


# ====================================================================== Network construction
@pytest.mark.parametrize("shape", [(6,), (2, 3, 4), ()])
def test_memories_must_be_2d(shape):
    with pytest.raises(ValueError, match="2-D") as info:
        Network(torch.zeros(shape))
    assert str(tuple(shape)) in str(info.value)


@pytest.mark.parametrize("shape", [(0, 6), (4, 0)])
def test_empty_memories(shape):
    with pytest.raises(ValueError, match="empty"):
        Network(torch.zeros(shape))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_memories(M, bad):
    M = M.clone()
    M[1, 2] = bad
    with pytest.raises(ValueError, match="memories.*NaN or infinite"):
        Network(M)


def test_integer_memories_are_accepted_as_float():
    net = Network(torch.tensor([[1, -1, 1], [-1, 1, 1]]), similarity="dot", separation="identity")
    assert net.memories.is_floating_point()


@pytest.mark.parametrize("shape", [(N + 1, I), (N - 1, I), (N,), (I, N)])
def test_projection_needs_one_row_per_memory(M, shape):
    with pytest.raises(ValueError, match="projection") as info:
        Network(M, projection=torch.zeros(shape, dtype=torch.float64))
    assert f"({N})" in str(info.value)


def test_projection_must_be_finite(M):
    P = torch.zeros(N, 3, dtype=torch.float64)
    P[0, 0] = float("nan")
    with pytest.raises(ValueError, match="projection.*NaN"):
        Network(M, projection=P)


def test_unknown_similarity(M):
    with pytest.raises(ValueError, match="unknown similarity 'bogus'"):
        Network(M, similarity="bogus")


def test_unknown_separation(M):
    with pytest.raises(ValueError, match="bogus"):
        Network(M, separation="bogus")


def test_unknown_value_lagrangian(M):
    with pytest.raises(ValueError, match="bogus"):
        Network(M, value_lagrangian="bogus")


@pytest.mark.parametrize("field", ["tau_v", "tau_h"])
@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), float("inf")])
def test_time_constants_must_be_positive(M, field, value):
    with pytest.raises(ValueError, match=field):
        Network(M, **{field: value})


def test_unknown_dynamics(M):
    with pytest.raises(ValueError, match="unknown dynamics 'bogus'"):
        Network(M, dynamics="bogus")


def test_unknown_readout(M):
    with pytest.raises(ValueError, match="unknown readout 'bogus'"):
        Network(M, readout="bogus")


def test_normalize_separation_needs_projection_dynamics(M):
    with pytest.raises(ValueError, match="no Lagrangian") as info:
        Network(M, dynamics="gradient", separation="polynomial:2", normalize_separation=True)
    assert "projection" in str(info.value)
    Network(M, dynamics="projection", separation="polynomial:2", normalize_separation=True)  # allowed
    # softmax already sums to one: normalizing it is a no-op, allowed with gradient dynamics too
    net = Network(M, dynamics="gradient", separation="softmax:2", normalize_separation=True)
    assert net.lyapunov_guaranteed


def test_unknown_preset(M):
    with pytest.raises(ValueError, match="unknown model preset 'bogus'") as info:
        from_preset("bogus", M)
    assert "mchn" in str(info.value)  # lists the known ones


@pytest.mark.parametrize("beta", [0, -1.0, float("nan")])
def test_preset_beta_must_be_positive(M, beta):
    with pytest.raises(ValueError, match="beta"):
        from_preset("mchn", M, beta=beta)


def test_preset_beta_sets_softmax(M):
    net = from_preset("mchn", M, beta=7.0)
    assert net.separation.beta == 7.0


@pytest.mark.parametrize("preset, sep", [("hn", "identity"), ("dam", "polynomial"), ("sdm", "threshold")])
def test_beta_rejected_for_non_softmax_preset(M, preset, sep):
    with pytest.raises(ValueError, match="beta") as info:
        from_preset(preset, M, beta=2.0)
    assert sep in str(info.value) and preset in str(info.value)


def test_degree_rejected_for_softmax_preset(M):
    with pytest.raises(ValueError, match="degree"):
        from_preset("mchn", M, degree=3)


# ====================================================================== cues
@pytest.mark.parametrize("shape", [(B, I + 1), (B, I - 1), (I + 2,), (2, B, I)])
def test_cue_wrong_feature_count(net, shape):
    q = torch.zeros(shape, dtype=torch.float64)
    for call in (lambda: net.make_cue(q), lambda: net.retrieve(q)):
        with pytest.raises(ValueError, match="cue must have shape") as info:
            call()
        msg = str(info.value)
        assert f"(batch, {I})" in msg  # what was expected
        given = shape if len(shape) > 1 else (1,) + shape  # a 1-D cue is reported as a batch of one
        assert f"got {given}" in msg  # and what was given


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_cue(net, bad):
    q = torch.zeros(B, I, dtype=torch.float64)
    q[1, 1] = bad
    with pytest.raises(ValueError, match="cue contains 1 NaN or infinite"):
        net.make_cue(q)
    with pytest.raises(ValueError, match="cue contains 1 NaN or infinite"):
        net.retrieve(q)


def test_unknown_cue_mode(net):
    with pytest.raises(ValueError, match="unknown cue mode 'bogus'"):
        net.make_cue(torch.zeros(B, I, dtype=torch.float64), mode="bogus")


@pytest.mark.parametrize("shape", [(I + 1,), (B + 1, I), (2, I), (B, I, 1)])
def test_clamp_mask_wrong_shape(net, shape):
    with pytest.raises(ValueError, match="clamp mask") as info:
        net.make_cue(torch.zeros(B, I, dtype=torch.float64), clamp=torch.ones(shape, dtype=torch.bool))
    assert str(tuple(shape)) in str(info.value)


def test_clamp_mask_good_shapes(net):
    q = torch.zeros(B, I, dtype=torch.float64)
    mask = torch.zeros(I, dtype=torch.bool)
    mask[:2] = True
    cue = net.make_cue(q, clamp=mask)
    assert cue.clamp.shape == (B, I) and cue.clamp[:, :2].all() and not cue.clamp[:, 2:].any()


def test_cue_modes(net):
    q = torch.randn(B, I, dtype=torch.float64)
    c = net.make_cue(q, mode="current", strength=2.0)
    torch.testing.assert_close(c.current, 2.0 * q)
    assert (c.v0 == 0).all()
    c = net.make_cue(q, mode="both")
    torch.testing.assert_close(c.v0, q)
    torch.testing.assert_close(c.current, q)
    c = net.make_cue(q)
    torch.testing.assert_close(c.v0, q)
    assert c.current is None


@pytest.mark.parametrize("duration", [0.0, -1.0, float("nan"), float("inf")])
def test_simulate_duration_must_be_positive(net, duration):
    with pytest.raises(ValueError, match="duration must be > 0"):
        simulate(net, torch.zeros(B, I, dtype=torch.float64), duration)


def test_unknown_record_variable():
    with pytest.raises(ValueError, match="bogus") as info:
        Monitor(variables=("bogus",))
    assert "energy" in str(info.value)  # lists the known ones
    with pytest.raises(ValueError, match="bogus"):
        Monitor(variables="bogus")


def test_unknown_solver_method(net):
    with pytest.raises(ValueError, match="unknown solver method 'bogus'"):
        Solver("bogus")
    with pytest.raises(ValueError, match="unknown solver method 'bogus'"):
        simulate(net, torch.zeros(B, I, dtype=torch.float64), 1.0, method="bogus")


@pytest.mark.parametrize("field", ["rtol", "atol"])
@pytest.mark.parametrize("value", [0.0, -1e-6, float("nan")])
def test_solver_tolerances_must_be_positive(field, value):
    with pytest.raises(ValueError, match=field):
        Solver("dopri5", **{field: value})


def test_simulate_rejects_bad_cue_before_running(net):
    with pytest.raises(ValueError, match="cue"):
        simulate(net, torch.zeros(B, I + 1, dtype=torch.float64), 1.0)


# ====================================================================== feedforward retrieval
def _sim_specs():
    """(name, form, normalized) for every similarity, distances in both forms."""
    return ref.all_specs(False)


RETRIEVAL_CASES = []
for _sep in ref.SEPARATIONS:
    for _name, _form, _norm in _sim_specs():
        if _sep == "log":
            if _form == "negative":
                continue  # log needs positive scores: distances in the inverse, normalized form
            if _form == "inverse":
                _norm = True
        RETRIEVAL_CASES.append(((_name, _form, _norm), _sep))


def _case_id(case) -> str:
    sim, sep = case
    return f"{ref.spec(*sim)}-{sep}"


def test_retrieval_cases_cover_every_similarity_and_separation():
    assert {c[0][0] for c in RETRIEVAL_CASES} == set(SIMILARITIES)
    assert {c[1] for c in RETRIEVAL_CASES} == set(ref.SEPARATIONS)
    for sep in ref.SEPARATIONS:
        assert {c[0][0] for c in RETRIEVAL_CASES if c[1] == sep} == set(SIMILARITIES), sep


def _case_data(sim, sep, seed=0):
    name = sim[0]
    # log needs positive scores; Hamming is for patterns in [0, 1]; KL/JS compare distributions
    # (their eps floor on mixed-sign data is tested in test_similarity: here it would make 1/(d+eps)
    # of near one-hot vectors ill-conditioned).
    positive = sep == "log" or name in ("hamming", "kl", "reverse_kl", "js")
    M = _memories(seed, positive=positive)
    gen = torch.Generator().manual_seed(seed + 100)
    if positive:
        q = torch.rand(B, I, dtype=torch.float64, generator=gen) * 0.95 + 0.05
    else:
        q = torch.randn(B, I, dtype=torch.float64, generator=gen)
    return M, q


@pytest.mark.parametrize("case", RETRIEVAL_CASES, ids=[_case_id(c) for c in RETRIEVAL_CASES])
def test_retrieve_matches_reference(case):
    sim, sep = case
    M, q = _case_data(sim, sep)
    net = Network(M, similarity=ref.spec(*sim), separation=sep)
    got = net.retrieve(q)
    want = ref.retrieve(M.numpy(), M.numpy(), q.numpy(), sim, sep)
    assert got.shape == (B, I)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-10)


# Separations whose weights are non-negative, so that dividing by their sum is a convex combination.
NONNEG_SEPARATIONS = ("polynomial:2", "softmax:5", "max", "topk:2", "threshold:0", "sigmoid")
NORMALIZED_CASES = [(sim, sep) for sim, sep in RETRIEVAL_CASES if sep in NONNEG_SEPARATIONS]


@pytest.mark.parametrize("case", NORMALIZED_CASES, ids=[_case_id(c) for c in NORMALIZED_CASES])
def test_retrieve_with_normalized_separation_matches_reference(case):
    sim, sep = case
    M, q = _case_data(sim, sep, seed=1)
    net = Network(M, similarity=ref.spec(*sim), separation=sep, dynamics="projection",
                  normalize_separation=True)
    got = net.retrieve(q)
    want = ref.retrieve(M.numpy(), M.numpy(), q.numpy(), sim, sep, normalize_separation=True)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-10)


def test_normalized_threshold_with_no_active_memory_recalls_zeros(M):
    """SDM with no memory inside the radius: 0/0 must not produce NaN."""
    net = Network(M, similarity="euclidean", separation="threshold:0", dynamics="projection",
                  normalize_separation=True)  # -d <= 0 never exceeds 0
    out = net.retrieve(torch.randn(B, I, dtype=torch.float64))
    assert torch.isfinite(out).all() and (out == 0).all()


@pytest.mark.parametrize("sep", ["identity", "tanh", "log"])
def test_normalized_signed_separation_divides_by_its_sum(sep):
    """Signed weights (identity, tanh, log of scores < 1) can have a negative sum. Dividing by it is
    what ``normalize_separation`` promises; clamping the sum to a tiny positive number instead
    blows the output up by ~1e300. Refusing such a separation with a ValueError is also fine."""
    M = _memories(3, positive=True)
    if sep == "log":
        sim = ("manhattan", "inverse", True)  # scores in (0, 1): log < 0
        q = torch.rand(B, I, dtype=torch.float64, generator=torch.Generator().manual_seed(4)) + 0.05
    else:
        sim = ("dot", None, False)
        q = -(torch.rand(B, I, dtype=torch.float64, generator=torch.Generator().manual_seed(4)) + 0.05)
    want = ref.retrieve(M.numpy(), M.numpy(), q.numpy(), sim, sep, normalize_separation=True)
    f = ref.separation(sep, ref.similarity(*sim, M.numpy(), q.numpy()))
    assert (f.sum(-1) < -0.1).all()  # the case under test: clearly negative weight sums
    try:
        net = Network(M, similarity=ref.spec(*sim), separation=sep, dynamics="projection",
                      normalize_separation=True)
    except ValueError as err:
        assert "normaliz" in str(err)
        return
    got = net.retrieve(q)
    assert torch.isfinite(got).all()
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-10)


def test_retrieve_accepts_a_single_cue(M):
    net = Network(M, similarity="manhattan:inverse,normalized", separation="softmax:5")
    q = torch.randn(I, dtype=torch.float64)
    out = net.retrieve(q)
    assert out.shape == (1, I)
    want = ref.retrieve(M.numpy(), M.numpy(), q.numpy()[None], ("manhattan", "inverse", True), "softmax:5")
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-9, atol=1e-10)


def test_retrieve_converts_cue_dtype(M):
    net = Network(M, similarity="dot", separation="softmax:2")
    out = net.retrieve(torch.randn(B, I, dtype=torch.float32))
    assert out.dtype == torch.float64


def test_iterated_retrieval_is_the_map_applied_twice(M):
    net = Network(M, similarity="cosine", separation="softmax:5")
    q = torch.randn(B, I, dtype=torch.float64)
    once = ref.retrieve(M.numpy(), M.numpy(), q.numpy(), ("cosine", None, False), "softmax:5")
    twice = ref.retrieve(M.numpy(), M.numpy(), once, ("cosine", None, False), "softmax:5")
    np.testing.assert_allclose(net.retrieve(q, steps=2).numpy(), twice, rtol=1e-9, atol=1e-10)
    with pytest.raises(ValueError, match="steps"):
        net.retrieve(q, steps=0)


@pytest.mark.parametrize("readout", ["sign", "binary"])
def test_retrieve_applies_readout(M, readout):
    net = Network(M, similarity="dot", separation="softmax:3", readout=readout)
    q = torch.randn(B, I, dtype=torch.float64)
    raw = ref.retrieve(M.numpy(), M.numpy(), q.numpy(), ("dot", None, False), "softmax:3")
    want = np.where(raw >= 0, 1.0, -1.0) if readout == "sign" else (raw >= 0.5).astype(float)
    np.testing.assert_array_equal(net.retrieve(q).numpy(), want)


# ---------------------------------------------------------------------- heteroassociation
def test_heteroassociative_retrieval_shape_and_values(M):
    O = 3
    P = torch.randn(N, O, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    q = torch.randn(B, I, dtype=torch.float64)
    for sim, sep in ((("dot", None, False), "softmax:4"), (("euclidean", "negative", False), "topk:2")):
        net = Network(M, similarity=ref.spec(*sim), separation=sep, projection=P)
        out = net.retrieve(q)
        assert out.shape == (B, O)
        want = ref.retrieve(M.numpy(), P.numpy(), q.numpy(), sim, sep)
        np.testing.assert_allclose(out.numpy(), want, rtol=1e-9, atol=1e-10)
    assert not net.recurrent


def test_heteroassociative_iterated_retrieval_is_refused(M):
    P = torch.randn(N, 3, dtype=torch.float64)
    net = Network(M, projection=P)
    with pytest.raises(ValueError, match="iterated retrieval") as info:
        net.retrieve(torch.randn(B, I, dtype=torch.float64), steps=2)
    assert "columns" in str(info.value)


def test_gradient_dynamics_refuse_a_projection(M):
    net = Network(M, projection=torch.randn(N, M.shape[1], dtype=torch.float64))
    with pytest.raises(ValueError, match="ignore the projection"):
        net.make_cue(M[:1])
    Network(M, projection=net.projection, dynamics="projection").make_cue(M[:1])  # allowed


def test_heteroassociative_dynamics_cue_is_refused(M):
    net = Network(M, projection=torch.randn(N, 3, dtype=torch.float64), dynamics="projection")
    with pytest.raises(ValueError, match="value space"):
        net.make_cue(torch.randn(B, I, dtype=torch.float64))


def test_square_heteroassociative_projection_can_iterate(M):
    """P with O = I (but P != M) closes the loop: iterating is allowed and uses P each step."""
    P = torch.randn(N, I, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    net = Network(M, similarity="dot", separation="softmax:2", projection=P)
    q = torch.randn(B, I, dtype=torch.float64)
    once = ref.retrieve(M.numpy(), P.numpy(), q.numpy(), ("dot", None, False), "softmax:2")
    twice = ref.retrieve(M.numpy(), P.numpy(), once, ("dot", None, False), "softmax:2")
    np.testing.assert_allclose(net.retrieve(q, steps=2).numpy(), twice, rtol=1e-9, atol=1e-10)

