"""Named PostgreSQL advisory locks: work on one order (or one partner file) by one worker at a time.

A lock is a session-level advisory lock keyed on `hashtextextended(name, 0)`, so every process and pod that
shares the database shares the lock, and a worker that dies releases it with its connection. Order locks are
named `gp.order.<instance>.<sale id>`; other names (e.g. `gp.file.<partner>.<file key>`) use `advisory_lock`.

The lock belongs to the connection's session and outlives its transactions, so it needs a connection in
autocommit mode: a lock taken inside a transaction that later fails could not be released on exit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
from psycopg import errors as pg_errors

ORDER_LOCK_PREFIX = "gp.order."


class LockBusyError(RuntimeError):
    """Another session holds the lock (raised only when asked to, with `raise_if_busy=True`)."""

    def __init__(self, name: str, message: str | None = None) -> None:
        super().__init__(message or f"lock {name!r} is held by another worker")
        self.name = name


class OrderLockedError(LockBusyError):
    """Another worker is working on this order."""

    def __init__(self, instance: str, sale_id: str) -> None:
        super().__init__(order_lock_name(instance, sale_id), f"order {sale_id} of {instance} is being worked on")
        self.instance = instance
        self.sale_id = sale_id


def order_lock_name(instance: str, sale_id: str) -> str:
    return f"{ORDER_LOCK_PREFIX}{instance}.{sale_id}"


@contextlib.contextmanager
def advisory_lock(
    conn: psycopg.Connection, name: str, *, wait_seconds: float | None = None, raise_if_busy: bool = False
) -> Iterator[bool]:
    """Hold the advisory lock `name` for the block. Waits up to `wait_seconds` (None: as long as it takes,
    0: one try) and yields True if held, False if not (or raises `LockBusyError` with `raise_if_busy`).
    A lock that was taken is always released on exit, even when the block raises."""
    held = _acquire(conn, name, wait_seconds)
    if not held and raise_if_busy:
        raise LockBusyError(name)
    try:
        yield held
    finally:
        if held and not conn.closed:
            conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (name,))


@contextlib.contextmanager
def order_lock(
    conn: psycopg.Connection,
    instance: str,
    sale_id: str,
    *,
    wait_seconds: float | None = None,
    raise_if_busy: bool = False,
) -> Iterator[bool]:
    """Hold the lock for one order (see `advisory_lock`); `raise_if_busy` raises `OrderLockedError`."""
    with advisory_lock(conn, order_lock_name(instance, sale_id), wait_seconds=wait_seconds) as held:
        if not held and raise_if_busy:
            raise OrderLockedError(instance, sale_id)
        yield held


def lock_held_elsewhere(conn: psycopg.Connection, name: str) -> bool:
    """Whether another session holds `name` right now (a snapshot: for status displays, not for deciding)."""
    row = conn.execute(
        "SELECT count(*) FROM pg_locks l, (SELECT hashtextextended(%s, 0) AS k) h "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.pid <> pg_backend_pid() "
        "AND l.classid = ((h.k >> 32) & 4294967295)::oid AND l.objid = (h.k & 4294967295)::oid AND l.objsubid = 1",
        (name,),
    ).fetchone()
    return int(row[0]) > 0


def _acquire(conn: psycopg.Connection, name: str, wait_seconds: float | None) -> bool:
    if not conn.autocommit:
        raise ValueError("advisory locks here are per session: use a connection with autocommit=True")
    if wait_seconds is not None and wait_seconds < 0:
        raise ValueError("wait_seconds must be None (wait forever), 0 (try once) or positive")
    if wait_seconds == 0:
        row = conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (name,)).fetchone()
        return bool(row[0])
    if wait_seconds is None:
        conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (name,))
        return True
    # The server waits (no polling, fair queueing); lock_timeout bounds the wait. SET LOCAL in a transaction
    # of our own keeps the session's own lock_timeout untouched; the session lock outlives that transaction.
    timeout_ms = max(1, round(wait_seconds * 1000))
    try:
        with conn.transaction():
            conn.execute(f"SET LOCAL lock_timeout = {timeout_ms}")
            conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (name,))
    except pg_errors.LockNotAvailable:
        return False
    return True
