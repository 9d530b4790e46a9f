"""The pure parts of the Zoho export: CSV text, batching, hashing, the import-type choice, units, the
verification SQL and the comparison of its results."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal

import pandas as pd
import pytest

from gp_pipelines.connectors.zoho import import_units
from gp_pipelines.warehouse.analytics import ANALYTICS_VIEWS
from gp_pipelines.warehouse.zoho_export import (
    EXPORT_SPECS,
    ExportSpec,
    GroupFigures,
    ZohoExportError,
    aggregate,
    choose_import_plan,
    compare_aggregates,
    content_hash,
    csv_batches,
    export_spec,
    format_cell,
    month_of,
    row_hashes,
    row_keys,
    text_frame,
    verification_sql,
)

SALES = EXPORT_SPECS["sales"]
COLUMNS = [("instance_key", "integer"), ("sale_id", "text"), ("line_number", "integer"), ("order_date", "date"),
           ("amount", "numeric"), ("is_voided", "boolean")]


def _frame(rows: int) -> pd.DataFrame:
    return text_frame(COLUMNS, [(1, f"S-{i:05d}", i % 3, date(2025, 1 + i % 12, 1), Decimal(i) / 4, i % 2 == 0)
                                for i in range(rows)])


def test_every_analytics_view_has_an_export_spec():
    assert set(EXPORT_SPECS) == set(ANALYTICS_VIEWS)
    with pytest.raises(ZohoExportError, match="not an analytics view"):
        export_spec("salez")


def test_cells_are_exact_text():
    assert format_cell("numeric", Decimal("0E-10")) == "0.0000000000"  # never exponent notation
    assert format_cell("numeric", Decimal("12.9500")) == "12.9500"
    assert format_cell("boolean", True) == "true"
    assert format_cell("date", date(2025, 5, 1)) == "2025-05-01"
    assert format_cell("timestamp with time zone", datetime(2025, 5, 1, 10, 30, tzinfo=UTC)) == "2025-05-01 10:30:00"
    assert format_cell("integer", None) == ""
    # A nullable integer column stays integer text (a DataFrame built first would make it 20250501.0).
    frame = text_frame([("k", "integer")], [(20250501,), (None,)])
    assert frame["k"].tolist() == ["20250501", ""]


def test_batches_stay_under_the_limit_and_keep_every_row_in_order():
    frame = _frame(500)
    limit = 4_000
    batches = csv_batches(frame, limit, label="sales")
    assert len(batches) > 3
    seen = []
    for data, rows in batches:
        assert len(data) <= limit
        parsed = list(csv.reader(io.StringIO(data.decode())))
        assert parsed[0] == [name for name, _ in COLUMNS]  # every batch carries the header
        assert len(parsed) - 1 == rows
        seen += [r[1] for r in parsed[1:]]
    assert seen == frame["sale_id"].tolist()
    assert csv_batches(frame.iloc[0:0], limit) == []
    [(whole, rows)] = csv_batches(frame, 10_000_000)
    assert rows == 500 and whole == frame.to_csv(index=False, lineterminator="\n").encode()


def test_a_row_over_the_batch_limit_is_named():
    frame = text_frame([("k", "integer"), ("note", "text")], [(1, "short"), (2, "x" * 500)])
    with pytest.raises(ZohoExportError, match="sales: row 2 alone takes"):
        csv_batches(frame, 200, label="sales")


def test_content_hash_changes_with_any_value_column_or_type():
    frame = _frame(20)
    zoho_columns = [(name, "PLAIN") for name, _ in COLUMNS]
    base = content_hash(frame, zoho_columns)
    assert content_hash(_frame(20), zoho_columns) == base  # deterministic
    changed = frame.copy()
    changed.loc[7, "amount"] = "1.7600"
    assert content_hash(changed, zoho_columns) != base
    assert content_hash(frame, [*zoho_columns[:-1], ("is_voided", "BOOLEAN")]) != base


def test_row_hashes_and_keys():
    frame = _frame(10)
    hashes = row_hashes(frame)
    assert len(set(hashes.tolist())) == 10 and hashes.dtype == "int64"
    changed = frame.copy()
    changed.loc[3, "amount"] = "99.0000"
    differs = row_hashes(changed) != hashes
    assert differs.tolist() == [i == 3 for i in range(10)]
    keys = row_keys(frame, ("instance_key", "sale_id", "line_number"))
    assert keys.iloc[4] == "1\x1fS-00004\x1f1"


def test_import_units():
    assert import_units(1000, "truncateadd") == 10
    assert import_units(1001, "append") == 11  # rounded up per request
    assert import_units(1000, "updateadd") == 15
    assert import_units(1, "updateadd") == 1
    assert import_units(0, "truncateadd") == 0


def test_import_type_choice():
    products = EXPORT_SPECS["products"]
    # Dimensions always reload in full.
    plan = choose_import_plan(products, 181, standby_known=True, changed_rows=1)
    assert (plan.import_type, plan.rows, plan.full) == ("truncateadd", 181, True)
    # Facts send only the changed rows by key ...
    plan = choose_import_plan(SALES, 10_000, standby_known=True, changed_rows=120)
    assert (plan.import_type, plan.rows, plan.estimated_units) == ("updateadd", 120, 2)
    # ... unless the standby is unknown, rows were deleted, a reload is cheaper, or it is asked for.
    assert choose_import_plan(SALES, 10_000, standby_known=False, changed_rows=1).import_type == "truncateadd"
    deleted = choose_import_plan(SALES, 10_000, standby_known=True, changed_rows=1, deleted_rows=2)
    assert deleted.import_type == "truncateadd" and "cannot delete" in deleted.reason
    assert choose_import_plan(SALES, 10_000, standby_known=True, changed_rows=7_000).import_type == "truncateadd"
    assert choose_import_plan(SALES, 10_000, standby_known=True, changed_rows=6_000).import_type == "updateadd"
    assert choose_import_plan(SALES, 10_000, standby_known=True, changed_rows=5, force_full=True).full
    # Nothing to send when the standby already holds the content, or the view is empty.
    assert choose_import_plan(SALES, 10_000, standby_known=True).import_type is None
    empty = choose_import_plan(SALES, 0, standby_known=False)
    assert empty.import_type is None and empty.full


def test_verification_sql_is_one_text_for_both_sides():
    sql = verification_sql(SALES, '"sales__standby"')
    assert sql == ('SELECT "instance_code", "order_date", COUNT(*) AS "row_count", SUM("quantity") AS "sum_quantity", '
                   'SUM("amount_document") AS "sum_amount_document", SUM("tax_document") AS "sum_tax_document", '
                   'SUM("amount_base") AS "sum_amount_base", SUM("amount_reporting") AS "sum_amount_reporting" '
                   'FROM "sales__standby" GROUP BY "instance_code", "order_date"')
    assert verification_sql(EXPORT_SPECS["dates"], "x") == 'SELECT COUNT(*) AS "row_count", SUM("date_key") AS ' \
                                                           '"sum_date_key" FROM x'


def test_months_from_either_side():
    assert month_of(date(2025, 5, 9)) == "2025-05"
    assert month_of("2025-05-09") == "2025-05"
    assert month_of("2025-05-09 10:00:00") == "2025-05"
    assert month_of("09 May, 2025") == "2025-05"
    assert month_of("") is None
    with pytest.raises(ValueError, match="cannot read the date '05/09/2025'"):
        month_of("05/09/2025")  # ambiguous day/month orders are refused, not guessed


SPEC = ExportSpec("t", "fact", ("k",), month_column="d", sum_columns=("amount",))


def test_aggregate_rolls_days_up_to_months():
    warehouse = aggregate(SPEC, [("au", date(2025, 1, 2), 2, Decimal("10.50")), ("au", date(2025, 1, 3), 1,
                                                                                   Decimal("1.25")),
                                 ("nz", None, 1, None)], side="warehouse")
    assert warehouse == {("au", "2025-01"): GroupFigures(3, (Decimal("11.75"),)),
                         ("nz", "(none)"): GroupFigures(1, (Decimal(0),))}
    zoho = aggregate(SPEC, [["au", "2025-01-02", "2", "10.5"], ["au", "2025-01-03", "1", "1.2500000001"],
                            ["nz", "", "1", ""]], side="zoho")
    assert compare_aggregates(SPEC, warehouse, zoho).passed


def test_comparison_names_instance_month_and_difference():
    warehouse = {("au", "2025-01"): GroupFigures(3, (Decimal("11.75"),)),
                 ("au", "2025-02"): GroupFigures(2, (Decimal("5.00"),)),
                 ("nz", "2025-01"): GroupFigures(1, (Decimal("1.00"),))}
    zoho = {("au", "2025-01"): GroupFigures(3, (Decimal("12.75"),)),
            ("au", "2025-02"): GroupFigures(1, (Decimal("5.00"),)),
            ("us", "2025-01"): GroupFigures(4, (Decimal("2.00"),))}
    verification = compare_aggregates(SPEC, warehouse, zoho, zoho_table="t")
    assert not verification.passed
    failures = verification.failures()
    assert "t: instance au, month 2025-01: amount 11.75 in the warehouse, 12.75 in Zoho (+1.00)" in failures
    assert "t: instance au, month 2025-02: rows 2 in the warehouse, 1 in Zoho (-1)" in failures
    assert "t: instance nz, month 2025-01: missing in Zoho (1 rows in the warehouse)" in failures
    assert "t: instance us, month 2025-01: only in Zoho (4 rows)" in failures
    markdown = verification.markdown()
    assert markdown.splitlines()[0] == ("| instance | month | rows (warehouse) | rows (Zoho) | amount (warehouse) | "
                                        "amount (Zoho) | status |")
    assert "| au | 2025-01 | 3 | 3 | 11.75 | 12.75 | DIFFERS: amount" in markdown
    meta = verification.as_metadata()
    assert (meta["rows_warehouse"], meta["rows_zoho"], meta["groups_differing"]) == (6, 8, 4)
    # Within half a cent is equal; a cent is not.
    close = {("au", "2025-01"): GroupFigures(3, (Decimal("11.754"),))}
    assert compare_aggregates(SPEC, {("au", "2025-01"): warehouse[("au", "2025-01")]}, close).passed
    off = {("au", "2025-01"): GroupFigures(3, (Decimal("11.76"),))}
    assert not compare_aggregates(SPEC, {("au", "2025-01"): warehouse[("au", "2025-01")]}, off).passed
