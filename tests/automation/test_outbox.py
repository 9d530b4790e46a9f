"""The outbox: one row per key, acts once, retries look before acting, backs off, gives up and notifies once."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from gp_pipelines.automation import outbox
from gp_pipelines.automation.outbox import PermanentError, RetryPolicy
from gp_pipelines.automation.schema import ensure_automation_schema
from gp_pipelines.config import (
    AutomationConfig,
    EmailNotificationConfig,
    NotificationsConfig,
    WebhookNotificationConfig,
)
from gp_pipelines.connectors.notify import Notifier
from gp_pipelines.sandbox.notify import SmtpCaptureServer, WebhookCaptureServer

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
POLICY = RetryPolicy(base_seconds=30, max_seconds=300, give_up_after=timedelta(minutes=30))


@pytest.fixture
def conn(db):
    ensure_automation_schema(db)
    db.execute("TRUNCATE automation.outbox, automation.audit_log, automation.notifications")
    return db


class SimulatedCrash(BaseException):
    """The worker dies (killed pod, terminated run) after the outside action, before marking it done."""


class FakeOutside:
    """An outside system (a 3PL, Cin7 Core) that remembers what it was asked to do, by outbox key."""

    def __init__(self, *, failures: int = 0, error: Exception | None = None, delay: float = 0.0) -> None:
        self.done: dict[str, dict] = {}
        self.perform_calls = 0
        self.find_calls = 0
        self.failures_left = failures
        self.error = error or ConnectionError("3PL unreachable")
        self.delay = delay
        self.crash_after_action = False
        self._lock = threading.Lock()

    def perform(self, item: outbox.OutboxItem) -> dict:
        with self._lock:
            self.perform_calls += 1
        time.sleep(self.delay)
        if self.failures_left:
            self.failures_left -= 1
            raise self.error
        result = {"document": f"doc-{item.payload['order']}"}
        self.done[item.key] = result
        if self.crash_after_action:
            self.crash_after_action = False
            raise SimulatedCrash
        return result

    def find_existing(self, item: outbox.OutboxItem) -> dict | None:
        self.find_calls += 1
        return self.done.get(item.key)


class RecordingNotifier:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def notify(self, subject: str, body: str, *, key: str, conn=None) -> None:
        self.calls.append((subject, body, key))


def _enqueue(conn, key: str = "940:au:SO-1", kind: str = "send_940", at: datetime = T0) -> outbox.OutboxItem:
    return outbox.enqueue(conn, key, kind, {"order": "SO-1"}, instance="au", subject="sale-1", actor="run-1", now=at)


def _audit_actions(conn, key: str) -> list[str]:
    rows = conn.execute("SELECT action FROM automation.audit_log WHERE outbox_key = %s ORDER BY id", (key,))
    return [row[0] for row in rows.fetchall()]


def test_enqueue_is_idempotent_and_never_resets_a_done_item(conn):
    first = _enqueue(conn)
    again = _enqueue(conn)
    assert first.id == again.id and again.state == "pending" and again.payload == {"order": "SO-1"}
    assert _audit_actions(conn, first.key) == ["outbox.enqueued"]

    outbox.run_item(conn, first.key, FakeOutside(), POLICY, now=T0)
    after_done = _enqueue(conn, at=T0 + timedelta(hours=1))
    assert after_done.state == "done" and after_done.result == {"document": "doc-SO-1"}

    with pytest.raises(outbox.OutboxKeyConflict):
        _enqueue(conn, kind="ship_sale")


def test_performs_once_then_returns_done_without_calling(conn):
    item = _enqueue(conn)
    outside = FakeOutside()

    ran = outbox.run_item(conn, item.key, outside, POLICY, actor="run-2", now=T0)
    assert (ran.outcome, ran.state, ran.attempts) == (outbox.PERFORMED, "done", 1)
    assert ran.result == {"document": "doc-SO-1"} and ran.done_at == T0 and ran.lease_until is None
    assert (outside.perform_calls, outside.find_calls) == (1, 0)  # a first attempt has nothing to look for

    again = outbox.run_item(conn, item.key, outside, POLICY, now=T0)
    assert again.outcome == outbox.ALREADY_DONE and outside.perform_calls == 1
    assert _audit_actions(conn, item.key) == ["outbox.enqueued", "outbox.running", "outbox.done"]
    actors = conn.execute("SELECT actor FROM automation.audit_log ORDER BY id").fetchall()
    assert [row[0] for row in actors] == ["run-1", "run-2", "run-2"]


def test_crash_between_action_and_mark_done_repeats_nothing(conn):
    item = _enqueue(conn)
    outside = FakeOutside()
    outside.crash_after_action = True
    with pytest.raises(SimulatedCrash):
        outbox.run_item(conn, item.key, outside, POLICY, now=T0, lease_seconds=120)
    left = outbox.get_item(conn, item.key)
    assert left.state == "running" and left.lease_until == T0 + timedelta(seconds=120)

    # While the lease lasts the item is presumed in someone's hands: nobody touches it.
    assert outbox.run_due(conn, {"send_940": outside}, POLICY, now=T0 + timedelta(seconds=60)) == []
    busy = outbox.run_item(conn, item.key, outside, POLICY, now=T0 + timedelta(seconds=60))
    assert busy.outcome == outbox.BUSY

    [retried] = outbox.run_due(conn, {"send_940": outside}, POLICY, now=T0 + timedelta(seconds=121))
    assert (retried.outcome, retried.state, retried.attempts) == (outbox.FOUND_EXISTING, "done", 2)
    assert retried.result == {"document": "doc-SO-1"}
    assert (outside.perform_calls, outside.find_calls) == (1, 1)


_WORKER = textwrap.dedent(
    """
    import json, os, signal, sys
    from pathlib import Path
    from gp_pipelines.automation import outbox

    url, key, folder = sys.argv[1:4]

    class DiesAfterActing:
        def find_existing(self, item):
            raise AssertionError("a first attempt does not look")

        def perform(self, item):
            Path(folder, "sent.json").write_text(json.dumps({"document": "doc-killed"}))
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no exception handler, no commit

    outbox.run_item(url, key, DiesAfterActing(), outbox.RetryPolicy())
    """
)


def test_killed_worker_process_is_taken_over_without_acting_again(conn, module_database_url, tmp_path):
    item = _enqueue(conn, at=datetime.now(UTC))
    worker = subprocess.run(
        [sys.executable, "-c", _WORKER, module_database_url, item.key, str(tmp_path)], capture_output=True, timeout=60
    )
    assert worker.returncode == -9, worker.stderr.decode()
    assert (tmp_path / "sent.json").exists()
    assert outbox.get_item(conn, item.key).state == "running"

    class ReadsTheOutsideFirst:
        def find_existing(self, item):
            path = tmp_path / "sent.json"
            return json.loads(path.read_text()) if path.exists() else None

        def perform(self, item):
            raise AssertionError("the action happened already: it must not run again")

    later = datetime.now(UTC) + timedelta(seconds=outbox.DEFAULT_LEASE_SECONDS + 1)
    [taken_over] = outbox.run_due(module_database_url, {"send_940": ReadsTheOutsideFirst()}, POLICY, now=later)
    assert (taken_over.outcome, taken_over.state) == (outbox.FOUND_EXISTING, "done")
    assert taken_over.result == {"document": "doc-killed"}


def test_backoff_doubles_up_to_the_cap_and_jitter_is_repeatable():
    assert [POLICY.delay(n).total_seconds() for n in range(1, 7)] == [30, 60, 120, 240, 300, 300]
    assert POLICY.delay(10_000).total_seconds() == 300

    from_config = RetryPolicy.from_config(
        AutomationConfig(retry_base_seconds=5, retry_max_seconds=40, give_up_after_minutes=90)
    )
    assert from_config.give_up_after == timedelta(minutes=90)
    assert [from_config.delay(n).total_seconds() for n in range(1, 6)] == [5, 10, 20, 40, 40]

    def jittered(seed: int) -> list[float]:
        policy = RetryPolicy(base_seconds=30, max_seconds=300, jitter=0.2, rng=random.Random(seed))
        return [policy.delay(n).total_seconds() for n in range(1, 8)]

    assert jittered(7) == jittered(7)
    for attempt, seconds in enumerate(jittered(7), start=1):
        plain = min(300, 30 * 2 ** (attempt - 1))
        assert 0.8 * plain <= seconds <= min(300, 1.2 * plain)


def test_failures_retry_when_due_and_look_before_acting(conn):
    item = _enqueue(conn)
    outside = FakeOutside(failures=2)
    handlers = {"send_940": outside}

    first = outbox.run_item(conn, item.key, outside, POLICY, now=T0)
    assert (first.outcome, first.state, first.attempts) == (outbox.FAILED, "failed", 1)
    assert first.next_attempt_at == T0 + timedelta(seconds=30)
    assert first.last_error == "ConnectionError: 3PL unreachable"

    assert outbox.run_due(conn, handlers, POLICY, now=T0 + timedelta(seconds=29)) == []
    [second] = outbox.run_due(conn, handlers, POLICY, now=T0 + timedelta(seconds=30))
    assert second.outcome == outbox.FAILED and second.next_attempt_at == T0 + timedelta(seconds=90)

    [third] = outbox.run_due(conn, handlers, POLICY, now=T0 + timedelta(seconds=90))
    assert (third.outcome, third.state, third.attempts, third.last_error) == (outbox.PERFORMED, "done", 3, None)
    assert (outside.perform_calls, outside.find_calls) == (3, 2)  # each retry asked the outside first
    assert _audit_actions(conn, item.key) == ["outbox.enqueued"] + ["outbox.running", "outbox.failed"] * 2 + [
        "outbox.running",
        "outbox.done",
    ]


def test_gives_up_after_the_window_and_notifies_once_by_email_and_webhook(conn):
    item = _enqueue(conn)
    outside = FakeOutside(failures=1000)
    with SmtpCaptureServer() as smtp, WebhookCaptureServer() as hook:
        notifier = Notifier.from_config(
            NotificationsConfig(
                email=EmailNotificationConfig(
                    smtp_host=smtp.host, smtp_port=smtp.port, sender="gp@example.com",
                    recipients=["ops@example.com"], starttls=False,
                ),
                webhook=WebhookNotificationConfig(url=hook.url),
            ),
            environ={},
        )  # fmt: skip
        handlers = {"send_940": outside}
        outbox.run_item(conn, item.key, outside, POLICY, notifier=notifier, now=T0)
        [still_trying] = outbox.run_due(conn, handlers, POLICY, notifier=notifier, now=T0 + timedelta(minutes=29))
        assert still_trying.outcome == outbox.FAILED and smtp.messages == []

        [gave_up] = outbox.run_due(conn, handlers, POLICY, notifier=notifier, now=T0 + timedelta(minutes=31))
        assert (gave_up.outcome, gave_up.state) == (outbox.GAVE_UP, "given_up")

        # Given up means left alone: neither the retry job nor a direct call acts or notifies again.
        assert outbox.run_due(conn, handlers, POLICY, notifier=notifier, now=T0 + timedelta(days=1)) == []
        left_alone = outbox.run_item(conn, item.key, outside, POLICY, notifier=notifier, now=T0 + timedelta(days=1))
        assert left_alone.outcome == outbox.WAS_GIVEN_UP
        assert outside.perform_calls == 3

        [email] = smtp.messages
        [request] = hook.requests
    assert "send_940" in email.subject and "au/sale-1" in email.subject
    assert item.key in email.body and "ConnectionError: 3PL unreachable" in email.body
    assert request.body["subject"] == email.subject and request.body["key"] == email.headers["X-GP-Notification-Key"]
    assert conn.execute("SELECT count(*) FROM automation.notifications").fetchone()[0] == 1
    assert outbox.backlog(conn)["given_up"] == 1

    # Once the cause is fixed an operator requeues it: a fresh window, looked up first, then done.
    outside.failures_left = 0
    requeued = outbox.requeue(conn, item.key, actor="ops", now=T0 + timedelta(days=1))
    assert requeued.state == "pending"
    [done] = outbox.run_due(conn, handlers, POLICY, now=T0 + timedelta(days=1))
    assert (done.outcome, done.state, outside.perform_calls) == (outbox.PERFORMED, "done", 4)
    assert outbox.requeue(conn, item.key).state == "done"  # a done item is never reset


class RefusedByPartner(Exception):
    retryable = False


@pytest.mark.parametrize("error", [PermanentError("SKU X is not in the item master"), RefusedByPartner("AK5*R")])
def test_permanent_error_gives_up_at_once(conn, error):
    item = _enqueue(conn)
    notifier = RecordingNotifier()
    ran = outbox.run_item(conn, item.key, FakeOutside(failures=1, error=error), POLICY, notifier=notifier, now=T0)
    assert (ran.outcome, ran.state, ran.attempts) == (outbox.GAVE_UP, "given_up", 1)
    assert ran.last_error == f"{type(error).__name__}: {error}"
    [(_subject, body, key)] = notifier.calls
    assert "permanent error" in body and key == f"outbox.given_up:{item.key}:1"


def test_two_workers_on_the_same_key_perform_once(conn, module_database_url):
    item = _enqueue(conn, at=datetime.now(UTC))
    outside = FakeOutside(delay=0.3)
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def worker() -> None:
        with psycopg.connect(module_database_url, autocommit=True) as own:
            start.wait()
            outcomes.append(outbox.run_item(own, item.key, outside, POLICY).outcome)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == [outbox.BUSY, outbox.PERFORMED]
    assert outside.perform_calls == 1 and outbox.get_item(conn, item.key).state == "done"


def test_attention_lists_overdue_expired_and_given_up_items_and_backlog_counts(conn):
    for key in ("fresh", "overdue", "lease-expired", "given-up", "done"):
        _enqueue(conn, key=key, at=datetime.now(UTC))
    conn.execute("UPDATE automation.outbox SET next_attempt_at = now() - interval '1 hour' WHERE key = 'overdue'")
    conn.execute(
        "UPDATE automation.outbox SET state = 'running', attempts = 1, lease_until = now() - interval '1 minute' "
        "WHERE key = 'lease-expired'"
    )
    conn.execute(
        "UPDATE automation.outbox SET state = 'given_up', attempts = 4, last_error = 'HTTP 503' WHERE key = 'given-up'"
    )
    conn.execute("UPDATE automation.outbox SET state = 'done' WHERE key = 'done'")

    rows = outbox.attention(conn)
    assert [(row["key"], row["reason"]) for row in rows] == [
        ("given-up", "given_up"),
        ("overdue", "overdue"),
        ("lease-expired", "lease_expired"),
    ]
    assert rows[0]["last_error"] == "HTTP 503" and rows[0]["age"] >= timedelta(0)
    assert outbox.backlog(conn) == {"pending": 2, "running": 1, "failed": 0, "done": 1, "given_up": 1}


def test_run_due_leaves_kinds_it_has_no_handler_for(conn):
    _enqueue(conn, key="k1", kind="send_940")
    _enqueue(conn, key="k2", kind="post_tracking")
    ran = outbox.run_due(conn, {"send_940": FakeOutside()}, POLICY, now=T0)
    assert [item.key for item in ran] == ["k1"]
    assert outbox.get_item(conn, "k2").state == "pending"


def test_items_run_only_on_a_connection_outside_a_transaction(conn, module_database_url):
    item = _enqueue(conn)
    with psycopg.connect(module_database_url) as in_transaction:
        in_transaction.execute("SELECT 1")
        with pytest.raises(ValueError, match="outside any transaction"):
            outbox.run_item(in_transaction, item.key, FakeOutside(), POLICY)
    with pytest.raises(outbox.OutboxItemNotFound):
        outbox.run_item(conn, "no-such-key", FakeOutside(), POLICY)


def test_error_texts_mask_credentials_and_are_cut():
    error = RuntimeError(
        "POST https://user:hunter2@3pl.example.com/api failed; Authorization: Bearer abc.DEF-123 api_key=k3y token: t0k"
    )
    text = outbox.describe_error(error)
    assert text.startswith("RuntimeError: POST https://***@3pl.example.com/api")
    for secret in ("hunter2", "abc.DEF-123", "k3y", "t0k"):
        assert secret not in text
    assert len(outbox.describe_error(RuntimeError("x" * 10_000))) == outbox.MAX_ERROR_CHARS
