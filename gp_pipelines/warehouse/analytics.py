"""Schema `analytics`: the views BI tools (Power BI, psql users) read. A star schema with stable, readable
column names and explicit types Power BI maps cleanly (reference/analytics_exports.md §2.3):

- integer surrogate keys (`*_key`) for relationships; each fact joins each dimension one-to-many;
- money as `numeric(18,4)` (Power BI "Fixed decimal number"), rates `numeric(24,10)`, dates as `date`;
- every amount three times: `amount_document` + `document_currency`, `amount_base` + `base_currency`,
  `amount_reporting` + `reporting_currency`, with the rates and the rate date used;
- the unknown members (key 0) are in the dimension views, so fact rows on them still relate ("(unknown)");
  `dates` leaves out key 0 (no date) so it can be marked as the date table (unique, non-null `date`).

The column lists below are the published contract: add columns at the end, never rename or drop one.
"""

from __future__ import annotations

import psycopg

from gp_pipelines.warehouse.schema import ANALYTICS_SCHEMA, WAREHOUSE_SCHEMA, create_warehouse_schema

W, A = WAREHOUSE_SCHEMA, ANALYTICS_SCHEMA

_MONEY_COLUMNS = """
       f.amount::numeric(18,4) AS amount_document, f.currency AS document_currency,
       f.tax::numeric(18,4) AS tax_document,
       f.base_rate::numeric(24,10) AS base_rate, f.base_rate_missing,
       f.amount_base::numeric(18,4) AS amount_base, f.base_currency,
       f.reporting_rate::numeric(24,10) AS reporting_rate, f.reporting_rate_date, f.reporting_rate_currency,
       f.amount_reporting::numeric(18,4) AS amount_reporting, f.reporting_currency"""

_LINE_COLUMNS = """
       f.sku, f.quantity::numeric(18,4) AS quantity, f.price::numeric(18,4) AS unit_price,
       f.discount::numeric(9,4) AS discount_percent,"""

VIEW_SQL: dict[str, str] = {
    "sales": f"""
SELECT f.instance_key, i.instance AS instance_code, f.sale_id, f.line_number, f.order_number,
       f.status AS sale_status, f.order_status, f.is_voided,
       f.product_key, f.customer_key, f.location_key,
       f.order_date, f.order_date_key, f.ship_date, f.ship_date_key,{_LINE_COLUMNS}{_MONEY_COLUMNS}
  FROM {W}.fact_sale_line f JOIN {W}.dim_instance i ON i.instance_key = f.instance_key""",
    "invoices": f"""
SELECT f.instance_key, i.instance AS instance_code, f.sale_id, f.invoice_task_id, f.line_number,
       f.invoice_number, f.invoice_status, f.sale_status, f.is_voided,
       f.product_key, f.customer_key, f.location_key,
       f.invoice_date, f.invoice_date_key, f.due_date,{_LINE_COLUMNS}{_MONEY_COLUMNS}
  FROM {W}.fact_invoice_line f JOIN {W}.dim_instance i ON i.instance_key = f.instance_key""",
    "credit_notes": f"""
SELECT f.instance_key, i.instance AS instance_code, f.sale_id, f.credit_note_task_id, f.line_number,
       f.credit_note_number, f.credited_invoice_number, f.credit_note_status, f.sale_status, f.is_voided,
       f.product_key, f.customer_key, f.location_key,
       f.credit_note_date, f.credit_note_date_key,{_LINE_COLUMNS}{_MONEY_COLUMNS}
  FROM {W}.fact_credit_note_line f JOIN {W}.dim_instance i ON i.instance_key = f.instance_key""",
    "purchases": f"""
SELECT f.instance_key, i.instance AS instance_code, f.purchase_id, f.line_number, f.order_number,
       f.status AS purchase_status, f.is_voided, f.supplier_id, f.supplier_name,
       f.product_key, f.location_key, f.order_date, f.order_date_key, f.required_by,{_LINE_COLUMNS}{_MONEY_COLUMNS}
  FROM {W}.fact_purchase_line f JOIN {W}.dim_instance i ON i.instance_key = f.instance_key""",
    "stock": f"""
SELECT f.instance_key, i.instance AS instance_code, f.product_key, f.location_key,
       f.sku, f.location_name,
       f.on_hand::numeric(18,4) AS quantity_on_hand, f.allocated::numeric(18,4) AS quantity_allocated,
       f.available::numeric(18,4) AS quantity_available, f.on_order::numeric(18,4) AS quantity_on_order,
       f.in_transit::numeric(18,4) AS quantity_in_transit, f.stock_value_base::numeric(18,4) AS stock_value_base,
       i.base_currency, f.snapshot_at
  FROM {W}.fact_stock f JOIN {W}.dim_instance i ON i.instance_key = f.instance_key""",
    "products": f"""
SELECT p.product_key, p.conformed_product_key, p.instance_key, i.instance AS instance_code, p.product_id,
       p.sku, p.name AS product_name, p.category, p.brand, p.product_type, p.status AS product_status, p.uom,
       p.barcode, p.average_cost::numeric(18,4) AS average_cost_base, p.is_deleted
  FROM {W}.dim_product p JOIN {W}.dim_instance i ON i.instance_key = p.instance_key""",
    "customers": f"""
SELECT c.customer_key, c.instance_key, i.instance AS instance_code, c.customer_id, c.name AS customer_name,
       c.currency AS customer_currency, c.status AS customer_status, c.price_tier, c.payment_term,
       c.sales_representative, c.country, c.is_deleted
  FROM {W}.dim_customer c JOIN {W}.dim_instance i ON i.instance_key = c.instance_key""",
    "locations": f"""
SELECT l.location_key, l.instance_key, i.instance AS instance_code, l.location_id, l.name AS location_name,
       l.is_default, l.is_deprecated, l.city, l.country, l.is_deleted
  FROM {W}.dim_location l JOIN {W}.dim_instance i ON i.instance_key = l.instance_key""",
    "dates": f"""
SELECT d.date_key, d.date, d.year, d.quarter, d.month, d.month_name, d.year_month, d.day, d.day_of_week,
       d.day_name, d.iso_week, d.is_weekend
  FROM {W}.dim_date d WHERE d.date_key <> 0""",
    "instances": f"""
SELECT instance_key, instance AS instance_code, company AS company_name, base_currency, timezone
  FROM {W}.dim_instance""",
    "fx_rates": f"""
SELECT on_date AS date, currency, reporting_currency, rate::numeric(24,10) AS rate, rate_date, triangulated
  FROM {W}.fx_rate_daily""",
}

ANALYTICS_VIEWS: tuple[str, ...] = tuple(VIEW_SQL)


def ensure_analytics_views(database_url: str, *, reader_role: str | None = None) -> None:
    """(Re)create every view in one transaction; with `reader_role`, grant it read access to schema
    `analytics` only (the dedicated read-only role Power BI connects as)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        create_warehouse_schema(conn)  # the tables the views read (migrated); the views are derived, made here
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('gp.ddl.analytics', 0))")
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {A}")
            for name, sql in VIEW_SQL.items():
                # DROP + CREATE, not CREATE OR REPLACE: the latter refuses a changed column type.
                conn.execute(f"DROP VIEW IF EXISTS {A}.{name}")
                conn.execute(f"CREATE VIEW {A}.{name} AS {sql}")
            if reader_role:
                role = psycopg.sql.Identifier(reader_role)
                conn.execute(psycopg.sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                    psycopg.sql.Identifier(A), role))
                conn.execute(psycopg.sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(
                    psycopg.sql.Identifier(A), role))


# -- what the catalogue says about a table or view (for the assets' column schema and row counts) -------------


def relation_columns(database_url: str, schema: str, names: list[str]) -> dict[str, list[tuple[str, str, bool,
                                                                                              str | None]]]:
    """Per table or view: (column, type as PostgreSQL spells it, nullable, comment), in column order, read from
    the catalogue (so the schema shown is what readers get, not what the code meant)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            """SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
                      col_description(c.oid, a.attnum)
                 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = %s AND c.relname = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped
                ORDER BY c.relname, a.attnum""", (schema, list(names))).fetchall()
    found: dict[str, list[tuple[str, str, bool, str | None]]] = {name: [] for name in names}
    for relation, column, kind, nullable, comment in rows:
        found[relation].append((column, kind, nullable, comment))
    return found


def relation_row_counts(database_url: str, schema: str, names: list[str]) -> dict[str, int]:
    """Exact row counts (count(*): the views are what BI tools read, an estimate would not do)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        return {name: conn.execute(psycopg.sql.SQL("SELECT count(*) FROM {}.{}").format(
            psycopg.sql.Identifier(schema), psycopg.sql.Identifier(name))).fetchone()[0] for name in names}
