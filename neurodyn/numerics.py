"""Floating-point helpers shared by the model and the solver."""

from __future__ import annotations

import torch


def flush_subnormal(x: torch.Tensor) -> torch.Tensor:
    """``x`` with its subnormal values (nonzero, below the dtype's smallest normal number:
    1.2e-38 in float32) set to 0.

    Exponential decays to 0 and a softmax's far memories reach them: in float32 a unit decaying
    at rate 21 (Manhattan smoothed at 0.05) is subnormal by t = 4. x86 CPUs compute on subnormal
    operands about 100x slower, which doubled the float32 Manhattan run's wall time (1.2 s
    against 0.66 s with this flush, docs/performance.md). The change is below any tolerance. A
    local flush rather than ``torch.set_flush_denormal``, a process-wide switch with no getter
    that a library could not restore."""
    return torch.where(x.abs() < torch.finfo(x.dtype).tiny, 0.0, x)


def flush_subnormal_nonnegative(x: torch.Tensor) -> torch.Tensor:
    """:func:`flush_subnormal` for ``x >= 0`` in one kernel (this runs on every right-hand side)."""
    return torch.nn.functional.threshold(x, torch.finfo(x.dtype).tiny, 0.0)


def divide_nonzero(x: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    """``x / total``, with ``x`` left as is where ``total`` is 0 (a normalization that keeps an
    all-zero row at zero instead of 0/0). ``total`` broadcasts against ``x``."""
    return x / torch.where(total == 0, 1.0, total)
