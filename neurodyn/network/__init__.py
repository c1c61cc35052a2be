"""The network stage: value and memory populations coupled through stored patterns.

One concept per module:

- :mod:`~neurodyn.network.model`: :class:`Network`, the model (energy, velocity, retrieval);
- :mod:`~neurodyn.network.cue`: :class:`Cue` and :class:`State`, queries turned into cues;
- :mod:`~neurodyn.network.timecourse`: :class:`Timecourse`, an input current that varies in time;
- :mod:`~neurodyn.network.theory`: what theory says before a run (gradient flow, Lyapunov
  obstacles, retrieval obstacles, the smoothed Manhattan model);
- :mod:`~neurodyn.network.presets`: the named models and declarative model dicts;
- :mod:`~neurodyn.network.tiled`: one pass over the memory bank in tiles.
"""

from ..names import PRESET_DATA
from .cue import Cue, Cues, State, check_finite, check_targets
from .model import READOUTS, Dynamics, Network
from .presets import PRESETS, from_config, from_preset, from_settings
from .theory import MANHATTAN_SMOOTHING
from .timecourse import Timecourse

__all__ = ["Cue", "Cues", "Dynamics", "MANHATTAN_SMOOTHING", "Network", "PRESETS", "PRESET_DATA", "READOUTS", "State",
           "Timecourse", "check_finite", "check_targets", "from_config", "from_preset", "from_settings"]
