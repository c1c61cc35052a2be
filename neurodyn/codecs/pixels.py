"""The identity codec: raw pixels as codes, the baseline every encoder is compared with."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from neurodyn.codecs.base import Codec


class Pixels(Codec):
    """Codes are the images themselves; decoding clamps to [0, 1]. Any image shape is accepted."""

    def __init__(self, stimulus_shape: Sequence[int] | None = None) -> None:
        super().__init__("pixels", stimulus_shape, stimulus_shape)

    def code_shape_for(self, stimulus_shape: Sequence[int] | None = None) -> tuple[int, ...]:
        if stimulus_shape is None:
            return super().code_shape_for()
        self._check_stimulus_shape(tuple(stimulus_shape))
        return tuple(stimulus_shape)

    def _encode(self, x: Tensor) -> Tensor:
        return x.clone()

    def _decode(self, z: Tensor) -> Tensor:
        return z.clamp(0.0, 1.0)


def pixels(root: object = None, stimulus_shape: Sequence[int] | None = None) -> Pixels:
    """Factory for :func:`neurodyn.codecs.load_codec` (``root`` is unused)."""
    return Pixels(stimulus_shape)
