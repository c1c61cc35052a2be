"""Compiled blocks of LIF spiking steps (issue 19, item 2; neurodyn.spiking.compiled).

As in tests/test_compiled.py, the default tests trace the block with ``torch.compile``'s
``"eager"`` backend (it checks that the block traces whole and runs what was traced); the test
marked slow compiles with inductor.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import neurodyn.compiling as compiling
from neurodyn import Monitor, simulate
from neurodyn.network import Network
from neurodyn.spiking import LIF, Poisson, SpikingMemory

F64 = torch.float64


@pytest.fixture(autouse=True)
def traced_only(monkeypatch, request) -> None:
    if "slow" not in request.keywords:
        monkeypatch.setattr(compiling, "BACKEND", "eager")


def network(n: int = 12, i: int = 24, similarity: str = "biased_dot") -> tuple[Network, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    m = torch.randn(n, i, generator=gen, dtype=F64) / 4
    q = m[:5] + 0.3 * torch.randn(5, i, generator=gen, dtype=F64) / 4
    return Network(m, similarity, "softmax:6", tau_v=10.0), q


def events(ds) -> np.ndarray:
    return np.stack([ds.spike_time.values, ds.spike_cue.values, ds.spike_unit.values], axis=1)


def run_both(net, q, spiking: SpikingMemory, duration: float = 30.0, n_times: int = 5, **kw):
    # Bins of 75 or 5 steps are not whole blocks of 10: the last block of a bin masks steps.
    mon = Monitor(("v", "energy", "spikes"), n_times=n_times)
    eager = simulate(net, q, duration, method=dataclasses.replace(spiking, compile=False), monitor=mon, seed=1, **kw)
    ran = simulate(net, q, duration, method=dataclasses.replace(spiking, compile=True), monitor=mon, seed=1, **kw)
    return eager, ran


@pytest.mark.parametrize("path", ["dense", "memory"])
@pytest.mark.parametrize("neuron", [LIF(bias=1.0, gain=0.8, w_inh=0.5),
                                    LIF(bias=1.0, gain=0.8, w_inh=0.5, readout_rate=100.0),
                                    LIF(bias=1.0, gain=0.8, w_inh=0.5, gamma_hz=40.0, gamma_amplitude=1.0)])
def test_compiled_blocks_fire_the_eager_runs_spikes(path, neuron) -> None:
    net, q = network()
    eager, ran = run_both(net, q, SpikingMemory(neuron, dt=0.1, path=path), n_times=61 if path == "dense" else 5)
    assert ran.attrs["spiking_compiled_blocks"] > 0 and eager.attrs["spiking_compiled_blocks"] == 0
    assert eager.attrs["n_spikes"] > 20 and len(set(eager.spike_unit.values.tolist())) > 5
    assert np.array_equal(events(ran), events(eager))
    # The same steps in float64; v stepped every step instead of in closed form (memory path).
    np.testing.assert_allclose(ran.v.values, eager.v.values, atol=1e-12)
    np.testing.assert_allclose(ran.energy.values, eager.energy.values, atol=1e-12)
    assert ran.attrs["spiking_compile"] == 1


def test_a_block_where_a_cue_fires_many_neurons_at_once_runs_eagerly() -> None:
    # No inhibition and a strong equal drive: all twelve neurons cross the threshold together.
    net, q = network(similarity="dot")
    lif = LIF(bias=2.0, gain=0.0, w_inh=0.0, readout_rate=100.0, refractory=0.0)
    eager, ran = run_both(net, q, SpikingMemory(lif, dt=0.1, path="memory"), duration=20.0, n_times=3)
    assert ran.attrs["spiking_blocks_redone"] > 0 and ran.attrs["spiking_compiled_blocks"] > 0
    assert np.array_equal(events(ran), events(eager))
    np.testing.assert_allclose(ran.v.values, eager.v.values, atol=1e-12)


def test_a_long_run_compiles_by_itself(monkeypatch) -> None:
    net, q = network()
    lif = SpikingMemory(LIF(bias=1.0, gain=0.8, w_inh=0.5), dt=0.1)
    short = simulate(net, q, 10.0, method=lif, seed=0)
    assert short.attrs["spiking_compiled_blocks"] == 0
    monkeypatch.setattr("neurodyn.spiking.run.REPAYS_AFTER", 100)  # (as if 10 ms were long)
    long = simulate(net, q, 10.0, method=lif, seed=0)
    assert long.attrs["spiking_compiled_blocks"] > 0
    assert np.array_equal(events(long), events(short))


def test_a_process_compiles_more_configurations_than_dynamos_default_eight() -> None:
    net, q = network()
    for k in range(10):  # (each gain is a constant of its own graph)
        lif = LIF(bias=1.0, gain=0.8 + 0.01 * k, w_inh=0.5)
        ds = simulate(net, q, 2.0, method=SpikingMemory(lif, dt=0.1, compile=True), seed=1)
        assert ds.attrs["spiking_compiled_blocks"] == 20


def test_compile_where_it_does_not_apply_is_a_clear_error() -> None:
    net, q = network()
    with pytest.raises(ValueError, match="compile applies to LIF neurons"):
        SpikingMemory(Poisson(), compile=True)
    with pytest.raises(ValueError, match="compile must be True, False or None"):
        SpikingMemory(LIF(), compile="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="compile=True does not apply: spiking value neurons"):
        simulate(net, q, 5.0, method=SpikingMemory(LIF(), value_rate=200.0, compile=True), seed=0)
    # The default leaves such runs eager without a word.
    ds = simulate(net, q, 5.0, method=SpikingMemory(Poisson(), dt=0.1), seed=0)
    assert ds.attrs["spiking_compiled_blocks"] == 0


@pytest.mark.slow
def test_an_inductor_compiled_spiking_run_fires_the_eager_runs_spikes() -> None:
    net, q = network()
    eager, ran = run_both(net, q, SpikingMemory(LIF(bias=1.0, gain=0.8, w_inh=0.5), dt=0.1, path="memory"))
    assert ran.attrs["spiking_compiled_blocks"] > 0
    assert np.array_equal(events(ran), events(eager))
    np.testing.assert_allclose(ran.v.values, eager.v.values, atol=1e-9)


def test_an_interrupted_compiled_run_resumes_to_the_uninterrupted_run(tmp_path, monkeypatch) -> None:
    from neurodyn import ZarrStore
    from neurodyn.spiking import run as spiking_run

    net, q = network()
    kw = dict(method=SpikingMemory(LIF(bias=1.0, gain=0.8, w_inh=0.5), dt=0.1, compile=True), seed=2,
              monitor=Monitor(("v", "spikes", "rate"), n_times=31))
    ref = simulate(net, q, 30.0, **kw)
    store = ZarrStore(tmp_path / "spikes.zarr", chunk_times=5)
    calls = {"n": 0}
    block = spiking_run.compiled_block

    def interrupted(*args):
        calls["n"] += 1
        if calls["n"] == 17:
            raise KeyboardInterrupt
        return block(*args)

    with monkeypatch.context() as patch:
        patch.setattr(spiking_run, "compiled_block", interrupted)
        with pytest.raises(KeyboardInterrupt):
            simulate(net, q, 30.0, store=store, **kw)
    ds = simulate(net, q, 30.0, store=store, **kw)
    for name in ("v", "spike_time", "spike_unit", "spike_cue", "rate"):
        np.testing.assert_array_equal(ds[name].values, ref[name].values, err_msg=name)
    assert ds.attrs["n_spikes"] == ref.attrs["n_spikes"] > 0
