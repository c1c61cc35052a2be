"""The Triton distance kernel against ``torch.cdist``, run by Triton's CPU interpreter.

``TRITON_INTERPRET=1`` must be set before triton is first imported: measured with triton 3.9,
setting it later interprets our kernel but not triton.language's own jitted helpers (``tl.zeros``),
and the launch fails. This pytest process may have imported triton already, and the variable would
leak into every other test, so the kernel runs in one child process with ``TRITON_INTERPRET=1``,
which saves its results for the tests here to check. Input validation runs in this process.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("triton")

from neurodyn.triton_distance import available, pairwise_distance  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"block_b": 16, "block_n": 32}  # the interpreter's cost grows with the tile count

# Loads the module from its file: the package's __init__ would add seconds of imports.
CHILD = """
import importlib.util
import sys
import torch
spec = importlib.util.spec_from_file_location("triton_distance", sys.argv[3])
td = importlib.util.module_from_spec(spec)
spec.loader.exec_module(td)
report = {"triton imported by the module": "triton" in sys.modules, "available": td.available("cpu")}
for name, (q, m, p, blocks) in torch.load(sys.argv[1]).items():
    report[name] = td.pairwise_distance(q, m, p, **blocks)
torch.save(report, sys.argv[2])
"""


def _cases() -> dict[str, tuple[torch.Tensor, torch.Tensor, int, dict[str, int]]]:
    """Named (cues, memories, p, block sizes): shapes that are not multiples of the blocks."""
    g = torch.Generator().manual_seed(0)
    ragged = torch.randn(37, 19, generator=g), torch.randn(70, 19, generator=g)
    wide = torch.randn(5, 784, generator=g), torch.randn(9, 784, generator=g)
    cues = torch.randn(6, 50, generator=g)
    with_copies = cues, torch.cat([torch.randn(5, 50, generator=g), cues[:3]])
    return {
        "l1_ragged": (*ragged, 1, SMALL),
        "l2_ragged": (*ragged, 2, SMALL),
        "l1_default_blocks": (*ragged, 1, {}),
        "l1_wide": (*wide, 1, SMALL),
        "l2_wide": (*wide, 2, SMALL),
        "l1_copies": (*with_copies, 1, SMALL),
        "l2_copies": (*with_copies, 2, SMALL),
        "l1_half": (ragged[0].half(), ragged[1].half(), 1, SMALL),
    }


@pytest.fixture(scope="module")
def interpreted(tmp_path_factory) -> tuple[dict, dict]:
    """The cases, and what the kernel returned for them under the interpreter (one child process)."""
    folder = tmp_path_factory.mktemp("triton_distance")
    cases = _cases()
    torch.save(cases, folder / "cases.pt")
    module = ROOT / "neurodyn" / "triton_distance.py"
    run = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder / "cases.pt"), str(folder / "out.pt"), str(module)],
        env={**os.environ, "TRITON_INTERPRET": "1"}, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-4000:]
    return cases, torch.load(folder / "out.pt")


@pytest.mark.parametrize("name", ["l1_ragged", "l2_ragged", "l1_default_blocks", "l1_wide", "l2_wide"])
def test_matches_cdist(interpreted, name):
    cases, results = interpreted
    q, m, p, _ = cases[name]
    d = results[name]
    assert d.shape == (len(q), len(m)) and d.dtype == torch.float32
    torch.testing.assert_close(d, torch.cdist(q, m, p=p), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["l1_copies", "l2_copies"])
def test_identical_rows_give_zero(interpreted, name):
    _, results = interpreted
    d = results[name]
    assert torch.equal(d[torch.arange(3), 5 + torch.arange(3)], torch.zeros(3))
    assert (d[:, :5] > 0).all()


def test_half_inputs_accumulate_in_fp32_and_return_half(interpreted):
    cases, results = interpreted
    q, m, _, _ = cases["l1_half"]
    d = results["l1_half"]
    assert d.dtype == torch.float16
    torch.testing.assert_close(d, torch.cdist(q.float(), m.float(), p=1).half(), rtol=1e-3, atol=0.0)


def test_lazy_import_and_interpreter_availability(interpreted, monkeypatch):
    _, results = interpreted
    assert not results["triton imported by the module"]
    assert results["available"]
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert not available(torch.device("cpu"))


@pytest.mark.parametrize("q, m, p, kwargs, message", [
    (torch.zeros(3), torch.zeros(4, 3), 1, {}, "2-D"),
    (torch.zeros(2, 3), torch.zeros(4, 5), 1, {}, "feature counts differ"),
    (torch.zeros(2, 3), torch.zeros(4, 3, device="meta"), 1, {}, "memories on meta"),
    (torch.zeros(2, 3, dtype=torch.float64), torch.zeros(4, 3, dtype=torch.float64), 1, {}, "float64"),
    (torch.zeros(2, 3), torch.zeros(4, 3, dtype=torch.float16), 1, {}, "dtypes must match"),
    (torch.zeros(2, 3), torch.zeros(4, 3), 3, {}, "p must be 1 or 2"),
    (torch.zeros(2, 3, requires_grad=True), torch.zeros(4, 3), 1, {}, "require grad"),
    (torch.zeros(2, 3), torch.zeros(4, 3), 1, {"block_n": 48}, "block_n must be a power of two"),
    (torch.zeros(2, 3), torch.zeros(4, 3), 1, {}, "cannot run on cpu"),
])
def test_bad_inputs_raise(q, m, p, kwargs, message, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ValueError, match=message):
        pairwise_distance(q, m, p, **kwargs)


NETWORK_CHILD = """
import torch
from neurodyn import Network, triton_distance
from neurodyn.network import tiled
calls = []
kernel = triton_distance.pairwise_distance
triton_distance.pairwise_distance = lambda q, m, p: calls.append(p) or kernel(q, m, p, block_b=16, block_n=16)
g = torch.Generator().manual_seed(1)
memories, cues = torch.rand(40, 12, generator=g), torch.rand(5, 12, generator=g)
out = {}
for sim in ("manhattan", "euclidean"):
    net = Network(memories, similarity=sim, separation="softmax:4", dynamics="projection")
    streamed = tiled.stream_memories(net.bank(), cues, tile=16)
    net64 = net.to(dtype=torch.float64)
    plain = net64.project(net64.separate(net64.scores(cues.double())))
    out[sim] = (streamed.drive.double(), plain, streamed.lagrangian.double(),
                net64.memory_lagrangian(net64.scores(cues.double())))
out["calls"] = calls
torch.save(out, __import__("sys").argv[1])
"""


def test_distance_similarities_route_float32_through_the_kernel(tmp_path):
    """With the kernel available, float32 Manhattan and Euclidean scores of a streamed pass come
    from it (float64 stays on torch.cdist) and give the same drive and Lagrangian."""
    result = tmp_path / "network.pt"
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    subprocess.run([sys.executable, "-c", NETWORK_CHILD, str(result)], check=True, env=env, cwd=ROOT,
                   capture_output=True, timeout=300)
    out = torch.load(result)
    assert out.pop("calls") == [1, 1, 1, 2, 2, 2]  # three tiles of 16 for each similarity
    for sim, (drive, want_drive, lag, want_lag) in out.items():
        torch.testing.assert_close(drive, want_drive, rtol=1e-5, atol=1e-5, msg=sim)
        torch.testing.assert_close(lag, want_lag, rtol=1e-5, atol=1e-5, msg=sim)
