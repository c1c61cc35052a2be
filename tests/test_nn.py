"""neurodyn.nn: associative memories as torch layers (gradients, hopfield-layers' attention, training)."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

from neurodyn import Monitor, simulate
from neurodyn.nn import AssociativeMemory, ContinuousTime, Hopfield, OneShot, recall
from neurodyn.similarity import SIMILARITIES, make_similarity

F64 = torch.float64


def _mha_like(layer: Hopfield) -> torch.nn.MultiheadAttention:
    """torch's multi-head attention with the layer's weights (the plain reference)."""
    size = layer.query.in_features
    mha = torch.nn.MultiheadAttention(size, layer.num_heads, batch_first=True).double()
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([layer.query.weight, layer.key.weight, layer.value.weight]))
        mha.in_proj_bias.copy_(torch.cat([layer.query.bias, layer.key.bias, layer.value.bias]))
        mha.out_proj.weight.copy_(layer.out.weight)
        mha.out_proj.bias.copy_(layer.out.bias)
    return mha


@pytest.mark.parametrize("heads", [1, 2, 4])
def test_the_default_hopfield_layer_is_layer_normed_multi_head_attention(heads):
    torch.manual_seed(heads)
    layer = Hopfield(16, num_heads=heads).double()
    for norm in (layer.norm_stored, layer.norm_state, layer.norm_projection):  # affine, not the identity
        torch.nn.init.normal_(norm.weight)
        torch.nn.init.normal_(norm.bias)
    stored, state, projection = (torch.randn(3, n, 16, dtype=F64) for n in (7, 5, 7))
    expected, _ = _mha_like(layer)(layer.norm_state(state), layer.norm_stored(stored),
                                   layer.norm_projection(projection))
    torch.testing.assert_close(layer((stored, state, projection)), expected, rtol=1e-12, atol=1e-12)


def test_iterated_updates_move_the_queries_in_the_key_space():
    torch.manual_seed(0)
    keys, values, q = torch.randn(6, 4, 5, dtype=F64), torch.randn(6, 4, 3, dtype=F64), torch.randn(6, 2, 5, dtype=F64)
    sim, sep = make_similarity("dot"), torch.nn.functional.softmax
    from neurodyn.lagrangians import make_lagrangian

    lse = make_lagrangian("softmax:0.7")
    x = q
    for _ in range(2):
        x = sep(0.7 * x @ keys.transpose(1, 2), dim=-1) @ keys
    expected = sep(0.7 * x @ keys.transpose(1, 2), dim=-1) @ values
    torch.testing.assert_close(recall(sim, lse, keys, values, q, OneShot(3)), expected)
    with pytest.raises(ValueError, match="in the keys' space: queries have 3 features, keys 5"):
        recall(sim, lse, keys, values, values[:, :2], OneShot(2))


@pytest.mark.parametrize("name", SIMILARITIES)
def test_every_similarity_of_the_library_serves_the_layer(name):
    torch.manual_seed(0)
    layer = Hopfield(8, num_heads=2, similarity=name).double()
    x = torch.rand(2, 5, 8, dtype=F64)
    out = layer(x)
    assert out.shape == (2, 5, 8) and torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(layer.key.weight.grad).all()


def test_gradcheck_one_shot_recall_in_queries_memories_and_projection():
    torch.manual_seed(0)
    memories = torch.randn(6, 4, dtype=F64, requires_grad=True)
    projection = torch.randn(6, 3, dtype=F64, requires_grad=True)
    queries = torch.randn(5, 4, dtype=F64, requires_grad=True)
    for sim in ("dot", "sq_euclidean", "cosine"):
        layer = AssociativeMemory(6, 4, 3, similarity=sim, separation="softmax:2")

        def run(q, m, p, layer=layer):
            return recall(layer.similarity, layer.separation, m, p, q, OneShot(2 if p is m else 1))

        assert gradcheck(run, (queries, memories, projection))
        assert gradcheck(lambda q, m: run(q, m, m), (queries, memories))


def test_gradcheck_continuous_time_recall_through_the_solver():
    torch.manual_seed(0)
    memories = torch.randn(5, 3, dtype=F64, requires_grad=True)
    queries = torch.randn(4, 3, dtype=F64, requires_grad=True)
    layer = AssociativeMemory(5, 3, separation="softmax:2")
    how = ContinuousTime(2.0, method="rk4", step_size=0.25)
    assert gradcheck(lambda q, m: recall(layer.similarity, layer.separation, m, m, q, how), (queries, memories))


def test_adjoint_gradients_agree_with_backpropagation_through_the_solver():
    torch.manual_seed(1)
    memories = torch.randn(8, 4, dtype=F64)
    queries = torch.randn(5, 4, dtype=F64)
    grads = []
    for adjoint in (False, True):
        layer = AssociativeMemory(8, 4, memories=memories, separation="softmax:3",
                                  recall=ContinuousTime(3.0, rtol=1e-10, atol=1e-12, adjoint=adjoint))
        q = queries.clone().requires_grad_(True)
        layer(q).pow(2).sum().backward()
        grads.append((q.grad, layer.memories.grad))
    for direct, adjoint in zip(*grads, strict=True):
        torch.testing.assert_close(adjoint, direct, rtol=1e-6, atol=1e-8)


def test_continuous_time_recall_reaches_the_networks_steady_state():
    """The layer's flow is the library's projection dynamics: its q(T) is simulate's v(T)."""
    torch.manual_seed(2)
    layer = AssociativeMemory(10, 6, separation="softmax:4", recall=ContinuousTime(8.0, rtol=1e-9, atol=1e-11))
    layer.double()
    queries = torch.randn(3, 6, dtype=F64)
    ds = simulate(layer.network(), queries, 8.0, monitor=Monitor(("v",), n_times=2))
    from neurodyn.nn.recall import _integrate

    flow = lambda t, v: recall(layer.similarity, layer.separation, layer.memories, layer.memories, v,  # noqa: E731
                               OneShot()) - v
    with torch.no_grad():
        q_end = _integrate(flow, queries, layer.how, layer.memories)
    torch.testing.assert_close(q_end, torch.as_tensor(ds.v_final.values), rtol=1e-6, atol=1e-7)


def test_a_memory_classifier_learns_the_digits():
    """Real data: scikit-learn's 8x8 digits; 20 learned memories whose projections are class
    logits. Held out, the untrained layer is at chance; trained, it is well above it."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    train, test = order[:1297], order[1297:]
    torch.manual_seed(0)
    layer = AssociativeMemory(20, 64, 10, similarity="sq_euclidean", separation="softmax:1")

    def accuracy() -> float:
        with torch.no_grad():
            return (layer(x[test]).argmax(-1) == y[test]).float().mean().item()

    before = accuracy()
    opt = torch.optim.Adam(layer.parameters(), lr=0.05)
    for _ in range(100):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(layer(x[train]), y[train]).backward()
        opt.step()
    after = accuracy()
    assert before < 0.2 and after > 0.9 and after - before > 0.7, (before, after)


def test_bad_layer_settings_are_refused_by_name():
    with pytest.raises(ValueError, match=r"memories must be \(4, 3\)"):
        AssociativeMemory(4, 3, memories=torch.zeros(3, 3))
    with pytest.raises(ValueError, match="one row per memory"):
        AssociativeMemory(4, 3, projection=torch.zeros(3, 2))
    with pytest.raises(ValueError, match="needs a step_size"):
        ContinuousTime(method="rk4")
    with pytest.raises(ValueError, match="unknown method 'rosenbrock23'"):
        ContinuousTime(method="rosenbrock23")
    with pytest.raises(ValueError, match="steps must be a whole number >= 1"):
        OneShot(0)
    with pytest.raises(ValueError, match="divisible by num_heads"):
        Hopfield(10, num_heads=3)


def test_hflayers_itself_gives_the_same_attention():
    """Against hopfield-layers' own Hopfield on its defaults, where it is installed (it is not on
    PyPI; docs/decisions.md gives the result of this comparison against its repository)."""
    hflayers = pytest.importorskip("hflayers")
    torch.manual_seed(0)
    theirs = hflayers.Hopfield(input_size=16, num_heads=2, update_steps_max=1, update_steps_eps=1e-30).double()
    ours = Hopfield(16, num_heads=2, recall=OneShot(2)).double()
    w, b = theirs.association_core.in_proj_weight, theirs.association_core.in_proj_bias
    with torch.no_grad():
        for k, lin in enumerate((ours.query, ours.key, ours.value)):
            lin.weight.copy_(w[16 * k:16 * (k + 1)])
            lin.bias.copy_(b[16 * k:16 * (k + 1)])
        ours.out.load_state_dict(theirs.association_core.out_proj.state_dict())
    patterns = tuple(torch.randn(3, n, 16, dtype=F64) for n in (7, 5, 7))
    torch.testing.assert_close(ours(patterns), theirs(patterns), rtol=1e-12, atol=1e-12)
