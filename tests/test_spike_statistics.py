"""Spike-train statistics (neurodyn.analysis), their figures (neurodyn.plot) and the export of
spike events to Neo and to the NWB Units layout (neurodyn.export), on spike records built by hand."""

from __future__ import annotations

import json
import sys

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import xarray as xr

from neurodyn import analysis as A
from neurodyn import export as E
from neurodyn import plot as P

DT = 1.0  # ms


def spike_dataset(events: list[tuple[float, int, int]] | np.ndarray, n_cues: int, n_units: int,
                  duration: float = 100.0, dt: float = DT, image: tuple[int, int, int] | None = None) -> xr.Dataset:
    """A spiking run's record from (time ms, cue, unit) events, with the population rate on the
    grid 0, dt, ..., duration (spikes in (t_{k-1}, t_k] over dt, NaN at 0) and query/recalled/
    target vectors of 12 units (or of an ``image`` shape)."""
    ev = np.asarray(events, dtype=np.float64).reshape(-1, 3)
    ev = ev[np.lexsort((ev[:, 2], ev[:, 1], ev[:, 0]))]
    time, cue, unit = ev[:, 0], ev[:, 1].astype(np.int64), ev[:, 2].astype(np.int64)
    grid = np.arange(round(duration / dt) + 1) * dt
    k = np.ceil(np.round(time / dt, 9)).astype(np.int64)
    counts = np.zeros((len(grid), n_cues))
    np.add.at(counts, (k, cue), 1.0)
    rate = counts / (dt / 1000.0)
    rate[0] = np.nan
    n_values = 12 if image is None else int(np.prod(image))
    vectors = np.random.default_rng(0).uniform(size=(3, n_cues, n_values))
    ds = xr.Dataset({
        "spike_time": ("spike", time, {"units": "ms", "long_name": "spike time"}),
        "spike_cue": ("spike", cue),
        "spike_unit": ("spike", unit),
        "population_rate": (("time", "cue"), rate, {"units": "Hz", "long_name": "population rate"}),
        "query": (("cue", "unit"), vectors[0]),
        "recalled": (("cue", "unit"), vectors[1]),
        "target": (("cue", "unit"), vectors[2]),
    }, coords={"time": ("time", grid, {"units": "ms"}), "cue": np.arange(n_cues)},
        attrs={"n_spiking_units": n_units, "dt": dt, "duration": duration, "spiking": "{}"})
    if image is not None:
        ds.attrs["image_shape"] = json.dumps(list(image))
    return ds


def regular(periods: dict[int, float], cues: range, duration: float = 100.0) -> list[tuple[float, int, int]]:
    """Unit u fires every periods[u] ms from periods[u] on, in every cue."""
    return [(float(t), c, u) for c in cues for u, p in periods.items() for t in np.arange(p, duration + 1e-9, p)]


def poisson(rate_hz: float, n_cues: int, n_units: int, duration: float, seed: int = 0) -> np.ndarray:
    """Homogeneous Poisson trains: a Poisson count per (cue, unit), times uniform in (0, duration]."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(rate_hz * duration / 1000.0, size=(n_cues, n_units))
    cue, unit = np.repeat(np.arange(n_cues), n_units), np.tile(np.arange(n_units), n_cues)
    owner = np.repeat(np.arange(n_cues * n_units), counts.ravel())
    times = duration - rng.uniform(0.0, duration, size=owner.size)  # (0, duration]
    return np.column_stack([times, cue[owner], unit[owner]])


# regular_ds in 10 ms bins: 800 Hz from units 0-2, plus unit 3's spikes at 20 and 70 ms
POPULATION_PSTH = np.array([800.0, 900.0, 800.0, 800.0, 800.0, 800.0, 900.0, 800.0, 800.0, 800.0])


@pytest.fixture(scope="module")
def regular_ds() -> xr.Dataset:
    """3 identical cues; units fire every 2, 5 and 10 ms; unit 3 twice, unit 4 never."""
    events = regular({0: 2.0, 1: 5.0, 2: 10.0}, range(3))
    events += [(t, c, 3) for c in range(3) for t in (20.0, 70.0)]
    return spike_dataset(events, n_cues=3, n_units=5)


@pytest.fixture(scope="module")
def poisson_ds() -> xr.Dataset:
    return spike_dataset(poisson(50.0, n_cues=200, n_units=20, duration=1000.0), 200, 20, duration=1000.0)


# ----------------------------------------------------------------------------- counts and rates
def test_counts_and_rates_of_regular_trains(regular_ds):
    counts = A.spike_counts(regular_ds)
    assert counts.dims == ("cue", "spiking_unit") and counts.attrs["units"] == "1"
    np.testing.assert_array_equal(counts.values, [[50, 20, 10, 2, 0]] * 3)
    rates = A.firing_rates(regular_ds)
    assert rates.attrs["units"] == "Hz" and rates.attrs["long_name"]
    np.testing.assert_array_equal(rates.values, [[500.0, 200.0, 100.0, 20.0, 0.0]] * 3)
    # half the window: t in (0, 50]
    np.testing.assert_array_equal(A.firing_rates(regular_ds, t_stop=50.0).values[0], [500, 200, 100, 20, 0])


def test_binned_counts(regular_ds):
    counts = A.spike_counts(regular_ds, bin_ms=10.0)
    assert counts.dims == ("bin", "cue", "spiking_unit") and counts["bin"].attrs["units"] == "ms"
    np.testing.assert_allclose(counts["bin"].values, np.arange(5.0, 100.0, 10.0))
    np.testing.assert_array_equal(counts.values[:, 0, :3], [[5, 2, 1]] * 10)
    np.testing.assert_array_equal(counts.sum("bin").values, A.spike_counts(regular_ds).values)
    cut = A.spike_counts(regular_ds, bin_ms=30.0)  # a last partial bin is dropped
    assert cut.sizes["bin"] == 3 and cut.attrs["t_stop"] == 90.0


def test_window_is_left_open_and_edges_are_exact():
    ds = spike_dataset([(0.0, 0, 0), (10.0, 0, 0), (10.0, 0, 1)], n_cues=1, n_units=2, duration=10.0)
    np.testing.assert_array_equal(A.spike_counts(ds).values, [[1, 1]])  # t = 0 is out, t = t_stop is in
    times = np.arange(1, 11) * 0.1  # 0.30000000000000004 and friends fall on bin edges
    ds = spike_dataset([(t, 0, 0) for t in times], n_cues=1, n_units=1, duration=1.0, dt=0.1)
    np.testing.assert_array_equal(A.spike_counts(ds, bin_ms=0.1).values[:, 0, 0], np.ones(10))


def test_cue_subset_drops_the_other_cues_spikes(regular_ds):
    sub = regular_ds.isel(cue=[1])
    np.testing.assert_array_equal(A.spike_counts(sub).values, [[50, 20, 10, 2, 0]])
    assert list(A.spike_counts(sub)["cue"].values) == [1]


# ----------------------------------------------------------------------------- ISI CV, Fano, correlations
def test_isi_cv_regular_is_zero_and_nan_below_three_spikes(regular_ds):
    cv = A.isi_cv(regular_ds)
    assert cv.dims == ("cue", "spiking_unit")
    np.testing.assert_array_equal(cv.values[:, :3], 0.0)
    assert np.isnan(cv.values[:, 3:]).all()  # two spikes, no spike
    # a known irregular train: intervals 3 and 5, sample sd sqrt(2), mean 4
    ds = spike_dataset([(2.0, 0, 0), (5.0, 0, 0), (10.0, 0, 0)], n_cues=1, n_units=1, duration=10.0)
    np.testing.assert_allclose(A.isi_cv(ds).values, [[np.sqrt(2.0) / 4.0]], rtol=1e-12)


def test_fano_and_correlation_of_identical_cues(regular_ds):
    ff = A.fano_factor(regular_ds)
    assert ff.dims == ("spiking_unit",)
    np.testing.assert_array_equal(ff.values[:4], 0.0)  # no trial-to-trial variance
    assert np.isnan(ff.values[4])  # mean 0
    r = A.count_correlations(regular_ds)
    assert r.dims == ("cue", "cue_other")
    np.testing.assert_allclose(r.values, np.ones((3, 3)), atol=1e-12)


def test_fano_of_known_counts_and_time_resolved():
    # unit 0 fires 1, 3 and 5 spikes in the three cues: mean 3, sample variance 4
    events = [(float(t), c, 0) for c, n in enumerate((1, 3, 5)) for t in range(1, n + 1)]
    ds = spike_dataset(events, n_cues=3, n_units=1, duration=10.0)
    np.testing.assert_allclose(A.fano_factor(ds).values, [4.0 / 3.0], rtol=1e-12)
    binned = A.fano_factor(ds, bin_ms=5.0)
    assert binned.dims == ("bin", "spiking_unit")
    np.testing.assert_allclose(binned.values[:, 0], [4.0 / 3.0, np.nan], rtol=1e-12)
    assert np.isnan(A.fano_factor(ds.isel(cue=[0])).values).all()  # one cue: no variance


def test_correlations_anticorrelated_and_silent():
    counts = {0: (1, 2, 3), 1: (3, 2, 1), 2: (0, 0, 0)}
    events = [(float(t), c, u) for c, row in counts.items() for u, n in enumerate(row) for t in range(1, n + 1)]
    r = A.count_correlations(spike_dataset(events, n_cues=3, n_units=3, duration=10.0)).values
    np.testing.assert_allclose(r[:2, :2], [[1.0, -1.0], [-1.0, 1.0]], atol=1e-12)
    assert np.isnan(r[2]).all() and np.isnan(r[:, 2]).all()


def test_poisson_trains_have_fano_and_cv_near_one(poisson_ds):
    # 200 trials of 20 units at 50 Hz for 1 s: each unit's Fano factor has sd sqrt(2/199) ~ 0.10,
    # the mean over units ~ 0.022; a CV from ~50 intervals has sd ~ 0.1, its mean over 4000 trains
    # ~ 0.002, but the sample CV of so few intervals is biased low by about 2% (0.978 to 0.984 over
    # seeds 0-5). Bounds: 5 sd, plus twice the bias for the CV.
    ff = A.fano_factor(poisson_ds).values
    assert abs(ff.mean() - 1.0) < 0.11 and np.all(np.abs(ff - 1.0) < 0.5)
    cv = A.isi_cv(poisson_ds).values
    assert abs(cv.mean() - 1.0) < 0.05
    assert abs(A.firing_rates(poisson_ds).values.mean() - 50.0) < 0.6  # sd 0.11 Hz


def test_vectorized_statistics_match_a_per_train_reference(poisson_ds):
    t, c, u = (poisson_ds[k].values for k in ("spike_time", "spike_cue", "spike_unit"))
    cv = A.isi_cv(poisson_ds).values
    for cue, unit in [(0, 0), (7, 3), (199, 19)]:
        isi = np.diff(np.sort(t[(c == cue) & (u == unit)]))
        assert cv[cue, unit] == pytest.approx(isi.std(ddof=1) / isi.mean(), rel=1e-12)
    counts = A.spike_counts(poisson_ds).values.astype(float)
    np.testing.assert_allclose(A.count_correlations(poisson_ds).values, np.corrcoef(counts), atol=1e-12)
    np.testing.assert_allclose(A.fano_factor(poisson_ds).values, counts.var(0, ddof=1) / counts.mean(0), rtol=1e-12)


# ----------------------------------------------------------------------------- PSTH and the bundle
def test_psth(regular_ds):
    p = A.psth(regular_ds, bin_ms=10.0)
    assert p.dims == ("bin", "spiking_unit") and p.attrs["units"] == "Hz"
    np.testing.assert_array_equal(p.values[:, :3], [[500.0, 200.0, 100.0]] * 10)
    sub = A.psth(regular_ds, bin_ms=10.0, units=[2, 0])
    assert list(sub["spiking_unit"].values) == [2, 0]
    np.testing.assert_array_equal(sub.values, p.values[:, [2, 0]])
    pop = A.psth(regular_ds, bin_ms=10.0, population=True)
    assert pop.dims == ("bin",)
    np.testing.assert_array_equal(pop.values, p.values.sum(1))


def test_population_psth_is_the_mean_population_rate(poisson_ds):
    pop = A.psth(poisson_ds, bin_ms=DT, population=True)
    np.testing.assert_allclose(pop.values, poisson_ds["population_rate"].mean("cue").values[1:], rtol=1e-12)


def test_statistics_bundle(regular_ds):
    st = A.spike_train_statistics(regular_ds, bin_ms=10.0)
    for name in ("rate", "mean_rate", "mean_isi_cv", "fano_factor", "count_correlation", "population_psth"):
        assert "units" in st[name].attrs and "long_name" in st[name].attrs, name
    np.testing.assert_array_equal(st["mean_rate"].values, [164.0] * 3)
    np.testing.assert_array_equal(st["mean_isi_cv"].values, [0.0] * 3)
    np.testing.assert_array_equal(st["population_psth"].values, POPULATION_PSTH)


def test_no_spikes_gives_zeros_and_nan():
    ds = spike_dataset([], n_cues=2, n_units=3)
    assert ds.sizes["spike"] == 0
    st = A.spike_train_statistics(ds)
    assert (st["rate"].values == 0).all() and (st["population_psth"].values == 0).all()
    for name in ("mean_isi_cv", "fano_factor", "count_correlation"):
        assert np.isnan(st[name].values).all(), name
    assert (A.spike_counts(ds, bin_ms=5.0).values == 0).all()


def test_statistics_merge_into_the_record(regular_ds):
    # memory neurons (spiking_unit, 5) and value neurons (unit, 12) keep apart
    merged = regular_ds.assign(firing_rate=A.firing_rates(regular_ds), isi_cv=A.isi_cv(regular_ds))
    assert merged.sizes["spiking_unit"] == 5 and merged.sizes["unit"] == 12


def test_statistics_of_a_spiking_run():
    from neurodyn import from_preset, simulate
    from neurodyn.spiking import Poisson, SpikingMemory

    memories = torch.eye(4, 6, dtype=torch.float64)
    net = from_preset("mchn-l2", memories, beta=10.0, tau_v=10.0)
    ds = simulate(net, memories[:2], 20.0, method=SpikingMemory(Poisson(r_max=800.0), dt=0.1, tau_s=5.0), seed=0)
    assert ds.sizes["spike"] > 0
    width = float(ds["time"][1] - ds["time"][0])
    pop = A.psth(ds, width, population=True)
    np.testing.assert_allclose(pop.values, ds["population_rate"].mean("cue").values[1:], rtol=1e-9)
    assert int(A.spike_counts(ds).sum()) == ds.sizes["spike"]
    st = A.spike_train_statistics(ds, bin_ms=5.0)
    assert st.sizes["spiking_unit"] == 4 and st.sizes["bin"] == 4
    units = E.to_nwb_units(ds, cue=1)
    assert units["spike_times_index"][-1] == int((ds["spike_cue"] == 1).sum())


# ----------------------------------------------------------------------------- input checks
def test_errors(regular_ds):
    with pytest.raises(ValueError, match="'spike_time'.*spiking run"):
        A.firing_rates(regular_ds.drop_vars("spike_time"))
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="bin_ms"):
            A.spike_counts(regular_ds, bin_ms=bad)
    with pytest.raises(ValueError, match="bin_ms"):
        A.psth(regular_ds, bin_ms=0.0)
    with pytest.raises(ValueError, match="longer than the window"):
        A.psth(regular_ds, bin_ms=200.0)
    with pytest.raises(ValueError, match="t_start < t_stop"):
        A.spike_counts(regular_ds, t_start=50.0, t_stop=50.0)
    with pytest.raises(ValueError, match="units"):
        A.psth(regular_ds, bin_ms=10.0, units=[5])
    bad_unit = regular_ds.assign(spike_unit=regular_ds["spike_unit"] + 2)  # unit 3 -> 5
    with pytest.raises(ValueError, match="spike_unit"):
        A.spike_counts(bad_unit)
    with pytest.raises(ValueError, match="n_spiking_units"):
        A.spike_counts(regular_ds.drop_attrs())


@pytest.mark.gpu
def test_statistics_on_cuda_match_cpu(poisson_ds):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    cpu = A.spike_train_statistics(poisson_ds)
    xr.testing.assert_allclose(A.spike_train_statistics(poisson_ds, device="cuda"), cpu)


# ----------------------------------------------------------------------------- figures
def _n_points(ax: plt.Axes) -> int:
    return sum(len(c.get_offsets()) for c in ax.collections)


def test_plot_raster_draws_every_spike(regular_ds):
    fig, ax = plt.subplots()
    assert P.plot_raster(regular_ds, ax=ax) is ax
    assert _n_points(ax) == regular_ds.sizes["spike"]
    assert "ms" in ax.get_xlabel() and len(ax.collections) == 3
    ax.clear()
    P.plot_raster(regular_ds, cues=1, ax=ax, units=[0, 3])
    assert _n_points(ax) == 52
    plt.close(fig)


def test_plot_rates_and_psth(regular_ds):
    fig, (top, bottom) = plt.subplots(2)
    P.plot_rates(regular_ds, ax=top, cues=[0, 2])
    assert len(top.get_lines()) == 2 and "Hz" in top.get_ylabel() and "ms" in top.get_xlabel()
    P.plot_psth(regular_ds, bin_ms=10.0, ax=bottom)
    np.testing.assert_array_equal(bottom.patches[0].get_data().values, POPULATION_PSTH)
    assert "Hz" in bottom.get_ylabel() and "ms" in bottom.get_xlabel()
    bottom.clear()
    P.plot_psth(regular_ds, bin_ms=10.0, ax=bottom, units=[0, 1])
    assert len(bottom.patches) == 2
    plt.close(fig)
    with pytest.raises(ValueError, match="population_rate"):
        P.plot_rates(regular_ds.drop_vars("population_rate"))


@pytest.mark.parametrize("image", [None, (1, 3, 4)])
def test_plot_spiking_recall(image):
    ds = spike_dataset(regular({0: 2.0, 1: 5.0}, range(3)), n_cues=3, n_units=2, image=image)
    fig = P.plot_spiking_recall(ds, cues=[0, 2])
    assert len(fig.axes) == 2 * 4  # raster, cue, recalled, target per row
    assert _n_points(fig.axes[0]) == 70
    assert len(fig.axes[1].images) == (0 if image is None else 1)
    assert len(fig.axes[1].get_lines()) == (1 if image is None else 0)
    plt.close(fig)


# ----------------------------------------------------------------------------- export
def test_to_neo_round_trip(poisson_ds):
    neo = pytest.importorskip("neo")
    ds = poisson_ds.isel(cue=slice(0, 5))
    block = E.to_neo(ds)
    assert isinstance(block, neo.Block) and len(block.segments) == 5 and len(block.groups) == 20
    counts = A.spike_counts(ds).values
    t, c, u = (poisson_ds[k].values for k in ("spike_time", "spike_cue", "spike_unit"))
    for seg in block.segments:
        cue = seg.annotations["cue"]
        assert len(seg.spiketrains) == 20
        for train in seg.spiketrains:
            unit = train.annotations["unit"]
            assert train.annotations["cue"] == cue and len(train) == counts[cue, unit]
            assert float(train.t_start.rescale("ms")) == 0.0 and float(train.t_stop.rescale("ms")) == 1000.0
            np.testing.assert_array_equal(train.rescale("ms").magnitude, np.sort(t[(c == cue) & (u == unit)]))
    assert [tr.annotations["cue"] for tr in block.groups[3].spiketrains] == list(range(5))
    one = E.to_neo(ds, cue=2)
    assert [s.annotations["cue"] for s in one.segments] == [2]


def test_to_neo_without_neo_says_how_to_install(regular_ds, monkeypatch):
    monkeypatch.setitem(sys.modules, "neo", None)  # import neo now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'neurodyn\[neo\]'"):
        E.to_neo(regular_ds)


def test_to_nwb_units_layout(poisson_ds):
    units = E.to_nwb_units(poisson_ds, cue=3)
    assert set(units) == {"spike_times", "spike_times_index", "id"}
    index = units["spike_times_index"]
    np.testing.assert_array_equal(units["id"], np.arange(20))
    assert index.dtype == np.int64 and index[-1] == units["spike_times"].size
    t, c, u = (poisson_ds[k].values for k in ("spike_time", "spike_cue", "spike_unit"))
    for unit, (start, end) in enumerate(zip(np.concatenate([[0], index[:-1]]), index)):
        expected = np.sort(t[(c == 3) & (u == unit)]) / 1000.0
        np.testing.assert_array_equal(units["spike_times"][start:end], expected)
    empty = E.to_nwb_units(spike_dataset([], n_cues=1, n_units=3))
    np.testing.assert_array_equal(empty["spike_times_index"], [0, 0, 0])
