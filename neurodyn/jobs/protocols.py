"""The papers' experimental protocols as sweep point functions (one grid point -> a few scalars).

Each function here runs one point of a paper's experiment grid and returns named scalars, so
that the experiments under ``experiments/`` run their grids through :mod:`neurodyn.sweep` (one
mechanism for paper reproductions and users' sweeps; ``outputs`` names what each returns).

:func:`one_step_point` is the UHN protocol (``UHN-PROTOCOL.md``): the single feedforward update
``z = P' sep(sim(M, q))`` (UHN eq. 1) scored by the sum of squared errors against the stored
pattern. The continuous-time recall of the same networks is the sweep's ``recall`` point.
"""

from __future__ import annotations

import time

import torch

from ..analysis import UHN_THRESHOLD, retrieval_scores
from ..scale.points import point_function
from .recall import model_config, prepare_memory


@point_function("retrieval_rate", "retrieval_rate_scaled", "identity_rate", "mse", "sse_median", "mean_pattern_rate",
                "wall_time")
def one_step_point(data: str = "mnist", n_memories: int = 100, corruption: str = "gaussian:0.5,absolute=true",
                   model: str = "uhn-manhattan", similarity: str | None = None, separation: str | None = None,
                   beta: float | None = None, degree: float | None = None, projection: str | None = None,
                   threshold: float = UHN_THRESHOLD, seed: int = 0, data_root: str | None = None,
                   device: str = "cpu", dtype: str = "float32") -> dict[str, float]:
    """One UHN retrieval point: store ``n_memories`` images chosen by ``seed``, corrupt each into
    its query, apply the one-step update (:meth:`Network.retrieve`) and score every output
    (:func:`neurodyn.analysis.retrieval_scores`). ``projection="bottom_half"`` is UHN appendix B's heteroassociative
    task (recall the bottom half); ``wall_time`` is the update's time in seconds."""
    chosen, net, stored, queries = prepare_memory(
        data, n_memories, corruption, model_config(model, similarity=similarity, separation=separation,
                                                   beta=beta, degree=degree),
        projection=projection, seed=seed, data_root=data_root, device=device, dtype=dtype)
    start = time.perf_counter()
    with torch.no_grad():
        output = net.retrieve(queries)
    wall = time.perf_counter() - start
    return {**retrieval_scores(output, net.P, threshold), "wall_time": wall}


@point_function("retrieval_rate", "identity_rate", "rate_retrieval_rate", "recalled_fraction", "recall_time",
                "distance_to_rate", "population_rate", "wall_time")
def spiking_point(data: str = "mnist", n_memories: int = 100, corruption: str = "mask:0.25,side=bottom",
                  model: str = "mchn-l2", beta: float | None = None, neuron: str = "poisson",
                  r_max: float = 400.0, dt: float = 0.1, tau_s: float = 5.0, tau_v: float = 10.0,
                  duration: float = 100.0, n_times: int = 51, recall_overlap: float = 0.9,
                  threshold: float = UHN_THRESHOLD, seed: int = 0, data_root: str | None = None,
                  device: str = "cpu") -> dict[str, float]:
    """One point of the spiking-convergence study: the same stored images and cues recalled by a
    spiking memory population and by its mean field (the rate model with the synaptic filter,
    stepped with the same ``dt``), both for ``duration`` ms.

    Outputs: ``retrieval_rate`` and ``identity_rate`` of the spiking run and
    ``rate_retrieval_rate`` of the mean field (:func:`neurodyn.analysis.retrieval_scores` on ``v`` at the end);
    ``recalled_fraction`` and ``recall_time`` (median over the recalled cues, ms) from
    :func:`neurodyn.analysis.recall_time`; ``distance_to_rate``: the RMS over recorded times and
    cues of ``|v_spiking - v_rate| / |v_rate|``; ``population_rate`` (Hz, mean over cues and
    time); ``wall_time`` of the spiking run (s).
    """
    from ..analysis import recall_time
    from ..network import Cues
    from ..record import Monitor
    from ..simulation import simulate
    from ..spiking import make_spiking

    _, net, stored, queries = prepare_memory(data, n_memories, corruption, model_config(model, beta=beta, tau_v=tau_v),
                                             seed=seed, data_root=data_root, device=device)
    params = {"r_max": r_max} if neuron == "poisson" else {}
    spiking = make_spiking(neuron, dt=dt, tau_s=tau_s, **params)
    mean_field = make_spiking("rate", dt=dt, tau_s=tau_s)
    monitor = Monitor(("v", "spikes"), n_times=n_times, recall_overlap=recall_overlap)
    run = simulate(net, Cues(queries, targets=stored), duration, method=spiking,
                   monitor=monitor, seed=seed)
    rate = simulate(net, queries, duration, method=mean_field, monitor=Monitor(("v",), n_times=n_times))
    v, v_rate = (torch.as_tensor(ds["v"].transpose("time", "cue", "unit").values) for ds in (run, rate))
    relative = (v - v_rate).norm(dim=-1) / v_rate.norm(dim=-1).clamp_min(1e-12)
    times = recall_time(run, recall_overlap).values
    recalled = times[~torch.isnan(torch.as_tensor(times)).numpy()]
    scores = retrieval_scores(v[-1], stored, threshold)
    return {
        "retrieval_rate": scores["retrieval_rate"],
        "identity_rate": scores["identity_rate"],
        "rate_retrieval_rate": retrieval_scores(v_rate[-1], stored, threshold)["retrieval_rate"],
        "recalled_fraction": len(recalled) / len(times),
        "recall_time": float(torch.as_tensor(recalled).median()) if len(recalled) else float("nan"),
        "distance_to_rate": float(relative.pow(2).mean().sqrt()),
        "population_rate": float(run["population_rate"].mean()),
        "wall_time": float(run.attrs["wall_time_s"]),
    }


