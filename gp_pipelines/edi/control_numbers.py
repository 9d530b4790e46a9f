"""Persistent control numbers per trading partner: `automation.edi_control_numbers` in PostgreSQL.

One row per (partner, kind) with the last number handed out. Allocation is one atomic
`INSERT ... ON CONFLICT DO UPDATE ... RETURNING`, so concurrent writers never get the same number; the
sequence wraps from 999999999 back to 1.
"""

from __future__ import annotations

import psycopg

from gp_pipelines.edi.writer import MAX_CONTROL_NUMBER
from gp_pipelines.schema import ensure_schema
from gp_pipelines.schema.automation import CONTROL_NUMBER_KINDS

KINDS = CONTROL_NUMBER_KINDS

_ALLOCATE = """
INSERT INTO automation.edi_control_numbers AS c (partner_id, kind, last_value)
VALUES (%(partner)s, %(kind)s, 1)
ON CONFLICT (partner_id, kind) DO UPDATE
SET last_value = CASE WHEN c.last_value >= %(max)s THEN 1 ELSE c.last_value + 1 END, updated_at = now()
RETURNING last_value
"""


def ensure_table(conn: psycopg.Connection) -> None:
    """The table is part of the platform's schema (gp_pipelines/schema/automation.py): make sure it is current."""
    ensure_schema(conn)


def allocate(conn: psycopg.Connection, partner_id: str, kind: str) -> int:
    """The next control number of `kind` for `partner_id` (committed with the caller's transaction)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    row = conn.execute(_ALLOCATE, {"partner": partner_id, "kind": kind, "max": MAX_CONTROL_NUMBER}).fetchone()
    return int(row[0])


def set_last(conn: psycopg.Connection, partner_id: str, kind: str, last_value: int) -> None:
    """Start a partner's sequence after `last_value` (e.g. when taking over from another translator)."""
    conn.execute(
        "INSERT INTO automation.edi_control_numbers (partner_id, kind, last_value) VALUES (%s, %s, %s) "
        "ON CONFLICT (partner_id, kind) DO UPDATE SET last_value = EXCLUDED.last_value, updated_at = now()",
        (partner_id, kind, last_value),
    )


class PostgresControlNumbers:
    """A `ControlNumberSource` for one partner over a connection or a URL (the platform database by default).

    With a URL each number is allocated and committed on its own connection; pass a connection to make the
    numbers part of the caller's transaction (e.g. committed together with the outbound file record).
    """

    def __init__(self, partner_id: str, conninfo: str | psycopg.Connection | None = None) -> None:
        self.partner_id = partner_id
        if conninfo is None:
            from gp_pipelines.database import database_url

            conninfo = database_url()
        self._conn = conninfo if isinstance(conninfo, psycopg.Connection) else None
        self._url = conninfo if isinstance(conninfo, str) else None
        self._table_ready = False

    def next_number(self, kind: str) -> int:
        if self._conn is not None:
            return self._allocate(self._conn)(kind)
        with psycopg.connect(self._url, autocommit=True) as conn:
            return self._allocate(conn)(kind)

    def _allocate(self, conn: psycopg.Connection):
        if not self._table_ready:
            ensure_table(conn)
            self._table_ready = True
        return lambda kind: allocate(conn, self.partner_id, kind)
