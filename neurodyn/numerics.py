"""Floating-point helpers shared by the model and the solver."""

from __future__ import annotations

import weakref
from collections.abc import Callable

import torch

#: Values derived from tensors, by name and the sources' ids: the sources (weakly), their
#: versions when computed, and the value (:func:`derived`).
DERIVED: dict[tuple, tuple[tuple[weakref.ref, ...], tuple[int, ...], torch.Tensor]] = {}


def derived(name: str, compute: Callable[[], torch.Tensor], *sources: torch.Tensor) -> torch.Tensor:
    """``compute()``, kept per process for the tensors ``sources`` it derives from until one of
    them is modified in place (its version counter moves) or freed: a value every step asks for
    that costs as much as the step (a bank's squared norms, a Gram matrix). Not kept for views
    or tensors that need a graph, nor inside a compiled function, which computes it in its graph."""
    if torch.compiler.is_compiling():
        return compute()
    key = (name, *map(id, sources))
    entry = DERIVED.get(key)  # (only sources that are no view and need no graph are entered)
    if entry is not None and _unchanged(entry, sources):  # (the common case: a plain loop, no generators)
        return entry[2]
    if any(s.requires_grad or s._base is not None for s in sources):
        return compute()
    alive = entry is not None and all(ref() is s for ref, s in zip(entry[0], sources, strict=True))
    value = compute()
    if not alive:
        for source in sources:
            weakref.finalize(source, DERIVED.pop, key, None)
    DERIVED[key] = (tuple(weakref.ref(s) for s in sources), tuple(s._version for s in sources), value)
    return value


def _unchanged(entry: tuple, sources: tuple[torch.Tensor, ...]) -> bool:
    """Whether a :data:`DERIVED` entry was computed from these very ``sources``, none modified
    since, and none needing a graph now."""
    for ref, version, source in zip(entry[0], entry[1], sources, strict=True):
        if ref() is not source or source._version != version or source.requires_grad:
            return False
    return True


def flush_subnormal(x: torch.Tensor) -> torch.Tensor:
    """``x`` with its subnormal values (nonzero, below the dtype's smallest normal number:
    1.2e-38 in float32) set to 0.

    Exponential decays to 0 and a softmax's far memories reach them: in float32 a unit decaying
    at rate 21 (Manhattan smoothed at 0.05) is subnormal by t = 4. x86 CPUs compute on subnormal
    operands about 100x slower, which doubled the float32 Manhattan run's wall time (1.2 s
    against 0.66 s with this flush, docs/performance.md). The change is below any tolerance. A
    local flush rather than ``torch.set_flush_denormal``, a process-wide switch with no getter
    that a library could not restore. One kernel (``hardshrink`` up to the largest subnormal
    number keeps NaN and infinities): this runs on every step."""
    return torch.hardshrink(x, LARGEST_SUBNORMAL[x.dtype])


def _largest(dtype: torch.dtype) -> float:
    """The largest subnormal number of a floating-point ``dtype`` (one below its smallest normal)."""
    tiny = torch.tensor(torch.finfo(dtype).tiny, dtype=dtype)
    return float(torch.nextafter(tiny, torch.zeros_like(tiny)))


#: The largest subnormal number per floating-point dtype (a table: compiled code reads it as a constant).
LARGEST_SUBNORMAL = {dtype: _largest(dtype) for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64)}


def flush_subnormal_nonnegative(x: torch.Tensor) -> torch.Tensor:
    """:func:`flush_subnormal` for ``x >= 0`` in one kernel (this runs on every right-hand side)."""
    return torch.threshold(x, LARGEST_SUBNORMAL[x.dtype], 0.0)  # (not the functional wrapper: 6 us a call)


def divide_nonzero(x: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    """``x / total``, with ``x`` left as is where ``total`` is 0 (a normalization that keeps an
    all-zero row at zero instead of 0/0). ``total`` broadcasts against ``x``."""
    return x / torch.where(total == 0, 1.0, total)
