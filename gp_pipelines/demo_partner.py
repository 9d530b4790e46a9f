"""The trading-partner act of `make demo`: a retailer (the partner sandbox) sends a purchase order, and it plays
through to its sale, 855, 856 and 810, plus the 846 feed, each answered by the retailer's 997.

It drives the same domain steps the Dagster jobs run (`process_partner_file`, `send_pending_documents`,
`send_inventory_feed`); only the warehouse work (pick, pack, ship, invoice in Cin7 Core) is done here by hand,
as a merchant's staff would."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from gp_pipelines.automation import partner_flows
from gp_pipelines.automation.context import AutomationContext, context_from_environment
from gp_pipelines.automation.inbound import process_inbox
from gp_pipelines.automation.trading import TradingError, available_quantities
from gp_pipelines.cin7.entities import ENTITIES
from gp_pipelines.cin7.sync import sync_entity
from gp_pipelines.config import PartnerConfig, PlatformConfig
from gp_pipelines.sandbox.partner import PartnerItem, PartnerSandbox, Receipt, items_from_products

DEMO_TRACKING = "SNDL4006123456"
DEMO_PARTNER = "demo_retail"
DEMO_GS1_PREFIX = "0614141"  # GS1's own example prefix


@dataclass
class PartnerPlay:
    """What happened: the PO, its sale, and per document set whether the retailer accepted it."""

    partner: str
    po_number: str
    sale_id: str = ""
    sale_order_number: str = ""
    accepted: dict[str, bool] = field(default_factory=dict)  # 855/856/810/846/997 -> accepted by the retailer
    problems: list[str] = field(default_factory=list)
    interchanges: list[dict[str, Any]] = field(default_factory=list)  # automation.interchange_status rows

    @property
    def ok(self) -> bool:
        return bool(self.sale_id) and all(self.accepted.values()) and not self.problems


def demo_items(conn: psycopg.Connection, partner: PartnerConfig, count: int = 8, minimum: int = 30) -> list[Any]:
    """A retailer catalogue of well-stocked products at the partner's location, priced at its tier."""
    if not partner.price_tier:
        raise TradingError(f"partner {partner.key!r} needs a price_tier for the demo catalogue")
    products = partner_flows.cache_payloads(conn, "products", partner.instance)
    stock = partner_flows.cache_payloads(conn, "product_availability", partner.instance)
    if not products:
        raise TradingError(f"the cache has no products for instance {partner.instance!r}: load the cache first")
    available = available_quantities(stock, partner, location=partner.location)
    carried = [p for p in products if p.get("Status") == "Active" and available.get(p["ID"], 0) >= minimum]
    return items_from_products(carried[:count], partner.price_tier)


def _accepted(play: PartnerPlay, receipts: list[Receipt]) -> None:
    for receipt in receipts:
        for set_id in receipt.set_ids or ("?",):
            play.accepted[set_id] = play.accepted.get(set_id, True) and receipt.accepted
        play.problems += [f"{receipt.file_name}: {problem}" for problem in receipt.problems]


def play_partner_order(
    database_url: str,
    context: AutomationContext,
    partner: PartnerConfig,
    retailer: PartnerSandbox,
    *,
    lines: int = 2,
    say: Callable[[str], None] = print,
) -> PartnerPlay:
    """Play one PO through (the cache must hold the partner instance's products, customers, stock and sales):

    1. the retailer sends an 850; the inbound pipeline answers a 997, creates and authorises the sale, sends
       the 855;
    2. the sale is picked, packed in one box per line and shipped by the partner's first carrier; the sales
       cache is synced and the pending documents job sends the 856;
    3. the invoice is authorised; sync; the 810 goes out; then the 846 feed from the cache;
    4. the retailer reads everything and answers with 997s, which the inbound pipeline matches to our groups.
    """
    context = dataclasses.replace(context, extra_handlers={**context.extra_handlers,
                                                           **partner_flows.PARTNER_SET_HANDLERS})  # fmt: skip
    client = context.cin7(partner.instance)
    with psycopg.connect(database_url, autocommit=True) as conn:
        partner_flows.ensure_partner_tables(conn)
        items = demo_items(conn, partner)
        (po,) = retailer.send_purchase_orders(1, items, lines=lines)
        play = PartnerPlay(partner.key, po.po_number)
        say(f"{retailer.name} sent PO {po.po_number} ({len(po.lines)} lines)")
        for result in process_inbox(conn, context, partner):
            say(f"  {result.file_name}: {result.state} {result.reason}".rstrip())
        with conn.cursor(row_factory=dict_row) as cur:
            order = cur.execute("SELECT * FROM automation.partner_orders WHERE partner = %s AND po_number = %s",
                                (partner.key, po.po_number)).fetchone()  # fmt: skip
        if order is None or not order["sale_id"]:
            play.problems.append(f"PO {po.po_number} made no sale (state {order and order['state']})")
            return play
        play.sale_id, play.sale_order_number = order["sale_id"], order["sale_order_number"] or ""
        say(f"  sale {play.sale_order_number} authorised in Cin7 Core (ExternalID {po.po_number})")
        _accepted(play, retailer.process_once())

        sale = client.get("sale", {"ID": play.sale_id})
        carrier = next(iter(partner.carrier_scac), "")
        client.post("sale/fulfilment/pick", {"TaskID": play.sale_id, "AutoPickMode": "AUTOPICK"})
        boxes = [{"ProductID": line["ProductID"], "Box": f"Box {n}"}
                 for n, line in enumerate(sale["Order"]["Lines"], start=1)]  # fmt: skip
        client.post("sale/fulfilment/pack", {"TaskID": play.sale_id, "Status": "AUTHORISED", "Lines": boxes})
        client.post("sale/fulfilment/ship", {"TaskID": play.sale_id, "Status": "AUTHORISED", "Lines": [
            {"Carrier": carrier, "Box": ", ".join(b["Box"] for b in boxes), "TrackingNumber": DEMO_TRACKING,
             "IsShipped": True}]})  # fmt: skip
        say(f"  shipped by {carrier} in {len(boxes)} box(es)")
        _send_documents(database_url, conn, context, client, partner, say)

        client.post("sale/invoice", {"SaleID": play.sale_id, "Status": "AUTHORISED"})
        total = Decimal(str(client.get("sale", {"ID": play.sale_id})["Invoices"][0]["Total"]))
        say(f"  invoice authorised: {total}")
        _send_documents(database_url, conn, context, client, partner, say)

        feed = partner_flows.send_inventory_feed(conn, context, partner, datetime.now(UTC))
        say(f"  846: {feed.items} items, {feed.total_quantity} units offered ({feed.state} {feed.outcome or ''})")
        retailer.add_items(_catalogue(partner_flows.cache_payloads(conn, "products", partner.instance)))
        _accepted(play, retailer.process_once())
        for result in process_inbox(conn, context, partner):  # the retailer's 997s for our groups
            say(f"  {result.file_name}: {', '.join(result.documents) or result.state}")
        with conn.cursor(row_factory=dict_row) as cur:
            play.interchanges = cur.execute(
                "SELECT * FROM automation.interchange_status WHERE partner = %s AND direction = 'out' "
                "ORDER BY created_at", (partner.key,)).fetchall()  # fmt: skip
    verdict = ", ".join(f"{set_id} {'accepted' if ok else 'REJECTED'}" for set_id, ok in sorted(play.accepted.items()))
    say(f"  {retailer.name}: {verdict}")
    return play


def _send_documents(
    database_url: str,
    conn: psycopg.Connection,
    context: AutomationContext,
    client: Any,
    partner: PartnerConfig,
    say: Callable[[str], None],
) -> None:
    sync_entity(database_url, client, partner.instance, ENTITIES["sales"])
    for outcome in partner_flows.send_pending_documents(conn, context):
        say(f"  {outcome.set_id} {outcome.file_name or outcome.reference}: {outcome.state} {outcome.reason}".rstrip())


def _catalogue(products: list[dict[str, Any]]) -> list[PartnerItem]:
    """Every product by barcode and SKU: the retailer knows whatever an 846 may name."""
    items = []
    for product in products:
        ids = {"VN": str(product.get("SKU") or "")}
        barcode = str(product.get("Barcode") or "")
        if barcode.isdigit():
            ids["EN"] = barcode
        items.append(PartnerItem({k: v for k, v in ids.items() if v}, Decimal(0)))
    return items


def demo_partner(
    conn: psycopg.Connection, retailer: PartnerSandbox, instance: str, key: str = DEMO_PARTNER
) -> PartnerConfig:
    """A trading partner for the retailer sandbox, from what the cache of `instance` holds: its first active
    customer, the location with the most stock, the Wholesale tier (or the first tier the products have)."""
    customers = partner_flows.cache_payloads(conn, "customers", instance, "ORDER BY payload->>'Name'")
    customer = next((c for c in customers if c.get("Status") == "Active"), None)
    if customer is None:
        raise TradingError(f"the cache has no active customer for instance {instance!r}: load the cache first")
    row = conn.execute(
        "SELECT payload->>'Location' FROM erp_cache.product_availability WHERE instance = %s AND deleted_at IS NULL "
        "GROUP BY 1 ORDER BY sum((payload->>'Available')::numeric) DESC LIMIT 1", (instance,)).fetchone()  # fmt: skip
    products = partner_flows.cache_payloads(conn, "products", instance)
    tiers = [tier for p in products[:1] for tier in (p.get("PriceTiers") or {})]
    tier = "Wholesale" if "Wholesale" in tiers else (tiers[0] if tiers else "Tier 1")
    return PartnerConfig(**retailer.partner_entry(
        key, instance, customer=customer["Name"], price_tier=tier, location=row[0] if row else None,
        gs1_company_prefix=DEMO_GS1_PREFIX, carrier_scac={"Sendle": "SNDL"}, ack_overdue_minutes=60,
    ))  # fmt: skip


def run_partner_demo(
    config: PlatformConfig,
    database_url: str,
    root: str | Path,
    *,
    instance: str | None = None,
    seed: int | None = None,
    say: Callable[[str], None] = print,
) -> PartnerPlay:
    """The whole act for `make demo`, once the cache is loaded: a retailer sandbox under `root`, a trading partner
    for it (added to `config`), and one PO played through (`play_partner_order`). `seed` defaults to the clock, so
    a rerun on the same database sends new PO numbers."""
    instance = instance or config.instance_keys[0]
    seed = int(time.time()) % 100_000 if seed is None else seed
    retailer = PartnerSandbox(root, "RETAILSBX", "GPPIPELINES", seed=seed, name="Sandbox Retail")
    with psycopg.connect(database_url, autocommit=True) as conn:
        partner = demo_partner(conn, retailer, instance)
    others = [p for p in config.partners if p.key != partner.key]
    config = config.model_copy(update={"partners": [*others, partner]})
    say(f"\nTrading partner {partner.name} ({partner.key}, instance {instance}, customer {partner.customer}), "
        f"files under {retailer.root}")  # fmt: skip
    with context_from_environment(config, database_url, actor="demo", environ=os.environ) as context:
        return play_partner_order(database_url, context, partner, retailer, say=say)
