"""Deprecated: moved to :mod:`neurodyn.scale.sweep` (issue 16); its names resolve from there for one release."""

from ._moved import moved

__getattr__ = moved(__name__, "neurodyn.scale.sweep")
