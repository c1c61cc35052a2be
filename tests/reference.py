"""Plain numpy reference implementations of the similarity and separation formulas.

Written from the docstrings of ``neurodyn.similarity`` / ``neurodyn.lagrangians`` and DESIGN.md
section 2, pair by pair with explicit loops, so that they share no code (and no matrix-product
expansions) with the library they check.
"""

from __future__ import annotations

import math

import numpy as np

EPS = 1e-8  # make_similarity's default eps
LOG_EPS = 1e-12  # Log Lagrangian's default floor

NAMED = ("dot", "biased_dot", "normalized_dot", "cosine")
DISTANCE_NAMES = ("euclidean", "sq_euclidean", "manhattan", "kl", "reverse_kl", "js", "hamming")
FORMS = ("negative", "inverse")


def spec(name: str, form: str | None = None, normalized: bool = False) -> str:
    """The make_similarity spec string for a (name, form, normalized) triple."""
    opts = [o for o in (form, "normalized" if normalized else None) if o]
    return name + (":" + ",".join(opts) if opts else "")


def all_specs(normalized: bool = False) -> list[tuple[str, str | None, bool]]:
    """Every (name, form, normalized): dot-like names without a form, distances in both forms."""
    out = [(n, None, normalized) for n in NAMED]
    out += [(d, f, normalized) for d in DISTANCE_NAMES for f in FORMS]
    return out


def _floor_normalize(x: np.ndarray, eps: float) -> np.ndarray:
    x = np.array([max(float(v), eps) for v in x])
    return x / x.sum()


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    return float(sum(pi * math.log(pi / qi) for pi, qi in zip(p, q)))


def pair_distance(name: str, m: np.ndarray, g: np.ndarray, eps: float = EPS) -> float:
    """Distance between one memory ``m`` and one query ``g``."""
    if name == "euclidean":
        return math.sqrt(sum((gi - mi) ** 2 for gi, mi in zip(g, m)))
    if name == "sq_euclidean":
        return 0.5 * sum((gi - mi) ** 2 for gi, mi in zip(g, m))
    if name == "manhattan":
        return float(sum(abs(gi - mi) for gi, mi in zip(g, m)))
    if name == "hamming":
        return float(sum(gi * (1 - mi) + (1 - gi) * mi for gi, mi in zip(g, m)))
    p, q = _floor_normalize(g, eps), _floor_normalize(m, eps)
    if name == "kl":
        return _kl(p, q)
    if name == "reverse_kl":
        return _kl(q, p)
    if name == "js":
        mix = 0.5 * (p + q)
        return 0.5 * _kl(p, mix) + 0.5 * _kl(q, mix)
    raise KeyError(name)


def pair_score(name: str, form: str | None, m: np.ndarray, g: np.ndarray, eps: float = EPS) -> float:
    """Unnormalized similarity score of one memory and one query."""
    if name == "dot":
        return float(sum(gi * mi for gi, mi in zip(g, m)))
    if name == "biased_dot":
        return float(sum(gi * mi - 0.5 * mi * mi for gi, mi in zip(g, m)))
    if name == "cosine":
        ng = max(math.sqrt(sum(gi * gi for gi in g)), eps)
        nm = max(math.sqrt(sum(mi * mi for mi in m)), eps)
        return float(sum(gi * mi for gi, mi in zip(g, m))) / (ng * nm)
    if name == "normalized_dot":
        p, q = _floor_normalize(g, eps), _floor_normalize(m, eps)
        return float(sum(pi * qi for pi, qi in zip(p, q)))
    d = pair_distance(name, m, g, eps)
    form = form or "negative"
    if form == "negative":
        return -d
    if form == "inverse":
        return 1.0 / (d + eps)
    raise KeyError(form)


def similarity(name: str, form: str | None, normalized: bool, memories, queries, eps: float = EPS) -> np.ndarray:
    """Reference scores (B, N) for memories (N, I) and queries (B, I)."""
    M = np.asarray(memories, dtype=np.float64)
    G = np.asarray(queries, dtype=np.float64)
    out = np.empty((G.shape[0], M.shape[0]))
    for b in range(G.shape[0]):
        for mu in range(M.shape[0]):
            out[b, mu] = pair_score(name, form, M[mu], G[b], eps)
    if normalized or name == "normalized_dot":
        total = np.abs(out.sum(-1, keepdims=True))  # the absolute sum keeps the ranking
        out = out / np.where(total == 0, 1.0, total)  # an all-zero row stays zero
    return out


SEPARATIONS = ("identity", "polynomial:2", "softmax:5", "max", "topk:2", "threshold:0", "log", "sigmoid",
               "tanh")


def separation(sep: str, h) -> np.ndarray:
    """Reference separation (activation of the memory Lagrangian) applied row-wise to (B, N)."""
    h = np.asarray(h, dtype=np.float64)
    name, _, arg = sep.partition(":")
    if name == "identity":
        return h.copy()
    if name == "polynomial":
        return np.maximum(h, 0.0) ** float(arg)
    if name == "softmax":
        beta = float(arg or 1.0)
        z = beta * h - (beta * h).max(-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(-1, keepdims=True)
    if name == "max":
        out = np.zeros_like(h)
        out[np.arange(h.shape[0]), h.argmax(-1)] = 1.0
        return out
    if name == "topk":
        k = min(int(arg), h.shape[-1])
        out = np.zeros_like(h)
        for b in range(h.shape[0]):
            out[b, np.argsort(-h[b])[:k]] = 1.0
        return out
    if name == "threshold":
        return (h > float(arg or 0.0)).astype(np.float64)
    if name == "log":
        return np.log(np.maximum(h, LOG_EPS))
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-h))
    if name == "tanh":
        return np.tanh(h)
    raise KeyError(sep)


def retrieve(memories, projection, queries, sim: tuple[str, str | None, bool], sep: str,
             normalize_separation: bool = False) -> np.ndarray:
    """``P' sep(sim(M, q))`` in row form, optionally with the weights divided by their sum."""
    f = separation(sep, similarity(*sim, memories, queries))
    if normalize_separation:
        s = f.sum(-1, keepdims=True)
        # No memory active at all (e.g. threshold): recall nothing rather than 0/0.
        f = np.where(s == 0, 0.0, f / np.where(s == 0, 1.0, s))
    return f @ np.asarray(projection, dtype=np.float64)
