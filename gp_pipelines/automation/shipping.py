"""Shipments: a 3PL's 945 becomes a shipment record, the shipment is booked in Cin7 Core, its tracking goes to
the web store.

- `record_shipping_advice` writes one `automation.shipments` row per shipment, identified by the fulfilment and
  the content of the shipment (date, carrier, references, lines with their quantities and statuses), never by
  the file it came in nor its envelope: the same 945 delivered again, under any name or control number, is a
  duplicate and changes nothing. `ShipmentCheck` refuses a 945 for an order we never sent or one that ships
  more than was ordered (counting what earlier shipments booked) before anything in its file acts.
- `queue_shipment` and `queue_tracking` write the outbox items the reconciler asks for: the Cin7 shipment once
  the shipments before it are booked (so a partial shipment never lands after the one completing it), the
  tracking once the shipment is booked. Their payloads come from durable rows only.
- The handlers do the outside actions and look before they act on a retry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from gp_pipelines.automation import outbox
from gp_pipelines.automation.context import AutomationContext
from gp_pipelines.automation.errors import UnmatchedDocument
from gp_pipelines.automation.locks import order_lock
from gp_pipelines.automation.state import SHIPMENT, record_history, rows
from gp_pipelines.config import PartnerConfig
from gp_pipelines.edi.models import WarehouseShippingAdvice

SHIP_IN_CIN7 = "cin7_ship_fulfilment"
POST_TRACKING = "shopify_post_tracking"
_SHIPPED = ("AUTHORISED", "PARTIALLY AUTHORISED")
REST_FOLLOWS = ("PR", "BP")  # W1201 codes of a partial shipment whose remainder ships later

# Where a carrier's parcels can be tracked, by SCAC; "{}" takes the tracking number.
TRACKING_URLS = {
    "UPSN": "https://www.ups.com/track?tracknum={}",
    "FDEG": "https://www.fedex.com/fedextrack/?trknbr={}",
    "FDXE": "https://www.fedex.com/fedextrack/?trknbr={}",
    "USPS": "https://tools.usps.com/go/TrackConfirmAction?tLabels={}",
    "DHLC": "https://www.dhl.com/en/express/tracking.html?AWB={}",
    "AUPT": "https://auspost.com.au/mypost/track/details/{}",
    "STRK": "https://startrack.com.au/track/details/{}",
    "NZPT": "https://www.nzpost.co.nz/tools/tracking/item/{}",
}


def tracking_of(advice: WarehouseShippingAdvice) -> tuple[str, str, str]:
    """(tracking number, tracking URL, carrier) of a 945: N9*2I, else the carrier's pro number N9*CN, else the
    bill of lading, else the shipment id W0604; the URL from the carrier's SCAC where we know its tracking page."""
    refs = advice.references
    number = refs.get("2I") or refs.get("CN") or refs.get("BM") or advice.shipment_id
    template = TRACKING_URLS.get(advice.carrier_scac.upper())
    url = template.format(number) if template and number else ""
    return number, url, advice.carrier_scac or advice.routing


def _sku(line: Any) -> str:
    return line.product_ids.get("VN") or next(iter(line.product_ids.values()), "")


def shipment_identity(depositor_order: str, advice: WarehouseShippingAdvice) -> str:
    """A hash of what the shipment says (not of the file or its envelope): equal for a re-delivery of the same
    945, different for another shipment of the same order."""
    content = {
        "order": depositor_order, "ship_date": advice.ship_date, "shipment_id": advice.shipment_id,
        "references": sorted(advice.references.items()), "carrier": advice.carrier_scac, "routing": advice.routing,
        "lines": sorted((line.line_number, line.status, _sku(line), str(line.quantity_shipped), line.lot,
                         line.license_plate) for line in advice.lines),
    }  # fmt: skip
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _fulfilment_for(conn: psycopg.Connection, partner: PartnerConfig, order_number: str) -> dict[str, Any]:
    found = rows(conn, "SELECT * FROM automation.fulfilments WHERE depositor_order = %s AND partner = %s",
                 (order_number, partner.key))
    if not found:
        raise UnmatchedDocument(f"945 for order {order_number!r}, which no 940 of ours to {partner.name} carried")
    if found[0]["task_id"] is None:
        raise UnmatchedDocument(f"945 for order {order_number!r}, whose Cin7 fulfilment was never created")
    return found[0]


@dataclass(frozen=True)
class _Shipping:
    """What a 945 would book on its fulfilment, read from the database once."""

    fulfilment: Mapping[str, Any]
    key: str  # the fulfilment and the shipment's content
    recorded: bool  # a shipment with this content is recorded already (the 945 is a re-delivery)
    ordered: dict[str, Decimal]
    booked: dict[str, Decimal]  # per SKU, what the fulfilment's recorded shipments shipped
    shipping: dict[str, Decimal]  # per SKU, what this 945 ships


def _shipping(conn: psycopg.Connection, fulfilment: Mapping[str, Any], advice: WarehouseShippingAdvice) -> _Shipping:
    key = (f"{fulfilment['instance']}:{fulfilment['sale_id']}:{fulfilment['seq']}:"
           f"{shipment_identity(fulfilment['depositor_order'], advice)}")  # fmt: skip
    booked: dict[str, Decimal] = {}
    recorded = False
    for shipment_key, lines in conn.execute(
            "SELECT shipment_key, lines FROM automation.shipments WHERE instance = %s AND sale_id = %s AND seq = %s",
            (fulfilment["instance"], fulfilment["sale_id"], fulfilment["seq"])):  # fmt: skip
        recorded = recorded or shipment_key == key
        for sku, quantity in lines.items():
            booked[sku] = booked.get(sku, Decimal(0)) + Decimal(quantity)
    ordered = {line["sku"]: Decimal(line["quantity"]) for line in fulfilment["lines"]}
    shipping: dict[str, Decimal] = {}
    for line in advice.lines:
        sku = _sku(line)
        if sku not in ordered:
            raise UnmatchedDocument(f"945 {advice.order_number}: item {sku!r} was not on our 940")
        shipping[sku] = shipping.get(sku, Decimal(0)) + line.quantity_shipped
    return _Shipping(fulfilment, key, recorded, ordered, booked, shipping)


def _refuse_overshipment(advice: WarehouseShippingAdvice, facts: _Shipping,
                         pending: Mapping[str, Decimal] | None = None) -> None:
    for sku, quantity in facts.shipping.items():
        before = facts.booked.get(sku, Decimal(0)) + (pending or {}).get(sku, Decimal(0))
        if before + quantity > facts.ordered[sku]:
            raise UnmatchedDocument(f"945 {advice.order_number}: {quantity} of {sku!r} shipped, {before} shipped "
                                    f"before, only {facts.ordered[sku]} ordered")


class ShipmentCheck:
    """Whether 945s can apply, one file at a time: an order we sent, items on our 940, and no more shipped than
    ordered, counting what earlier shipments booked and what earlier 945s of the same file ship. A re-delivery
    of a recorded shipment (or a repeat within the file) passes: it will be a duplicate."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._pending: dict[str, dict[str, Decimal]] = {}  # per depositor order, SKU -> earlier 945s of the file

    def check(self, conn: psycopg.Connection, partner: PartnerConfig, advice: WarehouseShippingAdvice) -> None:
        """Raise `UnmatchedDocument` when the 945 cannot apply."""
        facts = _shipping(conn, _fulfilment_for(conn, partner, advice.order_number), advice)
        if facts.key in self._seen or facts.recorded:
            return
        pending = self._pending.setdefault(advice.order_number, {})
        _refuse_overshipment(advice, facts, pending)
        self._seen.add(facts.key)
        for sku, quantity in facts.shipping.items():
            pending[sku] = pending.get(sku, Decimal(0)) + quantity


def record_shipping_advice(conn: psycopg.Connection, context: AutomationContext, partner: PartnerConfig,
                           advice: WarehouseShippingAdvice, file_id: int,
                           file_label: str) -> tuple[tuple[str, str], bool]:
    """Record the shipment a 945 reports; returns ((instance, sale id), whether it was new). It holds the sale's
    order lock, so shipments of one fulfilment are recorded one at a time, in order."""
    fulfilment = _fulfilment_for(conn, partner, advice.order_number)
    sale = (fulfilment["instance"], fulfilment["sale_id"])
    with order_lock(conn, *sale, wait_seconds=context.lock_wait_seconds, raise_if_busy=True):
        facts = _shipping(conn, fulfilment, advice)
        if facts.recorded:
            return sale, False
        _refuse_overshipment(advice, facts)
        # W1201 PR/BP: shipped in part, the rest follows. Anything else short of the order (CP "partial,
        # considered complete") is final: a short-ship.
        short = {sku for sku, quantity in facts.shipping.items()
                 if facts.booked.get(sku, Decimal(0)) + quantity < facts.ordered[sku]}  # fmt: skip
        final = any(line.status not in REST_FOLLOWS and _sku(line) in short for line in advice.lines)
        number, url, carrier = tracking_of(advice)
        with conn.transaction():
            created = conn.execute(
                """INSERT INTO automation.shipments (instance, sale_id, seq, shipment_key, partner, file_id,
                                                    ship_date, carrier, tracking_number, tracking_url, lines, final,
                                                    state)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'recorded')
                   ON CONFLICT (shipment_key) DO NOTHING RETURNING id""",
                (*sale, fulfilment["seq"], facts.key, partner.key, file_id, advice.ship_date, carrier, number, url,
                 Jsonb({sku: str(q) for sku, q in facts.shipping.items()}), final),
            ).fetchone()
            if created:
                units = ", ".join(f"{sku} ×{q}" for sku, q in facts.shipping.items())
                record_history(conn, SHIPMENT, (created[0],), None, "recorded",
                               cause=f"945 {advice.order_number} in {file_label}: {units}" + (" (final)" if final
                                                                                              else ""),
                               actor=context.actor)
    return sale, created is not None


# ---------------------------------------------------------------- what the reconciler queues


def ship_key(instance: str, task_id: str, shipment: Mapping[str, Any]) -> str:
    carried = str(shipment["shipment_key"])
    if carried.startswith("carried-over:"):
        return carried.removeprefix("carried-over:")
    return f"cin7.ship:{instance}:{task_id}:{carried.rsplit(':', 1)[-1][:32]}"


def queue_shipment(conn: psycopg.Connection, context: AutomationContext, fulfilment: Mapping[str, Any],
                   shipment: Mapping[str, Any], earlier: Sequence[Mapping[str, Any]]) -> str:
    """The outbox item booking `shipment` in Cin7 Core; `earlier` are the fulfilment's shipments before it (all
    booked). Whether it completes the fulfilment (AUTHORISED) or not (PARTIALLY AUTHORISED) follows from them."""
    ordered = {line["sku"]: Decimal(line["quantity"]) for line in fulfilment["lines"]}
    total: dict[str, Decimal] = dict.fromkeys(ordered, Decimal(0))
    for row in [*earlier, shipment]:
        for sku, quantity in row["lines"].items():
            total[sku] = total.get(sku, Decimal(0)) + Decimal(quantity)
    complete = all(total[sku] >= ordered[sku] for sku in ordered)
    short = bool(shipment["final"]) and not complete
    status = "AUTHORISED" if complete or short else "PARTIALLY AUTHORISED"
    key = ship_key(fulfilment["instance"], fulfilment["task_id"], shipment)
    payload = {
        "instance": fulfilment["instance"], "sale_id": fulfilment["sale_id"], "seq": fulfilment["seq"],
        "task_id": fulfilment["task_id"], "shipment_id": shipment["id"], "sequence": len(earlier) + 1,
        # Two shipments of one task may share a tracking number: the n-th of them is there when n lines carry it.
        "tracking_sequence": 1 + sum(row["tracking_number"] == shipment["tracking_number"] for row in earlier),
        "status": status, "short": short, "tracking_number": shipment["tracking_number"],
        "tracking_url": shipment["tracking_url"], "carrier": shipment["carrier"], "ship_date": shipment["ship_date"],
        "shipped": dict(shipment["lines"]), "shipped_total": {sku: str(q) for sku, q in total.items()},
        "ordered": {sku: str(q) for sku, q in ordered.items()}, "depositor_order": fulfilment["depositor_order"],
    }  # fmt: skip
    with conn.transaction():
        outbox.enqueue(conn, key, SHIP_IN_CIN7, payload, instance=fulfilment["instance"],
                       subject=fulfilment["sale_id"], actor=context.actor)
    return key


def tracking_key(store_key: str, store_order_id: str, tracking_number: str) -> str:
    return f"shopify.tracking:{store_key}:{store_order_id}:{tracking_number}"


def queue_tracking(conn: psycopg.Connection, context: AutomationContext, sale: Mapping[str, Any],
                   shipment: Mapping[str, Any]) -> str:
    """The outbox item posting a booked shipment's tracking to the web store order the sale came from."""
    key = tracking_key(sale["store_key"], sale["store_order_id"], shipment["tracking_number"])
    with conn.transaction():
        outbox.enqueue(conn, key, POST_TRACKING,
                       {"store": sale["store_key"], "external_id": sale["store_order_id"],
                        "tracking_number": shipment["tracking_number"], "tracking_url": shipment["tracking_url"],
                        "carrier": shipment["carrier"], "lines": dict(shipment["lines"]),
                        "instance": sale["instance"], "sale_id": sale["sale_id"], "shipment_id": shipment["id"]},
                       instance=sale["instance"], subject=sale["sale_id"], actor=context.actor)  # fmt: skip
    return key


# ---------------------------------------------------------------- outside actions


def _ship_lines(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"ShipmentDate": _iso_date(payload["ship_date"]), "Carrier": payload["carrier"], "Box": "Box 1",
             "TrackingNumber": payload["tracking_number"], "TrackingURL": payload["tracking_url"], "IsShipped": True}]


def _iso_date(x12_date: str) -> str:
    return f"{x12_date[:4]}-{x12_date[4:6]}-{x12_date[6:8]}" if len(x12_date) == 8 else x12_date


class ShipFulfilmentHandler:
    """Packs and ships one fulfilment task in Cin7 Core with carrier, tracking number and URL.

    A short-ship first undoes the task and re-picks what was really shipped (the rest goes back on the order);
    a partial shipment sets the ship stage PARTIALLY AUTHORISED and a later one completes it. Before a retry it
    looks at the ship stage: the shipment is there when enough lines carry its tracking number (the n-th shipment
    with that number needs n), or, without a number, when the stage holds as many shipped lines as this is the
    n-th shipment and has the wanted status."""

    def __init__(self, context: AutomationContext) -> None:
        self.context = context

    def find_existing(self, item: outbox.OutboxItem) -> dict[str, Any] | None:
        p = item.payload
        ship = self.context.cin7(p["instance"]).get("sale/fulfilment/ship", {"TaskID": p["task_id"]})
        shipped = [line for line in ship.get("Lines") or [] if line.get("IsShipped")]
        if p["tracking_number"]:
            carrying = sum(line.get("TrackingNumber") == p["tracking_number"] for line in shipped)
            found = carrying >= int(p.get("tracking_sequence") or 1)
        else:
            wanted = ("AUTHORISED",) if p["status"] == "AUTHORISED" else _SHIPPED
            found = ship.get("Status") in wanted and len(shipped) >= int(p.get("sequence") or 1)
        return {"status": ship.get("Status", ""), "tracking_number": p["tracking_number"]} if found else None

    def perform(self, item: outbox.OutboxItem) -> dict[str, Any]:
        p = item.payload
        client = self.context.cin7(p["instance"])
        tasks = client.get("sale/fulfilment", {"SaleID": p["sale_id"]}).get("Fulfilments") or []
        task = next((t for t in tasks if t["TaskID"] == p["task_id"]), None)
        if task is None:
            raise outbox.PermanentError(f"fulfilment task {p['task_id']} is gone from sale {p['sale_id']}")
        if p["short"] and task["Pack"]["Status"] not in ("AUTHORISED",):
            self._repick(client, task, {sku: Decimal(q) for sku, q in p["shipped_total"].items()})
        if task["Pack"]["Status"] != "AUTHORISED":
            client.post("sale/fulfilment/pack", {"TaskID": p["task_id"], "Status": "AUTHORISED"})
        ship = client.get("sale/fulfilment/ship", {"TaskID": p["task_id"]})
        lines = [line for line in ship.get("Lines") or [] if line.get("IsShipped")] if ship.get("Status") in _SHIPPED \
            else []
        body = {"TaskID": p["task_id"], "Status": p["status"],
                "Lines": [{"ShipmentDate": line.get("ShipmentDate"), "Carrier": line.get("Carrier"),
                           "Box": line.get("Boxes"), "TrackingNumber": line.get("TrackingNumber"),
                           "TrackingURL": line.get("TrackingURL"), "IsShipped": True} for line in lines]
                + _ship_lines(p)}  # fmt: skip
        if ship.get("Status") == "PARTIALLY AUTHORISED":
            client.put("sale/fulfilment/ship", body)
        else:
            client.post("sale/fulfilment/ship", body)
        return {"status": p["status"], "tracking_number": p["tracking_number"]}

    def _repick(self, client: Any, task: Mapping[str, Any], shipped: Mapping[str, Decimal]) -> None:
        lines = task["Pick"]["Lines"]
        client.delete("sale/fulfilment", {"TaskID": task["TaskID"], "Void": "false"})
        kept = [{"ProductID": line["ProductID"], "SKU": line["SKU"], "Location": line.get("Location"),
                 "Quantity": float(min(Decimal(str(line["Quantity"])), shipped.get(line["SKU"], Decimal(0))))}
                for line in lines]  # fmt: skip
        client.post("sale/fulfilment/pick", {"TaskID": task["TaskID"], "Status": "AUTHORISED",
                                             "Lines": [line for line in kept if line["Quantity"] > 0]})


class PostTrackingHandler:
    """Creates the Shopify fulfillment with the tracking; the client's `post_tracking` returns the existing
    fulfillment when one with this tracking number is already on the order, so a retry posts nothing twice."""

    def __init__(self, context: AutomationContext) -> None:
        self.context = context

    def find_existing(self, item: outbox.OutboxItem) -> None:
        return None  # post_tracking itself looks first

    def perform(self, item: outbox.OutboxItem) -> dict[str, Any]:
        p = item.payload
        if self.context.shopify is None:
            raise outbox.PermanentError(f"no Shopify store {p['store']!r} is configured any more")
        client = self.context.shopify(p["store"])
        fulfillment = client.post_tracking(
            p["external_id"], {sku: Decimal(q) for sku, q in p["lines"].items()} or None,
            p["tracking_number"], p["tracking_url"], p["carrier"],
        )
        return {"fulfillment_id": fulfillment.get("id"), "status": fulfillment.get("status")}
