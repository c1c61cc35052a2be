"""Reading weight files and checkpoints defensively, for every codec: a file that is not what it
should be is an :class:`~neurodyn.errors.InputFileError` that names it, says what is wrong
(truncated or not a PyTorch file; missing or unexpected keys; a parameter of the wrong shape)
and how to get a good one (the ``remedy`` each codec gives), never a traceback from inside
torch.

- :func:`read_weights`: ``torch.load(path, map_location="cpu", weights_only=True)``.
- :func:`state_dict_in`: the state dict inside what was read (or at one of its keys).
- :func:`load_state`: a state dict into a module, strictly, after checking its keys and shapes.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from neurodyn.errors import InputFileError

_SHOWN = 5  # keys listed in a message; the rest are counted


def read_weights(path: Path, remedy: str) -> Any:
    """What the PyTorch file ``path`` holds, loaded on the CPU with ``weights_only=True`` (plain
    containers of tensors and numbers; no code is unpickled).

    Raises:
        InputFileError: the file is empty, truncated, damaged, not a PyTorch file, or holds
            Python objects other than tensors and plain containers.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "Unsupported global" in str(err):
            problem = ("holds Python objects other than tensors, which are not unpickled "
                       "(torch.load(weights_only=True))")
        else:
            problem = "is damaged or not a PyTorch checkpoint (it cannot be unpickled)"
    except EOFError:
        problem = "is empty or truncated (it ends before its data)"
    except (PermissionError, FileNotFoundError, IsADirectoryError):
        raise
    except RuntimeError as err:  # the zip reader's
        problem = f"is truncated or not a PyTorch checkpoint ({str(err).split('. ')[0]})"
    except OSError:  # the zip reader's EINVAL on some cuts
        problem = "is truncated or not a PyTorch checkpoint (its zip archive cannot be read)"
    except (KeyError, ValueError, IndexError, TypeError, AttributeError, UnicodeDecodeError) as err:
        problem = f"is damaged or not a PyTorch checkpoint ({type(err).__name__}: {err})"
    raise InputFileError(path, problem, remedy) from None


def state_dict_in(saved: Any, path: Path, remedy: str, key: str | None = None) -> dict[str, Tensor]:
    """The state dict (parameter name -> tensor) that ``saved`` is, or that it holds at ``key``.

    Raises:
        InputFileError: ``saved`` is not a dict (or has no ``key``), or holds something other
            than tensors under string names.
    """
    if key is not None:
        if not isinstance(saved, Mapping) or key not in saved:
            found = ", ".join(map(repr, list(saved)[:_SHOWN])) if isinstance(saved, Mapping) else ""
            raise InputFileError(path, f"holds no {key!r} entry (found {found or _kind(saved)})", remedy)
        saved = saved[key]
    if not isinstance(saved, Mapping):
        raise InputFileError(path, f"holds {_kind(saved)}, not a state dict (names -> tensors)", remedy)
    odd = [name for name, value in saved.items() if not isinstance(name, str) or not isinstance(value, Tensor)]
    if odd:
        raise InputFileError(path, f"is not a state dict: {_listed(odd)} not tensors under names", remedy)
    return dict(saved)


def load_state(module: nn.Module, state: Mapping[str, Tensor], path: Path, remedy: str,
               what: str) -> None:
    """Load ``state`` (read from ``path``) into ``module`` (``what`` it is, for messages) as
    strictly as ``module.load_state_dict`` does (BatchNorm fills in a missing
    ``num_batches_tracked``, as it does there).

    Raises:
        InputFileError: a parameter has another shape, or keys are missing or unexpected.
    """
    expected = module.state_dict()
    shapes = [key for key, value in expected.items() if key in state and state[key].shape != value.shape]
    if shapes:
        key, more = shapes[0], len(shapes) - 1
        others = f" (and {more} more parameters of other shapes)" if more else ""
        raise InputFileError(path, f"does not fit the {what}: parameter {key} has shape "
                             f"{tuple(state[key].shape)} in the file but {tuple(expected[key].shape)} "
                             f"in the {what}{others}", remedy)
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise InputFileError(path, f"does not load into the {what} ({str(err).strip()})", remedy) from None
    problems = [f"{kind} keys {_listed(keys)}" for kind, keys in
                (("missing", result.missing_keys), ("unexpected", result.unexpected_keys)) if keys]
    if problems:
        raise InputFileError(path, f"does not fit the {what}: " + "; ".join(problems), remedy)


def _listed(keys: list[str]) -> str:
    """At most :data:`_SHOWN` keys, then how many more."""
    shown = ", ".join(map(str, keys[:_SHOWN]))
    return shown + (f" and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else "")


def _kind(value: object) -> str:
    """A short description of what a file held, for messages."""
    if isinstance(value, Tensor):
        return f"a single tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"
