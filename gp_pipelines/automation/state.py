"""The automation's durable state (DESIGN.md §6): one current state per sale, fulfilment, shipment and inbound
partner file, and an append-only history of every change (state, time, cause, actor).

The state is the automation's own record; the ERP cache and the outbox stay what they are. Nothing here decides
what happens next: `automation.reconcile` reads these rows and computes the next action, so a sensor tick, an
outbox retry, a re-run and the first run all lead to the same step.

- `automation.sales`: one row per sale the automation took on, with the routing offer's lease and attempts (a
  run that dies or fails lets the sale be offered again), what is still backordered, and how long it has waited.
- `automation.fulfilments`: one row per planned fulfilment (a Cin7 fulfilment task at one location).
- `automation.shipments`: one row per shipment a 3PL reported, identified by its content, not its file name.
- `automation.inbound_files`: one row per file listed in a partner's inbox (name, size, time), with the run's
  lease and attempts, the stored file once fetched, and whether it has been moved out of the inbox.
- `automation.state_history`: every transition of any of them.
- `automation.settings`: values the automation keeps, such as the routing start line.

`transition` is the one way a state changes: it updates the row and appends the history in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from gp_pipelines.automation.schema import ensure_automation_schema

# The states are listed with the CHECK constraints that hold them; other modules import them from here.
from gp_pipelines.schema.automation import (  # noqa: F401
    FILE_FINAL,
    FILE_STATES,
    FULFILMENT_STATES,
    SALE_FINAL,
    SALE_STATES,
    SHIPMENT_STATES,
)


@dataclass(frozen=True)
class StateKind:
    """One kind of thing with a state: where its rows live and what identifies one."""

    name: str
    table: str
    key_columns: tuple[str, ...]
    states: tuple[str, ...]

    def subject(self, key: Sequence[Any]) -> str:
        """How the history names one of them (`instance` is kept apart when the key starts with it)."""
        parts = [str(part) for part in key]
        return "/".join(parts[1:] if self.key_columns[0] == "instance" else parts)


SALE = StateKind("sale", "automation.sales", ("instance", "sale_id"), SALE_STATES)
FULFILMENT = StateKind("fulfilment", "automation.fulfilments", ("instance", "sale_id", "seq"), FULFILMENT_STATES)
SHIPMENT = StateKind("shipment", "automation.shipments", ("id",), SHIPMENT_STATES)
INBOUND_FILE = StateKind("file", "automation.inbound_files", ("id",), FILE_STATES)


def ensure_state_tables(conn: psycopg.Connection) -> None:
    """The state tables are part of the platform's schema: make sure it is current (see `ensure_schema`)."""
    ensure_automation_schema(conn)


# ---------------------------------------------------------------- transitions


def transition(
    conn: psycopg.Connection,
    kind: StateKind,
    key: Sequence[Any],
    to_state: str,
    *,
    cause: str,
    actor: str | None = None,
    changes: Mapping[str, Any] | None = None,
) -> str | None:
    """Set one row's state (and any other `changes`), appending the history when the state changes.

    Returns the state it had before (None when the row is missing: nothing is written then). Runs in its own
    transaction, or as a savepoint of the caller's, so row and history commit together."""
    if to_state not in kind.states:
        raise ValueError(f"{to_state!r} is not a {kind.name} state ({', '.join(kind.states)})")
    where = sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(column)) for column in kind.key_columns)
    table = sql.SQL(kind.table)
    with conn.transaction():
        row = conn.execute(sql.SQL("SELECT state FROM {} WHERE {} FOR UPDATE").format(table, where),
                           list(key)).fetchone()  # fmt: skip
        if row is None:
            return None
        previous = row[0]
        updates = {**dict(changes or {}), "state": to_state}
        assignments = sql.SQL(", ").join(
            [sql.SQL("{} = %s").format(sql.Identifier(column)) for column in updates]
            + [sql.SQL("updated_at = now()")]
        )
        values = [Jsonb(value) if isinstance(value, dict | list) else value for value in updates.values()]
        conn.execute(sql.SQL("UPDATE {} SET {} WHERE {}").format(table, assignments, where), [*values, *key])
        if previous != to_state:
            record_history(conn, kind, key, previous, to_state, cause=cause, actor=actor)
    return previous


def record_history(
    conn: psycopg.Connection,
    kind: StateKind,
    key: Sequence[Any],
    from_state: str | None,
    to_state: str,
    *,
    cause: str,
    actor: str | None = None,
) -> None:
    """Append one history row (for a row created in a state, `from_state` is None)."""
    instance = str(key[0]) if kind.key_columns[0] == "instance" else None
    conn.execute(
        "INSERT INTO automation.state_history (kind, instance, subject, from_state, to_state, cause, actor) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (kind.name, instance, kind.subject(key), from_state, to_state, cause[:1000].replace("\x00", "\\x00"), actor),
    )


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    from_state: str | None
    to_state: str
    cause: str
    actor: str | None


def history(conn: psycopg.Connection, kind: StateKind, key: Sequence[Any]) -> list[HistoryEntry]:
    """Every transition of one sale, fulfilment, shipment or file, oldest first."""
    instance = str(key[0]) if kind.key_columns[0] == "instance" else None
    rows = conn.execute(
        "SELECT at, from_state, to_state, cause, actor FROM automation.state_history "
        "WHERE kind = %s AND instance IS NOT DISTINCT FROM %s AND subject = %s ORDER BY id",
        (kind.name, instance, kind.subject(key)),
    ).fetchall()
    return [HistoryEntry(*row) for row in rows]


def states_path(conn: psycopg.Connection, kind: StateKind, key: Sequence[Any]) -> list[str]:
    """The states one thing went through, in order (its history's `to_state`s)."""
    return [entry.to_state for entry in history(conn, kind, key)]


def counts_by_state(conn: psycopg.Connection, kind: StateKind) -> dict[str, int]:
    """How many rows of a kind are in each state (every state present, zero included)."""
    counts = dict.fromkeys(kind.states, 0)
    query = sql.SQL("SELECT state, count(*) FROM {} GROUP BY state").format(sql.SQL(kind.table))
    for state, count in conn.execute(query).fetchall():
        counts[state] = int(count)
    return counts


# ---------------------------------------------------------------- settings: the start line

START_LINE = "route_orders_since"


def start_line(conn: psycopg.Connection, configured: datetime | None = None, *, actor: str | None = None,
               now: datetime | None = None) -> datetime:
    """The routing start line: the configured one, else the one stored when the automation first ran (stored now
    if this is the first run). Sales ordered before its day are not routed unless an operator admits them."""
    if configured is not None:
        return configured
    moment = now or datetime.now(UTC)
    with conn.transaction():
        conn.execute(
            "INSERT INTO automation.settings (key, value, set_by) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (START_LINE, Jsonb(moment.isoformat()), actor),
        )
        value = conn.execute("SELECT value FROM automation.settings WHERE key = %s", (START_LINE,)).fetchone()[0]
    return datetime.fromisoformat(value)


def rows(conn: psycopg.Connection, query: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[dict[str, Any]]:
    """A query's rows as dicts (the state modules read many small row sets)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()
