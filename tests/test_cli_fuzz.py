"""Property-based: whatever a user types, the CLI answers with a result or one error line and a
documented exit status, never a traceback; Python entry points run or refuse a setting by name
(issue 17). Derandomized, so CI runs the same examples every time; widen ``max_examples`` or
drop ``derandomize`` locally to hunt for new ones."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import torch

from neurodyn import Cues, Monitor, Solver, from_preset, simulate
from neurodyn.cli import main

NUMBERS = st.one_of(
    st.integers(-3, 3).map(str), st.sampled_from(["nan", "inf", "-inf", "1e400", "0.0", "-0", "", "abc", "1,5"]),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda x: repr(x) if math.isfinite(x) else str(x)),
)
WORDS = st.one_of(st.text(min_size=0, max_size=12), st.sampled_from(["", "-", "--", "none", "v,", ",,", "cuda"]))

OPTIONS = {
    "--n-memories": NUMBERS, "--n-cues": NUMBERS, "--duration": NUMBERS, "--n-times": NUMBERS,
    "--rtol": NUMBERS, "--atol": NUMBERS, "--beta": NUMBERS, "--steady-tol": NUMBERS, "--max-steps": NUMBERS,
    "--top-k": NUMBERS, "--threshold": NUMBERS, "--seed": NUMBERS, "--image-size": NUMBERS, "--tau-h": NUMBERS,
    "--step-size": NUMBERS,
    "--model": st.one_of(WORDS, st.sampled_from(["mchn", "hn", "sdm", "uhn-manhattan", "uhn-kl"])),
    "--solver": st.one_of(WORDS, st.sampled_from(["rk4", "euler", "rosenbrock23", "bosh3"])),
    "--corruption": st.one_of(WORDS, st.sampled_from(["mask:2", "gaussian:-1", "rotate:x", "none", "mask:0.5"])),
    "--record": st.one_of(WORDS, st.sampled_from(["v,energy", "f", "h", "spikes", "overlap,v"])),
    "--device": st.one_of(WORDS, st.sampled_from(["cpu", "cuda", "cuda:3", "mps", "meta"])),
    "--data": st.one_of(WORDS, st.sampled_from(["digits", "random_patterns", "nope.npz", "/"])),
    "--cue-mode": st.one_of(WORDS, st.sampled_from(["initial", "current", "both"])),
    "--dtype": st.one_of(WORDS, st.sampled_from(["float32", "float64", "float16"])),
    "--similarity": st.one_of(WORDS, st.sampled_from(["dot", "manhattan:inverse", "cosine", "kl"])),
    "--separation": st.one_of(WORDS, st.sampled_from(["softmax:3", "max", "topk:0", "polynomial:-1"])),
    "--spiking": st.one_of(WORDS, st.sampled_from(["lif", "poisson", "rate"])),
    "--codec": st.one_of(WORDS, st.sampled_from(["pixels", "nope"])),
    "--figure": st.one_of(WORDS, st.sampled_from(["x.png", "x.gif", "x"])),
}


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(sorted(OPTIONS)), min_size=1, max_size=3, unique=True).flatmap(
    lambda names: st.tuples(*(st.tuples(st.just(n), OPTIONS[n]) for n in names))))
def test_any_recall_arguments_give_a_result_or_one_error_line(tmp_path, capsys, options):
    argv = ["recall", "--n-memories", "5", "--duration", "0.5", "--n-times", "3", "--no-figure", "--overwrite",
            "--output", str(tmp_path / "fuzz.nc")]
    for name, value in options:
        argv += [f"{name}={value}"]
    code = main(argv)
    err = capsys.readouterr().err
    assert code in (0, 2, 3, 4, 5), (argv, code, err)
    assert "Traceback" not in err, (argv, err)
    if code not in (0, 3):
        lines = [line for line in err.splitlines() if not line.startswith("recall: ")]  # progress lines
        assert len(lines) == 1 and lines[0].startswith("neurodyn recall: error: "), (argv, err)


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=2000))
def test_inspect_of_any_bytes_names_the_file(tmp_path, capsys, content):
    path = tmp_path / "any.nc"
    path.write_bytes(content)
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and "Traceback" not in err, err


@pytest.mark.parametrize("command", [["sweep"], ["experiment", "nope"], ["inspect"], ["train-codec", "x"], ["bogus"]])
def test_every_command_refuses_bad_arguments_in_one_line(command, capsys):
    assert main([*command, "--no-such-option"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error:" in err and "Traceback" not in err, err


ODD = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True, allow_infinity=True),
                st.text(max_size=5), st.just(torch.tensor(float("nan"))), st.just([1, 2]), st.just(-0.0))


@settings(max_examples=80, deadline=None, derandomize=True)
@given(st.sampled_from(["duration", "seed", "n_times", "top_k", "rtol", "atol", "max_steps", "block_size",
                        "step_size", "steady_tol", "strength", "mode", "method"]), ODD)
def test_any_python_setting_runs_or_is_refused_by_name(name, value):
    """simulate's settings, one at a time set to an odd value: a run, or a ValueError / TypeError
    naming the setting, never an exception from deep inside torch or numpy."""
    memories = torch.rand(6, 4, generator=torch.Generator().manual_seed(0))
    net, queries = from_preset("mchn-l2", memories), memories[:2]
    solver = {k: value for k in ("rtol", "atol", "max_steps", "block_size", "step_size", "steady_tol") if k == name}
    try:
        method = value if name == "method" else Solver("rk4" if name == "step_size" else "dopri5", **solver)
        monitor = Monitor(("v",), **{k: value for k in ("n_times", "top_k") if k == name})
        cues = Cues(queries, **{k: value for k in ("strength", "mode") if k == name})
        simulate(net, cues, value if name == "duration" else 1.0, method=method, monitor=monitor,
                 seed=value if name == "seed" else None)
    except (ValueError, TypeError) as err:
        assert name.split("_")[0] in str(err).lower().replace(" ", "_") or name == "method", (name, value, err)
