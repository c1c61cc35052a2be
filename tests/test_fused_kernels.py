"""The similarities' fused (cue, memory, unit) kernels (neurodyn.compiling.CompiledOnceRepaid):
the smoothed Manhattan distance, its drive and the Jensen-Shannon cross terms run eagerly in
chunks until their work repays a compilation, then compiled with dynamic shapes.

The default tests trace the fused kernels with ``torch.compile``'s ``"eager"`` backend (the
trace, the shapes and the switch, without generating code); the slow test compiles them with
inductor and compares the generated code with the eager kernels.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import neurodyn.compiling as compiling
import neurodyn.similarity as similarity
from neurodyn import Solver, from_preset, simulate
from neurodyn.compiling import CompiledOnceRepaid
from neurodyn.errors import SolverWarning


@pytest.fixture(autouse=True)
def traced_only(monkeypatch, request) -> None:
    if "slow" not in request.keywords:
        monkeypatch.setattr(compiling, "BACKEND", "eager")


@pytest.fixture
def compiled_calls(monkeypatch) -> list[str]:
    """The names of the functions compiled calls ran (a spy on ``call_compiled``)."""
    calls: list[str] = []
    original = compiling.call_compiled

    def spy(fn, device, *args, dynamic=False):
        out, why = original(fn, device, *args, dynamic=dynamic)
        if why is None:
            calls.append(fn.__name__)
        return out, why

    monkeypatch.setattr(compiling, "call_compiled", spy)
    return calls


def _data(b: int, n: int = 7, i: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(n, i, generator=gen, dtype=torch.float64), torch.rand(b, i, generator=gen, dtype=torch.float64),
            torch.rand(b, n, generator=gen, dtype=torch.float64))


@pytest.mark.parametrize("spec", ["manhattan:smooth=0.05", "manhattan:inverse,normalized,smooth=0.02", "js",
                                  "js:inverse,normalized"])
def test_fused_kernels_agree_with_the_chunked_ones_as_the_batch_shrinks(monkeypatch, compiled_calls, spec) -> None:
    """Once compiled, the scores and drives are the chunked eager ones, for every batch size a
    run's working batch passes through (one graph with dynamic shapes)."""
    monkeypatch.setattr(similarity, "FUSED_AFTER", math.inf)
    chunked = similarity.make_similarity(spec)
    monkeypatch.setattr(similarity, "FUSED_AFTER", 0)
    fused = similarity.make_similarity(spec)
    for b in (9, 6, 1):
        memories, g, f = _data(b)
        torch.testing.assert_close(fused(memories, g), chunked(memories, g), rtol=1e-12, atol=1e-13)
        torch.testing.assert_close(fused.gradient(memories, g, f), chunked.gradient(memories, g, f),
                                   rtol=1e-12, atol=1e-13)
    assert compiled_calls, "the fused kernel never ran compiled"
    assert set(compiled_calls) <= {"_smooth_manhattan_fused", "_smooth_manhattan_drive_fused", "_js_cross"}


def test_a_kernel_compiles_once_its_eager_work_reaches_the_threshold(compiled_calls) -> None:
    memories, g, _ = _data(4)
    work = len(g) * memories.numel()
    kernel = CompiledOnceRepaid(similarity._js_cross, similarity._js_cross, after=2 * work)
    p, q = memories / memories.sum(-1, keepdim=True), g / g.sum(-1, keepdim=True)
    kernel(work, q, p), kernel(work, q, p)
    assert compiled_calls == [] and kernel.done == 2 * work
    kernel(work, q, p)
    assert compiled_calls == ["_js_cross"] and kernel.done == 2 * work


def test_a_kernel_that_cannot_compile_warns_once_and_runs_eagerly() -> None:
    def untraceable(x: torch.Tensor) -> torch.Tensor:
        torch._dynamo.graph_break()  # (as a call dynamo cannot trace would: fullgraph refuses it)
        return torch.exp(x)

    kernel = CompiledOnceRepaid(untraceable, torch.exp, after=0)
    x = torch.rand(3, dtype=torch.float64)
    with pytest.warns(SolverWarning, match="fused untraceable kernel could not be compiled"):
        torch.testing.assert_close(kernel(3, x), torch.exp(x))
    assert kernel.failure
    with warnings.catch_warnings():
        warnings.simplefilter("error", SolverWarning)
        torch.testing.assert_close(kernel(3, x), torch.exp(x))  # eager from now on, without a warning


def test_a_kernel_stays_eager_where_a_graph_is_wanted(compiled_calls) -> None:
    """Autograd through a kernel (the inverse form's gradient) uses the eager kernel."""
    memories, g, _ = _data(3)
    kernel = CompiledOnceRepaid(similarity._js_cross, similarity._js_cross, after=0)
    p = (g / g.sum(-1, keepdim=True)).requires_grad_(True)
    cross_p, _ = kernel(p.numel(), p, memories / memories.sum(-1, keepdim=True))
    cross_p.sum().backward()
    assert compiled_calls == [] and p.grad is not None
    with torch.no_grad():
        kernel(p.numel(), p, memories / memories.sum(-1, keepdim=True))
    assert compiled_calls == ["_js_cross"]


def test_a_run_with_fused_kernels_takes_the_eager_runs_trajectory(monkeypatch, compiled_calls) -> None:
    """Manhattan gradient dynamics on a small bank, the fused kernels switched on from the first
    call, give the eager run's trajectory and take its steps."""
    memories = torch.rand(20, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    cues = memories[:4] * 0.7
    runs = []
    for after in (math.inf, 0):
        monkeypatch.setattr(similarity, "FUSED_AFTER", after)
        network = from_preset("mchn-l2", memories, similarity="manhattan", dynamics="gradient")
        runs.append(simulate(network, cues, 3.0, method=Solver("dopri5", rtol=1e-8, atol=1e-10)))
    eager, fused = runs
    assert "_smooth_manhattan_drive_fused" in compiled_calls
    np.testing.assert_allclose(fused.v.values, eager.v.values, atol=1e-9)
    np.testing.assert_array_equal(fused.solver_steps_accepted.values, eager.solver_steps_accepted.values)


@pytest.mark.slow
def test_inductor_compiles_the_fused_kernels(monkeypatch) -> None:
    """The generated code (inductor, dynamic shapes) agrees with the eager kernels."""
    monkeypatch.setattr(similarity, "FUSED_AFTER", math.inf)
    chunked = [similarity.make_similarity(s) for s in ("manhattan:smooth=0.05", "js")]
    monkeypatch.setattr(similarity, "FUSED_AFTER", 0)
    fused = [similarity.make_similarity(s) for s in ("manhattan:smooth=0.05", "js")]
    for b in (33, 20):
        memories, g, f = _data(b, n=50, i=40, seed=b)
        for one, other in zip(fused, chunked, strict=True):
            with warnings.catch_warnings():
                warnings.simplefilter("error", SolverWarning)
                torch.testing.assert_close(one(memories, g), other(memories, g), rtol=1e-12, atol=1e-12)
                torch.testing.assert_close(one.gradient(memories, g, f), other.gradient(memories, g, f),
                                           rtol=1e-12, atol=1e-12)
