"""The tiled pass over the memory bank (neurodyn.network.tiled) against the plain B x N computation."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch

from neurodyn import Monitor, Network, simulate
from neurodyn.network import tiled
from neurodyn.network import State
from neurodyn.similarity import make_similarity

SIMILARITIES = ("dot", "biased_dot", "sq_euclidean", "manhattan", "euclidean", "cosine", "kl",
                "manhattan:inverse,normalized")
SEPARATIONS = ("softmax:3", "max", "polynomial:3", "identity", "sigmoid", "threshold:0.1")


@pytest.fixture(scope="module")
def bank():
    gen = torch.Generator().manual_seed(0)
    memories = torch.rand(50, 12, generator=gen, dtype=torch.float64)
    projection = torch.rand(50, 7, generator=gen, dtype=torch.float64)
    g = torch.rand(9, 12, generator=gen, dtype=torch.float64)
    return memories, projection, g


def _networks(memories):
    for sim, sep, dyn, norm in itertools.product(SIMILARITIES, SEPARATIONS, ("gradient", "projection"),
                                                 (False, True)):
        try:
            yield Network(memories, similarity=sim, separation=sep, dynamics=dyn, normalize_separation=norm)
        except ValueError:  # normalizing a separation without a Lagrangian under gradient dynamics
            continue


@pytest.mark.parametrize("project", [False, True])
def test_tiles_give_the_plain_drive_lagrangian_and_top_k(bank, project):
    memories, _, g = bank
    checked = 0
    for net in _networks(memories):
        if not net.bank(project).streamable():
            assert net.similarity.normalized and net.dynamics == "gradient" and not project
            continue
        out = tiled.stream_memories(net.bank(project), g, tile=7, top_k=4)  # 50 = 7 x 7 + 1
        h = net.scores(g)
        f = net.separate(h)
        want = net.project(f) if project else net.drive(g, f)
        label = f"{net.similarity.name} {net.separation.describe()} {net.dynamics} norm={net.normalize_separation}"
        torch.testing.assert_close(out.drive, want, rtol=1e-10, atol=1e-10, msg=label)
        torch.testing.assert_close(out.lagrangian, net.memory_lagrangian(h), rtol=1e-10, atol=1e-10, msg=label)
        order = torch.argsort(h, dim=-1, descending=True, stable=True)[:, :4]
        assert torch.equal(out.indices, order), label
        torch.testing.assert_close(out.scores, h.gather(-1, order))
        checked += 1
    assert checked > 100


def test_ties_go_to_the_lower_index_across_tiles():
    memories = torch.zeros(10, 3, dtype=torch.float64)
    memories[[2, 5, 9]] = 1.0  # three equal best memories in different tiles
    net = Network(memories, similarity="dot", separation="max", dynamics="projection")
    out = tiled.stream_memories(net.bank(), torch.ones(2, 3, dtype=torch.float64), tile=3, top_k=3)
    assert out.indices.tolist() == [[2, 5, 9], [2, 5, 9]]
    torch.testing.assert_close(out.drive, memories[[2, 2]])


def test_tiles_never_score_more_than_a_tile(bank):
    memories, _, g = bank
    seen = []
    manhattan = make_similarity("manhattan")
    spy = dataclasses.replace(manhattan, score=lambda m, x: seen.append(m.shape[0]) or manhattan.score(m, x))
    tiled.stream_memories(Network(memories, similarity=spy, separation="softmax:2").bank(), g, tile=8)
    assert max(seen) == 8 and sum(seen) == memories.shape[0]


def test_a_network_streams_only_when_the_bank_exceeds_one_tile(bank, monkeypatch):
    memories, _, g = bank
    net = Network(memories, similarity="manhattan", separation="softmax:2")
    assert not net.streams(len(g))
    monkeypatch.setattr(tiled, "TILE_ELEMENTS", 9 * 8)
    assert net.streams(len(g))
    assert not Network(memories, separation="topk:3").streams(len(g))
    assert not Network(memories, tau_h=1.0).streams(len(g))


@pytest.mark.parametrize("sim,sep,dyn", [("manhattan", "softmax:4", "gradient"), ("dot", "polynomial:2", "gradient"),
                                         ("manhattan:inverse,normalized", "softmax:50", "projection"),
                                         ("sq_euclidean", "max", "projection")])
def test_velocity_energy_and_retrieval_stream_to_the_same_numbers(bank, monkeypatch, sim, sep, dyn):
    memories, _, g = bank
    net = Network(memories, similarity=sim, separation=sep, dynamics=dyn,
                  normalize_separation=dyn == "projection")
    cue = net.make_cue(g, "both")
    state = State(g)
    plain = (net.velocity(state, cue).v, net.energy(state, cue)["total"], net.retrieve(g, steps=2))
    monkeypatch.setattr(tiled, "TILE_ELEMENTS", 9 * 6)
    assert net.streams(len(g))
    streamed = (net.velocity(state, cue).v, net.energy(state, cue)["total"], net.retrieve(g, steps=2))
    for a, b in zip(plain, streamed):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_a_run_records_the_same_when_streamed(bank, monkeypatch):
    memories, _, g = bank
    net = Network(memories, similarity="manhattan", separation="softmax:20")
    monitor = Monitor(("v", "energy", "f", "h"), n_times=6, top_k=3)
    plain = simulate(net, g, 2.0, monitor=monitor, method="rk4")
    monkeypatch.setattr(tiled, "TILE_ELEMENTS", 6 * 9 * 5)  # the recorder sees 6 times x 9 cues at once
    streamed = simulate(net, g, 2.0, monitor=monitor, method="rk4")
    for name in ("v", "energy", "f", "h"):
        torch.testing.assert_close(torch.as_tensor(streamed[name].values), torch.as_tensor(plain[name].values),
                                   rtol=1e-9, atol=1e-12)
    assert (streamed.memory_index.values == plain.memory_index.values).all()


def test_unstreamable_networks_are_refused_by_name(bank):
    memories, _, g = bank
    with pytest.raises(ValueError, match="topk"):
        tiled.stream_memories(Network(memories, separation="topk:2").bank(), g)
    with pytest.raises(ValueError, match="normalized"):
        tiled.stream_memories(Network(memories, similarity="manhattan:inverse,normalized").bank(), g)


def test_heteroassociative_projection_streams(bank):
    memories, projection, g = bank
    net = Network(memories, projection=projection, similarity="manhattan", separation="softmax:5",
                  dynamics="projection")
    out = tiled.stream_memories(net.bank(), g, tile=6)
    torch.testing.assert_close(out.drive, net.project(net.separate(net.scores(g))), rtol=1e-10, atol=1e-10)


def test_a_network_in_place_of_a_bank_still_streams_for_one_release(bank):
    memories, _, g = bank
    net = Network(memories, similarity="manhattan", separation="softmax:3")
    with pytest.warns(DeprecationWarning, match="takes a Bank"):
        old = tiled.stream_memories(net, g, tile=7, project=True)
    new = tiled.stream_memories(net.bank(project=True), g, tile=7)
    assert torch.equal(old.drive, new.drive) and torch.equal(old.lagrangian, new.lagrangian)
    with pytest.warns(DeprecationWarning, match="takes a Bank"):
        assert not tiled.streamable(Network(memories, tau_h=1.0))  # slow memory neurons do not stream
