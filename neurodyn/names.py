"""The names the library answers to, in one module that imports nothing heavy (no torch).

The command line lists them in its help and checks its options against them without loading the
library (`neurodyn --help` answers at once); each stage takes its own names from here, so a name
is written once. Where a stage keeps a table keyed by these names (loaders, corruptions),
``tests/test_names.py`` checks the keys are these names.
"""

from __future__ import annotations

#: Solver methods: adaptive, then fixed-step (:class:`neurodyn.solve.Solver`).
ADAPTIVE_METHODS = ("auto", "dopri5", "rosenbrock23", "dopri8", "bosh3", "adaptive_heun", "fehlberg2")
FIXED_METHODS = ("euler", "midpoint", "rk4")
METHODS = ADAPTIVE_METHODS + FIXED_METHODS
ENGINES = ("auto", "per-cue", "torchdiffeq")

#: Spiking memory populations (:class:`neurodyn.spiking.SpikingMemory`): neuron models and paths.
NEURON_MODELS = ("poisson", "lif", "rate")
SPIKING_PATHS = ("auto", "dense", "memory")

#: What a monitor can record (:class:`neurodyn.record.Monitor`).
VARIABLES = ("v", "g", "h", "f", "energy", "overlap", "speed", "spikes", "rate")
#: What a recall through a codec records by default: ``f`` of the most active memories shows
#: mixtures on the way.
ENCODED_RECORD = ("v", "energy", "speed", "f")
ENCODED_TOP_K = 8

#: Named models (:data:`neurodyn.network.PRESETS`) and the data each is made for where it is
#: not the command line's default (digits): the classical nets store uncorrelated bipolar patterns.
PRESET_NAMES = ("hn", "sdm", "dam", "mchn", "mchn-l2", "uhn-euclidean", "uhn-manhattan", "uhn-kl", "uhn-reverse_kl",
                "uhn-js", "uhn-dot")
PRESET_DATA = {"hn": "random_patterns", "dam": "random_patterns"}

#: Precisions of pixel runs.
DTYPES = ("float32", "float64")

#: Named data sets (:func:`neurodyn.data.load_dataset`) and corruptions (:mod:`neurodyn.data.corruptions`).
DATASETS = ("digits", "mnist", "cifar10", "tinyimagenet", "coco", "random_patterns")
CORRUPTIONS = ("none", "gaussian", "mask", "mask_random", "inpaint", "salt_pepper", "crop", "color", "rotate")
#: The environment variable that names the data root.
DATA_ENV = "NEURODYN_DATA"

#: UHN appendix E: a sum of squared errors below 50 (per 784 pixels) counts as recalled.
UHN_THRESHOLD = 50.0
