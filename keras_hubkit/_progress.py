"""A one-line download progress bar (bytes, rate) on stderr."""

import os
import sys
import time

from keras_hubkit import constants


def progress_enabled(progress) -> bool:
    """Whether to draw a progress bar.

    `progress` if given, else on when stderr is a terminal (and
    `HUBKIT_PROGRESS` is not "0").
    """
    if progress is not None:
        return bool(progress)
    if os.environ.get(constants.PROGRESS_ENV, "").strip() == "0":
        return False
    return constants.env_flag(constants.PROGRESS_ENV) or sys.stderr.isatty()


class ByteProgress:
    """Counts bytes and redraws a line at most ten times a second."""

    def __init__(self, label, total=None, enabled=True, stream=None):
        self.label = label
        self.total = total
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.done = 0
        self._start = time.monotonic()
        self._last = 0.0

    def update(self, n):
        self.done += n
        now = time.monotonic()
        if self.enabled and now - self._last >= 0.1:
            self._last = now
            self._draw(now)

    def close(self):
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self, now):
        rate = self.done / max(now - self._start, 1e-6)
        if self.total:
            share = min(self.done / self.total, 1.0)
            bar = "#" * int(share * 20)
            amount = f"[{bar:<20}] {_mb(self.done)} of {_mb(self.total)}"
        else:
            amount = _mb(self.done)
        self.stream.write(f"\r{self.label}: {amount} {_mb(rate)}/s ")
        self.stream.flush()


def _mb(n):
    return f"{n / 1e6:.1f} MB"
