"""Routing authorised sales: which sales are offered, how one is planned, its Cin7 fulfilments and its 940s.

Nothing here chains one step to the next: `automation.reconcile` reads the durable state and asks for each step.

- **Offers.** `routing_offers` lists what a routing run should look at: authorised sales ordered on or after the
  start line that the automation has not taken on yet, sales whose routing run failed or died (their lease
  expired), sales waiting for stock whose products' stock changed in the cache, and held sales that changed
  in Cin7 Core. Each offer carries the number of offers the sale has had, so a run key built from it is new
  for every retry. `sales_before_start_line` lists what an operator may admit by hand.
- **Planning.** `plan_sale` re-reads the sale from Cin7 Core, checks it may be routed, plans what no fulfilment
  covers yet from the cache's stock (less what other routings planned that the cache does not show yet), and
  writes the fulfilments with their outbox items in one transaction. A sale partly backordered keeps its
  remainder in `automation.sales.backordered`; a later plan (when stock arrives) covers it in a new round.
  Everything later steps need from the sale (addresses for the 940, the web store order for tracking) is kept
  in the sale's row, so they read no outside system.
- **Outside actions** (outbox handlers): create the Cin7 fulfilment task and authorise its pick at the planned
  location; deliver a stored file (the 940) by the partner's transport. A retry asks Cin7 first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from gp_pipelines.automation import exchange, outbox
from gp_pipelines.automation.context import AutomationContext
from gp_pipelines.automation.routing import LocationRule, Order, OrderLine, RoutingPlan, plan_fulfilments
from gp_pipelines.automation.schema import ensure_automation_schema, record_audit
from gp_pipelines.automation.state import FULFILMENT, SALE, ensure_state_tables, record_history, rows, transition
from gp_pipelines.config import PartnerConfig, PlatformConfig
from gp_pipelines.edi.models import Party, WarehouseOrderLine, WarehouseShippingOrder

CREATE_FULFILMENT = "cin7_create_fulfilment"
SEND_EDI = "edi_send"
DEFAULT_ACK_WITHIN = timedelta(hours=4)
_AUTHORISED = ("AUTHORISED",)
# Fulfilments whose stock the cache may not show as allocated yet (taken off what routing sees as available).
OPEN_FULFILMENT_STATES = ("planned", "created", "sent", "acknowledged")
# A business date as Cin7 writes it (yyyy-MM-ddT00:00:00); anything else is not compared.
_ORDER_DATE = r"^\d{4}-\d{2}-\d{2}"


def ensure_order_tables(conn: psycopg.Connection) -> None:
    ensure_automation_schema(conn)
    exchange.ensure_exchange_tables(conn)
    ensure_state_tables(conn)


# ---------------------------------------------------------------- offers


@dataclass(frozen=True)
class RoutingOffer:
    instance: str
    sale_id: str
    order_number: str
    attempt: int  # routing offers the sale has had: part of the run key, so every retry is a new run
    why: str  # new | retry | stock_changed | sale_changed

    @property
    def run_key(self) -> str:
        return f"route:{self.instance}:{self.sale_id}:{self.attempt}"


# Authorised sales nobody has started fulfilling (in the cache's view).
_ROUTABLE_IN_CACHE = """
    s.deleted_at IS NULL
    AND s.payload->'Order'->>'Status' = 'AUTHORISED'
    AND s.payload->>'Status' NOT IN ('VOIDED', 'CREDITED', 'COMPLETED')
    AND coalesce(s.payload->>'CombinedShippingStatus', '') NOT IN ('SHIPPED', 'SHIPPING')
    AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(coalesce(s.payload->'Fulfilments', '[]')) t
                     WHERE jsonb_array_length(coalesce(t->'Pick'->'Lines', '[]')) > 0)"""


def _order_date_sql(alias: str = "s") -> str:
    return (f"CASE WHEN {alias}.payload->>'SaleOrderDate' ~ '{_ORDER_DATE}' "
            f"THEN left({alias}.payload->>'SaleOrderDate', 10)::date END")  # fmt: skip


def routing_offers(conn: psycopg.Connection, config: PlatformConfig, start: datetime, *, limit: int = 50,
                   prefer_channel: str = "", now: datetime | None = None) -> list[RoutingOffer]:
    """What routing runs should look at now (see the module docstring), new sales oldest first (sales from
    `prefer_channel` with an ExternalID first, when given)."""
    at = now or datetime.now(UTC)
    offers: list[RoutingOffer] = []
    for instance in sorted({rule.instance for rule in config.automation.locations}):
        locations = [rule.location for rule in config.automation.locations if rule.instance == instance]
        params = {"instance": instance, "start": start.date(), "channel": prefer_channel, "now": at,
                  "locations": locations, "limit": limit}  # fmt: skip
        new = rows(conn, f"""
            SELECT s.id AS sale_id, coalesce(s.payload->'Order'->>'SaleOrderNumber', '') AS order_number
              FROM erp_cache.sales s
             WHERE s.instance = %(instance)s AND {_ROUTABLE_IN_CACHE}
               AND {_order_date_sql()} >= %(start)s
               AND NOT EXISTS (SELECT 1 FROM automation.sales a WHERE a.instance = s.instance AND a.sale_id = s.id)
             ORDER BY (s.payload->>'SourceChannel' = %(channel)s AND coalesce(s.payload->>'ExternalID', '') <> '')
                      DESC, s.payload->>'SaleOrderDate', s.id
             LIMIT %(limit)s""", params)  # fmt: skip
        offers += [RoutingOffer(instance, row["sale_id"], row["order_number"], 0, "new") for row in new]
        taken = rows(conn, """
            SELECT a.sale_id, a.order_number, a.attempts,
                   CASE WHEN a.state = 'new' THEN 'retry'
                        WHEN a.state = 'held' THEN 'sale_changed' ELSE 'stock_changed' END AS why
              FROM automation.sales a
              LEFT JOIN erp_cache.sales s ON s.instance = a.instance AND s.id = a.sale_id
             WHERE a.instance = %(instance)s
               AND (a.lease_until IS NULL OR a.lease_until < %(now)s) AND a.next_attempt_at <= %(now)s
               AND (a.state = 'new'
                    OR (a.state = 'held' AND s.payload->>'LastModifiedOn' IS DISTINCT FROM a.sale_updated)
                    OR (a.state NOT IN ('held', 'cancelled', 'given_up') AND a.backordered <> '[]'
                        AND EXISTS (
                            SELECT 1 FROM erp_cache.product_availability p
                             WHERE p.instance = a.instance AND p.deleted_at IS NULL
                               AND p.payload->>'ID' IN (SELECT b->>'product_id'
                                                          FROM jsonb_array_elements(a.backordered) b)
                               AND p.payload->>'Location' = ANY(%(locations)s)
                               AND (p.payload->>'Available')::numeric > 0
                               AND p.synced_at > coalesce(a.stock_checked_at, '-infinity'))))
             ORDER BY a.next_attempt_at, a.sale_id
             LIMIT %(limit)s""", params)  # fmt: skip
        offers += [RoutingOffer(instance, row["sale_id"], row["order_number"], row["attempts"], row["why"])
                   for row in taken]  # fmt: skip
    return offers[:limit]


def sales_before_start_line(conn: psycopg.Connection, config: PlatformConfig, since: datetime, start: datetime,
                            instance: str | None = None) -> list[dict[str, Any]]:
    """Authorised, unfulfilled sales ordered from `since` up to the start line that the automation has not taken
    on: what `gp-pipelines orders route --since` would admit."""
    instances = sorted({rule.instance for rule in config.automation.locations if instance in (None, rule.instance)})
    return rows(conn, f"""
        SELECT s.instance, s.id AS sale_id, coalesce(s.payload->'Order'->>'SaleOrderNumber', '') AS order_number,
               {_order_date_sql()} AS order_date, coalesce(s.payload->>'Customer', '') AS customer
          FROM erp_cache.sales s
         WHERE s.instance = ANY(%(instances)s) AND {_ROUTABLE_IN_CACHE}
           AND {_order_date_sql()} >= %(since)s AND {_order_date_sql()} < %(start)s
           AND NOT EXISTS (SELECT 1 FROM automation.sales a WHERE a.instance = s.instance AND a.sale_id = s.id)
         ORDER BY s.instance, {_order_date_sql()}, s.id""",
                {"instances": instances, "since": since.date(), "start": start.date()})  # fmt: skip


def admit_sale(conn: psycopg.Connection, instance: str, sale_id: str, *, admitted_by: str, cause: str,
               actor: str | None, order_number: str = "") -> bool:
    """Take a sale on (state `new`); False when it was taken on before."""
    with conn.transaction():
        created = conn.execute(
            "INSERT INTO automation.sales (instance, sale_id, order_number, state, admitted_by) "
            "VALUES (%s, %s, %s, 'new', %s) ON CONFLICT DO NOTHING RETURNING 1",
            (instance, sale_id, order_number, admitted_by),
        ).fetchone()
        if created:
            record_history(conn, SALE, (instance, sale_id), None, "new", cause=cause, actor=actor)
    return created is not None


# ---------------------------------------------------------------- inputs of the planner


def location_rules(config: PlatformConfig, instance: str) -> list[LocationRule]:
    return [
        LocationRule(rule.location, rule.partner, rule.priority, dict(rule.transit_days), dict(rule.cost),
                     rule.may_split)
        for rule in config.automation.locations if rule.instance == instance
    ]  # fmt: skip


def ship_to_region(sale: Mapping[str, Any]) -> str:
    """The region the location rules are keyed by: the ship-to state, else its country."""
    address = sale.get("ShippingAddress") or {}
    return str(address.get("State") or address.get("Country") or "*").strip() or "*"


def order_lines(sale: Mapping[str, Any]) -> list[OrderLine]:
    return [
        OrderLine(str(line["ProductID"]), str(line.get("SKU", "")), Decimal(str(line.get("Quantity", 0))), str(i))
        for i, line in enumerate((sale.get("Order") or {}).get("Lines") or [])
        if Decimal(str(line.get("Quantity", 0))) > 0
    ]


def remaining_lines(lines: Sequence[OrderLine], covered: Mapping[str, Decimal]) -> list[OrderLine]:
    """The order lines less what fulfilments already cover (per product, taken from the earliest lines first)."""
    left = dict(covered)
    remaining = []
    for line in lines:
        take = min(line.quantity, left.get(line.product_id, Decimal(0)))
        left[line.product_id] = left.get(line.product_id, Decimal(0)) - take
        if line.quantity - take > 0:
            remaining.append(OrderLine(line.product_id, line.sku, line.quantity - take, line.line_id))
    return remaining


def available_stock(conn: psycopg.Connection, instance: str, sale: Mapping[str, Any],
                    lines: Sequence[OrderLine] | None = None) -> dict[tuple[str, str], Decimal]:
    """Stock per (location, product) for routing `lines` of this sale (default: all of its lines).

    The cache's `Available` already excludes this sale's own allocation at its header location once the cache
    has seen the sale authorised, so the quantity still to route is added back there. Fulfilments we planned
    for other sales after the availability row was last synced are not in the cache yet, so they are taken off."""
    wanted = list(lines) if lines is not None else order_lines(sale)
    product_ids = sorted({line.product_id for line in wanted})
    stock: dict[tuple[str, str], Decimal] = {}
    synced_at = {}
    for location, product_id, available, synced in conn.execute(
        """SELECT a.payload->>'Location', a.payload->>'ID', sum((a.payload->>'Available')::numeric), max(a.synced_at)
             FROM erp_cache.product_availability a
            WHERE a.instance = %s AND a.deleted_at IS NULL AND a.payload->>'ID' = ANY(%s)
            GROUP BY 1, 2""",
        (instance, product_ids),
    ).fetchall():
        stock[(location, product_id)] = Decimal(available or 0)
        synced_at[(location, product_id)] = synced
    sale_seen = conn.execute(
        "SELECT synced_at FROM erp_cache.sales WHERE instance = %s AND id = %s AND "
        "payload->'Order'->>'Status' = 'AUTHORISED'", (instance, str(sale["ID"]))
    ).fetchone()
    header = str(sale.get("Location") or "")
    for line in wanted:
        key = (header, line.product_id)
        if key in stock and sale_seen is not None and synced_at.get(key) and synced_at[key] >= sale_seen[0]:
            stock[key] += line.quantity
    for location, product_id, quantity, created in conn.execute(
        """SELECT f.location, l->>'product_id', sum((l->>'quantity')::numeric), min(f.created_at)
             FROM automation.fulfilments f, jsonb_array_elements(f.lines) l
            WHERE f.instance = %s AND f.state = ANY(%s) AND f.sale_id <> %s AND l->>'product_id' = ANY(%s)
            GROUP BY 1, 2""",
        (instance, list(OPEN_FULFILMENT_STATES), str(sale["ID"]), product_ids),
    ).fetchall():
        key = (location, product_id)
        if key in stock and (synced_at.get(key) is None or created > synced_at[key]):
            stock[key] -= Decimal(quantity)
    return stock


# ---------------------------------------------------------------- planning


def _why_not_routable(sale: Mapping[str, Any], own_tasks: set[str]) -> str:
    order_status = (sale.get("Order") or {}).get("Status")
    if order_status not in _AUTHORISED:
        return f"the order is {order_status or 'missing'}, not AUTHORISED"
    for task in sale.get("Fulfilments") or []:
        if (task.get("TaskID") not in own_tasks and task.get("FulFilmentStatus") != "VOIDED"
                and (task.get("Pick") or {}).get("Lines")):
            return "someone already started fulfilling it in Cin7 Core"
    return ""


def line_json(line: Any) -> dict[str, Any]:
    return {"product_id": line.product_id, "sku": line.sku, "quantity": str(line.quantity), "line_id": line.line_id}


def plan_json(plan: RoutingPlan) -> dict[str, Any]:
    return {
        "fulfilments": [
            {"location": f.location, "partner": f.partner, "transit_days": f.transit_days, "cost": f.cost,
             "lines": [line_json(line) for line in f.lines]}
            for f in plan.fulfilments
        ],
        "backorders": [line_json(line) for line in plan.backorders],
        "delivery_days": plan.delivery_days, "total_cost": plan.total_cost,
    }  # fmt: skip


def sale_snapshot(sale: Mapping[str, Any]) -> dict[str, Any]:
    """What later steps need from the sale (the 940's parties and lines, the web store order), kept at planning
    so they read no outside system."""
    order = sale.get("Order") or {}
    return {
        "Customer": sale.get("Customer") or "", "CustomerReference": sale.get("CustomerReference") or "",
        "ShipBy": sale.get("ShipBy") or "", "ShippingAddress": sale.get("ShippingAddress") or {},
        "SaleOrderNumber": order.get("SaleOrderNumber") or "", "Location": sale.get("Location") or "",
        "SourceChannel": sale.get("SourceChannel") or "", "ExternalID": sale.get("ExternalID") or "",
        "Lines": [{"ProductID": line.get("ProductID"), "SKU": line.get("SKU"), "Name": line.get("Name") or ""}
                  for line in order.get("Lines") or []],
    }  # fmt: skip


def store_order(config: PlatformConfig, instance: str, sale: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(store key, order reference) of the web store the sale came from: its SourceChannel names a configured
    Shopify store of this instance and its ExternalID the order; (None, None) otherwise."""
    store = next((s for s in config.automation.shopify
                  if s.instance == instance and s.source_channel == sale.get("SourceChannel")), None)  # fmt: skip
    external_id = str(sale.get("ExternalID") or "")
    return (store.key, external_id) if store is not None and external_id else (None, None)


def covered_quantities(conn: psycopg.Connection, instance: str, sale_id: str) -> dict[str, Decimal]:
    """Per product, what our fulfilments of the sale cover (cancelled ones excepted)."""
    covered: dict[str, Decimal] = {}
    for product_id, quantity in conn.execute(
        """SELECT l->>'product_id', sum((l->>'quantity')::numeric) FROM automation.fulfilments f,
                  jsonb_array_elements(f.lines) l
            WHERE f.instance = %s AND f.sale_id = %s AND f.state <> 'cancelled' GROUP BY 1""",
        (instance, sale_id),
    ).fetchall():
        covered[product_id] = Decimal(quantity)
    return covered


def fulfilment_key(instance: str, sale_id: str, seq: int) -> str:
    return f"cin7.fulfilment:{instance}:{sale_id}:{seq}"


def plan_sale(conn: psycopg.Connection, context: AutomationContext, instance: str, sale_id: str) -> str:
    """Plan what no fulfilment of the sale covers yet (see the module docstring); returns what happened, in words.
    Reads the sale from Cin7 Core (an outage raises: the routing run records it and the sale is offered again)."""
    checked_at = conn.execute("SELECT now()").fetchone()[0]  # before the stock is read: later syncs count as news
    sale = context.cin7(instance).get("sale", {"ID": sale_id})
    order_number = str((sale.get("Order") or {}).get("SaleOrderNumber") or "")
    existing = rows(conn, "SELECT seq, task_id FROM automation.fulfilments WHERE instance = %s AND sale_id = %s "
                          "ORDER BY seq", (instance, sale_id))  # fmt: skip
    own_tasks = {row["task_id"] for row in existing if row["task_id"]}
    store_key, store_order_id = store_order(context.config, instance, sale)
    order_date = str(sale.get("SaleOrderDate") or "")[:10] or None
    facts = {"order_number": order_number, "sale_updated": str(sale.get("LastModifiedOn") or ""),
             "order_date": order_date, "stock_checked_at": checked_at}  # fmt: skip

    def settle(state: str, cause: str, **changes: Any) -> str:
        transition(conn, SALE, (instance, sale_id), state, cause=cause, actor=context.actor,
                   changes={**facts, **changes})
        return cause

    def note_remainder(backordered: list[dict[str, Any]], cause: str) -> str:
        # Part of it is planned already: the sale keeps the state its fulfilments give it; only what is left
        # to plan, and when stock was last looked at, change.
        with conn.transaction():
            conn.execute("UPDATE automation.sales SET backordered = %s, stock_checked_at = %s, updated_at = now() "
                         "WHERE instance = %s AND sale_id = %s", (Jsonb(backordered), checked_at, instance, sale_id))
        return cause

    if sale.get("Status") in ("VOIDED", "CREDITED"):
        if not existing:
            return settle("cancelled", f"the sale is {sale['Status'].lower()} in Cin7 Core", backordered=[])
        return settle("held", f"the sale was {sale['Status'].lower()} in Cin7 Core after {len(existing)} "
                              "fulfilment(s) were planned: cancel them with the 3PL by hand", backordered=[])
    reason = _why_not_routable(sale, own_tasks)
    rules = location_rules(context.config, instance)
    if not reason and not rules:
        reason = f"no location rules are configured for instance {instance!r}"
    if reason:
        if not existing:
            return settle("held", reason)
        return note_remainder([], f"no further routing: {reason}")  # someone else took the rest on
    lines = remaining_lines(order_lines(sale), covered_quantities(conn, instance, sale_id))
    if not lines:
        return note_remainder([], "every line is covered by a fulfilment")
    plan = plan_fulfilments(Order(sale_id, ship_to_region(sale), tuple(lines)),
                            available_stock(conn, instance, sale, lines), rules)
    backordered = [line_json(line) for line in plan.backorders]
    if not plan.fulfilments:
        cause = f"no configured location has stock for {len(lines)} line(s) still to ship"
        if existing:
            return note_remainder(backordered, cause)
        return settle("waiting_for_stock", cause, backordered=backordered, plan=plan_json(plan),
                      snapshot=sale_snapshot(sale))
    first_seq = max((row["seq"] for row in existing), default=0) + 1
    with conn.transaction():
        round_number = conn.execute(
            """UPDATE automation.sales SET rounds = rounds + 1, plan = %s, backordered = %s, snapshot = %s,
                      store_key = %s, store_order_id = %s, order_number = %s, sale_updated = %s, order_date = %s,
                      stock_checked_at = %s, updated_at = now()
                WHERE instance = %s AND sale_id = %s RETURNING rounds""",
            (Jsonb(plan_json(plan)), Jsonb(backordered), Jsonb(sale_snapshot(sale)), store_key, store_order_id,
             order_number, facts["sale_updated"], order_date, checked_at, instance, sale_id),
        ).fetchone()[0]
        for seq, planned in enumerate(plan.fulfilments, start=first_seq):
            lines_json = [line_json(line) for line in planned.lines]
            conn.execute(
                """INSERT INTO automation.fulfilments (instance, sale_id, seq, location, partner, depositor_order,
                                                      lines, state, round)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, 'planned', %s)""",
                (instance, sale_id, seq, planned.location, planned.partner, f"{order_number or sale_id[:8]}-{seq}",
                 Jsonb(lines_json), round_number),
            )
            where = f"{planned.location}" + (f" (3PL {planned.partner})" if planned.partner else " (in-house)")
            record_history(conn, FULFILMENT, (instance, sale_id, seq), None, "planned",
                           cause=f"routing round {round_number}: {where}", actor=context.actor)
            outbox.enqueue(conn, fulfilment_key(instance, sale_id, seq), CREATE_FULFILMENT,
                           {"instance": instance, "sale_id": sale_id, "seq": seq, "location": planned.location,
                            "lines": lines_json},
                           instance=instance, subject=sale_id, actor=context.actor)  # fmt: skip
        record_audit(conn, "routing.planned", actor=context.actor, instance=instance, subject=sale_id,
                     detail=plan_json(plan))
    where = ", ".join(f.location for f in plan.fulfilments)
    return f"planned {len(plan.fulfilments)} fulfilment(s) ({where})" + (
        f", {len(backordered)} line(s) backordered" if backordered else "")


# ---------------------------------------------------------------- Cin7 fulfilment tasks


def _pick_matches(task: Mapping[str, Any], location: str, lines: Sequence[Mapping[str, Any]]) -> bool:
    pick = task.get("Pick") or {}
    if pick.get("Status") not in _AUTHORISED or task.get("FulFilmentStatus") == "VOIDED":
        return False
    wanted = sorted((str(line["product_id"]), Decimal(str(line["quantity"]))) for line in lines)
    picked = sorted((str(line["ProductID"]), Decimal(str(line["Quantity"]))) for line in pick.get("Lines") or [])
    locations = {str(line.get("Location") or "") for line in pick.get("Lines") or []}
    return picked == wanted and locations == {location}


class CreateFulfilmentHandler:
    """Creates one fulfilment task in Cin7 Core and authorises its pick lines at the planned location, and keeps
    the task id on the fulfilment's row (the reconciler derives the fulfilment's state from it)."""

    def __init__(self, context: AutomationContext) -> None:
        self.context = context

    def _claimed_tasks(self, instance: str, sale_id: str) -> set[str]:
        # Task ids our other fulfilments of this sale already own: never match one of them twice.
        with psycopg.connect(self.context.database_url, autocommit=True) as conn:
            found = conn.execute("SELECT task_id FROM automation.fulfilments WHERE instance = %s AND sale_id = %s "
                                 "AND task_id IS NOT NULL", (instance, sale_id)).fetchall()
        return {row[0] for row in found}

    def find_existing(self, item: outbox.OutboxItem) -> dict[str, Any] | None:
        p = item.payload
        tasks = self.context.cin7(p["instance"]).get("sale/fulfilment", {"SaleID": p["sale_id"]}).get("Fulfilments")
        claimed = self._claimed_tasks(p["instance"], p["sale_id"])
        for task in tasks or []:
            if task["TaskID"] not in claimed and _pick_matches(task, p["location"], p["lines"]):
                return self._record(item, task["TaskID"])
        return None

    def perform(self, item: outbox.OutboxItem) -> dict[str, Any]:
        p = item.payload
        client = self.context.cin7(p["instance"])
        tasks = client.get("sale/fulfilment", {"SaleID": p["sale_id"]}).get("Fulfilments") or []
        claimed = self._claimed_tasks(p["instance"], p["sale_id"])
        # A task left empty by an interrupted attempt is reused rather than a second one added.
        empty = [t for t in tasks if (t.get("Pick") or {}).get("Status") in ("DRAFT", "NOT AVAILABLE")
                 and not (t.get("Pick") or {}).get("Lines") and t.get("FulFilmentStatus") != "VOIDED"
                 and t["TaskID"] not in claimed]  # fmt: skip
        task_id = empty[0]["TaskID"] if empty else client.post("sale/fulfilment", {"SaleID": p["sale_id"]})["TaskID"]
        client.post("sale/fulfilment/pick", {
            "TaskID": task_id, "Status": "AUTHORISED",
            "Lines": [{"ProductID": line["product_id"], "SKU": line["sku"], "Quantity": float(line["quantity"]),
                       "Location": p["location"]} for line in p["lines"]],
        })  # fmt: skip
        return self._record(item, task_id)

    def _record(self, item: outbox.OutboxItem, task_id: str) -> dict[str, Any]:
        p = item.payload
        with psycopg.connect(self.context.database_url, autocommit=True) as conn:
            conn.execute("UPDATE automation.fulfilments SET task_id = %s, updated_at = now() "
                         "WHERE instance = %s AND sale_id = %s AND seq = %s AND task_id IS NULL",
                         (task_id, p["instance"], p["sale_id"], p["seq"]))
        return {"task_id": task_id}


# ---------------------------------------------------------------- 940 to the 3PL


# N404 wants an ISO country code; Cin7 addresses carry the country's name.
COUNTRY_CODES = {"australia": "AU", "new zealand": "NZ", "united states": "US", "united states of america": "US",
                 "usa": "US", "canada": "CA", "united kingdom": "GB", "ireland": "IE", "singapore": "SG"}


def _address_party(role: str, name: str, address: Mapping[str, Any]) -> Party:
    lines = [str(address.get(key))[:55] for key in ("Line1", "Line2") if address.get(key)]
    country = str(address.get("Country") or "").strip()
    country = country.upper() if len(country) in (2, 3) else COUNTRY_CODES.get(country.casefold(), "")
    # N402 is a two-letter state or province code; a region's name (e.g. "Canterbury") does not fit it.
    state = str(address.get("State") or "").strip()
    return Party(role, name=name[:60], address_lines=lines, city=str(address.get("City") or "")[:30],
                 state=state.upper() if len(state) == 2 else "", postal_code=str(address.get("Postcode") or "")[:15],
                 country=country)


def warehouse_order(sale: Mapping[str, Any], depositor_order: str, location: str,
                    lines: Sequence[Mapping[str, Any]]) -> WarehouseShippingOrder:
    """The 940 for one fulfilment (from the sale or its snapshot): W0502 is our depositor order number, which the
    945 quotes back."""
    order_lines_ = sale.get("Lines") or (sale.get("Order") or {}).get("Lines") or []
    names = {str(line["ProductID"]): str(line.get("Name") or "") for line in order_lines_}
    ship_by = str(sale.get("ShipBy") or "")[:10].replace("-", "")
    order_number = sale.get("SaleOrderNumber") or (sale.get("Order") or {}).get("SaleOrderNumber") or ""
    return WarehouseShippingOrder(
        order_number=depositor_order,
        po_number=str(sale.get("CustomerReference") or "")[:22],
        references={"CO": str(order_number)[:30]},
        parties=[_address_party("ST", str(sale.get("Customer") or ""), sale.get("ShippingAddress") or {}),
                 Party("WH", name=location[:60])],
        dates={"10": ship_by} if len(ship_by) == 8 else {},
        lines=[WarehouseOrderLine(str(n), Decimal(str(line["quantity"])), "EA",
                                  product_ids={"VN": str(line["sku"])[:48]},
                                  description=names.get(str(line["product_id"]), "")[:80])
               for n, line in enumerate(lines, start=1)],
    )  # fmt: skip


def ack_within(partner: PartnerConfig) -> timedelta:
    minutes = getattr(partner, "ack_overdue_minutes", None)
    return timedelta(minutes=minutes) if minutes else DEFAULT_ACK_WITHIN


def send_key(partner_key: str, depositor_order: str) -> str:
    return f"edi.send:{partner_key}:940:{depositor_order}"


def queue_warehouse_order(conn: psycopg.Connection, context: AutomationContext, instance: str, sale_id: str,
                          seq: int) -> str:
    """Write the fulfilment's 940 once, from the sale's snapshot (file and outbox item in one transaction, so a
    retry sends the same bytes); return its outbox key."""
    with conn.transaction():
        partner_key, depositor_order, location, lines, file_id = conn.execute(
            "SELECT partner, depositor_order, location, lines, edi_file_id FROM automation.fulfilments "
            "WHERE instance = %s AND sale_id = %s AND seq = %s FOR UPDATE", (instance, sale_id, seq)
        ).fetchone()
        key = send_key(partner_key, depositor_order)
        if file_id is not None:
            return key
        partner = context.config.partner(partner_key)
        snapshot = conn.execute("SELECT snapshot FROM automation.sales WHERE instance = %s AND sale_id = %s",
                                (instance, sale_id)).fetchone()[0] or {}
        content = exchange.write_for_partner(conn, partner, [warehouse_order(snapshot, depositor_order, location,
                                                                             lines)])
        name = exchange.outbound_file_name(partner, "940", depositor_order)
        stored = exchange.store_file(conn, partner.key, "out", name, content.encode(), state="received")
        conn.execute("UPDATE automation.fulfilments SET edi_file_id = %s, updated_at = now() "
                     "WHERE instance = %s AND sale_id = %s AND seq = %s", (stored.id, instance, sale_id, seq))
        outbox.enqueue(conn, key, SEND_EDI, {"partner": partner.key, "file_id": stored.id, "file_name": name,
                                             "instance": instance, "sale_id": sale_id, "seq": seq},
                       instance=instance, subject=sale_id, actor=context.actor)  # fmt: skip
    return key


class SendEdiHandler:
    """Delivers a stored outbound file by the partner's transport, then logs its interchanges for 997 tracking.

    Putting the same file again is harmless (same name, same bytes, atomic rename), so there is nothing to
    look up before a retry."""

    def __init__(self, context: AutomationContext) -> None:
        self.context = context

    def find_existing(self, item: outbox.OutboxItem) -> None:
        return None

    def perform(self, item: outbox.OutboxItem) -> dict[str, Any]:
        p = item.payload
        partner = self.context.config.partner(p["partner"])
        with psycopg.connect(self.context.database_url, autocommit=True) as conn:
            content = exchange.file_content(conn, p["file_id"])
        self.context.transport(partner.key).put(p["file_name"], content)
        with psycopg.connect(self.context.database_url, autocommit=True) as conn, conn.transaction():
            exchange.mark_file(conn, p["file_id"], "sent")
            exchange.record_interchanges(conn, partner.key, "out", p["file_id"], content, ack_within(partner))
        return {"file_name": p["file_name"], "bytes": len(content)}
