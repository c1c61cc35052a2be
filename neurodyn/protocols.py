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

from .analysis import MNIST_SIZE, UHN_THRESHOLD
from .recall import model_config, prepare_memory


def retrieval_scores(output: torch.Tensor, targets: torch.Tensor, threshold: float = UHN_THRESHOLD
                     ) -> dict[str, float]:
    """UHN appendix E scores of outputs (B, O) against their targets (B, O), row ``i`` of
    ``targets`` being cue ``i``'s.

    ``retrieval_rate``: fraction with ``sse <= threshold``, the paper's criterion as written (on
    every data set; stricter per value on larger images); ``retrieval_rate_scaled``: ``sse <=
    threshold * O / 784`` (the threshold per MNIST image rescaled to the pattern size, as
    :func:`neurodyn.analysis.retrieval` does by default); ``identity_rate``: fraction whose
    output is nearer its own target than any other stored one (the feature-space paper's
    "correctly retrieved"); ``mse``, ``sse_median``; ``mean_pattern_rate``: the
    ``retrieval_rate`` that the mean of the targets would score if output for every cue, the
    floor below which a rate says nothing about retrieval (the blurry mean digit is within 50 of
    many MNIST digits).
    """
    sse = ((output - targets) ** 2).sum(-1)
    mean_sse = ((targets.mean(0, keepdim=True) - targets) ** 2).sum(-1)
    nearest = torch.cdist(output.double(), targets.double()).argmin(dim=1)
    return {
        "retrieval_rate": float((sse <= threshold).double().mean()),
        "retrieval_rate_scaled": float((sse <= threshold * output.shape[1] / MNIST_SIZE).double().mean()),
        "identity_rate": float((nearest == torch.arange(len(output), device=nearest.device)).double().mean()),
        "mse": float(sse.mean() / output.shape[1]),
        "sse_median": float(sse.median()),
        "mean_pattern_rate": float((mean_sse <= threshold).double().mean()),
    }


def one_step_point(data: str = "mnist", n_memories: int = 100, corruption: str = "gaussian:0.5,absolute=true",
                   model: str = "uhn-manhattan", similarity: str | None = None, separation: str | None = None,
                   beta: float | None = None, degree: float | None = None, projection: str | None = None,
                   threshold: float = UHN_THRESHOLD, seed: int = 0, data_root: str | None = None,
                   device: str = "cpu", dtype: str = "float32") -> dict[str, float]:
    """One UHN retrieval point: store ``n_memories`` images chosen by ``seed``, corrupt each into
    its query, apply the one-step update (:meth:`Network.retrieve`) and score every output
    (:func:`retrieval_scores`). ``projection="bottom_half"`` is UHN appendix B's heteroassociative
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


one_step_point.outputs = ("retrieval_rate", "retrieval_rate_scaled", "identity_rate", "mse", "sse_median",
                          "mean_pattern_rate", "wall_time")
