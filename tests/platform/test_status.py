"""`gp-pipelines status`: freshness, gates, outbox and EDI problems read from a real database and shown on one
screen; check results per instance partition read from a real Dagster instance."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta

import dagster as dg

from gp_pipelines.automation import outbox
from gp_pipelines.automation.orders import ensure_order_tables
from gp_pipelines.cin7.completeness import record_completeness
from gp_pipelines.cin7.entities import ENTITIES
from gp_pipelines.cin7.store import ensure_cache_schema
from gp_pipelines.status import collect_status, dagster_check_results, format_status

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_an_empty_platform_reports_everything_as_never_run(db, module_database_url):
    report = collect_status(db, ["au"], now=NOW)
    assert {row["state"] for row in report.cache} == {"never"}
    assert "the warehouse has never been built" in report.problems
    assert "gate instances_present failed: the cache has never been synced" in report.problems
    text = format_status(report)
    assert "no automation has run" in text and "problem(s)" in text
    assert "  !instances_present: the cache has never been synced" in text


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
    outbox.enqueue(db, "cin7.ship:au:T1:abc", "cin7_ship_fulfilment", {}, instance="au", subject="sale-2")
    db.execute("UPDATE automation.outbox SET state = 'failed', last_error = 'Cin7ServerError: 503', attempts = 1 "
               "WHERE key = 'cin7.ship:au:T1:abc'")
    # A sale waiting for stock for two days, one whose routing run failed, and a quarantined partner file.
    db.execute("INSERT INTO automation.sales (instance, sale_id, order_number, state, reason, admitted_by, "
               "waiting_since) VALUES ('au', 's3', 'SO-3', 'waiting_for_stock', 'no stock', 'start_line', %s), "
               "('au', 's4', 'SO-4', 'new', NULL, 'start_line', NULL)", (NOW - timedelta(days=2),))
    db.execute("UPDATE automation.sales SET last_error = 'Cin7ServerError: connection refused' WHERE sale_id = 's4'")
    db.execute("INSERT INTO automation.inbound_files (partner, name, display_name, listed_size, listed_modified, "
               "state, reason) VALUES ('acme', 'x.bin', 'x.bin', 9, %s, 'quarantined', 'binary data, not X12')",
               (NOW,))
    checks = [{"asset": "warehouse/fact_sale_line", "check": "reconciles_with_cache", "status": "FAILED", "at": NOW},
              {"asset": "erp_cache/sales", "check": "matches_api_total", "status": "SUCCEEDED", "at": NOW}]
    report = collect_status(db, ["au"], check_results=lambda: checks, now=NOW)
    states = {row["entity"]: row["state"] for row in report.cache}
    assert states["sales"] == "stale" and states["products"] == "fresh"
    assert report.outbox_backlog["given_up"] == 1
    assert "cache au/sales is stale" in report.problems
    # Synced (per sync_state) but nothing live in the cache and no completeness proof: both gates fail, named.
    assert "gate instances_present failed: 1 of 1 instances have nothing in the cache: au" in report.problems
    assert ("gate cache_complete failed: 13 of 13 cache entities not proven complete (13 never checked, 0 failed, "
            "0 too old)") in report.problems
    assert "check warehouse/fact_sale_line:reconciles_with_cache FAILED" in report.problems
    assert "check erp_cache/sales:matches_api_total SUCCEEDED" not in report.problems
    named = "\n".join(report.problems)
    for expected in ("outbox given_up: edi.send:acme:940:SO-1-1", "outbox failed: au/cin7.ship:au:T1:abc",
                     "Cin7ServerError: 503", "sale waiting: au/SO-3 since 2d", "sale routing_failed: au/SO-4",
                     "file quarantined: acme/x.bin", "binary data, not X12"):
        assert expected in named, (expected, named)
    text = format_status(report)
    assert "!6h ago" in text and "! outbox given_up: edi.send:acme:940:SO-1-1: edi_send after 4 attempt(s)" in text
    assert "sales: new 1, waiting_for_stock 1" in text and "files: quarantined 1" in text
    assert "1 of 2 passed" in text
    assert report.as_dict()["healthy"] is False
    # A sale that has waited less than the limit is not a problem yet.
    short = collect_status(db, ["au"], now=NOW, waiting_after=timedelta(days=3))
    assert not any("SO-3" in problem for problem in short.problems)


def test_gates_pass_once_every_entity_is_proven_and_show_their_numbers(db, module_database_url):
    ensure_cache_schema(module_database_url)
    db.execute("INSERT INTO erp_cache.me (instance, id, modified_at, payload, payload_hash, synced_at) "
               "VALUES ('nz', 'me', now(), '{}', 'x', now()) ON CONFLICT DO NOTHING")
    for name in ENTITIES:
        record_completeness(db, "nz", name, api_total=4, cache_count=4, passed=True)
    record_completeness(db, "nz", "sales", api_total=100, cache_count=97, passed=False)
    report = collect_status(db, ["nz"], now=NOW)
    gates = {gate["name"]: gate for gate in report.gates}
    assert gates["instances_present"]["passed"] and not gates["cache_complete"]["passed"]
    assert gates["cache_complete"]["failures"] == ["instance nz, entity sales: completeness check failed 0.0 h ago: "
                                                   "cache 97, API Total 100 (difference -3)"]
    assert gates["cache_complete"]["figures"]["entities_passing"] == len(ENTITIES) - 1
    assert "      instance nz, entity sales: completeness check failed" in format_status(report)
    record_completeness(db, "nz", "sales", api_total=100, cache_count=100, passed=True)
    healed = collect_status(db, ["nz"], now=NOW)
    assert all(gate["passed"] for gate in healed.gates)
    assert not any(problem.startswith("gate ") for problem in healed.problems)


def test_partitioned_check_results_are_reported_per_partition(tmp_path):
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    partitions = dg.StaticPartitionsDefinition(["au", "nz", "us"])

    @dg.asset(partitions_def=partitions)
    def cached(context) -> None:  # unannotated: this module has postponed annotations
        return None

    @dg.asset_check(asset=cached, partitions_def=partitions, blocking=True)
    def complete(context):
        return dg.AssetCheckResult(passed=context.partition_key != "au")

    @dg.asset
    def whole() -> None:
        return None

    @dg.asset_check(asset=whole)
    def whole_ok() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=True)

    defs = dg.Definitions(assets=[cached, whole], asset_checks=[complete, whole_ok])
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        for key in ("nz", "au"):  # au last: an unpartitioned summary would show only au's state
            dg.materialize([cached, complete], partition_key=key, instance=instance, raise_on_error=False)
        dg.materialize([whole, whole_ok], instance=instance)
    results = dagster_check_results(str(tmp_path), defs=defs)
    by_key = {(r["asset"], r["check"], r["partition"]): r["status"] for r in results}
    assert by_key == {("cached", "complete", "au"): "FAILED", ("cached", "complete", "nz"): "SUCCEEDED",
                      ("whole", "whole_ok", None): "SUCCEEDED"}  # us never ran: nothing to report
    report_checks = [r for r in results if r["status"] != "SUCCEEDED"]
    assert [f"{r['asset']}:{r['check']}[{r['partition']}]" for r in report_checks] == ["cached:complete[au]"]
