"""Files from partners: keep, validate, acknowledge, act once, archive — or quarantine with the reason.

`process_partner_file` is the whole step for one file, safe to repeat (the partner inbox sensor starts one run
per file, keyed by partner, name and content hash; the same 945 delivered three times ships once):

1. The file is stored byte for byte in `automation.edi_files` before anything else (keep the input).
2. It is validated (envelopes, counts, every set against its spec). A file with errors is quarantined with the
   reason, answered with a rejecting 997, and a notification names the file and the first problems; it
   changes nothing in Cin7 Core.
3. A valid file is answered with an accepting 997 per functional group; 997s the partner sent us are matched to
   the groups we sent (`automation.exchange`). Each other document goes to the handler for its set (945 for
   3PLs here; trading partners add 850). A document that matches nothing we know (an unknown depositor order)
   quarantines the file.
4. Handlers only enqueue outbox items and run them (a Cin7 shipment, a Shopify fulfilment): an outage leaves
   the items queued for the outbox retry job, and the file still counts as processed, since its actions are
   written down.
5. The file is moved to the partner's `processed` (or `quarantine`) folder on their side.

Every step runs under an advisory lock on the file, so two runs for the same file never interleave.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from gp_pipelines.automation import exchange, outbox
from gp_pipelines.automation.locks import advisory_lock
from gp_pipelines.automation.orders import SEND_EDI, RoutingContext, ensure_order_tables
from gp_pipelines.automation.schema import record_audit
from gp_pipelines.config import PartnerConfig
from gp_pipelines.connectors.transport import TransportError
from gp_pipelines.edi.ack import build_functional_ack
from gp_pipelines.edi.errors import EdiIssue
from gp_pipelines.edi.mapping import document_from_segments
from gp_pipelines.edi.models import FunctionalAck, WarehouseShippingAdvice
from gp_pipelines.edi.validator import GroupEnd, GroupHeader, InterchangeHeader, TransactionSet, iter_events

_log = logging.getLogger(__name__)
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


class UnmatchedDocument(Exception):
    """A valid document that refers to something we never sent (e.g. a 945 for an unknown order)."""


class SetHandler(Protocol):
    """Acts on one inbound document; returns the outbox items it queued (each already run once). An optional
    `precheck(conn, partner, document)` attribute raises `UnmatchedDocument` before anything in the file acts."""

    def __call__(self, conn: psycopg.Connection, context: InboundContext, partner: PartnerConfig, document: Any,
                 file_id: int) -> list[str]: ...


@dataclass
class InboundContext(RoutingContext):
    """A routing context plus Shopify clients per store key, for posting tracking after a shipment."""

    shopify: Callable[[str], Any] | None = None
    extra_handlers: dict[str, SetHandler] = field(default_factory=dict)

    def handlers(self) -> dict[str, outbox.OutboxHandler]:
        own = {SHIP_IN_CIN7: ShipFulfilmentHandler(self), POST_TRACKING: PostTrackingHandler(self)}
        return {**super().handlers(), **own}


@dataclass
class InboundResult:
    partner: str
    file_name: str
    state: str  # processed | quarantined | already_processed | already_quarantined | busy
    reason: str = ""
    documents: list[str] = field(default_factory=list)  # e.g. "945 SO-00012-1"
    outbox: list[str] = field(default_factory=list)

    def as_metadata(self) -> dict[str, Any]:
        return {"partner": self.partner, "file": self.file_name, "state": self.state, "reason": self.reason,
                "documents": ", ".join(self.documents), "actions": len(self.outbox)}


# ---------------------------------------------------------------- validation


@dataclass
class _Parsed:
    groups: list[tuple[InterchangeHeader, GroupHeader, list[TransactionSet], GroupEnd]]
    issues: list[str]


def parse_and_validate(content: bytes) -> _Parsed:
    """Every group with its sets, and a readable list of every error (envelope, counts, set specs)."""
    groups = []
    issues: list[str] = []
    transactions: list[TransactionSet] = []
    saw_interchange = False
    for event in iter_events(io.BytesIO(content)):
        if isinstance(event, EdiIssue):
            if event.is_error:
                issues.append(str(event))
            continue
        issues.extend(str(i) for i in getattr(event, "issues", []) if i.is_error)
        if isinstance(event, InterchangeHeader):
            saw_interchange = True
        elif isinstance(event, GroupHeader):
            transactions = []
        elif isinstance(event, TransactionSet):
            transactions.append(event)
        elif isinstance(event, GroupEnd):
            groups.append((event.header.interchange, event.header, transactions, event))
    if not saw_interchange:
        issues.insert(0, "no ISA interchange header: not an X12 file")
    return _Parsed(groups, issues)


# ---------------------------------------------------------------- the step


def _send_acks(conn: psycopg.Connection, context: InboundContext, partner: PartnerConfig, parsed: _Parsed,
               stored: exchange.StoredFile) -> list[str]:
    """One 997 per functional group (997 groups themselves are never acknowledged), sent through the outbox."""
    acks: list[FunctionalAck] = [
        build_functional_ack(header, transactions, end)
        for _isa, header, transactions, end in parsed.groups if header.functional_id != "FA"
    ]  # fmt: skip
    if not acks:
        return []
    key = f"edi.send:{partner.key}:997:{stored.id}"
    with conn.transaction():
        if outbox.get_item(conn, key) is None:
            content = exchange.write_for_partner(conn, partner, acks).encode()
            name = exchange.outbound_file_name(partner, "997", f"{stored.id}_{stored.file_name.rsplit('.', 1)[0]}")
            ack_file = exchange.store_file(conn, partner.key, "out", name, content)
            outbox.enqueue(conn, key, SEND_EDI, {"partner": partner.key, "file_id": ack_file.id, "file_name": name},
                           subject=stored.file_name, actor=context.actor)
    item = outbox.run_item(conn, key, context.handlers()[SEND_EDI], context.policy, notifier=context.notifier,
                           actor=context.actor)
    return [f"{key}: {item.outcome}"]


def _quarantine(conn: psycopg.Connection, context: InboundContext, partner: PartnerConfig,
                stored: exchange.StoredFile, reason: str) -> None:
    with conn.transaction():
        exchange.mark_file(conn, stored.id, "quarantined", reason)
        record_audit(conn, "edi.quarantined", actor=context.actor, subject=stored.file_name,
                     detail={"partner": partner.key, "reason": reason})
    if context.notifier is not None:
        context.notifier.notify(
            f"EDI file quarantined: {partner.name} {stored.file_name}",
            f"The file {stored.file_name} from {partner.name} ({partner.key}) was quarantined and changed "
            f"nothing.\nReason: {reason}\nIt is kept in automation.edi_files (id {stored.id}).",
            key=f"edi.quarantined:{partner.key}:{stored.id}", conn=conn,
        )


def process_partner_file(conn: psycopg.Connection, context: InboundContext, partner: PartnerConfig,
                         file_name: str, content: bytes | None = None) -> InboundResult:
    """Process one file from the partner's inbox (see the module docstring). `conn` is autocommit."""
    ensure_order_tables(conn)
    transport = context.transport(partner.key)
    if content is None:
        content = transport.fetch(file_name)
    stored = exchange.store_file(conn, partner.key, "in", file_name, content)
    with advisory_lock(conn, f"gp.edi.in.{stored.id}", wait_seconds=context.lock_wait_seconds) as held:
        if not held:
            return InboundResult(partner.key, file_name, "busy", "another run is processing this file")
        state = conn.execute("SELECT state, reason FROM automation.edi_files WHERE id = %s", (stored.id,)).fetchone()
        if state[0] in ("processed", "quarantined"):
            _archive(transport, file_name, "processed" if state[0] == "processed" else "quarantine")
            return InboundResult(partner.key, file_name, f"already_{state[0]}", state[1] or "")
        result = InboundResult(partner.key, file_name, "processed")
        parsed = parse_and_validate(content)
        with conn.transaction():
            exchange.record_interchanges(conn, partner.key, "in", stored.id, content)
        if parsed.issues:
            result.outbox += _send_acks(conn, context, partner, parsed, stored)
            reason = "; ".join(parsed.issues[:5]) + (f" (+{len(parsed.issues) - 5} more)" if len(parsed.issues) > 5
                                                     else "")
            _quarantine(conn, context, partner, stored, reason)
            _archive(transport, file_name, "quarantine")
            return InboundResult(partner.key, file_name, "quarantined", reason, outbox=result.outbox)
        handlers = {"945": handle_shipping_advice, **context.extra_handlers}
        try:
            # Check every document matches before acting on any, so a bad file changes nothing.
            documents = []
            for _isa, _header, transactions, _end in parsed.groups:
                for transaction in transactions:
                    document = document_from_segments(transaction.set_id, transaction.segments)
                    if isinstance(document, FunctionalAck):
                        documents.append(("997", document))
                    elif transaction.set_id in handlers:
                        precheck = getattr(handlers[transaction.set_id], "precheck", None)
                        if precheck is not None:
                            precheck(conn, partner, document)
                        documents.append((transaction.set_id, document))
                    else:
                        raise UnmatchedDocument(f"set {transaction.set_id} is not expected from {partner.name}")
        except UnmatchedDocument as exc:
            result.outbox += _send_acks(conn, context, partner, parsed, stored)
            _quarantine(conn, context, partner, stored, str(exc))
            _archive(transport, file_name, "quarantine")
            return InboundResult(partner.key, file_name, "quarantined", str(exc), outbox=result.outbox)
        result.outbox += _send_acks(conn, context, partner, parsed, stored)
        for set_id, document in documents:
            if set_id == "997":
                matched = exchange.apply_functional_ack(conn, partner.key, document)
                result.documents.append(f"997 for group {document.group_control_number}: "
                                        f"{matched['state'] if matched else 'unmatched'}")
                if matched and matched["state"] == "rejected" and context.notifier is not None:
                    context.notifier.notify(
                        f"{partner.name} rejected our group {document.group_control_number}",
                        f"997 from {partner.name}: {matched}", key=f"edi.rejected:{partner.key}:{matched['id']}",
                        conn=conn)
                continue
            result.documents.append(f"{set_id} {getattr(document, 'order_number', '') or ''}".strip())
            result.outbox += handlers[set_id](conn, context, partner, document, stored.id)
        with conn.transaction():
            exchange.mark_file(conn, stored.id, "processed")
            record_audit(conn, "edi.processed", actor=context.actor, subject=file_name,
                         detail={"partner": partner.key, "documents": result.documents})
        _archive(transport, file_name, "processed")
        return result


def _archive(transport: Any, file_name: str, folder: str) -> None:
    """Move the file out of the partner's outbox. The file is already kept and its state recorded, so a failed
    move only leaves it listed: the next run for it finds it processed and tries the move again."""
    try:
        transport.archive_inbound(file_name, folder)
    except TransportError as exc:
        _log.warning("could not move %s to %s on the partner side: %s", file_name, folder, exc)


# ---------------------------------------------------------------- 945: ship in Cin7, then tell the web store


def _fulfilment_for(conn: psycopg.Connection, partner: PartnerConfig, order_number: str) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT * FROM automation.fulfilments WHERE depositor_order = %s AND partner = %s",
            (order_number, partner.key),
        ).fetchone()
    if row is None:
        raise UnmatchedDocument(f"945 for order {order_number!r}, which no 940 of ours to {partner.name} carried")
    if row["task_id"] is None:
        raise UnmatchedDocument(f"945 for order {order_number!r}, whose Cin7 fulfilment was never created")
    return row


def _precheck_945(conn: psycopg.Connection, partner: PartnerConfig, advice: WarehouseShippingAdvice) -> None:
    fulfilment = _fulfilment_for(conn, partner, advice.order_number)
    ordered = {line["sku"]: Decimal(line["quantity"]) for line in fulfilment["lines"]}
    for line in advice.lines:
        sku = line.product_ids.get("VN") or next(iter(line.product_ids.values()), "")
        if sku not in ordered:
            raise UnmatchedDocument(f"945 {advice.order_number}: item {sku!r} was not on our 940")
        if line.quantity_shipped > ordered[sku]:
            raise UnmatchedDocument(f"945 {advice.order_number}: {line.quantity_shipped} of {sku!r} shipped, "
                                    f"only {ordered[sku]} ordered")


def tracking_of(advice: WarehouseShippingAdvice) -> tuple[str, str, str]:
    """(tracking number, tracking URL, carrier) of a 945: N9*2I, else the carrier's pro number N9*CN, else the
    bill of lading, else the shipment id W0604; the URL from the carrier's SCAC where we know its tracking page."""
    refs = advice.references
    number = refs.get("2I") or refs.get("CN") or refs.get("BM") or advice.shipment_id
    template = TRACKING_URLS.get(advice.carrier_scac.upper())
    url = template.format(number) if template and number else ""
    return number, url, advice.carrier_scac or advice.routing


def handle_shipping_advice(conn: psycopg.Connection, context: InboundContext, partner: PartnerConfig,
                           advice: WarehouseShippingAdvice, file_id: int) -> list[str]:
    """Queue and run the Cin7 shipment for a 945; after it, the Shopify tracking when the sale came from a store."""
    fulfilment = _fulfilment_for(conn, partner, advice.order_number)
    ordered = {line["sku"]: Decimal(line["quantity"]) for line in fulfilment["lines"]}
    shipped_before: dict[str, Decimal] = {}
    for shipment in fulfilment["shipments"]:
        for sku, quantity in shipment["lines"].items():
            shipped_before[sku] = shipped_before.get(sku, Decimal(0)) + Decimal(quantity)
    now_shipped = {}
    short = False
    for line in advice.lines:
        sku = line.product_ids.get("VN") or next(iter(line.product_ids.values()), "")
        now_shipped[sku] = now_shipped.get(sku, Decimal(0)) + line.quantity_shipped
        # W1201 PR/BP: shipped in part, the rest follows. Anything else short of the order (CP "partial,
        # considered complete") is final: a short-ship.
        so_far = shipped_before.get(sku, Decimal(0)) + line.quantity_shipped
        if line.status not in REST_FOLLOWS and so_far < ordered[sku]:
            short = True
    total = {sku: shipped_before.get(sku, Decimal(0)) + now_shipped.get(sku, Decimal(0)) for sku in ordered}
    complete = all(total[sku] >= ordered[sku] for sku in ordered)
    status = "AUTHORISED" if complete or short else "PARTIALLY AUTHORISED"
    number, url, carrier = tracking_of(advice)
    shipment_ref = advice.shipment_id or number or str(file_id)
    key = f"cin7.ship:{fulfilment['instance']}:{fulfilment['task_id']}:{shipment_ref}"
    payload = {
        "instance": fulfilment["instance"], "sale_id": fulfilment["sale_id"], "seq": fulfilment["seq"],
        "task_id": fulfilment["task_id"], "status": status, "short": short and not complete,
        "tracking_number": number, "tracking_url": url, "carrier": carrier, "ship_date": advice.ship_date,
        "shipped": {sku: str(q) for sku, q in now_shipped.items()},
        "shipped_total": {sku: str(q) for sku, q in total.items()},
        "ordered": {sku: str(q) for sku, q in ordered.items()}, "depositor_order": advice.order_number,
    }  # fmt: skip
    with conn.transaction():
        outbox.enqueue(conn, key, SHIP_IN_CIN7, payload, instance=fulfilment["instance"],
                       subject=fulfilment["sale_id"], actor=context.actor)
    item = outbox.run_item(conn, key, context.handlers()[SHIP_IN_CIN7], context.policy, notifier=context.notifier,
                           actor=context.actor)
    keys = [f"{key}: {item.outcome}"]
    if item.state == "done":
        keys += queue_tracking(conn, context, item)
    return keys


handle_shipping_advice.precheck = _precheck_945  # type: ignore[attr-defined]


def _ship_lines(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"ShipmentDate": _iso_date(payload["ship_date"]), "Carrier": payload["carrier"], "Box": "Box 1",
             "TrackingNumber": payload["tracking_number"], "TrackingURL": payload["tracking_url"], "IsShipped": True}]


def _iso_date(x12_date: str) -> str:
    return f"{x12_date[:4]}-{x12_date[4:6]}-{x12_date[6:8]}" if len(x12_date) == 8 else x12_date


class ShipFulfilmentHandler:
    """Packs and ships one fulfilment task in Cin7 Core with carrier, tracking number and URL.

    A short-ship first undoes the task and re-picks what was really shipped (the rest goes back on the order);
    a partial shipment sets the ship stage PARTIALLY AUTHORISED and a later one completes it."""

    def __init__(self, context: InboundContext) -> None:
        self.context = context

    def find_existing(self, item: outbox.OutboxItem) -> dict[str, Any] | None:
        p = item.payload
        ship = self.context.cin7(p["instance"]).get("sale/fulfilment/ship", {"TaskID": p["task_id"]})
        for line in ship.get("Lines") or []:
            if p["tracking_number"] and line.get("TrackingNumber") == p["tracking_number"]:
                return self._record(item, ship.get("Status", ""))
        return None

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
        return self._record(item, p["status"])

    def _repick(self, client: Any, task: Mapping[str, Any], shipped: Mapping[str, Decimal]) -> None:
        lines = task["Pick"]["Lines"]
        client.delete("sale/fulfilment", {"TaskID": task["TaskID"], "Void": "false"})
        kept = [{"ProductID": line["ProductID"], "SKU": line["SKU"], "Location": line.get("Location"),
                 "Quantity": float(min(Decimal(str(line["Quantity"])), shipped.get(line["SKU"], Decimal(0))))}
                for line in lines]  # fmt: skip
        client.post("sale/fulfilment/pick", {"TaskID": task["TaskID"], "Status": "AUTHORISED",
                                             "Lines": [line for line in kept if line["Quantity"] > 0]})

    def _record(self, item: outbox.OutboxItem, status: str) -> dict[str, Any]:
        p = item.payload
        state = "short_shipped" if p["short"] else ("shipped" if p["status"] == "AUTHORISED" else "partially_shipped")
        shipment = {"outbox_key": item.key, "tracking_number": p["tracking_number"], "carrier": p["carrier"],
                    "lines": p["shipped"], "status": status}
        with psycopg.connect(self.context.database_url, autocommit=True) as conn:
            conn.execute(
                """UPDATE automation.fulfilments SET state = %s, updated_at = now(),
                          shipments = CASE WHEN shipments @> %s THEN shipments ELSE shipments || %s END
                    WHERE instance = %s AND sale_id = %s AND seq = %s""",
                (state, Jsonb([{"outbox_key": item.key}]), Jsonb([shipment]), p["instance"], p["sale_id"], p["seq"]),
            )
        return {"status": status, "tracking_number": p["tracking_number"]}


# ---------------------------------------------------------------- tracking to Shopify


def queue_tracking(conn: psycopg.Connection, context: InboundContext, shipped: outbox.OutboxItem) -> list[str]:
    """After Cin7 shipped: post the tracking to the Shopify order the sale came from (matched by the sale's
    SourceChannel to a configured store and its ExternalID to the order)."""
    p = shipped.payload
    if context.shopify is None or not p["tracking_number"]:
        return []
    sale = conn.execute("SELECT payload->>'SourceChannel', payload->>'ExternalID' FROM erp_cache.sales "
                        "WHERE instance = %s AND id = %s", (p["instance"], p["sale_id"])).fetchone()
    if sale is None:
        sale_doc = context.cin7(p["instance"]).get("sale", {"ID": p["sale_id"]})
        sale = (sale_doc.get("SourceChannel"), sale_doc.get("ExternalID"))
    channel, external_id = sale
    store = next((s for s in context.config.automation.shopify
                  if s.instance == p["instance"] and s.source_channel == channel), None)
    if store is None or not external_id:
        return []
    key = f"shopify.tracking:{store.key}:{external_id}:{p['tracking_number']}"
    with conn.transaction():
        outbox.enqueue(conn, key, POST_TRACKING,
                       {"store": store.key, "external_id": external_id, "tracking_number": p["tracking_number"],
                        "tracking_url": p["tracking_url"], "carrier": p["carrier"], "lines": p["shipped"],
                        "instance": p["instance"], "sale_id": p["sale_id"]},
                       instance=p["instance"], subject=p["sale_id"], actor=context.actor)  # fmt: skip
    item = outbox.run_item(conn, key, context.handlers()[POST_TRACKING], context.policy, notifier=context.notifier,
                           actor=context.actor)
    return [f"{key}: {item.outcome}"]


class PostTrackingHandler:
    """Creates the Shopify fulfillment with the tracking; the client's `post_tracking` returns the existing
    fulfillment when one with this tracking number is already on the order, so a retry posts nothing twice."""

    def __init__(self, context: InboundContext) -> None:
        self.context = context

    def find_existing(self, item: outbox.OutboxItem) -> None:
        return None  # post_tracking itself looks first

    def perform(self, item: outbox.OutboxItem) -> dict[str, Any]:
        p = item.payload
        client = self.context.shopify(p["store"])
        fulfillment = client.post_tracking(
            p["external_id"], {sku: Decimal(q) for sku, q in p["lines"].items()} or None,
            p["tracking_number"], p["tracking_url"], p["carrier"],
        )
        return {"fulfillment_id": fulfillment.get("id"), "status": fulfillment.get("status")}
