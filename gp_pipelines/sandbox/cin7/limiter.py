"""Rolling-window rate limiter, one window per application key (the documented scope of Cin7's limit)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_seconds: int = 0  # whole seconds until the oldest call leaves the window, rounded up


class RollingWindowLimiter:
    """`limit` calls per rolling `window_seconds`, counted per key.

    A refused (throttled) call is not recorded: the field report shows access returning once older calls
    leave the window, which only happens if the refusals themselves do not keep the window full.
    """

    def __init__(self, limit: int, window_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window_seconds
        self._clock = clock
        self._calls: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> Decision:
        now = self._clock()
        with self._lock:
            calls = self._calls.setdefault(key, deque())
            while calls and calls[0] <= now - self.window:
                calls.popleft()
            if len(calls) >= self.limit:
                wait = calls[0] + self.window - now
                return Decision(False, max(1, math.ceil(wait)))
            calls.append(now)
            return Decision(True)

    def in_window(self, key: str) -> int:
        now = self._clock()
        with self._lock:
            return sum(1 for t in self._calls.get(key, ()) if t > now - self.window)
