"""Fault injection: a seeded per-request schedule plus a queue of forced faults for deterministic tests."""

from __future__ import annotations

import random
import threading
from collections import deque

FAULT_NAMES = (
    "throttle",
    "throttle429",
    "throttle503",
    "throttle400",
    "error500",
    "error503",
    "slow",
    "truncated",
    "error200",
    "html200",
    "modify_during_paging",
    "hard_delete",
)


def parse_fault_spec(spec: str) -> list[tuple[str, float]]:
    """`"throttle=0.05,error500=0.02"` → [("throttle", 0.05), ("error500", 0.02)]; ValueError names the bad token."""
    result: list[tuple[str, float]] = []
    for raw in spec.split(","):
        token = raw.strip()
        if not token:
            continue
        name, sep, value = token.partition("=")
        name = name.strip().lower()
        if not sep or name not in FAULT_NAMES:
            raise ValueError(f"bad fault token {token!r}: expected name=probability with name in {FAULT_NAMES}")
        try:
            probability = float(value)
        except ValueError:
            raise ValueError(f"bad fault token {token!r}: probability is not a number") from None
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"bad fault token {token!r}: probability must be within 0..1")
        result.append((name, probability))
    if sum(p for _, p in result) > 1.0 + 1e-9:
        raise ValueError(f"bad fault spec {spec!r}: probabilities add up to more than 1")
    return result


class FaultSchedule:
    """Draws at most one fault per API request.

    One random number is drawn per request from `random.Random(seed)` whatever the outcome, so the same sequence
    of requests always meets the same faults. Forced faults are served first and do not consume a draw.
    """

    def __init__(self, spec: str = "", seed: int = 42) -> None:
        self._seed = seed
        self._lock = threading.Lock()
        self._forced: deque[str] = deque()
        self.replace(spec)

    def replace(self, spec: str) -> None:
        schedule = parse_fault_spec(spec)
        with self._lock:
            self._schedule = schedule
            self._rng = random.Random(self._seed)

    def force(self, fault: str, count: int = 1) -> None:
        if fault not in FAULT_NAMES:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULT_NAMES)}")
        with self._lock:
            self._forced.extend([fault] * count)

    def draw(self) -> str | None:
        with self._lock:
            if self._forced:
                return self._forced.popleft()
            if not self._schedule:
                return None
            u = self._rng.random()
            cumulative = 0.0
            for name, probability in self._schedule:
                cumulative += probability
                if u < cumulative:
                    return name
            return None

    @property
    def spec(self) -> str:
        return ",".join(f"{n}={p:g}" for n, p in self._schedule)
