"""Routing an authorised sale: plan its fulfilments, create them in Cin7 Core, send each 3PL its 940.

`route_sale` is the whole step for one sale, safe to run any number of times and from several processes:

1. It holds the order lock (a PostgreSQL advisory lock per instance and sale) for the whole step.
2. A sale already routed is left alone. Otherwise it is re-read from Cin7 Core, not only from the cache, and
   must still be authorised, not voided, and without fulfilments someone else started; if not, it is marked
   skipped (with the reason and the sale's `LastModifiedOn`, so a later change brings it back).
3. The routing planner splits it over locations (`automation.routing`), from the stock in the cache less what
   earlier routings planned that the cache does not show yet. The plan, one row per fulfilment and one outbox
   item per Cin7 fulfilment are written in one transaction.
4. Each outside action runs through the outbox (`automation.outbox`): create the fulfilment task and authorise
   its pick lines at the planned location; then, for a location run by a 3PL, write its 940 (control numbers
   allocated and the file stored in the same transaction as the outbox item, so a retry sends the same bytes)
   and deliver it by the partner's transport. A retry asks Cin7 first whether the task already exists.

A crash anywhere leaves either nothing or a plan whose outbox items a rerun (or the outbox retry job) finishes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from gp_pipelines.automation import exchange, outbox
from gp_pipelines.automation.locks import order_lock
from gp_pipelines.automation.routing import LocationRule, Order, OrderLine, RoutingPlan, plan_fulfilments
from gp_pipelines.automation.schema import ensure_automation_schema, record_audit
from gp_pipelines.cin7.client import Cin7Client
from gp_pipelines.config import PartnerConfig, PlatformConfig
from gp_pipelines.connectors.transport import Transport
from gp_pipelines.edi.models import Party, WarehouseOrderLine, WarehouseShippingOrder

CREATE_FULFILMENT = "cin7_create_fulfilment"
SEND_EDI = "edi_send"
DEFAULT_ACK_WITHIN = timedelta(hours=4)
_AUTHORISED = ("AUTHORISED",)

_DDL = """
CREATE TABLE IF NOT EXISTS automation.routed_sales (
    instance text NOT NULL,
    sale_id text NOT NULL,
    order_number text NOT NULL DEFAULT '',
    sale_updated text NOT NULL DEFAULT '',
    state text NOT NULL CHECK (state IN ('planned', 'routed', 'skipped')),
    reason text,
    plan jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (instance, sale_id)
);
CREATE TABLE IF NOT EXISTS automation.fulfilments (
    instance text NOT NULL,
    sale_id text NOT NULL,
    seq int NOT NULL,
    location text NOT NULL,
    partner text,
    depositor_order text NOT NULL UNIQUE,
    task_id text,
    edi_file_id bigint,
    lines jsonb NOT NULL,
    state text NOT NULL CHECK (state IN ('planned', 'created', 'sent', 'partially_shipped', 'shipped',
                                         'short_shipped')),
    shipments jsonb NOT NULL DEFAULT '[]',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (instance, sale_id, seq)
);
CREATE INDEX IF NOT EXISTS fulfilments_open ON automation.fulfilments (instance, location)
    WHERE state IN ('planned', 'created', 'sent');
"""


def ensure_order_tables(conn: psycopg.Connection) -> None:
    ensure_automation_schema(conn)
    exchange.ensure_exchange_tables(conn)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('gp.ddl.automation.orders', 0))")
        conn.execute(_DDL)


# ---------------------------------------------------------------- what is waiting to be routed


@dataclass(frozen=True)
class UnroutedSale:
    instance: str
    sale_id: str
    order_number: str
    updated: str


def unrouted_sales(conn: psycopg.Connection, instances: Sequence[str], limit: int | None = None,
                   prefer_channel: str = "") -> list[UnroutedSale]:
    """Authorised sales in the cache that nobody has started fulfilling and we have not routed (nor skipped
    in their current version), oldest first (sales from `prefer_channel` with an ExternalID first, if given)."""
    sql = """
        SELECT s.instance, s.id AS sale_id, coalesce(s.payload->'Order'->>'SaleOrderNumber', '') AS order_number,
               coalesce(s.payload->>'LastModifiedOn', '') AS updated
          FROM erp_cache.sales s
         WHERE s.deleted_at IS NULL AND s.instance = ANY(%(instances)s)
           AND s.payload->'Order'->>'Status' = 'AUTHORISED'
           AND s.payload->>'Status' NOT IN ('VOIDED', 'CREDITED', 'COMPLETED')
           AND coalesce(s.payload->>'CombinedShippingStatus', '') NOT IN ('SHIPPED', 'SHIPPING')
           AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(coalesce(s.payload->'Fulfilments', '[]')) t
                            WHERE jsonb_array_length(coalesce(t->'Pick'->'Lines', '[]')) > 0)
           AND NOT EXISTS (SELECT 1 FROM automation.routed_sales r
                            WHERE r.instance = s.instance AND r.sale_id = s.id
                              AND (r.state <> 'skipped' OR r.sale_updated = coalesce(s.payload->>'LastModifiedOn', '')))
         ORDER BY (s.payload->>'SourceChannel' = %(channel)s AND coalesce(s.payload->>'ExternalID', '') <> '')
                  DESC, s.payload->>'SaleOrderDate', s.id"""
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    with conn.cursor(row_factory=dict_row) as cur:
        params = {"instances": list(instances), "channel": prefer_channel}
        return [UnroutedSale(**row) for row in cur.execute(sql, params).fetchall()]


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


def order_from_sale(sale: Mapping[str, Any]) -> Order:
    lines = tuple(
        OrderLine(str(line["ProductID"]), str(line.get("SKU", "")), Decimal(str(line.get("Quantity", 0))), str(i))
        for i, line in enumerate((sale.get("Order") or {}).get("Lines") or [])
        if Decimal(str(line.get("Quantity", 0))) > 0
    )
    return Order(str(sale["ID"]), ship_to_region(sale), lines)


def available_stock(conn: psycopg.Connection, instance: str, sale: Mapping[str, Any]) -> dict[tuple[str, str], Decimal]:
    """Stock per (location, product) for routing this sale.

    The cache's `Available` already excludes this sale's own allocation at its header location once the cache
    has seen the sale authorised, so that quantity is added back there. Fulfilments we planned for other sales
    after the availability row was last synced are not in the cache yet, so they are taken off."""
    product_ids = sorted({str(line["ProductID"]) for line in (sale.get("Order") or {}).get("Lines") or []})
    stock: dict[tuple[str, str], Decimal] = {}
    rows = conn.execute(
        """SELECT a.payload->>'Location', a.payload->>'ID', sum((a.payload->>'Available')::numeric),
                  max(a.synced_at)
             FROM erp_cache.product_availability a
            WHERE a.instance = %s AND a.deleted_at IS NULL AND a.payload->>'ID' = ANY(%s)
            GROUP BY 1, 2""",
        (instance, product_ids),
    ).fetchall()
    synced_at = {}
    for location, product_id, available, synced in rows:
        stock[(location, product_id)] = Decimal(available or 0)
        synced_at[(location, product_id)] = synced
    sale_seen = conn.execute(
        "SELECT synced_at FROM erp_cache.sales WHERE instance = %s AND id = %s AND "
        "payload->'Order'->>'Status' = 'AUTHORISED'", (instance, str(sale["ID"]))
    ).fetchone()
    header = str(sale.get("Location") or "")
    for line in (sale.get("Order") or {}).get("Lines") or []:
        key = (header, str(line["ProductID"]))
        if key in stock and sale_seen is not None and synced_at.get(key) and synced_at[key] >= sale_seen[0]:
            stock[key] += Decimal(str(line.get("Quantity", 0)))
    planned = conn.execute(
        """SELECT f.location, l->>'product_id', sum((l->>'quantity')::numeric), min(f.created_at)
             FROM automation.fulfilments f, jsonb_array_elements(f.lines) l
            WHERE f.instance = %s AND f.state IN ('planned', 'created', 'sent') AND f.sale_id <> %s
              AND l->>'product_id' = ANY(%s)
            GROUP BY 1, 2""",
        (instance, str(sale["ID"]), product_ids),
    ).fetchall()
    for location, product_id, quantity, created in planned:
        key = (location, product_id)
        if key in stock and (synced_at.get(key) is None or created > synced_at[key]):
            stock[key] -= Decimal(quantity)
    return stock


# ---------------------------------------------------------------- the routing step


@dataclass
class RoutingOutcome:
    instance: str
    sale_id: str
    state: str  # routed | already_routed | skipped | locked
    reason: str = ""
    order_number: str = ""
    plan: RoutingPlan | None = None
    fulfilments: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[str] = field(default_factory=list)  # outcome per outbox item run in this step

    def as_metadata(self) -> dict[str, Any]:
        return {
            "instance": self.instance, "sale": self.order_number or self.sale_id, "state": self.state,
            "reason": self.reason, "shipments": len(self.fulfilments),
            "split": len(self.fulfilments) > 1,
            "locations": ", ".join(f["location"] for f in self.fulfilments),
            "backordered": str(self.plan.backordered_quantity) if self.plan else "0",
        }  # fmt: skip


def _why_not_routable(sale: Mapping[str, Any]) -> str:
    if sale.get("Status") == "VOIDED":
        return "the sale is voided"
    order_status = (sale.get("Order") or {}).get("Status")
    if order_status not in _AUTHORISED:
        return f"the order is {order_status or 'missing'}, not AUTHORISED"
    for task in sale.get("Fulfilments") or []:
        if task.get("FulFilmentStatus") != "VOIDED" and (task.get("Pick") or {}).get("Lines"):
            return "someone already started fulfilling it in Cin7 Core"
    return ""


def _plan_json(plan: RoutingPlan) -> dict[str, Any]:
    return {
        "fulfilments": [
            {"location": f.location, "partner": f.partner, "transit_days": f.transit_days, "cost": f.cost,
             "lines": [_line_json(line) for line in f.lines]}
            for f in plan.fulfilments
        ],
        "backorders": [_line_json(line) for line in plan.backorders],
        "delivery_days": plan.delivery_days, "total_cost": plan.total_cost,
    }  # fmt: skip


def _line_json(line: Any) -> dict[str, Any]:
    return {"product_id": line.product_id, "sku": line.sku, "quantity": str(line.quantity), "line_id": line.line_id}


@dataclass
class RoutingContext:
    """What a routing step needs from the outside: Cin7 per instance, transports per partner, the policy."""

    config: PlatformConfig
    database_url: str
    cin7: Callable[[str], Cin7Client]
    transport: Callable[[str], Transport]
    policy: outbox.RetryPolicy
    notifier: outbox.OutboxNotifier | None = None
    actor: str = "gp-pipelines"
    lock_wait_seconds: float = 30.0

    def handlers(self) -> dict[str, outbox.OutboxHandler]:
        return {CREATE_FULFILMENT: CreateFulfilmentHandler(self), SEND_EDI: SendEdiHandler(self)}


def route_sale(conn: psycopg.Connection, context: RoutingContext, instance: str, sale_id: str) -> RoutingOutcome:
    """Route one sale (see the module docstring). `conn` must be in autocommit mode."""
    ensure_order_tables(conn)
    with order_lock(conn, instance, sale_id, wait_seconds=context.lock_wait_seconds) as held:
        if not held:
            return RoutingOutcome(instance, sale_id, "locked", "another run holds this order's lock")
        existing = conn.execute(
            "SELECT state, order_number FROM automation.routed_sales WHERE instance = %s AND sale_id = %s",
            (instance, sale_id),
        ).fetchone()
        if existing and existing[0] == "routed":
            return RoutingOutcome(instance, sale_id, "already_routed", order_number=existing[1],
                                  fulfilments=_fulfilment_rows(conn, instance, sale_id))
        if not existing or existing[0] == "skipped":
            outcome = _plan(conn, context, instance, sale_id)
            if outcome.state != "planned":
                return outcome
        return _execute(conn, context, instance, sale_id)


def _plan(conn: psycopg.Connection, context: RoutingContext, instance: str, sale_id: str) -> RoutingOutcome:
    sale = context.cin7(instance).get("sale", {"ID": sale_id})
    order_number = str((sale.get("Order") or {}).get("SaleOrderNumber") or "")
    updated = str(sale.get("LastModifiedOn") or "")
    reason = _why_not_routable(sale)
    rules = location_rules(context.config, instance)
    plan = None
    if not reason and not rules:
        reason = f"no location rules are configured for instance {instance!r}"
    if not reason:
        plan = plan_fulfilments(order_from_sale(sale), available_stock(conn, instance, sale), rules)
        if not plan.fulfilments:
            reason = "no configured location has stock for any line; left for a later routing"
    if reason:
        with conn.transaction():
            _upsert_routed(conn, instance, sale_id, order_number, updated, "skipped", reason, plan)
            record_audit(conn, "routing.skipped", actor=context.actor, instance=instance, subject=sale_id,
                         detail={"reason": reason})
        return RoutingOutcome(instance, sale_id, "skipped", reason, order_number, plan)
    assert plan is not None
    with conn.transaction():
        _upsert_routed(conn, instance, sale_id, order_number, updated, "planned", None, plan)
        for seq, planned in enumerate(plan.fulfilments, start=1):
            depositor_order = f"{order_number or sale_id[:8]}-{seq}"
            conn.execute(
                """INSERT INTO automation.fulfilments (instance, sale_id, seq, location, partner, depositor_order,
                                                      lines, state)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, 'planned') ON CONFLICT DO NOTHING""",
                (instance, sale_id, seq, planned.location, planned.partner, depositor_order,
                 Jsonb([_line_json(line) for line in planned.lines])),
            )
            outbox.enqueue(conn, _fulfilment_key(instance, sale_id, seq), CREATE_FULFILMENT,
                           {"instance": instance, "sale_id": sale_id, "seq": seq, "location": planned.location,
                            "lines": [_line_json(line) for line in planned.lines]},
                           instance=instance, subject=sale_id, actor=context.actor)  # fmt: skip
        record_audit(conn, "routing.planned", actor=context.actor, instance=instance, subject=sale_id,
                     detail=_plan_json(plan))
    return RoutingOutcome(instance, sale_id, "planned", order_number=order_number, plan=plan)


def _upsert_routed(conn: psycopg.Connection, instance: str, sale_id: str, order_number: str, updated: str,
                   state: str, reason: str | None, plan: RoutingPlan | None) -> None:
    conn.execute(
        """INSERT INTO automation.routed_sales (instance, sale_id, order_number, sale_updated, state, reason, plan)
           VALUES (%s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (instance, sale_id) DO UPDATE SET order_number = EXCLUDED.order_number,
               sale_updated = EXCLUDED.sale_updated, state = EXCLUDED.state, reason = EXCLUDED.reason,
               plan = EXCLUDED.plan, updated_at = now()""",
        (instance, sale_id, order_number, updated, state, reason, Jsonb(_plan_json(plan)) if plan else None),
    )


def _fulfilment_key(instance: str, sale_id: str, seq: int) -> str:
    return f"cin7.fulfilment:{instance}:{sale_id}:{seq}"


def _fulfilment_rows(conn: psycopg.Connection, instance: str, sale_id: str) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT seq, location, partner, depositor_order, task_id, edi_file_id, lines, state, shipments "
            "FROM automation.fulfilments WHERE instance = %s AND sale_id = %s ORDER BY seq",
            (instance, sale_id),
        ).fetchall()


def _execute(conn: psycopg.Connection, context: RoutingContext, instance: str, sale_id: str) -> RoutingOutcome:
    """Run the plan's outbox items in order; stops at the first that did not finish (a retry resumes there)."""
    outcomes: list[str] = []
    handlers = context.handlers()
    order_number = conn.execute("SELECT order_number FROM automation.routed_sales WHERE instance = %s AND "
                                "sale_id = %s", (instance, sale_id)).fetchone()[0]
    for row in _fulfilment_rows(conn, instance, sale_id):
        item = outbox.run_item(conn, _fulfilment_key(instance, sale_id, row["seq"]), handlers[CREATE_FULFILMENT],
                               context.policy, notifier=context.notifier, actor=context.actor)
        outcomes.append(f"{item.key}: {item.outcome}")
        if item.state != "done":
            return RoutingOutcome(instance, sale_id, "planned", f"waiting on {item.key}: {item.last_error}",
                                  order_number, fulfilments=_fulfilment_rows(conn, instance, sale_id),
                                  outbox=outcomes)
        if row["partner"]:
            send_key = _queue_warehouse_order(conn, context, instance, sale_id, row["seq"])
            item = outbox.run_item(conn, send_key, handlers[SEND_EDI], context.policy, notifier=context.notifier,
                                   actor=context.actor)
            outcomes.append(f"{item.key}: {item.outcome}")
            if item.state != "done":
                return RoutingOutcome(instance, sale_id, "planned", f"waiting on {item.key}: {item.last_error}",
                                      order_number, fulfilments=_fulfilment_rows(conn, instance, sale_id),
                                      outbox=outcomes)
    with conn.transaction():
        conn.execute("UPDATE automation.routed_sales SET state = 'routed', reason = NULL, updated_at = now() "
                     "WHERE instance = %s AND sale_id = %s", (instance, sale_id))
        record_audit(conn, "routing.routed", actor=context.actor, instance=instance, subject=sale_id, detail={})
    return RoutingOutcome(instance, sale_id, "routed", order_number=order_number,
                          plan=None, fulfilments=_fulfilment_rows(conn, instance, sale_id), outbox=outcomes)


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
    """Creates one fulfilment task in Cin7 Core and authorises its pick lines at the planned location."""

    def __init__(self, context: RoutingContext) -> None:
        self.context = context

    def _claimed_tasks(self, instance: str, sale_id: str) -> set[str]:
        # Task ids our other fulfilments of this sale already own: never match one of them twice.
        with psycopg.connect(self.context.database_url, autocommit=True) as conn:
            rows = conn.execute("SELECT task_id FROM automation.fulfilments WHERE instance = %s AND sale_id = %s "
                                "AND task_id IS NOT NULL", (instance, sale_id)).fetchall()
        return {row[0] for row in rows}

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
        # A task left empty by an interrupted attempt is reused rather than a second one added.
        empty = [t for t in tasks if (t.get("Pick") or {}).get("Status") in ("DRAFT", "NOT AVAILABLE")
                 and not (t.get("Pick") or {}).get("Lines") and t.get("FulFilmentStatus") != "VOIDED"]
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
            conn.execute("UPDATE automation.fulfilments SET task_id = %s, state = 'created', updated_at = now() "
                         "WHERE instance = %s AND sale_id = %s AND seq = %s AND state = 'planned'",
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
    """The 940 for one fulfilment: W0502 is our depositor order number, which the 945 quotes back."""
    order_lines = (sale.get("Order") or {}).get("Lines") or []
    names = {str(line["ProductID"]): str(line.get("Name") or "") for line in order_lines}
    ship_by = str(sale.get("ShipBy") or "")[:10].replace("-", "")
    return WarehouseShippingOrder(
        order_number=depositor_order,
        po_number=str(sale.get("CustomerReference") or "")[:22],
        references={"CO": str((sale.get("Order") or {}).get("SaleOrderNumber") or "")[:30]},
        parties=[_address_party("ST", str(sale.get("Customer") or ""), sale.get("ShippingAddress") or {}),
                 Party("WH", name=location[:60])],
        dates={"10": ship_by} if len(ship_by) == 8 else {},
        lines=[WarehouseOrderLine(str(n), Decimal(str(line["quantity"])), "EA",
                                  product_ids={"VN": str(line["sku"])[:48]},
                                  description=names.get(str(line["product_id"]), "")[:80])
               for n, line in enumerate(lines, start=1)],
    )  # fmt: skip


def _ack_within(partner: PartnerConfig) -> timedelta:
    minutes = getattr(partner, "ack_overdue_minutes", None)
    return timedelta(minutes=minutes) if minutes else DEFAULT_ACK_WITHIN


def _queue_warehouse_order(conn: psycopg.Connection, context: RoutingContext, instance: str, sale_id: str,
                           seq: int) -> str:
    """Write the fulfilment's 940 once (file and outbox item in one transaction); return its outbox key."""
    with conn.transaction():
        row = conn.execute(
            "SELECT partner, depositor_order, location, lines, edi_file_id FROM automation.fulfilments "
            "WHERE instance = %s AND sale_id = %s AND seq = %s FOR UPDATE", (instance, sale_id, seq)
        ).fetchone()
        partner_key, depositor_order, location, lines, file_id = row
        key = f"edi.send:{partner_key}:940:{depositor_order}"
        if file_id is not None:
            return key
        partner = context.config.partner(partner_key)
        sale = context.cin7(instance).get("sale", {"ID": sale_id})
        content = exchange.write_for_partner(conn, partner, [warehouse_order(sale, depositor_order, location, lines)])
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

    def __init__(self, context: RoutingContext) -> None:
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
            exchange.record_interchanges(conn, partner.key, "out", p["file_id"], content, _ack_within(partner))
            if p.get("seq") is not None:
                conn.execute("UPDATE automation.fulfilments SET state = 'sent', updated_at = now() "
                             "WHERE instance = %s AND sale_id = %s AND seq = %s AND state IN ('planned', 'created')",
                             (p["instance"], p["sale_id"], p["seq"]))
        return {"file_name": p["file_name"], "bytes": len(content)}
