"""The `automation` schema's core tables (DESIGN.md §3, §6): the outbox, the audit log, sent notifications.

The tables are described in `gp_pipelines/schema/automation.py` and migrated with the rest of the platform's
schema; `ensure_automation_schema(conn)` only makes sure the database is at this release's revision.

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

from gp_pipelines.schema import ensure_schema
from gp_pipelines.schema.automation import OUTBOX_STATES
from gp_pipelines.schema.derived import OUTBOX_ATTENTION_VIEW, STUCK_AFTER
from gp_pipelines.schema.model import AUTOMATION_SCHEMA

__all__ = ["AUTOMATION_SCHEMA", "OUTBOX_ATTENTION_VIEW", "OUTBOX_STATES", "STUCK_AFTER", "dumps_json",
           "ensure_automation_schema", "record_audit"]

# Payloads and results may carry dates and Decimals (Cin7 amounts): stored as their text, never refused.
dumps_json = partial(json.dumps, default=str)


def ensure_automation_schema(conn: psycopg.Connection) -> None:
    """The platform's schema (tables in gp_pipelines/schema/automation.py) is current; see `ensure_schema`."""
    ensure_schema(conn)


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
