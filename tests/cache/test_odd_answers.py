"""The cache never drops or freezes on odd answers: gateway 404s, empty bodies and pages, records stamped ahead,
an API clock stepping back, sustained errors, a database restart, and drift only a full read can see.

Each test gets its own sandbox and database (the faults change the sandbox's state), over real HTTP and a real
PostgreSQL; faults come from the sandbox's own fault injection.
"""

from __future__ import annotations

import contextlib
import math
import uuid
from datetime import timedelta

import psycopg
import pytest

from gp_pipelines import database
from gp_pipelines.cin7.client import RetryPolicy
from gp_pipelines.cin7.completeness import check_entity
from gp_pipelines.cin7.entities import entity
from gp_pipelines.cin7.errors import Cin7BudgetError, Cin7ServerError
from gp_pipelines.cin7.store import SYNC_PENDING, SYNC_STATE
from gp_pipelines.cin7.sync import SyncRules, estimate_full_read, sync_entity
from gp_pipelines.sandbox.cin7 import SandboxServer
from gp_pipelines.sandbox.cin7 import sales as sandbox_sales

from .helpers import assert_cache_equals_truth, cached, client_for, control, options, truth

SALES = entity("sales")
STOCK = entity("product_availability")


@pytest.fixture
def server():
    with SandboxServer(options()) as srv:
        yield srv


@pytest.fixture
def url(pg_server_url):
    name = f"t_odd_{uuid.uuid4().hex[:10]}"
    yield database.ensure_database(pg_server_url, name)
    database.drop_database(pg_server_url, name)


def _force(server: SandboxServer, fault: str, count: int = 1, **extra) -> None:
    control(server, "faults/next", {"fault": fault, "count": count, **extra})


def _state(conn: psycopg.Connection, instance: str, name: str):
    return conn.execute(f"SELECT watermark, last_result FROM {SYNC_STATE} WHERE instance = %s AND entity = %s",
                        (instance, name)).fetchone()


def _stock_synced(url: str, client, db: psycopg.Connection) -> int:
    """Stock synced once; its live row count."""
    sync_entity(url, client, "au", STOCK)
    return len(cached(db, "au", STOCK))


def _edit_sale(server: SandboxServer, instance: str = "au"):
    """A person edits one sale in Cin7: its stamp is the server's clock now."""
    store = server.sandbox.stores[instance]
    record = next(r for r in server.sandbox.records(store, "sales") if r.status != "VOIDED")
    store.mutate_sale(record, lambda doc: (doc.__setitem__("Note", f"edited {uuid.uuid4().hex[:6]}"),
                                           sandbox_sales.touch(store, doc)))
    return record.id


def test_gateway_404s_on_detail_reads_lose_nothing(server, url):
    # One in ten detail reads answered by a proxy's bare 404: retried as transient, never taken as a deletion.
    control(server, "faults", {"spec": "proxy404=0.1"})
    with client_for(server, "au") as client, psycopg.connect(url, autocommit=True) as db:
        result = sync_entity(url, client, "au", SALES)
        control(server, "faults", {"spec": ""})
        assert result.deleted == 0 and result.not_found == 0 and result.retries > 0
        assert_cache_equals_truth(db, server, "au", [SALES])
        assert db.execute("SELECT count(*) FROM erp_cache.sales WHERE deleted_at IS NOT NULL").fetchone()[0] == 0


def test_a_detail_that_keeps_failing_stays_queued_and_holds_the_watermark(server, url):
    # Every attempt at one detail read meets a gateway 404: the run fails and says so, and keeps its place.
    retry = RetryPolicy(max_attempts=2, backoff_base=0.001, backoff_cap=0.001)
    with client_for(server, "au", retry=retry) as client, psycopg.connect(url, autocommit=True) as db:
        sync_entity(url, client, "au", SALES)
        sale_id = _edit_sale(server)
        before = _state(db, "au", "sales")[0]
        original_request = client.request
        calls = []

        def list_then_proxy_404s(*args, **kwargs):
            calls.append(args[1])
            if len(calls) == 2:  # the list was served; both attempts at the detail get the proxy's answer
                _force(server, "proxy404", count=2)
            return original_request(*args, **kwargs)

        client.request = list_then_proxy_404s  # type: ignore[method-assign]
        with pytest.raises(Cin7ServerError, match="stays queued"):
            sync_entity(url, client, "au", SALES, sweep=0)
        client.request = original_request  # type: ignore[method-assign]
        pending = [r[0] for r in db.execute(f"SELECT id FROM {SYNC_PENDING} WHERE entity = 'sales'").fetchall()]
        assert pending == [sale_id]
        assert _state(db, "au", "sales")[0] == before  # the watermark waits for the read
        assert db.execute("SELECT deleted_at FROM erp_cache.sales WHERE id = %s", (sale_id,)).fetchone()[0] is None
        result = sync_entity(url, client, "au", SALES, sweep=0)
        assert result.updated == 1 and result.watermark >= before
        assert_cache_equals_truth(db, server, "au", [SALES])


def test_an_empty_200_is_retried_not_taken_as_an_empty_list(server, url):
    with client_for(server, "au") as client, psycopg.connect(url, autocommit=True) as db:
        live = _stock_synced(url, client, db)
        _force(server, "empty200")
        result = sync_entity(url, client, "au", STOCK)
        assert result.deleted == 0 and result.retries == 1
        assert len(cached(db, "au", STOCK)) == live


def test_an_empty_page_deletes_nothing_and_fails_the_completeness_check(server, url):
    with client_for(server, "au") as client, psycopg.connect(url, autocommit=True) as db:
        live = _stock_synced(url, client, db)
        assert live > 20
        _force(server, "empty_page")
        result = sync_entity(url, client, "au", STOCK)
        assert result.deleted == 0
        assert result.refused_reconcile == {"would_delete": live, "live": live, "max_share": 0.2}
        assert len(cached(db, "au", STOCK)) == live
        proof = check_entity(url, client, "au", STOCK)
        assert not proof.passed and proof.cache_count == proof.api_total == live
        assert proof.problems and "reconcile refused" in proof.problems[0] and str(live) in proof.problems[0]
        # The next good read reconciles again, and the refusal is lifted.
        result = sync_entity(url, client, "au", STOCK)
        assert result.refused_reconcile is None and result.reconciled
        assert check_entity(url, client, "au", STOCK).passed
        assert_cache_equals_truth(db, server, "au", [STOCK])


def test_a_real_mass_deletion_goes_through_once_an_operator_accepts_it(server, url):
    with client_for(server, "au") as client, psycopg.connect(url, autocommit=True) as db:
        live = _stock_synced(url, client, db)
        _force(server, "empty_page")
        sync_entity(url, client, "au", STOCK, rules=SyncRules(accept_deletions=True))
        assert len(cached(db, "au", STOCK)) == 0 and len(cached(db, "au", STOCK, live=False)) == live


def test_a_record_stamped_a_year_ahead_leaves_incremental_sync_working(server, url):
    with client_for(server, "au") as client, psycopg.connect(url, autocommit=True) as db:
        sync_entity(url, client, "au", SALES)
        _force(server, "future_stamp")  # the next list request meets one sale edited with a stamp a year ahead
        result = sync_entity(url, client, "au", SALES, sweep=0)
        assert result.future_stamped == 1 and result.updated == 1
        watermark = _state(db, "au", "sales")[0]
        assert watermark < client.server_time + timedelta(minutes=10)  # bounded by the API's clock
        # Later edits, stamped by the API's real clock, are still found by the change feed.
        edited = _edit_sale(server)
        result = sync_entity(url, client, "au", SALES, sweep=0)
        assert result.updated == 1 and result.detail_calls == 1
        assert cached(db, "au", SALES)[edited] == truth(server, "au", SALES)[edited]
        assert_cache_equals_truth(db, server, "au", [SALES])
        proof = check_entity(url, client, "au", SALES)
        assert proof.passed and "stamped ahead" in proof.problems[0]


def test_a_watermark_already_a_year_ahead_is_repaired(server, url):
    # A database written before the bound existed: its watermark sits a year ahead. The next sync does not trust it.
    with client_for(server, "au") as client, psycopg.connect(url, autocommit=True) as db:
        sync_entity(url, client, "au", SALES)
        db.execute(f"UPDATE {SYNC_STATE} SET watermark = watermark + interval '365 days' WHERE entity = 'sales'")
        edited = _edit_sale(server)
        result = sync_entity(url, client, "au", SALES, sweep=0)
        assert result.updated == 1
        assert cached(db, "au", SALES)[edited] == truth(server, "au", SALES)[edited]
        assert _state(db, "au", "sales")[0] < client.server_time + timedelta(minutes=10)


def test_the_api_clock_stepping_back_an_hour_misses_no_change(server, url):
    with client_for(server, "au") as client, psycopg.connect(url, autocommit=True) as db:
        sync_entity(url, client, "au", SALES)
        _force(server, "clock_step", gap=3600)
        client.get("me")  # the clock steps back an hour as this request is served
        edited = _edit_sale(server)  # stamped an hour before the cache's watermark
        assert truth(server, "au", SALES)[edited]["LastModifiedOn"] < _state(db, "au", "sales")[0].isoformat()
        result = sync_entity(url, client, "au", SALES, sweep=0)
        assert 3500 <= result.clock_step_seconds <= 3700
        assert cached(db, "au", SALES)[edited] == truth(server, "au", SALES)[edited]
        # The watermark follows the API's clock back, so the next change is found without widening again.
        edited = _edit_sale(server)
        result = sync_entity(url, client, "au", SALES, sweep=0)
        assert result.clock_step_seconds == 0 and result.updated == 1
        assert_cache_equals_truth(db, server, "au", [SALES])


def test_forty_percent_errors_still_store_what_was_read(server, url):
    control(server, "faults", {"spec": "error500=0.4"})
    retry = RetryPolicy(max_attempts=3, backoff_base=0.001, backoff_cap=0.002)
    with client_for(server, "au", retry=retry) as client, psycopg.connect(url, autocommit=True) as db:
        listed = len(truth(server, "au", SALES))
        stored_after_each_run = []
        for _ in range(12):
            with contextlib.suppress(Cin7ServerError):
                sync_entity(url, client, "au", SALES, sweep=0)
            stored = len(cached(db, "au", SALES))
            pending = db.execute(f"SELECT count(*) FROM {SYNC_PENDING}").fetchone()[0]
            stored_after_each_run.append(stored)
            if stored:  # what was read is stored; the rest is queued, nothing in between
                assert stored + pending == listed
            if stored == listed and pending == 0:
                break
        control(server, "faults", {"spec": ""})
        assert stored_after_each_run[-1] == listed, stored_after_each_run
        assert stored_after_each_run == sorted(stored_after_each_run)  # progress is never thrown away
        sync_entity(url, client, "au", SALES, sweep=0)
        assert_cache_equals_truth(db, server, "au", [SALES])


def test_a_database_restart_mid_sync_is_reconnected_and_the_sync_finishes(server, url):
    dbname = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with client_for(server, "au") as client, psycopg.connect(url, autocommit=True) as db:
        original_request = client.request
        count = [0]

        def restart_after_thirty_details(*args, **kwargs):
            count[0] += 1
            if count[0] == 30:  # every session of the database is cut, as a server restart does
                db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = %s AND pid <> pg_backend_pid()", (dbname,))
            return original_request(*args, **kwargs)

        client.request = restart_after_thirty_details  # type: ignore[method-assign]
        result = sync_entity(url, client, "au", SALES)
        client.request = original_request  # type: ignore[method-assign]
        assert count[0] > 30 and result.watermark is not None
        assert_cache_equals_truth(db, server, "au", [SALES])


def test_full_mode_repairs_a_document_changed_without_a_list_stamp_change(server, url):
    with client_for(server, "au") as client, psycopg.connect(url, autocommit=True) as db:
        sync_entity(url, client, "au", SALES)
        store = server.sandbox.stores["au"]
        record = next(r for r in server.sandbox.records(store, "sales"))
        doc = store.materialise(record)
        doc["Note"] = "changed behind the change feed"  # no new LastModifiedOn: the list cannot show it
        incremental = sync_entity(url, client, "au", SALES, sweep=0)
        assert incremental.updated == 0
        estimate = estimate_full_read(client, SALES)
        full = sync_entity(url, client, "au", SALES, mode="full", max_calls=estimate.calls + 5)
        assert full.repaired == 1 and full.updated == 1
        assert full.detail_calls == estimate.detail_calls == len(truth(server, "au", SALES))
        assert cached(db, "au", SALES)[record.id]["Note"] == "changed behind the change feed"


def test_a_full_read_over_its_budget_is_refused_before_it_spends(server, url):
    with client_for(server, "au") as client:
        estimate = estimate_full_read(client, SALES)
        calls_before = client.stats.calls
        with pytest.raises(Cin7BudgetError, match=f"about {estimate.calls} calls"):
            sync_entity(url, client, "au", SALES, mode="full", max_calls=estimate.calls - 1)
        assert client.stats.calls - calls_before == 1  # the Total, nothing else


def test_the_rolling_verification_covers_every_document_within_its_period(server, url):
    with client_for(server, "au") as client, psycopg.connect(url, autocommit=True) as db:
        sync_entity(url, client, "au", SALES)
        live = len(cached(db, "au", SALES))
        # A day since the last sync, and every row last verified a week and a day ago.
        db.execute(f"UPDATE {SYNC_STATE} SET last_sync_at = now() - interval '1 day' WHERE entity = 'sales'")
        db.execute("UPDATE erp_cache.sales SET verified_at = now() - interval '8 days'")
        result = sync_entity(url, client, "au", SALES)
        # A day of a 7-day period, with a 10 % margin: every document is re-read within the week.
        assert result.swept >= math.ceil(live * 1.1 / 7)
        assert result.verified_share == pytest.approx(result.swept / live, abs=0.02)
        assert result.oldest_verified_hours >= 8 * 24 - 1
