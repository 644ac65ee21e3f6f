"""The service clock: wall time, movable forward or set in test mode."""

from __future__ import annotations

import time


class Clock:
    """Unix-seconds clock with an offset, so tests can move time without sleeping."""

    def __init__(self) -> None:
        self._offset = 0.0

    def now(self) -> int:
        return int(time.time() + self._offset)

    def now_float(self) -> float:
        return time.time() + self._offset

    def set(self, now: int) -> int:
        self._offset = now - time.time()
        return self.now()

    def advance(self, seconds: int) -> int:
        self._offset += seconds
        return self.now()
