"""One pass over the memory bank in tiles: similarity -> separation -> drive, without a B x N matrix.

With fast memory neurons the right-hand side needs, per cue, only ``sum_mu f_mu dsim_mu/dg``
(gradient dynamics, UHN eq. 2) or ``P' f`` (projection dynamics) and, for the energy, the
memory Lagrangian ``L_h(sim(M, g))`` (UHN eq. 4). :func:`stream_memories` computes them over
tiles of memories, as FlashAttention does for attention (DESIGN.md section 6):

- softmax: an online log-sum-exp. Each tile's drive is taken with its own softmax weights and
  its log-sum-exp ``l_t``; the running drive and ``l_t``'s drive are combined with weights
  ``exp(l_old - l_new)`` and ``exp(l_t - l_new)``, ``l_new = logaddexp(l_old, l_t)``, and at the
  end ``L_h = l / beta``;
- elementwise separations (identity, polynomial, threshold, log, sigmoid, tanh): ``f`` and
  ``L_h`` of a tile depend on that tile alone, so drives and Lagrangians add up (with
  ``normalize_separation`` the sum of ``f`` is accumulated too and divides at the end);
- max: a running best score and index per cue (ties to the lower index, as ``argmax``); the drive
  of the winning memory is taken at the end;
- top-k of the scores, when asked (for recording): a running merge of each tile's top k.

The drive is linear in ``f``, so a tile contributes ``similarity.gradient(M_t, g, w_t)`` or
``w_t @ P_t``: every similarity and its closed or autograd gradient works unchanged on a tile.
Normalized similarities (the UHN presets' ``1/d`` scaled to sum 1) take a first pass for the
sum of raw scores; their gradient couples all memories, so they stream with projection dynamics
only. Memory is bounded by ``B x tile`` scores; when one tile holds the whole bank the plain
(unfused) computation runs, so small networks give the same numbers as before to the last bit.

The pass knows no network: it takes a :class:`Bank` (the similarity; the separation, whose
Lagrangian says how it combines over parts of the bank; the memories and what they drive),
which :meth:`neurodyn.network.Network.bank` makes. :func:`scan` is the pass over one part of
the bank before normalization and :func:`finish` completes it; a sharded bank scans its shard
and combines the parts across ranks in between (:meth:`neurodyn.scale.shard.Shards.memory_pass`).
On CUDA the Manhattan and Euclidean distances of a tile come from the Triton kernel of
:mod:`neurodyn.triton_distance` (see :mod:`neurodyn.similarity`); dot and squared-L2 scores are
matrix products, already at the device's matmul speed.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..lagrangians import Lagrangian
from ..numerics import divide_nonzero
from ..similarity import Similarity

#: Scores held at once per pass (B x tile values): 2^22 is 16 MB of float32.
TILE_ELEMENTS = 2**22


@dataclass
class MemoryPass:
    """What one pass over the bank returns, per cue: ``drive`` (B, O) or None, ``lagrangian``
    ``L_h(sim(M, g))`` (B,) or None, and with ``top_k`` the k best ``scores`` (B, k) and their
    memory ``indices`` (B, k), best first."""

    drive: torch.Tensor | None
    lagrangian: torch.Tensor | None
    scores: torch.Tensor | None = None
    indices: torch.Tensor | None = None

    def get_drive(self) -> torch.Tensor:
        if self.drive is None:
            raise ValueError("this pass was asked for no drive")
        return self.drive

    def get_lagrangian(self) -> torch.Tensor:
        if self.lagrangian is None:
            raise ValueError("this pass was asked for no Lagrangian")
        return self.lagrangian


@dataclass(frozen=True)
class Bank:
    """What a pass over the memories needs, and nothing of the network around them.

    ``similarity`` scores the memories ``M`` (N, I) against the value activations;
    ``separation`` is the memory Lagrangian, which says how its activation combines over parts
    of the bank (``combines``, ``winners``). ``project``: the memories drive through ``outputs``
    ``P`` (N, O) as ``P' f`` (projection dynamics, feedforward retrieval), otherwise through the
    similarity's gradient ``sum_mu f_mu dsim_mu/dg`` (gradient dynamics, UHN eq. 2).
    ``normalize``: ``f`` is divided by its sum before the drive (UHN appendix E).
    """

    similarity: Similarity
    separation: Lagrangian
    memories: torch.Tensor
    outputs: torch.Tensor
    project: bool = False
    normalize: bool = False

    def streamable(self) -> bool:
        """Whether the pass handles this separation and similarity: a separation that combines
        over parts (softmax, max, elementwise; a running top-k of ``f`` is not implemented), and a
        normalized similarity only when projecting (its gradient couples all memories)."""
        sep = self.separation
        if sep.winners > 1 or (self.similarity.normalized and not self.project):
            return False
        return sep.combines in ("log_sum_exp", "top") or sep.elementwise is True


def _bank(source: Any, project: bool, name: str) -> Bank:
    """``source`` if it is a :class:`Bank`; a network's (deprecated: a Network in place of a Bank)."""
    if isinstance(source, Bank):
        return source
    warnings.warn(f"tiled.{name} takes a Bank (network.bank(project)) instead of a Network; a Network is "
                  "accepted until the next release", DeprecationWarning, stacklevel=3)
    return source.bank(project)


def streamable(bank: Bank, project: bool = False) -> bool:
    """Whether :func:`stream_memories` handles this bank (:meth:`Bank.streamable`). ``project``
    is read only when a (deprecated) Network is given in place of the bank."""
    if isinstance(bank, Bank):
        return bank.streamable()
    return _bank(bank, project, "streamable").streamable() and bank.fast_memory


def tile_size(batch: int, n_memories: int, budget: int | None = None) -> int:
    """Memories per tile so that a tile's scores stay within ``budget`` values (at least 1)."""
    return max(1, min(n_memories, (budget or TILE_ELEMENTS) // max(1, batch)))


def _top_merge(best: tuple[torch.Tensor, torch.Tensor] | None, scores: torch.Tensor, start: int,
               k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k best of the running candidates and a tile's scores, ties to the lower index."""
    idx = torch.arange(start, start + scores.shape[-1], device=scores.device).expand_as(scores)
    if best is not None:
        scores, idx = torch.cat([best[0], scores], -1), torch.cat([best[1], idx], -1)
    # Candidates are in increasing index order, so a stable sort keeps ties at the lower index.
    order = torch.argsort(scores, dim=-1, descending=True, stable=True)[..., :k]
    return scores.gather(-1, order), idx.gather(-1, order)


def _weight(lse: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    """``exp(lse - total)``, 0 where both are -inf (no memory scored above -inf yet)."""
    return torch.where(torch.isneginf(lse), 0.0, torch.exp(lse - total))


def _winner_drive(bank: Bank, g: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The drive of one memory per cue (a max separation): ``P[index]`` or ``dsim(M_index, g)/dg``."""
    if bank.project:
        return bank.outputs[index]
    chosen = bank.memories[index]  # (B, I): cue b's winner in row b
    rows = []
    for lo in range(0, g.shape[0], 64):  # f = identity over a block of cues: row b takes memory b
        gb, mb = g[lo:lo + 64], chosen[lo:lo + 64]
        rows.append(bank.similarity.gradient(mb, gb, torch.eye(len(gb), dtype=g.dtype, device=g.device)))
    return torch.cat(rows)


@dataclass
class Partial:
    """A pass over (a part of) the bank before the parts are combined: ``drive`` (softmax: with
    this part's own softmax weights; otherwise the sum of its terms), ``lagrangian`` (elementwise
    separations: this part's sum), ``lse`` (softmax: this part's log-sum-exp of ``beta s``, (B, 1)),
    ``f_sum`` (``normalize_separation``: this part's sum of ``f``, (B, 1)), ``best`` (max: the
    best score and its global index) and ``top`` (the k best scores and global indices)."""

    drive: torch.Tensor | None = None
    lagrangian: torch.Tensor | None = None
    lse: torch.Tensor | None = None
    f_sum: torch.Tensor | None = None
    best: tuple[torch.Tensor, torch.Tensor] | None = None
    top: tuple[torch.Tensor, torch.Tensor] | None = None


def scan(bank: Bank, g: torch.Tensor, *, drive: bool = True, lagrangian: bool = True,
         top_k: int | None = None, tile: int | None = None, offset: int = 0,
         reduce_sum: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Partial:
    """One pass over ``bank.memories`` in tiles; the memories are global indices ``offset`` on.
    ``reduce_sum`` completes a normalized similarity's sum of raw scores over the whole bank
    (a sharded bank all-reduces it)."""
    if not bank.streamable():
        raise ValueError(f"cannot stream {bank.separation.describe()} with {bank.similarity.name} "
                         f"({'a projection' if bank.project else 'a gradient'} drive)")
    sim, M = bank.similarity, bank.memories
    n, batch = M.shape[0], g.shape[0]
    tile = tile or tile_size(batch, n)
    bounds = [(lo, min(n, lo + tile)) for lo in range(0, n, tile)]
    scale = None
    if sim.normalized:  # first pass: |sum over all memories| of the raw scores (UHN appendix E)
        total = functools.reduce(torch.add, (sim.score(M[lo:hi], g).sum(-1, keepdim=True) for lo, hi in bounds))
        total = total if reduce_sum is None else reduce_sum(total)
        scale = torch.where(total == 0, 1.0, total.abs())  # (once: an all-zero row stays zero)
    out = Partial()
    if bank.separation.combines == "log_sum_exp":
        out.lse = torch.full((batch, 1), -torch.inf, dtype=g.dtype, device=g.device)

    # An autograd gradient reuses the tile's score graph instead of scoring the tile again.
    graph = drive and not bank.project and sim.closed_gradient is None
    g_in = g.detach().requires_grad_(True) if graph else g
    for lo, hi in bounds:
        with torch.set_grad_enabled(graph):
            s_graph = sim.score(M[lo:hi], g_in)
        s = s_graph.detach()
        if scale is not None:
            s = s / scale
        if top_k is not None:
            out.top = _top_merge(out.top, s, offset + lo, top_k)

        def contribution(w: torch.Tensor, lo: int = lo, hi: int = hi, s_graph: torch.Tensor = s_graph) -> torch.Tensor:
            """The tile's drive for weights ``w``: ``w P_t``, or ``sum_mu w_mu dsim_mu/dg``."""
            if bank.project:
                return w @ bank.outputs[lo:hi]
            if graph:
                return torch.autograd.grad(s_graph, g_in, grad_outputs=w)[0]
            return sim.gradient(M[lo:hi], g, w)

        _add_tile(bank, out, s, offset + lo, contribution if drive else None, lagrangian)
    return out


def _add_tile(bank: Bank, out: Partial, s: torch.Tensor, start: int,
              contribution: Callable[[torch.Tensor], torch.Tensor] | None, lagrangian: bool) -> None:
    """Fold one tile's scores ``s`` (memories ``start`` on) into the running :class:`Partial`, as
    the separation combines: a running best (max), an online log-sum-exp (softmax) or sums
    (elementwise). ``contribution``: the tile's drive for given weights, None when no drive."""
    sep = bank.separation
    if sep.combines == "top":
        out.best = _top_merge(out.best, s, start, 1)
        return
    if sep.combines == "log_sum_exp":
        # Per tile torch's fused softmax, and the tile's log-sum-exp from its largest weight
        # (as lagrangians.log_sum_exp, which says why).
        z = sep.beta * s
        weights = torch.softmax(z, -1)
        peak = z.argmax(-1, keepdim=True)
        tile_lse = z.gather(-1, peak) - torch.log(weights.gather(-1, peak))
        assert out.lse is not None  # (set by scan for a softmax)
        new_lse = torch.logaddexp(out.lse, tile_lse)
        if contribution is not None:
            part = contribution(weights)
            out.drive = part if out.drive is None else (out.drive * _weight(out.lse, new_lse)
                                                        + part * _weight(tile_lse, new_lse))
        out.lse = new_lse
        return
    f = sep.activation(s)
    if contribution is not None:
        part = contribution(f)
        out.drive = part if out.drive is None else out.drive + part
        if bank.normalize:
            out.f_sum = f.sum(-1, keepdim=True) + (0 if out.f_sum is None else out.f_sum)
    if lagrangian:
        value = sep.value(s)
        out.lagrangian = value if out.lagrangian is None else out.lagrangian + value


def finish(bank: Bank, g: torch.Tensor, part: Partial, *, drive: bool = True, lagrangian: bool = True,
           local: torch.Tensor | None = None) -> MemoryPass:
    """The drive and Lagrangian from a whole bank's :class:`Partial` (combined across shards
    first, where the bank is sharded). ``local``: for a max separation, each cue's winner as an
    index into ``bank.memories``, or -1 where another shard holds it (its drive is then 0)."""
    acc, lag = part.drive, part.lagrangian
    if bank.separation.combines == "top":  # one winner (streamable)
        assert part.best is not None  # (a max separation's scan keeps its best)
        winner = part.best[1][:, 0] if local is None else local
        if drive:
            acc = _winner_drive(bank, g, winner.clamp(min=0))
            acc = acc if local is None else acc * (local >= 0)[:, None]
        lag = part.best[0][:, 0]
    elif bank.separation.combines == "log_sum_exp":
        assert part.lse is not None  # (a softmax's scan keeps its log-sum-exp)
        lag = part.lse.squeeze(-1) / bank.separation.beta
    elif drive and part.f_sum is not None and acc is not None:
        acc = divide_nonzero(acc, part.f_sum)
    top = part.top
    return MemoryPass(acc if drive else None, lag if lagrangian else None,
                      None if top is None else top[0], None if top is None else top[1])


def stream_memories(bank: Bank, g: torch.Tensor, *, drive: bool = True, lagrangian: bool = True,
                    top_k: int | None = None, tile: int | None = None, project: bool = False) -> MemoryPass:
    """The memory population's drive and Lagrangian for value activations ``g`` (B, I), in tiles of
    ``tile`` memories (default: :func:`tile_size`). Needs :meth:`Bank.streamable`. ``project``
    is read only when a (deprecated) Network is given in place of the bank."""
    bank = _bank(bank, project, "stream_memories")
    part = scan(bank, g, drive=drive, lagrangian=lagrangian, top_k=top_k, tile=tile)
    return finish(bank, g, part, drive=drive, lagrangian=lagrangian)
