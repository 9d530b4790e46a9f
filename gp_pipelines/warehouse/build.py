"""Build the merged multi-currency warehouse from the JSONB cache, set-based in PostgreSQL.

The tables are data (`WAREHOUSE_TABLES`, in build order, each naming the `erp_cache` entities it reads and the
warehouse tables it needs); `build_table(database_url, name, reporting_currency=...)` builds one of them,
incrementally unless `full=True`. Nothing here imports Dagster: the asset layer calls these functions and turns
`BuildResult.as_metadata()` into materialisation metadata.

**How incremental builds find changed inputs.** Every build records in `warehouse.build_state` the newest cache
change it consumed (`input_stamp` = max of `synced_at` and `deleted_at` over its input tables) and, for money
facts, the newest `fx_rate_daily.changed_at`. The next build looks only at cache rows changed since
`input_stamp - CHANGE_OVERLAP` (the overlap absorbs sync transactions that committed after a build read their
stamp). For document facts (sales → sale/invoice/credit-note lines, purchases → purchase lines),
`warehouse.built_document` keeps the `payload_hash` of every document whose lines the fact holds, so a row in
the window counts as changed only if its hash differs, it is new, or it was deleted. The changed documents' lines
are deleted and re-inserted **in one transaction** (REPEATABLE READ, under an advisory lock per table), so a
reader never sees half a document. Documents are also revisited when one of their lines points at an unknown
member (key 0; the dimension may have it now), has no reporting amount, or uses a day whose reporting rate
changed since the last build (new or corrected ECB rates). Dimensions upsert the changed cache rows on their
natural key and write only rows whose attributes differ; `fact_stock` recomputes its (small) aggregate when its
inputs changed and writes only the differences. A change of reporting currency forces a full build.

**Currency rules** (all facts with money):
- `amount` is the document's line `Total` (before tax) in the document currency, exactly as cached.
- `amount_base = amount × base_rate`, rounded to 4 places, where `base_rate` is the document's own rate
  (`CurrencyRate` for sales and purchases, `CurrencyConversionRate` for invoices, `CreditNoteConversionRate` for
  credit notes: base units per document unit). When the document currency equals the base currency the rate is
  1 whatever the document says. When they differ and the rate is missing, zero, negative or not a number,
  `base_rate_missing` is true and `amount_base` is NULL: nothing is divided, nothing guessed.
  `check_fx_coverage` fails on such lines and names the instance, month and count.
- `amount_reporting` converts `amount_base` from the base currency with `fx_rate_daily` on the fact's date (order
  date for sale and purchase lines, invoice date, credit-note date): the last reference rate published on or
  before that day, triangulated through EUR; `reporting_rate_date` keeps the publication day apart from the
  transaction day. When `amount_base` is missing, the hop starts from the document currency instead
  (`reporting_rate_currency` says which). No rate at all → `amount_reporting` is NULL and the FX check fails.
- A missing document currency is taken as the base currency.

**Voided documents and credit notes.** Voided sales and purchases keep their lines with their amounts, their
`status` and `is_voided = true` (reconciliation compares every live cached document); analysts filter them out
(the analytics views carry `is_voided`). Voided invoices and credit notes likewise keep their lines with
`is_voided`. Credit-note lines are stored positive, as Cin7 reports them, in their own fact: net revenue is
invoice lines minus credit-note lines. Documents hard-deleted from Cin7 (`deleted_at`) lose their lines.
Zero-quantity lines are kept (they carry an amount of 0 or a price adjustment).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from gp_pipelines.warehouse.fx import FX_RATE_DAILY, refresh_daily_rates
from gp_pipelines.warehouse.schema import (
    REVISIT_PREDICATE,
    WAREHOUSE_SCHEMA,
    create_warehouse_schema,
    ensure_warehouse_schema,
    table_index_ddl,
)

W = WAREHOUSE_SCHEMA
C = "erp_cache"
CHANGE_OVERLAP = "10 minutes"

__all__ = ["WAREHOUSE_TABLES", "BuildResult", "TableSpec", "build_all", "build_table", "ensure_warehouse_schema",
           "table_spec"]


# -- the tables as data -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ForeignKey:
    column: str
    dimension: str
    dimension_key: str
    required: bool = True  # NULL allowed when False (e.g. ship date before shipping)


@dataclass(frozen=True)
class TableSpec:
    name: str
    title: str
    kind: str  # fx | dimension | fact
    inputs: tuple[str, ...]  # erp_cache entities read
    depends_on: tuple[str, ...] = ()  # warehouse tables that must be built first
    key_columns: tuple[str, ...] = ()  # the natural key (unique)
    surrogate_key: str | None = None
    foreign_keys: tuple[ForeignKey, ...] = ()
    date_column: str | None = None  # the month a row belongs to (checks group by it)
    has_money: bool = False
    document_entity: str | None = None  # document facts: the cache table whose documents hold the lines
    document_column: str | None = None  # the fact column holding the cache document id

    @property
    def qualified(self) -> str:
        return f"{W}.{self.name}"


_INSTANCE_FK = ForeignKey("instance_key", "dim_instance", "instance_key")
_PRODUCT_FK = ForeignKey("product_key", "dim_product", "product_key")
_CUSTOMER_FK = ForeignKey("customer_key", "dim_customer", "customer_key")
_LOCATION_FK = ForeignKey("location_key", "dim_location", "location_key")


def _date_fk(column: str, required: bool = True) -> ForeignKey:
    return ForeignKey(column, "dim_date", "date_key", required)


WAREHOUSE_TABLES: tuple[TableSpec, ...] = (
    TableSpec("fx_rate", "Reference rates per day into the reporting currency", "fx", (),
              key_columns=("reporting_currency", "on_date", "currency")),
    TableSpec("dim_instance", "Cin7 Core accounts", "dimension", ("me", "sales", "products"),
              key_columns=("instance",), surrogate_key="instance_key"),
    TableSpec("dim_date", "Calendar", "dimension", ("sales", "purchases"), ("fx_rate",), key_columns=("date",),
              surrogate_key="date_key"),
    TableSpec("dim_product", "Products per instance, with a conformed key by SKU", "dimension", ("products",),
              ("dim_instance",), key_columns=("instance_key", "product_id"), surrogate_key="product_key",
              foreign_keys=(_INSTANCE_FK, ForeignKey("conformed_product_key", "conformed_product",
                                                     "conformed_product_key"))),
    TableSpec("dim_customer", "Customers per instance", "dimension", ("customers",), ("dim_instance",),
              key_columns=("instance_key", "customer_id"), surrogate_key="customer_key", foreign_keys=(_INSTANCE_FK,)),
    TableSpec("dim_location", "Locations per instance", "dimension", ("locations",), ("dim_instance",),
              key_columns=("instance_key", "location_id"), surrogate_key="location_key", foreign_keys=(_INSTANCE_FK,)),
    TableSpec("fact_sale_line", "One row per sale order line", "fact", ("sales",),
              ("fx_rate", "dim_instance", "dim_date", "dim_product", "dim_customer", "dim_location"),
              key_columns=("instance_key", "sale_id", "line_number"),
              foreign_keys=(_INSTANCE_FK, _PRODUCT_FK, _CUSTOMER_FK, _LOCATION_FK, _date_fk("order_date_key"),
                            _date_fk("ship_date_key", required=False)),
              date_column="order_date", has_money=True, document_entity="sales", document_column="sale_id"),
    TableSpec("fact_invoice_line", "One row per sale invoice line", "fact", ("sales",),
              ("fx_rate", "dim_instance", "dim_date", "dim_product", "dim_customer", "dim_location"),
              key_columns=("instance_key", "sale_id", "invoice_task_id", "line_number"),
              foreign_keys=(_INSTANCE_FK, _PRODUCT_FK, _CUSTOMER_FK, _LOCATION_FK, _date_fk("invoice_date_key")),
              date_column="invoice_date", has_money=True, document_entity="sales", document_column="sale_id"),
    TableSpec("fact_credit_note_line", "One row per sale credit-note line", "fact", ("sales",),
              ("fx_rate", "dim_instance", "dim_date", "dim_product", "dim_customer", "dim_location"),
              key_columns=("instance_key", "sale_id", "credit_note_task_id", "line_number"),
              foreign_keys=(_INSTANCE_FK, _PRODUCT_FK, _CUSTOMER_FK, _LOCATION_FK,
                            _date_fk("credit_note_date_key")),
              date_column="credit_note_date", has_money=True, document_entity="sales", document_column="sale_id"),
    TableSpec("fact_purchase_line", "One row per purchase order line", "fact", ("purchases",),
              ("fx_rate", "dim_instance", "dim_date", "dim_product", "dim_location"),
              key_columns=("instance_key", "purchase_id", "line_number"),
              foreign_keys=(_INSTANCE_FK, _PRODUCT_FK, _LOCATION_FK, _date_fk("order_date_key")),
              date_column="order_date", has_money=True, document_entity="purchases", document_column="purchase_id"),
    TableSpec("fact_stock", "Stock per SKU, location and instance (bins and batches summed)", "fact",
              ("product_availability",), ("dim_instance", "dim_product", "dim_location"),
              key_columns=("instance_key", "location_name", "sku"),
              foreign_keys=(_INSTANCE_FK, _PRODUCT_FK, _LOCATION_FK)),
)

_SPECS = {spec.name: spec for spec in WAREHOUSE_TABLES}


def table_spec(name: str) -> TableSpec:
    try:
        return _SPECS[name]
    except KeyError:
        raise KeyError(f"unknown warehouse table {name!r}; known: {', '.join(_SPECS)}") from None


@dataclass
class BuildResult:
    table: str
    mode: str  # full | incremental | skipped
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_deleted: int = 0
    documents_changed: int | None = None
    rows_total: int = 0
    input_stamp: datetime | None = None
    reporting_currency: str | None = None
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def as_metadata(self) -> dict[str, Any]:
        values = asdict(self)
        values["input_stamp"] = self.input_stamp.isoformat() if self.input_stamp else None
        details = values.pop("details")
        if values["documents_changed"] is None:
            values.pop("documents_changed")
        return {**values, **details}


# -- state ---------------------------------------------------------------------------------------------------


@dataclass
class _State:
    input_stamp: datetime | None
    fx_stamp: datetime | None
    reporting_currency: str | None
    rows_total: int | None = None


def _load_state(conn: psycopg.Connection, name: str) -> _State | None:
    row = conn.execute(
        f"""SELECT input_stamp, fx_stamp, reporting_currency, (last_result->>'rows_total')::bigint
              FROM {W}.build_state WHERE table_name = %s""", (name,)
    ).fetchone()
    return _State(*row) if row else None


def _save_state(conn: psycopg.Connection, result: BuildResult, fx_stamp: datetime | None) -> None:
    conn.execute(
        f"""INSERT INTO {W}.build_state AS s (table_name, input_stamp, fx_stamp, reporting_currency, last_mode,
                                              last_built_at, last_result)
            VALUES (%s, %s, %s, %s, %s, now(), %s)
            ON CONFLICT (table_name) DO UPDATE SET
                input_stamp = EXCLUDED.input_stamp, fx_stamp = EXCLUDED.fx_stamp,
                reporting_currency = EXCLUDED.reporting_currency, last_mode = EXCLUDED.last_mode,
                last_built_at = EXCLUDED.last_built_at, last_result = EXCLUDED.last_result""",
        (result.table, result.input_stamp, fx_stamp, result.reporting_currency, result.mode,
         json.dumps(result.as_metadata(), default=str)),
    )


def _input_stamp(conn: psycopg.Connection, entities: tuple[str, ...]) -> datetime | None:
    if not entities:
        return None
    parts = " UNION ALL ".join(
        f"SELECT max(greatest(synced_at, deleted_at)) AS stamp FROM {C}.{e}" for e in entities
    )
    return conn.execute(f"SELECT max(stamp) FROM ({parts}) s").fetchone()[0]


def _changed_since(alias: str, state: _State | None, full: bool) -> tuple[str, dict[str, Any]]:
    """A WHERE fragment selecting cache rows changed since the last build (all rows for a full build)."""
    if full or state is None or state.input_stamp is None:
        return "true", {}
    return (f"greatest({alias}.synced_at, {alias}.deleted_at) > %(since)s::timestamptz - interval '{CHANGE_OVERLAP}'",
            {"since": state.input_stamp})


def _counts(row: tuple[Any, ...] | None) -> tuple[int, int]:
    return (int(row[0] or 0), int(row[1] or 0)) if row else (0, 0)


# -- dimensions ----------------------------------------------------------------------------------------------


def _build_dim_instance(conn, spec, rc, full, state, result):
    where, params = _changed_since("c", state, full)
    sources = " UNION ".join(f"SELECT DISTINCT instance FROM {C}.{e} c WHERE {where}" for e in spec.inputs)
    inserted, updated = _counts(conn.execute(
        f"""WITH seen AS ({sources}),
            attrs AS (
                SELECT s.instance, m.payload->>'Company' AS company,
                       coalesce(m.payload->>'Currency',
                                (SELECT x.payload->>'BaseCurrency' FROM {C}.sales x
                                  WHERE x.instance = s.instance LIMIT 1)) AS base_currency,
                       m.payload->>'TimeZone' AS timezone
                  FROM seen s LEFT JOIN {C}.me m ON m.instance = s.instance AND m.id = 'me'
            ), written AS (
                INSERT INTO {W}.dim_instance AS d (instance, company, base_currency, timezone, updated_at)
                SELECT instance, company, base_currency, timezone, now() FROM attrs
                ON CONFLICT (instance) DO UPDATE SET company = EXCLUDED.company,
                    base_currency = EXCLUDED.base_currency, timezone = EXCLUDED.timezone, updated_at = now()
                 WHERE (d.company, d.base_currency, d.timezone)
                       IS DISTINCT FROM (EXCLUDED.company, EXCLUDED.base_currency, EXCLUDED.timezone)
                RETURNING (d.xmax = 0) AS inserted
            )
            SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written""",
        params,
    ).fetchone())
    result.rows_inserted, result.rows_updated = inserted, updated


def _build_dim_date(conn, spec, rc, full, state, result):
    # A continuous calendar (Power BI's date table needs one): from 2000-01-01, or earlier if the rates or the
    # documents start earlier, to ten years past today.
    first = conn.execute(
        f"""SELECT least(date '2000-01-01', (SELECT min(rate_date) FROM {W}.fx_rate),
                         (SELECT min({W}.json_date(payload->>'SaleOrderDate')) FROM {C}.sales),
                         (SELECT min({W}.json_date(payload->>'OrderDate')) FROM {C}.purchases))"""
    ).fetchone()[0]
    result.rows_inserted = conn.execute(
        f"""INSERT INTO {W}.dim_date (date_key, date, year, quarter, month, month_name, year_month, day,
                                      day_of_week, day_name, iso_week, is_weekend)
            SELECT {W}.date_key(d), d, extract(year FROM d)::int, extract(quarter FROM d)::int,
                   extract(month FROM d)::int, trim(to_char(d, 'Month')), to_char(d, 'YYYY-MM'),
                   extract(day FROM d)::int, extract(isodow FROM d)::int, trim(to_char(d, 'Day')),
                   extract(week FROM d)::int, extract(isodow FROM d) >= 6
              FROM generate_series(%s::date, (date_trunc('year', current_date) + interval '11 years - 1 day')::date,
                                   interval '1 day') g, LATERAL (SELECT g::date AS d) x
            ON CONFLICT (date_key) DO NOTHING""",
        (first,),
    ).rowcount


def _upsert_dimension(conn, table: str, natural: tuple[str, str], columns: dict[str, str], source: str,
                      where: str, params: dict[str, Any], result: BuildResult) -> None:
    names = list(columns)
    select = ", ".join(f"{expr} AS {name}" for name, expr in columns.items())
    tracked = [n for n in names if n not in natural]
    inserted, updated = _counts(conn.execute(
        f"""WITH src AS (SELECT DISTINCT ON ({', '.join(natural)}) * FROM (SELECT {select} {source} WHERE {where}) s
                          ORDER BY {', '.join(natural)}),
            written AS (
                INSERT INTO {W}.{table} AS d ({', '.join(names)}, updated_at)
                SELECT {', '.join(names)}, now() FROM src
                ON CONFLICT ({', '.join(natural)}) DO UPDATE SET
                    {', '.join(f'{n} = EXCLUDED.{n}' for n in tracked)}, updated_at = now()
                 WHERE ({', '.join('d.' + n for n in tracked)})
                       IS DISTINCT FROM ({', '.join('EXCLUDED.' + n for n in tracked)})
                RETURNING (d.xmax = 0) AS inserted
            )
            SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written""",
        params,
    ).fetchone())
    result.rows_inserted, result.rows_updated = inserted, updated


def _build_dim_product(conn, spec, rc, full, state, result):
    where, params = _changed_since("c", state, full)
    conn.execute(
        f"""INSERT INTO {W}.conformed_product (sku)
            SELECT DISTINCT c.payload->>'SKU' FROM {C}.products c
             WHERE {where} AND coalesce(c.payload->>'SKU', '') <> ''
            ON CONFLICT (sku) DO NOTHING""",
        params,
    )
    _upsert_dimension(
        conn, "dim_product", ("instance_key", "product_id"),
        {
            "instance_key": "di.instance_key", "product_id": "c.id",
            "conformed_product_key": "coalesce(cp.conformed_product_key, 0)",
            "sku": "c.payload->>'SKU'", "name": "c.payload->>'Name'", "category": "c.payload->>'Category'",
            "brand": "c.payload->>'Brand'", "product_type": "c.payload->>'Type'", "status": "c.payload->>'Status'",
            "uom": "c.payload->>'UOM'", "barcode": "c.payload->>'Barcode'",
            "average_cost": f"round({W}.json_number(c.payload->'AverageCost'), 4)",
            "is_deleted": "c.deleted_at IS NOT NULL",
        },
        f"""FROM {C}.products c JOIN {W}.dim_instance di ON di.instance = c.instance
            LEFT JOIN {W}.conformed_product cp ON cp.sku = c.payload->>'SKU'""",
        where, params, result,
    )


def _build_dim_customer(conn, spec, rc, full, state, result):
    where, params = _changed_since("c", state, full)
    _upsert_dimension(
        conn, "dim_customer", ("instance_key", "customer_id"),
        {
            "instance_key": "di.instance_key", "customer_id": "c.id", "name": "c.payload->>'Name'",
            "currency": "c.payload->>'Currency'", "status": "c.payload->>'Status'",
            "price_tier": "c.payload->>'PriceTier'", "payment_term": "c.payload->>'PaymentTerm'",
            "sales_representative": "c.payload->>'SalesRepresentative'",
            "country": "c.payload->'Addresses'->0->>'Country'", "is_deleted": "c.deleted_at IS NOT NULL",
        },
        f"FROM {C}.customers c JOIN {W}.dim_instance di ON di.instance = c.instance",
        where, params, result,
    )


def _build_dim_location(conn, spec, rc, full, state, result):
    where, params = _changed_since("c", state, full)
    _upsert_dimension(
        conn, "dim_location", ("instance_key", "location_id"),
        {
            "instance_key": "di.instance_key", "location_id": "c.id", "name": "c.payload->>'Name'",
            "is_default": "(c.payload->>'IsDefault')::boolean",
            "is_deprecated": "coalesce(c.payload->>'IsDeprecated', c.payload->>'Deprecated')::boolean",
            "city": "c.payload->>'AddressCitySuburb'", "country": "c.payload->>'AddressCountry'",
            "is_deleted": "c.deleted_at IS NOT NULL",
        },
        f"FROM {C}.locations c JOIN {W}.dim_instance di ON di.instance = c.instance",
        where, params, result,
    )


def _build_fx(conn, spec, rc, full, state, result):
    result.rows_updated, result.rows_total = refresh_daily_rates(conn, rc)


# -- document facts ------------------------------------------------------------------------------------------


def _arr(expr: str) -> str:
    return f"(CASE WHEN jsonb_typeof({expr}) = 'array' THEN {expr} ELSE '[]'::jsonb END)"


@dataclass(frozen=True)
class LineSource:
    """How one document fact's lines come out of a cached document (`c.payload`, task `t.task`, line
    `l.line`). Everything else (keys, dimensions, the three currencies) is shared by `_lines_sql`."""

    tasks: str | None  # JSON array of tasks (Invoices, CreditNotes); None = lines hang off the document
    task_id_column: str | None
    lines: str
    date: str  # text expression of the fact's date
    date_column: str
    currency: str  # the document currency
    rate: str  # jsonb expression of the document's own rate
    customer_id: str | None
    location_name: str
    columns: tuple[tuple[str, str], ...]  # further fact columns and their expressions
    document_subquery_columns: tuple[tuple[str, str], ...] = ()  # computed once per document


_SHIP_DATE = f"""(SELECT min({W}.json_date(s->>'ShipmentDate'))
                    FROM jsonb_array_elements({_arr("c.payload->'Fulfilments'")}) f,
                         jsonb_array_elements({_arr("f->'Ship'->'Lines'")}) s
                   WHERE f->'Ship'->>'Status' IN ('AUTHORISED', 'PARTIALLY AUTHORISED')
                     AND s->>'IsShipped' = 'true')"""

LINE_SOURCES: dict[str, LineSource] = {
    "fact_sale_line": LineSource(
        tasks=None, task_id_column=None, lines="c.payload->'Order'->'Lines'",
        date="c.payload->>'SaleOrderDate'", date_column="order_date",
        currency="c.payload->>'CustomerCurrency'", rate="c.payload->'CurrencyRate'",
        customer_id="c.payload->>'CustomerID'", location_name="c.payload->>'Location'",
        columns=(("order_number", "c.payload->'Order'->>'SaleOrderNumber'"), ("status", "c.payload->>'Status'"),
                 ("order_status", "c.payload->'Order'->>'Status'"),
                 ("is_voided", "coalesce(c.payload->>'Status' = 'VOIDED', false)"),
                 ("ship_date", "c.ship_date"), ("ship_date_key", f"{W}.date_key(c.ship_date)")),
        document_subquery_columns=(("ship_date", _SHIP_DATE),),
    ),
    "fact_invoice_line": LineSource(
        tasks="c.payload->'Invoices'", task_id_column="invoice_task_id", lines="t.task->'Lines'",
        date="t.task->>'InvoiceDate'", date_column="invoice_date",
        currency="c.payload->>'CustomerCurrency'", rate="t.task->'CurrencyConversionRate'",
        customer_id="c.payload->>'CustomerID'", location_name="c.payload->>'Location'",
        columns=(("invoice_number", "t.task->>'InvoiceNumber'"), ("invoice_status", "t.task->>'Status'"),
                 ("sale_status", "c.payload->>'Status'"),
                 ("is_voided", "coalesce(t.task->>'Status' = 'VOIDED' OR c.payload->>'Status' = 'VOIDED', false)"),
                 ("due_date", f"{W}.json_date(t.task->>'InvoiceDueDate')")),
    ),
    "fact_credit_note_line": LineSource(
        tasks="c.payload->'CreditNotes'", task_id_column="credit_note_task_id", lines="t.task->'Lines'",
        date="t.task->>'CreditNoteDate'", date_column="credit_note_date",
        currency="c.payload->>'CustomerCurrency'", rate="t.task->'CreditNoteConversionRate'",
        customer_id="c.payload->>'CustomerID'", location_name="c.payload->>'Location'",
        columns=(("credit_note_number", "t.task->>'CreditNoteNumber'"),
                 ("credited_invoice_number", "t.task->>'CreditNoteInvoiceNumber'"),
                 ("credit_note_status", "t.task->>'Status'"), ("sale_status", "c.payload->>'Status'"),
                 ("is_voided", "coalesce(t.task->>'Status' = 'VOIDED', false)")),
    ),
    "fact_purchase_line": LineSource(
        tasks=None, task_id_column=None, lines="c.payload->'Order'->'Lines'",
        date="c.payload->>'OrderDate'", date_column="order_date",
        currency="c.payload->>'SupplierCurrency'", rate="c.payload->'CurrencyRate'",
        customer_id=None, location_name="c.payload->>'Location'",
        columns=(("order_number", "c.payload->>'OrderNumber'"), ("status", "c.payload->>'Status'"),
                 ("is_voided", "coalesce(c.payload->>'Status' = 'VOIDED', false)"),
                 ("supplier_id", "c.payload->>'SupplierID'"), ("supplier_name", "c.payload->>'Supplier'"),
                 ("required_by", f"{W}.json_date(c.payload->>'RequiredBy')")),
    ),
}

_LOCATION_BY_NAME = f"""(SELECT DISTINCT ON (instance_key, name) instance_key, name, location_key
                           FROM {W}.dim_location WHERE location_key <> 0
                          ORDER BY instance_key, name, is_deleted, is_deprecated NULLS LAST, location_key)"""


def _is_header(expr: str) -> bool:
    return "t.task" not in expr and "l.line" not in expr


def _lines_sql(spec: TableSpec, source: LineSource, *, changed_only: bool) -> str:
    """INSERT ... SELECT of every line of every live document (or only those in `_wh_changed`).

    Three levels, each kept apart with OFFSET 0 so PostgreSQL computes it once per row of its own level:
    1. per document, `payload || '{}'` hands on an in-memory (de-TOASTed, decompressed) copy, so later field
       reads do not each decompress the whole document again;
    2. per document, every header field (currency, rate, date, customer, location, status ...) is read once
       instead of once per line;
    3. per line, the line fields and dimension keys; then the currency arithmetic and the rate join on top.
    """
    changed = "JOIN _wh_changed ch ON ch.instance = x.instance AND ch.id = x.id" if changed_only else ""
    task_join, task_id = "", None
    if source.tasks:
        task_join = f"CROSS JOIN LATERAL jsonb_array_elements({_arr(source.tasks)}) WITH ORDINALITY AS t(task, tn)"
        task_id = "coalesce(t.task->>'TaskID', 'task-' || t.tn)"
    base_currency = "upper(coalesce(nullif(c.payload->>'BaseCurrency', ''), di.base_currency))"
    document_currency = (f"upper(coalesce(nullif({source.currency}, ''), nullif(c.payload->>'BaseCurrency', ''), "
                         "di.base_currency))")
    per_line: list[tuple[str, str]] = [
        ("instance_key", "di.instance_key"), (spec.document_column, "c.id"),
        *([(source.task_id_column, task_id)] if task_id else []),
        ("line_number", "l.n::integer"),
        *source.columns,
        ("product_key", "coalesce(dp.product_key, 0)"),
        *([("customer_key", "coalesce(dc.customer_key, 0)")] if source.customer_id else []),
        ("location_key", "coalesce(dl.location_key, 0)"),
        (source.date_column, f"{W}.json_date({source.date})"),
        ("sku", "l.line->>'SKU'"),
        ("quantity", f"coalesce({W}.json_number(l.line->'Quantity'), 0)"),
        ("price", f"{W}.json_number(l.line->'Price')"),
        ("discount", f"{W}.json_number(l.line->'Discount')"),
        ("tax", f"{W}.json_number(l.line->'Tax')"),
        ("amount", f"coalesce({W}.json_number(l.line->'Total'), 0)"),
        ("base_currency", base_currency),
        ("currency", document_currency),
        ("raw_rate", f"{W}.json_number({source.rate})"),
        ("source_modified_at", "c.modified_at"),
    ]
    # Header-level expressions move to level 2 (as h_<name>); the line level reads the computed column.
    header: list[tuple[str, str]] = [(f"h_{name}", expr) for name, expr in per_line
                                     if _is_header(expr) and "c.payload" in expr]
    header += [("h_customer_id", source.customer_id or "NULL::text"), ("h_location_name", source.location_name)]
    header_names = {expr: name for name, expr in header}
    per_line = [(name, f"c.{header_names[expr]}" if expr in header_names else expr) for name, expr in per_line]
    header_sql = ", ".join(f"{expr} AS {name}" for name, expr in header)
    doc_columns = "".join(f", {expr.replace('c.payload', 'x.payload')} AS {name}"
                          for name, expr in source.document_subquery_columns)
    carried = "".join(f"c.{name}, " for name, _ in source.document_subquery_columns)
    documents = f"""(SELECT c.instance, c.id, c.modified_at, c.payload, di.instance_key, di.base_currency, {carried}
                            {header_sql}
                       FROM (SELECT x.instance, x.id, x.modified_at, (x.payload || '{{}}'::jsonb) AS payload
                                    {doc_columns}
                               FROM {C}.{spec.document_entity} x {changed}
                              WHERE x.deleted_at IS NULL OFFSET 0) c
                       JOIN {W}.dim_instance di ON di.instance = c.instance
                     OFFSET 0) c"""
    customer = (f"LEFT JOIN {W}.dim_customer dc ON dc.instance_key = c.instance_key "
                "AND dc.customer_id = c.h_customer_id") if source.customer_id else ""
    passthrough = [name for name, _ in per_line if name != "raw_rate"]
    outer = {name: f"b.{name}" for name in passthrough}
    outer[f"{source.date_column}_key"] = f"coalesce({W}.date_key(b.{source.date_column}), 0)"
    outer.update({
        "base_rate": "b.base_rate",
        "base_rate_missing": "b.base_rate IS NULL",
        "amount_base": "b.amount_base",
        "reporting_currency": "%(rc)s",
        "reporting_rate_currency": "b.hop_from",
        "reporting_rate": "fx.rate",
        "reporting_rate_date": "fx.rate_date",
        "amount_reporting": "round(coalesce(b.amount_base, b.amount) * fx.rate, 4)",
    })
    inner = ", ".join(f"{expr} AS {name}" for name, expr in per_line).replace("di.instance_key", "c.instance_key")
    return f"""
        INSERT INTO {spec.qualified} ({', '.join(outer)})
        SELECT {', '.join(outer.values())}
          FROM (
                SELECT m.*, r.base_rate, round(m.amount * r.base_rate, 4) AS amount_base,
                       CASE WHEN r.base_rate IS NOT NULL THEN m.base_currency ELSE m.currency END AS hop_from
                  FROM (
                        SELECT {inner}
                          FROM {documents}
                          {task_join}
                         CROSS JOIN LATERAL jsonb_array_elements({_arr(source.lines)}) WITH ORDINALITY AS l(line, n)
                          LEFT JOIN {W}.dim_product dp
                                 ON dp.instance_key = c.instance_key AND dp.product_id = l.line->>'ProductID'
                          {customer}
                          LEFT JOIN {_LOCATION_BY_NAME} dl
                                 ON dl.instance_key = c.instance_key AND dl.name = c.h_location_name
                        OFFSET 0
                       ) m
                 CROSS JOIN LATERAL (
                        SELECT CASE WHEN m.currency = m.base_currency THEN 1::numeric
                                    WHEN m.raw_rate > 0 THEN m.raw_rate END AS base_rate
                       ) r
               ) b
          LEFT JOIN {FX_RATE_DAILY} fx
                 ON fx.reporting_currency = %(rc)s AND fx.on_date = b.{source.date_column}
                AND fx.currency = b.hop_from"""


def _needs_revisit_sql(spec: TableSpec, source: LineSource) -> str:
    """Documents with a line to look at again: unknown members, no reporting amount, or a changed rate."""
    return f"""
        INSERT INTO _wh_changed (instance, id)
        SELECT DISTINCT di.instance, f.{spec.document_column}
          FROM {spec.qualified} f JOIN {W}.dim_instance di ON di.instance_key = f.instance_key
         WHERE {REVISIT_PREDICATE[spec.name]}
        UNION
        SELECT DISTINCT di.instance, f.{spec.document_column}
          FROM (SELECT on_date, currency FROM {FX_RATE_DAILY}
                 WHERE reporting_currency = %(rc)s
                   AND changed_at > coalesce(%(fx_since)s::timestamptz, '-infinity'::timestamptz)) x
          JOIN {spec.qualified} f ON f.{source.date_column} = x.on_date AND f.reporting_rate_currency = x.currency
          JOIN {W}.dim_instance di ON di.instance_key = f.instance_key
        ON CONFLICT DO NOTHING"""


def _drop_indexes(conn: psycopg.Connection, spec: TableSpec) -> None:
    for (name,) in conn.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s AND indexname <> %s",
        (W, spec.name, f"{spec.name}_pkey"),
    ).fetchall():
        conn.execute(f"DROP INDEX {W}.{name}")
    conn.execute(f"ALTER TABLE {spec.qualified} DROP CONSTRAINT IF EXISTS {spec.name}_pkey")


def _restore_indexes(conn: psycopg.Connection, spec: TableSpec) -> None:
    conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
    conn.execute(f"ALTER TABLE {spec.qualified} ADD CONSTRAINT {spec.name}_pkey "
                 f"PRIMARY KEY ({', '.join(spec.key_columns)})")
    for statement in table_index_ddl(spec.name):
        conn.execute(statement)


def _build_document_fact(conn, spec, rc, full, state, result):
    source = LINE_SOURCES[spec.name]
    entity = f"{C}.{spec.document_entity}"
    fx_since = state.fx_stamp if state else None
    if full:
        result.rows_deleted = conn.execute(f"SELECT count(*) FROM {spec.qualified}").fetchone()[0]
        conn.execute(f"TRUNCATE {spec.qualified}")
        conn.execute(f"DELETE FROM {W}.built_document WHERE table_name = %s", (spec.name,))
        # Bulk load: indexes built once afterwards (a sort) cost less than a million single index inserts.
        _drop_indexes(conn, spec)
        result.rows_inserted = conn.execute(_lines_sql(spec, source, changed_only=False), {"rc": rc}).rowcount
        _restore_indexes(conn, spec)
        result.documents_changed = conn.execute(
            f"""INSERT INTO {W}.built_document (table_name, instance, id, payload_hash, modified_at)
                SELECT %s, instance, id, payload_hash, modified_at FROM {entity} WHERE deleted_at IS NULL""",
            (spec.name,),
        ).rowcount
        return
    where, params = _changed_since("c", state, full)
    conn.execute("CREATE TEMP TABLE _wh_changed (instance text, id text, PRIMARY KEY (instance, id)) ON COMMIT DROP")
    conn.execute(
        f"""INSERT INTO _wh_changed (instance, id)
            SELECT c.instance, c.id FROM {entity} c
              LEFT JOIN {W}.built_document b ON b.table_name = %(table)s AND b.instance = c.instance AND b.id = c.id
             WHERE {where}
               AND ((c.deleted_at IS NULL AND (b.id IS NULL OR b.payload_hash <> c.payload_hash))
                    OR (c.deleted_at IS NOT NULL AND b.id IS NOT NULL))""",
        {**params, "table": spec.name},
    )
    conn.execute(_needs_revisit_sql(spec, source), {"rc": rc, "fx_since": fx_since})
    conn.execute("ANALYZE _wh_changed")
    result.documents_changed = conn.execute("SELECT count(*) FROM _wh_changed").fetchone()[0]
    if not result.documents_changed:
        return
    keys = ", ".join(spec.key_columns)
    conn.execute(f"CREATE TEMP TABLE _wh_old ON COMMIT DROP AS SELECT {keys} FROM {spec.qualified} LIMIT 0")
    result.rows_deleted = conn.execute(
        f"""WITH gone AS (
                DELETE FROM {spec.qualified} f USING _wh_changed ch, {W}.dim_instance di
                 WHERE di.instance = ch.instance AND f.instance_key = di.instance_key
                   AND f.{spec.document_column} = ch.id
                RETURNING {', '.join('f.' + k for k in spec.key_columns)}
            )
            INSERT INTO _wh_old SELECT * FROM gone""",
    ).rowcount
    result.rows_inserted = conn.execute(_lines_sql(spec, source, changed_only=True), {"rc": rc}).rowcount
    replaced = conn.execute(
        f"SELECT count(*) FROM _wh_old o JOIN {spec.qualified} f USING ({keys})"
    ).fetchone()[0]
    result.rows_updated = replaced
    result.rows_inserted -= replaced
    result.rows_deleted -= replaced
    conn.execute(
        f"""DELETE FROM {W}.built_document b USING _wh_changed ch
             WHERE b.table_name = %s AND b.instance = ch.instance AND b.id = ch.id""",
        (spec.name,),
    )
    conn.execute(
        f"""INSERT INTO {W}.built_document (table_name, instance, id, payload_hash, modified_at)
            SELECT %s, c.instance, c.id, c.payload_hash, c.modified_at
              FROM {entity} c JOIN _wh_changed ch ON ch.instance = c.instance AND ch.id = c.id
             WHERE c.deleted_at IS NULL""",
        (spec.name,),
    )


# -- stock ---------------------------------------------------------------------------------------------------


def _build_fact_stock(conn, spec, rc, full, state, result):
    stamp = _input_stamp(conn, spec.inputs)
    if not full and state is not None and state.input_stamp is not None and stamp is not None \
            and stamp <= state.input_stamp:
        dims_changed = conn.execute(
            f"""SELECT EXISTS (SELECT 1 FROM {W}.fact_stock WHERE product_key = 0 OR location_key = 0)"""
        ).fetchone()[0]
        if not dims_changed:
            result.mode = "skipped"
            return
    conn.execute(
        f"""CREATE TEMP TABLE _wh_stock ON COMMIT DROP AS
            SELECT di.instance_key, coalesce(c.payload->>'Location', '') AS location_name,
                   coalesce(c.payload->>'SKU', '') AS sku,
                   coalesce(min(dp.product_key), 0) AS product_key, coalesce(min(dl.location_key), 0) AS location_key,
                   sum(coalesce({W}.json_number(c.payload->'OnHand'), 0)) AS on_hand,
                   sum(coalesce({W}.json_number(c.payload->'Allocated'), 0)) AS allocated,
                   sum(coalesce({W}.json_number(c.payload->'Available'), 0)) AS available,
                   sum(coalesce({W}.json_number(c.payload->'OnOrder'), 0)) AS on_order,
                   sum(coalesce({W}.json_number(c.payload->'InTransit'), 0)) AS in_transit,
                   round(sum({W}.json_number(c.payload->'StockOnHand')), 4) AS stock_value_base,
                   max(c.synced_at) AS snapshot_at
              FROM {C}.product_availability c
              JOIN {W}.dim_instance di ON di.instance = c.instance
              LEFT JOIN {W}.dim_product dp ON dp.instance_key = di.instance_key AND dp.product_id = c.payload->>'ID'
              LEFT JOIN {_LOCATION_BY_NAME} dl ON dl.instance_key = di.instance_key AND dl.name = c.payload->>'Location'
             WHERE c.deleted_at IS NULL
             GROUP BY 1, 2, 3"""
    )
    cols = ["product_key", "location_key", "on_hand", "allocated", "available", "on_order", "in_transit",
            "stock_value_base", "snapshot_at"]
    compared = [c for c in cols if c != "snapshot_at"]
    result.rows_deleted = conn.execute(
        f"""DELETE FROM {W}.fact_stock f WHERE NOT EXISTS (
                SELECT 1 FROM _wh_stock s WHERE s.instance_key = f.instance_key
                   AND s.location_name = f.location_name AND s.sku = f.sku)"""
    ).rowcount
    result.rows_inserted, result.rows_updated = _counts(conn.execute(
        f"""WITH written AS (
                INSERT INTO {W}.fact_stock AS f (instance_key, location_name, sku, {', '.join(cols)})
                SELECT instance_key, location_name, sku, {', '.join(cols)} FROM _wh_stock
                ON CONFLICT (instance_key, location_name, sku) DO UPDATE SET
                    {', '.join(f'{c} = EXCLUDED.{c}' for c in cols)}
                 WHERE ({', '.join('f.' + c for c in compared)})
                       IS DISTINCT FROM ({', '.join('EXCLUDED.' + c for c in compared)})
                RETURNING (f.xmax = 0) AS inserted
            )
            SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written"""
    ).fetchone())


_BUILDERS: dict[str, Callable[..., None]] = {
    "fx_rate": _build_fx,
    "dim_instance": _build_dim_instance,
    "dim_date": _build_dim_date,
    "dim_product": _build_dim_product,
    "dim_customer": _build_dim_customer,
    "dim_location": _build_dim_location,
    "fact_sale_line": _build_document_fact,
    "fact_invoice_line": _build_document_fact,
    "fact_credit_note_line": _build_document_fact,
    "fact_purchase_line": _build_document_fact,
    "fact_stock": _build_fact_stock,
}


def _ensure_cache_tables(conn: psycopg.Connection) -> None:
    # The warehouse reads the cache; an empty database (a fresh install, a test) still builds, empty.
    from gp_pipelines.cin7.store import create_cache_schema

    create_cache_schema(conn)


def build_table(database_url: str, name: str, *, reporting_currency: str, full: bool = False) -> BuildResult:
    """Build one warehouse table (incrementally unless `full`), in one REPEATABLE READ transaction under an
    advisory lock for the table, and record what it consumed in `warehouse.build_state`."""
    spec = table_spec(name)
    started = time.monotonic()
    reporting_currency = reporting_currency.upper()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        _ensure_cache_tables(conn)
        create_warehouse_schema(conn)
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"gp.warehouse.{name}",))
            state = _load_state(conn, name)
            if state is not None and spec.has_money and state.reporting_currency != reporting_currency:
                full = True  # every reporting amount changes
            mode = "full" if full or state is None else "incremental"
            result = BuildResult(table=name, mode=mode, reporting_currency=reporting_currency)
            result.input_stamp = _input_stamp(conn, spec.inputs)
            fx_stamp = conn.execute(
                f"SELECT max(changed_at) FROM {FX_RATE_DAILY} WHERE reporting_currency = %s", (reporting_currency,)
            ).fetchone()[0]
            _BUILDERS[name](conn, spec, reporting_currency, mode == "full", state, result)
            if name == "fx_rate":
                pass
            elif result.mode == "incremental" and spec.document_entity and state.rows_total is not None:
                # Counting a million rows after rewriting a few hundred would cost more than the rewrite.
                result.rows_total = state.rows_total + result.rows_inserted - result.rows_deleted
            else:
                result.rows_total = conn.execute(f"SELECT count(*) FROM {spec.qualified}").fetchone()[0]
            result.seconds = round(time.monotonic() - started, 3)
            _save_state(conn, result, fx_stamp)
        if spec.kind == "fact" and result.mode == "full":
            # A reloaded table needs fresh statistics at once (the next incremental build joins against them).
            conn.execute(f"ANALYZE {spec.qualified}")
            if spec.document_entity:
                conn.execute(f"ANALYZE {W}.built_document")
    result.seconds = round(time.monotonic() - started, 3)
    return result


def build_all(database_url: str, *, reporting_currency: str, full: bool = False) -> list[BuildResult]:
    """Every table in build order (the demo's and the tests' shortcut; Dagster runs them as assets)."""
    return [build_table(database_url, spec.name, reporting_currency=reporting_currency, full=full)
            for spec in WAREHOUSE_TABLES]
