"""Pairwise L1 / L2 distances between cues and memories by a hand-written Triton kernel.

Why hand-written: the Manhattan distance is not a matrix product, so it cannot use tensor cores,
and ``torch.cdist(p=1)`` reaches only a few percent of a GPU's fp32 peak (DESIGN.md section 6,
"Performance, honestly measured"). Each program here computes a ``BLOCK_B x BLOCK_N`` tile of the
(B, N) result and loops over features, adding ``|q[:, k][:, None] - m[:, k][None, :]|`` -- the
outer difference of one feature column of the cue tile and one of the memory tile. The inputs
are passed features-major ((I, B) and (I, N)), so each column load is contiguous. Measured on an
H100 (DESIGN.md section 6), 128 x 64 tiles with 4 warps compute the L1 matrix 19x faster than
``torch.cdist(p=1)``, about half of the fp32 instruction limit; a 3-D broadcast tile is 5x faster.

Sums are accumulated in fp32 and returned in the input dtype (float32, float16 or bfloat16).
float64 is rejected: callers fall back to ``torch.cdist`` for it (and wherever :func:`available`
is False). The result carries no autograd graph, so inputs that require grad are rejected too.
Triton is imported only when the kernel is first needed; this module imports without it.
"""

from __future__ import annotations

import functools
import importlib
import os
from typing import Any

import torch

_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_UNROLL = 4  # features per loop iteration


def _interpreting() -> bool:
    """Whether ``TRITON_INTERPRET`` asks Triton to run kernels on the CPU interpreter."""
    return os.environ.get("TRITON_INTERPRET", "").strip().lower() in {"1", "true", "on", "yes"}


def available(device: torch.device | str) -> bool:
    """True when triton imports and ``device`` can run the kernel.

    That is CUDA, or any device when ``TRITON_INTERPRET=1`` (Triton's CPU interpreter, used by
    the tests; it must be set before triton is first imported, or the launch fails). Float64 inputs
    are not supported whatever this returns (see the module docstring).
    """
    try:
        importlib.import_module("triton")
    except ImportError:
        return False
    return torch.device(device).type == "cuda" or _interpreting()


@functools.cache
def _kernel(interpret: bool) -> Any:
    """The jitted kernel, built on first use; keyed by ``interpret`` because ``triton.jit``
    picks the interpreter or the compiler when it decorates."""
    import triton
    import triton.language as tl

    @triton.jit
    def distance_tile(qt, mt, out, B, N, I, P: tl.constexpr, BLOCK_B: tl.constexpr,
                      BLOCK_N: tl.constexpr, UNROLL: tl.constexpr):
        rb = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
        rn = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        in_b = rb < B
        in_n = rn < N
        q_ptrs = qt + rb  # feature column k of the cue tile is at q_ptrs + k * B
        m_ptrs = mt + rn
        acc = tl.zeros((BLOCK_B, BLOCK_N), dtype=tl.float32)
        for _ in range(0, I, UNROLL):  # I is padded to a multiple of UNROLL
            for u in tl.static_range(UNROLL):
                q = tl.load(q_ptrs + u * B, mask=in_b, other=0.0).to(tl.float32)
                m = tl.load(m_ptrs + u * N, mask=in_n, other=0.0).to(tl.float32)
                d = q[:, None] - m[None, :]
                if P == 1:
                    acc += tl.abs(d)
                else:
                    acc += d * d
            q_ptrs += UNROLL * B
            m_ptrs += UNROLL * N
        if P == 2:
            acc = tl.sqrt(acc)
        offsets = rb.to(tl.int64)[:, None] * N + rn[None, :]
        tl.store(out + offsets, acc.to(out.dtype.element_ty), mask=in_b[:, None] & in_n[None, :])

    return distance_tile


def _features_major(x: torch.Tensor, rows: int) -> torch.Tensor:
    """``x.T`` as a contiguous (rows, len(x)) tensor, zero-padded past ``x``'s features: the zero
    features add 0 to both distances, so the kernel's unrolled loop needs no feature mask."""
    out = x.new_zeros(rows, len(x))
    out[: x.shape[1]] = x.T
    return out


def pairwise_distance(q: torch.Tensor, m: torch.Tensor, p: float, *, block_b: int = 128,
                      block_n: int = 64, num_warps: int = 4) -> torch.Tensor:
    """(B, I) cues and (N, I) memories -> (B, N) distances.

    ``p=1``: ``sum_k |q_bk - m_nk|`` (Manhattan); ``p=2``: ``sqrt(sum_k (q_bk - m_nk)^2)``
    (Euclidean, a direct sum of squares, not the matmul expansion, so equal rows give exactly 0).
    ``block_b`` and ``block_n`` (powers of two) set the output tile; the defaults are the measured
    ones (DESIGN.md section 6), smaller ones keep the CPU interpreter quick in tests.
    """
    if q.dim() != 2 or m.dim() != 2:
        raise ValueError(f"cues and memories must be 2-D, got shapes {tuple(q.shape)} and {tuple(m.shape)}")
    if q.shape[1] != m.shape[1]:
        raise ValueError(f"feature counts differ: cues have {q.shape[1]}, memories {m.shape[1]}")
    if q.device != m.device:
        raise ValueError(f"cues are on {q.device}, memories on {m.device}")
    if q.dtype != m.dtype or q.dtype not in _DTYPES:
        raise ValueError(f"dtypes must match and be float32, float16 or bfloat16 (use torch.cdist "
                         f"for float64), got {q.dtype} and {m.dtype}")
    if p not in (1, 2):
        raise ValueError(f"p must be 1 or 2, got {p}")
    if torch.is_grad_enabled() and (q.requires_grad or m.requires_grad):
        raise ValueError("inputs require grad, but the Triton kernel has no backward: use torch.cdist")
    for name, size in (("block_b", block_b), ("block_n", block_n)):
        if size < 1 or size & (size - 1):
            raise ValueError(f"{name} must be a power of two, got {size}")
    if not available(q.device):
        raise ValueError(f"the Triton kernel cannot run on {q.device} (needs CUDA or TRITON_INTERPRET=1)")
    (B, I), N = q.shape, m.shape[0]
    out = torch.empty(B, N, dtype=q.dtype, device=q.device)
    if B and N:
        grid = (-(-B // block_b), -(-N // block_n))
        padded = -(-I // _UNROLL) * _UNROLL
        qt, mt = _features_major(q, padded), _features_major(m, padded)
        _kernel(_interpreting())[grid](qt, mt, out, B, N, padded, P=int(p),
                                      BLOCK_B=block_b, BLOCK_N=block_n, UNROLL=_UNROLL,
                                      num_warps=num_warps)
    return out
