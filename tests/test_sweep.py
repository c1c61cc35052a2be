"""Sweeps on Dask into one Zarr store: same numbers as one by one, TCP clusters, kills, bad configs."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from neurodyn.cli import main
from neurodyn.jobs.recall import recall_point
from neurodyn.scale.sweep import Grid, run_sweep

TESTS = Path(__file__).parent
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning")


@pytest.fixture(autouse=True)
def workers_import_test_points(monkeypatch):
    # Dask worker processes import tests/sweep_points.py through PYTHONPATH.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.syspath_prepend(str(TESTS))


RECALL = {
    "grid": {"model": ["mchn-l2", "uhn-manhattan"], "seed": [0, 1]},
    "zip": {"load": {"n_memories": [10, 30], "corruption": ["mask:0.25,side=bottom", "gaussian:0.1"]}},
    "fixed": {"data": "digits", "duration": 5.0},
}


def test_local_cluster_sweep_equals_points_one_by_one(tmp_path):
    ds = run_sweep(RECALL, tmp_path / "s.zarr", n_workers=2, progress=False).load()
    assert ds["status"].dims == ("model", "seed", "load") and (ds["status"] == 1).all()
    assert list(ds["n_memories"].values) == [10, 30]
    for index, params in Grid.from_config(RECALL).points():
        expected = recall_point(**params)
        got = ds.isel(dict(zip(("model", "seed", "load"), index)))
        for name in ("retrieval_rate", "mse", "nfe", "energy_monotone"):
            assert float(got[name]) == pytest.approx(expected[name], rel=1e-6), (params, name)
    # The Lyapunov-guaranteed model never raises its energy; UHN's projection dynamics do.
    assert (ds["energy_monotone"].sel(model="mchn-l2") == 1).all()


def test_failed_points_are_recorded_and_the_sweep_goes_on(tmp_path, capsys):
    config = {"sweep": {"function": "sweep_points:slow_square"},
              "grid": {"x": [1.0, 2.0, 3.0]}, "fixed": {"fail_at": 2.0}}
    ds = run_sweep(config, tmp_path / "f.zarr", n_workers=1, progress=False).load()
    np.testing.assert_array_equal(ds["status"].values, [1, 2, 1])
    assert "fails on purpose" in str(ds["error"].values[1]) and np.isnan(ds["y"].values[1])
    np.testing.assert_array_equal(ds["y"].values[[0, 2]], [1.0, 9.0])
    assert main(["inspect", str(tmp_path / "f.zarr")]) == 0
    out = capsys.readouterr().out
    assert "2 done, 1 failed, 0 missing" in out and "x=2.0" in out


@contextlib.contextmanager
def tcp_cluster(tmp_path, workers: list[list[str]]):
    """A dask scheduler and workers (their extra CLI arguments) as separate processes on
    localhost; yields the scheduler's address once every worker has joined."""
    from distributed import Client

    sched_file = tmp_path / "scheduler.json"
    run = dict(env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", "0", "--no-dashboard", "--scheduler-file", str(sched_file)], **run)]
    try:
        for _ in range(200):
            if sched_file.exists() and sched_file.stat().st_size:
                break
            time.sleep(0.1)
        for extra in workers:
            procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
                                           str(sched_file), "--nthreads", "1", "--no-dashboard", *extra], **run))
        with Client(scheduler_file=str(sched_file)) as client:
            client.wait_for_workers(len(workers), timeout=60)
            address = client.scheduler.address
        yield address
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_sweep_on_a_tcp_scheduler_and_workers_in_other_processes(tmp_path):
    with tcp_cluster(tmp_path, [[]]) as address:
        assert address.startswith("tcp://")
        config = {"sweep": {"function": "sweep_points:slow_square"}, "grid": {"x": [1.0, 2.0], "seed": [0, 5]}}
        ds = run_sweep(config, tmp_path / "t.zarr", scheduler=address, progress=False).load()
        np.testing.assert_array_equal(ds["y"].values, [[1.0, 6.0], [4.0, 9.0]])


def test_gpu_sweeps_run_only_on_workers_that_declare_a_gpu(tmp_path):
    """`gpu = true` makes every task ask for the worker resource GPU=1: with one worker that
    declares it and one that does not, every point runs on the first."""
    with tcp_cluster(tmp_path, [["--name", "gpu-worker", "--resources", "GPU=1"], ["--name", "cpu-worker"]]) as address:
        config = {"sweep": {"function": "sweep_points:worker_name", "gpu": True},
                  "grid": {"x": [float(i) for i in range(8)]}}
        ds = run_sweep(config, tmp_path / "g.zarr", scheduler=address, progress=False, block_size=1).load()
        assert (ds["on_gpu_worker"].values == 1.0).all()


@pytest.mark.slow  # 17-35 s; tests/test_sweep_reliability.py kills sweeps at four moments in ~12 s by default
def test_killed_sweep_keeps_finished_points_and_resumes_without_recomputing(tmp_path):
    config_path = tmp_path / "kill.toml"
    config_path.write_text('[sweep]\nfunction = "sweep_points:slow_square"\n'
                           '[grid]\nx = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0]\n'
                           '[fixed]\ndelay = 0.4\n')
    store = tmp_path / "k.zarr"
    cmd = [sys.executable, "-m", "neurodyn.cli", "sweep", str(config_path), "--store", str(store), "--workers", "2"]
    env = dict(os.environ, SWEEP_TEST_LOG=str(tmp_path / "run1.log"))
    client = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        done = 0
        for _ in range(600):  # wait until a few points are stored, then kill the client mid-sweep
            time.sleep(0.05)
            if (store / "status" / ".zarray").exists():
                done = int((xr.open_zarr(store, consolidated=False)["status"].values == 1).sum())
                if done >= 3:
                    break
        assert 3 <= done < 12, done
        client.send_signal(signal.SIGKILL)
        client.wait()
    finally:
        os.killpg(client.pid, signal.SIGKILL)  # the LocalCluster's orphaned workers too
    before = xr.open_zarr(store, consolidated=False).load()  # the store opens after a kill
    finished = set(before["x"].values[before["status"].values == 1])
    assert finished and len(finished) < 12
    env["SWEEP_TEST_LOG"] = str(tmp_path / "run2.log")
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    after = xr.open_zarr(store).load()
    assert (after["status"] == 1).all()
    np.testing.assert_array_equal(after["y"].values, after["x"].values ** 2)
    recomputed = {float(line.split(",")[0]) for line in (tmp_path / "run2.log").read_text().split()}
    assert not recomputed & finished  # no stored point was computed again
    assert recomputed | finished == set(after["x"].values)


@pytest.mark.parametrize("config,needle", [
    ({"grid": {"bogus": [1]}}, "unknown sweep parameter"),
    ({"grid": {"seed": []}}, "empty"),
    ({"grid": {"seed": [1, 1]}}, "repeats"),
    ({"zip": {"z": {"seed": [1, 2], "n_memories": [10]}}}, "one length"),
    ({"sweep": {"function": "nope"}}, "unknown point function"),
    ({"grid": {"seed": [1]}, "fixed": {"seed": 2}}, "more than once"),
    ({"grids": {}}, "unknown sweep config"),
])
def test_bad_configs_fail_before_any_work(config, needle, tmp_path):
    with pytest.raises(ValueError, match=needle):
        run_sweep(config, tmp_path / "bad.zarr", progress=False)
    assert not (tmp_path / "bad.zarr").exists()


def test_a_store_from_another_grid_is_refused(tmp_path):
    config = {"sweep": {"function": "sweep_points:slow_square"}, "grid": {"x": [1.0]}}
    run_sweep(config, tmp_path / "s.zarr", n_workers=1, progress=False)
    config["grid"]["x"] = [1.0, 2.0]
    with pytest.raises(ValueError, match="different sweep"):
        run_sweep(config, tmp_path / "s.zarr", progress=False)


def test_a_store_made_under_a_point_functions_old_path_resumes_under_the_new_one():
    """Point functions moved into neurodyn.jobs (issue 16): a store records the name it was made
    with, and names that resolve to the same function are the same sweep."""
    from neurodyn.scale.store import _same_function

    with warnings.catch_warnings():  # (the old path warns on first import: tests/test_facade.py)
        warnings.simplefilter("ignore", DeprecationWarning)
        assert _same_function("neurodyn.protocols:one_step_point", "neurodyn.jobs.protocols:one_step_point")
    assert _same_function("recall", "neurodyn.jobs.recall:recall_point")
    assert not _same_function("neurodyn.jobs.protocols:spiking_point", "neurodyn.jobs.protocols:one_step_point")
    assert not _same_function("nowhere:nothing", "recall")


def test_a_sweep_of_fixed_values_only_is_one_point(tmp_path):
    """No grid axes: a zero-dimensional store (reading it back once failed on a numpy scalar)."""
    config = {"sweep": {"function": "sweep_points:slow_square"}, "fixed": {"x": 3.0, "seed": 1}}
    ds = run_sweep(config, tmp_path / "one.zarr", n_workers=0, progress=False).load()
    assert ds["status"].shape == () and int(ds["status"]) == 1 and float(ds["y"]) == 10.0
