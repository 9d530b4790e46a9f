"""Issue #8 end to end over real HTTP and files: the retailer sandbox's 850s go through the inbound pipeline into
the Cin7 Core sandbox (one authorised sale per PO, or none), and the 855, 856, 810 and 846 we send pass the
retailer's strict intake; its 997s mark our interchanges accepted."""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest
from psycopg.rows import dict_row

from gp_pipelines.assets.trading import (
    PARTNER_INTERCHANGES_ASSET,
    acknowledgements_in_order,
    build_trading_definitions,
    partner_interchanges,
)
from gp_pipelines.automation import exchange, trading
from gp_pipelines.automation import partner_flows as flows
from gp_pipelines.automation.context import AutomationContext
from gp_pipelines.automation.inbound import process_inbox, process_partner_file
from gp_pipelines.automation.outbox import RetryPolicy
from gp_pipelines.cin7.client import Cin7Client
from gp_pipelines.cin7.entities import ENTITIES
from gp_pipelines.cin7.errors import Cin7RequestError, Cin7ServerError
from gp_pipelines.cin7.limiter import LocalRateLimiter
from gp_pipelines.cin7.store import ensure_cache_schema
from gp_pipelines.cin7.sync import sync_entity
from gp_pipelines.config import InstanceConfig, PartnerConfig, PlatformConfig, config_to_yaml
from gp_pipelines.connectors.transport import transport_for
from gp_pipelines.demo_partner import run_partner_demo
from gp_pipelines.edi.models import OrderLine, Party, PurchaseOrder, PurchaseOrderAck
from gp_pipelines.edi.writer import write_interchange
from gp_pipelines.jobs.trading import INVENTORY_FEED_JOB, PARTNER_DOCUMENTS_JOB
from gp_pipelines.resources.automation import AutomationResource
from gp_pipelines.resources.cin7 import Cin7ApplicationKey, Cin7Resource
from gp_pipelines.resources.database import PostgresResource
from gp_pipelines.resources.shopify import ShopifyResource
from gp_pipelines.sandbox.partner import PartnerItem, PartnerSandbox, check_digit_ok, items_from_products
from gp_pipelines.sensors.trading import partner_documents_sensor
from tests.cache.helpers import FAST_RETRY
from tests.trading.conftest import GS1_PREFIX, NOW, partner_config

LOCATION = "Main Warehouse"
CUSTOMER = "Wattle Co-op 8"
CACHED = ("products", "customers", "product_availability", "sales")


class RecordingNotifier:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def notify(self, subject: str, body: str, *, key: str, conn: Any = None) -> None:
        self.calls.append((subject, body, key))


@pytest.fixture(scope="module")
def client(cin7) -> Iterator[Cin7Client]:
    instance = next(i for i in cin7.instances if i.key == "au")
    with Cin7Client(cin7.base_url, instance.account_id, list(instance.application_keys), instance="au",
                    retry=FAST_RETRY, limiter=LocalRateLimiter(10**9)) as client:  # fmt: skip
        yield client


@pytest.fixture(scope="module")
def cache_url(module_database_url: str, client: Cin7Client) -> str:
    ensure_cache_schema(module_database_url)
    for name in CACHED:
        sync_entity(module_database_url, client, "au", ENTITIES[name])
    return module_database_url


@pytest.fixture(scope="module")
def catalogue(cache_url: str) -> dict[str, Any]:
    """What the retailer orders: eight well-stocked products by barcode at their Wholesale price."""
    with psycopg.connect(cache_url) as conn:
        products = [row[0] for row in conn.execute("SELECT payload FROM erp_cache.products WHERE instance = 'au'")]
        stock = [row[0] for row in conn.execute("SELECT payload FROM erp_cache.product_availability "
                                                "WHERE instance = 'au'")]  # fmt: skip
    available = trading.available_quantities(stock, partner_config(), LOCATION)
    carried = [p for p in products if p["Status"] == "Active" and available.get(p["ID"], 0) >= 30][:8]
    assert len(carried) == 8
    return {"products": products, "carried": carried, "items": items_from_products(carried, "Wholesale"),
            "skus": sorted(p["SKU"] for p in carried)}  # fmt: skip


def _partner(retailer: PartnerSandbox, key: str = "retail", **overrides: Any) -> PartnerConfig:
    settings: dict[str, Any] = {
        "customer": CUSTOMER, "price_tier": "Wholesale", "location": LOCATION, "gs1_company_prefix": GS1_PREFIX,
        "carrier_scac": {"Sendle": "SNDL", "UPS": "UPSN"}, "ack_overdue_minutes": 60,
    }  # fmt: skip
    return PartnerConfig(**retailer.partner_entry(key, "au", **{**settings, **overrides}))


@pytest.fixture
def partner(retailer: PartnerSandbox, catalogue: dict[str, Any], request: pytest.FixtureRequest) -> PartnerConfig:
    # `retailer` is the conftest's: a folder and a seed (so PO numbers) of its own per test. A partner key per
    # test too: pending documents of one test never go to another test's retailer.
    key = f"r{zlib.crc32(request.node.name.encode()) % 10**8}"
    return _partner(retailer, key, inventory={"skus": catalogue["skus"], "safety_buffer": "10%"})


def _context(cin7, client: Cin7Client, cache_url: str, partner: PartnerConfig) -> AutomationContext:
    instance = next(i for i in cin7.instances if i.key == "au")
    config = PlatformConfig(
        reporting_currency="AUD", partners=[partner],
        instances=[InstanceConfig(key="au", name="AU", account_id=instance.account_id, base_url=cin7.base_url,
                                  application_key_env=["GP_TEST_AU_KEY"])],
    )  # fmt: skip
    transports = {partner.key: transport_for(partner.transport, {}, partner=partner.key)}
    return AutomationContext(
        config=config, database_url=cache_url, cin7=lambda _instance: client, transport=transports.__getitem__,
        policy=RetryPolicy(base_seconds=0.01, max_seconds=0.02), notifier=RecordingNotifier(), actor="test",
        lock_wait_seconds=5, extra_handlers=dict(flows.PARTNER_SET_HANDLERS),
    )  # fmt: skip


@pytest.fixture
def context(cin7, client, cache_url, partner) -> AutomationContext:
    return _context(cin7, client, cache_url, partner)


@pytest.fixture
def conn(cache_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(cache_url, autocommit=True) as conn:
        yield conn


def _sales_for(client: Cin7Client, po_number: str) -> list[dict[str, Any]]:
    return client.get("saleList", {"ExternalID": po_number, "Limit": 100})["SaleList"]


def _sale_count(client: Cin7Client) -> int:
    return int(client.get("saleList", {"Limit": 1})["Total"])


def _order(conn: psycopg.Connection, partner: PartnerConfig, po_number: str) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM automation.partner_orders WHERE partner = %s AND po_number = %s",
                           (partner.key, po_number)).fetchone()  # fmt: skip


def _receipts(retailer: PartnerSandbox) -> dict[str, Any]:
    """What the retailer made of the files we left it, by set (each must be accepted)."""
    receipts = retailer.process_once()
    for receipt in receipts:
        assert receipt.accepted, (receipt.file_name, receipt.problems)
    return {receipt.set_id: receipt for receipt in receipts}


def _acks_back(conn, context, partner) -> list[str]:
    """The retailer's 997s through the inbound pipeline: each must match a group we sent."""
    results = process_inbox(conn, context, partner)
    assert results and all(r.state == "processed" for r in results), [(r.state, r.reason) for r in results]
    return [document for result in results for document in result.documents]


def _interchange_states(conn, partner: PartnerConfig) -> dict[str, str]:
    rows = conn.execute("SELECT sets, state FROM automation.interchange_status WHERE partner = %s "
                        "AND direction = 'out' AND functional_id <> 'FA'", (partner.key,)).fetchall()  # fmt: skip
    return dict(rows)


def _place(conn, context, partner, retailer, items, **options: Any):
    (po,) = retailer.send_purchase_orders(1, items, **options)
    results = process_inbox(conn, context, partner)
    assert [(r.state, r.reason) for r in results] == [("processed", "")]
    return po, results[0]


def _ship(client: Cin7Client, sale_id: str, carrier: str = "Sendle") -> dict[str, Any]:
    sale = client.get("sale", {"ID": sale_id})
    client.post("sale/fulfilment/pick", {"TaskID": sale_id, "AutoPickMode": "AUTOPICK"})
    boxes = [{"ProductID": line["ProductID"], "Box": f"Box {n}"} for n, line in enumerate(sale["Order"]["Lines"], 1)]
    client.post("sale/fulfilment/pack", {"TaskID": sale_id, "Status": "AUTHORISED", "Lines": boxes})
    client.post("sale/fulfilment/ship", {"TaskID": sale_id, "Status": "AUTHORISED", "Lines": [
        {"Carrier": carrier, "Box": ", ".join(b["Box"] for b in boxes), "TrackingNumber": "SNDL4006123456",
         "IsShipped": True}]})  # fmt: skip
    return client.get("sale", {"ID": sale_id})


def _sync_sales(cache_url: str, client: Cin7Client) -> None:
    sync_entity(cache_url, client, "au", ENTITIES["sales"])


# ---------------------------------------------------------------- 850 -> one sale, 855


def test_a_po_makes_one_authorised_sale_and_an_855_the_retailer_accepts(conn, context, partner, retailer, client,
                                                                        catalogue):  # fmt: skip
    po, result = _place(conn, context, partner, retailer, catalogue["items"], lines=2)
    assert result.documents == [f"850 {po.po_number}"]

    (header,) = _sales_for(client, po.po_number)
    sale = client.get("sale", {"ID": header["SaleID"]})
    assert (sale["ExternalID"], sale["CustomerReference"], sale["Customer"]) == (po.po_number, po.po_number, CUSTOMER)
    assert sale["Order"]["Status"] == "AUTHORISED" and sale["Location"] == LOCATION
    by_barcode = {p["Barcode"]: p for p in catalogue["products"]}
    expected = sorted((by_barcode[next(iter(line.product_ids.values()))]["ID"], float(line.quantity),
                       float(line.unit_price)) for line in po.lines)  # fmt: skip
    assert sorted((line["ProductID"], line["Quantity"], line["Price"]) for line in sale["Order"]["Lines"]) == expected
    ship_to = trading.ship_to_party(po)
    address = sale["ShippingAddress"]
    assert (address["Company"], address["Line1"], address["City"], address["Postcode"]) == (
        ship_to.name,
        ship_to.address_lines[0],
        ship_to.city,
        ship_to.postal_code,
    )
    order = _order(conn, partner, po.po_number)
    assert (order["state"], order["sale_id"]) == ("acknowledged", sale["ID"])

    receipts = _receipts(retailer)
    assert set(receipts) == {"997", "855"}
    assert retailer.book.acknowledged[po.po_number] == "AD"
    (ack,) = receipts["855"].documents
    assert isinstance(ack, PurchaseOrderAck) and ack.seller_order_number == sale["Order"]["SaleOrderNumber"]

    # The retailer's 997 for our 855 group marks the interchange accepted.
    assert any(": accepted" in text for text in _acks_back(conn, context, partner))
    assert _interchange_states(conn, partner) == {"855": "accepted"}

    # The same file delivered again, the same bytes under another name, and the same PO in a new interchange:
    # one sale, one 855.
    transport = context.transport(partner.key)
    (file_id,) = conn.execute("SELECT id FROM automation.edi_files WHERE partner = %s AND direction = 'in' "
                              "AND file_name = %s", (partner.key, f"850_{po.po_number}.x12")).fetchone()  # fmt: skip
    content = exchange.file_content(conn, file_id)
    transport_root = Path(partner.transport.root) / "out"
    (transport_root / f"850_{po.po_number}.x12").write_bytes(content)
    (transport_root / "850_again.x12").write_bytes(content)
    resent = write_interchange([po], retailer.envelope, retailer.control_numbers, NOW)
    retailer.book.sent_groups[str(retailer.control_numbers.last["GS"])] = po.po_number
    (transport_root / "850_resent.x12").write_text(resent)
    results = {r.file_name: r.state for r in process_inbox(conn, context, partner)}
    assert results == {f"850_{po.po_number}.x12": "duplicate", "850_again.x12": "processed",
                       "850_resent.x12": "processed"}  # fmt: skip
    assert len(_sales_for(client, po.po_number)) == 1
    assert conn.execute("SELECT count(*) FROM automation.partner_orders WHERE partner = %s",
                        (partner.key,)).fetchone()[0] == 1  # fmt: skip
    assert set(_receipts(retailer)) == {"997"}  # 997s for the new groups, no second 855
    assert transport.list_inbound() == []


def test_unknown_items_and_wrong_prices_are_rejected_line_by_line(conn, context, partner, retailer, client,
                                                                  catalogue):  # fmt: skip
    po, _ = _place(conn, context, partner, retailer, catalogue["items"], lines=2, unknown_item=True, wrong_price=True)
    (header,) = _sales_for(client, po.po_number)
    sale = client.get("sale", {"ID": header["SaleID"]})
    by_barcode = {p["Barcode"]: p["ID"] for p in catalogue["products"]}
    assert [line["ProductID"] for line in sale["Order"]["Lines"]] == [by_barcode[next(iter(po.lines[1].product_ids
                                                                                            .values()))]]  # fmt: skip
    receipts = _receipts(retailer)
    (ack,) = receipts["855"].documents
    assert ack.ack_type == "AC"
    assert [[s.status for s in line.statuses] for line in ack.lines] == [["IR"], ["IA"], ["IR"]]
    reasons = [d["reason"] for d in _order(conn, partner, po.po_number)["decisions"]]
    assert "price mismatch" in reasons[0] and "unknown item" in reasons[2]


def test_a_line_stock_does_not_cover_is_sold_and_acknowledged_as_backordered(conn, context, partner, retailer,
                                                                             client, catalogue):  # fmt: skip
    rows = conn.execute("SELECT payload FROM erp_cache.product_availability WHERE instance = 'au'").fetchall()
    free = trading.available_quantities([row[0] for row in rows], partner_config(), LOCATION)
    product = next(p for p in catalogue["products"] if p["Status"] == "Active" and 1 <= free.get(p["ID"], 0) <= 20
                   and len(p["Barcode"]) in (12, 13) and p["PriceTiers"].get("Wholesale"))  # fmt: skip
    (item,) = items_from_products([product], "Wholesale")
    available = free[product["ID"]]
    store = retailer.stores[0]
    po = PurchaseOrder(f"PO-BO-{retailer.seed}", "20261123", parties=[
        Party("BY", retailer.name),
        Party("ST", store.name, "92", store.code, [store.address], store.city, store.state, store.postcode, "US"),
    ], lines=[OrderLine("1", available + 5, "EA", item.price, dict(item.ids), item.description)])  # fmt: skip
    retailer.add_items([item])
    retailer.book.orders[po.po_number] = po
    (retailer.out_dir / f"850_{po.po_number}.x12").write_text(
        write_interchange([po], retailer.envelope, retailer.control_numbers, NOW)
    )
    retailer.book.sent_groups[str(retailer.control_numbers.last["GS"])] = po.po_number
    assert [r.state for r in process_inbox(conn, context, partner)] == ["processed"]

    (header,) = _sales_for(client, po.po_number)
    (line,) = client.get("sale", {"ID": header["SaleID"]})["Order"]["Lines"]
    assert (line["ProductID"], line["Quantity"]) == (product["ID"], float(available + 5))
    (ack,) = _receipts(retailer)["855"].documents
    assert ack.ack_type == "AC"
    assert [(s.status, s.quantity) for s in ack.lines[0].statuses] == [("IA", available), ("IB", 5)]
    assert retailer.book.acknowledged[po.po_number] == "AC"


class FlakyClient:
    """A Cin7 client whose first POST to each endpoint named fails as an outage would, after Cin7 got nothing."""

    def __init__(self, client: Cin7Client, *endpoints: str, error: type[Exception] = Cin7ServerError) -> None:
        self.client, self.failing, self.error = client, set(endpoints), error

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def post(self, endpoint: str, body: Any) -> Any:
        if endpoint in self.failing:
            self.failing.discard(endpoint)
            raise self.error("simulated failure", endpoint=endpoint)
        return self.client.post(endpoint, body)


def test_a_sale_left_unauthorised_by_an_outage_is_finished_by_the_retry_not_made_twice(
    conn, context, partner, retailer, client, catalogue
):
    flaky = FlakyClient(client, "sale/order")
    context.cin7 = lambda _instance: flaky
    po, result = _place(conn, context, partner, retailer, catalogue["items"], lines=1)
    assert any("cin7.sale" in text and ": failed" in text for text in result.outbox)
    (header,) = _sales_for(client, po.po_number)
    assert client.get("sale", {"ID": header["SaleID"]})["Order"]["Status"] != "AUTHORISED"
    assert _order(conn, partner, po.po_number)["state"] == "pending"
    assert set(_receipts(retailer)) == {"997"}  # no 855 before the sale exists

    time.sleep(0.05)  # the retry is due (RetryPolicy base 0.01 s)
    (outcome,) = flows.send_pending_documents(conn, context)
    assert (outcome.set_id, outcome.state) == ("855", "queued")
    (header,) = _sales_for(client, po.po_number)
    assert client.get("sale", {"ID": header["SaleID"]})["Order"]["Status"] == "AUTHORISED"
    assert _order(conn, partner, po.po_number)["sale_id"] == header["SaleID"]
    assert _receipts(retailer)["855"].documents[0].ack_type == "AD"


def test_a_sale_cin7_refuses_is_voided_given_up_and_notified(conn, context, partner, retailer, client, catalogue):
    context.cin7 = lambda _instance: FlakyClient(client, "sale/order", error=Cin7RequestError)
    po, result = _place(conn, context, partner, retailer, catalogue["items"], lines=1)
    assert any("cin7.sale" in text and ": given_up" in text for text in result.outbox)
    assert _sales_for(client, po.po_number)[0]["Status"] == "VOIDED"  # nothing live is left half-written
    assert any("gave up" in subject and po.po_number in body for subject, body, _ in context.notifier.calls)
    assert flows.pending_partner_documents(conn, context.config) == []
    assert set(_receipts(retailer)) == {"997"}


def test_a_po_of_unknown_items_changes_nothing_in_cin7(conn, context, partner, retailer, client, catalogue):
    body = "0" + "7" * 10
    upc = next(body + digit for digit in "0123456789" if check_digit_ok(body + digit))
    unknown = [PartnerItem({"UP": upc}, Decimal("4.50"), "Nothing we sell")]
    sales_before = _sale_count(client)
    po, _ = _place(conn, context, partner, retailer, unknown, lines=1)
    assert _sale_count(client) == sales_before and _sales_for(client, po.po_number) == []
    order = _order(conn, partner, po.po_number)
    assert (order["state"], order["sale_id"]) == ("rejected", None)
    assert conn.execute("SELECT count(*) FROM automation.outbox WHERE kind = %s AND subject = %s",
                        (flows.CREATE_SALE, po.po_number)).fetchone()[0] == 0  # fmt: skip
    (ack,) = _receipts(retailer)["855"].documents
    assert ack.ack_type == "RD" and [s.status for s in ack.lines[0].statuses] == ["IR"]


def test_an_850_naming_no_known_customer_is_quarantined(cin7, client, cache_url, conn, retailer, catalogue):
    partner = _partner(retailer, "nocust", customer="Nobody We Know")
    context = _context(cin7, client, cache_url, partner)
    sales_before = _sale_count(client)
    retailer.send_purchase_orders(1, catalogue["items"], lines=1)
    (result,) = process_inbox(conn, context, partner)
    assert result.state == "quarantined" and "Nobody We Know" in result.reason
    assert _sale_count(client) == sales_before
    assert conn.execute("SELECT count(*) FROM automation.partner_orders WHERE partner = 'nocust'").fetchone()[0] == 0
    assert context.notifier.calls and "quarantined" in context.notifier.calls[0][0]


# ---------------------------------------------------------------- 856 and 810


def test_a_shipment_and_its_invoice_send_an_856_and_an_810_that_match_cin7(conn, context, partner, retailer, client,
                                                                           cache_url, catalogue):  # fmt: skip
    po, _ = _place(conn, context, partner, retailer, catalogue["items"], lines=2)
    _receipts(retailer)
    sale_id = _order(conn, partner, po.po_number)["sale_id"]
    sale = _ship(client, sale_id)
    assert flows.pending_partner_documents(conn, context.config) == []  # the cache has not seen the shipment yet
    _sync_sales(cache_url, client)
    (pending,) = flows.pending_partner_documents(conn, context.config)
    task = sale["Fulfilments"][0]
    assert (pending.set_id, pending.reference, pending.po_number) == ("856", task["TaskID"], po.po_number)

    (outcome,) = flows.send_pending_documents(conn, context)
    assert (outcome.set_id, outcome.state, outcome.outcome) == ("856", "queued", "performed")
    assert flows.pending_partner_documents(conn, context.config) == []
    (asn,) = _receipts(retailer)["856"].documents
    products = {p["ID"]: p for p in catalogue["products"]}
    shipped: dict[str, Decimal] = {}
    for pack in asn.orders[0].packs:
        assert trading.valid_sscc18(pack.sscc)
        for item in pack.items:
            shipped[item.line_number] = shipped.get(item.line_number, Decimal(0)) + item.quantity_shipped
    picked = {line["Comment"].split()[-1]: Decimal(str(line["Quantity"])) for line in sale["Order"]["Lines"]}
    assert shipped == picked
    assert sum(Decimal(str(line["Quantity"])) for line in task["Pick"]["Lines"]) == sum(shipped.values())
    assert {products[line["ProductID"]]["Barcode"] for line in task["Pick"]["Lines"]} == {
        next(iter(item.product_ids.values())) for pack in asn.orders[0].packs for item in pack.items
    }

    client.post("sale/invoice", {"SaleID": sale_id, "Status": "AUTHORISED"})
    _sync_sales(cache_url, client)
    (outcome,) = flows.send_pending_documents(conn, context)
    assert (outcome.set_id, outcome.state) == ("810", "queued")
    (invoice,) = _receipts(retailer)["810"].documents
    cin7_invoice = client.get("sale", {"ID": sale_id})["Invoices"][0]
    assert invoice.total_amount == Decimal(str(cin7_invoice["Total"])).quantize(Decimal("0.01"))
    assert invoice.invoice_number == cin7_invoice["InvoiceNumber"]

    # Nothing is sent twice: a rerun finds nothing pending and runs nothing.
    assert flows.send_pending_documents(conn, context) == []
    assert retailer.process_once() == []
    _acks_back(conn, context, partner)
    assert _interchange_states(conn, partner) == {"855": "accepted", "856": "accepted", "810": "accepted"}


def test_a_document_that_cannot_be_built_fails_once_with_the_reason(cin7, conn, context, partner, retailer, client,
                                                                    cache_url, catalogue):  # fmt: skip
    po, _ = _place(conn, context, partner, retailer, catalogue["items"], lines=1)
    sale_id = _order(conn, partner, po.po_number)["sale_id"]
    _ship(client, sale_id, carrier="Couriers Please")  # no SCAC configured for it
    _sync_sales(cache_url, client)
    (outcome,) = flows.send_pending_documents(conn, context)
    assert outcome.state == "failed" and "Couriers Please" in outcome.reason and "carrier_scac" in outcome.reason
    assert [key for _, _, key in context.notifier.calls if "document_failed" in key] == [
        f"trading.document_failed:{partner.key}:856:{sale_id}"
    ]
    assert flows.pending_partner_documents(conn, context.config) == []  # retried after DOCUMENT_RETRY_AFTER
    conn.execute("UPDATE automation.partner_documents SET updated_at = now() - interval '2 hours' "
                 "WHERE partner = %s AND set_id = '856'", (partner.key,))  # fmt: skip
    (again,) = flows.pending_partner_documents(conn, context.config)
    assert again.retry_of
    fixed = _context(cin7, client, cache_url, partner.model_copy(
        update={"carrier_scac": {**partner.carrier_scac, "Couriers Please": "CPLS"}}))  # fmt: skip
    (outcome,) = flows.send_pending_documents(conn, fixed)
    assert outcome.state == "queued"
    assert set(_receipts(retailer)) >= {"856"}


# ---------------------------------------------------------------- 846


def _expected_feed(conn, partner: PartnerConfig, location: str | None) -> dict[str, str]:
    rows = conn.execute(
        """SELECT p.payload->>'SKU', coalesce(sum((a.payload->>'Available')::numeric), 0)
             FROM erp_cache.products p
             LEFT JOIN erp_cache.product_availability a
                    ON a.instance = p.instance AND a.payload->>'ID' = p.id AND a.deleted_at IS NULL
                   AND (%s::text IS NULL OR a.payload->>'Location' = %s)
            WHERE p.instance = 'au' AND p.payload->>'SKU' = ANY(%s)
            GROUP BY 1""", (location, location, partner.inventory.skus)).fetchall()  # fmt: skip
    return {sku: str(max((available * Decimal("0.9")).to_integral_value(ROUND_FLOOR), 0)) for sku, available in rows}


def test_the_846_offers_the_cache_less_the_buffer_once_per_hour(conn, context, partner, retailer, catalogue):
    retailer.add_items(catalogue["items"])
    tick = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    feed = flows.send_inventory_feed(conn, context, partner, tick)
    assert (feed.state, feed.outcome, feed.reference) == ("queued", "performed", "2026112309")
    assert feed.quantities == {"*": _expected_feed(conn, partner, None)} and feed.items == 8
    (advice,) = _receipts(retailer)["846"].documents
    assert {item.product_ids["VN"]: str(item.quantities[0].quantity) for item in advice.items} == feed.quantities["*"]

    again = flows.send_inventory_feed(conn, context, partner, tick.replace(minute=40))
    assert (again.outcome, again.quantities) == ("already_done", feed.quantities)
    assert retailer.process_once() == []

    per_location = partner.model_copy(update={"inventory": partner.inventory.model_copy(
        update={"per_location": True, "locations": [LOCATION, "Melbourne 3PL"]})})  # fmt: skip
    context.config = context.config.model_copy(update={"partners": [per_location]})
    feed = flows.send_inventory_feed(conn, context, per_location, tick.replace(hour=10))
    assert feed.quantities == {where: _expected_feed(conn, partner, where) for where in (LOCATION, "Melbourne 3PL")}
    assert len(_receipts(retailer)["846"].documents) == 2
    _acks_back(conn, context, partner)
    assert set(_interchange_states(conn, partner).values()) == {"accepted"}


# ---------------------------------------------------------------- the demo's act


def test_the_demo_act_plays_a_po_through_to_its_asn_and_invoice(cin7, cache_url, tmp_path, monkeypatch):
    instance = next(i for i in cin7.instances if i.key == "au")
    monkeypatch.setenv("GP_TEST_AU_KEY", instance.application_keys[0])
    config = PlatformConfig(
        reporting_currency="AUD",
        instances=[InstanceConfig(key="au", name="AU", account_id=instance.account_id, base_url=cin7.base_url,
                                  application_key_env=["GP_TEST_AU_KEY"], calls_per_minute=100_000)],
    )  # fmt: skip
    lines: list[str] = []
    play = run_partner_demo(config, cache_url, tmp_path / "demo", seed=4242, say=lines.append)
    assert play.ok, (play.problems, play.accepted)
    assert play.accepted == {"855": True, "856": True, "810": True, "846": True, "997": True}
    assert {row["sets"]: row["state"] for row in play.interchanges if row["functional_id"] != "FA"} == {
        "855": "accepted", "856": "accepted", "810": "accepted", "846": "accepted"}  # fmt: skip
    assert any("authorised in Cin7 Core" in line for line in lines)


def test_process_partner_file_without_the_handler_quarantines_850s(cin7, client, cache_url, conn, retailer,
                                                                   catalogue):  # fmt: skip
    partner = _partner(retailer, "nohandler")
    context = _context(cin7, client, cache_url, partner)
    context.extra_handlers = {}
    retailer.send_purchase_orders(1, catalogue["items"], lines=1)
    (remote,) = context.transport(partner.key).list_inbound()
    result = process_partner_file(conn, context, partner, remote.name)
    assert result.state == "quarantined" and "set 850 is not expected" in result.reason


# ---------------------------------------------------------------- the Dagster layer


def test_the_dagster_layer_sends_documents_and_feeds_and_shows_interchanges(cin7, client, cache_url, conn, retailer,
                                                                            catalogue):  # fmt: skip
    partner = _partner(retailer, "dagster_retail", inventory={"skus": catalogue["skus"]})
    context = _context(cin7, client, cache_url, partner)
    instance = next(i for i in cin7.instances if i.key == "au")
    database = PostgresResource(url=cache_url)
    resource = AutomationResource(
        platform_config=config_to_yaml(context.config), database=database, shopify=ShopifyResource(stores=[]),
        cin7=Cin7Resource(database=database, application_keys=[Cin7ApplicationKey(
            instance="au", account_id=instance.account_id, base_url=cin7.base_url,
            application_key=instance.application_keys[0], calls_per_minute=100_000)]),
        secrets=[],
    )  # fmt: skip
    assets, checks, jobs, sensors, schedules = build_trading_definitions(context.config)
    assert [s.name for s in sensors] == ["partner_documents_sensor"]
    assert [s.name for s in schedules] == ["inventory_feed_schedule"]
    defs = dg.Definitions(assets=assets, asset_checks=checks, jobs=jobs, sensors=sensors, schedules=schedules,
                          resources={"automation": resource})  # fmt: skip
    dg.Definitions.validate_loadable(defs)

    po, _ = _place(conn, context, partner, retailer, catalogue["items"], lines=1)
    _receipts(retailer)
    _ship(client, _order(conn, partner, po.po_number)["sale_id"])
    _sync_sales(cache_url, client)
    with dg.DagsterInstance.ephemeral() as dagster:
        with dg.build_sensor_context(instance=dagster, resources={"automation": resource}) as sensor_context:
            tick = partner_documents_sensor(sensor_context)
        (request,) = tick.run_requests
        assert request.run_key.startswith("partner_documents:")
        assert defs.resolve_job_def(PARTNER_DOCUMENTS_JOB).execute_in_process(instance=dagster).success
        assert set(_receipts(retailer)) == {"856"}
        with dg.build_sensor_context(instance=dagster, resources={"automation": resource}) as sensor_context:
            tick = partner_documents_sensor(sensor_context)
        assert not tick.run_requests  # nothing waits any more

        feed = defs.resolve_job_def(INVENTORY_FEED_JOB).execute_in_process(instance=dagster)
        assert feed.success
        (materialization,) = feed.asset_materializations_for_node("automation__inventory_feed")
        assert materialization.metadata["items_dagster_retail"].value == 8
        (check,) = feed.get_asset_check_evaluations()
        assert check.passed
        assert set(_receipts(retailer)) == {"846"}
        _acks_back(conn, context, partner)

        shown = dg.materialize(
            [partner_interchanges, acknowledgements_in_order],
            instance=dagster,
            resources={"automation": resource},
            selection=[PARTNER_INTERCHANGES_ASSET],
        )
        (check,) = shown.get_asset_check_evaluations()
        assert check.passed, check.metadata
        conn.execute(
            "UPDATE automation.edi_interchanges SET state = 'awaiting_ack', ack_due_at = now() - "
            "interval '1 minute' WHERE partner = %s AND 'PR' = functional_id",
            (partner.key,),
        )
        check = acknowledgements_in_order(automation=resource)
        assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
        assert check.metadata["overdue"].value == 1
