"""The sale state machine, without HTTP: transitions, derived statuses and refused transitions."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from gp_pipelines.sandbox.cin7 import sales
from gp_pipelines.sandbox.cin7.sales import SaleError

PRODUCTS = {
    "p1": {"ID": "p1", "SKU": "TEA-1", "Name": "Tea", "PriceTier1": 10.0, "AverageCost": 4.0},
    "p2": {"ID": "p2", "SKU": "COF-1", "Name": "Coffee", "PriceTier1": 20.0, "AverageCost": 9.0},
}


class FakeEnv:
    """In-memory world: a ticking clock, counters, and stock per (location, product)."""

    base_currency = "AUD"
    timezone = "Australia/Sydney"
    tax_rate = 0.1
    tax_rule = "GST on Income"

    def __init__(self, stock: dict[str, float] | None = None) -> None:
        self.t = 1_790_000_000_000
        self.ids = itertools.count(1)
        self.numbers: dict[str, int] = {}
        self.on_hand = dict(stock or {"p1": 100.0, "p2": 100.0})
        self.allocated: dict[str, dict[str, float]] = {}

    def now_ms(self) -> int:
        self.t += 1000
        return self.t

    def new_id(self) -> str:
        return f"id-{next(self.ids)}"

    def next_number(self, kind: str) -> str:
        self.numbers[kind] = self.numbers.get(kind, 0) + 1
        return f"{kind}-{self.numbers[kind]:05d}"

    def product(self, product_id: str | None, sku: str | None) -> dict[str, Any] | None:
        return PRODUCTS.get(str(product_id)) or next((p for p in PRODUCTS.values() if p["SKU"] == sku), None)

    def location_id(self, name: str) -> str:
        return "loc-1"

    def allocate(self, sale_id: str, location_id: str, product_id: str, quantity: float) -> float:
        free = self.on_hand.get(product_id, 0) - sum(a.get(product_id, 0) for a in self.allocated.values())
        take = max(0.0, min(quantity, free))
        self.allocated.setdefault(sale_id, {})[product_id] = take
        return take

    def release(self, sale_id: str) -> None:
        self.allocated.pop(sale_id, None)

    def consume(self, sale_id: str, location_id: str, product_id: str, quantity: float) -> None:
        self.on_hand[product_id] -= quantity
        held = self.allocated.get(sale_id, {})
        held[product_id] = max(0.0, held.get(product_id, 0) - quantity)

    def restock(self, location_id: str, product_id: str, quantity: float) -> None:
        self.on_hand[product_id] += quantity


CUSTOMER = {"ID": "c1", "Name": "Corner Cafe", "Currency": "NZD", "Contacts": [{"Name": "Sam", "Email": "s@x"}],
            "Addresses": [{"Line1": "1 Road"}]}
LOCATION = {"ID": "loc-1", "Name": "Main Warehouse"}


def new_sale(env: FakeEnv, **body: Any) -> dict[str, Any]:
    return sales.create_sale(env, "sale-1", CUSTOMER, LOCATION, body, 0.92)


def authorised(env: FakeEnv, lines: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    doc = new_sale(env)
    sales.set_order(env, doc, {"Status": "AUTHORISED",
                               "Lines": lines or [{"ProductID": "p1", "Quantity": 4, "Price": 11.0}]})
    return doc


def test_new_sale_is_draft_with_currency_fields() -> None:
    env = FakeEnv()
    doc = new_sale(env, ExternalID="shop-1")
    assert doc["Status"] == "DRAFT"
    assert (doc["BaseCurrency"], doc["CustomerCurrency"], doc["CurrencyRate"]) == ("AUD", "NZD", 0.92)
    assert doc["ExternalID"] == "shop-1"
    assert doc["Order"]["SaleOrderNumber"] == "SO-00001"
    assert doc["Contact"] == "Sam" and doc["Email"] == "s@x"


def test_order_draft_then_authorise_allocates_and_bumps_modified() -> None:
    env = FakeEnv()
    doc = new_sale(env)
    before = doc["LastModifiedOn"]
    sales.set_order(env, doc, {"Status": "DRAFT", "Lines": [{"ProductID": "p1", "Quantity": 2, "Price": 10}]})
    assert doc["Status"] == "ORDERING" and doc["LastModifiedOn"] > before
    assert doc["Order"]["Total"] == 22.0 and doc["Order"]["Tax"] == 2.0
    sales.set_order(env, doc, {"Status": "AUTHORISED"})
    assert doc["Status"] == "ORDERED"
    assert doc["CombinedPickingStatus"] == "NOT PICKED" and doc["FulFilmentStatus"] == "NOT FULFILLED"
    assert env.allocated["sale-1"] == {"p1": 2.0}
    with pytest.raises(SaleError, match="already AUTHORISED"):
        sales.set_order(env, doc, {"Status": "AUTHORISED"})


def test_short_stock_backorders() -> None:
    env = FakeEnv({"p1": 1.0, "p2": 0.0})
    doc = authorised(env, [{"ProductID": "p1", "Quantity": 3}])
    assert doc["Status"] == "BACKORDERED"
    assert doc["Order"]["Lines"][0]["BackorderQuantity"] == 2.0


def test_order_errors() -> None:
    env = FakeEnv()
    doc = new_sale(env)
    with pytest.raises(SaleError, match="no lines"):
        sales.set_order(env, doc, {"Status": "AUTHORISED"})
    with pytest.raises(SaleError, match="Product not found"):
        sales.set_order(env, doc, {"Lines": [{"ProductID": "nope", "Quantity": 1}]})
    with pytest.raises(SaleError, match="Quantity"):
        sales.set_order(env, doc, {"Lines": [{"ProductID": "p1", "Quantity": 0}]})
    with pytest.raises(SaleError, match="DRAFT or AUTHORISED"):
        sales.set_order(env, doc, {"Status": "SHIPPED", "Lines": [{"ProductID": "p1", "Quantity": 1}]})


def test_simple_sale_full_lifecycle() -> None:
    env = FakeEnv()
    doc = authorised(env)
    task = sales.task_for_stage(env, doc, "sale-1")  # a Simple Sale's task id is its sale id
    sales.set_pick(env, doc, task, {"Status": "DRAFT"})
    assert doc["Status"] == "PICKING"
    sales.set_pick(env, doc, task, {"AutoPickMode": "AUTOPICK"})
    assert task["Pick"]["Status"] == "AUTHORISED" and task["Pick"]["Lines"][0]["Quantity"] == 4
    assert doc["Status"] == "PICKED" and doc["CombinedPickingStatus"] == "PICKED"
    sales.set_pack(env, doc, task, {"Status": "AUTHORISED"})
    assert doc["Status"] == "PACKED" and sales.ready_for_shipping(doc)
    sales.set_ship(env, doc, task, {"Status": "AUTHORISED", "Lines": [
        {"Box": "Box 7", "Carrier": "StarTrack", "TrackingNumber": "TRK1", "TrackingURL": "https://t/1"}]})
    line = task["Ship"]["Lines"][0]
    assert line["Boxes"] == "Box 7" and "Box" not in line and line["IsShipped"] is True
    assert doc["Status"] == "SHIPPED" and doc["FulFilmentStatus"] == "FULFILLED"
    assert doc["CombinedTrackingNumbers"] == "TRK1" and env.on_hand["p1"] == 96.0
    assert doc["COGSAmount"] == 16.0 and doc["InventoryMovements"][0]["COGS"] == 16.0
    assert doc["Type"] == "Simple Sale"
    invoice = sales.add_invoice(env, doc, {"Status": "AUTHORISED"}, rate=0.93)
    assert invoice["CurrencyConversionRate"] == 0.93 and invoice["Total"] == 48.4
    assert doc["Status"] == "INVOICED" and doc["CombinedInvoiceStatus"] == "INVOICED"
    with pytest.raises(SaleError, match="already invoiced"):
        sales.add_invoice(env, doc, {"Status": "AUTHORISED"})
    sales.add_payment(env, doc, invoice, invoice["Total"], 0.93)
    assert doc["Status"] == "COMPLETED" and doc["CombinedPaymentStatus"] == "PAID"
    sales.add_credit_note(env, doc, 0.94)
    assert doc["Status"] == "CREDITED" and doc["CombinedInvoiceStatus"] == "INVOICED / CREDITED"
    header = sales.sale_header(doc, "loc-1", "2026-11-22T00:00:00")
    assert header["OrderNumber"] == "SO-00001" and header["InvoiceAmount"] == 48.4
    assert header["CreditNoteNumber"] == "CR-00001" and header["Updated"] == doc["LastModifiedOn"]


def test_stage_order_is_enforced() -> None:
    env = FakeEnv()
    doc = new_sale(env)
    sales.set_order(env, doc, {"Status": "DRAFT", "Lines": [{"ProductID": "p1", "Quantity": 1}]})
    with pytest.raises(SaleError, match="Sale Order should be AUTHORISED"):
        sales.task_for_stage(env, doc, "sale-1")
    with pytest.raises(SaleError, match="Sale Order should be AUTHORISED"):
        sales.add_fulfilment(env, doc)
    sales.set_order(env, doc, {"Status": "AUTHORISED"})
    task = sales.task_for_stage(env, doc, "sale-1")
    with pytest.raises(SaleError, match="Pick should be AUTHORISED"):
        sales.set_pack(env, doc, task, {"Status": "AUTHORISED"})
    with pytest.raises(SaleError, match="Pack should be AUTHORISED"):
        sales.set_ship(env, doc, task, {"Status": "AUTHORISED"})
    sales.set_pick(env, doc, task, {"AutoPickMode": "AUTOPICK"})
    with pytest.raises(SaleError, match="Pick is AUTHORISED"):
        sales.set_pick(env, doc, task, {"AutoPickMode": "AUTOPICK"})
    sales.set_pack(env, doc, task, {"Status": "AUTHORISED"})
    sales.set_ship(env, doc, task, {"Status": "PARTIALLY AUTHORISED"})
    assert doc["CombinedShippingStatus"] == "SHIPPING"
    with pytest.raises(SaleError, match="already PARTIALLY AUTHORISED"):
        sales.set_ship(env, doc, task, {"Status": "AUTHORISED"})


def test_fulfilment_converts_simple_to_advanced_and_splits() -> None:
    env = FakeEnv()
    doc = authorised(env, [{"ProductID": "p1", "Quantity": 4}, {"ProductID": "p2", "Quantity": 2}])
    first = sales.add_fulfilment(env, doc)
    assert doc["Type"] == "Advanced Sale"
    with pytest.raises(SaleError, match="Pick is not AUTHORISED"):
        sales.add_fulfilment(env, doc)
    sales.set_pick(env, doc, first, {"Status": "AUTHORISED", "Lines": [{"ProductID": "p1", "Quantity": 4}]})
    assert doc["CombinedPickingStatus"] == "PARTIALLY PICKED"
    sales.set_pack(env, doc, first, {"Status": "AUTHORISED"})
    sales.set_ship(env, doc, first, {"Status": "AUTHORISED"})
    assert doc["FulFilmentStatus"] == "PARTIALLY FULFILLED" and doc["Status"] == "ORDERED"
    second = sales.add_fulfilment(env, doc)
    assert second["FulfillmentNumber"] == 2
    with pytest.raises(SaleError, match="only 2 left"):
        sales.set_pick(env, doc, second, {"Status": "AUTHORISED", "Lines": [{"ProductID": "p2", "Quantity": 3}]})
    sales.set_pick(env, doc, second, {"AutoPickMode": "AUTOPICK"})
    assert second["Pick"]["Lines"] == [{"ProductID": "p2", "SKU": "COF-1", "Name": "Coffee", "Quantity": 2.0,
                                        "Location": "Main Warehouse", "LocationID": "loc-1", "BatchSN": "",
                                        "ExpiryDate": None}]
    # Undo the second task (Advanced only), then void the first.
    sales.void_fulfilment(env, doc, second["TaskID"], void=False)
    assert second["Pick"]["Status"] == "DRAFT"
    sales.void_fulfilment(env, doc, first["TaskID"], void=True)
    assert first["FulFilmentStatus"] == "VOIDED" and env.on_hand["p1"] == 100.0  # shipped stock came back
    assert doc["FulFilmentStatus"] == "NOT FULFILLED"


def test_fulfilment_delete_needs_advanced_sale() -> None:
    env = FakeEnv()
    doc = authorised(env)
    sales.task_for_stage(env, doc, "sale-1")
    with pytest.raises(SaleError, match="only for an Advanced Sale"):
        sales.void_fulfilment(env, doc, "sale-1", void=True)


def test_void_releases_and_blocks_everything_after() -> None:
    env = FakeEnv()
    doc = authorised(env)
    sales.void_sale(env, doc)
    assert doc["Status"] == "VOIDED" and doc["Order"]["Status"] == "VOIDED"
    assert "sale-1" not in env.allocated
    for action in (lambda: sales.add_fulfilment(env, doc), lambda: sales.void_sale(env, doc),
                   lambda: sales.set_order(env, doc, {"Status": "AUTHORISED"}),
                   lambda: sales.update_sale(env, doc, {"Note": "x"})):
        with pytest.raises(SaleError, match="VOIDED"):
            action()


def test_void_refused_with_authorised_invoice() -> None:
    env = FakeEnv()
    doc = authorised(env)
    sales.add_invoice(env, doc, {"Status": "AUTHORISED"})
    with pytest.raises(SaleError, match="AUTHORISED invoice"):
        sales.void_sale(env, doc)


def test_undo_reverts_authorised_stages_to_draft() -> None:
    env = FakeEnv()
    doc = authorised(env)
    task = sales.task_for_stage(env, doc, "sale-1")
    sales.set_pick(env, doc, task, {"AutoPickMode": "AUTOPICK"})
    sales.set_pack(env, doc, task, {"Status": "AUTHORISED"})
    sales.set_ship(env, doc, task, {"Status": "AUTHORISED"})
    sales.add_invoice(env, doc, {"Status": "AUTHORISED"})
    sales.undo_sale(env, doc)
    assert doc["Order"]["Status"] == "DRAFT" and doc["Status"] == "ORDERING"
    assert [task[s]["Status"] for s in ("Pick", "Pack", "Ship")] == ["DRAFT", "DRAFT", "DRAFT"]
    assert doc["Invoices"][0]["Status"] == "DRAFT"
    assert env.on_hand["p1"] == 100.0 and "sale-1" not in env.allocated
    assert doc["COGSAmount"] == 0.0 and doc["InventoryMovements"] == []
    with pytest.raises(SaleError, match="Nothing to undo"):
        sales.undo_sale(env, doc)
