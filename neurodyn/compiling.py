"""``torch.compile`` for the library's compiled paths: the per-cue solver's loop
(:mod:`neurodyn.solve.compiled`), the spiking block (:mod:`neurodyn.spiking.compiled`) and the
fused (cue, memory, unit) kernels of the similarities (:class:`CompiledOnceRepaid`).

Each path compiles a function once per process and falls back to its eager code, with a
:class:`~neurodyn.errors.SolverWarning` saying why, when ``torch.compile`` cannot trace it whole
(a user's similarity in NumPy, a machine without a C++ compiler for inductor's CPU code).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from .errors import SolverWarning

#: The ``torch.compile`` backend (tests trace with ``"eager"``, which checks that a function
#: traces whole without generating code).
BACKEND = "inductor"
#: Configurations (shapes, dtypes, the settings a compiled function reads as constants) one
#: process compiles a function for. Dynamo's default, 8, fails the ninth with ``fullgraph``: a
#: sweep over parameters in one process would stop there.
RECOMPILE_LIMIT = 256


@functools.cache
def _compiled(fn: Callable[..., Any], backend: str, device: str, dynamic: bool) -> Any:
    """``fn`` compiled once per process, backend, device type and shape rule (dynamo keeps a
    graph per shape, dtype and setting it guards on, or per dtype and setting where the shapes
    are ``dynamic``; inductor caches the generated code on disk across processes). Whole
    (``fullgraph``): a function it cannot trace fails at once instead of falling back silently.
    On the CPU inductor's wrapper is C++ too (``cpp_wrapper``): its Python wrapper spent about
    0.2 ms per call launching kernels and allocating buffers (measured on the per-cue solver's
    steps at N = 100, B = 32: 6.4 against 5.6 ms for a whole solve)."""
    options: dict[str, Any] | None = {"cpp_wrapper": True} if backend == "inductor" and device == "cpu" else None
    return torch.compile(fn, backend=backend, fullgraph=True, dynamic=dynamic, options=options)


def call_compiled(fn: Callable[..., Any], device: torch.device, *args: Any,
                  dynamic: bool = False) -> tuple[Any, str | None]:
    """``fn(*args)`` compiled by :data:`BACKEND` for ``device``: (its result, None), or (None,
    why) when it cannot be compiled (a function ``torch.compile`` cannot trace whole).
    ``dynamic``: one graph for every shape (for a batch that shrinks as cues stop). Dynamo's
    limit on configurations is raised to :data:`RECOMPILE_LIMIT` only when a new one needs it
    (patching it on every call cost 20 us)."""
    compiled = _compiled(fn, BACKEND, device.type, dynamic)
    try:
        try:
            return compiled(*args), None
        except torch._dynamo.exc.FailOnRecompileLimitHit:
            with torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT):
                return compiled(*args), None
    except (torch._dynamo.exc.TorchDynamoException, torch._dynamo.exc.FailOnRecompileLimitHit) as err:
        return None, reason(err)


def reason(err: Exception) -> str:
    """Why dynamo could not trace or inductor could not compile: its first line, and the
    explanation a higher-order operator's error gives after it ("Got graph break/error:")."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    explained = [line.removeprefix("Explanation: ") for line in lines if line.startswith("Explanation: ")]
    head = lines[0] if lines else type(err).__name__
    return f"{head} {explained[0]}" if explained and head.endswith(":") else head


def plain(*args: Any) -> bool:
    """Whether the tensors among ``args`` are plain data: no autograd graph is wanted through
    them and no ``torch.func`` transform (``vmap``, ``grad``) is active, so that a kernel may
    write into reused buffers (``out=``, which neither supports) or run compiled."""
    graph = torch.is_grad_enabled() and any(isinstance(a, torch.Tensor) and a.requires_grad for a in args)
    return not graph and not torch._C._are_functorch_transforms_active()


@dataclass
class CompiledOnceRepaid:
    """A kernel that runs ``eager`` until its eager work has repaid a compilation, then
    ``fused`` compiled with dynamic shapes (one graph as a batch shrinks).

    ``fused`` and ``eager`` compute the same thing: ``fused`` written for inductor, which fuses
    its elementwise terms into the reductions (no (cue, memory, unit) temporaries), ``eager``
    for eager PyTorch (chunked temporaries). The call passes its ``work`` (elements computed);
    once those of this object's eager calls reach ``after``, it compiles. The rule counts
    elements, not seconds, so whether a run compiles does not depend on the machine's load.
    Inside another compiled function (the per-cue solver's loop) ``fused`` is traced into it.
    Arguments that are not :func:`plain` (autograd through the kernel, ``torch.vmap``) or a
    failed compilation keep it eager, the latter with a :class:`~neurodyn.errors.SolverWarning`
    (once)."""

    fused: Callable[..., Any]
    eager: Callable[..., Any]
    after: float
    done: float = 0.0
    failure: str | None = field(default=None, init=False)

    def __call__(self, work: float, *args: Any) -> Any:
        if torch.compiler.is_compiling():
            return self.fused(*args)
        if self.failure is None and plain(*args) and self.done >= self.after:
            out, why = call_compiled(self.fused, args[0].device, *args, dynamic=True)
            if why is None:
                return out
            self.failure = why
            name = getattr(self.fused, "__name__", "kernel")
            warnings.warn(f"the fused {name} kernel could not be compiled ({why}); it runs eagerly",
                          SolverWarning, stacklevel=3)
        self.done += work
        return self.eager(*args)
