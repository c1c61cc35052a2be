"""Cues and states: how a batch of queries drives the network, and what the network's state is.

A query becomes a :class:`Cue` (DESIGN.md section 2, "Cues"): an initial value state ``v(0)``
(``mode="initial"``), a persistent input current ``I`` (``"current"``, ``v(0) = 0``), or both; a
clamp mask holds chosen value units at ``v(0)`` (``dv/dt = 0`` there).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from .timecourse import BoundGain, Timecourse, saved_timecourse

if TYPE_CHECKING:
    import xarray as xr

CUE_MODES = ("initial", "current", "both")


def check_finite(name: str, x: torch.Tensor) -> None:
    """Raise ``ValueError`` naming ``name`` when ``x`` holds NaN or infinite values."""
    if not torch.isfinite(x).all():
        bad = (~torch.isfinite(x)).sum().item()
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s)")


@dataclass
class Cue:
    """How a batch of queries drives the network (DESIGN.md section 2, "Cues").

    ``v0``: initial value state (B, I). ``current``: persistent input current ``I`` (B, I) or None.
    ``clamp``: boolean mask (B, I) of value units held at ``v0``, or None. ``h0``: the slow memory
    neurons' initial state (B, N) (None: at equilibrium with ``v0``). ``gain``: the current's
    time course bound to the run (:class:`~neurodyn.network.timecourse.Timecourse`; None: the
    current is constant), and ``rows``: the cues of the whole batch these are (None: all).
    """

    v0: torch.Tensor
    current: torch.Tensor | None = None
    clamp: torch.Tensor | None = None
    h0: torch.Tensor | None = None
    gain: BoundGain | None = None
    rows: torch.Tensor | None = None

    @property
    def batch(self) -> int:
        return self.v0.shape[0]

    def select(self, rows: torch.Tensor | None) -> Cue:
        """The cues at ``rows`` (all of them for None)."""
        if rows is None:
            return self
        return Cue(self.v0[rows], None if self.current is None else self.current[rows],
                   None if self.clamp is None else self.clamp[rows], None if self.h0 is None else self.h0[rows],
                   self.gain, rows if self.rows is None else self.rows[rows])

    def current_at(self, t: torch.Tensor | float | None) -> torch.Tensor | None:
        """The input current at solver time ``t`` (a number, or one time per cue (B,)): ``I`` scaled
        by its time course (UHN eq. 2's ``I`` as a function of time); None without a current."""
        if self.current is None or self.gain is None:
            return self.current
        if t is None:
            raise ValueError("this cue's input current varies in time: give the time to evaluate it at")
        return self.current * self.gain(torch.as_tensor(t), self.rows)


@dataclass
class State:
    """The network state: value neurons ``v`` (B, I) and, for slow memory neurons, ``h`` (B, N)."""

    v: torch.Tensor
    h: torch.Tensor | None = None

    def memory(self) -> torch.Tensor:
        """``h``, which a network with slow memory neurons always carries."""
        if self.h is None:
            raise ValueError("this state has no memory neurons' h (the network's memory neurons are fast)")
        return self.h


@dataclass(frozen=True)
class Cues:
    """A batch of queries for a run (:func:`neurodyn.simulate`): how they drive the network and
    what each should recall.

    ``queries``: (B, I), or one query (I,). ``mode``: ``"initial"`` (``v(0) = q``), ``"current"``
    (an input current ``strength * q``, ``v(0) = 0``) or ``"both"``; ``clamp``: a boolean mask
    (I,) or (B, I) of value units held at ``v(0)``. ``targets``: the patterns the cues should
    recall (B, I), and ``target_index``: the index of each cue's stored pattern (B,), kept in the
    record for retrieval analysis. ``ids``: a spiking run's global cue ids, which key its random
    numbers (default ``0..B-1``): a cue with the same id gets the same spikes in any batch.
    ``start``: the state to start from instead of the mode's ``v(0)``, as (v (B, I), h (B, N) or
    None), at time ``start_time``: a run taken on from where another ended
    (:meth:`continuing`). ``timecourse``: how the input current varies in time, ``I(t) = s(t)
    strength q`` (a :class:`~neurodyn.network.timecourse.Timecourse`, or what it takes: a
    DataArray on a time grid or a function of time); modes ``"current"`` and ``"both"`` only.
    """

    queries: torch.Tensor
    mode: str = "initial"
    clamp: torch.Tensor | None = None
    strength: float = 1.0
    targets: torch.Tensor | None = None
    target_index: torch.Tensor | None = None
    ids: torch.Tensor | None = None
    start: tuple[torch.Tensor, torch.Tensor | None] | None = None
    start_time: float = 0.0
    timecourse: Timecourse | xr.DataArray | Callable[[torch.Tensor], torch.Tensor] | None = None

    @classmethod
    def continuing(cls, ds: xr.Dataset, timecourse: Timecourse | None = None) -> Cues:
        """The cues of a rate run (its Dataset, or :func:`~neurodyn.record.open_run`'s) taken on
        from where it ended, as Brian2's second ``net.run`` goes on: the same queries, mode,
        clamp, strength, input time course and targets, starting from its final state at its
        last time. A run whose input followed a function of time is continued only with that
        function given again as ``timecourse`` (the file holds its values, not the function)."""
        if "neuron_model" in ds.attrs:
            raise ValueError("a spiking run cannot be continued: its neurons' and synapses' states are not "
                             "saved; run it again for longer")
        if "v_final" not in ds or "query" not in ds:
            raise ValueError("the run has no v_final and query: it is not a run's Dataset")
        mode = str(ds.attrs.get("cue_mode", "initial"))
        missing = [name for name, needed in (
            ("h_final", "model_tau_h" in ds.attrs), ("clamp", bool(int(ds.attrs.get("clamped", 0)))),
            ("cue_strength", mode != "initial")) if needed and name not in ds and name not in ds.attrs]
        if missing:
            raise ValueError(f"the run lacks {', '.join(missing)} (saved by an older neurodyn): it cannot be "
                             "continued exactly")

        def tensor(name: str) -> torch.Tensor | None:
            return torch.as_tensor(ds[name].transpose("cue", ...).values) if name in ds else None

        clamp = tensor("clamp")
        if timecourse is None and "input_gain" in ds:
            timecourse = saved_timecourse(ds["input_gain"])
        return cls(torch.as_tensor(ds["query"].values), mode,
                   None if clamp is None else clamp.to(torch.bool), float(ds.attrs.get("cue_strength", 1.0)),
                   targets=tensor("target"), target_index=tensor("target_index"),
                   start=(tensor("v_final"), tensor("h_final")),  # type: ignore[arg-type]
                   start_time=float(ds["time"].values[-1]), timecourse=timecourse)


def as_queries(queries: torch.Tensor, n_features: int, like: torch.Tensor, name: str = "cue") -> torch.Tensor:
    """A batch of queries (B, I) checked against ``n_features`` and moved to ``like``'s device and
    dtype (a single query (I,) becomes a batch of one)."""
    q = torch.as_tensor(queries)
    if q.is_complex():
        raise ValueError(f"{name} must be real, got {str(q.dtype).replace('torch.', '')}")
    if q.ndim == 1:
        q = q[None]
    if q.ndim != 2 or q.shape[1] != n_features:
        raise ValueError(f"{name} must have shape (batch, {n_features}) to match the memories, "
                         f"got {tuple(q.shape)}")
    if q.shape[0] == 0:
        raise ValueError(f"no {name}s: give at least one (a batch of shape (0, {n_features}) has none)")
    q = q.to(device=like.device, dtype=like.dtype)
    check_finite(name, q)
    return q


def cue_from_queries(q: torch.Tensor, mode: str = "initial", clamp: torch.Tensor | None = None,
                     strength: float = 1.0) -> Cue:
    """Checked queries ``q`` (B, I) as a :class:`Cue`: ``mode`` ``"initial"`` (``v(0) = q``),
    ``"current"`` (``I = strength * q``, ``v(0) = 0``) or ``"both"``; ``clamp`` a boolean mask
    (I,) or (B, I) of units held at ``v(0)``."""
    if mode not in CUE_MODES:
        raise ValueError(f"unknown cue mode {mode!r}; known: {', '.join(CUE_MODES)}")
    if not (isinstance(strength, (int, float)) and math.isfinite(strength)):
        raise ValueError(f"strength must be a finite number, got {strength!r}")
    current = strength * q if mode in ("current", "both") else None
    v0 = torch.zeros_like(q) if mode == "current" else q
    mask = None
    if clamp is not None:
        mask = torch.as_tensor(clamp, device=q.device)
        if mask.dtype != torch.bool and (mask.is_floating_point() or mask.is_complex()
                                         or not ((mask == 0) | (mask == 1)).all()):
            raise ValueError(f"clamp must be a boolean mask (True: the unit is held), got {mask.dtype} values")
        mask = mask.to(torch.bool)
        try:
            mask = mask.expand_as(q).clone()
        except RuntimeError:
            raise ValueError(f"clamp mask of shape {tuple(mask.shape)} does not fit cues of shape "
                             f"{tuple(q.shape)}") from None
    return Cue(v0, current, mask)


def check_targets(cues_targets: object, target_index: object, queries: torch.Tensor, n_stored: int
                  ) -> tuple[torch.Tensor | None, np.ndarray | None]:
    """A run's targets (B, I), finite and shaped as the queries, and ``target_index`` (B,), whole
    numbers in ``0..n_stored-1``; checked before any work."""
    targets = None
    if cues_targets is not None:
        targets = torch.as_tensor(cues_targets)
        if targets.is_complex():
            raise ValueError(f"targets must be real, got {targets.dtype}")
        targets = targets.to(dtype=queries.dtype)
        if targets.shape != queries.shape:
            raise ValueError(f"targets must have the cues' shape {tuple(queries.shape)}, got {tuple(targets.shape)}")
        check_finite("targets", targets)
    index = None
    if target_index is not None:
        raw = np.asarray(torch.as_tensor(target_index).cpu())
        if raw.shape != (len(queries),):
            raise ValueError(f"target_index must have one entry per cue ({len(queries)}), got shape {raw.shape}")
        if raw.dtype.kind not in "iu" and not (raw.dtype.kind == "f" and np.all(raw == np.round(raw))):
            raise ValueError(f"target_index must hold whole numbers, got {raw.tolist()}")
        index = raw.astype(np.int64)
        if len(index) and (index.min() < 0 or index.max() >= n_stored):
            raise ValueError(f"target_index must lie in 0..{n_stored - 1} (the stored memories), got "
                             f"{index.min()}..{index.max()}")
    return targets, index
