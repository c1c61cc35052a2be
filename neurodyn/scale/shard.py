"""Memory banks split across the ranks of a torch.distributed process group (DESIGN.md section 8).

Each rank holds a contiguous shard of the N memories (and of the projection) and scores only it.
A :class:`Shards` is the network's reduction backend (``Network.shards``): it combines what
couples the shards, exactly:

- softmax: every rank's local log-sum-exp is all-gathered (B values per rank) and combined into
  the global one, then the partial drives ``sum_mu f_mu dsim_mu/dg`` (or ``f @ P``) are summed
  (FlashAttention's combine, across ranks);
- elementwise separations (identity, polynomial, threshold, log, sigmoid, tanh): partial drives
  and Lagrangians summed;
- max and top-k: a merge of every rank's local top k (values and global indices, ties to the
  lower index, as the unsharded network breaks them);
- ``normalize_separation``: the sum of ``f`` all-reduced first.

Only per-cue quantities (B x I drives, B x k candidates, B-vectors) cross ranks; nothing of size
B x N is gathered. A shard too large for one tile is read in tiles (:mod:`neurodyn.network.tiled`)
and its parts combined the same way (:meth:`Shards.memory_pass`). The value state is
replicated: every rank integrates the same ``v`` with the same reduced results, so the solvers
take identical steps and the dynamics, solvers and recording run unchanged. Hence fast memory
neurons only (slow ones would shard the solver's state and its error norm); normalized
similarities (the UHN presets) divide by an all-reduced sum, with projection dynamics only
(their gradient would couple the shards). Launch with ``torchrun`` (NCCL on GPUs, gloo on CPU);
see ``docs/sweeps.md``.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from ..network import Network, tiled
from ..network.tiled import MemoryPass
from ..numerics import divide_nonzero


def shard_bounds(n: int, world: int, rank: int) -> tuple[int, int]:
    """``[start, stop)`` of rank ``rank``'s contiguous shard of ``n`` memories (sizes differ by <= 1)."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is outside a world of {world}")
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


@dataclass(frozen=True)
class Shards:
    """This rank's place in a bank split across ``group``: its shard starts at global index
    ``offset`` of ``n_total`` memories. A network with ``shards`` holds only its shard's
    ``memories`` (and ``projection``) and combines the rest through these collectives.

    Recording works on it except full ``h``/``f`` and ``overlap`` (per-memory arrays of one
    shard): record the ``top_k`` memories, merged across ranks, instead."""

    offset: int
    n_total: int
    group: dist.ProcessGroup | None = field(default=None, repr=False)

    def check(self, net: Network) -> None:
        """Refuse what cannot be sharded (called when the network is built)."""
        if not dist.is_available() or not dist.is_initialized():
            raise ValueError("a sharded network needs an initialized torch.distributed process group "
                             "(dist.init_process_group, or launch with torchrun)")
        if not net.fast_memory:
            raise ValueError("sharded networks need fast memory neurons (tau_h=None): slow ones would "
                             "split the solver's state across ranks")
        if net.similarity.normalized and net.dynamics == "gradient":
            raise ValueError(f"{net.similarity.name} normalizes over all memories, whose gradient couples the "
                             "shards; sharded gradient dynamics need an unnormalized similarity")

    # --------------------------------------------------------------- collectives
    def sum(self, x: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(x, op=dist.ReduceOp.SUM, group=self.group)
        return x

    def global_lse(self, local: torch.Tensor) -> torch.Tensor:
        """The log-sum-exp over all memories (B, 1) from every rank's own (B, 1): gathered and
        combined, a single collective of B x ranks values."""
        parts = [torch.empty_like(local) for _ in range(dist.get_world_size(self.group))]
        dist.all_gather(parts, local, group=self.group)
        return torch.logsumexp(torch.cat(parts, dim=-1), dim=-1, keepdim=True)

    def merged_top(self, f: torch.Tensor, h: torch.Tensor, k: int) -> tuple[torch.Tensor, ...]:
        """The global top ``k`` of ``f`` (ties to the lower global index) from every rank's local top k."""
        order = torch.argsort(f, dim=-1, descending=True, stable=True)[..., :k]
        return self.merge(f.gather(-1, order), h.gather(-1, order), order + self.offset, k)

    def merge(self, f: torch.Tensor, h: torch.Tensor, index: torch.Tensor, k: int) -> tuple[torch.Tensor, ...]:
        """The global top ``k`` of every rank's candidates (``f`` ranks them, ``h`` rides along,
        ``index`` global), ties to the lower global index."""
        pad = k - f.shape[-1]  # a shard smaller than k pads with -inf candidates
        cand = [f, h, index.to(f.dtype)]
        if pad:
            fill = (-torch.inf, 0.0, float(self.n_total))
            cand = [torch.cat([c, torch.full((*c.shape[:-1], pad), v, dtype=c.dtype, device=c.device)], -1)
                    for c, v in zip(cand, fill, strict=True)]
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

    # --------------------------------------------------------------- the network's operations on a shard
    def streams(self, net: Network, batch: int, project: bool = False) -> bool:
        """Tiles when the largest shard's scores would not fit one: every rank decides alike,
        so all take the same collectives."""
        largest = -(-self.n_total // dist.get_world_size(self.group))
        return tiled.tile_size(batch, largest) < largest and net.can_stream(project)

    def memory_pass(self, net: Network, g: torch.Tensor, *, drive: bool = True, lagrangian: bool = True,
                    top_k: int | None = None, project: bool = False, tile: int | None = None) -> MemoryPass:
        """The tiled pass over this shard, combined across ranks: softmax parts re-weighted by
        ``exp(lse_rank - lse)`` with the global log-sum-exp from B values per rank, elementwise
        sums all-reduced, max and top-k candidates merged (B x k per rank)."""
        bank = net.bank(project)
        part = tiled.scan(bank, g, drive=drive, lagrangian=lagrangian, top_k=top_k, tile=tile, offset=self.offset,
                          reduce_sum=self.sum)
        local = None
        if part.lse is not None:
            lse = self.global_lse(part.lse)
            if drive and part.drive is not None:
                part.drive = self.sum(part.drive * torch.exp(part.lse - lse))
            part.lse = lse
        elif part.best is not None:
            best, _, index = self.merge(part.best[0], part.best[0], part.best[1], 1)
            part.best = best, index
            local = index[:, 0] - self.offset
            local = torch.where((local >= 0) & (local < net.n_memories), local, -1)
        else:
            part.drive = None if part.drive is None else self.sum(part.drive)
            part.f_sum = None if part.f_sum is None else self.sum(part.f_sum)
            part.lagrangian = None if part.lagrangian is None else self.sum(part.lagrangian)
        if part.top is not None and top_k is not None:
            top, _, index = self.merge(part.top[0], part.top[0], part.top[1], top_k)
            part.top = top, index
        out = tiled.finish(bank, g, part, drive=drive, lagrangian=lagrangian, local=local)
        if out.drive is not None and local is not None:
            out.drive = self.sum(out.drive)  # the winner's drive, from the rank that holds it
        return out

    def scores(self, net: Network, g: torch.Tensor) -> torch.Tensor:
        """This shard's scores; a normalized similarity divides by ``|sum|`` over all shards."""
        if not net.similarity.normalized:
            return net.similarity(net.memories, g)
        raw = net.similarity.score(net.memories, g)
        return raw / self.sum(raw.sum(-1, keepdim=True)).abs()

    def separate(self, net: Network, h: torch.Tensor) -> torch.Tensor:
        """This shard's part of the global ``f``."""
        sep = net.separation
        if sep.combines == "log_sum_exp":
            z = sep.beta * h
            lse = self.global_lse(torch.logsumexp(z, dim=-1, keepdim=True))
            return z.sub_(lse).exp_()  # in place: passes over B x N cost bandwidth
        if sep.combines == "top":
            _, _, idx = self.merged_top(h, h, min(sep.winners, self.n_total))
            local = idx - self.offset
            mine = (local >= 0) & (local < h.shape[-1])
            return torch.zeros_like(h).scatter_add_(-1, local.clamp(0, h.shape[-1] - 1), mine.to(h.dtype))
        return sep.activation(h)

    def memory_lagrangian(self, net: Network, h: torch.Tensor) -> torch.Tensor:
        sep = net.separation
        if sep.combines == "log_sum_exp":
            z = sep.beta * h
            return self.global_lse(torch.logsumexp(z, dim=-1, keepdim=True)).squeeze(-1) / sep.beta
        if sep.combines == "top":
            top, _, _ = self.merged_top(h, h, min(sep.winners, self.n_total))
            return top.sum(-1)
        return self.sum(sep.value(h))

    def project(self, net: Network, f: torch.Tensor) -> torch.Tensor:
        if net.normalize_separation:
            f = divide_nonzero(f, self.sum(f.sum(-1, keepdim=True)))
        return self.sum(f @ net.P)

    def describe(self, net: Network) -> dict:
        return {"n_memories": self.n_total, "shard": [self.offset, self.offset + net.n_memories],
                "world_size": dist.get_world_size(self.group)}


def shard_network(net: Network, group: dist.ProcessGroup | None = None) -> Network:
    """This rank's shard of ``net``: the same model with a contiguous slice of the memories, and
    the :class:`Shards` that combines it with the others."""
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    if net.n_memories < world:
        raise ValueError(f"{net.n_memories} memories cannot be split over {world} ranks (one at least each)")
    start, stop = shard_bounds(net.n_memories, world, rank)
    projection = None if net.projection is None else net.projection[start:stop]
    return dataclasses.replace(net, memories=net.memories[start:stop], projection=projection,
                               shards=Shards(start, net.n_memories, group))


def ShardedNetwork(memories: torch.Tensor, *, offset: int = 0, n_total: int = 0,  # noqa: N802
                   group: dist.ProcessGroup | None = None,
                   **model: object) -> Network:
    """Deprecated (issue 16): a network on one shard is ``Network(..., shards=Shards(offset,
    n_total, group))``; this builds that for one release."""
    warnings.warn("ShardedNetwork is deprecated and goes in the next release; build "
                  "Network(..., shards=Shards(offset, n_total, group)) or use shard_network", DeprecationWarning,
                  stacklevel=2)
    return Network(memories, shards=Shards(offset, n_total or len(memories), group), **model)  # type: ignore[arg-type]
