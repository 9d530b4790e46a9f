"""Rate limiters for Cin7 Core application keys: a rolling window of N calls per W seconds.

Cin7 counts calls per application key over a rolling 60 s window (reference §2), so the limiter keeps the
exact log of recent calls rather than a token bucket: a bucket refills continuously and would let N + 1 calls
into one window. `PostgresRateLimiter` keeps the log in PostgreSQL and serialises each key's check-and-record
with a transaction-scoped advisory lock, so every process and pod sharing the database shares one budget,
on the database's clock. Keys are stored only as a hash.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

import psycopg

from gp_pipelines.schema import ensure_schema

CIN7_CALLS_PER_WINDOW = 60
CIN7_WINDOW_SECONDS = 60.0
# Stay a little under the published limit: the server's window and ours start at slightly different instants.
DEFAULT_SAFETY_MARGIN = 2
# A wait longer than this is logged (INFO): a run waiting 52 s for its budget says so instead of looking hung.
LOGGED_WAIT_SECONDS = 2.0

_log = logging.getLogger(__name__)


def log_wait(seconds: float, label: str, calls: int, window: float) -> None:
    """'waiting 52 s for the au rate limit (58 calls/min)', when the wait is long enough to notice."""
    if seconds < LOGGED_WAIT_SECONDS:
        return
    budget = f"{calls} calls/min" if window == 60 else f"{calls} calls per {window:g} s"
    _log.info("waiting %.0f s for the %s rate limit (%s)", seconds, label or "API", budget)


def key_fingerprint(account_id: str, application_key: str) -> str:
    """A stable id for a key that reveals nothing about it (stored and shown instead of the key)."""
    return hashlib.sha256(f"{account_id}:{application_key}".encode()).hexdigest()[:16]


class RateLimiter(Protocol):
    def acquire(self, key_id: str) -> float:
        """Block until a call on `key_id` fits the window, record it, and return the seconds waited."""
        ...


class LocalRateLimiter:
    """In-process rolling window: for one process (tests, scripts) when no database is shared."""

    def __init__(
        self,
        calls: int = CIN7_CALLS_PER_WINDOW - DEFAULT_SAFETY_MARGIN,
        window_seconds: float = CIN7_WINDOW_SECONDS,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        label: str = "",
    ):
        self.calls = calls
        self.window = window_seconds
        self.label = label  # named in wait messages (the instance); keys are never shown
        self._clock = clock
        self._sleep = sleep
        self._log: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def acquire(self, key_id: str) -> float:
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                log = self._log.setdefault(key_id, deque())
                while log and log[0] + self.window <= now:
                    log.popleft()
                if len(log) < self.calls:
                    log.append(now)
                    return waited
                # At least a microsecond, so float rounding can never leave us waiting zero forever.
                wait = max(log[0] + self.window - now, 1e-6)
            log_wait(wait, self.label, self.calls, self.window)
            self._sleep(wait)
            waited += wait


class PostgresRateLimiter:
    """Rolling window whose call log lives in `erp_cache.api_call_log`, shared by every process."""

    TABLE = "erp_cache.api_call_log"

    def __init__(
        self,
        database_url: str,
        calls: int = CIN7_CALLS_PER_WINDOW - DEFAULT_SAFETY_MARGIN,
        window_seconds: float = CIN7_WINDOW_SECONDS,
        *,
        sleep: Callable[[float], None] = time.sleep,
        label: str = "",
    ):
        self.calls = calls
        self.window = window_seconds
        self.label = label  # named in wait messages (the instance); keys are never shown
        self._sleep = sleep
        self._conn = psycopg.connect(database_url, autocommit=True)
        ensure_limiter_table(self._conn)

    def close(self) -> None:
        self._conn.close()

    def acquire(self, key_id: str) -> float:
        waited = 0.0
        while True:
            wait = self._try_record(key_id)
            if wait <= 0:
                return waited
            log_wait(wait, self.label, self.calls, self.window)
            self._sleep(wait)
            waited += wait

    def _try_record(self, key_id: str) -> float:
        """Record a call if the window has room (returns 0), else return how long until it will."""
        window = f"{self.window} seconds"
        with self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('gp.api_limiter:' || %s, 0))", (key_id,))
            self._conn.execute(
                f"DELETE FROM {self.TABLE} WHERE key_id = %s AND called_at <= clock_timestamp() - %s::interval",
                (key_id, window),
            )
            count, wait = self._conn.execute(
                f"""SELECT count(*),
                           COALESCE(EXTRACT(EPOCH FROM min(called_at) + %s::interval - clock_timestamp()), 0)
                    FROM {self.TABLE} WHERE key_id = %s""",
                (window, key_id),
            ).fetchone()
            if count < self.calls:
                self._conn.execute(
                    f"INSERT INTO {self.TABLE} (key_id, called_at) VALUES (%s, clock_timestamp())", (key_id,)
                )
                return 0.0
            return max(float(wait), 0.001)


def ensure_limiter_table(conn: psycopg.Connection) -> None:
    """The call log is part of the platform's schema (gp_pipelines/schema/cache.py): make sure it is current."""
    ensure_schema(conn)
