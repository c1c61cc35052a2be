"""Probing a network with families of cues, the standard hippocampal (CA3) analyses: basins of
attraction, pattern completion curves (recall vs the fraction of the cue given), pattern
separation curves (output overlap vs input overlap of pairs of cues), and the separability of
cues and memories (self vs cross similarity, HEN fig. 3). Each recalls its cues with the
continuous dynamics or the one-step update (:func:`recall_cues`) and returns a Dataset with
named dimensions. Definitions and examples: docs/analysis.md."""

from .basins import PERTURBATIONS, basin_of_attraction
from .completion import pattern_completion
from .recall import RECALL_MODES, default_probe_solver, recall_cues
from .separability import separability
from .separation import pattern_separation

__all__ = ["PERTURBATIONS", "RECALL_MODES", "basin_of_attraction", "default_probe_solver", "pattern_completion",
           "pattern_separation", "recall_cues", "separability"]
