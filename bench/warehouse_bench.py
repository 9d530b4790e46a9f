"""Warehouse benchmark: `fact_sale_line` built set-based in PostgreSQL, full and incremental, against the same
transformation done in pandas.

`gp-pipelines bench warehouse [--lines N] --json` prints one JSON object. What is measured (fresh database):

- Synthetic cache: three instances (AUD, NZD, USD bases), 2,000 products, 1,000 customers and 4 locations each,
  and sales generated set-based straight into `erp_cache.sales` (8 lines per sale on average, 1–15; realistic
  documents: header, Order.Lines, one shipped fulfilment, an invoice copying the lines on 70% of sales; six
  customer currencies), dated over the last 800 days. ECB rates come from the ECB sandbox (not timed).
- `full_build_s`: `build_table("fact_sale_line", full=True)` (dimensions built before, not timed).
- `incremental_s` / `incremental_vs_full`: 1% of the sales (random) get a changed line total, hash and
  `synced_at` (as a sync would write them), then the incremental build; the ratio is incremental / full
  (target: at most 0.10).
- `pandas_s` / `pandas_vs_sql`: read every sale's JSONB into pandas, explode the lines, resolve the same
  dimension keys and rates (merges), compute the three amounts, and write the result back with COPY into a
  table shaped like `fact_sale_line`; the ratio is pandas / SQL full build.
- `lines`, `sales`, `rows_per_s` and the check that both ways produced the same line count and amount sums.
"""

from __future__ import annotations

import io
import json
import os
import time
import uuid
from datetime import date
from typing import Any

import pandas as pd
import psycopg

from gp_pipelines import database
from gp_pipelines.cin7.store import ensure_cache_schema
from gp_pipelines.sandbox.ecb import EcbSandboxOptions, EcbSandboxServer
from gp_pipelines.warehouse.build import build_table
from gp_pipelines.warehouse.fx import load_fx_rates

REPORTING = "USD"
INSTANCES = (("au", "AUD", "Australia/Sydney"), ("nz", "NZD", "Pacific/Auckland"), ("us", "USD", "America/New_York"))
CURRENCIES = ("AUD", "NZD", "USD", "EUR", "GBP", "CAD")
PRODUCTS, CUSTOMERS, LOCATIONS = 2000, 1000, 4
LINES_PER_SALE = 8  # average; 1..15
CHANGED_SHARE = 0.01


def _log(as_json: bool, message: str) -> None:
    if not as_json:
        print(message, flush=True)


def _fill_master_data(conn: psycopg.Connection) -> None:
    for key, currency, tz in INSTANCES:
        conn.execute(
            """INSERT INTO erp_cache.me (instance, id, payload, payload_hash)
               VALUES (%s, 'me', jsonb_build_object('Company', %s::text, 'Currency', %s::text,
                                                    'TimeZone', %s::text), 'x')""",
            (key, f"Bench {key}", currency, tz),
        )
        conn.execute(
            """INSERT INTO erp_cache.locations (instance, id, payload, payload_hash)
               SELECT %s, 'loc-' || g, jsonb_build_object('ID', 'loc-' || g, 'Name', 'Location ' || g,
                      'IsDefault', g = 1, 'IsDeprecated', false), md5(g::text)
                 FROM generate_series(1, %s) g""",
            (key, LOCATIONS),
        )
        conn.execute(
            """INSERT INTO erp_cache.products (instance, id, payload, payload_hash)
               SELECT %s, 'prod-' || g, jsonb_build_object('ID', 'prod-' || g, 'SKU', 'SKU-' || lpad(g::text, 5, '0'),
                      'Name', 'Product ' || g, 'Category', 'Cat ' || (g %% 10), 'Brand', 'Brand ' || (g %% 7),
                      'Type', 'Stock', 'Status', 'Active', 'UOM', 'Item', 'AverageCost', 10 + g %% 50), md5(g::text)
                 FROM generate_series(1, %s) g""",
            (key, PRODUCTS),
        )
        conn.execute(
            """INSERT INTO erp_cache.customers (instance, id, payload, payload_hash)
               SELECT %s, 'cust-' || g, jsonb_build_object('ID', 'cust-' || g, 'Name', 'Customer ' || g,
                      'Currency', (%s::text[])[1 + g %% 6], 'Status', 'Active'), md5(g::text)
                 FROM generate_series(1, %s) g""",
            (key, list(CURRENCIES), CUSTOMERS),
        )


def _fill_sales(conn: psycopg.Connection, lines: int) -> int:
    """Sales straight into erp_cache.sales, set-based; returns how many. Line counts are 1..15 per sale, drawn
    with a fixed seed so the total is close to `lines` (exact count reported)."""
    sales_per_instance = max(1, round(lines / LINES_PER_SALE / len(INSTANCES)))
    conn.execute("SELECT setseed(0.42)")
    for key, base, _ in INSTANCES:
        conn.execute(
            """INSERT INTO erp_cache.sales (instance, id, modified_at, payload, payload_hash)
               SELECT %(key)s, s.id, now(), s.payload, md5(s.payload::text)
                 FROM (
                   SELECT 'sale-' || %(key)s || '-' || g AS id,
                          jsonb_build_object(
                            'ID', 'sale-' || %(key)s || '-' || g,
                            'Customer', 'Customer ' || h.cust, 'CustomerID', 'cust-' || h.cust,
                            'BaseCurrency', %(base)s::text, 'CustomerCurrency', h.ccy,
                            'CurrencyRate', CASE WHEN h.ccy = %(base)s::text THEN 1
                                                 ELSE round((0.5 + random())::numeric, 6) END,
                            'Location', 'Location ' || h.loc,
                            'SaleOrderDate', to_char(h.day, 'YYYY-MM-DD') || 'T00:00:00',
                            'LastModifiedOn', to_char(now(), 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                            'Status', CASE WHEN g %% 17 = 0 THEN 'VOIDED' ELSE 'COMPLETED' END,
                            'Type', 'Simple Sale', 'TaxRule', 'GST on Income', 'Note', '',
                            'CustomerReference', 'PO' || g,
                            'Order', jsonb_build_object('SaleOrderNumber', 'SO-' || g, 'Status', 'AUTHORISED',
                                                        'Lines', l.lines),
                            'Fulfilments', jsonb_build_array(jsonb_build_object('TaskID', 'f-' || g,
                                'Ship', jsonb_build_object('Status', 'AUTHORISED', 'Lines', jsonb_build_array(
                                    jsonb_build_object('ShipmentDate', to_char(h.day + 3, 'YYYY-MM-DD') || 'T00:00:00',
                                                       'IsShipped', true, 'TrackingNumber', 'TRK' || g))))),
                            'Invoices', CASE WHEN g %% 10 < 7 THEN jsonb_build_array(jsonb_build_object(
                                'TaskID', 'sale-' || %(key)s || '-' || g, 'InvoiceNumber', 'INV-' || g,
                                'InvoiceDate', to_char(h.day + 5, 'YYYY-MM-DD') || 'T00:00:00',
                                'CurrencyConversionRate', 1, 'Status', 'PAID', 'Lines', l.lines))
                                ELSE '[]'::jsonb END,
                            'CreditNotes', '[]'::jsonb) AS payload
                     FROM generate_series(1, %(n)s) g
                    CROSS JOIN LATERAL (
                        SELECT 1 + (random() * %(customers)s)::int %% %(customers)s AS cust,
                               (%(ccys)s::text[])[1 + floor(random() * 6)::int] AS ccy,
                               1 + (random() * %(locations)s)::int %% %(locations)s AS loc,
                               current_date - (random() * 800)::int AS day,
                               1 + (random() * 14)::int AS n_lines,
                               g AS gg
                    ) h
                    CROSS JOIN LATERAL (
                        SELECT jsonb_agg(jsonb_build_object(
                                   'ProductID', 'prod-' || p, 'SKU', 'SKU-' || lpad(p::text, 5, '0'),
                                   'Name', 'Product ' || p, 'Quantity', q, 'Price', price,
                                   'Discount', 0, 'Tax', round(q * price * 0.1, 2), 'Total', round(q * price, 2),
                                   'TaxRule', 'GST on Income', 'Comment', '')) AS lines
                          FROM (SELECT 1 + (random() * (%(products)s - 1))::int AS p, (1 + random() * 20)::int AS q,
                                       round((2 + random() * 120)::numeric, 2) AS price, i, h.gg
                                  FROM generate_series(1, h.n_lines) i) x
                    ) l
                 ) s""",
            {"key": key, "base": base, "n": sales_per_instance, "customers": CUSTOMERS, "ccys": list(CURRENCIES),
             "locations": LOCATIONS, "products": PRODUCTS},
        )
    conn.execute("ANALYZE erp_cache.sales")
    return int(conn.execute("SELECT count(*) FROM erp_cache.sales").fetchone()[0])


def _change_sales(conn: psycopg.Connection, share: float) -> int:
    return conn.execute(
        """WITH picked AS (SELECT instance, id FROM erp_cache.sales TABLESAMPLE BERNOULLI (%s) REPEATABLE (7))
           UPDATE erp_cache.sales c
              SET payload = jsonb_set(c.payload, '{Order,Lines,0,Total}',
                                      to_jsonb((c.payload->'Order'->'Lines'->0->>'Total')::numeric + 1.23)),
                  payload_hash = md5(c.payload::text || 'changed'), synced_at = clock_timestamp(),
                  modified_at = now()
             FROM picked p WHERE c.instance = p.instance AND c.id = p.id""",
        (share * 100,),
    ).rowcount


def _pandas_build(url: str) -> tuple[float, int, str]:
    """The same transformation in pandas: read JSONB, explode, merge dimensions and rates, COPY back."""
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT instance, id, payload::text FROM erp_cache.sales WHERE deleted_at IS NULL")
            docs = cur.fetchall()
        dims = {
            name: pd.DataFrame(conn.execute(sql).fetchall(), columns=cols)
            for name, sql, cols in (
                ("instance", "SELECT instance, instance_key, base_currency FROM warehouse.dim_instance",
                 ["instance", "instance_key", "instance_base"]),
                ("product", "SELECT instance_key, product_id, product_key FROM warehouse.dim_product",
                 ["instance_key", "product_id", "product_key"]),
                ("customer", "SELECT instance_key, customer_id, customer_key FROM warehouse.dim_customer",
                 ["instance_key", "customer_id", "customer_key"]),
                ("location",
                 "SELECT instance_key, name, location_key FROM warehouse.dim_location WHERE location_key <> 0",
                 ["instance_key", "location_name", "location_key"]),
                ("fx", f"SELECT on_date, currency, rate, rate_date FROM warehouse.fx_rate_daily "
                       f"WHERE reporting_currency = '{REPORTING}'", ["order_date", "hop_from", "reporting_rate",
                                                                    "reporting_rate_date"]),
            )
        }
        rows = []
        for instance, sale_id, text in docs:
            doc = json.loads(text)
            ship = [s.get("ShipmentDate") for f in doc.get("Fulfilments") or []
                    if (f.get("Ship") or {}).get("Status") in ("AUTHORISED", "PARTIALLY AUTHORISED")
                    for s in (f.get("Ship") or {}).get("Lines") or [] if s.get("IsShipped")]
            header = (instance, sale_id, (doc.get("Order") or {}).get("SaleOrderNumber"), doc.get("Status"),
                      doc.get("Status") == "VOIDED", doc.get("CustomerID"), doc.get("Location"),
                      (doc.get("SaleOrderDate") or "")[:10] or None, min(ship)[:10] if ship else None,
                      doc.get("CustomerCurrency") or doc.get("BaseCurrency"), doc.get("BaseCurrency"),
                      doc.get("CurrencyRate"))
            for n, line in enumerate((doc.get("Order") or {}).get("Lines") or [], start=1):
                rows.append((*header, n, line.get("ProductID"), line.get("SKU"), line.get("Quantity") or 0,
                             line.get("Price"), line.get("Total") or 0, line.get("Tax")))
        frame = pd.DataFrame(rows, columns=[
            "instance", "sale_id", "order_number", "status", "is_voided", "customer_id", "location_name",
            "order_date", "ship_date", "currency", "base_currency", "raw_rate", "line_number", "product_id", "sku",
            "quantity", "price", "amount", "tax"])
        frame = frame.merge(dims["instance"], on="instance", how="inner")
        frame = frame.merge(dims["product"], on=["instance_key", "product_id"], how="left")
        frame = frame.merge(dims["customer"], on=["instance_key", "customer_id"], how="left")
        frame = frame.merge(dims["location"], on=["instance_key", "location_name"], how="left")
        for key in ("product_key", "customer_key", "location_key"):
            frame[key] = frame[key].fillna(0).astype("int64")
        frame["order_date"] = pd.to_datetime(frame["order_date"]).dt.date
        same = frame["currency"] == frame["base_currency"]
        rate = pd.to_numeric(frame["raw_rate"], errors="coerce")
        frame["base_rate"] = rate.where(rate > 0).mask(same, 1.0)
        frame["hop_from"] = frame["base_currency"].where(frame["base_rate"].notna(), frame["currency"])
        frame = frame.merge(dims["fx"], on=["order_date", "hop_from"], how="left")
        # Float arithmetic here is pandas' default; the write casts to numeric(18,4) like the SQL build.
        frame["amount_base"] = (frame["amount"] * frame["base_rate"]).round(4)
        converted = frame["amount_base"].fillna(frame["amount"]) * frame["reporting_rate"].astype(float)
        frame["amount_reporting"] = converted.round(4)
        conn.execute("DROP TABLE IF EXISTS warehouse.fact_sale_line_pandas")
        conn.execute("CREATE TABLE warehouse.fact_sale_line_pandas (LIKE warehouse.fact_sale_line INCLUDING ALL)")
        columns = ["instance_key", "sale_id", "line_number", "order_number", "status", "is_voided", "product_key",
                   "customer_key", "location_key", "order_date", "ship_date", "sku", "quantity", "price", "amount",
                   "tax", "currency", "base_currency", "base_rate", "amount_base", "reporting_rate_currency",
                   "reporting_rate", "reporting_rate_date", "amount_reporting"]
        frame["order_date_key"] = pd.to_datetime(frame["order_date"]).dt.strftime("%Y%m%d").astype("int64")
        frame["base_rate_missing"] = frame["base_rate"].isna()
        frame["reporting_currency"] = REPORTING
        frame = frame.rename(columns={"hop_from": "reporting_rate_currency"})
        columns += ["order_date_key", "base_rate_missing", "reporting_currency"]
        buffer = io.StringIO()
        frame[columns].to_csv(buffer, index=False, header=False, na_rep="\\N")
        buffer.seek(0)
        with conn.cursor() as cur, cur.copy(
            f"COPY warehouse.fact_sale_line_pandas ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv, NULL '\\N')"
        ) as copy:
            while chunk := buffer.read(1 << 20):
                copy.write(chunk)
        total = conn.execute("SELECT sum(amount)::text FROM warehouse.fact_sale_line_pandas").fetchone()[0]
    return time.perf_counter() - started, len(frame), total


def main(as_json: bool = False, lines: int = 1_000_000) -> dict[str, Any]:
    server_url = os.environ.get(database.DATABASE_URL_ENV) or database.ensure_embedded_server().url()
    name = f"gp_bench_warehouse_{uuid.uuid4().hex[:8]}"
    url = database.ensure_database(server_url, name)
    figures: dict[str, Any] = {"lines_requested": lines}
    try:
        ensure_cache_schema(url)
        with psycopg.connect(url, autocommit=True) as conn:
            started = time.perf_counter()
            _fill_master_data(conn)
            figures["sales"] = _fill_sales(conn, lines)
            figures["generate_s"] = round(time.perf_counter() - started, 2)
        _log(as_json, f"generated {figures['sales']} sales in {figures['generate_s']} s")
        with EcbSandboxServer(EcbSandboxOptions(start=date.today().replace(year=date.today().year - 3))) as ecb:
            load_fx_rates(url, ecb.source(), reporting_currency=REPORTING)
        for table in ("fx_rate", "dim_instance", "dim_date", "dim_product", "dim_customer", "dim_location"):
            build_table(url, table, reporting_currency=REPORTING, full=True)

        full = build_table(url, "fact_sale_line", reporting_currency=REPORTING, full=True)
        figures["lines"] = full.rows_inserted
        figures["full_build_s"] = round(full.seconds, 3)
        figures["rows_per_s"] = round(full.rows_inserted / full.seconds)
        _log(as_json, f"full build: {full.rows_inserted} lines in {full.seconds:.2f} s")

        with psycopg.connect(url, autocommit=True) as conn:
            figures["sales_changed"] = _change_sales(conn, CHANGED_SHARE)
        incremental = build_table(url, "fact_sale_line", reporting_currency=REPORTING)
        figures["incremental_s"] = round(incremental.seconds, 3)
        figures["incremental_documents"] = incremental.documents_changed
        figures["incremental_lines_rewritten"] = incremental.rows_updated + incremental.rows_inserted
        figures["incremental_vs_full"] = round(incremental.seconds / full.seconds, 4)
        _log(as_json, f"incremental after {figures['sales_changed']} sales changed: {incremental.seconds:.2f} s "
                      f"({figures['incremental_vs_full']:.1%} of full)")

        # The SQL full build again, on the changed data, so the pandas result can be compared line for line.
        full_again = build_table(url, "fact_sale_line", reporting_currency=REPORTING, full=True)
        pandas_s, pandas_lines, pandas_total = _pandas_build(url)
        with psycopg.connect(url, autocommit=True) as conn:
            sql_total = conn.execute("SELECT sum(amount)::text FROM warehouse.fact_sale_line").fetchone()[0]
        figures["pandas_s"] = round(pandas_s, 3)
        figures["pandas_vs_sql"] = round(pandas_s / full_again.seconds, 2)
        figures["same_result"] = pandas_lines == full_again.rows_inserted and pandas_total == sql_total
        _log(as_json, f"pandas: {pandas_lines} lines in {pandas_s:.2f} s ({figures['pandas_vs_sql']}x the SQL build)")
    finally:
        database.drop_database(server_url, name)
    if as_json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:>28}: {value}")
    return figures


if __name__ == "__main__":
    import sys

    main(as_json="--json" in sys.argv, lines=int(sys.argv[sys.argv.index("--lines") + 1])
         if "--lines" in sys.argv else 1_000_000)
