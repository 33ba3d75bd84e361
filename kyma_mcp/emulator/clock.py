"""The emulator's clock: rate windows, image job lifecycles and the image concurrency cap read time here.

Real monotonic time by default. A test can stop it (`freeze`) and move it on (`advance`), so a
60 s rate window or a 30 s image job is checked without sleeping and without racing the machine.
"""

from __future__ import annotations

import math
import threading
import time


class Clock:
    """Monotonic seconds that a test may freeze and move forward; never backward. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        self._frozen_at: float | None = None

    def now(self) -> float:
        with self._lock:
            return self._frozen_at if self._frozen_at is not None else time.monotonic() + self._offset

    def freeze(self) -> None:
        """Stop the clock at the next whole second: `now()` stays there until `advance` or `resume`
        (a whole second, so that the steps a test advances by add up exactly)."""
        with self._lock:
            if self._frozen_at is None:
                self._frozen_at = float(math.ceil(time.monotonic() + self._offset))

    def advance(self, seconds: float) -> None:
        """Move the clock on by `seconds` (frozen or not).

        Raises:
            ValueError: `seconds` is negative (the clock never goes back).
        """
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at += seconds
            else:
                self._offset += seconds

    def resume(self) -> None:
        """Run again from where it stands (real time on top of everything it was advanced by)."""
        with self._lock:
            if self._frozen_at is not None:
                self._offset = self._frozen_at - time.monotonic()
                self._frozen_at = None
