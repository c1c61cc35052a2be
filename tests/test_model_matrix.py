"""Every model the CLI can build recalls in continuous time, or is refused before any work.

The matrix of ``benchmarks/bench_models.py`` (every preset, and every similarity x {softmax,
max, polynomial} x {gradient, projection}) on the CLI's default problem, in float32 and float64,
at the CLI's solver settings: every cue ends ``finished`` or ``steady``, and the energy falls where
theory guarantees it, or ``simulate`` raises a ``ValueError`` naming the reason. The default run takes 8 of the 100 cues; ``-m slow`` all 100.
"""

from __future__ import annotations

import pytest
import torch

from neurodyn import Monitor, Solver, simulate
from neurodyn.analysis import lyapunov_check
from neurodyn.network import PRESETS
from neurodyn.jobs.recall import model_config, prepare_memory
from neurodyn.similarity import SIMILARITIES
from neurodyn.solve import FINISHED, STEADY

MODELS = [("preset", name, None, None) for name in PRESETS] + [
    ("override", sim, sep, dyn) for sim in SIMILARITIES for sep in ("softmax:10", "max", "polynomial:3")
    for dyn in ("gradient", "projection")]
IDS = [f"{name}-{sep}-{dyn}" if kind == "override" else name for kind, name, sep, dyn in MODELS]
REFUSAL_REASONS = ("cannot retrieve", "unbounded below")


def _recall(model: tuple, dtype: str, n_cues: int) -> None:
    kind, name, sep, dyn = model
    config = model_config(name) if kind == "preset" else model_config("mchn-l2", similarity=name, separation=sep,
                                                                      dynamics=dyn)
    _, net, stored, queries = prepare_memory("digits", 100, "mask:0.25,side=bottom", config, dtype=dtype)
    try:
        ds = simulate(net, queries[:n_cues], 20.0, monitor=Monitor(("v", "energy"), n_times=21),
                      method=Solver("auto", rtol=1e-5, atol=1e-7, steady_tol=1e-4), targets=stored[:n_cues])
    except ValueError as err:
        assert any(reason in str(err) for reason in REFUSAL_REASONS), err
        return
    status = ds.solver_status.values
    assert ((status == FINISHED) | (status == STEADY)).all(), ds.attrs["solver_failures"]
    assert torch.isfinite(torch.as_tensor(ds.v_final.values)).all()
    if ds.attrs["lyapunov_guaranteed"]:  # stiff and smoothed ones included
        assert lyapunov_check(ds).monotone, lyapunov_check(ds)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_every_model_completes_or_is_refused(model, dtype):
    _recall(model, dtype, 8)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_every_model_completes_or_is_refused_on_all_100_cues(model, dtype):
    _recall(model, dtype, 100)
