"""Trading partners end to end (issue #8): an 850 becomes one authorised Cin7 Core sale and an 855; a shipped
fulfilment of that sale becomes an 856, its authorised invoice an 810; the cache becomes the 846 feed.

The decisions are the pure functions of `automation.trading`; this module does the writing, once:

- `handle_purchase_order` is the 850 set handler of `inbound.process_partner_file` (register it with
  `AutomationContext.extra_handlers = PARTNER_SET_HANDLERS`). Under an advisory lock per (partner, PO number) it
  looks for the PO in `automation.partner_orders`, then in Cin7 Core (`saleList?ExternalID=`), so the same PO
  in any number of files makes one sale. A new PO is decided from the cache (customer, products, stock; Cin7
  Core is read where the cache lacks them). A rejected PO writes nothing to Cin7 Core; an accepted one is
  written down with its outbox item (`cin7_create_sale`: POST sale, POST sale/order AUTHORISED) in one
  transaction, then the item runs. The 855 follows once the sale exists (it quotes the sale order number).
- `pending_partner_documents` lists, from the cache and `automation.partner_orders`, the 855s, 856s (shipped
  fulfilments) and 810s (authorised or paid invoices) not yet written; `send_partner_document` re-reads the
  sale from Cin7 Core, builds the document, and stores the file, its `automation.partner_documents` row and
  its `edi_send` outbox item in one transaction (SSCC-18 serials and control numbers come from counters in
  the same transaction, so a rollback reuses nothing and a retry sends the same bytes).
- `send_inventory_feed` writes a partner's 846 from the cache, once per partner and hour.

A document that cannot be built (a carrier without a SCAC, a total that does not match Cin7 Core) is recorded
as `failed` with the reason, notified once, and tried again after `DOCUMENT_RETRY_AFTER` (time to fix the
config). Nothing here imports Dagster.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from gp_pipelines.automation import exchange, outbox
from gp_pipelines.automation.context import AutomationContext
from gp_pipelines.automation.errors import UnmatchedDocument
from gp_pipelines.automation.locks import advisory_lock
from gp_pipelines.automation.orders import SEND_EDI, ensure_order_tables
from gp_pipelines.automation.schema import dumps_json, record_audit
from gp_pipelines.automation.trading import (
    INVOICED_STATUSES,
    SHIPPED_STATUSES,
    LineDecision,
    TradingError,
    build_810,
    build_846_feed,
    build_855,
    build_856,
    customer_reference,
    existing_sale_for_po,
    find_customer,
    resolve_items,
    sale_from_purchase_order,
    to_decimal,
)
from gp_pipelines.cin7.errors import Cin7Error, Cin7RequestError
from gp_pipelines.config import PartnerConfig, PlatformConfig
from gp_pipelines.edi.models import Document, PurchaseOrder
from gp_pipelines.edi.writer import read_documents
from gp_pipelines.schema.automation import PARTNER_ORDER_STATES

CREATE_SALE = "cin7_create_sale"
# A document that could not be built is tried again after this (time for someone to fix the cause).
DOCUMENT_RETRY_AFTER = timedelta(hours=1)
ORDER_STATES = PARTNER_ORDER_STATES
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_CACHE = "erp_cache"

def ensure_partner_tables(conn: psycopg.Connection) -> None:
    """The partner tables are part of the platform's schema: make sure it is current (see `ensure_schema`)."""
    ensure_order_tables(conn)


def trading_partners(config: PlatformConfig, set_id: str | None = None) -> list[PartnerConfig]:
    """The configured trading partners (that exchange `set_id`, when given)."""
    return [p for p in config.partners if p.kind == "trading" and (set_id is None or p.exchanges(set_id))]


# ---------------------------------------------------------------- cache reads


def cache_payloads(
    conn: psycopg.Connection, table: str, instance: str, where: str = "", params: Sequence[Any] = ()
) -> list[dict[str, Any]]:
    """Live cache records of one instance; [] when the cache was never created."""
    if conn.execute("SELECT to_regclass(%s)", (f"{_CACHE}.{table}",)).fetchone()[0] is None:
        return []
    rows = conn.execute(
        f"SELECT payload FROM {_CACHE}.{table} WHERE instance = %s AND deleted_at IS NULL {where}", (instance, *params)
    ).fetchall()
    return [row[0] for row in rows]


def _cache_has(conn: psycopg.Connection, table: str, instance: str) -> bool:
    if conn.execute("SELECT to_regclass(%s)", (f"{_CACHE}.{table}",)).fetchone()[0] is None:
        return False
    return bool(
        conn.execute(f"SELECT EXISTS (SELECT 1 FROM {_CACHE}.{table} WHERE instance = %s)", (instance,)).fetchone()[0]
    )


def _cached_customer(conn: psycopg.Connection, instance: str, reference: str) -> dict[str, Any] | None:
    rows = cache_payloads(
        conn,
        "customers",
        instance,
        "AND (lower(id) = lower(%s) OR lower(payload->>'Name') = lower(%s))",
        (reference.strip(), reference.strip()),
    )
    return find_customer(rows, reference)


def _customer(
    conn: psycopg.Connection, context: AutomationContext, partner: PartnerConfig, po: PurchaseOrder
) -> dict[str, Any]:
    reference = customer_reference(po, partner)
    found = _cached_customer(conn, partner.instance, reference)
    if found is None:
        # Not in the cache (created since the last sync?): ask Cin7 Core.
        params = {"ID": reference} if _GUID.match(reference.strip()) else {"Name": reference.strip()}
        listed = context.cin7(partner.instance).get("customer", {**params, "IncludeDeprecated": "true"})
        found = find_customer((listed or {}).get("CustomerList") or [], reference)
    if found is None:
        raise TradingError(
            f"partner {partner.key!r}, PO {po.po_number}: Cin7 customer {reference!r} does not exist "
            f"in instance {partner.instance!r}; fix the partner's customer or ship_to settings"
        )
    return found


def _all_cin7_products(context: AutomationContext, instance: str) -> list[dict[str, Any]]:
    client = context.cin7(instance)
    return [
        product for page in client.paginate("product", "Products", {"IncludeDeprecated": "true"}) for product in page
    ]


def _products(
    conn: psycopg.Connection, context: AutomationContext, partner: PartnerConfig, po: PurchaseOrder
) -> list[dict[str, Any]]:
    """The products the PO is matched against: the cache's, or Cin7 Core's own list when the cache lacks any
    of the PO's items (a product added since the last sync must not be refused as unknown)."""
    cached = cache_payloads(conn, "products", partner.instance)
    if cached and all(match.product is not None for match in resolve_items(po, partner, cached)):
        return cached
    return _all_cin7_products(context, partner.instance) or cached


def _available(
    conn: psycopg.Connection,
    context: AutomationContext,
    partner: PartnerConfig,
    customer: Mapping[str, Any],
    product_ids: Sequence[str],
) -> dict[str, Decimal]:
    """Stock free to sell per product at the location the sale ships from (all locations when unknown)."""
    location = partner.location or str(customer.get("Location") or "") or None
    ids = sorted(set(product_ids))
    if _cache_has(conn, "product_availability", partner.instance):
        rows = cache_payloads(conn, "product_availability", partner.instance, "AND payload->>'ID' = ANY(%s)", (ids,))
    else:
        client = context.cin7(partner.instance)
        rows = [row for product_id in ids
                for page in client.paginate("ref/productavailability", "ProductAvailabilityList", {"ID": product_id})
                for row in page]  # fmt: skip
    totals = dict.fromkeys(ids, Decimal(0))
    for row in rows:
        if location is None or str(row.get("Location") or "") == location:
            key = str(row.get("ID"))
            totals[key] = totals.get(key, Decimal(0)) + to_decimal(row.get("Available"), "Available")
    return totals


# ---------------------------------------------------------------- 850: decisions as rows


def _decision_json(decision: LineDecision) -> dict[str, Any]:
    product = decision.product or {}
    return {
        "line_number": decision.line_number, "status": decision.status, "quantity": str(decision.quantity),
        "uom": decision.uom, "product_ids": decision.product_ids, "product_id": product.get("ID"),
        "sku": product.get("SKU"), "unit_price": None if decision.unit_price is None else str(decision.unit_price),
        "available": str(decision.available), "reason": decision.reason,
    }  # fmt: skip


def _decision_from_json(row: Mapping[str, Any]) -> LineDecision:
    product = {"ID": row["product_id"], "SKU": row["sku"]} if row.get("product_id") else None
    return LineDecision(
        row["line_number"], row["status"], Decimal(row["quantity"]), row["uom"], dict(row["product_ids"]),
        product, None if row.get("unit_price") is None else Decimal(row["unit_price"]), Decimal(row["available"]),
        row.get("reason") or "",
    )  # fmt: skip


def stored_purchase_order(conn: psycopg.Connection, file_id: int, po_number: str) -> PurchaseOrder:
    """The 850 as it arrived (kept in `automation.edi_files`): the 855, 856 and 810 echo its lines and ids."""
    for document in read_documents(exchange.file_content(conn, file_id)):
        if isinstance(document, PurchaseOrder) and document.po_number == po_number:
            return document
    raise TradingError(f"stored file {file_id} holds no 850 for PO {po_number}")


def _order_row(conn: psycopg.Connection, partner_key: str, po_number: str, lock: bool = False) -> dict | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM automation.partner_orders WHERE partner = %s AND po_number = %s"
            + (" FOR UPDATE" if lock else ""),
            (partner_key, po_number),
        ).fetchone()


def sale_for_po(client: Any, po_number: str, customer_id: str) -> dict[str, Any] | None:
    """The live Cin7 sale whose ExternalID is the PO number, read from Cin7 Core itself (not the cache, which may
    be behind). Only a sale of the same customer counts: two retailers may use the same PO number."""
    listed = client.get("saleList", {"ExternalID": po_number, "Limit": 100})
    headers = [
        sale for sale in (listed or {}).get("SaleList") or []
        if not customer_id or str(sale.get("CustomerID") or "").lower() == customer_id.lower()
    ]  # fmt: skip
    return existing_sale_for_po(headers, po_number)


def _sale_key(partner: PartnerConfig, po_number: str) -> str:
    return f"cin7.sale:{partner.instance}:{partner.key}:{po_number}"


# ---------------------------------------------------------------- 850 handler


def precheck_purchase_order(conn: psycopg.Connection, partner: PartnerConfig, po: PurchaseOrder) -> None:
    """Before anything in the file acts: an 850 must come from a trading partner that sends them, and name a
    customer we can find (a file that cannot be honoured is quarantined with the reason)."""
    if partner.kind != "trading" or not partner.exchanges("850"):
        raise UnmatchedDocument(f"850 from {partner.name}, which is not configured to send purchase orders")
    if not po.po_number:
        raise UnmatchedDocument("850 without a PO number (BEG03)")
    try:
        reference = customer_reference(po, partner)
    except TradingError as exc:
        raise UnmatchedDocument(str(exc)) from None
    ensure_partner_tables(conn)
    # Only a cache that knows customers can say one is missing; otherwise Cin7 Core is asked later.
    if _cache_has(conn, "customers", partner.instance) and _cached_customer(conn, partner.instance, reference) is None:
        raise UnmatchedDocument(
            f"PO {po.po_number}: Cin7 customer {reference!r} (partner {partner.key!r}) is not "
            f"in instance {partner.instance!r}"
        )


def handle_purchase_order(
    conn: psycopg.Connection, context: AutomationContext, partner: PartnerConfig, po: PurchaseOrder, file_id: int
) -> list[str]:
    """Make the PO's one Cin7 sale (or none, when it is rejected) and its 855; returns what each outbox item did.

    The same PO number again (the same file re-delivered, or a new file) finds the first one's row and only
    finishes what is outstanding: no second sale, no second 855."""
    ensure_partner_tables(conn)
    lock = f"gp.trading.po.{partner.key}.{po.po_number}"
    with advisory_lock(conn, lock, wait_seconds=context.lock_wait_seconds, raise_if_busy=True):
        row = _order_row(conn, partner.key, po.po_number)
        if row is not None:
            with conn.transaction():
                record_audit(
                    conn,
                    "trading.po_repeated",
                    actor=context.actor,
                    instance=partner.instance,
                    subject=po.po_number,
                    detail={
                        "partner": partner.key,
                        "file_id": file_id,
                        "first_file_id": row["file_id"],
                        "state": row["state"],
                    },
                )
        else:
            customer = _customer(conn, context, partner, po)
            adopted = _adopt_existing_sale(conn, context, partner, po, customer, file_id)
            if adopted is not None:
                return [adopted]
            _decide(conn, context, partner, po, customer, file_id)
        return advance_order(conn, context, partner, po.po_number)


def _adopt_existing_sale(
    conn: psycopg.Connection,
    context: AutomationContext,
    partner: PartnerConfig,
    po: PurchaseOrder,
    customer: Mapping[str, Any],
    file_id: int,
) -> str | None:
    """A sale with this PO's ExternalID that we did not make (entered by hand, another system): link it so its
    856 and 810 follow, make no second one, and tell someone (no 855 is sent for it)."""
    existing = sale_for_po(context.cin7(partner.instance), po.po_number, str(customer.get("ID") or ""))
    if existing is None:
        return None
    sale_id, number = str(existing.get("SaleID") or existing.get("ID")), str(existing.get("OrderNumber") or "")
    with conn.transaction():
        conn.execute(
            """INSERT INTO automation.partner_orders (partner, po_number, instance, sale_id, sale_order_number,
                                                      state, file_id)
               VALUES (%s, %s, %s, %s, %s, 'adopted', %s)""",
            (partner.key, po.po_number, partner.instance, sale_id, number, file_id),
        )
        record_audit(
            conn,
            "trading.po_adopted",
            actor=context.actor,
            instance=partner.instance,
            subject=sale_id,
            detail={"partner": partner.key, "po_number": po.po_number, "sale": number},
        )
    if context.notifier is not None:
        context.notifier.notify(
            f"PO {po.po_number} from {partner.name} already has a sale in Cin7 Core",
            f"Sale {number or sale_id} in instance {partner.instance} already carries ExternalID {po.po_number}. "
            "No second sale was made and no 855 was sent; its shipments and invoices will be sent as 856/810.",
            key=f"trading.po_adopted:{partner.key}:{po.po_number}",
            conn=conn,
        )
    return f"PO {po.po_number}: sale {number or sale_id} already in Cin7 Core, linked (no new sale, no 855)"


def _decide(
    conn: psycopg.Connection,
    context: AutomationContext,
    partner: PartnerConfig,
    po: PurchaseOrder,
    customer: Mapping[str, Any],
    file_id: int,
) -> None:
    """Decide the PO and write the decision down: with its outbox item when accepted, alone when rejected."""
    products = _products(conn, context, partner, po)
    matched = [m.product["ID"] for m in resolve_items(po, partner, products) if m.product is not None]
    available = _available(conn, context, partner, customer, [str(pid) for pid in matched])
    draft = sale_from_purchase_order(po, partner, customer, products, available=available)
    decisions = Jsonb([_decision_json(d) for d in draft.decisions], dumps=dumps_json)
    with conn.transaction():
        conn.execute(
            """INSERT INTO automation.partner_orders (partner, po_number, instance, state, decisions, problems,
                                                      file_id)
               VALUES (%s, %s, %s, %s, %s, %s, %s)""",
            (
                partner.key,
                po.po_number,
                partner.instance,
                "pending" if draft.accepted else "rejected",
                decisions,
                Jsonb(draft.problems),
                file_id,
            ),
        )
        record_audit(conn, "trading.po_accepted" if draft.accepted else "trading.po_rejected", actor=context.actor,
                     instance=partner.instance, subject=po.po_number,
                     detail={"partner": partner.key, "lines": [d.status for d in draft.decisions],
                             "problems": draft.problems})  # fmt: skip
        if draft.accepted:
            assert draft.sale is not None
            outbox.enqueue(conn, _sale_key(partner, po.po_number), CREATE_SALE, {
                "instance": partner.instance, "partner": partner.key, "po_number": po.po_number,
                "sale": draft.sale, "order_lines": draft.order_lines, "memo": draft.memo,
            }, instance=partner.instance, subject=po.po_number, actor=context.actor)  # fmt: skip


def advance_order(
    conn: psycopg.Connection, context: AutomationContext, partner: PartnerConfig, po_number: str
) -> list[str]:
    """Do what a PO still needs: create its sale (through the outbox), then queue and send its 855."""
    row = _order_row(conn, partner.key, po_number)
    if row is None:
        raise TradingError(f"partner {partner.key!r} has no PO {po_number} on record")
    outcomes: list[str] = []
    if row["state"] == "pending":
        item = outbox.run_item(
            conn,
            _sale_key(partner, po_number),
            CreateSaleHandler(context),
            context.policy,
            notifier=context.notifier,
            actor=context.actor,
        )
        outcomes.append(f"{item.key}: {item.outcome}")
        row = _order_row(conn, partner.key, po_number)
        if row["state"] == "pending":
            return outcomes  # waiting on the sale: the partner_documents job retries it, then sends the 855
    if row["state"] == "adopted" or not partner.exchanges("855"):
        return outcomes
    pending = PendingDocument(partner.key, "855", po_number, row["instance"], row["sale_id"], po_number)
    result = send_partner_document(conn, context, partner, pending)
    outcomes.append(f"{result.key}: {result.outcome or result.state}")
    return outcomes


handle_purchase_order.precheck = precheck_purchase_order  # type: ignore[attr-defined]

# Merge into `AutomationContext.extra_handlers` so `process_partner_file` takes 850s from trading partners.
PARTNER_SET_HANDLERS: dict[str, Any] = {"850": handle_purchase_order}


class CreateSaleHandler:
    """Creates the PO's sale in Cin7 Core and authorises its order. The sale's ExternalID is the PO number, so
    Cin7 itself says whether an earlier attempt got through: a sale found is finished (authorised), never
    made twice."""

    def __init__(self, context: AutomationContext) -> None:
        self.context = context

    def _existing(self, client: Any, payload: Mapping[str, Any]) -> dict[str, Any] | None:
        found = sale_for_po(client, payload["po_number"], str(payload["sale"].get("CustomerID") or ""))
        return None if found is None else client.get("sale", {"ID": found.get("SaleID") or found.get("ID")})

    def find_existing(self, item: outbox.OutboxItem) -> dict[str, Any] | None:
        p = item.payload
        sale = self._existing(self.context.cin7(p["instance"]), p)
        if sale is None or (sale.get("Order") or {}).get("Status") not in ("AUTHORISED",):
            return None  # perform() finishes a sale left unauthorised
        return self._record(item, sale)

    def perform(self, item: outbox.OutboxItem) -> dict[str, Any]:
        p = item.payload
        client = self.context.cin7(p["instance"])
        created = None
        try:
            sale = self._existing(client, p)
            if sale is None:
                sale = created = client.post("sale", p["sale"])
            if (sale.get("Order") or {}).get("Status") not in ("AUTHORISED",):
                client.post(
                    "sale/order",
                    {"SaleID": sale["ID"], "Status": "AUTHORISED", "Memo": p["memo"], "Lines": p["order_lines"]},
                )
                sale = client.get("sale", {"ID": sale["ID"]})
        except Cin7RequestError as exc:
            # Cin7 refused the request itself (unknown product, closed customer): retrying cannot help, and the
            # draft this attempt made is voided so nothing is left half-written.
            detail = f"Cin7 Core refused the sale for PO {p['po_number']}: {exc}"
            if created is not None:
                try:
                    client.delete("sale", {"ID": created["ID"], "Void": "true"})
                except Exception as void_error:  # still report the refusal, and what is left behind
                    detail += f"; the draft sale {created['ID']} could not be voided: {void_error}"
            raise outbox.PermanentError(detail) from exc
        return self._record(item, sale)

    def _record(self, item: outbox.OutboxItem, sale: Mapping[str, Any]) -> dict[str, Any]:
        p = item.payload
        number = str((sale.get("Order") or {}).get("SaleOrderNumber") or "")
        with psycopg.connect(self.context.database_url, autocommit=True) as conn:
            conn.execute(
                """UPDATE automation.partner_orders SET sale_id = %s, sale_order_number = %s, state = 'created',
                          updated_at = now()
                    WHERE partner = %s AND po_number = %s AND state = 'pending'""",
                (sale["ID"], number, p["partner"], p["po_number"]),
            )
        return {"sale_id": sale["ID"], "sale_order_number": number, "status": (sale.get("Order") or {}).get("Status")}


def partner_outbox_handlers(context: AutomationContext) -> dict[str, outbox.OutboxHandler]:
    """The outbox kinds this module adds (merge into the handlers the outbox retry uses)."""
    return {CREATE_SALE: CreateSaleHandler(context)}


# ---------------------------------------------------------------- outbound documents: what is waiting


@dataclass(frozen=True)
class PendingDocument:
    """One outbound document to write: an 855 (reference = PO number), an 856 (the fulfilment's TaskID), an
    810 (the invoice's TaskID). `retry_of` is the failed attempt's time when this is a retry."""

    partner: str
    set_id: str
    reference: str
    instance: str
    sale_id: str | None
    po_number: str
    retry_of: str = ""

    @property
    def outbox_key(self) -> str:
        return document_key(self.partner, self.set_id, self.reference)


def document_key(partner_key: str, set_id: str, reference: str) -> str:
    return f"edi.send:{partner_key}:{set_id}:{reference}"


@dataclass
class DocumentOutcome:
    partner: str
    set_id: str
    reference: str
    # queued (file stored, send item run) | failed (not buildable) | retry (Cin7 unreadable now) | skipped | locked
    state: str
    key: str
    reason: str = ""
    outcome: str | None = None  # what the send item did (performed, already_done, failed ...)
    file_name: str = ""

    def as_metadata(self) -> dict[str, Any]:
        return {
            "partner": self.partner,
            "set": self.set_id,
            "reference": self.reference,
            "state": self.state,
            "outcome": self.outcome or "",
            "file": self.file_name,
            "reason": self.reason,
        }


# A document is waiting unless a row says it was queued, or failed less than DOCUMENT_RETRY_AFTER ago.
_WAITING = """NOT EXISTS (SELECT 1 FROM automation.partner_documents d
                    WHERE d.partner = o.partner AND d.set_id = %(set)s AND d.reference = {ref}
                      AND (d.state <> 'failed' OR d.updated_at > now() - %(retry)s::interval))"""
_RETRY_OF = """(SELECT d.updated_at::text FROM automation.partner_documents d
                 WHERE d.partner = o.partner AND d.set_id = %(set)s AND d.reference = {ref})"""
_PENDING_SQL = {
    "855": """
        SELECT o.partner, o.po_number AS reference, o.instance, o.sale_id, o.po_number, {retry_of} AS retry_of
          FROM automation.partner_orders o
         WHERE o.partner = ANY(%(partners)s) AND o.state IN ('created', 'rejected') AND {waiting}
         ORDER BY o.created_at""",
    "856": """
        SELECT o.partner, t->>'TaskID' AS reference, o.instance, o.sale_id, o.po_number, {retry_of} AS retry_of
          FROM automation.partner_orders o
          JOIN erp_cache.sales s ON s.instance = o.instance AND s.id = o.sale_id AND s.deleted_at IS NULL
         CROSS JOIN LATERAL jsonb_array_elements(coalesce(s.payload->'Fulfilments', '[]')) t
         WHERE o.partner = ANY(%(partners)s) AND o.sale_id IS NOT NULL
           AND coalesce(t->>'FulFilmentStatus', '') <> 'VOIDED' AND t->'Ship'->>'Status' = ANY(%(shipped)s)
           AND {waiting}
         ORDER BY o.created_at, t->>'FulfillmentNumber'""",
    "810": """
        SELECT o.partner, i->>'TaskID' AS reference, o.instance, o.sale_id, o.po_number, {retry_of} AS retry_of
          FROM automation.partner_orders o
          JOIN erp_cache.sales s ON s.instance = o.instance AND s.id = o.sale_id AND s.deleted_at IS NULL
         CROSS JOIN LATERAL jsonb_array_elements(coalesce(s.payload->'Invoices', '[]')) i
         WHERE o.partner = ANY(%(partners)s) AND o.sale_id IS NOT NULL AND i->>'Status' = ANY(%(invoiced)s)
           AND {waiting}
         ORDER BY o.created_at, i->>'InvoiceNumber'""",
}
_PENDING_REF = {"855": "o.po_number", "856": "t->>'TaskID'", "810": "i->>'TaskID'"}


def pending_partner_documents(
    conn: psycopg.Connection, config: PlatformConfig, limit: int | None = None
) -> list[PendingDocument]:
    """The 855s, 856s and 810s not written yet (or failed more than `DOCUMENT_RETRY_AFTER` ago), oldest PO
    first: 855s for POs decided but not acknowledged; 856s for shipped, not voided fulfilments and 810s for
    authorised or paid invoices of the partners' sales in the cache."""
    ensure_partner_tables(conn)
    partners = trading_partners(config)
    has_sales = conn.execute("SELECT to_regclass('erp_cache.sales')").fetchone()[0] is not None
    found: list[PendingDocument] = []
    for set_id, sql in _PENDING_SQL.items():
        keys = [partner.key for partner in partners if partner.exchanges(set_id)]
        if not keys or (set_id != "855" and not has_sales):
            continue
        ref = _PENDING_REF[set_id]
        query = sql.format(waiting=_WAITING.format(ref=ref), retry_of=_RETRY_OF.format(ref=ref))
        params = {
            "set": set_id,
            "partners": keys,
            "retry": DOCUMENT_RETRY_AFTER,
            "shipped": list(SHIPPED_STATUSES),
            "invoiced": list(INVOICED_STATUSES),
        }
        with conn.cursor(row_factory=dict_row) as cur:
            for row in cur.execute(query, params).fetchall():
                found.append(
                    PendingDocument(
                        row["partner"],
                        set_id,
                        row["reference"],
                        row["instance"],
                        row["sale_id"],
                        row["po_number"],
                        row["retry_of"] or "",
                    )
                )
    return found[:limit] if limit is not None else found


# ---------------------------------------------------------------- outbound documents: writing and sending


def _document_row(conn: psycopg.Connection, partner_key: str, set_id: str, reference: str) -> dict | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM automation.partner_documents WHERE partner = %s AND set_id = %s AND reference = %s",
            (partner_key, set_id, reference),
        ).fetchone()


def _next_sscc_serial(conn: psycopg.Connection, partner: PartnerConfig) -> int:
    """The next serial of the partner's GS1 prefix (shared by every partner using that prefix: an SSCC names one
    carton for ever). Allocated in the caller's transaction."""
    prefix = partner.gs1_company_prefix or ""
    serial = conn.execute(
        """INSERT INTO automation.sscc_serials (company_prefix, extension_digit, last_serial) VALUES (%s, %s, 1)
           ON CONFLICT (company_prefix, extension_digit)
           DO UPDATE SET last_serial = automation.sscc_serials.last_serial + 1
           RETURNING last_serial""",
        (prefix, partner.sscc_extension_digit),
    ).fetchone()[0]
    if serial >= 10 ** (16 - len(prefix)):
        raise TradingError(
            f"SSCC serials of GS1 prefix {prefix} (extension {partner.sscc_extension_digit}) are "
            "used up: set another sscc_extension_digit"
        )
    return int(serial)


def _sscc_serials(conn: psycopg.Connection, partner: PartnerConfig) -> Iterator[int]:
    while True:  # build_856 takes one per box, only as many as it needs
        yield _next_sscc_serial(conn, partner)


@dataclass
class _Prepared:
    """What to write for one document, read from Cin7 Core outside any transaction; `build(conn)` runs inside
    the transaction that stores the file (it may allocate SSCC serials there)."""

    build: Any  # Callable[[psycopg.Connection], tuple[list[Document], str, dict]]: documents, file reference, detail
    skip: str = ""


def _sale_products(conn: psycopg.Connection, instance: str, sale: Mapping[str, Any]) -> list[dict[str, Any]]:
    ids = sorted({str(line.get("ProductID")) for line in (sale.get("Order") or {}).get("Lines") or []})
    return cache_payloads(conn, "products", instance, "AND id = ANY(%s)", (ids,))


def _prepare(
    conn: psycopg.Connection, context: AutomationContext, partner: PartnerConfig, document: PendingDocument
) -> _Prepared:
    order = _order_row(conn, partner.key, document.po_number)
    if order is None:
        raise TradingError(f"partner {partner.key!r} has no PO {document.po_number} on record")
    po = stored_purchase_order(conn, order["file_id"], document.po_number) if order["file_id"] else None
    if document.set_id == "855":
        if po is None:
            raise TradingError(f"PO {document.po_number}: the 850 is not kept, so no 855 can echo it")
        decisions = [_decision_from_json(row) for row in order["decisions"]]
        if order["state"] not in ("created", "acknowledged", "rejected"):
            return _Prepared(None, f"PO {document.po_number} is {order['state']}: no 855 yet")
        ack = build_855(po, decisions, order["sale_order_number"] or "")
        return _Prepared(
            lambda _conn: (
                [ack],
                document.po_number,
                {"ack_type": ack.ack_type, "lines": [d.status for d in decisions]},
            )
        )
    sale = context.cin7(order["instance"]).get("sale", {"ID": order["sale_id"]})
    products = _sale_products(conn, order["instance"], sale)
    if document.set_id == "856":
        task = next((t for t in sale.get("Fulfilments") or [] if t.get("TaskID") == document.reference), None)
        if (
            task is None
            or task.get("FulFilmentStatus") == "VOIDED"
            or (task.get("Ship") or {}).get("Status") not in SHIPPED_STATUSES
        ):
            return _Prepared(None, f"fulfilment {document.reference} is not shipped in Cin7 Core (any more)")

        def build_asn(conn: psycopg.Connection) -> tuple[list[Document], str, dict]:
            asn = build_856(
                sale, task, partner, document.po_number, _sscc_serials(conn, partner), po=po, products=products
            )
            shipped: dict[str, str] = {}
            for pack in asn.orders[0].packs:
                for item in pack.items:
                    shipped[item.line_number] = str(Decimal(shipped.get(item.line_number, "0")) + item.quantity_shipped)
            return (
                [asn],
                asn.shipment_id,
                {
                    "ssccs": [p.sscc for p in asn.orders[0].packs],
                    "shipped": shipped,
                    "tracking": asn.shipment.tracking_number,
                },
            )

        return _Prepared(build_asn)
    if document.set_id == "810":
        invoice = next((i for i in sale.get("Invoices") or [] if i.get("TaskID") == document.reference), None)
        if invoice is None or invoice.get("Status") not in INVOICED_STATUSES:
            return _Prepared(None, f"invoice {document.reference} is not authorised in Cin7 Core (any more)")
        built = build_810(sale, invoice, document.po_number, po=po, products=products)
        return _Prepared(
            lambda _conn: (
                [built],
                built.invoice_number,
                {"total": str(built.total_amount), "invoice": built.invoice_number},
            )
        )
    raise TradingError(f"set {document.set_id} is not a document of a partner's order")


def _queue_file(
    conn: psycopg.Connection,
    context: AutomationContext,
    partner: PartnerConfig,
    document: PendingDocument,
    documents: list[Document],
    file_reference: str,
    detail: Mapping[str, Any],
) -> str:
    """Inside the caller's transaction: write the interchange, keep the file, record the document and enqueue
    its send. Returns the file name."""
    content = exchange.write_for_partner(conn, partner, documents).encode()
    name = exchange.outbound_file_name(partner, document.set_id, file_reference)
    stored = exchange.store_file(conn, partner.key, "out", name, content)
    conn.execute(
        """INSERT INTO automation.partner_documents (partner, set_id, reference, instance, sale_id, po_number,
                                                     file_id, outbox_key, state, reason, detail)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'queued', NULL, %s)
           ON CONFLICT (partner, set_id, reference) DO UPDATE
              SET file_id = excluded.file_id, outbox_key = excluded.outbox_key, state = 'queued', reason = NULL,
                  detail = excluded.detail, updated_at = now()""",
        (
            partner.key,
            document.set_id,
            document.reference,
            document.instance,
            document.sale_id,
            document.po_number,
            stored.id,
            document.outbox_key,
            Jsonb(dict(detail), dumps=dumps_json),
        ),
    )
    outbox.enqueue(conn, document.outbox_key, SEND_EDI,
                   {"partner": partner.key, "file_id": stored.id, "file_name": name, "instance": document.instance,
                    "sale_id": document.sale_id},
                   instance=document.instance, subject=document.sale_id or document.reference,
                   actor=context.actor)  # fmt: skip
    if document.set_id == "855":
        conn.execute(
            "UPDATE automation.partner_orders SET state = 'acknowledged', updated_at = now() "
            "WHERE partner = %s AND po_number = %s AND state = 'created'",
            (partner.key, document.po_number),
        )
    record_audit(
        conn,
        f"trading.{document.set_id}_queued",
        actor=context.actor,
        instance=document.instance,
        subject=document.sale_id or document.reference,
        outbox_key=document.outbox_key,
        detail={"partner": partner.key, "file": name, **detail},
    )
    return name


def _record_failure(
    conn: psycopg.Connection, context: AutomationContext, partner: PartnerConfig, document: PendingDocument, reason: str
) -> None:
    with conn.transaction():
        conn.execute(
            """INSERT INTO automation.partner_documents (partner, set_id, reference, instance, sale_id, po_number,
                                                         state, reason)
               VALUES (%s, %s, %s, %s, %s, %s, 'failed', %s)
               ON CONFLICT (partner, set_id, reference) DO UPDATE SET state = 'failed', reason = excluded.reason,
                          updated_at = now()
               WHERE automation.partner_documents.state = 'failed'""",
            (
                partner.key,
                document.set_id,
                document.reference,
                document.instance,
                document.sale_id,
                document.po_number,
                reason,
            ),
        )
        record_audit(
            conn,
            f"trading.{document.set_id}_failed",
            actor=context.actor,
            instance=document.instance,
            subject=document.sale_id or document.reference,
            detail={"partner": partner.key, "reason": reason},
        )
    if context.notifier is not None:
        context.notifier.notify(
            f"{document.set_id} for {partner.name} could not be written",
            f"The {document.set_id} for PO {document.po_number} ({document.reference}) to {partner.name} "
            f"({partner.key}) was not sent.\nReason: {reason}\nIt is tried again after {DOCUMENT_RETRY_AFTER}; "
            "fix the cause (partner settings, the sale in Cin7 Core) meanwhile.",
            key=f"trading.document_failed:{partner.key}:{document.set_id}:{document.reference}",
            conn=conn,
        )


def _run_send(conn: psycopg.Connection, context: AutomationContext, key: str) -> outbox.OutboxItem:
    return outbox.run_item(
        conn, key, context.handlers()[SEND_EDI], context.policy, notifier=context.notifier, actor=context.actor
    )


def send_partner_document(
    conn: psycopg.Connection, context: AutomationContext, partner: PartnerConfig, document: PendingDocument
) -> DocumentOutcome:
    """Write one 855, 856 or 810 once (see the module docstring) and run its send; safe to repeat."""
    ensure_partner_tables(conn)
    if document.partner != partner.key:
        raise ValueError(f"document for partner {document.partner!r} sent with partner {partner.key!r}")
    key = document.outbox_key
    lock = f"gp.trading.doc.{partner.key}.{document.set_id}.{document.reference}"
    with advisory_lock(conn, lock, wait_seconds=context.lock_wait_seconds) as held:
        if not held:
            return DocumentOutcome(
                partner.key, document.set_id, document.reference, "locked", key, "another run is writing this document"
            )
        row = _document_row(conn, partner.key, document.set_id, document.reference)
        if row is None or row["state"] == "failed":
            try:
                prepared = _prepare(conn, context, partner, document)
                if prepared.skip:
                    return DocumentOutcome(
                        partner.key, document.set_id, document.reference, "skipped", key, prepared.skip
                    )
                with conn.transaction():
                    documents, reference, detail = prepared.build(conn)
                    _queue_file(conn, context, partner, document, documents, reference, detail)
            except Cin7Error as exc:
                # Cin7 Core could not be read now: nothing is written, the next run tries again.
                return DocumentOutcome(partner.key, document.set_id, document.reference, "retry", key, str(exc))
            except (TradingError, ValueError) as exc:
                _record_failure(conn, context, partner, document, str(exc))
                return DocumentOutcome(partner.key, document.set_id, document.reference, "failed", key, str(exc))
        item = _run_send(conn, context, key)
        return DocumentOutcome(
            partner.key,
            document.set_id,
            document.reference,
            "queued",
            key,
            item.last_error or "",
            item.outcome,
            item.payload.get("file_name", ""),
        )


def send_pending_documents(
    conn: psycopg.Connection, context: AutomationContext, limit: int | None = None
) -> list[DocumentOutcome]:
    """The `partner_documents` job's work: retry due sale creations, then write and send every pending 855, 856
    and 810."""
    ensure_partner_tables(conn)
    outbox.run_due(
        conn, partner_outbox_handlers(context), context.policy, notifier=context.notifier, actor=context.actor
    )
    outcomes = []
    for document in pending_partner_documents(conn, context.config, limit):
        outcomes.append(send_partner_document(conn, context, context.config.partner(document.partner), document))
    return outcomes


# ---------------------------------------------------------------- 846


@dataclass
class FeedOutcome:
    partner: str
    reference: str  # the hour it belongs to, YYYYMMDDHH (UTC)
    state: str  # queued | failed | locked
    key: str
    items: int = 0
    total_quantity: Decimal = Decimal(0)
    quantities: dict[str, dict[str, str]] = field(default_factory=dict)  # location ("*" = all) -> SKU -> quantity
    outcome: str | None = None
    file_name: str = ""
    reason: str = ""

    def as_metadata(self) -> dict[str, Any]:
        return {
            "partner": self.partner,
            "hour": self.reference,
            "state": self.state,
            "items": self.items,
            "quantity": str(self.total_quantity),
            "outcome": self.outcome or "",
            "file": self.file_name,
            "reason": self.reason,
        }


def feed_reference(now: datetime) -> str:
    """The hour a feed belongs to (UTC): a rerun of the same schedule tick sends the same file once."""
    moment = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y%m%d%H")


def inventory_feed(
    conn: psycopg.Connection, partner: PartnerConfig, now: datetime
) -> tuple[list[Document], dict[str, dict[str, str]]]:
    """The partner's 846s from the cache, and what they offer per location and SKU."""
    products = cache_payloads(conn, "products", partner.instance)
    if not products:
        raise TradingError(
            f"the cache has no products for instance {partner.instance!r}: sync erp_cache.products "
            f"before sending partner {partner.key!r} its 846"
        )
    stock = cache_payloads(conn, "product_availability", partner.instance)
    advices = build_846_feed(stock, partner, products, now=now)
    quantities: dict[str, dict[str, str]] = {}
    for advice in advices:
        where = next((party.name for party in advice.parties if party.role == "WH"), "*")
        offered = quantities.setdefault(where, {})
        for item in advice.items:
            name = item.product_ids.get("VN") or next(iter(item.product_ids.values()))
            offered[name] = str(item.quantities[0].quantity)
    return list(advices), quantities


def send_inventory_feed(
    conn: psycopg.Connection, context: AutomationContext, partner: PartnerConfig, now: datetime | None = None
) -> FeedOutcome:
    """Write the partner's 846 for this hour once (file, row and outbox item in one transaction) and send it."""
    ensure_partner_tables(conn)
    now = now or datetime.now(UTC)
    reference = feed_reference(now)
    document = PendingDocument(partner.key, "846", reference, partner.instance, None, "")
    key = document.outbox_key
    with advisory_lock(
        conn, f"gp.trading.doc.{partner.key}.846.{reference}", wait_seconds=context.lock_wait_seconds
    ) as held:
        if not held:
            return FeedOutcome(partner.key, reference, "locked", key, reason="another run is writing this feed")
        row = _document_row(conn, partner.key, "846", reference)
        if row is None or row["state"] == "failed":
            try:
                with conn.transaction():
                    advices, quantities = inventory_feed(conn, partner, now)
                    _queue_file(conn, context, partner, document, advices, reference, {"quantities": quantities})
            except (TradingError, ValueError) as exc:
                _record_failure(conn, context, partner, document, str(exc))
                return FeedOutcome(partner.key, reference, "failed", key, reason=str(exc))
            row = _document_row(conn, partner.key, "846", reference)
        quantities = row["detail"].get("quantities") or {}
        item = _run_send(conn, context, key)
        values = [Decimal(q) for offered in quantities.values() for q in offered.values()]
        return FeedOutcome(
            partner.key,
            reference,
            "queued",
            key,
            sum(len(o) for o in quantities.values()),
            sum(values, Decimal(0)),
            quantities,
            item.outcome,
            item.payload.get("file_name", ""),
            item.last_error or "",
        )


def send_inventory_feeds(
    conn: psycopg.Connection, context: AutomationContext, now: datetime | None = None
) -> list[FeedOutcome]:
    """Every trading partner's 846 for this hour."""
    return [send_inventory_feed(conn, context, partner, now) for partner in trading_partners(context.config, "846")]
