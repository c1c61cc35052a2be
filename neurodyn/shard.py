"""Memory banks split across the ranks of a torch.distributed process group (DESIGN.md section 8).

Each rank holds a contiguous shard of the N memories (and of the projection) and scores only it.
What couples the shards is combined exactly:

- softmax: every rank's local log-sum-exp is all-gathered (B values per rank) and combined into
  the global one, then the partial drives ``sum_mu f_mu dsim_mu/dg`` (or ``f @ P``) are summed
  (FlashAttention's combine, across ranks);
- elementwise separations (identity, polynomial, threshold, log, sigmoid, tanh): partial drives
  and Lagrangians summed;
- max and top-k: a merge of every rank's local top k (values and global indices, ties to the
  lower index, as the unsharded network breaks them);
- ``normalize_separation``: the sum of ``f`` all-reduced first.

Only per-cue quantities (B x I drives, B x k candidates, B-vectors) cross ranks; nothing of size
B x N is gathered. A shard too large for one tile is read in tiles (:mod:`neurodyn.network.tiled`) and
its parts combined the same way (:meth:`ShardedNetwork.memory_pass`). The value state is
replicated: every rank integrates the same ``v`` with the
same reduced results, so the solvers take identical steps and the dynamics, solvers and
recording run unchanged. Hence fast memory neurons only (slow ones would shard the solver's
state and its error norm); normalized similarities (the UHN presets) divide by an all-reduced
sum, with projection dynamics only (their gradient would couple the shards).
Launch with ``torchrun`` (NCCL on GPUs, gloo on CPU); see ``docs/sweeps.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from .network import Network, tiled
from .numerics import divide_nonzero


def shard_bounds(n: int, world: int, rank: int) -> tuple[int, int]:
    """``[start, stop)`` of rank ``rank``'s contiguous shard of ``n`` memories (sizes differ by <= 1)."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is outside a world of {world}")
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


@dataclass
class ShardedNetwork(Network):
    """A :class:`Network` whose ``memories`` (and ``projection``) are this rank's shard.

    Recording works on it except full ``h``/``f`` and ``overlap`` (per-memory arrays of one
    shard): record the ``top_k`` memories, merged across ranks, instead.

    Build it with :func:`shard_network` from the full bank, or directly from a shard with
    ``offset`` (the global index of its first memory) and ``n_total``.
    """

    offset: int = 0
    n_total: int = 0
    group: object = field(default=None, repr=False)
    sharded = True

    @property
    def n_stored(self) -> int:
        return self.n_total

    def __post_init__(self) -> None:
        super().__post_init__()
        if not dist.is_available() or not dist.is_initialized():
            raise ValueError("a sharded network needs an initialized torch.distributed process group "
                             "(dist.init_process_group, or launch with torchrun)")
        if not self.fast_memory:
            raise ValueError("sharded networks need fast memory neurons (tau_h=None): slow ones would "
                             "split the solver's state across ranks")
        if self.similarity.normalized and self.dynamics == "gradient":
            raise ValueError(f"{self.similarity.name} normalizes over all memories, whose gradient couples the "
                             "shards; sharded gradient dynamics need an unnormalized similarity")
        self.n_total = self.n_total or self.n_memories

    # --------------------------------------------------------------- collectives
    def _sum(self, x: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(x, op=dist.ReduceOp.SUM, group=self.group)
        return x

    def _max(self, x: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(x, op=dist.ReduceOp.MAX, group=self.group)
        return x

    def _global_lse(self, local: torch.Tensor) -> torch.Tensor:
        """The log-sum-exp over all memories (B, 1) from every rank's own (B, 1): gathered and
        combined, a single collective of B x ranks values."""
        parts = [torch.empty_like(local) for _ in range(dist.get_world_size(self.group))]
        dist.all_gather(parts, local, group=self.group)
        return torch.logsumexp(torch.cat(parts, dim=-1), dim=-1, keepdim=True)

    def _merged_top(self, f: torch.Tensor, h: torch.Tensor, k: int) -> tuple[torch.Tensor, ...]:
        """The global top ``k`` of ``f`` (ties to the lower global index) from every rank's local top k."""
        order = torch.argsort(f, dim=-1, descending=True, stable=True)[..., :k]
        return self._merge(f.gather(-1, order), h.gather(-1, order), order + self.offset, k)

    def _merge(self, f: torch.Tensor, h: torch.Tensor, index: torch.Tensor, k: int) -> tuple[torch.Tensor, ...]:
        """The global top ``k`` of every rank's candidates (``f`` ranks them, ``h`` rides along,
        ``index`` global), ties to the lower global index."""
        pad = k - f.shape[-1]  # a shard smaller than k pads with -inf candidates
        cand = [f, h, index.to(f.dtype)]
        if pad:
            fill = (-torch.inf, 0.0, float(self.n_total))
            cand = [torch.cat([c, torch.full((*c.shape[:-1], pad), v, dtype=c.dtype, device=c.device)], -1)
                    for c, v in zip(cand, fill)]
        stacked = torch.stack(cand)  # (3, B, k)
        gathered = [torch.empty_like(stacked) for _ in range(dist.get_world_size(self.group))]
        dist.all_gather(gathered, stacked.contiguous(), group=self.group)
        allc = torch.cat(gathered, dim=-1)  # (3, B, world * k)
        # Sort by index first, then stably by value: ties keep the lower index first.
        by_index = torch.argsort(allc[2], dim=-1, stable=True)
        allc = allc.gather(-1, by_index.expand_as(allc))
        by_value = torch.argsort(allc[0], dim=-1, descending=True, stable=True)[..., :k]
        top = allc.gather(-1, by_value.expand(3, *by_value.shape))
        return top[0], top[1], top[2].long()

    # --------------------------------------------------------------- overrides of Network
    def streams(self, batch: int, project: bool = False) -> bool:
        """Tiles when the largest shard's scores would not fit one: every rank decides alike,
        so all take the same collectives."""
        largest = -(-self.n_total // dist.get_world_size(self.group))
        return tiled.tile_size(batch, largest) < largest and tiled.streamable(self, project)

    def memory_pass(self, g: torch.Tensor, *, drive: bool = True, lagrangian: bool = True,
                    top_k: int | None = None, project: bool = False) -> tiled.MemoryPass:
        """The tiled pass over this shard, combined across ranks: softmax parts re-weighted by
        ``exp(lse_rank - lse)`` with the global log-sum-exp from B values per rank, elementwise
        sums all-reduced, max and top-k candidates merged (B x k per rank)."""
        part = tiled.scan(self, g, drive=drive, lagrangian=lagrangian, top_k=top_k, project=project,
                          offset=self.offset, reduce_sum=self._sum)
        local = None
        if part.lse is not None:
            lse = self._global_lse(part.lse)
            if drive:
                part.drive = self._sum(part.drive * torch.exp(part.lse - lse))
            part.lse = lse
        elif part.best is not None:
            best, _, index = self._merge(part.best[0], part.best[0], part.best[1], 1)
            part.best = best, index
            local = index[:, 0] - self.offset
            local = torch.where((local >= 0) & (local < self.n_memories), local, -1)
        else:
            part.drive = None if part.drive is None else self._sum(part.drive)
            part.f_sum = None if part.f_sum is None else self._sum(part.f_sum)
            part.lagrangian = None if part.lagrangian is None else self._sum(part.lagrangian)
        if part.top is not None:
            top, _, index = self._merge(part.top[0], part.top[0], part.top[1], top_k)
            part.top = top, index
        out = tiled.finish(self, g, part, drive=drive, lagrangian=lagrangian, project=project, local=local)
        if out.drive is not None and local is not None:
            out.drive = self._sum(out.drive)  # the winner's drive, from the rank that holds it
        return out

    def scores(self, g: torch.Tensor) -> torch.Tensor:
        """This shard's scores; a normalized similarity divides by the |sum| over all shards."""
        if not self.similarity.normalized:
            return self.similarity(self.memories, g)
        raw = self.similarity.score(self.memories, g)
        return raw / self._sum(raw.sum(-1, keepdim=True)).abs()

    def separate(self, h: torch.Tensor) -> torch.Tensor:
        """This shard's part of the global ``f``."""
        sep = self.separation
        if sep.combines == "log_sum_exp":
            z = sep.beta * h
            lse = self._global_lse(torch.logsumexp(z, dim=-1, keepdim=True))
            return z.sub_(lse).exp_()  # in place: passes over B x N cost bandwidth
        if sep.combines == "top":
            k = sep.winners
            _, _, idx = self._merged_top(h, h, min(k, self.n_total))
            local = idx - self.offset
            mine = (local >= 0) & (local < h.shape[-1])
            return torch.zeros_like(h).scatter_add_(-1, local.clamp(0, h.shape[-1] - 1), mine.to(h.dtype))
        return sep.activation(h)

    def memory_lagrangian(self, h: torch.Tensor) -> torch.Tensor:
        sep = self.separation
        if sep.combines == "log_sum_exp":
            z = sep.beta * h
            return self._global_lse(torch.logsumexp(z, dim=-1, keepdim=True)).squeeze(-1) / sep.beta
        if sep.combines == "top":
            k = sep.winners
            top, _, _ = self._merged_top(h, h, min(k, self.n_total))
            return top.sum(-1)
        return self._sum(sep.value(h))

    def project(self, f: torch.Tensor) -> torch.Tensor:
        if self.normalize_separation:
            f = divide_nonzero(f, self._sum(f.sum(-1, keepdim=True)))
        return self._sum(f @ self.P)

    def drive(self, g: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        if self.dynamics == "gradient":
            return self._sum(self.similarity.gradient(self.memories, g, f))
        return self.project(f)

    def top_memories(self, f: torch.Tensor, h: torch.Tensor, k: int) -> tuple[torch.Tensor, ...]:
        return self._merged_top(f, h, k)

    def describe(self) -> dict:
        out = super().describe()
        out.update(n_memories=self.n_total, shard=[self.offset, self.offset + self.n_memories],
                   world_size=dist.get_world_size(self.group))
        return out


def shard_network(net: Network, group: object = None) -> ShardedNetwork:
    """This rank's shard of ``net``: the same model with a contiguous slice of the memories."""
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    if net.n_memories < world:
        raise ValueError(f"{net.n_memories} memories cannot be split over {world} ranks (one at least each)")
    start, stop = shard_bounds(net.n_memories, world, rank)
    kw = {name: getattr(net, name) for name in Network.__dataclass_fields__}
    kw["memories"] = net.memories[start:stop]
    if net.projection is not None:
        kw["projection"] = net.projection[start:stop]
    return ShardedNetwork(**kw, offset=start, n_total=net.n_memories, group=group)
