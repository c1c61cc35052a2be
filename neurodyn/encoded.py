"""Deprecated: moved to :mod:`neurodyn.memory.encoded` (issue 16); its names resolve from there for one release."""

from ._moved import moved

__getattr__ = moved(__name__, "neurodyn.memory.encoded")
