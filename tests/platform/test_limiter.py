"""Rate limiters: never more than N calls in any rolling window, and one budget across processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from hypothesis import given, settings
from hypothesis import strategies as st

from gp_pipelines.cin7.limiter import LocalRateLimiter, PostgresRateLimiter, key_fingerprint


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _max_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, moment in enumerate(times):
        while times[start] + window <= moment:
            start += 1
        best = max(best, end - start + 1)
    return best


@settings(max_examples=60, deadline=None)
@given(
    calls=st.integers(min_value=1, max_value=8),
    gaps=st.lists(st.floats(min_value=0, max_value=2.0), min_size=1, max_size=60),
)
def test_local_limiter_never_exceeds_the_window(calls, gaps):
    clock = FakeClock()
    limiter = LocalRateLimiter(calls, 1.0, clock=clock, sleep=clock.sleep)
    recorded = []
    for gap in gaps:
        clock.now += gap
        limiter.acquire("k")
        recorded.append(clock.now)
    assert _max_in_any_window(recorded, 1.0) <= calls


def test_local_limiter_waits_exactly_until_the_oldest_call_leaves():
    clock = FakeClock()
    limiter = LocalRateLimiter(2, 10.0, clock=clock, sleep=clock.sleep)
    assert limiter.acquire("k") == 0
    clock.now = 3.0
    assert limiter.acquire("k") == 0
    assert limiter.acquire("k") == 10.0 - 3.0  # the first call (t=0) leaves the window at t=10
    assert limiter.acquire("other-key") == 0  # budgets are per key


def test_fingerprint_hides_the_key():
    fingerprint = key_fingerprint("acct", "very-secret-key")
    assert "secret" not in fingerprint and len(fingerprint) == 16
    assert fingerprint != key_fingerprint("acct", "another-key")


def test_postgres_limiter_is_one_budget_across_processes(module_database_url, db):
    """Two processes take 6 calls each from a 4-per-second budget: the shared log never holds more than 4
    calls in any second, so the 12 calls need at least two full windows."""
    script = textwrap.dedent(
        """
        import sys, time
        from gp_pipelines.cin7.limiter import PostgresRateLimiter
        limiter = PostgresRateLimiter(sys.argv[1], calls=4, window_seconds=1.0)
        for _ in range(6):
            limiter.acquire("shared-key")
        limiter.close()
        """
    )
    PostgresRateLimiter(module_database_url, calls=4, window_seconds=1.0).close()  # creates the table
    db.execute("CREATE TABLE call_history AS SELECT * FROM erp_cache.api_call_log WITH NO DATA")
    db.execute(
        """CREATE FUNCTION keep_history() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN INSERT INTO call_history VALUES (NEW.*); RETURN NEW; END $$"""
    )
    db.execute(
        "CREATE TRIGGER keep_history AFTER INSERT ON erp_cache.api_call_log "
        "FOR EACH ROW EXECUTE FUNCTION keep_history()"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, module_database_url]) for _ in range(2)]
    assert [proc.wait(timeout=60) for proc in procs] == [0, 0]
    rows = db.execute(
        "SELECT EXTRACT(EPOCH FROM called_at)::float8 FROM call_history WHERE key_id = 'shared-key'"
    ).fetchall()
    times = [row[0] for row in rows]
    assert len(times) == 12
    assert _max_in_any_window(times, 1.0) <= 4
    assert max(times) - min(times) >= 2.0
