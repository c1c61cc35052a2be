"""Trajectory analyses: recall time, metastability, basins, pattern completion and separation,
separability (neurodyn.analysis), and their figures (neurodyn.plot)."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import xarray as xr

from neurodyn import Monitor, Solver, from_preset, simulate
from neurodyn import analysis as A
from neurodyn import probes
from neurodyn import plot as P
from neurodyn.data import corrupt, load_digits

FAST = Solver("dopri5", rtol=1e-5, atol=1e-7, steady_tol=1e-4)


@pytest.fixture(scope="module")
def digits():
    return load_digits().take(20)


@pytest.fixture(scope="module")
def memories(digits):
    return digits.flat()


@pytest.fixture(scope="module")
def completion(memories):
    net = from_preset("mchn-l2", memories, beta=10.0)
    return probes.pattern_completion(net, fractions=(0.2, 0.4, 0.6, 0.8, 1.0), n_probes=3, seed=1)


def f_dataset(f: np.ndarray, times: np.ndarray | None = None) -> xr.Dataset:
    """A recorded-looking Dataset holding only memory activations f (time, cue, memory)."""
    times = np.arange(f.shape[0], dtype=float) if times is None else times
    return xr.Dataset({"f": (("time", "cue", "memory"), f)},
                      coords={"time": ("time", times, {"units": "ms"}), "cue": np.arange(f.shape[1]),
                              "memory": np.arange(f.shape[2])})


# ----------------------------------------------------------------------------- metastability
def test_entropy_of_one_memory_two_and_all():
    f = np.zeros((2, 3, 4))
    f[:, 0, 2] = 0.9  # one memory (any scale)
    f[:, 1, :2] = 0.5  # an even mixture of two
    f[:, 2] = 0.25  # all four
    h = A.activation_entropy(f_dataset(f))
    assert h.dims == ("time", "cue") and h.attrs["units"] == "nat"
    np.testing.assert_allclose(h.values, [[0.0, math.log(2), math.log(4)]] * 2, atol=1e-12)
    # perplexity and participation ratio agree on even mixtures
    np.testing.assert_allclose(np.exp(h.values), A.participation_over_time(f_dataset(f)).values, atol=1e-12)


def test_entropy_on_top_k_records(memories):
    net = from_preset("mchn-l2", memories, beta=1.0)
    ds = simulate(net, memories[:3] * 0.5, 2.0, monitor=Monitor(("f",), n_times=5, top_k=3))
    h = A.activation_entropy(ds)
    assert h.dims == ("time", "cue") and (h.values >= 0).all() and (h.values <= math.log(3) + 1e-6).all()


def test_mixture_episodes_and_their_total():
    pr_pattern = [[1, 0], [1, 1], [1, 1], [0, 1], [1, 0], [0, 0], [1, 1]]  # 1: mixture at that time
    f = np.zeros((7, 2, 3))
    for t, row in enumerate(pr_pattern):
        for c, mixed in enumerate(row):
            f[t, c] = [0.5, 0.5, 0.0] if mixed else [1.0, 0.0, 0.0]
    times = np.array([0.0, 1.0, 2.0, 4.0, 5.0, 7.0, 8.0])
    ds = f_dataset(f, times)
    ep = A.mixture_episodes(ds)
    assert ep["n_episodes"].values.tolist() == [3, 2]
    np.testing.assert_array_equal(ep["start"].sel(cue=0).values, [0.0, 5.0, 8.0])
    np.testing.assert_array_equal(ep["end"].sel(cue=0).values, [4.0, 7.0, 8.0])
    np.testing.assert_array_equal(ep["final"].sel(cue=0).values, [False, False, True])
    np.testing.assert_array_equal(ep["duration"].sel(cue=1).values, [4.0, 0.0, np.nan])
    np.testing.assert_allclose(ep["duration"].sum("episode").values, A.mixture_time(ds).values)
    assert ep["in_mixture"].values.T.astype(int).tolist() == np.array(pr_pattern).T.tolist()


def test_metastability_reuses_final_states(memories, digits):
    net = from_preset("mchn-l2", memories, beta=2.0, tau_h=2.0)
    cues = corrupt(digits.images, "mask", fraction=0.5, side="bottom").reshape(20, -1)[:6]
    ds = simulate(net, cues, 10.0, monitor=Monitor(("f",), n_times=41), method=FAST)
    met = A.metastability(ds, net)
    states = A.final_states(ds, net)
    np.testing.assert_array_equal(met["state"].values, states["state"].values)
    np.testing.assert_allclose(met["mixture_time"].values, met["duration"].fillna(0).sum("episode").values)
    assert met["entropy"].dims == met["participation_ratio"].dims == ("time", "cue")
    # the run keeps its memories: the network is rebuilt from it; a record without them has no states
    np.testing.assert_array_equal(A.metastability(ds)["state"].values, states["state"].values)
    assert "state" not in A.metastability(ds.drop_vars("memories"))
    with pytest.raises(ValueError, match="record 'f'"):
        A.activation_entropy(ds.drop_vars("f"))
    with pytest.raises(ValueError, match="mixture_ratio"):
        A.mixture_episodes(ds, mixture_ratio=0.5)


# ----------------------------------------------------------------------------- recall time
def test_recall_time_nan_when_the_target_is_never_reached(memories, digits):
    net = from_preset("mchn-l2", memories[:10], beta=10.0)
    cues = corrupt(digits.images[:10], "mask", fraction=0.25, side="bottom").reshape(10, -1)
    wrong = torch.arange(10)
    wrong[3] = 7  # cue 3 is told to recall memory 7; it goes to its own memory 3
    ds = simulate(net, cues, 12.0, monitor=Monitor(("v", "overlap"), n_times=49), method=FAST,
                  targets=memories[:10], target_index=wrong)
    reached = A.nearest_pattern(ds, memories[:10])["nearest"].values == wrong.numpy()
    t = A.recall_time(ds)
    assert t.dims == ("cue",) and t.attrs["units"] == "ms"
    assert np.isnan(t.values[3])
    assert np.isfinite(t.values[reached]).all() and np.isnan(t.values[~reached]).all()
    # The state is on its memory long before the solver calls it steady.
    assert (t.values[reached] < ds["convergence_time"].values[reached]).all()
    # From the recorded v against the targets (cue 3's target is right there): same times.
    t_v = A.recall_time(ds.drop_vars("overlap"), patterns=memories[:10])
    ok = np.arange(10) != 3
    np.testing.assert_allclose(t_v.values[ok], t.values[ok])
    assert np.isfinite(t_v.values[3])


def test_recall_time_needs_to_stay_until_the_end():
    ov = np.zeros((6, 2, 2))
    ov[:, 0, 0] = [0.2, 0.95, 0.5, 0.95, 0.97, 0.99]  # on, leaves, comes back for good at t=3
    ov[:, 0, 1] = 0.1
    ov[:, 1, 0] = 0.95
    ov[:, 1, 1] = [0.1, 0.1, 0.1, 0.1, 0.1, 0.99]  # another memory overtakes it at the end
    ds = xr.Dataset({"overlap": (("time", "cue", "pattern"), ov), "target_index": ("cue", [0, 0])},
                    coords={"time": ("time", np.arange(6.0), {"units": "ms"}), "cue": [0, 1], "pattern": [0, 1]})
    np.testing.assert_array_equal(A.recall_time(ds).values, [3.0, np.nan])
    np.testing.assert_array_equal(A.recall_time(ds, nearest=False).values, [3.0, 0.0])
    with pytest.raises(ValueError, match="not among the recorded overlaps"):
        A.recall_time(ds, target_index=[0, 5])
    with pytest.raises(ValueError, match="overlap_threshold"):
        A.recall_time(ds, overlap_threshold=2.0)
    with pytest.raises(ValueError, match="recall_time needs"):
        A.recall_time(ds.drop_vars("overlap"))


# ----------------------------------------------------------------------------- completion
def test_completion_curve_rises_to_one(completion):
    assert completion["success"].dims == ("memory", "fraction", "probe")
    assert completion["mean_success"].dims == ("fraction",)
    rate = completion["mean_success"].values
    assert (np.diff(rate) >= -0.05).all(), rate
    assert rate[0] < 0.6 and rate[-1] == 1.0
    np.testing.assert_allclose(completion["mean_overlap"].sel(fraction=1.0), 1.0, atol=1e-3)
    # the network completes: its output is closer to the target than the cue was
    assert (completion["mean_overlap"] >= completion["mean_cue_overlap"] - 1e-6).all()
    assert completion["fraction"].attrs["long_name"].startswith("fraction of the pattern")


def test_completion_one_step_and_clamped(memories):
    net = from_preset("mchn-l2", memories[:10], beta=10.0)
    one = probes.pattern_completion(net, fractions=(0.5, 1.0), n_probes=2, mode="one-step")
    assert float(one["mean_success"].sel(fraction=1.0)) == 1.0
    clamped = probes.pattern_completion(net, fractions=(0.5, 1.0), n_probes=2, clamp_given=True, given="first")
    assert float(clamped["mean_success"].sel(fraction=1.0)) == 1.0
    with pytest.raises(ValueError, match="clamp_given needs"):
        probes.pattern_completion(net, fractions=(0.5,), clamp_given=True, mode="one-step")


# ----------------------------------------------------------------------------- separation
def test_identical_cues_give_identical_outputs(memories):
    net = from_preset("mchn-l2", memories, beta=10.0)
    cues = 0.7 * memories[:4] + 0.3 * memories[4:8]
    for mode in ("dynamics", "one-step"):
        res = probes.pattern_separation(net, cues=(cues, cues), mode=mode)
        np.testing.assert_allclose(res["output_overlap"].values, 1.0, atol=1e-9)
        np.testing.assert_allclose(res["input_overlap"].values, 1.0, atol=1e-9)


def test_high_beta_separates_and_low_beta_completes(memories):
    sharp = probes.pattern_separation(from_preset("mchn-l2", memories, beta=100.0), n_pairs=60, seed=3)
    assert sharp["input_overlap"].dims == ("pair",) and sharp["binned_output_overlap"].dims == ("bin",)
    middle = (sharp["binned_input_overlap"] > 0.45) & (sharp["binned_input_overlap"] < 0.9)
    assert int(middle.sum()) >= 3
    assert (sharp["binned_output_overlap"].where(middle) < sharp["binned_input_overlap"].where(middle)).sum() \
        == middle.sum()
    assert sharp.attrs["separation_index"] > 0.05
    soft = probes.pattern_separation(from_preset("mchn-l2", memories, beta=0.5), n_pairs=60, seed=3)
    assert soft.attrs["separation_index"] < -0.05  # everything falls into one state: completion
    assert int(sharp["count"].sum()) == 60
    # noisy versions of one pattern complete onto it
    noisy = probes.pattern_separation(from_preset("mchn-l2", memories, beta=100.0), n_pairs=20, method="noise",
                                 noise=0.3, mode="one-step")
    assert noisy["same_memory"].all() and (noisy["output_overlap"] > 0.999).all()


# ----------------------------------------------------------------------------- basins
def test_basin_is_larger_for_a_sharp_network(memories):
    common = dict(distances=(0.0, 0.1, 0.2, 0.3, 0.4), n_probes=4, seed=0)
    sharp = probes.basin_of_attraction(from_preset("mchn-l2", memories, beta=10.0), **common)
    soft = probes.basin_of_attraction(from_preset("mchn-l2", memories, beta=0.5), **common)
    assert sharp["success_rate"].dims == ("memory", "distance") and sharp["radius"].dims == ("memory",)
    assert float(sharp["radius"].mean()) >= 0.2 > float(soft["radius"].mean())
    assert float(sharp["mean_success"].sel(distance=0.0)) == 1.0
    # radius: the success rate stays >= 0.5 at every tested distance up to it
    for m in range(len(sharp["memory"])):
        r = float(sharp["radius"][m])
        assert (sharp["success_rate"].isel(memory=m).sel(distance=slice(None, r)) >= 0.5).all()


def test_basin_perturbations_have_the_asked_size(memories):
    net = from_preset("mchn-l2", memories[:5], beta=10.0)
    g = probes.basin_of_attraction(net, distances=(0.1, 0.3), perturbation="gaussian", n_probes=3, mode="one-step")
    np.testing.assert_allclose(g["cue_distance"].mean(("memory", "probe")).values, [0.1, 0.3], rtol=1e-9)
    flip = probes.basin_of_attraction(net, [0, 2], distances=(0.25,), n_probes=2, mode="one-step")
    assert flip.sizes["memory"] == 2 and flip["target_index"].values.tolist() == [0, 2]
    # a matrix of patterns recalls each one's nearest memory
    mat = probes.basin_of_attraction(net, memories[[4, 1]] + 0.01, distances=(0.0,), n_probes=1, mode="one-step")
    assert mat["target_index"].values.tolist() == [4, 1] and bool(mat["success"].all())


# ----------------------------------------------------------------------------- separability
def test_separability_of_memories_against_themselves(memories):
    res = probes.separability(memories, memories)
    assert res.attrs["auroc"] == 1.0 and res.attrs["top1"] == 1.0 and res.attrs["d_prime"] > 0
    np.testing.assert_allclose(res["self"].values, 1.0, atol=1e-12)
    assert res.sizes["cross_pair"] == 20 * 19 and (res["cross"] < 1.0).all()
    assert (res["cross_cue"] != res["cross_memory"]).all()


def test_separability_auroc_counts_ties_as_half():
    memories = torch.eye(3)
    queries = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]])  # query 0 ties memories 0 and 1
    res = probes.separability(queries, memories, target_index=[0, 1], metric="dot")
    assert res["self"].values.tolist() == [1.0, 1.0]
    assert sorted(res["cross"].values.tolist()) == [0.0, 0.0, 0.0, 1.0]
    # self 1 beats three cross zeros and ties the cross one: (3 + 0.5) / 4 for both queries
    assert res.attrs["auroc"] == pytest.approx(3.5 / 4)
    assert res.attrs["top1"] == 0.5
    np.testing.assert_allclose(res["margin"].values, [0.0, 1.0])


def test_separability_on_noisy_queries_is_imperfect(memories, digits):
    cues = corrupt(digits.images, "mask", fraction=0.5).reshape(20, -1)
    res = probes.separability(cues, memories, metric="correlation")
    assert 0.5 < res.attrs["auroc"] < 1.0


# ----------------------------------------------------------------------------- bad inputs
def test_bad_inputs_raise(memories):
    net = from_preset("mchn-l2", memories[:5], beta=10.0)
    bad = memories[:5].clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        probes.separability(bad, memories[:5])
    with pytest.raises(ValueError, match="columns"):
        probes.separability(memories[:5, :10], memories[:5])
    with pytest.raises(ValueError, match="empty"):
        probes.separability(memories[:0], memories[:5])
    with pytest.raises(ValueError, match="target_index"):
        probes.separability(memories[:5], memories[:5], target_index=[0, 1])
    with pytest.raises(ValueError, match="at least two memories"):
        probes.separability(memories[:1], memories[:1])
    with pytest.raises(ValueError, match="unknown metric"):
        probes.separability(memories[:5], memories[:5], metric="hamming")
    with pytest.raises(ValueError, match="NaN"):
        probes.pattern_completion(net, bad, fractions=(0.5,), mode="one-step")
    with pytest.raises(ValueError, match="fractions"):
        probes.pattern_completion(net, fractions=(0.5, 1.5), mode="one-step")
    with pytest.raises(ValueError, match="strictly increasing"):
        probes.basin_of_attraction(net, distances=(0.3, 0.1), mode="one-step")
    with pytest.raises(ValueError, match="unknown perturbation"):
        probes.basin_of_attraction(net, perturbation="rotate", mode="one-step")
    with pytest.raises(ValueError, match="n_probes"):
        probes.basin_of_attraction(net, n_probes=0, mode="one-step")
    with pytest.raises(ValueError, match="unknown mode"):
        probes.basin_of_attraction(net, mode="euler")
    with pytest.raises(ValueError, match="memory indices"):
        probes.basin_of_attraction(net, [0, 9], mode="one-step")
    with pytest.raises(ValueError, match="columns"):
        probes.basin_of_attraction(net, memories[:2, :10], mode="one-step")
    with pytest.raises(ValueError, match="criterion"):
        probes.pattern_completion(net, criterion="close", mode="one-step")
    with pytest.raises(ValueError, match="same shape"):
        probes.pattern_separation(net, cues=(memories[:3], memories[:2]), mode="one-step")
    with pytest.raises(ValueError, match="two patterns"):
        probes.pattern_separation(net, [0], mode="one-step")


# ----------------------------------------------------------------------------- figures
def test_figures_are_labelled_from_attrs(memories, completion):
    net = from_preset("mchn-l2", memories[:8], beta=10.0)
    ax = P.plot_completion_curve(completion, plt.figure().gca())
    assert ax.get_xlabel() == "fraction of the pattern given in the cue [1]"
    sep = probes.pattern_separation(net, n_pairs=20, mode="one-step")
    ax = P.plot_separation_curve(sep, plt.figure().gca())
    assert ax.get_xlabel().startswith("input correlation") and ax.get_ylabel().startswith("output correlation")
    assert any(line.get_label() == "identity" for line in ax.get_lines())
    ax = P.plot_separability(probes.separability(memories, memories), plt.figure().gca())
    assert "AUROC=1" in ax.get_title() and ax.get_xlabel() == "cosine similarity [1]"
    basins = probes.basin_of_attraction(net, distances=(0.0, 0.2), n_probes=2, mode="one-step")
    ax = P.plot_basins(basins, plt.figure().gca())
    assert ax.get_xlabel() == "fraction of units flipped [1]"
    ds = simulate(net, memories[:3] * 0.6, 3.0, monitor=Monitor(("f",), n_times=7))
    fig = P.plot_metastability(ds)
    assert isinstance(fig, plt.Figure)
    assert fig.axes[1].get_ylabel().replace("\n", " ") == "entropy of the memory activations [nat]"
    plt.close("all")


def test_a_python_run_of_square_images_is_drawn_as_images(memories):
    """A Python simulate of 8x8 digits has no image_shape attribute: the figure infers (1, 8, 8)
    rather than drawing 64-wide bars; a non-square size stays a vector."""
    from neurodyn import plot

    ds = simulate(from_preset("mchn-l2", memories), memories[:3] * 0.8, 2.0, monitor=Monitor(("v", "energy"), n_times=6))
    assert "image_shape" not in ds.attrs and plot.image_shape(ds) == (1, 8, 8)
    fig = plot.plot_recall(ds)
    assert fig.axes[0].images[0].get_array().shape == (8, 8)
    assert plot.image_shape(ds.isel(unit=slice(0, 60))) is None
    assert plot.image_shape(xr.Dataset(coords={"unit": np.arange(3 * 64)})) == (3, 8, 8)
    assert plot.image_shape(xr.Dataset(coords={"unit": np.arange(12)})) is None  # (not a 3 x 2 x 2 image)
