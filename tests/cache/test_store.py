"""Entity registry and cache store: one declaration per entity, idempotent DDL, exact set-based writes."""

from __future__ import annotations

import threading

import psycopg
import pytest

from gp_pipelines.cin7 import store
from gp_pipelines.cin7.entities import ENTITIES, availability_id, entity
from gp_pipelines.cin7.store import CACHE_SCHEMA, StagedRecord, ensure_cache_schema

REQUIRED = ["me", "products", "product_availability", "customers", "suppliers", "locations", "price_tiers",
            "carriers", "sales", "purchases", "stock_transfers", "stock_adjustments", "finished_goods"]


def test_registry_declares_every_entity_once():
    assert set(REQUIRED) <= set(ENTITIES)
    assert entity("sales").has_detail and entity("sales").incremental
    assert entity("purchases").has_detail and entity("purchases").incremental
    assert not entity("product_availability").incremental
    assert entity("products").params["IncludeDeprecated"] is True  # deprecated records are kept
    assert list(ENTITIES).index("locations") < list(ENTITIES).index("sales")
    with pytest.raises(KeyError, match="known: me, "):
        entity("invoices")


def test_availability_id_is_stable_and_distinguishes_bins_and_batches():
    row = {"ID": "p1", "Location": "Main", "Bin": "A1", "Batch": "", "OnHand": 3}
    assert availability_id(row) == availability_id({**row, "OnHand": 9})  # quantities are not identity
    assert availability_id(row) != availability_id({**row, "Bin": "A2"})
    assert availability_id(row) != availability_id({**row, "Batch": "B7"})
    assert availability_id({**row, "Batch": None}) == availability_id(row)
    assert len(availability_id(row)) == 32


def test_schema_creation_is_idempotent_and_safe_under_concurrent_callers(pg_server_url):
    from gp_pipelines import database

    name = "t_cache_ddl_race"
    database.drop_database(pg_server_url, name)
    url = database.ensure_database(pg_server_url, name)
    try:
        errors: list[BaseException] = []

        def create():
            try:
                ensure_cache_schema(url)
            except BaseException as exc:  # pragma: no cover - the failure is the assertion
                errors.append(exc)

        threads = [threading.Thread(target=create) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        ensure_cache_schema(url)
        with psycopg.connect(url, autocommit=True) as conn:
            tables = {r[0] for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (CACHE_SCHEMA,))}
            columns = [r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
                "AND table_name = 'sales' ORDER BY ordinal_position", (CACHE_SCHEMA,))]
            pk = conn.execute(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'erp_cache.sales'::regclass "
                "AND contype = 'p'").fetchone()[0]
        assert set(REQUIRED) | {"sync_state"} <= tables
        for column in ("instance", "id", "modified_at", "payload", "synced_at", "deleted_at"):
            assert column in columns
        assert pk == "PRIMARY KEY (instance, id)"
    finally:
        database.drop_database(pg_server_url, name)


def _write(conn, records, instance="au", verified=False):
    with conn.transaction():
        return store.upsert_records(conn, instance, entity("customers"), records, verified=verified)


def test_upsert_counts_exactly_and_skips_unchanged_payloads(module_database_url):
    ensure_cache_schema(module_database_url)
    conn = store.connect(module_database_url)
    try:
        store.start_sync(conn)
        a = StagedRecord.of("a", {"ID": "a", "Name": "Alpha", "n": 1.5}, "2026-01-01T00:00:00.000Z")
        b = StagedRecord.of("b", {"ID": "b", "Name": "Beta"}, "2026-01-02T00:00:00.000Z")
        counts = _write(conn, [a, b])
        assert (counts.inserted, counts.updated) == (2, 0)
        xmin_before = conn.execute("SELECT xmin::text FROM erp_cache.customers WHERE id = 'a'").fetchone()[0]

        # Same payloads (keys in another order are the same canonical JSON): no write at all.
        again = StagedRecord.of("a", {"n": 1.5, "Name": "Alpha", "ID": "a"}, "2026-01-01T00:00:00.000Z")
        counts = _write(conn, [again, b])
        assert (counts.inserted, counts.updated) == (0, 0)
        assert conn.execute("SELECT xmin::text FROM erp_cache.customers WHERE id = 'a'").fetchone()[0] == xmin_before

        # One changed, one new, one duplicated within the batch (the last version wins).
        b2 = StagedRecord.of("b", {"ID": "b", "Name": "Beta 2"}, "2026-01-03T00:00:00.000Z")
        c1 = StagedRecord.of("c", {"ID": "c", "v": 1}, None)
        c2 = StagedRecord.of("c", {"ID": "c", "v": 2}, None)
        counts = _write(conn, [b2, c1, c2])
        assert (counts.inserted, counts.updated) == (1, 1)
        row = conn.execute("SELECT payload, modified_at FROM erp_cache.customers WHERE id = 'b'").fetchone()
        assert row[0] == {"ID": "b", "Name": "Beta 2"} and row[1].isoformat() == "2026-01-03T00:00:00+00:00"
        assert conn.execute("SELECT payload->>'v' FROM erp_cache.customers WHERE id = 'c'").fetchone()[0] == "2"

        # A deleted row that is read again comes back (counted as updated) with deleted_at cleared.
        conn.execute("UPDATE erp_cache.customers SET deleted_at = now() WHERE id = 'a'")
        counts = _write(conn, [again])
        assert (counts.inserted, counts.updated) == (0, 1)
        assert conn.execute("SELECT deleted_at FROM erp_cache.customers WHERE id = 'a'").fetchone()[0] is None

        # Another instance with the same id is another row.
        counts = _write(conn, [a], instance="nz")
        assert counts.inserted == 1
        assert store.live_count(conn, "au", entity("customers")) == 3
        assert store.unchanged_count(conn) == 0  # every id seen was written at least once
    finally:
        conn.close()
