"""Sharded memory banks: gloo processes on CPU give the unsharded network's recall and energy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from neurodyn import Monitor, Network, Solver, from_preset, load_netcdf, save_netcdf, simulate
from neurodyn.network import tiled as tiling
from neurodyn.data import load_digits
from neurodyn.scale.shard import shard_bounds, shard_network

MONITOR = Monitor(("v", "energy", "f", "h", "speed"), n_times=11, top_k=4)
SOLVER = Solver(rtol=1e-7, atol=1e-9, steady_tol=1e-6)


def problem(case: str) -> tuple[Network, torch.Tensor]:
    """The network and cues of a test case, identical in every process."""
    gen = torch.Generator().manual_seed(0)
    if case == "random-softmax":
        memories = torch.randn(11, 6, generator=gen, dtype=torch.float64)
        net = Network(memories, similarity="biased_dot", separation="softmax:3")
    elif case.startswith("ties"):
        # Small integers: every score is exact, so duplicated memories in different shards tie
        # exactly (with other values, rounding breaks ties differently in different matmuls).
        base = torch.randint(-3, 4, (5, 6), generator=gen).double()
        memories = torch.cat([base, base[:2], base[1:3]])
        separation = "max" if case == "ties-max" else "topk:3"
        net = Network(memories, similarity="dot", separation=separation, dynamics="projection",
                      normalize_separation=True)
        return net, torch.cat([memories[:2], memories[2:5] + 1])
    elif case == "digits-uhn-manhattan":
        memories = load_digits().flat()[:50].double()
        net = from_preset("uhn-manhattan", memories)
    elif case == "digits-polynomial":
        memories = load_digits().flat()[:31].double()
        net = Network(memories, similarity="dot", separation="polynomial:2", value_lagrangian="tanh")
    else:
        raise ValueError(case)
    cues = net.memories[:5] + 0.05 * torch.randn(5, net.n_features, generator=gen, dtype=torch.float64)
    return net, cues


def run(net: Network, cues: torch.Tensor):
    ds = simulate(net, cues, 3.0, monitor=MONITOR, method=SOLVER)
    return ds, net.retrieve(cues)


#: Scores per tile in the "/tiled" cases: 5 cues x 2 memories, so every shard is read in tiles.
TINY_TILES = 10


def _worker(rank: int, world: int, init: str, outdir: str, case: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world)
    try:
        case, _, tiled = case.partition("/")
        if tiled:
            tiling.TILE_ELEMENTS = TINY_TILES
        net, cues = problem(case)
        sharded = shard_network(net)
        ds, one_shot = run(sharded, cues)
        ds.attrs["streamed"] = int(sharded.streams(len(cues)))
        save_netcdf(ds.assign(one_shot=(("cue", "unit"), one_shot.numpy())), f"{outdir}/rank{rank}.nc")
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("world,case", [
    (2, "random-softmax"), (3, "ties-max"), (2, "ties-topk"), (3, "digits-uhn-manhattan"),
    (2, "digits-polynomial"),
    # every rank reads its shard in tiles and the parts are combined across ranks (the reference
    # is the plain unsharded network)
    (3, "random-softmax/tiled"), (2, "ties-max/tiled"), (2, "digits-uhn-manhattan/tiled"),
    (3, "digits-polynomial/tiled"),
])
def test_sharded_equals_unsharded(world, case, tmp_path):
    mp.start_processes(_worker, args=(world, str(tmp_path / "init"), str(tmp_path), case), nprocs=world,
                       join=True, start_method="spawn")
    case, _, tiled = case.partition("/")
    net, cues = problem(case)
    ref, ref_one_shot = run(net, cues)
    results = [load_netcdf(tmp_path / f"rank{r}.nc") for r in range(world)]
    assert [ds.attrs["streamed"] for ds in results] == [int(bool(tiled))] * world
    names = ["v", "energy", "f", "h", "speed"]
    if case.startswith("ties"):  # exact ties hold at t = 0 and in the one-shot update only
        ref, results = ref.isel(time=[0]), [ds.isel(time=[0]) for ds in results]
    else:
        names.append("v_final")
    for ds in results:
        for name in names:
            np.testing.assert_allclose(ds[name].values, ref[name].values, rtol=1e-9, atol=1e-12, err_msg=name)
        np.testing.assert_array_equal(ds["memory_index"].values, ref["memory_index"].values)
        np.testing.assert_allclose(ds["one_shot"].values, ref_one_shot.numpy(), rtol=1e-9, atol=1e-12)
        if "v_final" in names:  # the ranks stepped exactly as the unsharded solve
            assert ds.attrs["nfe"] == ref.attrs["nfe"] and ds.sizes["time"] == ref.sizes["time"]
    # The replicas are bit-identical: every rank integrated the same state.
    for ds in results[1:]:
        np.testing.assert_array_equal(ds["v"].values, results[0]["v"].values)


@pytest.mark.parametrize("n,world", [(10, 3), (11, 2), (3, 3), (7, 4)])
def test_shard_bounds_cover_everything_once(n, world):
    bounds = [shard_bounds(n, world, r) for r in range(world)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    sizes = [b - a for a, b in bounds]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


def test_sharding_needs_a_process_group():
    net, _ = problem("random-softmax")
    with pytest.raises((ValueError, RuntimeError)):
        shard_network(net)


def test_the_old_sharded_network_class_still_builds_one_for_a_release():
    """``ShardedNetwork`` (a subclass until issue 16) now builds a Network with Shards, warning."""
    from neurodyn.scale.shard import ShardedNetwork

    net, _ = problem("random-softmax")
    with pytest.warns(DeprecationWarning, match="ShardedNetwork"), pytest.raises(ValueError, match="process group"):
        ShardedNetwork(net.memories, offset=0, n_total=11, separation="softmax:3")
