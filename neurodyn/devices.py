"""The device a run asks for, checked before any work (a CUDA device on a CPU build of torch is
refused by name, not by an assertion deep inside torch)."""

from __future__ import annotations

import torch

from .errors import ResourceUnavailable


def check_device(spec: str | torch.device) -> torch.device:
    """``spec`` as a :class:`torch.device` that this process can use: ``ValueError`` for a name
    torch does not know, :class:`~neurodyn.errors.ResourceUnavailable` for one not present."""
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {spec!r}; expected cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ResourceUnavailable(f"device {spec!r} is not available ({why}); use cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ResourceUnavailable(f"device {spec!r} is not available: {torch.cuda.device_count()} CUDA "
                                      "device(s) are visible")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ResourceUnavailable(f"device {spec!r} is not available on this machine; use cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {spec!r} is not supported; expected cpu, cuda, cuda:N or mps")
    return device
