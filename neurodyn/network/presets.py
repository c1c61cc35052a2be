"""Named models: the classical and modern Hopfield networks and the UHN variants as presets, and
models built from a declarative dict (a ``models/*.toml`` file's ``[model]`` table)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..lagrangians import Lagrangian, make_lagrangian
from .model import Network

PRESETS: dict[str, dict] = {
    # Classical continuous Hopfield net (Hopfield 1984): tanh value neurons, Hebbian coupling
    # M'M through a linear memory population, sign read-out. Bipolar (+-1) patterns.
    "hn": dict(similarity="dot", separation="identity", value_lagrangian="tanh", readout="sign"),
    # Sparse distributed memory (Kanerva 1988): memories within Hamming radius r = 8 of the cue
    # are activated (threshold at -r - 1/2 on the negative distance, so that d = r counts) and
    # averaged; majority read-out. With no memory in range the output is all zeros.
    "sdm": dict(similarity="hamming", separation="threshold:-8.5", dynamics="projection",
                normalize_separation=True, readout="binary"),
    # Dense associative memory (Krotov & Hopfield 2016), rectified polynomial of degree n.
    "dam": dict(similarity="dot", separation="polynomial:3", value_lagrangian="tanh", readout="sign"),
    # Modern continuous Hopfield net (Ramsauer et al. 2020), UHN eq. 5-7.
    "mchn": dict(similarity="dot", separation="softmax:1"),
    # MCHN with the Euclidean similarity as a gradient flow: g.m - |m|^2/2 ranks like -|g-m|^2/2
    # and has gradient m, so the dot product's bias towards bright patterns (UHN appendix E) goes.
    "mchn-l2": dict(similarity="biased_dot", separation="softmax:10"),
}
# UHN variants as the authors' code runs them (UHN-PROTOCOL.md): normalized inverse distances,
# normalized dot product, softmax separation normalized before projection.
# The authors' "Euclidean" is 1 / sum (q - m)^2, the squared distance (its 1/2 cancels here).
for _name, _sim in (("euclidean", "sq_euclidean"), ("manhattan", "manhattan"), ("kl", "kl"),
                    ("reverse_kl", "reverse_kl"), ("js", "js")):
    PRESETS[f"uhn-{_name}"] = dict(similarity=f"{_sim}:inverse,normalized", separation="softmax:1000",
                                   dynamics="projection", normalize_separation=True)
PRESETS["uhn-dot"] = dict(similarity="normalized_dot", separation="softmax:1000", dynamics="projection",
                          normalize_separation=True)

# The data each preset is made for (neurodyn.names.PRESET_DATA), where it is not the CLI's
# default (digits): the classical nets store uncorrelated bipolar patterns (their capacity
# analyses assume them). On digits, which share their background, they fall into spurious
# mixtures (docs/user-guide.md, "Presets").

_PARAM_NAMES = {"beta": "softmax", "degree": "polynomial", "k": "topk", "theta": "threshold"}


def from_preset(preset: str, memories: torch.Tensor, projection: torch.Tensor | None = None,
                **overrides) -> Network:
    """Build a :class:`Network` from a preset name in :data:`PRESETS`, with keyword overrides.

    ``beta=``, ``degree=``, ``k=`` and ``theta=`` set the preset's separation parameter.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; known: {', '.join(PRESETS)}")
    config = {**PRESETS[preset], **{k: v for k, v in overrides.items() if k not in _PARAM_NAMES}}
    for param, family in _PARAM_NAMES.items():
        if overrides.get(param) is None:
            continue
        sep = config["separation"]
        sep_name = sep.split(":")[0] if isinstance(sep, str) else sep.name
        if sep_name != family:
            raise ValueError(f"{param}= applies to a {family} separation, but preset {preset!r} uses {sep_name!r}")
        config["separation"] = make_lagrangian(family, **{param: overrides[param]})
    config.setdefault("name", preset)
    unknown = set(config) - set(Network.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown model keys {sorted(unknown)}; known: {sorted(Network.__dataclass_fields__)} "
                         f"and the separation parameters {sorted(_PARAM_NAMES)}")
    return Network(memories, projection=projection, **config)


def from_settings(settings: Mapping[str, Any], memories: torch.Tensor, projection: torch.Tensor | None = None
                  ) -> Network:
    """The network that :meth:`Network.settings` describes, storing ``memories`` (and
    ``projection``); values may be numpy scalars (as read from a file). A ``ValueError`` names
    what does not fit: a size other than the memories', a similarity or Lagrangian the library
    does not know by name (a user's own: rebuild the network yourself)."""
    s = {key: value.item() if hasattr(value, "item") else value for key, value in settings.items()}
    if (s.get("n_memories"), s.get("n_features")) != tuple(memories.shape):
        raise ValueError(f"the model stores {s.get('n_memories')} x {s.get('n_features')} memories, got "
                         f"{tuple(memories.shape)}")
    if bool(s.get("heteroassociative")) != (projection is not None):
        raise ValueError("the model is heteroassociative: give its projection" if projection is None else
                         "the model is autoassociative: it has no projection")

    def lagrangian(role: str) -> Lagrangian:
        prefix = role + "_"
        return make_lagrangian(str(s[role]), **{k[len(prefix):]: v for k, v in s.items() if k.startswith(prefix)})

    try:
        return Network(memories, similarity=str(s["similarity"]), separation=lagrangian("separation"),
                       value_lagrangian=lagrangian("value_lagrangian"), projection=projection,
                       dynamics=str(s["dynamics"]), tau_v=float(s["tau_v"]),  # type: ignore[arg-type]
                       tau_h=None if s.get("tau_h") is None else float(s["tau_h"]),
                       normalize_separation=bool(s["normalize_separation"]), readout=str(s["readout"]),
                       name=str(s.get("name", "custom")))
    except KeyError as err:
        raise ValueError(f"the model settings lack {err.args[0]!r}") from None


def from_config(config: dict, memories: torch.Tensor, projection: torch.Tensor | None = None) -> Network:
    """Build a network from a declarative model dict (a ``models/*.toml`` file's ``[model]`` table).

    ``preset`` names a base preset; other keys are :class:`Network` fields and, with a preset,
    the separation parameters ``beta``, ``degree``, ``k`` and ``theta``.
    """
    config = dict(config)
    preset = config.pop("preset", None)
    if preset is not None:
        return from_preset(preset, memories, projection, **config)
    known = set(Network.__dataclass_fields__) - {"memories", "projection"}
    unknown = set(config) - known
    if unknown:
        hint = " (separation parameters need a preset, or go in the spec: separation = 'softmax:3')" \
            if unknown & set(_PARAM_NAMES) else ""
        raise ValueError(f"unknown model keys {sorted(unknown)}; known: {sorted(known)}{hint}")
    return Network(memories, projection=projection, **config)

