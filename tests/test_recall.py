"""Recall of real stored digits, recording, saving and the CLI."""

from __future__ import annotations

import json
from importlib import metadata

import numpy as np
import pytest
import torch
import xarray as xr

from neurodyn import Monitor, Network, Solver, from_config, from_preset, load_netcdf, save_netcdf, simulate
from neurodyn.analysis import lyapunov_check, nearest_pattern, retrieval, summarize
from neurodyn.cli import main
from neurodyn.data import corrupt, load_digits, to_bipolar

STEADY = Solver(rtol=1e-5, atol=1e-7, steady_tol=1e-4)


@pytest.fixture(scope="module")
def digits():
    images = load_digits()
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    return images.subset(perm)


def test_dense_cues_recall_stored_digits(digits):
    """UHN-Manhattan recalls 100 stored [0, 1] digits from cues with a quarter masked, and the
    MCHN recalls 100 bipolar digits (equal norms) from the same cues."""
    stored = digits.take(100)
    memories = stored.flat().double()
    cues = corrupt(stored.images, "mask", fraction=0.25, side="bottom").reshape(100, -1).double()
    bipolar = to_bipolar(memories)
    bipolar_cues = bipolar.reshape(100, 8, 8).clone()
    bipolar_cues[:, 6:] = 0.0  # masked bits carry no information
    for preset, mem, cue in (("uhn-manhattan", memories, cues), ("mchn", bipolar, bipolar_cues.reshape(100, -1))):
        ds = simulate(from_preset(preset, mem), cue, 20.0, method=STEADY, targets=mem)
        own = (nearest_pattern(ds, mem)["nearest"].values == np.arange(100)).mean()
        assert retrieval(ds).attrs["rate"] >= 0.95 and own >= 0.95, (preset, retrieval(ds).attrs["rate"], own)


def test_dot_product_bias_on_unnormalized_images(digits):
    """UHN appendix E: on [0, 1] images the dot product favours bright patterns, so even clean
    cues can end at another memory; the biased dot g.m - |m|^2/2 (the Euclidean similarity as a
    gradient flow) removes the bias and keeps the Lyapunov guarantee."""
    memories = digits.take(100).flat().double()
    own = {}
    for preset in ("mchn", "mchn-l2"):
        net = from_preset(preset, memories, beta=10.0)
        ds = simulate(net, memories, 20.0, method=STEADY, targets=memories)
        own[preset] = (nearest_pattern(ds, memories)["nearest"].values == np.arange(100)).mean()
        assert net.lyapunov_guaranteed and lyapunov_check(ds).monotone
    assert own["mchn"] < 0.8 < own["mchn-l2"], own


def test_capacity_ordering_classical_hn_fails_where_mchn_succeeds(digits):
    """UHN fig. 3's ordering: identity separation (classical HN) collapses at a load where the
    softmax separation still recalls every pattern (bipolar digits, 10% of bits flipped)."""
    memories = to_bipolar(digits.take(10).flat()).double()
    flip = torch.rand(memories.shape, generator=torch.Generator().manual_seed(1)) < 0.1
    cues = torch.where(flip, -memories, memories)
    rate = {}
    for preset in ("hn", "mchn"):
        ds = simulate(from_preset(preset, memories), cues, 20.0, method=STEADY, targets=memories)
        rate[preset] = retrieval(ds, reference_size=None, threshold=0.5).attrs["rate"]  # exact recall
        assert lyapunov_check(ds).monotone
    assert rate["mchn"] == 1.0 and rate["hn"] <= 0.3, rate


def test_monitor_subsets_topk_overlap_and_cf_attributes(digits):
    memories = digits.take(30).flat()
    net = from_preset("mchn", memories, beta=10.0, tau_h=0.5)
    mon = Monitor(("v", "g", "h", "f", "energy", "overlap", "speed"), n_times=11, units=(0, 5, 7), top_k=3,
                  overlap_with=(0, 1))
    ds = simulate(net, memories[:4], 5.0, monitor=mon)
    assert ds.v.dims == ("time", "cue", "unit_subset") and ds.v.shape == (11, 4, 3)
    np.testing.assert_array_equal(ds.unit_subset.values, [0, 5, 7])
    assert ds.f.dims == ("time", "cue", "rank") and ds.memory_index.shape == (11, 4, 3)
    # top-k really is sorted and the indices point at the most active memories
    assert (np.diff(ds.f.values, axis=-1) <= 0).all()
    assert ds.overlap.shape == (11, 4, 2)
    # cue 0 is stored pattern 0: its overlap with pattern 0 starts at 1
    assert float(ds.overlap.isel(time=0, cue=0, pattern=0)) == pytest.approx(1.0, abs=1e-6)
    for name in ("energy_value", "energy_memory", "energy_interaction", "energy_input"):
        assert name in ds
    for name, var in {**ds.data_vars, **ds.coords}.items():
        assert "units" in var.attrs and "long_name" in var.attrs, name
    assert ds.time.attrs["units"] == "ms"
    with pytest.raises(ValueError, match="units"):
        simulate(net, memories[:1], 1.0, monitor=Monitor(units=(64,)))


def test_provenance_and_exact_netcdf_round_trip(tmp_path, digits):
    memories = digits.take(20).flat()
    ds = simulate(from_preset("mchn", memories, beta=5.0), memories[:3], 2.0, method=STEADY,
                  targets=memories[:3], target_index=[0, 1, 2], seed=7)
    for key in ("model_name", "memories_sha256", "solver_max_steps", "rtol", "atol", "seed", "versions", "nfe", "steps_accepted"):
        assert key in ds.attrs
    assert ds.attrs["model_separation"] == "softmax" and ds.attrs["model_separation_beta"] == 5
    assert json.loads(ds.attrs["versions"])["torch"] == metadata.version("torch")
    assert ds.attrs["seed"] == 7 and ds.attrs["nfe"] > 0
    path = save_netcdf(ds, tmp_path / "run.nc")
    back = load_netcdf(path)
    xr.testing.assert_identical(ds, back)
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_save_is_atomic_when_writing_fails(tmp_path, digits):
    memories = digits.take(5).flat()
    ds = simulate(from_preset("mchn", memories), memories, 1.0)
    path = save_netcdf(ds, tmp_path / "run.nc")
    before = path.read_bytes()
    bad = ds.assign_attrs(unserializable=object())
    with pytest.raises(Exception):
        save_netcdf(bad, path)
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".*tmp"))


def test_summary_mentions_retrieval_and_lyapunov(digits):
    memories = digits.take(20).flat()
    ds = simulate(from_preset("mchn", memories, beta=10.0), memories, 5.0, targets=memories, method=STEADY)
    text = summarize(ds)
    assert "retrieval: 100.0%" in text and "Lyapunov: energy non-increasing (guaranteed" in text


def test_heteroassociative_one_shot_recall(digits):
    """UHN appendix B style: keys are the top 3 rows, values the other 5 rows of the same digits."""
    images = digits.take(40).images
    keys, values = images[:, :, :3].reshape(40, -1), images[:, :, 3:].reshape(40, -1)
    net = Network(keys, similarity="manhattan:inverse,normalized", separation="softmax:1000",
                  projection=values, dynamics="projection", normalize_separation=True)
    recalled = net.retrieve(keys)
    assert recalled.shape == values.shape
    assert float(((recalled - values) ** 2).sum(-1).max()) < 1e-3
    with pytest.raises(ValueError, match="value space"):
        simulate(net, keys, 1.0)


def test_model_config_from_toml_dict(digits):
    memories = digits.take(5).flat()
    net = from_config({"preset": "mchn", "beta": 3.0, "tau_h": 0.2}, memories)
    assert net.separation.beta == 3.0 and net.tau_h == 0.2
    net = from_config({"similarity": "manhattan", "separation": "softmax:2", "dynamics": "projection"}, memories)
    assert net.similarity.name == "manhattan:negative"
    with pytest.raises(ValueError, match="unknown model keys"):
        from_config({"similraity": "dot"}, memories)


def test_models_folder_files_load(digits):
    import tomllib
    from pathlib import Path

    files = sorted((Path(__file__).parent.parent / "models").glob("*.toml"))
    assert files
    for path in files:
        with path.open("rb") as fh:
            net = from_config(tomllib.load(fh)["model"], digits.take(5).flat())
        assert net.n_memories == 5


def test_cli_recall_default_and_inspect(tmp_path, capsys):
    out = tmp_path / "r.nc"
    assert main(["recall", "--n-memories", "30", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "retrieval:" in printed and "Lyapunov:" in printed
    assert out.exists() and out.with_suffix(".png").stat().st_size > 10_000
    ds = load_netcdf(out)
    assert ds.sizes["cue"] == 30 and json.loads(ds.attrs["image_shape"]) == [1, 8, 8]
    assert main(["inspect", str(out)]) == 0
    assert "solver: auto" in capsys.readouterr().out


def test_cli_classical_hn_uses_bipolar_patterns(tmp_path, capsys):
    out = tmp_path / "hn.nc"
    assert main(["recall", "--model", "hn", "--n-memories", "5", "--corruption", "none", "--no-figure",
                 "--output", str(out)]) == 0
    ds = load_netcdf(out)
    assert set(np.unique(ds.target.values)) == {-1.0, 1.0}


@pytest.mark.parametrize("argv,needle", [
    (["recall", "--model", "bogus"], "unknown model preset"),
    (["recall", "--corruption", "blur:2"], "blur"),
    (["recall", "--data", "nosuchset"], "nosuchset"),
    (["recall", "--n-memories", "0"], "argument --n-memories: must be an integer >= 1"),
    (["recall", "--record", "v,bogus"], "bogus"),
    (["inspect", "/nonexistent/file.nc"], "no such result file"),
])
def test_cli_errors_are_clear(argv, needle, capsys, tmp_path):
    assert main(argv + (["--output", str(tmp_path / "x.nc")] if argv[0] == "recall" else [])) == 2
    assert needle in capsys.readouterr().err
