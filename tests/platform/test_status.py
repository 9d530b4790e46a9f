"""`gp-pipelines status`: freshness, outbox and EDI problems read from a real database and shown on one screen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gp_pipelines.automation import outbox
from gp_pipelines.automation.orders import ensure_order_tables
from gp_pipelines.cin7.entities import ENTITIES
from gp_pipelines.cin7.store import ensure_cache_schema
from gp_pipelines.status import collect_status, format_status

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_an_empty_platform_reports_everything_as_never_run(db, module_database_url):
    report = collect_status(db, ["au"], now=NOW)
    assert {row["state"] for row in report.cache} == {"never"}
    assert "the warehouse has never been built" in report.problems
    text = format_status(report)
    assert "no automation has run" in text and "problem(s)" in text


def test_fresh_stale_given_up_and_failing_checks_are_told_apart(db, module_database_url):
    ensure_cache_schema(module_database_url)
    ensure_order_tables(db)
    for name in ENTITIES:
        age = timedelta(minutes=5) if name != "sales" else timedelta(hours=6)
        db.execute("INSERT INTO erp_cache.sync_state (instance, entity, last_sync_at) VALUES ('au', %s, %s) "
                   "ON CONFLICT (instance, entity) DO UPDATE SET last_sync_at = EXCLUDED.last_sync_at",
                   (name, NOW - age))
    outbox.enqueue(db, "edi.send:acme:940:SO-1-1", "edi_send", {}, subject="sale-1")
    db.execute("UPDATE automation.outbox SET state = 'given_up', last_error = 'sftp down', attempts = 4")
    checks = [{"asset": "warehouse/fact_sale_line", "check": "reconciles_with_cache", "status": "FAILED", "at": NOW},
              {"asset": "erp_cache/sales", "check": "matches_api_total", "status": "SUCCEEDED", "at": NOW}]
    report = collect_status(db, ["au"], check_results=lambda: checks, now=NOW)
    states = {row["entity"]: row["state"] for row in report.cache}
    assert states["sales"] == "stale" and states["products"] == "fresh"
    assert report.outbox_backlog["given_up"] == 1
    assert "cache au/sales is stale" in report.problems
    assert "1 outside action(s) given up" in report.problems
    assert "check warehouse/fact_sale_line:reconciles_with_cache FAILED" in report.problems
    assert "check erp_cache/sales:matches_api_total SUCCEEDED" not in report.problems
    text = format_status(report)
    assert "!6h ago" in text and "given_up: edi.send:acme:940:SO-1-1 after 4 attempt(s): sftp down" in text
    assert "1 of 2 passed" in text
    assert report.as_dict()["healthy"] is False
