"""Similarity functions ``sim(M, g)`` between stored patterns and value activations.

Each similarity maps memories ``M`` (N x I) and a batch of activations ``g`` (B x I) to scores
(B x N), larger meaning more similar (UHN section 3, table 2; appendix E for the numerics).
Distances ``d`` become similarities in one of two forms:

- ``negative``: ``-d`` (smooth where ``d`` is; the form used with energies and gradient dynamics);
- ``inverse``: ``1 / (d + eps)`` as in the UHN authors' code (``UHN-PROTOCOL.md``).

``normalized=True`` divides each cue's scores by the absolute value of their sum over memories
(UHN appendix E), which makes the similarity's own scale cancel and keeps the ranking (a sum of
zero gives infinite scores, which a run reports as a non-finite state). Both forms remain functions
of ``g`` alone, so the
gradient dynamics use their exact gradient ``sum_mu f_mu d sim_mu / dg`` (:meth:`gradient`),
in closed form for the dot product and the squared Euclidean distance and by autograd otherwise.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from . import triton_distance
from .compiling import CompiledOnceRepaid, plain
from .named import import_named
from .numerics import derived, divide_nonzero

Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _sum_normalized(x: torch.Tensor, eps: float) -> torch.Tensor:
    """Rows made non-negative (floored at ``eps``) and divided by their sums."""
    x = x.clamp_min(eps)
    return x / x.sum(-1, keepdim=True)


def squared_norms(memories: torch.Tensor) -> torch.Tensor:
    """``|M_mu|^2`` per memory. Every right-hand side asks for them, and for small networks they
    cost as much as the scores, so they are kept per memory tensor until it is modified in place
    or freed (:func:`~neurodyn.numerics.derived`)."""
    return derived("squared_norms", lambda: (memories * memories).sum(-1), memories)


def sq_euclidean_distance(memories: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``|g - M_mu|^2 / 2`` by the matrix-product expansion (UHN table 2, Euclidean squared).

    The factor 1/2 makes ``-d`` have gradient ``M_mu - g``. Note that ``-d`` ranks memories exactly
    like ``M_mu.g - |M_mu|^2/2``: the ``|g|^2/2`` term is common to all memories.
    """
    gm = g @ memories.t()
    d = 0.5 * ((g * g).sum(-1, keepdim=True) + squared_norms(memories) - 2.0 * gm)
    return d.clamp_min(0.0)


def _minkowski(memories: torch.Tensor, g: torch.Tensor, p: int) -> torch.Tensor:
    """``|g - M_mu|_p`` for p = 1 or 2: the Triton kernel of :mod:`neurodyn.triton_distance` on
    CUDA (float32 and half precision, no autograd graph wanted), ``torch.cdist`` otherwise."""
    wants_graph = torch.is_grad_enabled() and (g.requires_grad or memories.requires_grad)
    if g.dtype != torch.float64 and not wants_graph and triton_distance.available(g.device):
        return triton_distance.pairwise_distance(g, memories, p)
    return torch.cdist(g, memories, p=float(p), compute_mode="donot_use_mm_for_euclid_dist")


def euclidean_distance(memories: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``|g - M_mu|`` (not squared)."""
    return _minkowski(memories, g, 2)


def manhattan_distance(memories: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``sum_i |g_i - M_mu,i|`` (UHN table 2, Manhattan)."""
    return _minkowski(memories, g, 1)


#: (cue, memory, unit) terms per eager chunk (8 MB per temporary in float64; at least one cue
#: per chunk). The temporaries are reused from call to call (:class:`TermBuffers`).
CHUNK_ELEMENTS = 2**20
#: Terms a fused kernel computes eagerly before it compiles
#: (:class:`~neurodyn.compiling.CompiledOnceRepaid`), chosen by the ski-rental rule: keep paying
#: the eager form's excess until it adds up to one compilation, so that a run that compiles
#: spends at most about twice what the better choice in hindsight would have. Measured
#: (docs/performance.md, "Fused distance kernels", float64, B = 100, N = 1,000, I = 784): the
#: compiled kernels save about 1 ns per term (eagerly 1.7-1.8 ns, compiled 0.65-0.85 ns), and
#: compiling costs about 5 s (the first kernel of a process, with inductor's on-disk cache), so
#: 2^32 terms (4.3 s saved had it compiled at once). A digits run (100 x 100 x 64 terms per
#: call) stays eager; an MNIST run at 100 cues compiles after about 55 calls. ``math.inf`` keeps
#: every kernel eager, 0 compiles at the first call.
FUSED_AFTER: float = 2**32


class TermBuffers:
    """Temporaries of one kernel's (cue, memory, unit) terms, reused from call to call (one set
    per thread). A fresh tensor of a chunk's size is a fresh mapping of memory that faults in
    page by page: with fresh temporaries (and chunks of 2^25 terms) the smoothed Manhattan
    distance and drive took 1.27 s at B = 100, N = 1,000, I = 784 in float64, with reused ones
    (and chunks of 2^20) 0.26 s (docs/performance.md, "Fused distance kernels"). They live as
    long as the similarity, two chunks' worth (12.5 MB for MNIST's 1,000 memories in float64);
    a chunk larger than :attr:`KEPT_MAX` terms (one cue of a very large bank) gets fresh ones."""

    #: Terms of the largest temporary kept (128 MB in float64).
    KEPT_MAX = 2**24

    def __init__(self) -> None:
        self._local = threading.local()

    def take(self, name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """An uninitialised tensor of ``shape`` with ``like``'s dtype and device."""
        store: dict[str, torch.Tensor] = self._local.__dict__.setdefault("store", {})
        numel = math.prod(shape)
        if numel > self.KEPT_MAX:
            return torch.empty(shape, dtype=like.dtype, device=like.device)
        buffer = store.get(name)
        if buffer is None or buffer.numel() < numel or buffer.dtype != like.dtype or buffer.device != like.device:
            buffer = store[name] = torch.empty(numel, dtype=like.dtype, device=like.device)
        return buffer[:numel].view(shape)


def _chunks(g: torch.Tensor, memories: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The cues ``g`` in chunks of about :data:`CHUNK_ELEMENTS` (cue, memory, unit) terms."""
    return g.split(max(1, CHUNK_ELEMENTS // max(1, memories.numel())))


def _smooth_manhattan_fused(memories: torch.Tensor, g: torch.Tensor, delta: float) -> torch.Tensor:
    """The smoothed Manhattan distance (:func:`smooth_manhattan`) as one expression, which
    inductor computes as one reduction without the (cue, memory, unit) temporaries."""
    return torch.sqrt((memories[None, :, :] - g[:, None, :]) ** 2 + delta * delta).sum(-1) - memories.shape[1] * delta


def _smooth_manhattan_drive_fused(memories: torch.Tensor, g: torch.Tensor, f: torch.Tensor,
                                  delta: float) -> torch.Tensor:
    """The drive of the negative smoothed Manhattan distance as one expression (as
    :func:`_smooth_manhattan_fused`)."""
    diff = memories[None, :, :] - g[:, None, :]
    return (f[:, :, None] * diff * torch.rsqrt(diff * diff + delta * delta)).sum(1)


def smooth_manhattan(delta: float) -> tuple[Distance, Callable[..., torch.Tensor]]:
    """The Manhattan distance smoothed at temperature ``delta``, ``sum_i sqrt((g_i - m_i)^2 +
    delta^2) - delta`` (within ``delta`` per unit of ``|g - m|_1``, and equal as ``delta -> 0``),
    and the closed-form drive of its negative, ``sum_mu f_mu (m_mu - g) / sqrt((g - m_mu)^2 +
    delta^2)``. The exact distance's gradient jumps where a unit crosses a stored value, so its
    gradient dynamics slide along those surfaces and explicit solvers crawl (docs/theory.md).
    Eagerly both go through (cue, memory, unit) temporaries in chunks of about
    :data:`CHUNK_ELEMENTS`; after :data:`FUSED_AFTER` terms each is compiled into one fused
    reduction."""
    buffers = TermBuffers()
    # The right-hand side asks for the scores and then, with the same g, for the drive: the
    # differences and roots of a one-chunk batch stay in the buffers from the first call for the
    # second (the drive then consumes them), which saves a third of a step's work (measured on
    # digits, B = N = 100). ``held`` keeps them with the batch they belong to.
    held: dict[str, Any] = {}

    def terms(memories: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        held.clear()
        shape = (len(g), *memories.shape)
        diff = torch.sub(memories[None, :, :], g[:, None, :], out=buffers.take("diff", shape, g))
        # In place: torch.hypot with a scalar is 5x slower on the CPU (measured).
        return diff, torch.mul(diff, diff, out=buffers.take("root", shape, g)).add_(delta * delta).sqrt_()

    def batch(memories: torch.Tensor, g: torch.Tensor) -> tuple[Any, ...]:
        return weakref.ref(memories), weakref.ref(g), memories._version, g._version

    def holds(memories: torch.Tensor, g: torch.Tensor) -> bool:
        key = held.get("batch")
        return key is not None and key[0]() is memories and key[1]() is g and key[2:] == batch(memories, g)[2:]

    def chunked_distance(memories: torch.Tensor, g: torch.Tensor, _delta: float) -> torch.Tensor:
        parts = _chunks(g, memories)
        if not plain(memories, g):
            return torch.cat([_smooth_manhattan_fused(memories, part, delta) for part in parts])
        out = []
        for part in parts:
            diff, root = terms(memories, part)
            out.append(root.sum(-1) - memories.shape[1] * delta)
        if len(parts) == 1 and diff.numel() <= TermBuffers.KEPT_MAX:  # (fresh temporaries are not held on to)
            held.update(batch=batch(memories, g), terms=(diff, root))
        return torch.cat(out)

    def chunked_drive(memories: torch.Tensor, g: torch.Tensor, f: torch.Tensor, _delta: float) -> torch.Tensor:
        if not plain(memories, g, f):
            return torch.cat([_smooth_manhattan_drive_fused(memories, part, fp, delta)
                              for part, fp in zip(_chunks(g, memories), _chunks(f, memories), strict=True)])
        out = []
        for part, fp in zip(_chunks(g, memories), _chunks(f, memories), strict=True):
            diff, root = held["terms"] if holds(memories, g) else terms(memories, part)
            out.append(torch.bmm(fp[:, None, :], diff.div_(root)).squeeze(1))
        held.clear()
        return torch.cat(out)

    distance_kernel = CompiledOnceRepaid(_smooth_manhattan_fused, chunked_distance, FUSED_AFTER)
    drive_kernel = CompiledOnceRepaid(_smooth_manhattan_drive_fused, chunked_drive, FUSED_AFTER)

    def distance(memories: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return distance_kernel(len(g) * memories.numel(), memories, g, delta)

    def drive(memories: torch.Tensor, g: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        return drive_kernel(len(g) * memories.numel(), memories, g, f, delta)

    return distance, drive


def hamming_distance(memories: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Hamming distance for {0, 1} patterns, relaxed to ``sum g(1-m) + (1-g)m`` (affine in ``g``).

    Equals the number of differing bits when both are binary.
    """
    return g.sum(-1, keepdim=True) + memories.sum(-1) - 2.0 * (g @ memories.t())


def _kl_rows(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``KL(p_b || q_mu)`` for all pairs; p (B, I), q (N, I), both positive and normalized.

    The matrix-product expansion cancels where ``p`` is near ``q``: in float32 it leaves noise of
    about 1e-7 that can be negative, and ``1 / (KL + eps)`` of it flips sign, which made float32
    runs of the UHN KL presets fail where float64 ones took 50 steps. Values within the
    expansion's rounding error are therefore 0 (:func:`_floor_rounding`)."""
    entropy, cross = (p * torch.log(p)).sum(-1, keepdim=True), p @ torch.log(q).T
    return _floor_rounding(entropy - cross, entropy.abs() + cross.abs())


def _floor_rounding(divergence: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    """A divergence computed as a difference of terms of size ``magnitude``: 0 where it is within
    that difference's rounding error (or negative), itself elsewhere. A divergence is >= 0 and is
    0 only for equal distributions; rounding noise otherwise reaches the similarity, whose
    normalized and inverse forms amplify it without bound."""
    noise = 8 * torch.finfo(divergence.dtype).eps * magnitude
    return torch.where(divergence <= noise, torch.zeros_like(divergence), divergence)


def make_kl(eps: float, reverse: bool) -> Distance:
    def kl(memories: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        p, q = _sum_normalized(g, eps), _sum_normalized(memories, eps)
        return _kl_rows(q, p).T if reverse else _kl_rows(p, q)

    kl.__doc__ = ("KL(memory || query)" if reverse else "KL(query || memory)") + " of sum-normalized vectors."
    return kl


def _js_cross(p: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``sum_i p_i log m_i`` and ``sum_i q_i log m_i`` for every pair, ``m = (p + q) / 2``, shapes
    (B, N): the Jensen-Shannon divergence's cross terms, one logarithm per (cue, memory, unit)."""
    logmix = torch.log(0.5 * (p[:, None, :] + q[None, :, :]))
    return (p[:, None, :] * logmix).sum(-1), (q[None, :, :] * logmix).sum(-1)


def make_js(eps: float) -> Distance:
    buffers = TermBuffers()

    def chunk(p: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`_js_cross` of one chunk of cues in the reused temporaries."""
        shape = (len(p), *q.shape)
        logmix = torch.add(p[:, None, :], q[None, :, :], out=buffers.take("logmix", shape, p)).mul_(0.5).log_()
        cross_p = torch.bmm(logmix, p[:, :, None]).squeeze(-1)
        return cross_p, torch.mul(logmix, q[None, :, :], out=buffers.take("product", shape, p)).sum(-1)

    def chunked(p: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The cross terms with cues in chunks of about :data:`CHUNK_ELEMENTS` terms (the eager form)."""
        each = chunk if plain(p, q) else _js_cross
        cross_p, cross_q = zip(*(each(part, q) for part in _chunks(p, q)), strict=True)
        return torch.cat(cross_p), torch.cat(cross_q)

    # The cross terms are compiled into one fused reduction after FUSED_AFTER terms.
    cross_kernel = CompiledOnceRepaid(_js_cross, chunked, FUSED_AFTER)

    def js(memories: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Jensen-Shannon divergence ``KL(p||m)/2 + KL(q||m)/2``, ``m = (p+q)/2``, sum-normalized."""
        p = _sum_normalized(g, eps)
        # The memories' side is kept per bank (a logarithm per stored unit: at one cue on MNIST
        # it cost as much as the cross terms).
        q = derived(f"sum_normalized:{eps!r}", lambda: _sum_normalized(memories, eps), memories)
        entropy_q = derived(f"entropy:{eps!r}", lambda: (q * torch.log(q)).sum(-1), memories)[None, :]
        entropy_p = (p * torch.log(p)).sum(-1, keepdim=True)
        cross_p, cross_q = cross_kernel(len(p) * q.numel(), p, q)
        magnitude = 0.5 * (entropy_p.abs() + cross_p.abs() + entropy_q.abs() + cross_q.abs())
        return _floor_rounding(0.5 * (entropy_p - cross_p + entropy_q - cross_q), magnitude)

    return js


@dataclass(frozen=True)
class Similarity:
    """A similarity ``sim(M, g) -> (B, N)`` with its gradient contracted against ``f``.

    ``bilinear`` marks similarities whose gradient in ``g`` is ``M_mu`` (dot, and the biased dot,
    affine in ``g``), so that ``sum_mu f_mu dsim_mu/dg = M' f``: then the projection dynamics
    with ``P = M`` *are* the gradient dynamics (DESIGN.md section 2). ``smooth``: differentiable
    everywhere (None: not declared, as for a user's similarity that does not say; the Lyapunov
    verdict is then "not known").
    """

    name: str
    score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = field(repr=False)
    normalized: bool = False
    bilinear: bool = False
    closed_gradient: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = field(
        default=None, repr=False)
    smooth: bool | None = None
    smoothing: float = 0.0  # the temperature of a smoothed distance (0: exact)
    scale_invariant: bool = False  # sim(M, c g) = sim(M, g) for c > 0: the gradient is orthogonal to g
    grows: bool = False  # unbounded above, growing linearly with g (dot, biased dot, Hamming)

    def __call__(self, memories: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        s = self.score(memories, g)
        if self.normalized:
            # |sum| keeps the ranking should a dot or cosine score sum turn negative; an all-zero
            # row (e.g. one memory at zero divergence from the cue) stays zero instead of 0/0.
            s = divide_nonzero(s, s.sum(-1, keepdim=True).abs())
        return s

    def gradient(self, memories: torch.Tensor, g: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """``sum_mu f_mu * d sim(M_mu, g) / dg`` (the drive of UHN eq. 2), shape (B, I)."""
        if self.closed_gradient is not None and not self.normalized:
            return self.closed_gradient(memories, g, f)
        with torch.enable_grad():
            g = g.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self(memories, g), g, grad_outputs=f)
        return grad


def _dot(memories: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return g @ memories.t()


def _dot_gradient(memories: torch.Tensor, g: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return f @ memories


def _biased_dot(memories: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``g.M_mu - |M_mu|^2 / 2``: the negative squared distance without its ``-|g|^2/2`` term.
    The bias ``-|M_mu|^2 / 2`` is kept with the bank and added by the product itself (one kernel
    for a batch of cues: at N = 100, B = 32 a third of this function's cost was the bias)."""
    bias = derived("negative_half_squared_norms", lambda: -0.5 * squared_norms(memories), memories)
    return torch.addmm(bias, g, memories.t()) if g.dim() == 2 else g @ memories.t() + bias


def _neg_sq_euclidean_gradient(memories: torch.Tensor, g: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return f @ memories - f.sum(-1, keepdim=True) * g


def _cosine(memories: torch.Tensor, g: torch.Tensor, eps: float) -> torch.Tensor:
    gn = g / g.norm(dim=-1, keepdim=True).clamp_min(eps)
    mn = memories / memories.norm(dim=-1, keepdim=True).clamp_min(eps)
    return gn @ mn.T


def _normalized_dot(memories: torch.Tensor, g: torch.Tensor, eps: float) -> torch.Tensor:
    """``norm(M) . norm(g)`` with ``norm(x) = x / sum(x)`` per row (UHN eq. 13, before the outer norm)."""
    return _sum_normalized(g, eps) @ _sum_normalized(memories, eps).T


DISTANCES = ("euclidean", "sq_euclidean", "manhattan", "kl", "reverse_kl", "js", "hamming")
SIMILARITIES = ("dot", "biased_dot", "normalized_dot", "cosine") + DISTANCES
_FORMS = ("negative", "inverse")


def user_similarity(score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *, name: str | None = None,
                    gradient: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                    smooth: bool | None = None, bilinear: bool = False) -> Similarity:
    """A user's similarity from its function ``score(M, g) -> (B, N)`` (memories (N, I), states
    (B, I)). ``gradient(M, g, f)``: ``sum_mu f_mu dsim_mu/dg`` in closed form (default:
    autograd of ``score``). ``smooth``: whether it is differentiable everywhere (None: not
    known, and the Lyapunov verdict says so). ``name``: how runs and model files name it
    (default ``"module:qualname"``; to reopen a run in another process, define it at module
    level)."""
    if not callable(score):
        raise ValueError(f"a similarity's score must be a function of (memories, g), got {type(score).__name__}")
    return Similarity(name or f"{score.__module__}:{score.__qualname__}", score, bilinear=bilinear,
                      closed_gradient=gradient, smooth=smooth)


def make_similarity(spec: str | Similarity | Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *,
                    form: str | None = None, normalized: bool | None = None, eps: float = 1e-8,
                    smooth: float = 0.0) -> Similarity:
    """Build a similarity by name, or from a user's function (:func:`user_similarity`, facts not
    known) or ``"module:attribute"`` (a :class:`Similarity` or such a function).

    ``spec`` is a name from :data:`SIMILARITIES`, optionally with options after a colon:
    ``"manhattan:inverse,normalized"`` is the UHN authors' ``1 / sum|q - m|`` scaled to sum to 1.
    Distances default to the ``negative`` form. ``normalized_dot`` is always normalized (UHN eq. 13).
    ``"manhattan:smooth=0.05"`` (or ``smooth=``) is the Manhattan distance smoothed at that
    temperature (:func:`smooth_manhattan`), a smooth similarity whose gradient dynamics solve.
    """
    if isinstance(spec, Similarity):
        return spec
    if callable(spec) and not isinstance(spec, str):
        return user_similarity(spec)
    if not isinstance(spec, str):
        raise ValueError(f"a similarity is a name, a Similarity or a function score(memories, g), got "
                         f"{type(spec).__name__}")
    name, _, opts = spec.partition(":")
    name = name.strip().lower()
    if name not in SIMILARITIES and opts:  # a user's, by import name
        try:
            user = import_named(spec.strip(), "similarity")
        except ValueError as err:
            raise ValueError(f"unknown similarity {name!r} (known: {', '.join(SIMILARITIES)}), and {err}") from None
        if isinstance(user, Similarity):
            return user
        if not callable(user):
            raise ValueError(f"{spec!r} names a {type(user).__name__}, not a Similarity or a score function")
        return user_similarity(user, name=spec.strip())
    form, normalized, smooth = _options(spec, opts, form, normalized, smooth)
    if name not in SIMILARITIES:
        raise ValueError(f"unknown similarity {name!r}; known: {', '.join(SIMILARITIES)}, or a user's as "
                         "'module:attribute'")
    if smooth and name != "manhattan":
        raise ValueError(f"smoothing applies to the manhattan similarity, not {name!r}")
    if not (eps > 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be > 0, got {eps}")
    if name in ("dot", "biased_dot", "normalized_dot", "cosine"):
        if form is not None:
            raise ValueError(f"{name!r} is not a distance; the forms {_FORMS} do not apply")
        return _inner_product(name, bool(normalized), eps)
    return _distance_similarity(name, form or "negative", bool(normalized), eps, smooth)


def _options(spec: str, opts: str, form: str | None, normalized: bool | None,
             smooth: float) -> tuple[str | None, bool | None, float]:
    """The form, normalization and smoothing that a spec's options (after its colon) set."""
    for opt in filter(None, (o.strip().lower() for o in opts.split(","))):
        if opt in _FORMS:
            form = opt
        elif opt == "normalized":
            normalized = True
        elif opt.startswith("smooth="):
            try:
                smooth = float(opt.partition("=")[2])
            except ValueError:
                smooth = math.nan
            if not (math.isfinite(smooth) and smooth >= 0):
                raise ValueError(f"smooth= takes a temperature >= 0 (0: exact), got {opt!r} in {spec!r}")
        else:
            raise ValueError(f"unknown similarity option {opt!r} in {spec!r}; options: "
                             f"{', '.join(_FORMS)}, normalized, smooth=TEMPERATURE (manhattan)")
    return form, normalized, smooth


def _inner_product(name: str, normalized: bool, eps: float) -> Similarity:
    """The dot product, biased dot product, cosine or normalized dot product."""
    if name in ("dot", "biased_dot"):
        # Both have gradient M_mu: sum f dsim/dg = M'f, so projection = gradient dynamics.
        return Similarity(name + (":normalized" if normalized else ""), _dot if name == "dot" else _biased_dot,
                          normalized, bilinear=not normalized, closed_gradient=_dot_gradient, smooth=True,
                          scale_invariant=normalized and name == "dot", grows=not normalized)
    if name == "cosine":
        return Similarity("cosine" + (":normalized" if normalized else ""),
                          lambda m, g: _cosine(m, g, eps), normalized, smooth=True, scale_invariant=True)
    # The eps floor of the sum-normalization is a kink at entries <= eps.
    return Similarity("normalized_dot", lambda m, g: _normalized_dot(m, g, eps), normalized=True, smooth=False,
                      scale_invariant=True)


def _distance_similarity(name: str, form: str, normalized: bool, eps: float, smooth: float) -> Similarity:
    """A distance or divergence as a similarity: its negative or its inverse (``form``)."""
    if form not in _FORMS:
        raise ValueError(f"unknown distance form {form!r}; known: {', '.join(_FORMS)}")
    distance: Distance = {
        "euclidean": euclidean_distance,
        "sq_euclidean": sq_euclidean_distance,
        "manhattan": manhattan_distance,
        "hamming": hamming_distance,
        "kl": make_kl(eps, reverse=False),
        "reverse_kl": make_kl(eps, reverse=True),
        "js": make_js(eps),
    }[name]
    closed = _neg_sq_euclidean_gradient if (name == "sq_euclidean" and form == "negative") else None
    if smooth:
        distance, drive = smooth_manhattan(smooth)
        closed = drive if form == "negative" else None
    if form == "negative":
        score = lambda m, g: -distance(m, g)  # noqa: E731
    else:
        score = lambda m, g: 1.0 / (distance(m, g) + eps)  # noqa: E731
    label = f"{name}:{form}" + (",normalized" if normalized else "") + (f",smooth={smooth:g}" if smooth else "")
    # |.| and sqrt are not differentiable where a cue equals a memory; the eps floors of the
    # sum-normalized divergences put a kink where an entry is <= eps (a masked pixel, say).
    differentiable = bool(smooth) or name not in ("euclidean", "manhattan", "kl", "reverse_kl", "js")
    # The divergences compare sum-normalized vectors: they ignore the scale of g.
    return Similarity(label, score, normalized, closed_gradient=closed, smooth=differentiable, smoothing=smooth,
                      scale_invariant=name in ("kl", "reverse_kl", "js"),
                      grows=name == "hamming" and form == "negative" and not normalized)
