"""The completeness gates and the stricter checks against a cache synced in full from the Cin7 sandbox, every
entity of every instance checked against the API's Total: they pass on it, and each one fails, naming the
instance, the entity and the numbers, when an instance, a proof, a month or a master-data record is missing."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from gp_pipelines.cin7.completeness import completeness_results, record_completeness
from gp_pipelines.cin7.entities import ENTITIES
from gp_pipelines.warehouse import checks, gates
from gp_pipelines.warehouse.analytics import ensure_analytics_views
from gp_pipelines.warehouse.build import build_all
from gp_pipelines.warehouse.fx import load_fx_rates
from tests.warehouse.conftest import TODAY, fill_cache

INSTANCES = ("au", "nz", "us")
SCOPE = checks.Scope(instances=INSTANCES)
FACTS = ("fact_sale_line", "fact_invoice_line", "fact_credit_note_line", "fact_purchase_line", "fact_stock")


@pytest.fixture(scope="module")
def url(module_database_url, ecb_server):
    fill_cache(module_database_url, entities=list(ENTITIES), check=True)
    load_fx_rates(module_database_url, ecb_server.source(), reporting_currency="USD", today=TODAY)
    build_all(module_database_url, reporting_currency="USD", full=True)
    ensure_analytics_views(module_database_url)
    return module_database_url


def _restore(db, saved) -> None:
    """Put completeness results back as they were (a test rewrote some)."""
    for result in saved:
        db.execute("UPDATE erp_cache.completeness SET checked_at = %s, api_total = %s, cache_count = %s, "
                   "passed = %s WHERE instance = %s AND entity = %s",
                   (result.checked_at, result.api_total, result.cache_count, result.passed, result.instance,
                    result.entity))


def test_every_gate_passes_on_a_cache_proven_complete(url):
    gate = gates.export_gate(url, SCOPE, FACTS)
    assert list(gate) == list(gates.EXPORT_GATES)
    assert all(outcome.passed for outcome in gate.values()), gates.failed(gate)
    present, complete = gate[gates.INSTANCES_PRESENT], gate[gates.CACHE_COMPLETE]
    assert present.figures["instances_present"] == 3 and present.figures["instances_missing"] == 0
    assert complete.figures["entities_passing"] == 3 * len(ENTITIES) == complete.figures["entities_required"]
    assert complete.figures["entities_unchecked"] == 0 and 0 <= complete.figures["oldest_check_minutes"] < 30
    joins = checks.check_dimension_joins(url, "fact_sale_line", SCOPE)
    assert joins.figures["unknown_share_max"] == 0
    assert ("| au | customer_key | dim_customer | 384 | 0 | 0.00% | 0 on documents synced before au's customers "
            "were proven complete, else 0.10% of lines | ok |") in joins.markdown
    assert gates.refusal(gate, "export") is None


def test_an_instance_with_nothing_in_the_cache_fails_every_gate_by_name(url, db):
    scope = checks.Scope(instances=(*INSTANCES, "zz"))
    present = gates.instances_present(url, scope)
    assert not present.passed and present.figures["instances_missing"] == 1
    assert present.failures == ["instance zz: nothing in the cache (0 live rows in all 13 entities); sync it "
                                "first (gp-pipelines sync --instance zz)"]
    complete = gates.cache_complete(url, scope)
    assert not complete.passed and complete.figures["entities_unchecked"] == len(ENTITIES)
    assert complete.failures[0] == ("instance zz, entity me: no completeness check recorded (not synced and "
                                    "checked yet)")
    assert len(complete.failures) == len(ENTITIES) and complete.figures["entities_not_proven[zz]"] == 13
    reconciled = checks.reconcile_lines(url, "fact_sale_line", scope)
    assert not reconciled.passed and reconciled.figures["instances_missing"] == 1
    assert reconciled.failures == ["fact_sale_line: instance zz: absent from both the cache and the warehouse (0 "
                                   "lines); the cache must have it: sales: no completeness check recorded (not "
                                   "synced and checked yet)"]
    assert "INSTANCE MISSING" in reconciled.markdown.splitlines()[2]  # problems first
    # The API's own Total says zz has no sales: having none of its lines is then the truth.
    record_completeness(db, "zz", "sales", api_total=0, cache_count=0, passed=True)
    try:
        excused = checks.reconcile_lines(url, "fact_sale_line", scope)
        assert excused.passed, excused.failures
        assert "none (proven empty)" in excused.markdown
    finally:
        db.execute("DELETE FROM erp_cache.completeness WHERE instance = 'zz'")


def test_a_failed_or_old_completeness_check_fails_the_gate_with_its_numbers(url, db):
    saved = list(completeness_results(db).values())
    record_completeness(db, "au", "customers", api_total=30, cache_count=28, passed=False)
    try:
        complete = gates.cache_complete(url, SCOPE)
        assert not complete.passed and complete.figures["entities_failed"] == 1
        assert complete.failures == ["instance au, entity customers: completeness check failed 0.0 h ago: cache 28, "
                                     "API Total 30 (difference -2)"]
        assert complete.figures["count_difference_total"] == 2 and complete.figures["entities_not_proven[au]"] == 1
        # A result older than the allowed age no longer proves anything.
        db.execute("UPDATE erp_cache.completeness SET checked_at = now() - interval '3 hours' "
                   "WHERE instance = 'nz' AND entity = 'sales'")
        strict = checks.Scope(instances=INSTANCES, completeness_max_age=timedelta(hours=2))
        stale = gates.cache_complete(url, strict)
        assert stale.figures["entities_stale"] == 1
        assert ("instance nz, entity sales: last passing completeness check 3.0 h old (cache 100, API Total 100), "
                "older than the allowed 2.0 h") in stale.failures
    finally:
        _restore(db, saved)
    assert gates.cache_complete(url, SCOPE).passed


def test_no_unknown_member_on_documents_synced_before_master_data_was_proven(url, db):
    saved = list(completeness_results(db).values())
    ctid, original = db.execute(
        "SELECT f.ctid::text, f.customer_key FROM warehouse.fact_sale_line f JOIN warehouse.dim_instance i "
        "USING (instance_key) WHERE i.instance = 'au' ORDER BY f.sale_id, f.line_number LIMIT 1").fetchone()
    ctid = db.execute("UPDATE warehouse.fact_sale_line SET customer_key = 0 WHERE ctid = %s::tid "
                      "RETURNING ctid::text", (ctid,)).fetchone()[0]
    lines = db.execute("SELECT count(*) FROM warehouse.fact_sale_line f JOIN warehouse.dim_instance i "
                       "USING (instance_key) WHERE i.instance = 'au'").fetchone()[0]
    generous = checks.Scope(instances=INSTANCES, max_unknown_share=0.05)
    try:
        # au's customers proven complete after every sale was synced: the customer of each sale was in the cache,
        # so even a generous share allows none.
        db.execute("UPDATE erp_cache.completeness SET checked_at = now() WHERE instance = 'au' "
                   "AND entity = 'customers'")
        joins = checks.check_dimension_joins(url, "fact_sale_line", generous)
        assert not joins.passed
        assert joins.failures == [f"fact_sale_line: instance au, dimension dim_customer (customer_key): 1 of {lines} "
                                  f"lines on the unknown member ({1 / lines:.2%}); 1 of them on documents synced "
                                  "before au's customers were proven complete (allowed 0)"]
        assert joins.figures["unknown_rows[au]"] == 1 and joins.figures["unknown_over_allowed"] == 1
        # Proven before the sales were synced (a sale may name a customer created since): the share applies.
        db.execute("UPDATE erp_cache.completeness SET checked_at = (SELECT min(synced_at) FROM erp_cache.sales "
                   "WHERE instance = 'au') - interval '1 second' WHERE instance = 'au' AND entity = 'customers'")
        assert checks.check_dimension_joins(url, "fact_sale_line", generous).passed
        default = checks.check_dimension_joins(url, "fact_sale_line", SCOPE)
        assert not default.passed and default.failures[0].endswith(f"({1 / lines:.2%}; allowed 0.10% of lines)")
        assert not gates.export_gate(url, SCOPE, ["fact_sale_line"])[gates.UNKNOWN_MEMBERS].passed
    finally:
        db.execute("UPDATE warehouse.fact_sale_line SET customer_key = %s WHERE ctid = %s::tid", (original, ctid))
        _restore(db, saved)
    assert checks.check_dimension_joins(url, "fact_sale_line", SCOPE).passed


def test_reconciliation_fails_on_a_month_missing_from_the_warehouse(url, db):
    month = db.execute(
        "SELECT to_char(order_date, 'YYYY-MM') FROM warehouse.fact_sale_line f JOIN warehouse.dim_instance i "
        "USING (instance_key) WHERE i.instance = 'nz' GROUP BY 1 ORDER BY count(*) LIMIT 1").fetchone()[0]
    where = ("FROM warehouse.fact_sale_line f USING warehouse.dim_instance i WHERE i.instance_key = f.instance_key "
             "AND i.instance = 'nz' AND to_char(f.order_date, 'YYYY-MM') = %s")
    saved = db.execute("SELECT f.* FROM warehouse.fact_sale_line f JOIN warehouse.dim_instance i USING "
                       "(instance_key) WHERE i.instance = 'nz' AND to_char(f.order_date, 'YYYY-MM') = %s",
                       (month,)).fetchall()
    db.execute("DELETE " + where, (month,))
    try:
        outcome = checks.reconcile_lines(url, "fact_sale_line", SCOPE)
        assert not outcome.passed
        assert outcome.figures["groups_missing"] >= 1 and outcome.figures["groups_differing"] == 0
        assert all(f"instance nz month {month}" in line and line.endswith("— missing in the warehouse")
                   for line in outcome.failures)
        assert "MISSING IN WAREHOUSE" in outcome.markdown
        assert outcome.figures["warehouse_lines[nz]"] == outcome.figures["cache_lines[nz]"] - len(saved)
        # A run limited to another instance does not judge nz's rows.
        assert checks.reconcile_lines(url, "fact_sale_line", checks.Scope(("au",), limited=True)).passed
    finally:
        with db.cursor() as cur:
            placeholders = ", ".join(["%s"] * len(saved[0]))
            cur.executemany(f"INSERT INTO warehouse.fact_sale_line VALUES ({placeholders})", saved)
    assert checks.reconcile_lines(url, "fact_sale_line", SCOPE).passed


def test_the_export_refusal_names_each_failed_gate(url, db):
    scope = checks.Scope(instances=(*INSTANCES, "zz"))
    gate = gates.export_gate(url, scope, ["fact_sale_line", "dim_customer", None])
    assert [name for name, outcome in gate.items() if not outcome.passed] == [
        gates.INSTANCES_PRESENT, gates.CACHE_COMPLETE, gates.RECONCILES_WITH_CACHE]
    message = gates.refusal(gate, "Zoho export of 'sales'")
    first, *lines = message.splitlines()
    assert first == ("Zoho export of 'sales' refused: the gate(s) instances_present, cache_complete, "
                     "reconciles_with_cache failed; nothing was sent.")
    assert lines[0].startswith("instances_present: instance zz: nothing in the cache")
    assert "reconciles_with_cache: fact_sale_line: instance zz: absent from both" in message
    assert len(lines) == 1 + len(ENTITIES) + 1


def test_gates_on_an_empty_database_fail_instead_of_crashing(pg_server_url):
    from gp_pipelines import database

    name = "t_gates_empty_" + __import__("uuid").uuid4().hex[:8]
    empty = database.ensure_database(pg_server_url, name)
    try:
        gate = gates.warehouse_gate(empty, SCOPE)
        assert not gate[gates.INSTANCES_PRESENT].passed and len(gate[gates.INSTANCES_PRESENT].failures) == 3
        assert gate[gates.CACHE_COMPLETE].figures["entities_unchecked"] == 3 * len(ENTITIES)
        with psycopg.connect(empty) as conn:
            assert conn.execute("SELECT to_regclass('erp_cache.completeness')").fetchone()[0] is not None
    finally:
        database.drop_database(pg_server_url, name)
