"""Sweep stores under kills, a second writer, dying workers, unreachable schedulers and folders
that are not sweep stores (issue "Reliability")."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from neurodyn.cli import main
from neurodyn.errors import InputFileError, OutputError, ResourceUnavailable
from neurodyn.scale import sweep
from neurodyn.scale.sweep import describe_store, open_store, run_sweep

TESTS = Path(__file__).parent
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning")

POINTS = [float(x) for x in range(1, 17)]
SLOW = {"sweep": {"function": "sweep_points:slow_square"}, "grid": {"x": POINTS}, "fixed": {"delay": 0.05}}


@pytest.fixture(autouse=True)
def workers_import_test_points(monkeypatch):
    # Dask worker processes import tests/sweep_points.py through PYTHONPATH.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.delenv("SWEEP_TEST_LOG", raising=False)


def start_sweep(config: dict, store: Path, log: Path) -> subprocess.Popen:
    """``run_sweep`` of ``config`` into ``store`` in a process of its own (in that process: no
    workers), each computed point logged to ``log``."""
    code = (f"import sys; sys.path.insert(0, {str(TESTS)!r})\n"
            "from neurodyn.scale.sweep import run_sweep\n"
            f"run_sweep({config!r}, {str(store)!r}, n_workers=0, progress=False, flush_seconds=0.1)\n")
    return subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ, SWEEP_TEST_LOG=str(log)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def files_under(folder: Path) -> list[str]:
    return [name for _, _, names in os.walk(folder) for name in names]


def points_done(store: Path) -> int:
    try:
        return int((xr.open_zarr(store, consolidated=False)["status"].values == 1).sum())
    except Exception:  # noqa: BLE001 - not there yet
        return 0


# When to kill the sweep: the first moment the test sees the folder of the store in this state.
MOMENTS = {
    "layout begun": lambda folder, store: ".zgroup" in files_under(folder),
    "layout half written": lambda folder, store: files_under(folder).count(".zarray") >= 3,
    "laid out": lambda folder, store: (store / ".zmetadata").exists(),
    "filling": lambda folder, store: points_done(store) >= 4,
}


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory) -> xr.Dataset:
    return run_sweep(SLOW, tmp_path_factory.mktemp("straight") / "s.zarr", n_workers=0, progress=False).load()


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_a_sweep_killed_at_any_moment_resumes_without_recomputing(moment, tmp_path, monkeypatch, straight_run):
    folder = tmp_path / "runs"
    folder.mkdir()
    store = folder / "k.zarr"
    proc = start_sweep(SLOW, store, tmp_path / "run1.log")
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline and not MOMENTS[moment](folder, store):
            time.sleep(0.002)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the sweep ended before the moment to kill it"
    # Whatever the moment, the store is absent or whole: it is renamed into place laid out.
    assert not store.exists() or (store / ".zmetadata").exists(), sorted(os.listdir(store))
    finished = set()
    if store.exists():
        killed = open_store(store).load()
        finished = set(killed["x"].values[killed["status"].values == 1])
    if moment == "filling":
        assert 4 <= len(finished) < len(POINTS)
    monkeypatch.setenv("SWEEP_TEST_LOG", str(tmp_path / "run2.log"))
    ds = run_sweep(SLOW, store, n_workers=0, progress=False).load()
    for name in ("status", "y", "x_plus_seed", "error"):
        np.testing.assert_array_equal(ds[name].values, straight_run[name].values, err_msg=name)
    log = tmp_path / "run2.log"
    recomputed = {float(line.split(",")[0]) for line in log.read_text().split()} if log.exists() else set()
    assert not recomputed & finished  # no stored point was computed again
    assert recomputed | finished == set(POINTS)
    assert os.listdir(folder) == ["k.zarr"]  # no layout, lock or temporary file is left beside it


def test_a_second_sweep_on_a_held_store_fails_at_once_naming_the_other_process(tmp_path, capsys):
    store = tmp_path / "busy.zarr"
    config = {**SLOW, "fixed": {"delay": 0.5}}
    holder = start_sweep(config, store, tmp_path / "holder.log")
    try:
        deadline = time.monotonic() + 60
        while not (store / ".zmetadata").exists() and holder.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert holder.poll() is None
        start = time.monotonic()
        with pytest.raises(OutputError, match=f"pid {holder.pid}") as raised:
            run_sweep(config, store, n_workers=0, progress=False)
        assert str(store) in str(raised.value) and time.monotonic() - start < 2
        config_path = tmp_path / "busy.toml"
        config_path.write_text('[sweep]\nfunction = "sweep_points:slow_square"\n[grid]\nx = [1.0]\n')
        assert main(["sweep", str(config_path), "--store", str(store), "--workers", "0"]) == 4
        assert f"pid {holder.pid}" in capsys.readouterr().err
        assert holder.poll() is None  # the holder was left alone
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.slow
def test_a_point_that_kills_its_worker_is_recorded_as_failed_and_the_sweep_goes_on(tmp_path):
    """``os._exit`` in a point, as a segfault or the OOM killer: the worker's tasks (a block of two
    points and the block queued behind it) are given up, their points retried one at a time and
    then alone, and only the one that kills its worker then is recorded as failed."""
    config_path = tmp_path / "dies.toml"
    config_path.write_text('[sweep]\nfunction = "sweep_points:dies_at"\n'
                           '[grid]\nx = [1.0, 2.0, 3.0]\n[fixed]\ndie_at = 2.0\n')
    store = tmp_path / "d.zarr"
    code = ("import sys; from neurodyn.scale.sweep import run_sweep, load_config\n"
            f"run_sweep(load_config({str(config_path)!r}), {str(store)!r}, n_workers=1, block_size=2, "
            "progress=False)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        assert proc.wait(timeout=240) == 0
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the LocalCluster's workers too, should it hang
    ds = open_store(store).load()
    np.testing.assert_array_equal(ds["status"].values, [1, 2, 1])
    np.testing.assert_array_equal(ds["y"].values[[0, 2]], [1.0, 9.0])
    assert str(ds["error"].values[1]).startswith("worker died") and "worker" in str(ds["error"].values[1])
    assert "1 failed" in describe_store(store)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_scheduler_fails_in_bounded_time(tmp_path):
    address = f"tcp://127.0.0.1:{closed_port()}"
    config = {"sweep": {"function": "sweep_points:slow_square"}, "grid": {"x": [1.0]}}
    start = time.monotonic()
    with pytest.raises(ResourceUnavailable, match=f"{address}.*within 1 s"):
        run_sweep(config, tmp_path / "u.zarr", scheduler=address, connect_timeout=1, progress=False)
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("option,value", [("n_workers", -1), ("threads_per_worker", 0), ("block_size", 0)])
def test_bad_counts_are_refused_by_name(option, value, tmp_path):
    config = {"sweep": {"function": "sweep_points:slow_square"}, "grid": {"x": [1.0]}}
    with pytest.raises(ValueError, match=option):
        run_sweep(config, tmp_path / "c.zarr", progress=False, **{option: value})
    assert not (tmp_path / "c.zarr").exists()


def test_a_sweep_without_workers_says_so_and_one_that_loses_its_scheduler_stops(tmp_path, monkeypatch):
    scheduler_file = tmp_path / "scheduler.json"
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                  "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    backstop = threading.Timer(60, scheduler.kill)  # should the sweep never say what it waits for
    backstop.start()
    try:
        deadline = time.monotonic() + 60
        while not (scheduler_file.exists() and scheduler_file.stat().st_size) and time.monotonic() < deadline:
            time.sleep(0.05)
        address = json.loads(scheduler_file.read_text())["address"]

        class Stderr(io.StringIO):  # the scheduler goes away once the sweep has said what it waits for
            def write(self, text: str) -> int:
                if "no point finished" in text:
                    scheduler.kill()
                return super().write(text)

        monkeypatch.setattr(sys, "stderr", stderr := Stderr())
        monkeypatch.setattr(sweep, "STALL_SECONDS", 0.5)
        config = {"sweep": {"function": "sweep_points:slow_square"}, "grid": {"x": [1.0, 2.0]}}
        with pytest.raises(ResourceUnavailable, match="rerun the sweep"):
            run_sweep(config, tmp_path / "w.zarr", scheduler=address, progress=False)
    finally:
        scheduler.kill()
        scheduler.wait()
        backstop.cancel()
    assert f"0 of 2 points done, 0 workers on the scheduler {address}" in stderr.getvalue()


def test_a_folder_that_is_no_sweep_store_is_refused_by_name(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "cat.png").write_bytes(b"\x89PNG")
    for call in (describe_store, open_store):
        with pytest.raises(InputFileError, match="not a sweep store") as raised:
            call(folder)
        assert str(folder) in str(raised.value)
    config = {"sweep": {"function": "sweep_points:slow_square"}, "grid": {"x": [1.0]}}
    with pytest.raises(InputFileError, match=str(folder)):
        run_sweep(config, folder, n_workers=0, progress=False)
    assert os.listdir(folder) == ["cat.png"]
    assert main(["inspect", str(folder)]) == 2


def test_an_empty_folder_becomes_the_store(tmp_path):
    (tmp_path / "e.zarr").mkdir()
    config = {"sweep": {"function": "sweep_points:slow_square"}, "grid": {"x": [1.0, 2.0]}}
    ds = run_sweep(config, tmp_path / "e.zarr", n_workers=0, progress=False)
    np.testing.assert_array_equal(ds["y"].values, [1.0, 4.0])


@pytest.mark.parametrize("damage", ["garbage metadata", "truncated metadata", "garbage status", "no status"])
def test_a_damaged_store_is_refused_by_name(damage, tmp_path, capsys):
    store = tmp_path / "d.zarr"
    config = {"sweep": {"function": "sweep_points:slow_square"}, "grid": {"x": [1.0, 2.0]}}
    run_sweep(config, store, n_workers=0, progress=False)
    if damage == "garbage metadata":
        (store / ".zmetadata").write_bytes(os.urandom(300))
    elif damage == "truncated metadata":
        (store / ".zmetadata").write_bytes((store / ".zmetadata").read_bytes()[:200])
    elif damage == "garbage status":
        (store / "status" / "0").write_bytes(b"not a chunk")
    else:  # an array's files gone, and with them from the metadata
        import shutil

        import zarr

        shutil.rmtree(store / "status")
        zarr.consolidate_metadata(str(store))
    with pytest.raises(InputFileError, match=str(store)):
        describe_store(store)
    with pytest.raises(InputFileError, match=str(store)):
        run_sweep(config, store, n_workers=0, progress=False)
    assert main(["inspect", str(store)]) == 2
    err = capsys.readouterr().err
    assert str(store) in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
