"""The performance paths on a CUDA device (opt in with ``-m gpu``): the Triton distance kernel,
the tiled pass and the per-cue engine against their plain references on the same GPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurodyn import Monitor, Network, Solver, from_preset, simulate
from neurodyn.network import tiled

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.fixture(scope="module")
def bank():
    torch.backends.cuda.matmul.allow_tf32 = False
    gen = torch.Generator().manual_seed(0)
    return torch.rand(5000, 784, generator=gen).cuda(), torch.rand(256, 784, generator=gen).cuda()


@pytest.mark.parametrize("p", [1, 2])
def test_the_triton_kernel_matches_cdist(bank, p):
    pytest.importorskip("triton")
    from neurodyn.triton_distance import pairwise_distance

    memories, cues = bank
    got = pairwise_distance(cues, memories, p)
    want = torch.cdist(cues.double(), memories.double(), p=float(p)).float()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("sim", ["manhattan", "euclidean", "dot", "sq_euclidean"])
def test_the_tiled_pass_matches_the_plain_one(bank, sim):
    memories, cues = bank
    net = Network(memories, similarity=sim, separation="softmax:0.05" if sim != "dot" else "softmax:0.01",
                  dynamics="projection")
    out = tiled.stream_memories(net.bank(), cues, tile=1024, top_k=5)
    h = net.scores(cues)
    torch.testing.assert_close(out.drive, net.project(net.separate(h)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.lagrangian, net.memory_lagrangian(h), rtol=1e-5, atol=1e-3)


def test_the_per_cue_engine_matches_torchdiffeq_on_the_gpu(bank):
    memories, cues = bank
    net = from_preset("mchn-l2", memories[:1000], beta=10.0)
    q = memories[:64].clone()
    q[:, 392:] = 0.0
    monitor = Monitor(("v", "energy"), n_times=21)
    ours = simulate(net, q, 10.0, monitor=monitor, method=Solver("dopri5", rtol=1e-5, atol=1e-7, engine="per-cue"))
    ref = simulate(net, q, 10.0, monitor=monitor, method=Solver("dopri5", rtol=1e-5, atol=1e-7,
                                                                 engine="torchdiffeq"))
    np.testing.assert_allclose(ours.v.values, ref.v.values, atol=1e-4)
    assert ours.attrs["host_syncs"] < ours.attrs["steps_accepted"]  # one look per 16 steps


def test_the_compiled_loop_matches_the_eager_engine_on_the_gpu(bank):
    """The per-cue engine's compiled while_loop (inductor's Triton kernels) on a GPU."""
    memories, _ = bank
    net = from_preset("mchn-l2", memories[:1000], beta=10.0)
    q = memories[:64].clone()
    q[:, 392:] = 0.0
    monitor = Monitor(("v",), n_times=21)
    solver = Solver("dopri5", rtol=1e-5, atol=1e-7, engine="per-cue")
    eager = simulate(net, q, 10.0, monitor=monitor, method=solver)
    ran = simulate(net, q, 10.0, monitor=monitor, method=Solver("dopri5", rtol=1e-5, atol=1e-7, engine="per-cue",
                                                                 compile=True))
    assert ran.attrs["solver_compiled_blocks"] > 0
    np.testing.assert_allclose(ran.v.values, eager.v.values, atol=1e-4)
