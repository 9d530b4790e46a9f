"""Questions integrations and analysts ask of the cache, answered by indexed SQL on the JSONB payloads.

The sale payload is the full `sale?ID=` document, so "orders for SKU X shipped from location Y to customer Z
in the last 12 months" is one query: a GIN (`jsonb_path_ops`) containment match finds the sales holding the
SKU, and a JSON path narrows them to fulfilments shipped from the location. The indexes these queries rely
on are described with the cache tables (`gp_pipelines/schema/cache.py`, named in `store.QUERY_INDEXES`);
`explain` shows that the planner uses them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from gp_pipelines.cin7.store import CACHE_SCHEMA

SCHEMA = CACHE_SCHEMA

# A fulfilment counts as "shipped from" a location when its shipment is (partly) authorised and one of its
# pick lines for the SKU came from that location.
_SHIPPED_FROM = (
    '$.Fulfilments[*] ? (@.Ship.Status == "AUTHORISED" || @.Ship.Status == "PARTIALLY AUTHORISED")'
    ".Pick.Lines[*] ? (@.SKU == $sku && @.Location == $location)"
)


@dataclass(frozen=True)
class SaleMatch:
    instance: str
    sale_id: str
    order_number: str
    order_date: str
    customer: str
    status: str
    quantity: float
    currency: str


def sales_with_sku(
    conn: psycopg.Connection,
    sku: str,
    *,
    since: date | None = None,
    until: date | None = None,
    location: str | None = None,
    customer: str | None = None,
    instances: list[str] | None = None,
) -> list[SaleMatch]:
    """Sales ordered in [since, until) with a line for `sku`; optionally shipped from `location` (by name)
    and for `customer` (name or CustomerID). Defaults to the last 12 months. Voided sales are included
    with their status; hard-deleted ones are not."""
    until = until or date.today() + timedelta(days=1)
    since = since or until - timedelta(days=366)
    contains: dict[str, Any] = {"Order": {"Lines": [{"SKU": sku}]}}
    params: dict[str, Any] = {"sku": sku, "since": since.isoformat(), "until": until.isoformat()}
    conditions = [
        "s.deleted_at IS NULL",
        "s.payload @> %(contains)s::jsonb",
        "(s.payload->>'SaleOrderDate') >= %(since)s",
        "(s.payload->>'SaleOrderDate') < %(until)s",
    ]
    if customer:
        conditions.append("(s.payload @> %(by_id)s::jsonb OR s.payload @> %(by_name)s::jsonb)")
        params["by_id"] = json.dumps({"CustomerID": customer})
        params["by_name"] = json.dumps({"Customer": customer})
    if location:
        # Path variables, not string splicing: the SKU and location reach the path as values.
        conditions.append("jsonb_path_exists(s.payload, %(shipped_from)s::jsonpath, %(path_vars)s::jsonb)")
        params["shipped_from"] = _SHIPPED_FROM
        params["path_vars"] = json.dumps({"sku": sku, "location": location})
    if instances:
        conditions.append("s.instance = ANY(%(instances)s)")
        params["instances"] = instances
    params["contains"] = json.dumps(contains)
    sql = f"""
        SELECT s.instance, s.id AS sale_id,
               coalesce(s.payload->'Order'->>'SaleOrderNumber', '') AS order_number,
               left(s.payload->>'SaleOrderDate', 10) AS order_date,
               coalesce(s.payload->>'Customer', '') AS customer,
               coalesce(s.payload->>'Status', '') AS status,
               coalesce(s.payload->>'CustomerCurrency', '') AS currency,
               (SELECT coalesce(sum((line->>'Quantity')::numeric), 0)
                  FROM jsonb_array_elements(s.payload->'Order'->'Lines') AS line
                 WHERE line->>'SKU' = %(sku)s)::float8 AS quantity
          FROM {SCHEMA}.sales AS s
         WHERE {" AND ".join(conditions)}
         ORDER BY s.payload->>'SaleOrderDate', s.instance, s.id"""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(sql, params).fetchall()
    return [SaleMatch(**row) for row in rows]


@dataclass(frozen=True)
class StockLevel:
    instance: str
    location: str
    bin: str
    batch: str
    on_hand: float
    allocated: float
    available: float
    on_order: float


def stock_of_sku(conn: psycopg.Connection, sku: str) -> list[StockLevel]:
    """Stock of one SKU in every instance, location, bin and batch the cache knows."""
    sql = f"""
        SELECT instance,
               coalesce(payload->>'Location', '') AS location,
               coalesce(payload->>'Bin', '') AS bin,
               coalesce(payload->>'Batch', '') AS batch,
               coalesce((payload->>'OnHand')::float8, 0) AS on_hand,
               coalesce((payload->>'Allocated')::float8, 0) AS allocated,
               coalesce((payload->>'Available')::float8, 0) AS available,
               coalesce((payload->>'OnOrder')::float8, 0) AS on_order
          FROM {SCHEMA}.product_availability
         WHERE deleted_at IS NULL AND payload->>'SKU' = %(sku)s
         ORDER BY instance, location, bin, batch"""
    with conn.cursor(row_factory=dict_row) as cur:
        return [StockLevel(**row) for row in cur.execute(sql, {"sku": sku}).fetchall()]


@dataclass(frozen=True)
class OpenOrder:
    instance: str
    sale_id: str
    order_number: str
    order_date: str
    customer: str
    status: str
    shipping_status: str
    ship_by: str


def authorised_unshipped_orders(conn: psycopg.Connection, instances: list[str] | None = None) -> list[OpenOrder]:
    """Orders authorised in Cin7 Core and not yet fully shipped (nor voided): the automation's to-do list."""
    condition = "AND instance = ANY(%(instances)s)" if instances else ""
    sql = f"""
        SELECT instance, id AS sale_id,
               coalesce(payload->'Order'->>'SaleOrderNumber', '') AS order_number,
               left(payload->>'SaleOrderDate', 10) AS order_date,
               coalesce(payload->>'Customer', '') AS customer,
               coalesce(payload->>'Status', '') AS status,
               coalesce(payload->>'CombinedShippingStatus', '') AS shipping_status,
               coalesce(left(payload->>'ShipBy', 10), '') AS ship_by
          FROM {SCHEMA}.sales
         WHERE deleted_at IS NULL AND payload->'Order'->>'Status' = 'AUTHORISED'
           AND payload->>'CombinedShippingStatus' IS DISTINCT FROM 'SHIPPED'
           AND payload->>'Status' IS DISTINCT FROM 'VOIDED' {condition}
         ORDER BY ship_by, instance, order_number"""
    with conn.cursor(row_factory=dict_row) as cur:
        return [OpenOrder(**row) for row in cur.execute(sql, {"instances": instances}).fetchall()]


def explain(conn: psycopg.Connection, sql: str, params: dict[str, Any]) -> str:
    """The planner's plan for a query (used by tests and the benchmark to prove an index is used)."""
    return "\n".join(row[0] for row in conn.execute("EXPLAIN " + sql, params).fetchall())
