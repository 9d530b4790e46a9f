"""Fault injection: a seeded per-request schedule plus a queue of forced faults for deterministic tests.

The faults (at most one per API request, drawn after credentials and the rate limiter):

- `throttle`, `throttle429`, `throttle503`, `throttle400`: a throttle answer in the sandbox's mode, or in the
  named form (429 with `Retry-After: n Seconds`, 503 plain text, 400 error model), instead of the response;
- `error500`: a 500 error model; `error503`: a 503 HTML outage page;
- `slow`: the normal response after `SandboxOptions.slow_seconds`;
- `truncated`: the first half of a normal 200 body;
- `error200`: an error model inside HTTP 200; `html200`: an HTML page with status 200;
- `modify_during_paging`: a list request moves a few matching records' modified stamps to now (as a user
  editing them while pages are walked would), then answers;
- `hard_delete`: one draft sale is deleted outright before the request is served;
- `proxy404`: a gateway's bare `404 Not Found` (text/plain), whatever was asked;
- `empty200`: HTTP 200 with an empty body;
- `empty_page`: a list request answers a well-formed empty page (`{"Total": 0, "Page": n, <list>: []}`);
- `future_stamp`: before a list request is served, one record of that list is edited with a stamp a year ahead
  of the server's clock (an import with a wrong clock);
- `clock_step`: the server's clock steps back by `gap` seconds (default `CLOCK_STEP_SECONDS`) before the request
  is served; stamps and the `Date` header follow it;
- `drip`: the normal response, its head at once and its body one byte at a time with `gap_seconds` between
  bytes (default `DRIP_GAP_SECONDS`; a forced drip may name its own, `POST /sandbox/faults/next
  {"fault": "drip", "gap": 0.5}`): a server that never stalls long enough for a read timeout.

Set a schedule with `SandboxOptions.faults` or `POST /sandbox/faults {"spec": "error500=0.05,..."}`; force the
next request(s) with `POST /sandbox/faults/next {"fault": name, "count": n}`.
"""

from __future__ import annotations

import math
import random
import threading
from collections import deque
from dataclasses import dataclass

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
    "drip",
    "proxy404",
    "empty200",
    "empty_page",
    "future_stamp",
    "clock_step",
)
DRIP_GAP_SECONDS = 10.0
CLOCK_STEP_SECONDS = 3600.0
_WITH_GAP = {"drip": DRIP_GAP_SECONDS, "clock_step": CLOCK_STEP_SECONDS}


@dataclass(frozen=True)
class Fault:
    """One drawn fault; `gap_seconds` is the pause between body bytes of a `drip`, or how far back a
    `clock_step` moves the clock."""

    name: str
    gap_seconds: float = DRIP_GAP_SECONDS


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
        self._forced: deque[Fault] = deque()
        self.replace(spec)

    def replace(self, spec: str) -> None:
        schedule = parse_fault_spec(spec)
        with self._lock:
            self._schedule = schedule
            self._rng = random.Random(self._seed)

    def force(self, fault: str, count: int = 1, gap_seconds: float | None = None) -> None:
        if fault not in FAULT_NAMES:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULT_NAMES)}")
        if gap_seconds is None:
            forced = Fault(fault, _WITH_GAP.get(fault, DRIP_GAP_SECONDS))
        elif fault not in _WITH_GAP:
            raise ValueError(f"a gap applies to the {' and '.join(_WITH_GAP)} faults only, not to {fault!r}")
        elif not (math.isfinite(gap_seconds) and gap_seconds >= 0):
            raise ValueError(f"gap must be a number of seconds >= 0, not {gap_seconds!r}")
        else:
            forced = Fault(fault, gap_seconds)
        with self._lock:
            self._forced.extend([forced] * count)

    def next_fault(self) -> Fault | None:
        """The fault for the next request, if any."""
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
                    return Fault(name, _WITH_GAP.get(name, DRIP_GAP_SECONDS))
            return None

    def draw(self) -> str | None:
        """The name of the next request's fault, if any."""
        fault = self.next_fault()
        return None if fault is None else fault.name

    @property
    def spec(self) -> str:
        return ",".join(f"{n}={p:g}" for n, p in self._schedule)
