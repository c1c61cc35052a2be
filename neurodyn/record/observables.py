"""What a :class:`~neurodyn.record.Monitor` asks for, evaluated from the network's states.

Recorded quantities are reduced on the fly (index subsets, top-k, overlaps, energy), so what is
kept per time point is what was asked for, not the whole state. The recorder
(:mod:`~neurodyn.record.recorder`) only accumulates and stores what this module computes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import RecordTooLarge
from ..network import Cue, Network, State
from .monitor import Monitor


def _indices(name: str, idx: Sequence[int] | None, size: int) -> torch.Tensor | None:
    if idx is None:
        return None
    t = torch.as_tensor(idx, dtype=torch.long)
    if t.ndim != 1 or t.numel() == 0 or t.min() < 0 or t.max() >= size:
        raise ValueError(f"{name} must be a non-empty list of indices in [0, {size}), got {list(idx)}")
    return t


class Observables:
    """The monitored quantities of ``network`` driven by ``cue``: the value and memory states
    (or their subsets, or the top-k memories), the energy's parts, overlaps with stored patterns
    and the speed. ``units``, ``memories``, ``patterns`` (index tensors or None) and ``top_k``
    are the monitor's, checked against the network."""

    def __init__(self, monitor: Monitor, network: Network, cue: Cue) -> None:
        self.monitor, self.network, self.cue = monitor, network, cue
        net = network
        self.units = _indices("units", monitor.units, net.n_features)
        self.memories = _indices("memories", monitor.memories, net.n_memories)
        patterns = _indices("overlap_with", monitor.overlap_with, net.n_memories)
        self.top_k = None if monitor.top_k is None else min(monitor.top_k, net.n_stored)
        if net.shards is not None and ("overlap" in monitor.variables or (
                {"h", "f"} & set(monitor.variables) and self.top_k is None)):
            raise ValueError("a sharded network records h and f only as top_k memories, and no overlap")
        self.patterns = torch.arange(net.n_memories) if patterns is None else patterns
        if "overlap" in monitor.variables:
            p = net.P[self.patterns.to(net.memories.device)]
            self._pattern_unit = p / p.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(p.dtype).tiny)

    def bytes_per_time(self) -> dict[str, int]:
        """What one recorded time takes in memory, per variable (bytes; an estimate: the energy
        counts its parts, spike events are left out as they depend on the run)."""
        net, monitor = self.network, self.monitor
        units = net.n_features if self.units is None else len(self.units)
        memories = self.top_k or (net.n_memories if self.memories is None else len(self.memories))
        widths = {"v": units, "g": units, "h": memories, "f": memories, "energy": 5, "overlap": len(self.patterns),
                  "speed": 1, "rate": memories}
        per_value = {name: 8 if name == "rate" else net.memories.element_size() for name in widths}
        out = {name: self.cue.batch * width * per_value[name] for name, width in widths.items()
               if name in monitor.variables}
        if self.top_k is not None and {"h", "f"} & set(monitor.variables):
            out["memory_index"] = self.cue.batch * self.top_k * 8
        return out

    def check_size(self, n_times: int) -> None:
        """Refuse a record over the monitor's ``max_bytes`` (:class:`~neurodyn.errors.RecordTooLarge`)."""
        limit = self.monitor.max_bytes
        sizes = {name: size * n_times for name, size in self.bytes_per_time().items()}
        if limit is not None and sum(sizes.values()) > limit:
            raise RecordTooLarge(sizes, limit)

    @torch.no_grad()
    def __call__(self, times: torch.Tensor, v: torch.Tensor, h: torch.Tensor | None,
                 speed: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """The monitored quantities for states ``v`` (T, B, I), ``h`` (T, B, N) or None and
        ``speed`` (T, B) at solver ``times`` (T,), each (T, B, ...)."""
        want = set(self.monitor.variables)
        n_t, batch = v.shape[:2]
        net = self.network
        flat_v = v.reshape(n_t * batch, -1)
        g = net.activation(flat_v)
        out: dict[str, torch.Tensor] = {}

        def unflat(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(n_t, batch, *x.shape[1:])

        units = self.units
        sub = (lambda x: x) if units is None else (lambda x: x[..., units.to(x.device)])
        if "v" in want:
            out["v"] = sub(v)
        if "g" in want:
            out["g"] = sub(unflat(g))
        flat_h = None if h is None else h.reshape(n_t * batch, -1)
        if "energy" in want:
            # Every cue at every time: the cues' currents repeated, each row at its own time.
            cue = self.cue
            rows = torch.arange(batch, device=v.device).repeat(n_t)
            flat_cue = Cue(flat_v, None if cue.current is None else cue.current[rows], gain=cue.gain, rows=rows)
            at = times.to(device=v.device, dtype=torch.float64).repeat_interleave(batch)
            for key, value in net.energy(State(flat_v, flat_h), flat_cue, at).items():
                out["energy" if key == "total" else f"energy_{key}"] = unflat(value)
        if want & {"h", "f"}:
            picked, indices = self._memories(g, flat_h)
            if indices is not None:
                out["memory_index"] = unflat(indices)
            for key in ("h", "f"):
                if key in want:
                    out[key] = unflat(picked[key])
        if "overlap" in want:
            gu = g / g.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(g.dtype).tiny)
            out["overlap"] = unflat(gu @ self._pattern_unit.T)
        if "speed" in want and speed is not None:
            out["speed"] = speed
        return out

    def _memories(self, g: torch.Tensor,
                  flat_h: torch.Tensor | None) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """``h`` and ``f`` as monitored (all, a subset, or the top k with their indices)."""
        net = self.network
        if (self.top_k is not None and flat_h is None and net.separation.combines == "log_sum_exp"
                and net.streams(len(g))):
            return self._streamed_top(g)
        flat_h = net.scores(g) if flat_h is None else flat_h
        f = net.separate(flat_h)
        if self.top_k is not None:
            f_top, h_top, indices = net.top_memories(f, flat_h, self.top_k)
            return {"f": f_top, "h": h_top}, indices
        if self.memories is not None:
            idx = self.memories.to(f.device)
            return {"f": f[:, idx], "h": flat_h[:, idx]}, None
        return {"f": f, "h": flat_h}, None

    def _streamed_top(self, g: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The top-k memories of a softmax bank too large for one tile, from one streamed pass:
        ranked by score ``h``, which is the order of ``f`` (where ``f`` underflows to a tie at 0,
        the score still orders the memories, the plain path their index)."""
        out = self.network.memory_pass(g, drive=False, top_k=self.top_k)
        assert out.scores is not None and out.indices is not None  # (asked for top_k)
        f_top = torch.exp(self.network.separation.beta * (out.scores - out.get_lagrangian()[:, None]))
        return {"h": out.scores, "f": f_top}, out.indices
