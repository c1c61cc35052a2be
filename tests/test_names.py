"""neurodyn.names: the library's names in one torch-free module, so that `neurodyn --help` answers
at once; the stages' own tables are keyed by exactly these names."""

from __future__ import annotations

import subprocess
import sys

import torch

from neurodyn import names
from neurodyn.data import corruptions, sets
from neurodyn.network import PRESETS
from neurodyn.solve import per_cue


def test_the_stages_tables_are_keyed_by_the_names():
    assert tuple(sets._LOADERS) == names.DATASETS == sets.DATASETS
    assert tuple(corruptions.CORRUPTIONS) == names.CORRUPTIONS
    assert tuple(PRESETS) == names.PRESET_NAMES
    assert set(names.PRESET_DATA) <= set(PRESETS) and set(names.PRESET_DATA.values()) <= set(names.DATASETS)
    assert set(per_cue.METHODS) <= set(names.METHODS)
    assert all(isinstance(getattr(torch, name), torch.dtype) for name in names.DTYPES)
    from neurodyn.record.monitor import RECORDED

    assert set(names.VARIABLES) - {"spikes"} <= set(RECORDED)  # (spikes: recorded as spike_time, _cue, _unit)
    assert set(names.ENCODED_RECORD) <= set(names.VARIABLES)


def test_help_and_bad_arguments_do_not_load_the_library():
    code = """
import sys
from neurodyn.cli import main
codes = [main(argv) for argv in (["--help"], ["recall", "--help"], ["sweep", "--help"], ["recall", "--n-cues", "0"],
                                 ["--version"])]
heavy = sorted(m for m in ("torch", "xarray", "numpy", "neurodyn.network", "neurodyn.cli.commands") if m in sys.modules)
print(codes, heavy)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[0, 0, 0, 2, 0] []", out
