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
