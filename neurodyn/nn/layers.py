"""Associative memories as ``torch.nn.Module`` layers (hopfield-layers' roles: stored patterns,
state patterns, pattern projections), with any similarity and separation of the library and
one-shot or continuous-time recall (:mod:`neurodyn.nn.recall`)."""

from __future__ import annotations

import torch
from torch import nn

from ..lagrangians import Lagrangian, make_lagrangian
from ..network import Network
from ..similarity import Similarity, make_similarity
from .recall import OneShot, Recall, default_scaling, recall


class AssociativeMemory(nn.Module):
    """A bank of memories ``M`` (N, D) and their projections ``P`` (N, O) held as parameters:
    ``forward(q)`` recalls ``z = sep(sim(M, q)) P`` (UHN eq. 1) for queries (..., D), one-shot or
    in continuous time (``recall``). Without ``n_outputs`` (and ``projection``) the memory is
    autoassociative, ``P = M``.

    ``memories``/``projection``: initial values (default: normal, scaled by ``1/sqrt(D)``);
    ``trainable``: whether they are ``nn.Parameter``s (else buffers, moved by ``.to()`` but not
    trained). ``separation`` defaults to a softmax at inverse temperature ``1/sqrt(D)``,
    ``recall`` to :class:`~neurodyn.nn.recall.OneShot`.
    """

    memories: torch.Tensor
    projection: torch.Tensor | None

    def __init__(self, n_memories: int, n_features: int, n_outputs: int | None = None, *,
                 similarity: Similarity | str = "dot", separation: Lagrangian | str | None = None,
                 recall: Recall | None = None, memories: torch.Tensor | None = None,
                 projection: torch.Tensor | None = None, trainable: bool = True) -> None:
        super().__init__()
        self.similarity = make_similarity(similarity)
        self.separation = make_lagrangian(separation or f"softmax:{default_scaling(n_features)}")
        self.how = recall or OneShot()
        m = torch.randn(n_memories, n_features) / n_features ** 0.5 if memories is None else memories.clone()
        if m.shape != (n_memories, n_features):
            raise ValueError(f"memories must be ({n_memories}, {n_features}), got {tuple(m.shape)}")
        self._hold("memories", m, trainable)
        p = projection
        if p is None and n_outputs is not None:
            p = torch.randn(n_memories, n_outputs) / n_memories ** 0.5
        if p is not None and p.shape[0] != n_memories:
            raise ValueError(f"projection must have one row per memory ({n_memories}), got {tuple(p.shape)}")
        if p is None:
            self.projection = None
        else:
            self._hold("projection", p.clone().to(m.dtype), trainable)

    def _hold(self, name: str, value: torch.Tensor, trainable: bool) -> None:
        if trainable:
            self.register_parameter(name, nn.Parameter(value))
        else:
            self.register_buffer(name, value)

    def forward(self, queries: torch.Tensor) -> torch.Tensor:
        values = self.memories if self.projection is None else self.projection
        return recall(self.similarity, self.separation, self.memories, values, queries, self.how)

    def network(self) -> Network:
        """The library's :class:`~neurodyn.network.Network` of the current memories (detached),
        to simulate, record and analyse the trained memory as any other: an autoassociative
        layer's continuous-time flow is this network's dynamics; with a projection, the network
        retrieves one-shot (:meth:`~neurodyn.network.Network.retrieve`) as the layer does."""
        return Network(self.memories.detach().clone(), self.similarity, self.separation, dynamics="projection",
                       projection=None if self.projection is None else self.projection.detach().clone())

    def extra_repr(self) -> str:
        n, d = self.memories.shape
        out = "" if self.projection is None else f", n_outputs={self.projection.shape[1]}"
        return (f"n_memories={n}, n_features={d}{out}, similarity={self.similarity.name}, "
                f"separation={self.separation.describe()}, recall={self.how}")


class Hopfield(nn.Module):
    """hopfield-layers' ``Hopfield`` layer: stored patterns (keys), state patterns (queries) and
    pattern projections (values) are inputs, (B, L, size) with ``batch_first``; each is layer
    normalized (affine), mapped by a learned linear map into ``num_heads`` association spaces
    of ``hidden_size`` (values: ``pattern_size``) per head, associated there by ``recall``
    with the library's ``similarity`` and ``separation`` (default: a softmax at ``scaling``,
    ``1/sqrt(hidden_size)``), and mapped to ``output_size`` by a learned linear map.

    With the defaults (dot similarity, softmax, one step) this is the attention hopfield-layers
    computes on its default settings; ``recall=OneShot(steps)`` is its ``update_steps_max``, and
    :class:`~neurodyn.nn.recall.ContinuousTime` integrates the update's continuous form.
    ``forward(input)``: a tuple (stored, state, projection), or one tensor for all three.
    """

    def __init__(self, input_size: int, hidden_size: int | None = None, output_size: int | None = None,
                 pattern_size: int | None = None, num_heads: int = 1, scaling: float | None = None, *,
                 stored_pattern_size: int | None = None, pattern_projection_size: int | None = None,
                 similarity: Similarity | str = "dot", separation: Lagrangian | str | None = None,
                 recall: Recall | None = None, normalize: bool = True, bias: bool = True,
                 batch_first: bool = True) -> None:
        super().__init__()
        if hidden_size is None:
            if input_size % num_heads:
                raise ValueError(f"input_size ({input_size}) must be divisible by num_heads ({num_heads})")
            hidden_size = input_size // num_heads
        pattern_size = pattern_size or hidden_size
        key_size, value_size = stored_pattern_size or input_size, pattern_projection_size or input_size
        self.num_heads, self.hidden_size, self.pattern_size = num_heads, hidden_size, pattern_size
        self.batch_first = batch_first
        self.scaling = default_scaling(hidden_size) if scaling is None else float(scaling)
        self.similarity = make_similarity(similarity)
        self.separation = make_lagrangian(separation or f"softmax:{self.scaling}")
        self.how = recall or OneShot()
        norm = (lambda size: nn.LayerNorm(size)) if normalize else (lambda size: nn.Identity())
        self.norm_stored, self.norm_state, self.norm_projection = norm(key_size), norm(input_size), norm(value_size)
        self.query = nn.Linear(input_size, num_heads * hidden_size, bias=bias)
        self.key = nn.Linear(key_size, num_heads * hidden_size, bias=bias)
        self.value = nn.Linear(value_size, num_heads * pattern_size, bias=bias)
        self.out = nn.Linear(num_heads * pattern_size, output_size or input_size, bias=bias)

    def forward(self, input: torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        stored, state, projection = input if isinstance(input, tuple) else (input, input, input)
        if not self.batch_first:
            stored, state, projection = (x.transpose(0, 1) for x in (stored, state, projection))
        k = self._heads(self.key(self.norm_stored(stored)))
        q = self._heads(self.query(self.norm_state(state)))
        v = self._heads(self.value(self.norm_projection(projection)))
        z = recall(self.similarity, self.separation, k, v, q, self.how)  # (B * H, Lq, pattern_size)
        batch, length = state.shape[0], state.shape[1]
        z = z.reshape(batch, self.num_heads, length, self.pattern_size).transpose(1, 2).reshape(batch, length, -1)
        out = self.out(z)
        return out if self.batch_first else out.transpose(0, 1)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, H * d) -> (B * H, L, d): one association per sample and head."""
        batch, length, _ = x.shape
        return x.reshape(batch, length, self.num_heads, -1).transpose(1, 2).reshape(batch * self.num_heads, length, -1)

    def extra_repr(self) -> str:
        return (f"num_heads={self.num_heads}, hidden_size={self.hidden_size}, pattern_size={self.pattern_size}, "
                f"similarity={self.similarity.name}, separation={self.separation.describe()}, recall={self.how}")
