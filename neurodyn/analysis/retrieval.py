"""Retrieval: the UHN criterion per cue, the nearest stored pattern, and what kind of state each
cue ended in (a stored memory, a mixture of memories, or spurious)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import torch
import xarray as xr

from ..names import UHN_THRESHOLD
from ..record.reopen import run_network

if TYPE_CHECKING:
    from .network import Network

MNIST_SIZE = 784  # the pattern size that threshold refers to


def _targets(ds: xr.Dataset, targets: np.ndarray | torch.Tensor | None) -> xr.DataArray:
    if targets is not None:
        t = np.asarray(torch.as_tensor(targets).cpu())
        if t.shape != ds["recalled"].shape:
            raise ValueError(f"targets must have shape {ds['recalled'].shape}, got {t.shape}")
        return xr.DataArray(t, dims=ds["recalled"].dims)
    if "target" not in ds:
        raise ValueError("no targets: pass targets= here or to simulate()")
    return ds["target"]


def sse_limit(threshold: float, size: int, reference_size: int | None = MNIST_SIZE) -> float:
    """UHN's criterion on patterns of ``size`` values: a recalled pattern counts when its sum of
    squared errors is at most ``threshold * size / reference_size`` (``threshold`` itself with
    ``reference_size=None``)."""
    return threshold if reference_size is None else threshold * size / reference_size


def retrieval(ds: xr.Dataset, threshold: float = UHN_THRESHOLD, reference_size: int | None = MNIST_SIZE,
              targets: np.ndarray | torch.Tensor | None = None) -> xr.Dataset:
    """Per-cue retrieval metrics of the recalled patterns (UHN appendix E).

    ``sse``: sum of squared differences to the target; ``mse``: its mean over units;
    ``success``: ``sse * reference_size / I <= threshold``. UHN's criterion is ``sse <= 50`` on
    784-pixel MNIST images (the authors' code uses 60 and can rescale by image size); by default
    the threshold is rescaled to the pattern size ``I`` so that it means the same per-pixel error
    on 64-pixel digits or 3072-value CIFAR images. ``reference_size=None`` compares the raw
    ``sse`` with ``threshold``. ``attrs["rate"]`` is the fraction of cues recalled.
    """
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    err = (ds["recalled"] - _targets(ds, targets)) ** 2
    sse = err.sum("unit")
    limit = sse_limit(threshold, ds.sizes["unit"], reference_size)
    success = sse <= limit
    out = xr.Dataset({
        "sse": sse.assign_attrs(long_name="sum of squared errors of the recalled pattern", units="1"),
        "mse": err.mean("unit").assign_attrs(long_name="mean squared error of the recalled pattern", units="1"),
        "success": success.assign_attrs(long_name=f"retrieved (sse <= {limit:.4g})", units="1"),
    })
    out.attrs.update(threshold=float(threshold), sse_limit=float(limit), rate=float(success.mean()))
    return out


def retrieval_scores(output: torch.Tensor, targets: torch.Tensor, threshold: float = UHN_THRESHOLD
                     ) -> dict[str, float]:
    """UHN appendix E scores of outputs (B, O) against their targets (B, O), row ``i`` of
    ``targets`` being cue ``i``'s.

    The same criterion as :func:`retrieval` (:func:`sse_limit`), for outputs that are not a
    recorded run (the one-step update, a spiking run's rates). ``retrieval_rate``: fraction with
    ``sse <= threshold``, the paper's criterion as written (on every data set; stricter per value
    on larger images); ``retrieval_rate_scaled``: ``sse <= threshold * O / 784`` (the threshold
    per MNIST image rescaled to the pattern size, as :func:`retrieval` does by default);
    ``identity_rate``: fraction whose output is nearer its own target than any other stored one
    (the feature-space paper's "correctly retrieved"); ``mse``, ``sse_median``; ``mean_pattern_rate``: the
    ``retrieval_rate`` that the mean of the targets would score if output for every cue, the
    floor below which a rate says nothing about retrieval (the blurry mean digit is within 50 of
    many MNIST digits).
    """
    sse = ((output - targets) ** 2).sum(-1)
    mean_sse = ((targets.mean(0, keepdim=True) - targets) ** 2).sum(-1)
    nearest = torch.cdist(output.double(), targets.double()).argmin(dim=1)
    return {
        "retrieval_rate": float((sse <= sse_limit(threshold, output.shape[1], None)).double().mean()),
        "retrieval_rate_scaled": float((sse <= sse_limit(threshold, output.shape[1])).double().mean()),
        "identity_rate": float((nearest == torch.arange(len(output), device=nearest.device)).double().mean()),
        "mse": float(sse.mean() / output.shape[1]),
        "sse_median": float(sse.median()),
        "mean_pattern_rate": float((mean_sse <= threshold).double().mean()),
    }


def nearest_pattern(ds: xr.Dataset, patterns: np.ndarray | torch.Tensor) -> xr.Dataset:
    """Which stored pattern each recalled state is nearest to (Euclidean), and how near."""
    p = torch.as_tensor(np.asarray(torch.as_tensor(patterns).cpu()), dtype=torch.float64)
    r = torch.as_tensor(ds["recalled"].transpose("cue", "unit").values, dtype=torch.float64)
    if p.ndim != 2 or p.shape[1] != r.shape[1]:
        raise ValueError(f"patterns must be (N, {r.shape[1]}), got {tuple(p.shape)}")
    d = torch.cdist(r, p)
    dist, idx = d.min(dim=1)
    return xr.Dataset({
        "nearest": ("cue", idx.numpy(), {"long_name": "index of the nearest stored pattern", "units": "1"}),
        "distance": ("cue", dist.numpy(), {"long_name": "Euclidean distance to the nearest stored pattern",
                                           "units": "1"}),
    }, coords={"cue": ds["cue"].values})


def participation_ratio(weights: torch.Tensor) -> torch.Tensor:
    """``1 / sum_mu p_mu^2`` with ``p = |f| / sum |f|`` over the last axis: the effective number
    of memories that share a state (1 for one memory, 2 for an even mixture of two, N when all
    share it equally). Rows of zeros give NaN."""
    w = weights.abs()
    p = w / w.sum(-1, keepdim=True)
    return 1.0 / (p ** 2).sum(-1)


def participation_over_time(ds: xr.Dataset) -> xr.DataArray:
    """The participation ratio of the recorded memory activations ``f`` at every recorded time
    (over all memories, or over the top-k recorded ranks, a close lower bound when k covers the
    active ones). Dims (time, cue)."""
    if "f" not in ds:
        raise ValueError("record 'f' (Monitor(variables=(..., 'f'))) to follow the participation ratio")
    f = ds["f"]
    dim = "memory" if "memory" in f.dims else "rank"
    ratio = xr.apply_ufunc(lambda a: participation_ratio(torch.as_tensor(a)).numpy(), f, input_core_dims=[[dim]])
    return ratio.assign_attrs(long_name="effective number of active memories", units="1")


def mixture_time(ds: xr.Dataset, mixture_ratio: float = 1.5) -> xr.DataArray:
    """Time each cue spends in a mixture state (participation ratio >= ``mixture_ratio``): the
    metastable episodes of HEN hypothesis 3. Each recorded interval counts when its start is in
    a mixture. Dims (cue,), in the time units."""
    pr = participation_over_time(ds)
    dt = ds["time"].diff("time")
    inside = (pr >= mixture_ratio).isel(time=slice(None, -1)).assign_coords(time=dt["time"].values)
    return (inside * dt.values[:, None]).sum("time").assign_attrs(
        long_name=f"time spent in a mixture (participation ratio >= {mixture_ratio:g})",
        units=ds["time"].attrs.get("units", "1"))


def final_states(ds: xr.Dataset, network: Network | None = None, mixture_ratio: float = 1.5,
                 spurious_distance: float = 0.5, units: torch.Tensor | None = None) -> xr.Dataset:
    """Classify each cue's final state by the memory activations ``f`` it leaves on.

    ``participation_ratio`` of ``f = sep(sim(M, g))`` at the end (:func:`participation_ratio`);
    the state is a ``mixture`` (a blend of several memories, HEN hypothesis 3) when it is at
    least ``mixture_ratio``; otherwise ``spurious`` when ``g`` lies farther from its
    nearest stored memory than ``spurious_distance`` times the median distance between a memory
    and its nearest neighbour, and ``memory`` when it lies near one. ``components``: the two
    most active memories. ``attrs["counts"]`` counts each kind. ``units``: a boolean mask of the
    value units that distances are measured on (default all; a recall that clamps a given
    modality measures on the free ones, since the clamped part cannot move towards a memory).
    With ``f`` recorded, ``mixture_time`` says how long each cue lingered in a mixture on its way
    (a metastable state that the dynamics left). ``network``: the run's (default: rebuilt from the
    run's own file, :func:`~neurodyn.record.open_run`).
    """
    if not mixture_ratio >= 1:
        raise ValueError(f"mixture_ratio must be >= 1, got {mixture_ratio}")
    if network is None:
        network = run_network(ds)
    m = network.memories
    v = torch.as_tensor(ds["v_final"].transpose("cue", "unit").values).to(m)
    with torch.no_grad():
        g = network.activation(v)
        f = network.separate(network.scores(g))
        ratio = participation_ratio(f)
        top = torch.argsort(f.abs(), dim=-1, descending=True, stable=True)[:, :2]
        if units is not None:
            g, m = g[:, units.to(g.device)], m[:, units.to(m.device)]
        dist, nearest = torch.cdist(g, m).min(dim=1)
        between = torch.cdist(m, m).fill_diagonal_(float("inf")).min(dim=1).values
        finite = between[torch.isfinite(between)]
        spacing = float(finite.median()) if finite.numel() else float("inf")
    kind = np.where(ratio.cpu().numpy() >= mixture_ratio, "mixture",
                    np.where(dist.cpu().numpy() > spurious_distance * spacing, "spurious", "memory"))
    out = xr.Dataset({
        "participation_ratio": ("cue", ratio.cpu().numpy(),
                                {"long_name": "effective number of active memories at the end", "units": "1"}),
        "state": ("cue", kind.astype(str), {"long_name": "final state: memory, mixture or spurious"}),
        "nearest": ("cue", nearest.cpu().numpy(), {"long_name": "index of the nearest stored memory", "units": "1"}),
        "distance": ("cue", dist.cpu().numpy(), {"long_name": "distance of g to the nearest stored memory",
                                                 "units": "1"}),
        "components": (("cue", "component"), top.cpu().numpy(),
                       {"long_name": "the two most active memories at the end", "units": "1"}),
    }, coords={"cue": ds["cue"].values, "component": [0, 1][:top.shape[1]]})
    if "f" in ds:
        out["mixture_time"] = mixture_time(ds, mixture_ratio)
    out.attrs.update(mixture_ratio=mixture_ratio, spurious_distance=spurious_distance, memory_spacing=spacing,
                     counts=json.dumps({k: int((kind == k).sum()) for k in ("memory", "mixture", "spurious")}))
    return out
