"""How a run shows its progress: a tqdm bar on a terminal, a line every few seconds in a log."""

from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm


class LogLines:
    """Progress for logs (standard error is not a terminal): a line every :data:`LOG_EVERY_S`
    seconds, where a terminal's bar would redraw in place."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0
        self.start = self.last = time.monotonic()

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= LOG_EVERY_S:
            self.last = now
            print(f"recall: {self.done}/{self.total} recording times, {now - self.start:.0f} s", file=sys.stderr,
                  flush=True)

    def __enter__(self) -> LogLines:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


LOG_EVERY_S = 5.0


def progress_bar(total: int, progress: bool | None) -> tqdm | LogLines:
    """A tqdm bar (``progress`` True, or None on a terminal), log lines (None elsewhere), or none."""
    if progress is None and not sys.stderr.isatty():
        return LogLines(total)
    return tqdm(total=total, desc="recall", unit="t", disable=None if progress is None else not progress, leave=False)
