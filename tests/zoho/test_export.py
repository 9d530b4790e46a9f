"""The export engine against the Zoho sandbox over HTTP and a real warehouse in PostgreSQL: staging and swap,
import-type choice, skipping, verification catching a dropped batch and a changed number, retries, and the
unit budget. The tests share one warehouse (some change it; every figure is read from it as it is) and each
has a sandbox with its own workspace, so their export state never mixes."""

from __future__ import annotations

import psycopg
import pytest

from gp_pipelines.warehouse.zoho_export import (
    ZohoBudgetExceeded,
    ZohoExportError,
    ZohoVerificationError,
    export_view,
    units_spent_today,
    verify_live_table,
)
from tests.zoho.conftest import execute, export_settings

SMALL_BATCHES = 60_000  # bytes: the 1,239 sale lines travel in several batches


def _export(url, client, server, view="sales", **options):
    settings = export_settings(server, **{"max_batch_bytes": SMALL_BATCHES, **options.pop("settings", {})})
    return export_view(url, client, view, settings, say=lambda message: None, **options)


def _tables(server) -> dict[str, int]:
    return {name: table["rows"] for name, table in server.state()["tables"].items()}


def _warehouse_rows(url: str, view: str = "sales") -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT count(*) FROM analytics.{view}").fetchone()[0]


def _change_one_sale_line(url: str, delta: str = "1") -> None:
    execute(url, f"""UPDATE warehouse.fact_sale_line SET amount = amount + {delta},
                         amount_reporting = amount_reporting + {delta}
                     WHERE (instance_key, sale_id, line_number) = (
                         SELECT instance_key, sale_id, line_number FROM warehouse.fact_sale_line
                          ORDER BY instance_key, sale_id, line_number LIMIT 1)""")


def test_export_publishes_a_verified_table_and_books_its_units(warehouse_url, zoho_server, client):
    rows = _warehouse_rows(warehouse_url)
    result = _export(warehouse_url, client, zoho_server)
    assert result.uploaded and result.import_type == "truncateadd"
    assert result.batches > 1 and result.rows_sent == rows
    assert result.verification.passed and result.verification.rows_zoho == rows
    # Only the live table: the first standby became it.
    assert _tables(zoho_server) == {"sales": rows}
    # The ledger books what the sandbox charged, and the result reports what is left of the budget.
    assert result.units == zoho_server.state()["units_used"] > 0
    assert units_spent_today(warehouse_url, zoho_server.identity.org_id) == result.units
    assert result.units_left == 10_000 - result.units
    assert verify_live_table(warehouse_url, client, "sales", export_settings(zoho_server)).passed

    # Unchanged: nothing is sent, no unit spent.
    requests = zoho_server.state()["import_requests"]
    again = _export(warehouse_url, client, zoho_server)
    assert not again.uploaded and again.units == 0 and "unchanged" in again.reason
    assert zoho_server.state()["import_requests"] == requests


def test_changed_fact_rows_travel_by_key_into_the_standby(warehouse_url, zoho_server, client):
    rows = _warehouse_rows(warehouse_url)
    _export(warehouse_url, client, zoho_server)
    _change_one_sale_line(warehouse_url)
    second = _export(warehouse_url, client, zoho_server)
    # No standby yet: the second copy is loaded in full; then both copies exist.
    assert second.import_type == "truncateadd" and second.verification.passed
    assert _tables(zoho_server) == {"sales": rows, "sales__standby": rows}
    _change_one_sale_line(warehouse_url, "2.5")
    third = _export(warehouse_url, client, zoho_server)
    # The standby holds the first version: the lines changed since then (one line, twice) travel by updateadd.
    assert (third.import_type, third.rows_sent, third.units) == ("updateadd", 1, 1)
    assert third.verification.passed
    assert verify_live_table(warehouse_url, client, "sales", export_settings(zoho_server)).passed
    # Dimensions reload in full every time.
    _export(warehouse_url, client, zoho_server, view="products")
    execute(warehouse_url, "UPDATE warehouse.dim_product SET average_cost = average_cost + 1 "
                             "WHERE product_key = (SELECT min(product_key) FROM warehouse.dim_product "
                             "WHERE product_key > 0)")
    products = _export(warehouse_url, client, zoho_server, view="products")
    assert products.import_type == "truncateadd" and products.rows_sent == products.rows


def test_deleted_rows_force_a_full_reload(warehouse_url, zoho_server, client):
    _export(warehouse_url, client, zoho_server)
    _change_one_sale_line(warehouse_url)
    _export(warehouse_url, client, zoho_server)
    execute(warehouse_url, """DELETE FROM warehouse.fact_sale_line WHERE (instance_key, sale_id, line_number) = (
                                    SELECT instance_key, sale_id, line_number FROM warehouse.fact_sale_line
                                     ORDER BY instance_key, sale_id DESC, line_number LIMIT 1)""")
    result = _export(warehouse_url, client, zoho_server)
    assert result.import_type == "truncateadd" and "cannot delete" in result.reason
    assert result.verification.passed and result.verification.rows_zoho == _warehouse_rows(warehouse_url)


def test_a_dropped_batch_is_caught_and_the_live_table_stays(warehouse_url, zoho_server, client):
    first = _export(warehouse_url, client, zoho_server)
    live_id = first.view_id
    zoho_server.inject(drop_batch=2)  # acknowledged in full, rows discarded
    with pytest.raises(ZohoVerificationError, match="'sales__standby' differs from the warehouse") as caught:
        _export(warehouse_url, client, zoho_server, force=True)
    verification = caught.value.verification
    assert verification.differing and verification.rows_zoho < verification.rows_warehouse
    assert any("in the warehouse" in line and "in Zoho" in line for line in verification.failures())
    # The live table is the one verified before, whole; the half-loaded copy stayed the standby.
    tables = _tables(zoho_server)
    assert tables["sales"] == _warehouse_rows(warehouse_url) > tables["sales__standby"]
    assert client.find_view("sales").view_id == live_id
    assert verify_live_table(warehouse_url, client, "sales", export_settings(zoho_server)).passed
    # Without the fault the next export goes through (the standby's content is unknown: reloaded in full).
    retry = _export(warehouse_url, client, zoho_server, force=True)
    assert retry.uploaded and retry.import_type == "truncateadd" and retry.verification.passed


def test_a_changed_number_in_zoho_fails_the_read_back_and_is_repaired(warehouse_url, zoho_server, client):
    _export(warehouse_url, client, zoho_server)
    corrupted = zoho_server.inject(corrupt={"table": "sales", "column": "amount_reporting", "delta": 1})
    assert corrupted["corrupted"]["table"] == "sales"
    verification = verify_live_table(warehouse_url, client, "sales", export_settings(zoho_server))
    assert not verification.passed and len(verification.differing) == 1
    [line] = verification.failures()
    assert "amount_reporting" in line and "(+1.00)" in line and "instance " in line and "month 20" in line
    assert "DIFFERS" in verification.markdown()
    # The next export does not trust the content hash of a table whose read-back failed: it uploads again.
    repaired = _export(warehouse_url, client, zoho_server)
    assert repaired.uploaded and repaired.verification.passed
    assert verify_live_table(warehouse_url, client, "sales", export_settings(zoho_server)).passed


def test_budget_refusal_stops_before_anything_is_sent(warehouse_url, zoho_server, client):
    one_batch = {"max_batch_bytes": 50_000_000}  # 1,239 rows in one request: 13 units
    with pytest.raises(ZohoBudgetExceeded) as caught:
        _export(warehouse_url, client, zoho_server, settings={"daily_unit_budget": 5, **one_batch})
    message = str(caught.value)
    assert "table 'sales'" in message and "needs 13 API units" in message and "only 5 of today's budget of 5" in message
    state = zoho_server.state()
    assert state["tables"] == {} and state["import_requests"] == 0 and state["units_used"] == 0
    assert units_spent_today(warehouse_url, zoho_server.identity.org_id) == 0
    # With room for one table only, the second is refused with what is left.
    _export(warehouse_url, client, zoho_server, view="products", settings={"daily_unit_budget": 14, **one_batch})
    with pytest.raises(ZohoBudgetExceeded, match=r"needs 13 API units .* only 12 of today's budget of 14 are left "
                                                 r"\(2 spent today"):
        _export(warehouse_url, client, zoho_server, settings={"daily_unit_budget": 14, **one_batch})
    assert zoho_server.state()["units_used"] == 2  # products only
    done = _export(warehouse_url, client, zoho_server, settings={"daily_unit_budget": 15, **one_batch})
    assert done.units == 13 and done.units_left == 0  # exactly enough


def test_a_failed_job_and_throttling_are_ridden_out(warehouse_url, zoho_server, client):
    zoho_server.inject(job_error=1, throttle=3, fail_batch=2)
    result = _export(warehouse_url, client, zoho_server)
    assert result.uploaded and result.verification.passed
    assert result.client["throttle_waits"] == 3 and result.client["retries"] == 1
    # The job was sent twice (one batch of it twice more) and both jobs were booked: the ledger agrees with
    # what the sandbox charged.
    state = zoho_server.state()
    assert state["import_requests"] == 2 * result.batches + 1
    assert result.units == state["units_used"] > 0 and result.units % 2 == 0


def test_an_interrupted_swap_is_put_right(warehouse_url, zoho_server, client):
    _export(warehouse_url, client, zoho_server)
    _change_one_sale_line(warehouse_url)
    _export(warehouse_url, client, zoho_server)
    live = client.find_view("sales")
    client.rename_view(live.view_id, "sales__old")  # a crash right after the swap's first rename
    result = _export(warehouse_url, client, zoho_server)
    assert set(_tables(zoho_server)) == {"sales", "sales__standby"}
    assert client.find_view("sales").view_id == live.view_id
    assert not result.uploaded  # the restored live table still holds the current content
    assert verify_live_table(warehouse_url, client, "sales", export_settings(zoho_server)).passed


def test_an_empty_view_is_published_empty(warehouse_url, zoho_server, client):
    execute(warehouse_url, "DELETE FROM warehouse.fact_credit_note_line")
    result = _export(warehouse_url, client, zoho_server, view="credit_notes")
    assert result.uploaded and result.rows == 0 and result.units == 0
    assert _tables(zoho_server) == {"credit_notes": 0}
    assert result.verification.passed


def test_a_foreign_table_with_the_live_name_is_not_taken_over(warehouse_url, zoho_server, client):
    theirs = client.create_table("products", [("note", "PLAIN")])
    with pytest.raises(ZohoExportError, match=r"already has a table 'products' .* did not create"):
        _export(warehouse_url, client, zoho_server, view="products")
    assert _tables(zoho_server) == {"products": 0}
    # Asked to, the export replaces it (it becomes the standby, and is recreated with the view's columns next).
    assert _export(warehouse_url, client, zoho_server, view="products", force=True).verification.passed
    assert client.find_view("products__standby").view_id == theirs
    again = _export(warehouse_url, client, zoho_server, view="products", force=True)
    assert again.verification.passed and client.find_view("products__standby").view_id != theirs


def test_the_read_back_requires_every_configured_instance_on_both_sides(warehouse_url, zoho_server, client):
    from gp_pipelines.cin7.completeness import record_completeness
    from gp_pipelines.warehouse.checks import Scope

    _export(warehouse_url, client, zoho_server)
    settings = export_settings(zoho_server)
    scope = Scope(instances=("au", "nz", "us", "zz"))
    verification = verify_live_table(warehouse_url, client, "sales", settings, scope)
    assert not verification.passed and verification.instances_missing == ["zz"]
    assert verification.failures() == ["sales: instance zz, month (all): absent from both the warehouse and Zoho; "
                                       "the cache must have it: sales: no completeness check recorded (not synced "
                                       "and checked yet)"]
    figures = verification.as_metadata()
    assert figures["instances_missing"] == 1 and figures["groups_missing"] == 1
    # The API's Total proves zz has no sales: its absence is then the truth.
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        record_completeness(conn, "zz", "sales", api_total=0, cache_count=0, passed=True)
        try:
            assert verify_live_table(warehouse_url, client, "sales", settings, scope).passed
        finally:
            conn.execute("DELETE FROM erp_cache.completeness WHERE instance = 'zz'")
    assert verify_live_table(warehouse_url, client, "sales", settings, Scope(("au", "nz", "us"))).passed


def test_the_dry_run_preview_matches_what_the_export_then_sends(warehouse_url, zoho_server, client):
    from gp_pipelines.warehouse.zoho_export import preview_export

    settings = export_settings(zoho_server, max_batch_bytes=SMALL_BATCHES)
    rows = _warehouse_rows(warehouse_url)
    first = preview_export(warehouse_url, "sales", settings)
    assert (first.import_type, first.rows_to_send) == ("truncateadd", rows)
    assert zoho_server.state()["import_requests"] == 0 and zoho_server.state()["tables"] == {}
    sent = _export(warehouse_url, client, zoho_server)
    assert (sent.import_type, sent.rows_sent) == (first.import_type, first.rows_to_send)
    assert preview_export(warehouse_url, "sales", settings).line() == (
        f"sales: would send nothing (unchanged since the last verified export); {rows} rows in the view")
