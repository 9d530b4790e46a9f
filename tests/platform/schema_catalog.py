"""What the catalogue says about the platform's schemas, as comparable sets (order of columns aside)."""

from __future__ import annotations

from pathlib import Path

import psycopg

from gp_pipelines.schema.model import ANALYTICS_SCHEMA, TABLE_SCHEMAS

SCHEMAS = [*TABLE_SCHEMAS, ANALYTICS_SCHEMA]
FIXTURE = Path(__file__).parent / "fixtures" / "schema_before_alembic.sql"


def catalog(conn: psycopg.Connection) -> dict[str, set[tuple]]:
    def rows(query: str) -> set[tuple]:
        return {tuple(r) for r in conn.execute(query, (SCHEMAS,)).fetchall()}

    return {
        "columns": rows(
            """SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                      pg_get_expr(d.adbin, d.adrelid), a.attidentity
                 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'v') AND a.attnum > 0 AND NOT a.attisdropped"""),
        "constraints": rows(
            """SELECT n.nspname, c.relname, k.conname, pg_get_constraintdef(k.oid)
                 FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY(%s)"""),
        "indexes": rows("SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = ANY(%s)"),
        "views": rows("SELECT schemaname, viewname, definition FROM pg_views WHERE schemaname = ANY(%s)"),
        "functions": rows(
            """SELECT n.nspname, p.proname, pg_get_functiondef(p.oid) FROM pg_proc p
                 JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = ANY(%s)"""),
    }


def differences(left: dict[str, set[tuple]], right: dict[str, set[tuple]]) -> dict[str, tuple[set, set]]:
    return {kind: (left[kind] - right[kind], right[kind] - left[kind])
            for kind in left if left[kind] != right[kind]}


def load_fixture(url: str) -> None:
    """The schema as the code before migrations made it (tests/platform/fixtures), loaded into `url`."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(FIXTURE.read_text())
