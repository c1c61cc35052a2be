"""Recalling many cues through a network, with the continuous dynamics or the one-step update."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .checks import positive_int

if TYPE_CHECKING:
    from ..network import Network
    from ..solve import Solver

RECALL_MODES = ("dynamics", "one-step")


def default_probe_solver() -> Solver:
    """The solver the cue sweeps use unless given one: dopri5 with steady-state stopping."""
    from ..solve import Solver

    return Solver("dopri5", rtol=1e-5, atol=1e-7, steady_tol=1e-4)


def recall_cues(network: Network, cues: torch.Tensor, mode: str = "dynamics", *, duration: float = 20.0,
                solver: Solver | str | None = None, steps: int = 1, cue_mode: str = "initial",
                clamp: torch.Tensor | None = None, batch_size: int = 4096) -> torch.Tensor:
    """The recalled patterns (B, O) for cues (B, I), in float64 on the CPU.

    ``mode="dynamics"``: integrate the network (:func:`~neurodyn.simulation.simulate`) for
    ``duration`` and read out ``g`` at the end (``solver`` default :func:`default_probe_solver`;
    ``cue_mode`` and ``clamp`` as there). ``mode="one-step"``: the feedforward UHN update
    :meth:`~neurodyn.network.Network.retrieve`, iterated ``steps`` times. Cues go in batches of
    ``batch_size``."""
    if mode not in RECALL_MODES:
        raise ValueError(f"unknown mode {mode!r}; known: {', '.join(RECALL_MODES)}")
    batch_size = positive_int("batch_size", batch_size)
    q = network.check_queries(cues)
    if mode == "one-step":
        if clamp is not None:
            raise ValueError("clamping needs mode='dynamics': a one-step update has no units to hold")
        with torch.no_grad():
            out = [network.retrieve(q[i:i + batch_size], steps=steps) for i in range(0, len(q), batch_size)]
        return torch.cat(out).detach().to("cpu", torch.float64)
    from ..network import Cues
    from ..record import Monitor
    from ..simulation import simulate

    solver = default_probe_solver() if solver is None else solver
    mask = None if clamp is None else torch.as_tensor(clamp, dtype=torch.bool)
    if mask is not None and mask.ndim == 1:
        mask = mask.expand(q.shape)
    out = []
    for i in range(0, len(q), batch_size):
        part = None if mask is None else mask[i:i + batch_size]
        ds = simulate(network, Cues(q[i:i + batch_size], cue_mode, clamp=part), duration, method=solver,
                      monitor=Monitor(("speed",), n_times=21))
        out.append(torch.as_tensor(ds["recalled"].transpose("cue", "unit").values, dtype=torch.float64))
    return torch.cat(out)
