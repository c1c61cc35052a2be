"""Batch invariance: products evaluated in tiles of one fixed shape, so that every cue's result,
and hence its spikes, do not depend on the other cues of the batch."""

from __future__ import annotations

from collections.abc import Callable

import torch


def tiled(fn: Callable[..., torch.Tensor], tile: int, *xs: torch.Tensor) -> torch.Tensor:
    """``fn(*xs)`` for tensors ``xs`` with a common batch (first) dimension, evaluated in fixed
    tiles of ``tile`` rows, the last one zero-padded.

    BLAS picks its kernels and reduction orders by shape, so a row's product can differ in the
    last bit between batch sizes; evaluating in tiles of one fixed shape makes every row's
    result independent of the others (checked in tests/test_spiking.py).
    """
    batch = xs[0].shape[0]
    pad = (-batch) % tile
    if pad:
        xs = tuple(torch.cat([x, x.new_zeros(pad, *x.shape[1:])]) for x in xs)
    return torch.cat([fn(*(x[i:i + tile] for x in xs)) for i in range(0, batch + pad, tile)])[:batch]


def tiled_matmul(x: torch.Tensor, weight: torch.Tensor, tile: int) -> torch.Tensor:
    """``x @ weight`` in fixed tiles of ``tile`` rows, as one batched product: the same
    batch invariance as :func:`tiled` (every tile is one ``bmm`` slice of one shape) at nearly
    the speed of a single product (measured on 2 CPU cores, B = 64, I = 784: 0.81 vs 0.76 ms at
    N = 1,000 and 12.5 vs 11.3 ms at N = 10,000; a loop over tiles took 1.09 and 15.7 ms)."""
    batch = x.shape[0]
    pad = (-batch) % tile
    if pad:
        x = torch.cat([x, x.new_zeros(pad, x.shape[1])])
    n_tiles = x.shape[0] // tile
    out = torch.bmm(x.view(n_tiles, tile, x.shape[1]), weight.expand(n_tiles, *weight.shape))
    return out.view(n_tiles * tile, weight.shape[1])[:batch]
