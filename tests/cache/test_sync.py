"""The sync engine against the sandbox over real HTTP and a real PostgreSQL: the cache equals the truth.

The tests in this module run in order on one sandbox and one database: initial load, a quiet rerun,
trading, hard deletes, ghosts, locking.
"""

from __future__ import annotations

import threading

import psycopg
import pytest

from gp_pipelines.cin7.completeness import check_entity
from gp_pipelines.cin7.entities import ENTITIES, entity
from gp_pipelines.cin7.store import SYNC_PENDING, SYNC_STATE
from gp_pipelines.cin7.sync import sync_entity
from gp_pipelines.sandbox.cin7 import SandboxServer

from .helpers import assert_cache_equals_truth, cached, client_for, control, options, truth

INSTANCES = ("au", "nz", "us")


@pytest.fixture(scope="module")
def server():
    with SandboxServer(options()) as srv:
        yield srv


@pytest.fixture(scope="module")
def url(module_database_url):
    return module_database_url


def _sync_all(server, url, instance, **kwargs):
    results = {}
    with client_for(server, instance) as client:
        for item in ENTITIES.values():
            results[item.name] = sync_entity(url, client, instance, item, **kwargs)
    return results


def test_initial_sync_of_every_instance_equals_the_truth_with_exact_counts(server, url, db):
    for instance in INSTANCES:
        results = _sync_all(server, url, instance)
        assert_cache_equals_truth(db, server, instance)
        for name, result in results.items():
            expected = len(truth(server, instance, entity(name)))
            assert (result.inserted, result.updated, result.unchanged, result.deleted) == (expected, 0, 0, 0), name
        sales = results["sales"]
        # One list page, one detail call per sale, nothing else.
        assert sales.detail_calls == sales.inserted and sales.list_calls == 1
        assert sales.api_calls == sales.inserted + 1 and sales.retries == 0
        assert sales.mode == "initial" and sales.watermark is not None
        with client_for(server, instance) as client:
            for item in ENTITIES.values():
                proof = check_entity(url, client, instance, item)
                assert proof.passed and proof.api_total == proof.cache_count, item.name


def test_a_quiet_rerun_writes_nothing_and_reads_no_detail(server, url, db):
    xmin = db.execute("SELECT sum(xmin::text::bigint) FROM erp_cache.sales").fetchone()[0]
    results = _sync_all(server, url, "au", sweep=0)
    for name, result in results.items():
        assert (result.inserted, result.updated, result.deleted) == (0, 0, 0), name
    assert results["sales"].detail_calls == 0 and results["sales"].api_calls == 1
    assert results["stock_transfers"].detail_calls == 0  # since-less documents: list-row hash unchanged
    assert db.execute("SELECT sum(xmin::text::bigint) FROM erp_cache.sales").fetchone()[0] == xmin


def test_incremental_after_trading_reads_only_changed_documents(server, url, db):
    before = db.execute(f"SELECT watermark FROM {SYNC_STATE} WHERE instance='au' AND entity='sales'").fetchone()[0]
    advanced = control(server, "advance", {"days": 2})["instances"]["au"]
    changed = set(advanced["changed_sale_ids"])
    assert changed
    with client_for(server, "au") as client:
        sales = sync_entity(url, client, "au", entity("sales"), sweep=0)
    assert sales.mode == "incremental"
    assert sales.detail_calls == len(changed)  # the floor: one detail call per changed document
    assert sales.api_calls == len(changed) + sales.list_calls and sales.list_calls == 1
    assert sales.inserted == advanced["counts"].get("new_sales", 0)
    assert sales.inserted + sales.updated == len(changed)
    assert sales.watermark > before
    _sync_all(server, url, "au")
    assert_cache_equals_truth(db, server, "au")
    # Voided sales and deprecated master data stay, with their status.
    assert db.execute("SELECT count(*) FROM erp_cache.sales WHERE payload->>'Status' = 'VOIDED' "
                      "AND deleted_at IS NULL").fetchone()[0] > 0
    assert db.execute("SELECT count(*) FROM erp_cache.products WHERE payload->>'Status' = 'Deprecated' "
                      "AND deleted_at IS NULL").fetchone()[0] > 0


def test_hard_deletes_are_found_by_the_full_reconcile_and_rows_come_back(server, url, db):
    deleted = control(server, "hard-delete", {"instance": "au", "count": 2})["deleted"]
    assert len(deleted) == 2
    with client_for(server, "au") as client:
        incremental = sync_entity(url, client, "au", entity("sales"), sweep=0)
        assert incremental.deleted == 0  # no change feed for hard deletes
        full = sync_entity(url, client, "au", entity("sales"), mode="reconcile", sweep=0)
    # The reconcile walks the whole list and reads no detail (the full mode would re-read every document).
    assert full.deleted == 2 and full.reconciled and full.detail_calls == 0
    rows = db.execute("SELECT id FROM erp_cache.sales WHERE instance='au' AND deleted_at IS NOT NULL").fetchall()
    assert {r[0] for r in rows} == set(deleted)
    assert_cache_equals_truth(db, server, "au", [entity("sales")])
    # A row wrongly marked deleted comes back on the next complete read (undelete, no detail call needed).
    some = next(iter(cached(db, "au", entity("customers"))))
    db.execute("UPDATE erp_cache.customers SET deleted_at = now() WHERE instance='au' AND id=%s", (some,))
    with client_for(server, "au") as client:
        result = sync_entity(url, client, "au", entity("customers"), mode="reconcile")
    assert result.updated == 1 and result.deleted == 0
    assert_cache_equals_truth(db, server, "au", [entity("customers")])


def test_the_sweep_repairs_a_ghost_the_change_feed_missed(server, url, db):
    with client_for(server, "nz") as client:
        sync_entity(url, client, "nz", entity("sales"), sweep=0)  # catch up with the trading first
    # A cached document silently wrong, with a stamp the change feed will never list again.
    ghost = db.execute("SELECT id FROM erp_cache.sales WHERE instance='nz' AND deleted_at IS NULL "
                       "ORDER BY modified_at LIMIT 1").fetchone()[0]
    db.execute("UPDATE erp_cache.sales SET payload = payload || '{\"Note\": \"ghost\"}', payload_hash = 'x', "
               "verified_at = '2000-01-01' WHERE instance='nz' AND id=%s", (ghost,))
    with client_for(server, "nz") as client:
        result = sync_entity(url, client, "nz", entity("sales"), sweep=3)
    assert result.swept == 3 and result.updated == 1 and result.detail_calls == 3
    assert_cache_equals_truth(db, server, "nz", [entity("sales")])
    verified = db.execute("SELECT verified_at > now() - interval '1 minute' FROM erp_cache.sales "
                          "WHERE instance='nz' AND id=%s", (ghost,)).fetchone()[0]
    assert verified


def test_a_sync_skips_or_waits_while_another_holds_the_lock(server, url):
    holder = psycopg.connect(url, autocommit=True)
    try:
        holder.execute("SELECT pg_advisory_lock(hashtextextended('gp.sync:us:sales', 0))")
        with client_for(server, "us") as client:
            skipped = sync_entity(url, client, "us", entity("sales"), wait_for_lock=False)
            assert skipped.skipped_locked and skipped.api_calls == 0
            done = threading.Event()
            results = []

            def waiting_sync():
                with client_for(server, "us") as other:
                    results.append(sync_entity(url, other, "us", entity("sales")))
                done.set()

            thread = threading.Thread(target=waiting_sync)
            thread.start()
            assert not done.wait(0.5)  # blocked on the lock
            holder.execute("SELECT pg_advisory_unlock(hashtextextended('gp.sync:us:sales', 0))")
            assert done.wait(30)
            thread.join()
        assert not results[0].skipped_locked
    finally:
        holder.close()


def test_metadata_is_flat_and_pending_is_empty(server, url, db):
    with client_for(server, "au") as client:
        result = sync_entity(url, client, "au", entity("purchases"))
    metadata = result.as_metadata()
    assert all(isinstance(v, (int, float, str, bool, type(None))) for v in metadata.values())
    assert {"inserted", "updated", "unchanged", "deleted", "api_calls", "seconds_waited", "watermark"} <= set(metadata)
    assert db.execute(f"SELECT count(*) FROM {SYNC_PENDING}").fetchone()[0] == 0
