"""The package's facade: ``import neurodyn`` (and a codec) loads no heavy stack; names resolve lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("xarray", "torchdiffeq", "scipy", "matplotlib", "sklearn", "h5netcdf", "zarr")


@pytest.mark.parametrize("statement", ["import neurodyn", "import neurodyn.codecs",
                                       "from neurodyn.codecs import train"])
def test_importing_the_package_or_a_codec_loads_no_solver_or_xarray(statement):
    code = f"import sys; {statement}; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_public_names_and_submodules_resolve_on_first_use():
    import neurodyn

    for name in neurodyn.__all__:
        assert getattr(neurodyn, name) is not None
    from neurodyn.simulation import simulate

    assert neurodyn.simulate is simulate
    assert neurodyn.analysis.__name__ == "neurodyn.analysis"
    assert set(neurodyn.__all__) <= set(dir(neurodyn))
    with pytest.raises(AttributeError, match="no attribute 'simulat'"):
        neurodyn.simulat  # noqa: B018


def test_every_public_name_has_a_home():
    import neurodyn

    assert sorted(neurodyn.__all__) == sorted(neurodyn._EXPORTS)


@pytest.mark.parametrize(("old", "new", "names"), [
    ("neurodyn.stepper", "neurodyn.solve", ("PerCueSolve", "CueStats", "STATUS_NAMES", "STEADY")),
    ("neurodyn.integrate", "neurodyn.solve", ("Solver", "SolverError", "Block", "SolverStats")),
    ("neurodyn.fused", "neurodyn.network.tiled", ("stream_memories", "streamable", "MemoryPass", "TILE_ELEMENTS")),
    ("neurodyn.recall", "neurodyn.jobs.recall", ("run_recall", "prepare_memory", "model_config")),
    ("neurodyn.protocols", "neurodyn.jobs.protocols", ("one_step_point", "spiking_point")),
    ("neurodyn.encoded_protocols", "neurodyn.jobs.encoded_protocols", ("hen_capacity_point", "code_cache")),
    ("neurodyn.experiment", "neurodyn.jobs.experiment", ("run_experiment", "load_experiment")),
    ("neurodyn.sweep", "neurodyn.scale.sweep", ("run_sweep", "Grid", "resolve_function")),
    ("neurodyn.shard", "neurodyn.scale.shard", ("shard_network", "shard_bounds", "Shards")),
    ("neurodyn.bank", "neurodyn.memory.bank", ("MemoryBank",)),
    ("neurodyn.encoded", "neurodyn.memory.encoded", ("EncodedMemory", "default_model"))])
def test_moved_modules_keep_their_names_for_one_release_and_say_so(old, new, names):
    """Modules moved into the packages by stage (issue 16): the old module paths still resolve to
    the same objects, with a DeprecationWarning naming the new home."""
    code = (f"import warnings, importlib; warnings.simplefilter('error', DeprecationWarning)\n"
            f"try:\n    importlib.import_module({old!r})\nexcept DeprecationWarning as w:\n    print(w)")
    said = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert old in said and new in said
    import importlib

    with pytest.warns(DeprecationWarning):
        module = importlib.reload(importlib.import_module(old))
    for name in names:
        assert getattr(module, name) is getattr(importlib.import_module(new), name)


def test_a_network_prints_in_one_line_without_its_memories():
    import torch

    from neurodyn import from_preset

    net = from_preset("mchn-l2", torch.rand(1000, 784))
    text = repr(net)
    assert "\n" not in text and "tensor" not in text and len(text) < 200
    assert text == ("Network(mchn-l2: N=1000, I=784, biased_dot, softmax(beta=10), gradient dynamics, tau_v=1, "
                    "fast memory, float32 on cpu)")


def test_settings_objects_print_what_differs_from_their_defaults():
    from neurodyn import Monitor, Solver, ZarrStore
    from neurodyn.spiking import LIF, Poisson, SpikingMemory

    assert repr(Solver()) == "Solver()" and repr(Solver("rk4", step_size=0.1)) == "Solver(method='rk4', step_size=0.1)"
    assert repr(Monitor(("v", "f"), top_k=5)) == "Monitor(variables=('v', 'f'), top_k=5)"
    assert repr(SpikingMemory(Poisson(r_max=400.0), dt=0.05)) == "SpikingMemory(neuron=Poisson(r_max=400.0), dt=0.05)"
    assert repr(SpikingMemory(LIF(tau_m=20.0))) == "SpikingMemory(neuron=LIF(tau_m=20.0))"
    assert repr(ZarrStore("run.zarr")) == "ZarrStore(path='run.zarr')"
