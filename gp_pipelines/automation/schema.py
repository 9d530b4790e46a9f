"""The `automation` schema's core tables (DESIGN.md §3, §6): the outbox, the audit log, sent notifications.

`ensure_automation_schema(conn)` is the one entry point: every module that keeps tables under `automation`
(routing, EDI logs, control numbers) calls it first, then creates its own tables. It is idempotent and safe
when several processes start at once (the DDL runs under a transaction-scoped advisory lock).

- `automation.outbox`: one row per intended outside action, unique by `key`. States: `pending` (never tried),
  `running` (claimed; `lease_until` says until when the claimer is trusted), `failed` (tried, will retry at
  `next_attempt_at`), `done`, `given_up` (permanent error, or still failing after the configured window).
- `automation.audit_log`: one row per state change or decision, with who made it (`actor`: a Dagster run id,
  a sensor name, a user).
- `automation.notifications`: one row per notification key, so the same event notifies once.
- `automation.outbox_attention`: what an operator must look at: given-up and failed items, items overdue by
  more than `STUCK_AFTER`, running items whose lease expired (their worker died).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import partial
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

AUTOMATION_SCHEMA = "automation"
OUTBOX_STATES = ("pending", "running", "failed", "done", "given_up")
# A due item normally runs within a sensor tick or two; one still waiting this long past its time is stuck.
STUCK_AFTER = "15 minutes"
_DDL_LOCK = "gp.ddl.automation"

# Payloads and results may carry dates and Decimals (Cin7 amounts): stored as their text, never refused.
dumps_json = partial(json.dumps, default=str)

_TABLES = ("outbox", "audit_log", "notifications")
# What an operator must look at: every item given up or failing (with its last error), items overdue by more than
# STUCK_AFTER, running items whose worker died. `status`, `outbox list` and the automation assets all read it.
OUTBOX_ATTENTION_VIEW = f"""CREATE OR REPLACE VIEW {AUTOMATION_SCHEMA}.outbox_attention AS
    SELECT o.id, o.key, o.kind, o.instance, o.subject, o.state, o.attempts,
           CASE WHEN o.state = 'given_up' THEN 'given_up'
                WHEN o.state = 'running' THEN 'lease_expired'
                WHEN o.state = 'failed' THEN 'failed'
                ELSE 'overdue' END AS reason,
           now() - o.created_at AS age,
           o.created_at, o.updated_at, o.next_attempt_at, o.lease_until, o.last_error,
           -- columns are only added at the end: CREATE OR REPLACE VIEW keeps the ones an older version made
           CASE WHEN o.state = 'pending' THEN o.created_at ELSE o.updated_at END AS since
    FROM {AUTOMATION_SCHEMA}.outbox o
    WHERE o.state IN ('given_up', 'failed')
       OR (o.state = 'pending' AND o.next_attempt_at < now() - interval '{STUCK_AFTER}')
       OR (o.state = 'running' AND o.lease_until < now())"""
_VIEWS = ("outbox_attention",)

_DDL = (
    f"CREATE SCHEMA IF NOT EXISTS {AUTOMATION_SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {AUTOMATION_SCHEMA}.outbox (
            id bigserial PRIMARY KEY,
            key text NOT NULL UNIQUE,
            kind text NOT NULL,                 -- which handler performs it (e.g. 'send_940', 'ship_sale')
            instance text,                      -- the Cin7 Core instance it concerns, when there is one
            subject text,                       -- what it is about (e.g. the sale id), for grouping and the UI
            payload jsonb NOT NULL DEFAULT '{{}}'::jsonb,
            state text NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'running', 'failed', 'done', 'given_up')),
            attempts integer NOT NULL DEFAULT 0,  -- times started (a crashed attempt counts too)
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            next_attempt_at timestamptz NOT NULL DEFAULT now(),
            lease_until timestamptz,            -- set while running: after it, the worker is presumed dead
            last_error text,
            result jsonb,                       -- what the outside system answered (ids, tracking numbers)
            done_at timestamptz,
            requeued_at timestamptz             -- an operator retried it: the give-up window restarts here
        )""",
    f"""CREATE INDEX IF NOT EXISTS outbox_due_idx ON {AUTOMATION_SCHEMA}.outbox (next_attempt_at)
        WHERE state IN ('pending', 'failed')""",
    f"""CREATE INDEX IF NOT EXISTS outbox_lease_idx ON {AUTOMATION_SCHEMA}.outbox (lease_until)
        WHERE state = 'running'""",
    f"CREATE INDEX IF NOT EXISTS outbox_subject_idx ON {AUTOMATION_SCHEMA}.outbox (instance, subject)",
    f"CREATE INDEX IF NOT EXISTS outbox_given_up_idx ON {AUTOMATION_SCHEMA}.outbox (id) WHERE state = 'given_up'",
    f"""CREATE TABLE IF NOT EXISTS {AUTOMATION_SCHEMA}.audit_log (
            id bigserial PRIMARY KEY,
            at timestamptz NOT NULL DEFAULT now(),
            actor text,                         -- Dagster run id, sensor name or user
            instance text,
            subject text,
            action text NOT NULL,               -- e.g. 'outbox.enqueued', 'outbox.done', 'routing.planned'
            outbox_key text,
            detail jsonb NOT NULL DEFAULT '{{}}'::jsonb
        )""",
    f"CREATE INDEX IF NOT EXISTS audit_log_subject_idx ON {AUTOMATION_SCHEMA}.audit_log (instance, subject, at)",
    f"""CREATE INDEX IF NOT EXISTS audit_log_outbox_key_idx ON {AUTOMATION_SCHEMA}.audit_log (outbox_key)
        WHERE outbox_key IS NOT NULL""",
    f"""CREATE TABLE IF NOT EXISTS {AUTOMATION_SCHEMA}.notifications (
            id bigserial PRIMARY KEY,
            key text NOT NULL UNIQUE,
            created_at timestamptz NOT NULL DEFAULT now(),
            subject text NOT NULL,
            body text NOT NULL,
            channels text[] NOT NULL DEFAULT '{{}}',  -- the channels that delivered it
            sent_at timestamptz,                -- set once handled (delivered, or recorded with no channel)
            error text,                         -- per channel, when a channel failed after its retries
            attempts integer NOT NULL DEFAULT 0,
            attempted_at timestamptz
        )""",
    OUTBOX_ATTENTION_VIEW,
)


def ensure_automation_schema(conn: psycopg.Connection) -> None:
    """Create the `automation` schema, its core tables and the attention view; idempotent, safe concurrently."""
    present = conn.execute(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND ((c.relname = ANY(%s) AND c.relkind = 'r') OR (c.relname = ANY(%s) "
        "AND c.relkind = 'v'))",
        (AUTOMATION_SCHEMA, list(_TABLES), list(_VIEWS)),
    ).fetchone()[0]
    if present == len(_TABLES) + len(_VIEWS):
        return
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (_DDL_LOCK,))
        for statement in _DDL:
            conn.execute(statement)


def record_audit(
    conn: psycopg.Connection,
    action: str,
    *,
    actor: str | None = None,
    instance: str | None = None,
    subject: str | None = None,
    outbox_key: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """One row in `automation.audit_log` (committed with the caller's transaction)."""
    conn.execute(
        f"INSERT INTO {AUTOMATION_SCHEMA}.audit_log (actor, instance, subject, action, outbox_key, detail) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        (actor, instance, subject, action, outbox_key, Jsonb(dict(detail or {}), dumps=dumps_json)),
    )
