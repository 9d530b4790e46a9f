"""Upgrades that keep the data: the schema as the code made it before migrations, filled and upgraded; empty
databases upgraded and created at head; the run-time guard; the metadata and the migrations agreeing."""

from __future__ import annotations

import json
import threading
import time
import uuid
from urllib.parse import urlsplit

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import NullPool, create_engine

from gp_pipelines import database
from gp_pipelines.schema import (
    SchemaOutOfDateError,
    current_revision,
    ensure_schema,
    head_revision,
    metadata,
    migrate,
    upgrade,
)
from gp_pipelines.schema.model import ANALYTICS_SCHEMA
from tests.platform.schema_catalog import catalog, differences, load_fixture

# Values a CHECK constraint accepts, for the generated rows.
CHECKED = {
    ("outbox", "state"): "pending", ("sales", "state"): "new", ("fulfilments", "state"): "planned",
    ("shipments", "state"): "recorded", ("inbound_files", "state"): "taken", ("edi_files", "direction"): "in",
    ("edi_files", "state"): "received", ("edi_interchanges", "direction"): "out",
    ("edi_interchanges", "state"): "awaiting_ack", ("edi_control_numbers", "kind"): "ISA",
    ("partner_orders", "state"): "pending", ("partner_documents", "set_id"): "855",
    ("partner_documents", "state"): "queued", ("relocations", "state"): "running",
}
VALUES = {"text": "x", "integer": 1, "bigint": 1, "boolean": True, "date": "2026-01-02",
          "timestamp with time zone": "2026-01-02T03:04:05Z", "jsonb": json.dumps({"k": 1}), "text[]": ["a"],
          "bytea": b"\x00edi"}


@pytest.fixture
def fresh_url(pg_server_url):
    names = []

    def make() -> str:
        names.append(f"t_mig_{uuid.uuid4().hex[:10]}")
        return database.ensure_database(pg_server_url, names[-1])

    yield make
    for name in names:
        database.drop_database(pg_server_url, name)


def _value(table: str, column: str, type_: str):
    if (table, column) in CHECKED:
        return CHECKED[(table, column)]
    if type_ == "text":
        return f"{column}-1"  # the same in every table: composite foreign keys (shipments → fulfilments) hold
    return 1.5 if type_.startswith("numeric") else VALUES[type_]


def fill_every_table(conn: psycopg.Connection) -> None:
    """One plausible row in every platform table, made from its columns as the catalogue has them (in foreign-key
    order, so file_id 1 and (instance, sale_id, seq) exist where referenced); identities and serials default."""
    for table in metadata.sorted_tables:
        columns = conn.execute(
            """SELECT a.attname, format_type(a.atttypid, a.atttypmod)
                 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
                  AND a.attidentity = '' AND coalesce(pg_get_expr(d.adbin, d.adrelid), '') NOT LIKE 'nextval%%'
                ORDER BY a.attnum""", (table.schema, table.name)).fetchall()
        names = ", ".join(name for name, _ in columns)
        values = [_value(table.name, name, type_) for name, type_ in columns]
        conn.execute(f"INSERT INTO {table.schema}.{table.name} ({names}) VALUES ({', '.join(['%s'] * len(values))})",
                     values)
    # A few rows as the platform writes them: a cached sale, an outbox item that failed, a routed sale.
    sale = {"ID": "s-1", "SaleOrderDate": "2026-01-05T00:00:00", "Order": {"Status": "AUTHORISED",
                                                                         "Lines": [{"SKU": "A", "Quantity": 2}]}}
    conn.execute("INSERT INTO erp_cache.sales (instance, id, modified_at, payload, payload_hash) "
                 "VALUES ('au', 's-1', now(), %s, md5(%s))", (json.dumps(sale), json.dumps(sale)))
    conn.execute("INSERT INTO automation.outbox (key, kind, instance, subject, payload, state, attempts, last_error) "
                 "VALUES ('edi.send:acme:940:SO-1-1', 'edi_send', 'au', 's-1', '{\"file\": 1}', 'failed', 2, "
                 "'sftp down')")
    conn.execute("INSERT INTO automation.sales (instance, sale_id, order_number, state, admitted_by, plan) "
                 "VALUES ('au', 's-1', 'SO-1', 'planned', 'start_line', '{\"fulfilments\": 1}')")


def every_row(conn: psycopg.Connection) -> dict[str, list[str]]:
    return {table.fullname: sorted(r[0] for r in conn.execute(
        f"SELECT to_jsonb(t)::text FROM {table.schema}.{table.name} t").fetchall()) for table in metadata.sorted_tables}


def metadata_differences(url: str) -> list:
    engine = create_engine(database.driver_url(url, "psycopg"), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn, opts=migrate.compare_options()), metadata)
    finally:
        engine.dispose()


def tables_catalog(url: str) -> dict[str, set[tuple]]:
    """The catalogue without the analytics views (derived, made by their asset, not by the schema)."""
    with psycopg.connect(url) as conn:
        found = catalog(conn)
    return {kind: {row for row in rows if row[0] != ANALYTICS_SCHEMA} for kind, rows in found.items()}


def test_a_database_made_before_migrations_is_upgraded_with_every_row(fresh_url):
    url = fresh_url()
    load_fixture(url)
    with psycopg.connect(url, autocommit=True) as conn:
        fill_every_table(conn)
        before = every_row(conn)
    assert all(before.values()), [name for name, rows in before.items() if not rows]
    with pytest.raises(SchemaOutOfDateError):
        ensure_schema(url)  # the running code refuses it until it is upgraded

    assert upgrade(url) == (None, head_revision())

    with psycopg.connect(url, autocommit=True) as conn:
        assert every_row(conn) == before
    assert current_revision(url) == head_revision()
    assert metadata_differences(url) == []
    fresh = fresh_url()
    ensure_schema(fresh)
    assert differences(tables_catalog(url), tables_catalog(fresh)) == {}
    ensure_schema(url)  # and the running code takes it


def test_an_empty_database_is_upgraded_to_head_and_a_second_upgrade_does_nothing(fresh_url):
    url = fresh_url()
    assert current_revision(url) is None
    assert upgrade(url) == (None, head_revision())
    assert metadata_differences(url) == []
    assert upgrade(url) == (head_revision(), head_revision())
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM warehouse.dim_product WHERE product_key = 0").fetchone()[0] == 1


def test_the_migrations_build_what_the_metadata_describes(fresh_url):
    """Fails when a table, column, index or constraint is changed in gp_pipelines/schema without a migration."""
    migrated, created = fresh_url(), fresh_url()
    upgrade(migrated)
    ensure_schema(created)  # straight from the metadata, as the guard makes a fresh database
    assert current_revision(created) == head_revision()
    assert metadata_differences(migrated) == []
    assert metadata_differences(created) == []
    assert differences(tables_catalog(migrated), tables_catalog(created)) == {}


def test_a_fresh_database_is_created_at_head_quickly(fresh_url):
    ensure_schema(fresh_url())  # the first one in a process compiles the DDL
    timings = []
    for _ in range(3):
        url = fresh_url()
        started = time.perf_counter()
        ensure_schema(url)
        timings.append(time.perf_counter() - started)
    assert min(timings) < 0.5, timings
    started = time.perf_counter()
    ensure_schema(url)
    assert time.perf_counter() - started < 0.001  # at head: remembered, no query


def test_the_guard_names_the_revisions_and_the_command_on_one_line(fresh_url, monkeypatch):
    old = fresh_url()
    load_fixture(old)
    with pytest.raises(SchemaOutOfDateError) as made_before:
        ensure_schema(old)
    message = str(made_before.value)
    name = urlsplit(old).path.lstrip("/")
    assert "\n" not in message and name in message and head_revision() in message
    assert "no revision" in message and "gp-pipelines db upgrade" in message
    assert isinstance(made_before.value, database.DatabaseError)

    behind = fresh_url()
    upgrade(behind)
    monkeypatch.setattr(migrate, "head_revision", lambda: "0002_next")
    monkeypatch.setattr(migrate, "_known", lambda revision: True)
    migrate.forget()
    with pytest.raises(SchemaOutOfDateError, match=r"is at revision 0001_baseline, this release needs 0002_next: "
                                                   r"run `gp-pipelines db upgrade`"):
        ensure_schema(behind)


def test_a_database_from_a_newer_release_is_refused_not_migrated(fresh_url):
    url = fresh_url()
    upgrade(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE public.alembic_version SET version_num = '0099_future'")
    migrate.forget()
    with pytest.raises(SchemaOutOfDateError, match="newer release"):
        ensure_schema(url)
    with pytest.raises(SchemaOutOfDateError, match="newer release"):
        upgrade(url)


def test_concurrent_upgrades_and_ensures_are_safe(fresh_url):
    old, empty = fresh_url(), fresh_url()
    load_fixture(old)
    results, errors = [], []

    def run(action, url):
        try:
            results.append((url, action(url)))
        except BaseException as exc:  # pragma: no cover - the failure is the assertion
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(upgrade, old)) for _ in range(3)]
    threads += [threading.Thread(target=run, args=(upgrade, empty)), threading.Thread(target=run,
                                                                                      args=(ensure_schema, empty))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    head = head_revision()
    assert sorted((r for u, r in results if u == old), key=str) == sorted([(None, head), (head, head), (head, head)],
                                                                          key=str)
    assert current_revision(empty) == head and metadata_differences(empty) == []
