"""Point functions for the sweep tests (imported by Dask workers through PYTHONPATH)."""

import os
import time

from neurodyn.scale.points import point_function


def _log_and_wait(entry: str, delay: float) -> None:
    """Append ``entry`` to $SWEEP_TEST_LOG (when set: which points were computed), then sleep."""
    log = os.environ.get("SWEEP_TEST_LOG")
    if log:
        with open(log, "a") as fh:
            fh.write(f"{entry}\n")
    time.sleep(delay)


@point_function("y", "x_plus_seed")
def slow_square(x: float, seed: int = 0, delay: float = 0.0, fail_at: float = -1.0) -> dict[str, float]:
    """x^2 + seed after ``delay`` seconds; logs each computation to $SWEEP_TEST_LOG; fails at ``fail_at``."""
    _log_and_wait(f"{x},{seed}", delay)
    if x == fail_at:
        raise RuntimeError(f"point x={x} fails on purpose")
    return {"y": x * x + seed, "x_plus_seed": x + seed}


@point_function("on_gpu_worker")
def worker_name(x: float) -> dict[str, float]:
    """1 where the point ran on the worker named "gpu-worker" (the one with the GPU resource)."""
    from distributed import get_worker

    return {"on_gpu_worker": float(get_worker().name == "gpu-worker")}


@point_function("y")
def dies_at(x: float, die_at: float = -1.0, delay: float = 0.0) -> dict[str, float]:
    """x^2 after ``delay`` seconds; at ``die_at`` the process exits at once (``os._exit``), as a worker
    killed by a segfault or the OOM killer would; logs each computation to $SWEEP_TEST_LOG."""
    _log_and_wait(f"{x}", delay)
    if x == die_at:
        os._exit(1)
    return {"y": x * x}
