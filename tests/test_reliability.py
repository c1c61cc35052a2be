"""Bad input gets one clear line; outputs are never clobbered, half-written or lost (issue 17)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from neurodyn import Cues, Monitor, Solver, from_preset, load_netcdf, save_netcdf, simulate
from neurodyn.analysis import lyapunov_check
from neurodyn.cli import main
from neurodyn.errors import OutputError
from neurodyn.files import claim, lock_path, temporaries

SMALL = ["--n-memories", "10", "--n-cues", "2", "--duration", "2", "--no-figure"]


def _dataset(n: int = 1000) -> xr.Dataset:
    return xr.Dataset({"x": (("cue", "time"), np.arange(n * 200, dtype=np.float64).reshape(n, 200))})


def _python(code: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(predicate, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the other process never got there")
        time.sleep(0.02)


# ------------------------------------------------------------------------------------ the CLI
@pytest.mark.parametrize("argv, code, needle", [
    (["recall", "--n-cues", "0"], 2, "argument --n-cues: must be an integer >= 1, got '0'"),
    (["recall", "--rtol", "nan"], 2, "argument --rtol: must be a finite number > 0"),
    (["recall", "--seed", "1.5"], 2, "argument --seed: invalid int value"),
    (["recall", "--device", "cuda:7"], 5, "device 'cuda:7' is not available"),
    (["recall", "--device", "tpu"], 2, "unknown device 'tpu'"),
    (["recall", "--figure", "x.gif"], 2, "--figure x.gif: unknown image format '.gif'"),
    (["sweep", "x.toml", "--threads", "0"], 2, "argument --threads: must be an integer >= 1"),
    (["sweep", "x.toml", "--workers", "-1"], 2, "argument --workers: must be an integer >= 0"),
])
def test_bad_arguments_get_one_line_naming_them_and_their_exit_status(argv, code, needle, capsys):
    assert main(argv) == code
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_an_existing_output_is_refused_before_any_work_and_kept(tmp_path, capsys):
    out = tmp_path / "r.nc"
    assert main(["recall", *SMALL, "--output", str(out)]) == 0
    before = out.read_bytes()
    assert main(["recall", *SMALL, "--output", str(out), "--seed", "3"]) == 4
    assert "exists; pass --overwrite" in capsys.readouterr().err and out.read_bytes() == before
    assert main(["recall", *SMALL, "--output", str(out), "--seed", "3", "--overwrite"]) == 0
    assert out.read_bytes() != before and load_netcdf(out).attrs["seed"] == 3


@pytest.mark.parametrize("place, needle", [("folder", "is a directory"), ("under_a_file", "is a file")])
def test_an_output_that_cannot_be_written_is_named(tmp_path, capsys, place, needle):
    (tmp_path / "plain").write_text("")
    target = tmp_path if place == "folder" else tmp_path / "plain" / "r.nc"
    assert main(["recall", *SMALL, "--output", str(target)]) == 4
    err = capsys.readouterr().err
    assert needle in err and str(target) in err


def _unprivileged(argv: list[str]) -> list[str]:
    """``argv`` run by a user that permissions bind: as is, or as ``nobody`` when we are root
    (root writes anywhere); skips when there is no such user that can run the package here."""
    if os.geteuid() != 0:
        return argv
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: no user that folder permissions bind")
    cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
    probe = subprocess.run([*cmd[:-len(argv)], sys.executable, "-c", "import neurodyn"], capture_output=True,
                           env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    if probe.returncode:
        pytest.skip("the unprivileged user cannot import neurodyn from this checkout")
    return cmd


def test_an_output_in_a_folder_that_is_not_writable_is_refused_before_any_work():
    base = Path(tempfile.mkdtemp())  # (pytest's tmp_path is private to its user)
    try:
        base.chmod(0o755)
        locked = base / "locked"
        locked.mkdir(mode=0o555)
        locked.chmod(0o555)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "HOME": str(base),
               "MPLCONFIGDIR": str(base)}
        for target, needle in ((locked / "r.nc", "its folder is not writable"),
                               (locked / "sub" / "r.nc", "cannot create the folder of output")):
            done = subprocess.run(_unprivileged([sys.executable, "-m", "neurodyn.cli", "recall", *SMALL, "--output",
                                                 str(target)]), capture_output=True, text=True, env=env, timeout=120)
            assert done.returncode == 4 and needle in done.stderr and str(target) in done.stderr, done.stderr
            assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        assert not any(locked.iterdir())
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_result_file_that_is_not_a_run_is_named(tmp_path, capsys):
    garbage, other = tmp_path / "garbage.nc", tmp_path / "other.nc"
    garbage.write_bytes(b"not netcdf at all")
    _dataset(3).to_netcdf(other, engine="h5netcdf")
    assert main(["inspect", str(garbage)]) == 2
    assert f"{garbage}: cannot be read as NetCDF" in capsys.readouterr().err
    assert main(["inspect", str(other)]) == 2
    assert "not a neurodyn run" in capsys.readouterr().err


def test_a_bug_still_shows_its_traceback(monkeypatch):
    import neurodyn.cli.commands as commands

    monkeypatch.setattr(commands, "cmd_codecs", lambda args: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        main(["codecs"])


def test_debug_shows_the_traceback_of_an_expected_failure():
    with pytest.raises(ValueError, match="unknown device"):
        main(["recall", "--device", "tpu", "--debug"])


def test_sigterm_stops_a_recall_with_nothing_half_written(tmp_path):
    out = tmp_path / "long.nc"
    proc = subprocess.Popen([sys.executable, "-m", "neurodyn.cli", "recall", "--model", "uhn-manhattan",
                             "--n-memories", "1000", "--duration", "1000", "--steady-tol", "0", "--record", "v,energy",
                             "--output",
                             str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    _wait_for(lambda: lock_path(out).exists())  # the output is claimed
    assert proc.stderr is not None
    first = proc.stderr.readline()  # the first progress line (after 5 s): the dynamics are running
    assert first.startswith("recall: "), first
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "terminated" in err and "Traceback" not in err, err
    assert not out.exists() and not temporaries(out) and not lock_path(out).exists()


# ------------------------------------------------------------------------------------ files
def test_a_second_writer_is_refused_with_the_first_ones_pid(tmp_path):
    out = tmp_path / "shared.nc"
    holder = _python(f"""
        import time
        from neurodyn.files import claim
        with claim({str(out)!r}):
            print("held", flush=True)
            time.sleep(60)
    """)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    try:
        with pytest.raises(OutputError, match=f"being written by another process \\(pid {holder.pid}\\)"):
            save_netcdf(_dataset(3), out)
        assert main(["recall", *SMALL, "--output", str(out)]) == 4
    finally:
        holder.kill()
        holder.wait()
    save_netcdf(_dataset(3), out)  # a killed holder's lock is released by the system
    assert load_netcdf(out)["x"].shape == (3, 200)


def test_a_writer_killed_at_any_moment_leaves_the_old_file_or_the_new_one(tmp_path):
    out = tmp_path / "r.nc"
    save_netcdf(_dataset(5), out)
    for delay in (0.05, 0.2, 0.4, 0.8):
        writer = _python(f"""
            import numpy as np, xarray as xr
            from neurodyn import save_netcdf
            ds = xr.Dataset({{"x": (("cue", "time"), np.random.rand(3000, 500))}})
            while True:
                save_netcdf(ds, {str(out)!r})
        """)
        time.sleep(delay)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        assert load_netcdf(out)["x"].shape in ((5, 200), (3000, 500))  # never half a file
    save_netcdf(_dataset(5), out)  # the next writer sweeps what the killed ones left
    assert not temporaries(out) and load_netcdf(out)["x"].shape == (5, 200)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_result_files_follow_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        path = save_netcdf(_dataset(2), tmp_path / "r.nc")
    finally:
        os.umask(old)
    assert (path.stat().st_mode & 0o777) == 0o666 & ~mask


def test_claims_refuse_an_existing_output_unless_overwriting_and_nest(tmp_path):
    out = tmp_path / "r.nc"
    save_netcdf(_dataset(2), out)
    with pytest.raises(OutputError, match="exists"):
        save_netcdf(_dataset(3), out, overwrite=False)
    with claim(out):
        save_netcdf(_dataset(3), out)  # the same process may write what it claimed
        assert lock_path(out).exists()
    assert not lock_path(out).exists() and load_netcdf(out)["x"].shape == (3, 200)


# ------------------------------------------------------------------------------------ Python inputs
MEMORIES = torch.rand(10, 8, generator=torch.Generator().manual_seed(0))
NET = from_preset("mchn-l2", MEMORIES)
Q = MEMORIES[:2]


@pytest.mark.parametrize("run, needle", [
    (lambda: simulate(NET, torch.empty(0, 8), 2.0), "no cues"),
    (lambda: simulate(NET, Q.to(torch.complex64), 2.0), "cue must be real"),
    (lambda: from_preset("mchn-l2", MEMORIES.to(torch.complex64)), "memories must be real"),
    (lambda: Monitor(("v",), n_times=2.5), "n_times must be a whole number >= 2"),
    (lambda: simulate(NET, Q, 2.0, seed=1.5), "seed must be a whole number"),
    (lambda: simulate(NET, Q, 2.0, method=5), "method must be a Solver"),
    (lambda: simulate(NET, Cues(Q, targets=Q * float("nan")), 2.0), "targets contains 16 NaN"),
    (lambda: simulate(NET, Cues(Q, target_index=torch.tensor([0, 10])), 2.0), "target_index must lie in 0..9"),
    (lambda: simulate(NET, Cues(Q, target_index=torch.tensor([0.5, 1.0])), 2.0), "whole numbers"),
    (lambda: simulate(NET, Cues(Q, clamp=torch.full((8,), 0.5)), 2.0), "clamp must be a boolean mask"),
    (lambda: Solver(max_steps=10.5), "max_steps must be a whole number"),
    (lambda: Solver(block_size=-1), "block_size must be a whole number >= 1"),
])
def test_bad_python_inputs_are_refused_before_any_work(run, needle, monkeypatch):
    import neurodyn.simulation as simulation

    monkeypatch.setattr(simulation, "_run", lambda *a, **k: pytest.fail("the run started"))
    with pytest.raises(ValueError, match=needle):
        run()


def test_a_cue_whose_energy_becomes_nan_fails_the_lyapunov_check():
    ds = simulate(NET, Q, 5.0, method=Solver("rk4", step_size=0.1), monitor=Monitor(("energy",), n_times=11))
    assert lyapunov_check(ds).monotone
    broken = ds.copy(deep=True)
    broken["energy"] = ds["energy"].where(~((ds["cue"] == 1) & (ds["time"] >= 2.0)))
    report = lyapunov_check(broken)
    assert not report.monotone and report.cue == 1 and report.time == 2.0
    assert "energy becomes nan at t=2, cue 1" in report.verdict
    # A cue the solver reported failed ends in NaN by design: its failure is reported, not this.
    status = broken["solver_status"].values.copy()
    status[1] = 3
    broken["solver_status"] = (broken["solver_status"].dims, status)
    assert lyapunov_check(broken).monotone


def test_a_streamed_run_killed_at_any_moment_resumes_to_the_uninterrupted_run(tmp_path):
    code = """
        import sys, torch
        from neurodyn import Monitor, Solver, ZarrStore, from_preset, simulate
        m = torch.rand(200, 16, generator=torch.Generator().manual_seed(0))
        simulate(from_preset("mchn-l2", m), m[:8] * 0.5, 200.0, method=Solver("rk4", step_size=0.05),
                 monitor=Monitor(("v", "energy"), n_times=2001), store=ZarrStore(sys.argv[1], chunk_times=5))
    """
    m = torch.rand(200, 16, generator=torch.Generator().manual_seed(0))
    run = dict(method=Solver("rk4", step_size=0.05), monitor=Monitor(("v", "energy"), n_times=2001))
    whole = simulate(from_preset("mchn-l2", m), m[:8] * 0.5, 200.0, **run)
    for k, delay in enumerate((0.2, 0.7)):
        store = tmp_path / f"run{k}.zarr"
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
        proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), str(store)], env=env)
        _wait_for(lambda: (store / "time").exists(), 60)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with xr.open_zarr(store) as part:
            n = part.sizes["time"]
            assert 0 < n < 2001 and int(part.attrs["complete"]) == 0
            np.testing.assert_array_equal(part["v"].values, whole["v"].values[:n])
        with pytest.raises(FileExistsError, match="interrupted run with another cues, method, model, monitor"):
            simulate(NET, Q, 2.0, store=store)  # another run never writes over it
        done = simulate(from_preset("mchn-l2", m), m[:8] * 0.5, 200.0, store=store, **run)  # the rerun completes it
        assert done.attrs["complete"] == 1 and not list(tmp_path.glob(f".{store.name}*"))
        for name in ("v", "energy", "v_final", "converged", "solver_nfe"):
            np.testing.assert_array_equal(done[name].values, whole[name].values, err_msg=name)


# ------------------------------------------------------------------------------------ bounded records
def test_a_record_over_its_bound_is_refused_before_any_work_with_what_to_reduce(tmp_path, monkeypatch, capsys):
    import neurodyn.simulation as simulation
    from neurodyn import ZarrStore
    from neurodyn.errors import RecordTooLarge

    m = torch.rand(50, 16, generator=torch.Generator().manual_seed(0))
    net, monitor = from_preset("mchn", m), Monitor(("v", "overlap", "energy"), n_times=101, max_bytes=100_000)
    with monkeypatch.context() as patch:
        patch.setattr(simulation, "_run", lambda *a, **k: pytest.fail("the run started"))
        with pytest.raises(RecordTooLarge, match=r"the record would take 0.137 MB \(overlap 0.0963 MB, v 0.0308 MB"
                                                 r".*over Monitor.max_bytes = 0.0954 MB: record fewer times"):
            simulate(net, m[:5], 2.0, monitor=monitor)
    assert simulate(net, m[:5], 2.0, monitor=dataclasses.replace(monitor, max_bytes=None)).sizes["time"] == 101
    streamed = simulate(net, m[:5], 2.0, monitor=monitor, store=ZarrStore(tmp_path / "run.zarr", chunk_times=10))
    assert streamed.attrs["complete"] == 1  # a streamed record is bounded by its chunk
    with pytest.raises(ValueError, match="max_bytes must be a whole number >= 1"):
        Monitor(max_bytes=0)
    assert main(["recall", "--no-figure", "--max-record-mb", "1", "--output", str(tmp_path / "r.nc")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "over --max-record-mb 1: record fewer times (--n-times)" in err, err
    assert "--top-k" in err and not (tmp_path / "r.nc").exists()
