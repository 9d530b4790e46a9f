"""Objects derived from the tables, holding no data: the warehouse's SQL helper functions, the automation views
the code and operators read, and the dimensions' unknown-member rows.

They are not migrated: `CREATE OR REPLACE` brings any database to the code's version, so `upgrade` (and the
creation of a fresh database) runs `DERIVED_SQL` after the migrations, every time. A migration that changes a
column one of these views reads drops the view first; the upgrade then recreates it. The `analytics` views are
the BI contract and stay with their asset (warehouse/analytics.py), which drops and recreates them (a changed
column type cannot be replaced) and grants them to the BI role on every materialisation.
"""

from __future__ import annotations

from gp_pipelines.schema.model import AUTOMATION_SCHEMA, WAREHOUSE_SCHEMA
from gp_pipelines.schema.warehouse import WAREHOUSE_TABLE_SPECS

A, W = AUTOMATION_SCHEMA, WAREHOUSE_SCHEMA
# A due item normally runs within a sensor tick or two; one still waiting this long past its time is stuck.
STUCK_AFTER = "15 minutes"

WAREHOUSE_FUNCTIONS = (
    f"""CREATE OR REPLACE FUNCTION {W}.json_number(value jsonb) RETURNS numeric
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
    $$ SELECT CASE WHEN jsonb_typeof(value) = 'number' THEN (value #>> '{{}}')::numeric
                   WHEN jsonb_typeof(value) = 'string' AND (value #>> '{{}}') ~ '^\\s*-?[0-9]+(\\.[0-9]+)?\\s*$'
                   THEN (value #>> '{{}}')::numeric END $$""",
    f"""CREATE OR REPLACE FUNCTION {W}.json_date(value text) RETURNS date
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
    $$ SELECT CASE WHEN value ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}' THEN left(value, 10)::date END $$""",
    f"""CREATE OR REPLACE FUNCTION {W}.date_key(value date) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
    $$ SELECT (extract(year FROM value) * 10000 + extract(month FROM value) * 100
               + extract(day FROM value))::integer $$""",
)

# What an operator must look at: every item given up or failing (with its last error), items overdue by more than
# STUCK_AFTER, running items whose worker died. `status`, `outbox list` and the automation assets all read it.
OUTBOX_ATTENTION_VIEW = f"""CREATE OR REPLACE VIEW {A}.outbox_attention AS
    SELECT o.id, o.key, o.kind, o.instance, o.subject, o.state, o.attempts,
           CASE WHEN o.state = 'given_up' THEN 'given_up'
                WHEN o.state = 'running' THEN 'lease_expired'
                WHEN o.state = 'failed' THEN 'failed'
                ELSE 'overdue' END AS reason,
           now() - o.created_at AS age,
           o.created_at, o.updated_at, o.next_attempt_at, o.lease_until, o.last_error,
           -- columns are only added at the end: CREATE OR REPLACE VIEW keeps the ones an older version made
           CASE WHEN o.state = 'pending' THEN o.created_at ELSE o.updated_at END AS since
    FROM {A}.outbox o
    WHERE o.state IN ('given_up', 'failed')
       OR (o.state = 'pending' AND o.next_attempt_at < now() - interval '{STUCK_AFTER}')
       OR (o.state = 'running' AND o.lease_until < now())"""

INTERCHANGE_STATUS_VIEW = f"""CREATE OR REPLACE VIEW {A}.interchange_status AS
SELECT i.partner, i.direction, f.file_name, i.interchange_control, i.group_control, i.functional_id,
       array_to_string(i.set_ids, ',') AS sets, i.set_count,
       CASE WHEN i.state = 'awaiting_ack' AND i.ack_due_at < now() THEN 'ack_overdue' ELSE i.state END AS state,
       i.created_at, i.ack_due_at, i.acked_at, i.ack_detail
  FROM {A}.edi_interchanges i
  LEFT JOIN {A}.edi_files f ON f.id = i.file_id"""

PARTNER_DOCUMENT_STATUS_VIEW = f"""CREATE OR REPLACE VIEW {A}.partner_document_status AS
SELECT d.partner, d.set_id, d.reference, d.po_number, d.sale_id, f.file_name,
       CASE WHEN d.state = 'failed' THEN 'failed' ELSE coalesce(o.state, 'queued') END AS outbox_state,
       f.state AS file_state, d.reason, d.created_at, d.updated_at
  FROM {A}.partner_documents d
  LEFT JOIN {A}.edi_files f ON f.id = d.file_id
  LEFT JOIN {A}.outbox o ON o.key = d.outbox_key"""

AUTOMATION_VIEWS = (OUTBOX_ATTENTION_VIEW, INTERCHANGE_STATUS_VIEW, PARTNER_DOCUMENT_STATUS_VIEW)


def _literal(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def unknown_members_sql() -> list[str]:
    """The key-0 rows of the dimensions; `ON CONFLICT DO NOTHING`, so an existing row (even edited) stays."""
    statements = []
    for spec in WAREHOUSE_TABLE_SPECS:
        if spec.unknown_member:
            columns = ", ".join(spec.unknown_member)
            values = ", ".join(_literal(v) for v in spec.unknown_member.values())
            statements.append(f"INSERT INTO {W}.{spec.name} ({columns}) VALUES ({values}) ON CONFLICT DO NOTHING")
    return statements


DERIVED_SQL: tuple[str, ...] = (*WAREHOUSE_FUNCTIONS, *AUTOMATION_VIEWS)
