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

from gp_pipelines.automation.schema import OUTBOX_ATTENTION_VIEW, ensure_automation_schema

SALE_STATES = (
    "new",  # admitted (after the start line, or by an operator); routing comes next
    "waiting_for_stock",  # nothing could be planned: offered again when the cache shows stock for it
    "held",  # needs a person (no location rules, fulfilled by hand in Cin7 Core); offered again when it changes
    "planned",  # fulfilments written down; their Cin7 tasks are being created
    "fulfilments_created",  # every Cin7 fulfilment task exists; 940s to the 3PLs come next
    "sent_to_3pl",  # every 940 delivered
    "acknowledged",  # every 940 accepted by the 3PL's 997
    "partially_shipped",  # some of it shipped in Cin7 Core
    "shipped",  # every fulfilment shipped in Cin7 Core; tracking to the web store comes next
    "done",  # shipped, tracking posted where the sale came from a store, nothing backordered
    "given_up",  # an outside action for it was given up: an operator requeues it once the cause is fixed
    "cancelled",  # voided or credited in Cin7 Core before we acted
)
FULFILMENT_STATES = (
    "planned", "created", "sent", "acknowledged", "partially_shipped", "shipped", "short_shipped", "handed_over",
    "done", "given_up", "cancelled",
)  # fmt: skip
SHIPMENT_STATES = ("recorded", "shipped_in_cin7", "tracking_posted", "no_tracking_needed", "given_up")
FILE_STATES = (
    "taken",  # a run holds it (lease_until)
    "failed",  # the run failed on an outside system: offered again at next_attempt_at
    "incomplete",  # it changed while we read it: the partner is still writing; a later listing brings it back
    "processed",  # validated, acknowledged, its documents applied
    "duplicate",  # every document in it had been applied before (a re-delivery): acknowledged, nothing done
    "quarantined",  # not X12, invalid, or about something we never sent: kept with the reason, notified
    "unreadable",  # could not be fetched (e.g. permission denied): reported, offered again when it changes
    "dismissed",  # an operator looked at a quarantined or unreadable file and set it aside
    "superseded",  # the partner changed the file before it was processed (or readable): its later listing took over
)
# States that need nobody: a sale, file or shipment in one of these is finished.
SALE_FINAL = ("done", "cancelled")
FILE_FINAL = ("processed", "duplicate", "dismissed", "superseded")


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


def _check(states: Sequence[str]) -> str:
    return ", ".join(f"'{state}'" for state in states)


_DDL = f"""
CREATE TABLE IF NOT EXISTS automation.sales (
    instance text NOT NULL,
    sale_id text NOT NULL,
    order_number text NOT NULL DEFAULT '',
    order_date date,
    sale_updated text NOT NULL DEFAULT '',      -- the sale's LastModifiedOn when we last read it
    state text NOT NULL CHECK (state IN ({_check(SALE_STATES)})),
    reason text,
    plan jsonb,                                 -- the latest routing plan
    snapshot jsonb,                             -- what later steps need from the sale (940 parties, lines)
    store_key text,                             -- the web store the sale came from, if any
    store_order_id text,                        -- and its order there (the sale's ExternalID)
    backordered jsonb NOT NULL DEFAULT '[]',    -- lines no fulfilment covers yet
    rounds integer NOT NULL DEFAULT 0,          -- routing rounds that planned fulfilments
    admitted_by text NOT NULL,                  -- 'start_line' or 'operator:<who>'
    attempts integer NOT NULL DEFAULT 0,        -- routing offers taken by runs
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until timestamptz,                    -- a routing run holds the sale until then
    last_error text,
    stock_checked_at timestamptz,               -- when routing last looked at the cache's stock for it
    waiting_since timestamptz,
    waiting_notified_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (instance, sale_id)
);
CREATE INDEX IF NOT EXISTS sales_open ON automation.sales (state) WHERE state NOT IN ({_check(SALE_FINAL)});
CREATE TABLE IF NOT EXISTS automation.fulfilments (
    instance text NOT NULL,
    sale_id text NOT NULL,
    seq int NOT NULL,
    location text NOT NULL,
    partner text,
    depositor_order text NOT NULL,              -- our 940's W0502: unique per instance (a partner serves one)
    task_id text,
    edi_file_id bigint,
    lines jsonb NOT NULL,
    state text NOT NULL,
    shipments jsonb NOT NULL DEFAULT '[]',      -- before automation.shipments existed; carried over on upgrade
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (instance, sale_id, seq)
);
ALTER TABLE automation.fulfilments ADD COLUMN IF NOT EXISTS round integer NOT NULL DEFAULT 1;
-- Order numbers repeat across Cin7 accounts: the depositor order is unique per instance, not overall.
ALTER TABLE automation.fulfilments DROP CONSTRAINT IF EXISTS fulfilments_depositor_order_key;
CREATE UNIQUE INDEX IF NOT EXISTS fulfilments_depositor_order ON automation.fulfilments (instance, depositor_order);
ALTER TABLE automation.fulfilments DROP CONSTRAINT IF EXISTS fulfilments_state_check;
ALTER TABLE automation.fulfilments ADD CONSTRAINT fulfilments_state_check
    CHECK (state IN ({_check(FULFILMENT_STATES)}));
CREATE INDEX IF NOT EXISTS fulfilments_open ON automation.fulfilments (instance, location)
    WHERE state IN ('planned', 'created', 'sent');
CREATE TABLE IF NOT EXISTS automation.shipments (
    id bigserial PRIMARY KEY,
    instance text NOT NULL,
    sale_id text NOT NULL,
    seq int NOT NULL,
    shipment_key text NOT NULL UNIQUE,          -- the fulfilment and the content of the shipment, hashed
    partner text,
    file_id bigint,                             -- the file that first reported it
    ship_date text NOT NULL DEFAULT '',
    carrier text NOT NULL DEFAULT '',
    tracking_number text NOT NULL DEFAULT '',
    tracking_url text NOT NULL DEFAULT '',
    lines jsonb NOT NULL,                       -- SKU -> quantity shipped in this shipment
    final boolean NOT NULL DEFAULT false,       -- the 3PL says nothing more follows (a short-ship)
    state text NOT NULL CHECK (state IN ({_check(SHIPMENT_STATES)})),
    reason text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (instance, sale_id, seq) REFERENCES automation.fulfilments (instance, sale_id, seq)
);
CREATE INDEX IF NOT EXISTS shipments_fulfilment ON automation.shipments (instance, sale_id, seq, id);
CREATE TABLE IF NOT EXISTS automation.inbound_files (
    id bigserial PRIMARY KEY,
    partner text NOT NULL,
    name text NOT NULL,                         -- the name as a token that round-trips to the exact bytes
    display_name text NOT NULL,
    listed_size bigint NOT NULL,
    listed_modified timestamptz NOT NULL,
    state text NOT NULL CHECK (state IN ({_check(FILE_STATES)})),
    reason text,
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until timestamptz,
    last_error text,
    file_id bigint,                             -- automation.edi_files, once stored
    content_hash text,
    archived_at timestamptz,                    -- moved out of the partner's inbox
    notified_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (partner, name, listed_size, listed_modified)
);
CREATE INDEX IF NOT EXISTS inbound_files_open ON automation.inbound_files (partner, state)
    WHERE state NOT IN ({_check(FILE_FINAL)}) OR archived_at IS NULL;
CREATE TABLE IF NOT EXISTS automation.state_history (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind text NOT NULL,
    instance text,
    subject text NOT NULL,
    from_state text,
    to_state text NOT NULL,
    cause text NOT NULL,
    actor text
);
CREATE INDEX IF NOT EXISTS state_history_subject ON automation.state_history (kind, instance, subject, id);
CREATE TABLE IF NOT EXISTS automation.settings (
    key text PRIMARY KEY,
    value jsonb NOT NULL,
    set_at timestamptz NOT NULL DEFAULT now(),
    set_by text
);
"""

# Earlier versions kept one row per sale in automation.routed_sales and each fulfilment's shipments inline:
# carried over once, so an upgrade neither routes a sale twice nor forgets a shipment.
_CARRY_OVER = """
DO $$
BEGIN
  IF to_regclass('automation.routed_sales') IS NOT NULL THEN
    INSERT INTO automation.sales (instance, sale_id, order_number, sale_updated, state, reason, plan, admitted_by,
                                  rounds, created_at, updated_at)
    SELECT instance, sale_id, order_number, sale_updated,
           CASE state WHEN 'skipped' THEN 'held' ELSE 'planned' END, reason, plan, 'start_line',
           CASE state WHEN 'skipped' THEN 0 ELSE 1 END, created_at, updated_at
      FROM automation.routed_sales
    ON CONFLICT DO NOTHING;
  END IF;
  INSERT INTO automation.shipments (instance, sale_id, seq, shipment_key, partner, carrier, tracking_number, lines,
                                    state)
  SELECT f.instance, f.sale_id, f.seq, 'carried-over:' || (s->>'outbox_key'), f.partner,
         coalesce(s->>'carrier', ''), coalesce(s->>'tracking_number', ''), coalesce(s->'lines', '{}'),
         'shipped_in_cin7'
    FROM automation.fulfilments f, jsonb_array_elements(f.shipments) s
   WHERE s ? 'outbox_key'
  ON CONFLICT DO NOTHING;
END $$;
"""


def ensure_state_tables(conn: psycopg.Connection) -> None:
    """Create the state tables (idempotent, safe when several processes start at once)."""
    ensure_automation_schema(conn)
    present = conn.execute("SELECT to_regclass('automation.settings') IS NOT NULL").fetchone()[0]
    if present:
        return
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('gp.ddl.automation.state', 0))")
        if conn.execute("SELECT to_regclass('automation.settings') IS NOT NULL").fetchone()[0]:
            return
        conn.execute(_DDL)
        conn.execute(_CARRY_OVER)
        conn.execute(OUTBOX_ATTENTION_VIEW)  # it lists failing items too since this version


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
