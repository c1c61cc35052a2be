"""What a sweep calls at each point: a :class:`PointFunction`, declared with :func:`point_function`
(a module of its own, so that declaring one loads no sweep machinery)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, cast


class PointFunction(Protocol):
    """A sweep's point function: the point's parameters in, the named scalars ``outputs`` out."""

    outputs: tuple[str, ...]

    def __call__(self, **params: Any) -> dict[str, float]: ...


def point_function(*outputs: str) -> Callable[[Callable[..., dict[str, float]]], PointFunction]:
    """Declare a sweep point function and the scalars it returns.

    For example::

        @point_function("retrieval_rate", "mse")
        def my_point(n_memories: int, seed: int = 0) -> dict[str, float]: ...
    """
    if not outputs:
        raise ValueError("a point function returns at least one named output")

    def declare(fn: Callable[..., dict[str, float]]) -> PointFunction:
        fn.outputs = tuple(outputs)  # type: ignore[attr-defined]
        return cast(PointFunction, fn)

    return declare
