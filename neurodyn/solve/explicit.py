"""An explicit Runge-Kutta attempt per cue: dopri5 with error control, or a fixed-step method
(:mod:`neurodyn.solve.tableau`)."""

from __future__ import annotations

import torch

from .control import ErrorControl
from .status import WorkingBatch
from .step import CountedField, Frame, Trial
from .tableau import Coefficients, Tableau, combine, combine_per_cue, dense_weights


class ExplicitStep:
    """Attempts of ``tab`` on the working batch; ``control`` None: a fixed-step method, whose
    trials are accepted wherever the new state is finite; ``probe``: whether trials carry what
    the stiffness test needs (a cost of two element-wise passes)."""

    def __init__(self, tab: Tableau, field: CountedField, control: ErrorControl | None, probe: bool = False) -> None:
        self.tab, self.field, self.control, self.probe = tab, field, control, probe
        self._coef: Coefficients | None = None  # the tableau as tensors (built at the first step)

    def coefficients(self, y: torch.Tensor) -> Coefficients:
        """The tableau as tensors in the state's dtype and device (built once per run)."""
        if self._coef is None or self._coef.b.dtype != y.dtype or self._coef.b.device != y.device:
            self._coef = Coefficients.of(self.tab, y.dtype, y.device)
        return self._coef

    def attempt(self, w: WorkingBatch, frame: Frame) -> Trial:
        tab = self.tab
        h = frame.h
        hc = h[:, None].to(w.y.dtype)
        coef = self.coefficients(w.y)
        # The stages in one buffer, so that each combination sum_j a_ij k_j is one matrix product
        # (a Python sum of scaled tensors launched 11 kernels per dopri5 stage).
        k = w.y.new_empty(len(tab.c), *w.y.shape)
        k[0] = w.derivative() if tab.fsal else self.field(w.t, w.y, w.rows)
        y_prev = y_i = w.y
        for i in range(1, len(tab.c)):
            y_prev, y_i = y_i, torch.addcmul(w.y, hc, combine(coef.a[i], k[:i]))
            k[i] = self.field(torch.add(w.t, h, alpha=tab.c[i]), y_i, w.rows)
        y_new = y_i if tab.fsal else torch.addcmul(w.y, hc, combine(coef.b, k))
        if self.control is not None:
            err_norm = self.control.error_norm(hc * combine(coef.error, k), w.y, y_new)
            accept, h_next = self.control.next_step(w.h, frame.active, frame.lands, h, err_norm, tab.order)
        else:
            accept, h_next = frame.active & torch.isfinite(y_new).all(-1), w.h
        y = w.y

        def interpolate(theta: torch.Tensor) -> torch.Tensor:
            """Hairer's dense output of dopri5 at fractions ``theta`` (b, n, 1) of the step."""
            return combine_per_cue(y, dense_weights(coef, theta, hc), k)

        def new_state(theta: torch.Tensor) -> torch.Tensor:
            """No dense output (fixed steps land on the recording times): the new state."""
            return y_new[:, None].expand(*theta.shape[:2], -1)

        return Trial(accept, h_next, frame.t_new, y_new, k[-1] if tab.fsal else None,
                     len(tab.c) - (1 if tab.fsal else 0), interpolate if tab.dense is not None else new_state,
                     (k[-1] - k[-2], y_new - y_prev) if self.probe else None)
