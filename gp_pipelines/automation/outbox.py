"""The outbox: every outside action is written down, then done, then marked done (DESIGN.md §6).

An automation step never calls a partner or Cin7 Core directly. It `enqueue`s an item with a key that names
the action and its content (e.g. `940:main:SO-123:fulfilment-1`), commits, then `run_item`s it:

1. **claim** (a short transaction): lock the row with `FOR UPDATE SKIP LOCKED`, set it `running` with a lease,
   count the attempt, commit. A second worker finds the row locked or leased and leaves it alone (`busy`).
2. **act**, outside any transaction: if the item was tried before (a failed attempt, or a worker that died
   while `running`), ask the handler first whether the outside system already has it (`find_existing`);
   only if not, `perform` it. So a crash between "done there" and "marked here" repeats nothing.
3. **mark** (another short transaction): `done` with the handler's result; or, on failure, `failed` with the
   next attempt time from the `RetryPolicy` (exponential backoff, capped); or `given_up` when the error is
   permanent or the item has been failing for longer than the give-up window, and the notifier is told once.

Every state change writes a row to `automation.audit_log` naming the `actor` (a Dagster run id, a sensor).
Items whose worker died are picked up again by `run_due` once their lease has expired.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from gp_pipelines.automation.schema import AUTOMATION_SCHEMA, OUTBOX_STATES, dumps_json, record_audit
from gp_pipelines.config import AutomationConfig

OUTBOX_TABLE = f"{AUTOMATION_SCHEMA}.outbox"
ATTENTION_VIEW = f"{AUTOMATION_SCHEMA}.outbox_attention"
DEFAULT_LEASE_SECONDS = 300.0
MAX_ERROR_CHARS = 2000

# What a run_item call did (OutboxItem.outcome).
PERFORMED = "performed"  # perform() ran and the item is done
FOUND_EXISTING = "found_existing"  # the outside system already had it: done without acting again
ALREADY_DONE = "already_done"  # the item was done before this call: nothing called
BUSY = "busy"  # another worker holds the item (row locked, or running with a live lease)
FAILED = "failed"  # the attempt failed; a retry is scheduled at next_attempt_at
GAVE_UP = "given_up"  # this attempt failed permanently or after the window: given up, notified
WAS_GIVEN_UP = "was_given_up"  # the item had been given up before this call: nothing called

_log = logging.getLogger(__name__)

ConnectionSource = psycopg.Connection | str | Callable[[], psycopg.Connection]


class PermanentError(Exception):
    """The action cannot succeed as asked (validation failed, the partner refused the document): no retry.

    Any other exception whose `retryable` attribute is False counts as permanent too."""

    retryable = False


class OutboxItemNotFound(KeyError):
    """No outbox item has this key."""


class OutboxKeyConflict(ValueError):
    """A key was enqueued again for a different kind of action: two callers build keys the same way."""


@dataclass(frozen=True)
class OutboxItem:
    id: int
    key: str
    kind: str
    instance: str | None
    subject: str | None
    payload: dict[str, Any]
    state: str
    attempts: int
    created_at: datetime
    updated_at: datetime
    next_attempt_at: datetime
    lease_until: datetime | None
    last_error: str | None
    result: dict[str, Any] | None
    done_at: datetime | None
    requeued_at: datetime | None = None
    outcome: str | None = None  # set by run_item / run_due: what this call did (PERFORMED, BUSY, ...)

    @classmethod
    def from_row(cls, row: Mapping[str, Any], outcome: str | None = None) -> OutboxItem:
        names = {f.name for f in fields(cls)} - {"outcome"}
        return cls(**{name: row.get(name) for name in names}, outcome=outcome)


class OutboxHandler(Protocol):
    """Does one kind of outside action. Both methods run outside any database transaction."""

    def perform(self, item: OutboxItem) -> Mapping[str, Any] | None:
        """Do the action; return what the outside system answered (stored as the item's `result`)."""

    def find_existing(self, item: OutboxItem) -> Mapping[str, Any] | None:
        """Read the outside system: if the action already happened, return its result (may be `{}`); else None."""


class OutboxNotifier(Protocol):
    """What the outbox needs from a notifier (`gp_pipelines.connectors.notify.Notifier` is one)."""

    def notify(self, subject: str, body: str, *, key: str, conn: psycopg.Connection | None = None) -> Any: ...


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: `base`, `2·base`, `4·base`, ... never more than `max_seconds`; give up once an item
    has been failing for longer than `give_up_after` (counted from its creation, or its last requeue).

    `jitter` (a fraction, e.g. 0.1 for ±10%) spreads retries of many items failing together; it draws from `rng`
    (pass a seeded `random.Random` where results must repeat). The cap holds with jitter too."""

    base_seconds: float = 30.0
    max_seconds: float = 1800.0
    give_up_after: timedelta = timedelta(hours=24)
    jitter: float = 0.0
    rng: random.Random | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.base_seconds <= 0 or self.max_seconds < self.base_seconds:
            raise ValueError("need 0 < base_seconds <= max_seconds")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter is a fraction in [0, 1)")

    @classmethod
    def from_config(
        cls, config: AutomationConfig, *, jitter: float = 0.0, rng: random.Random | None = None
    ) -> RetryPolicy:
        return cls(
            base_seconds=config.retry_base_seconds,
            max_seconds=max(config.retry_max_seconds, config.retry_base_seconds),
            give_up_after=timedelta(minutes=config.give_up_after_minutes),
            jitter=jitter,
            rng=rng,
        )

    def delay(self, attempts: int) -> timedelta:
        """How long to wait after the `attempts`-th failed try (1 for the first)."""
        exponent = min(max(attempts - 1, 0), 60)  # 2**60 × base is far past any cap; avoids huge floats
        seconds = min(self.max_seconds, self.base_seconds * 2.0**exponent)
        if self.jitter:
            spread = (self.rng or random).uniform(-self.jitter, self.jitter)
            seconds = min(self.max_seconds, seconds * (1 + spread))
        return timedelta(seconds=seconds)

    def window_expired(self, started_at: datetime, now: datetime) -> bool:
        return now - started_at > self.give_up_after


# ---------------------------------------------------------------------------------------------- writing


def enqueue(
    conn: psycopg.Connection,
    key: str,
    kind: str,
    payload: Mapping[str, Any],
    *,
    instance: str | None = None,
    subject: str | None = None,
    actor: str | None = None,
    now: datetime | None = None,
) -> OutboxItem:
    """Write the intended action down, once per key: a key already there returns the existing row as it is
    (a done item stays done). Commits with the caller's transaction; commit before running the item."""
    at = _aware(now)
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"INSERT INTO {OUTBOX_TABLE} (key, kind, instance, subject, payload, created_at, updated_at, "
            "next_attempt_at) VALUES (%(key)s, %(kind)s, %(instance)s, %(subject)s, %(payload)s, "
            "coalesce(%(at)s, now()), coalesce(%(at)s, now()), coalesce(%(at)s, now())) "
            "ON CONFLICT (key) DO NOTHING RETURNING *",
            {
                "key": key,
                "kind": kind,
                "instance": instance,
                "subject": subject,
                "payload": Jsonb(dict(payload), dumps=dumps_json),
                "at": at,
            },
        ).fetchone()
        if row is not None:
            record_audit(
                conn, "outbox.enqueued", actor=actor, instance=instance, subject=subject, outbox_key=key,
                detail={"kind": kind},
            )  # fmt: skip
            return OutboxItem.from_row(row)
        row = cur.execute(f"SELECT * FROM {OUTBOX_TABLE} WHERE key = %s", (key,)).fetchone()
    if row["kind"] != kind:
        raise OutboxKeyConflict(f"outbox key {key!r} is already used by a {row['kind']!r} item, not {kind!r}")
    return OutboxItem.from_row(row)


def requeue(conn: psycopg.Connection, key: str, *, actor: str | None = None, now: datetime | None = None) -> OutboxItem:
    """Try a given-up or failed item again now, with a fresh give-up window (after an operator fixed the
    cause). A done item is never reset: it is returned as it is."""
    at = _aware(now)
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"UPDATE {OUTBOX_TABLE} SET state = 'pending', next_attempt_at = coalesce(%(at)s, now()), "
            "requeued_at = coalesce(%(at)s, now()), updated_at = coalesce(%(at)s, now()) "
            "WHERE key = %(key)s AND state IN ('given_up', 'failed') RETURNING *",
            {"key": key, "at": at},
        ).fetchone()
        if row is not None:
            record_audit(
                conn, "outbox.requeued", actor=actor, instance=row["instance"], subject=row["subject"],
                outbox_key=key, detail={"attempts": row["attempts"]},
            )  # fmt: skip
            return OutboxItem.from_row(row)
    item = get_item(conn, key)
    if item is None:
        raise OutboxItemNotFound(key)
    return item


# ---------------------------------------------------------------------------------------------- running


def run_item(
    conn_or_factory: ConnectionSource,
    key: str,
    handler: OutboxHandler,
    policy: RetryPolicy,
    *,
    notifier: OutboxNotifier | None = None,
    actor: str | None = None,
    now: datetime | None = None,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
) -> OutboxItem:
    """Claim, act and mark one item (see the module docstring); returns it with `outcome` saying what happened.

    `conn_or_factory` is a connection outside any transaction (autocommit is simplest), a URL, or a callable
    returning a new connection. `now` fixes the clock (tests); by default each step reads the real clock.
    `lease_seconds` must exceed the longest the action can take (its HTTP/SFTP timeouts): past the lease another
    worker takes the item over, and it cannot see an action that is still in flight.
    Only `Exception`s count as failures: an interruption (`KeyboardInterrupt`, a terminated run) propagates
    and leaves the item `running` until its lease expires, when the retry asks `find_existing` first."""
    with _connection(conn_or_factory) as conn:
        return _run_item(conn, key, handler, policy, notifier, actor, _clock(now), lease_seconds)


def run_due(
    conn_or_factory: ConnectionSource,
    handlers: Mapping[str, OutboxHandler],
    policy: RetryPolicy,
    *,
    notifier: OutboxNotifier | None = None,
    actor: str | None = None,
    limit: int = 100,
    now: datetime | None = None,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
) -> list[OutboxItem]:
    """Run up to `limit` items that are due: pending or failed items whose next attempt has come, and running
    items whose lease expired (their worker died). Only kinds in `handlers` are touched: other code may own
    the rest. Items another worker grabs meanwhile come back with outcome BUSY."""
    clock = _clock(now)
    with _connection(conn_or_factory) as conn:
        with conn.transaction():  # closed before the items run: each claim must be its own short transaction
            due = conn.execute(
                f"SELECT key, kind FROM {OUTBOX_TABLE} WHERE kind = ANY(%(kinds)s) AND ("
                "(state IN ('pending', 'failed') AND next_attempt_at <= %(at)s) "
                "OR (state = 'running' AND lease_until < %(at)s)) "
                "ORDER BY next_attempt_at, id LIMIT %(limit)s",
                {"kinds": list(handlers), "at": clock(), "limit": limit},
            ).fetchall()
        return [
            _run_item(conn, key, handlers[kind], policy, notifier, actor, clock, lease_seconds) for key, kind in due
        ]


def _run_item(
    conn: psycopg.Connection,
    key: str,
    handler: OutboxHandler,
    policy: RetryPolicy,
    notifier: OutboxNotifier | None,
    actor: str | None,
    clock: Callable[[], datetime],
    lease_seconds: float,
) -> OutboxItem:
    item, tried_before = _claim(conn, key, clock(), lease_seconds, actor)
    if item.outcome is not None:
        _log.info("outbox %s: %s, nothing to do", key, item.outcome)
        return item
    try:
        result: Mapping[str, Any] | None = None
        outcome = PERFORMED
        if tried_before:
            result = handler.find_existing(item)
            outcome = FOUND_EXISTING
        if result is None:
            result = handler.perform(item) or {}
            outcome = PERFORMED
    except Exception as exc:
        return _record_failure(conn, item, exc, policy, notifier, actor, clock())
    return _mark_done(conn, item, dict(result), outcome, actor, clock())


def _claim(
    conn: psycopg.Connection, key: str, now: datetime, lease_seconds: float, actor: str | None
) -> tuple[OutboxItem, bool]:
    """Take the item for this worker, or return it with an outcome saying why not."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT * FROM {OUTBOX_TABLE} WHERE key = %s FOR UPDATE SKIP LOCKED", (key,)).fetchone()
        if row is None:
            # Either no such key, or another worker is claiming or marking it right now.
            row = cur.execute(f"SELECT * FROM {OUTBOX_TABLE} WHERE key = %s", (key,)).fetchone()
            if row is None:
                raise OutboxItemNotFound(key)
            return OutboxItem.from_row(row, BUSY), False
        state = row["state"]
        if state == "done":
            return OutboxItem.from_row(row, ALREADY_DONE), False
        if state == "given_up":
            return OutboxItem.from_row(row, WAS_GIVEN_UP), False
        if state == "running" and row["lease_until"] is not None and row["lease_until"] > now:
            return OutboxItem.from_row(row, BUSY), False
        tried_before = row["attempts"] > 0 or state == "running"
        row = cur.execute(
            f"UPDATE {OUTBOX_TABLE} SET state = 'running', attempts = attempts + 1, lease_until = %s, "
            "updated_at = %s WHERE id = %s RETURNING *",
            (now + timedelta(seconds=lease_seconds), now, row["id"]),
        ).fetchone()
        _audit(conn, row, "outbox.running", actor, {"attempt": row["attempts"], "from_state": state})
        return OutboxItem.from_row(row), tried_before


def _mark_done(
    conn: psycopg.Connection,
    item: OutboxItem,
    result: dict[str, Any],
    outcome: str,
    actor: str | None,
    now: datetime,
) -> OutboxItem:
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"UPDATE {OUTBOX_TABLE} SET state = 'done', result = %s, done_at = %s, updated_at = %s, "
            "lease_until = NULL, last_error = NULL WHERE id = %s AND state <> 'done' RETURNING *",
            (Jsonb(result, dumps=dumps_json), now, now, item.id),
        ).fetchone()
        if row is None:
            # A worker that took over after our lease expired marked it first; the action happened once either way.
            row = cur.execute(f"SELECT * FROM {OUTBOX_TABLE} WHERE id = %s", (item.id,)).fetchone()
        else:
            _audit(conn, row, "outbox.done", actor, {"outcome": outcome, "attempt": row["attempts"], "result": result})
    _log.info("outbox %s: %s", item.key, outcome)
    return OutboxItem.from_row(row, outcome)


def _record_failure(
    conn: psycopg.Connection,
    item: OutboxItem,
    exc: Exception,
    policy: RetryPolicy,
    notifier: OutboxNotifier | None,
    actor: str | None,
    now: datetime,
) -> OutboxItem:
    error = describe_error(exc)
    permanent = isinstance(exc, PermanentError) or getattr(exc, "retryable", True) is False
    window_start = item.requeued_at or item.created_at
    give_up = permanent or policy.window_expired(window_start, now)
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        if give_up:
            row = cur.execute(
                f"UPDATE {OUTBOX_TABLE} SET state = 'given_up', last_error = %s, lease_until = NULL, "
                "updated_at = %s WHERE id = %s AND state = 'running' RETURNING *",
                (error, now, item.id),
            ).fetchone()
            reason = "permanent error" if permanent else f"still failing after {policy.give_up_after}"
            detail = {"attempt": item.attempts, "error": error, "reason": reason}
            action, outcome = "outbox.given_up", GAVE_UP
        else:
            next_attempt_at = now + policy.delay(item.attempts)
            row = cur.execute(
                f"UPDATE {OUTBOX_TABLE} SET state = 'failed', last_error = %s, lease_until = NULL, "
                "next_attempt_at = %s, updated_at = %s WHERE id = %s AND state = 'running' RETURNING *",
                (error, next_attempt_at, now, item.id),
            ).fetchone()
            detail = {"attempt": item.attempts, "error": error, "next_attempt_at": next_attempt_at.isoformat()}
            action, outcome = "outbox.failed", FAILED
        if row is None:
            # Our lease expired and another worker took the item over: its outcome stands, not ours.
            row = cur.execute(f"SELECT * FROM {OUTBOX_TABLE} WHERE id = %s", (item.id,)).fetchone()
            return OutboxItem.from_row(row, BUSY)
        _audit(conn, row, action, actor, detail)
    failed = OutboxItem.from_row(row, outcome)
    _log.warning("outbox %s: attempt %d failed (%s): %s", item.key, item.attempts, outcome, error)
    if outcome == GAVE_UP and notifier is not None:
        _notify_given_up(conn, notifier, failed, detail["reason"])
    return failed


def _notify_given_up(conn: psycopg.Connection, notifier: OutboxNotifier, item: OutboxItem, reason: str) -> None:
    where = "/".join(part for part in (item.instance, item.subject) if part)
    subject = f"gp_pipelines gave up: {item.kind}" + (f" for {where}" if where else "")
    body = "\n".join(
        [
            f"The outbox gave up on an action ({reason}).",
            "",
            f"key:        {item.key}",
            f"kind:       {item.kind}",
            f"instance:   {item.instance or '-'}",
            f"subject:    {item.subject or '-'}",
            f"attempts:   {item.attempts}",
            f"created at: {item.created_at.isoformat()}",
            f"last error: {item.last_error}",
            "",
            "Fix the cause, then requeue the item to try again.",
        ]
    )
    try:
        # The attempt count in the key lets a requeued item that gives up again notify again.
        notifier.notify(subject, body, key=f"outbox.given_up:{item.key}:{item.attempts}", conn=conn)
    except Exception:  # a notifier must not turn a recorded give-up into a crash of the run
        _log.exception("outbox %s: could not notify that it gave up", item.key)


# ---------------------------------------------------------------------------------------------- reading


def get_item(conn: psycopg.Connection, key: str) -> OutboxItem | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT * FROM {OUTBOX_TABLE} WHERE key = %s", (key,)).fetchone()
    return None if row is None else OutboxItem.from_row(row)


def attention(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Items an operator must look at (the `automation.outbox_attention` view), given-up ones first, oldest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT * FROM {ATTENTION_VIEW} ORDER BY reason = 'given_up' DESC, created_at, id"
        ).fetchall()


def backlog(conn: psycopg.Connection) -> dict[str, int]:
    """How many items are in each state (every state present, zero included)."""
    counts = dict.fromkeys(OUTBOX_STATES, 0)
    for state, count in conn.execute(f"SELECT state, count(*) FROM {OUTBOX_TABLE} GROUP BY state").fetchall():
        counts[state] = int(count)
    return counts


# ---------------------------------------------------------------------------------------------- helpers

# Outside systems sometimes echo credentials in error texts (URLs with user:password, auth headers).
_SECRET_PATTERNS = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 ***"),
    (re.compile(r"://[^/\s:@]+:[^/\s@]+@"), "://***@"),
    (
        re.compile(
            r"(?i)\b(api[-_]?key|api[-_]?secret|access[-_]?token|token|password|secret)(\"?\s*[:=]\s*\"?)[^\s\"&,;]+"
        ),
        r"\1\2***",
    ),
)


def describe_error(exc: BaseException) -> str:
    """`Type: message`, with anything that looks like a credential masked, cut to MAX_ERROR_CHARS."""
    text = f"{type(exc).__name__}: {exc}"
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 1] + "…"
    return text


def _audit(conn: psycopg.Connection, row: Mapping[str, Any], action: str, actor: str | None, detail: dict) -> None:
    record_audit(
        conn, action, actor=actor, instance=row["instance"], subject=row["subject"], outbox_key=row["key"],
        detail=detail,
    )  # fmt: skip


def _aware(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def _clock(now: datetime | None) -> Callable[[], datetime]:
    fixed = _aware(now)
    if fixed is not None:
        return lambda: fixed
    return lambda: datetime.now(UTC)


@contextmanager
def _connection(source: ConnectionSource) -> Iterator[psycopg.Connection]:
    if isinstance(source, psycopg.Connection):
        conn = source
        owned = False
    else:
        conn = psycopg.connect(source, autocommit=True) if isinstance(source, str) else source()
        owned = True
    try:
        if conn.info.transaction_status != TransactionStatus.IDLE:
            # The claim must commit before the outside action, and the enqueue before the claim.
            raise ValueError("the outbox runs items on a connection outside any transaction: commit first")
        yield conn
    finally:
        if owned:
            conn.close()
