"""Analyses of a recorded run, by topic (definitions and examples: docs/analysis.md):

- :mod:`.energy`: the Lyapunov check; the energy of noisy runs across trials.
- :mod:`.retrieval`: the UHN criterion, the nearest stored pattern, what kind of state each cue
  ended in.
- :mod:`.trajectories`: recall time and metastability along the trajectories.
- :mod:`.compare`: similarities between sets of patterns.
- :mod:`.spikes`: spike-train statistics of a spiking run.
- :mod:`.summary`: a few lines on a run for the command line.

The studies that probe a network with families of cues (basins, pattern completion and
separation, separability) are in :mod:`neurodyn.probes`.
"""

from .compare import (
    SIMILARITY_METRICS,
    checked_matrix,
    paired_similarity,
    prepared,
    similarity_matrix,
)
from .energy import (
    LyapunovReport,
    lyapunov_check,
    trial_energy,
)
from .retrieval import (
    MNIST_SIZE,
    UHN_THRESHOLD,
    final_states,
    mixture_time,
    nearest_pattern,
    participation_over_time,
    participation_ratio,
    retrieval,
    retrieval_scores,
    sse_limit,
)
from .spikes import (
    SPIKING_UNIT,
    SpikeEvents,
    count_correlations,
    fano_factor,
    firing_rates,
    isi_cv,
    psth,
    spike_counts,
    spike_events,
    spike_train_statistics,
    unit_subset,
)
from .summary import (
    summarize,
)
from .trajectories import (
    activation_entropy,
    metastability,
    mixture_episodes,
    recall_time,
)

__all__ = [
    "activation_entropy",
    "checked_matrix",
    "count_correlations",
    "fano_factor",
    "final_states",
    "firing_rates",
    "isi_cv",
    "lyapunov_check",
    "LyapunovReport",
    "metastability",
    "mixture_episodes",
    "mixture_time",
    "MNIST_SIZE",
    "nearest_pattern",
    "paired_similarity",
    "participation_over_time",
    "participation_ratio",
    "prepared",
    "psth",
    "recall_time",
    "retrieval",
    "retrieval_scores",
    "similarity_matrix",
    "SIMILARITY_METRICS",
    "spike_counts",
    "spike_events",
    "spike_train_statistics",
    "sse_limit",
    "SpikeEvents",
    "SPIKING_UNIT",
    "summarize",
    "trial_energy",
    "UHN_THRESHOLD",
    "unit_subset",
]
