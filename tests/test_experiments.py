"""The UHN experiments in --quick mode: each writes its Dataset, figure and report, and the
qualitative findings that the paper states, where they are robust, hold on real data."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from neurodyn.cli import main
from neurodyn.jobs.experiment import available_experiments, load_experiment, run_experiment


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    """Run each UHN experiment once, in this process, and share the results."""
    import os

    if not os.environ.get("NEURODYN_DATA"):
        pytest.skip("NEURODYN_DATA is not set: the UHN experiments read MNIST and CIFAR-10")
    out = tmp_path_factory.mktemp("runs")
    cache: dict[str, object] = {}

    def get(name: str):
        if name not in cache:
            cache[name] = run_experiment(name, quick=True, out=out, n_workers=0, progress=False)
        return cache[name]

    return get


def _rate(result, **sel) -> float:
    return float(result.dataset["retrieval_rate"].sel(**sel).mean())


def test_every_experiment_script_loads():
    names = available_experiments()
    assert {"uhn-capacity", "uhn-separation", "uhn-robustness", "uhn-hetero", "uhn-threshold"} <= set(names)
    for name in names:
        experiment = load_experiment(name)
        assert experiment.name == name
        assert experiment.sweep_config(quick=True)["grid"], name


def test_unknown_experiment_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown experiment 'uhn-capacty'.*uhn-capacity"):
        load_experiment("uhn-capacty")


def test_capacity_writes_dataset_figure_report(quick_runs):
    result = quick_runs("uhn-capacity")
    saved = xr.open_dataset(result.netcdf)
    assert set(saved["retrieval_rate"].dims) == {"data", "model", "n_memories", "seed", "setting"}
    assert np.isfinite(saved["retrieval_rate"]).all()
    assert result.figure.stat().st_size > 10_000
    assert "| manhattan | euclidean | dot |" in result.report.read_text()


def test_capacity_manhattan_best_and_divergences_worse(quick_runs):
    """UHN fig. 2 (the code's Gaussian-noise setting): Manhattan at least as good as the dot
    product at the largest load, and far above the KL divergence."""
    result = quick_runs("uhn-capacity")
    code = dict(setting=0, n_memories=500)
    assert _rate(result, model="uhn-manhattan", **code) >= _rate(result, model="uhn-dot", **code)
    assert _rate(result, model="uhn-manhattan", **code) > _rate(result, model="uhn-kl", **code) + 0.5


def test_separation_max_and_softmax_far_above_identity(quick_runs):
    """UHN fig. 3: max, softmax and a high-order polynomial far above identity (CIFAR-10, N=100)."""
    result = quick_runs("uhn-separation")
    at = dict(n_memories=100)
    identity = _rate(result, separation="identity", **at)
    for strong in ("max", "softmax:1000", "polynomial:10"):
        assert _rate(result, separation=strong, **at) > identity + 0.25, strong
    # Higher polynomial orders do better than lower ones.
    assert _rate(result, separation="polynomial:10", **at) > _rate(result, separation="polynomial:2", **at)


def test_robustness_distances_beat_dot_under_masking_on_natural_images(quick_runs):
    """UHN fig. 4: under masking, Manhattan and Euclidean at least as good as the dot product
    (CIFAR-10, 30% masked: "definitely for relatively small fractions masked"; at half masked
    Euclidean and dot are within noise); under heavy noise the dot product is the robust one."""
    result = quick_runs("uhn-robustness")
    ds = result.dataset
    masked = [i for i, c in enumerate(ds["corruption"].values) if str(c).startswith("mask:0.3")]
    noisy = [i for i, c in enumerate(ds["corruption"].values) if str(c).startswith("gaussian:1.0")]
    rate = ds["retrieval_rate"].sel(data="cifar10").mean("seed")
    for model in ("uhn-manhattan", "uhn-euclidean"):
        assert float(rate.isel(perturbation=masked[0]).sel(model=model)) >= \
            float(rate.isel(perturbation=masked[0]).sel(model="uhn-dot"))
    assert float(rate.isel(perturbation=noisy[0]).sel(model="uhn-dot")) > \
        float(rate.isel(perturbation=noisy[0]).sel(model="uhn-manhattan"))


def test_hetero_equals_auto_within_noise(quick_runs):
    """UHN appendix B: hetero- and autoassociative capacity equal within the seed-to-seed spread."""
    ds = quick_runs("uhn-hetero").dataset
    mchn = ds["retrieval_rate"].sel(network=0)
    diff = (mchn.sel(projection="bottom_half") - mchn.sel(projection="none"))
    spread = mchn.std("seed").max("projection")
    assert (np.abs(diff.mean("seed")) <= 2 * spread + 0.05).all()
    # The HN recalls 2 memories and fails at 100 (identity separation: interference).
    hn = ds["retrieval_rate"].sel(network=1)
    assert float(hn.sel(n_memories=2).mean()) == 1.0
    assert float(hn.sel(n_memories=100).mean()) < 0.2


def test_threshold_curve_rises_and_is_flat_below_50(quick_runs):
    """UHN appendix G: more images pass at larger thresholds; flat between 10 and 50."""
    ds = quick_runs("uhn-threshold").dataset["retrieval_rate"].mean("seed")
    assert (ds.sel(threshold=500) >= ds.sel(threshold=50)).all()
    assert (ds.sel(threshold=500) > ds.sel(threshold=10)).any()
    assert float(np.abs(ds.sel(threshold=50) - ds.sel(threshold=10)).max()) <= 0.1


def test_cli_experiment_resumes_from_its_store(tmp_path, real_root, capsys):
    """`neurodyn experiment` lists the experiments, and a second run reuses the finished store."""
    assert main(["experiment"]) == 0
    assert "uhn-threshold" in capsys.readouterr().out
    args = ["experiment", "uhn-threshold", "--quick", "--workers", "0", "--out", str(tmp_path)]
    assert main(args) == 0
    first = xr.open_zarr(tmp_path / "uhn-threshold-quick.zarr")["compute_time"].values.copy()
    assert main(args) == 0
    assert np.array_equal(xr.open_zarr(tmp_path / "uhn-threshold-quick.zarr")["compute_time"].values, first)
    assert "T=50" in capsys.readouterr().out


def test_an_experiment_runs_on_other_data_and_settings_and_says_so(tmp_path, capsys):
    """`--data` and `--set` override the paper's grid; the outputs are named after the changes
    and the report opens with them; a zipped or unknown parameter is refused by name."""
    args = ["experiment", "uhn-capacity", "--quick", "--workers", "0", "--out", str(tmp_path), "--data", "digits",
            "--set", "threshold=60", "--set", "n_memories=5,10", "--set", "seed=0"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Overridden by the user: data = 'digits', threshold = 60, n_memories = [5, 10], seed = 0" in out
    (nc,) = tmp_path.glob("uhn-capacity-quick-*.nc")
    ds = xr.open_dataset(nc)
    assert list(ds["data"].values) == ["digits"] and list(ds["n_memories"].values) == [5, 10]
    assert float(ds["threshold"]) == 60 and ds.attrs["overrides"].startswith("data = 'digits'")
    assert not (tmp_path / "uhn-capacity-quick.nc").exists()  # the paper's own run keeps its name
    assert main([*args[:7], "--set", "corruption=none"]) == 2
    assert "'corruption' is zipped with ['separation'] in dimension 'setting'" in capsys.readouterr().err
    assert main([*args[:7], "--set", "bogus=1"]) == 2
    assert "unknown sweep parameter(s) ['bogus']" in capsys.readouterr().err


def test_an_overrides_file_and_set_options_make_one_set_of_overrides(tmp_path):
    import argparse

    from neurodyn.cli.commands import experiment_overrides
    from neurodyn.jobs.experiment import load_experiment

    file = tmp_path / "mine.toml"
    file.write_text('[grid]\nn_memories = [5, 10]\n[fixed]\nthreshold = 60\n')
    args = argparse.Namespace(overrides=str(file), data="mine.npz", set=["seed=0,1", "model=uhn-dot"])
    overrides = experiment_overrides(args)
    assert overrides == {"n_memories": [5, 10], "threshold": 60, "data": "mine.npz", "seed": [0, 1],
                         "model": "uhn-dot"}
    config = load_experiment("uhn-capacity").sweep_config(True, overrides)
    assert config["grid"]["data"] == ["mine.npz"] and config["grid"]["model"] == ["uhn-dot"]
    assert config["fixed"]["threshold"] == 60 and config["grid"]["seed"] == [0, 1]
    file.write_text('[zip.setting]\ncorruption = ["none"]\nseparation = ["max"]\n')
    with pytest.raises(ValueError, match="zipped dimensions cannot be overridden"):
        experiment_overrides(args)
