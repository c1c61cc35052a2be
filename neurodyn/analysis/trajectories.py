"""Along the trajectories: recall time and metastability (entropy of the memory activations,
mixture episodes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import xarray as xr

from .compare import checked_matrix, prepared
from .retrieval import final_states, mixture_time, participation_over_time

if TYPE_CHECKING:
    from .network import Network

def _target_positions(ds: xr.Dataset, target_index: object) -> np.ndarray | None:
    """Per cue, the position of its target memory on the ``pattern`` axis of ``overlap``
    (-1: not recorded), or None when no target index is known."""
    if target_index is None:
        if "target_index" not in ds:
            return None
        target_index = ds["target_index"].values
    ti = np.asarray(torch.as_tensor(target_index).cpu(), dtype=np.int64)
    if ti.shape != (ds.sizes["cue"],):
        raise ValueError(f"target_index must have one entry per cue ({ds.sizes['cue']}), got shape {ti.shape}")
    recorded = {int(p): i for i, p in enumerate(ds["pattern"].values)}
    return np.array([recorded.get(int(t), -1) for t in ti])


def _on_target(ds: xr.Dataset, threshold: float, target_index: object, targets: object, patterns: object,
               nearest: bool) -> tuple[np.ndarray, str]:
    """(time, cue) booleans: the state overlaps its target by at least ``threshold`` (and, with
    ``nearest``, at least as much as any other candidate memory); and how that was measured."""
    if "overlap" in ds:
        pos = _target_positions(ds, target_index)
        if pos is not None and (pos >= 0).all():
            ov = ds["overlap"].transpose("time", "cue", "pattern").values.astype(np.float64)
            on = np.take_along_axis(ov, pos[None, :, None], axis=2)[..., 0]
            ok = on >= threshold
            if nearest:
                ok &= on >= ov.max(axis=2)
            return ok, "recorded overlap with the target memory" + (" (and the largest one)" if nearest else "")
        if pos is not None and targets is None and "target" not in ds:
            missing = np.flatnonzero(pos < 0).tolist()
            raise ValueError(f"the target memory of cue(s) {missing[:10]} is not among the recorded overlaps "
                             "(Monitor(overlap_with=...)); record it, or record 'g'/'v' with targets")
    state = "g" if "g" in ds else "v" if "v" in ds else None
    if state is None:
        raise ValueError("recall_time needs 'overlap' (with target_index) or 'g'/'v' (with targets) recorded")
    if targets is None:
        if "target" not in ds:
            raise ValueError("no targets: pass targets= here or to simulate(), or record 'overlap' with target_index")
        targets = ds["target"].transpose("cue", "unit").values
    unit_dim = "unit_subset" if "unit_subset" in ds[state].dims else "unit"
    units = ds[unit_dim].values
    n_units = ds.sizes["unit"] if "unit" in ds.sizes else len(units)
    tgt = checked_matrix("targets", targets, n_units)
    if tgt.shape[0] != ds.sizes["cue"]:
        raise ValueError(f"targets must have one row per cue ({ds.sizes['cue']}), got {tgt.shape[0]}")
    units_t = torch.as_tensor(np.array(units), dtype=torch.long)
    s = torch.as_tensor(ds[state].transpose("time", "cue", unit_dim).values, dtype=torch.float64)
    s_unit = prepared(s, "cosine")
    overlap = (s_unit * prepared(tgt[:, units_t], "cosine")[None]).sum(-1)
    ok = (overlap >= threshold).numpy()
    how = f"cosine overlap of the recorded {state} with the target"
    if nearest and patterns is not None:
        p = checked_matrix("patterns", patterns, n_units)[:, units_t]
        best = (s_unit @ prepared(p, "cosine").T).amax(-1)
        ok &= (overlap >= best - 1e-9).numpy()  # the target itself is among the patterns: allow its rounding
        how += " (and the largest over the given patterns)"
    return ok, how


def recall_time(ds: xr.Dataset, overlap_threshold: float = 0.9, *, target_index: object = None,
                targets: object = None, patterns: object = None, nearest: bool = True) -> xr.DataArray:
    """Per cue, the first recorded time from which the state stays on its target memory until the
    end of the recording; NaN when it is not on it at the end.

    "On the target" means a cosine overlap with the target of at least ``overlap_threshold``
    and, with ``nearest``, no smaller than the overlap with any other candidate memory. It is
    measured on the recorded ``overlap`` (Monitor variable; the target is ``target_index``, from
    here or from ``simulate(target_index=...)``, and the candidates are the recorded patterns),
    otherwise on the recorded ``g`` (or ``v``, equal to ``g`` for the quadratic value Lagrangian)
    against ``targets`` (from here or ``simulate(targets=...)``; candidates: ``patterns``, when
    given). The resolution is the recording grid.

    This is a behavioural time (when is the memory retrieved?), unlike the solver's
    ``convergence_time`` (when did the state stop moving?): a cue can sit on its memory long
    before the residual motion dies down, or settle on a wrong memory or mixture (converged,
    recall time NaN).
    """
    if not -1.0 <= overlap_threshold <= 1.0:
        raise ValueError(f"overlap_threshold must lie in [-1, 1] (a cosine), got {overlap_threshold}")
    ok, how = _on_target(ds, overlap_threshold, target_index, targets, patterns, nearest)
    stays = np.flip(np.logical_and.accumulate(np.flip(ok, 0), axis=0), 0)  # on target from here to the end
    times = ds["time"].values
    first = np.where(stays.any(0), times[stays.argmax(0)], np.nan)
    return xr.DataArray(first, dims="cue", coords={"cue": ds["cue"].values}, name="recall_time", attrs={
        "long_name": f"time from which the state stays on its target (overlap >= {overlap_threshold:g})",
        "units": ds["time"].attrs.get("units", "1"), "criterion": how,
        "overlap_threshold": float(overlap_threshold)})


# ----------------------------------------------------------------------------- metastability
def activation_entropy(ds: xr.Dataset) -> xr.DataArray:
    """Shannon entropy (nats) of the normalized memory activations ``p = |f| / sum |f|`` at every
    recorded time: 0 on one memory, ``log 2`` on an even mixture of two, ``log N`` when all N share
    the state. It weighs every active memory (the participation ratio ``1/sum p^2`` is dominated
    by the largest ones); ``exp(entropy)`` is the perplexity, another effective number of memories.
    With top-k recording the activations outside the top k are missing. Dims (time, cue)."""
    if "f" not in ds:
        raise ValueError("record 'f' (Monitor(variables=(..., 'f'))) to follow the activation entropy")
    f = ds["f"]
    dim = "memory" if "memory" in f.dims else "rank"

    def entropy(a: np.ndarray) -> np.ndarray:
        w = torch.as_tensor(a, dtype=torch.float64).abs()
        return torch.special.entr(w / w.sum(-1, keepdim=True)).sum(-1).numpy()

    return xr.apply_ufunc(entropy, f, input_core_dims=[[dim]]).assign_attrs(
        long_name="entropy of the memory activations", units="nat")


def mixture_episodes(ds: xr.Dataset, mixture_ratio: float = 1.5) -> xr.Dataset:
    """The metastable mixture episodes of each cue: maximal runs of recorded times at which the
    participation ratio of ``f`` is at least ``mixture_ratio`` (:func:`participation_over_time`).

    ``in_mixture`` (time, cue); per cue and episode (NaN-padded): ``start`` (first time in the
    mixture), ``end`` (first recorded time after it, or the last time when it lasts to the end),
    ``duration = end - start`` and ``final`` (it lasts to the end: the cue ends in a mixture, see
    :func:`final_states`); ``n_episodes``. The durations of a cue add up to :func:`mixture_time`.
    """
    if not mixture_ratio >= 1:
        raise ValueError(f"mixture_ratio must be >= 1, got {mixture_ratio}")
    inside = (participation_over_time(ds) >= mixture_ratio).transpose("time", "cue")
    flags = inside.values
    times = ds["time"].values
    episodes: list[list[tuple[float, float, bool]]] = []
    for c in range(flags.shape[1]):
        padded = np.concatenate([[False], flags[:, c], [False]]).astype(np.int8)
        starts = np.flatnonzero(np.diff(padded) == 1)
        stops = np.flatnonzero(np.diff(padded) == -1)  # first index after each run
        episodes.append([(times[a], times[min(int(b), len(times) - 1)], b == len(times))
                         for a, b in zip(starts, stops, strict=True)])
    n = max((len(e) for e in episodes), default=0)
    start = np.full((len(episodes), n), np.nan)
    end = np.full((len(episodes), n), np.nan)
    final = np.zeros((len(episodes), n), dtype=bool)
    for c, eps in enumerate(episodes):
        for k, (a, b, last) in enumerate(eps):
            start[c, k], end[c, k], final[c, k] = a, b, last
    units = ds["time"].attrs.get("units", "1")
    out = xr.Dataset({
        "in_mixture": inside.assign_attrs(long_name=f"in a mixture (participation ratio >= {mixture_ratio:g})",
                                          units="1"),
        "start": (("cue", "episode"), start, {"long_name": "start of the mixture episode", "units": units}),
        "end": (("cue", "episode"), end, {"long_name": "end of the mixture episode", "units": units}),
        "duration": (("cue", "episode"), end - start, {"long_name": "duration of the mixture episode",
                                                       "units": units}),
        "final": (("cue", "episode"), final, {"long_name": "episode lasts to the end of the recording",
                                              "units": "1"}),
        "n_episodes": ("cue", np.array([len(e) for e in episodes]),
                       {"long_name": "number of mixture episodes", "units": "1"}),
    }, coords={"cue": ds["cue"].values, "episode": np.arange(n)})
    out.attrs["mixture_ratio"] = float(mixture_ratio)
    return out


def metastability(ds: xr.Dataset, network: Network | None = None, mixture_ratio: float = 1.5,
                  spurious_distance: float = 0.5) -> xr.Dataset:
    """Everything on metastable states in one Dataset: ``participation_ratio`` and ``entropy``
    over time (:func:`participation_over_time`, :func:`activation_entropy`), the mixture episodes
    (:func:`mixture_episodes`) and ``mixture_time``; with the ``network`` (or a run that keeps its
    memories, whose network is rebuilt from it), the final state's kind (memory, mixture or
    spurious attractor) from :func:`final_states` as ``state``, ``nearest``, ``distance`` and
    ``final_participation_ratio``. Needs ``f`` recorded."""
    out = mixture_episodes(ds, mixture_ratio)
    out["participation_ratio"] = participation_over_time(ds).transpose("time", "cue")
    out["entropy"] = activation_entropy(ds).transpose("time", "cue")
    out["mixture_time"] = mixture_time(ds, mixture_ratio)
    if network is not None or "memories" in ds:
        states = final_states(ds, network, mixture_ratio, spurious_distance)
        out["final_participation_ratio"] = states["participation_ratio"]
        for name in ("state", "nearest", "distance"):
            out[name] = states[name]
        out.attrs.update(counts=states.attrs["counts"], memory_spacing=states.attrs["memory_spacing"],
                         spurious_distance=spurious_distance)
    return out
