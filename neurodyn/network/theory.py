"""What theory says about a network before it runs: whether its dynamics are a gradient flow,
what stands between them and ``dE/dt <= 0`` (UHN appendix A), why they could not retrieve
whatever the solver, and the smoothed model that is integrated in place of a non-smooth one
(docs/theory.md, sections 8 and 8a)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import torch

from ..lagrangians import Lagrangian, Quadratic, Tanh
from ..similarity import make_similarity

if TYPE_CHECKING:
    from .model import Network

#: Temperature at which the integrated gradient dynamics of the exact Manhattan similarity are
#: smoothed (docs/theory.md, "Non-smooth similarities": the exact gradient jumps, so the flow
#: slides along switching surfaces and explicit solvers crawl; measured in docs/performance.md).
MANHATTAN_SMOOTHING = 0.05


def projection_departures(net: Network) -> list[str]:
    """Why projection dynamics differ from the gradient dynamics (empty when they coincide)."""
    if net.dynamics == "gradient":
        return []
    out = []
    if net.projection is not None:
        out.append("heteroassociative P != M")
    if not net.similarity.bilinear:
        out.append(f"the gradient of {net.similarity.name} is not M_mu, so P'f is not -dE/dg")
    if net.normalize_separation and not net.separation.sums_to_one:
        out.append(f"{net.separation.describe()} is normalized outside its Lagrangian")
    return out


def lyapunov_obstacles(net: Network, clamped: bool = False, timed: bool = False) -> list[str]:
    """What stands between these dynamics and ``dE/dt <= 0`` (empty: guaranteed).

    ``clamped``: some value units are held fixed, which keeps the guarantee only when the
    value Lagrangian is elementwise (then ``dg/dt = 0`` on the clamped units). ``timed``: the
    input current varies in time, so the energy's time derivative gains ``-g . dI/dt``, of
    either sign (:mod:`~neurodyn.network.timecourse`).
    """
    departures = projection_departures(net)
    reasons = [f"projection dynamics are not a gradient flow: {', '.join(departures)}"] if departures else []
    if timed:
        reasons.append("the input current varies in time: dE/dt gains -g.dI/dt, so the energy can rise while the "
                       "input changes (it falls only where the input is constant)")
    return reasons + [refuted for fact, refuted, _ in _facts(net, clamped) if fact is False]


def lyapunov_unknowns(net: Network, clamped: bool = False) -> list[str]:
    """The facts the guarantee needs that the model's parts do not declare (a user's Lagrangian
    or similarity that does not say whether it is convex, smooth...): with none of
    :func:`lyapunov_obstacles` but some of these, the verdict is "not known"."""
    return [unknown for fact, _, unknown in _facts(net, clamped) if fact is None]


def _facts(net: Network, clamped: bool) -> list[tuple[bool | None, str, str]]:
    """Each fact the guarantee needs, as its parts declare it (None: not declared), with what
    to say when it is false and when it is not known."""
    facts = []
    for role, lg in (("value", net.value_lagrangian), ("memory", net.separation)):
        facts += [(lg.convex, f"{role} Lagrangian {lg.describe()} is not convex",
                   f"whether the {role} Lagrangian {lg.describe()} is convex"),
                  (lg.smooth, f"{role} Lagrangian {lg.describe()} has a discontinuous activation",
                   f"whether the activation of the {role} Lagrangian {lg.describe()} is continuous")]
    facts.append((net.similarity.smooth, f"{net.similarity.name} is not differentiable everywhere",
                  f"whether the similarity {net.similarity.name} is differentiable everywhere"))
    if clamped:
        value = net.value_lagrangian
        facts.append((value.elementwise, f"clamping units of the non-elementwise value Lagrangian "
                      f"{value.describe()} moves g on the clamped units",
                      f"whether the value Lagrangian {value.describe()} is elementwise"))
    return facts


def integrable(net: Network) -> Network:
    """The network whose rate dynamics are integrated: ``net`` itself, except that gradient
    dynamics of the exact negative Manhattan distance use its smoothing at
    :data:`MANHATTAN_SMOOTHING` (its gradient jumps where a unit crosses a stored value, so the
    flow slides along those surfaces and solvers crawl; docs/theory.md section 8a). Feedforward
    retrieval and projection dynamics keep the exact distance."""
    sim = net.similarity
    if net.dynamics == "gradient" and sim.name.startswith("manhattan:negative") and not sim.smoothing:
        return dataclasses.replace(net, similarity=make_similarity(f"{sim.name},smooth={MANHATTAN_SMOOTHING:g}"))
    return net


def growth(separation: Lagrangian) -> float:
    """How fast the separation grows with its input: the polynomial's degree (1 for identity),
    0 for bounded ones."""
    if separation.name == "identity":
        return 1.0
    return float(getattr(separation, "degree", 0.0)) if separation.name == "polynomial" else 0.0


def retrieval_obstacle(net: Network, with_current: bool = False) -> str:
    """Why these dynamics cannot retrieve a pattern whatever the solver (empty: none known).

    - A similarity that ignores the scale of ``g`` (cosine, normalized dot, the divergences of
      sum-normalized vectors) has a gradient orthogonal to ``g`` (Euler's theorem for a
      function homogeneous of degree 0). With no input current, gradient dynamics then give
      ``dL_v(v)/dt = g . dv/dt = -g . v / tau_v``: for value neurons whose activation has the
      sign of ``v`` (linear, ``g = v``: ``d|v|^2/dt = -2|v|^2 / tau_v``; tanh) that is < 0
      until ``v = 0``, so every cue decays to the origin, where the similarity is undefined
      and the flow turns infinitely fast.
    - The Euclidean (not squared) distance has unit-vector gradients: with a separation that
      sums to one the drive has norm <= 1, so ``v`` cannot reach a stored pattern beyond it.
    - Any dynamics whose similarity grows with ``g`` (dot, biased dot, Hamming), through a
      separation that grows at least linearly (polynomial, identity; linearly only when the gain
      ``|M|_2`` exceeds 1), with linear value neurons: the energy is unbounded below and the
      state diverges.
    """
    sim = net.similarity
    rate = growth(net.separation)
    # The spectral norm (an SVD of the bank) only where it decides.
    if sim.grows and isinstance(net.value_lagrangian, Quadratic) and \
            (rate > 1 or (rate == 1 and float(torch.linalg.matrix_norm(net.memories, 2)) > 1.0)):
        return (f"{sim.name} with {net.separation.describe()} and linear value neurons has an energy unbounded "
                "below: the drive grows faster than the leak -v (as |v|^n, or linearly with a gain above 1), so "
                "every cue diverges; use a saturating value Lagrangian (value_lagrangian='tanh', as the "
                "'hn' and 'dam' presets do) or a softmax separation")
    if net.dynamics != "gradient" or with_current:
        return ""
    offer = ("use dynamics='projection' (the papers' update P'f), an input-current cue (cue_mode "
             "'current' or 'both'), or a similarity such as sq_euclidean or biased_dot")
    if sim.scale_invariant and isinstance(net.value_lagrangian, (Quadratic, Tanh)):
        return (f"gradient dynamics of {sim.name} cannot retrieve: the similarity ignores the scale of g, so its "
                f"gradient is orthogonal to g = {net.value_lagrangian.name}(v) and every cue decays to v = 0, "
                f"where the similarity is undefined; {offer}")
    if sim.name.startswith("euclidean:negative") and net.separation.sums_to_one:
        return (f"gradient dynamics of {sim.name} cannot retrieve: its gradient is a unit vector, so with "
                f"{net.separation.describe()} (activations summing to 1) the drive has norm <= 1 and v "
                f"cannot reach a stored pattern of larger norm; {offer}")
    return ""
