"""The recall job (neurodyn.jobs.recall): one pipeline, a Selection and a memory kind."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from neurodyn.jobs.recall import (CodedMemory, PixelMemory, Selection, choose_and_corrupt, model_config, recall,
                                  run_encoded_recall, run_recall)
from neurodyn.record import Monitor

SMALL = Selection("digits", 20, "mask:0.25,side=bottom", seed=2, n_cues=4)


def _same(a: xr.Dataset, b: xr.Dataset) -> None:
    assert set(a.data_vars) == set(b.data_vars)
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    skip = {"created", "wall_time_s"}
    assert {k: v for k, v in a.attrs.items() if k not in skip} == {k: v for k, v in b.attrs.items() if k not in skip}


def test_pixel_recall_records_the_selection_and_recalls_the_first_n_cues() -> None:
    ds = recall(SMALL, PixelMemory(model_config("mchn-l2")), 5.0)
    assert ds.sizes["cue"] == 4 and ds.sizes["unit"] == 64
    assert ds.attrs["data"] == "digits" and ds.attrs["corruption"] == SMALL.corruption
    assert ds.attrs["image_shape"] == "[1, 8, 8]"
    np.testing.assert_array_equal(ds["target_index"].values, np.arange(4))


def test_the_selection_resizes_pixel_memories_too() -> None:
    """--image-size once applied only through a codec; the Selection applies it to every kind."""
    ds = recall(Selection("digits", 10, "none", image_size=4, n_cues=2), PixelMemory(), 2.0)
    assert ds.sizes["unit"] == 16 and ds.attrs["image_shape"] == "[1, 4, 4]"


def test_coded_memory_through_the_pixels_codec_reads_out_images() -> None:
    ds = recall(SMALL, CodedMemory("pixels"), 5.0)
    assert ds["output"].shape == (4, 1, 8, 8) and ds["correct"].shape == (4,)
    assert ds.attrs["codec"] == "pixels" and ds.attrs["image_shape"] == "[1, 8, 8]"
    assert "f" in ds and ds.sizes["cue"] == 4  # the codec kind's default monitor records the top f


def test_the_deprecated_functions_warn_and_run_the_same_pipeline() -> None:
    monitor = Monitor(("v", "energy"), n_times=11)
    with pytest.warns(DeprecationWarning, match="run_recall is deprecated"):
        old = run_recall("digits", 20, SMALL.corruption, model_config("hn"), n_cues=4, seed=2, duration=3.0,
                         monitor=monitor)
    _same(old, recall(SMALL, PixelMemory(model_config("hn")), 3.0, monitor=monitor))
    with pytest.warns(DeprecationWarning, match="run_encoded_recall is deprecated"):
        old = run_encoded_recall("digits", 20, SMALL.corruption, "pixels", n_cues=4, seed=2, duration=3.0)
    _same(old, recall(SMALL, CodedMemory("pixels"), 3.0))
    with pytest.warns(DeprecationWarning, match="choose_and_corrupt is deprecated"):
        chosen, queries = choose_and_corrupt("digits", 20, SMALL.corruption, 2)
    drawn, drawn_queries = SMALL.draw()
    assert np.array_equal(chosen.images, drawn.images) and np.array_equal(queries, drawn_queries)


@pytest.mark.parametrize("make, needle", [
    (lambda: Selection(n_cues=0), "n_cues must be >= 1"),
    (lambda: Selection(image_size=0), "image_size must be >= 1"),
    (lambda: PixelMemory(dtype="float16"), "unknown dtype 'float16'"),
    (lambda: PixelMemory(projection="top"), "unknown projection 'top'"),
    (lambda: Selection("digits", 5000).draw(), "n_memories must be between 1 and 1797"),
    (lambda: recall(Selection("digits", 5), CodedMemory("pixels", text_codec="render:pixels")), "has no captions"),
])
def test_bad_recall_settings_are_refused_by_name(make, needle) -> None:
    with pytest.raises(ValueError, match=needle):
        make()
