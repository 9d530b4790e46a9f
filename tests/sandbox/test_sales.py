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
    """In-memory world: a ticking clock, counters, and stock per product at two locations.

    `on_hand`/`allocated` are the main location's (loc-1); `on_hand_2`/`allocated_2` the second's (loc-2)."""

    base_currency = "AUD"
    timezone = "Australia/Sydney"
    tax_rate = 0.1
    tax_rule = "GST on Income"

    def __init__(self, stock: dict[str, float] | None = None, stock_2: dict[str, float] | None = None) -> None:
        self.t = 1_790_000_000_000
        self.ids = itertools.count(1)
        self.numbers: dict[str, int] = {}
        self.on_hand = dict(stock or {"p1": 100.0, "p2": 100.0})
        self.allocated: dict[str, dict[str, float]] = {}
        self.on_hand_2 = dict(stock_2 or {})
        self.allocated_2: dict[str, dict[str, float]] = {}

    def _ledger(self, location_id: str) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        return (self.on_hand, self.allocated) if location_id == "loc-1" else (self.on_hand_2, self.allocated_2)

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
        location = self.location(name)
        assert location is not None, name
        return location["ID"]

    def location(self, key: str) -> dict[str, Any] | None:
        return next((loc for loc in (LOCATION, LOCATION_2) if key in (loc["ID"], loc["Name"])), None)

    def allocate(self, sale_id: str, location_id: str, product_id: str, quantity: float) -> float:
        on_hand, allocated = self._ledger(location_id)
        free = on_hand.get(product_id, 0) - sum(a.get(product_id, 0) for a in allocated.values())
        take = max(0.0, min(quantity, free))
        held = allocated.setdefault(sale_id, {})
        held[product_id] = held.get(product_id, 0.0) + take
        return take

    def held(self, sale_id: str, product_id: str) -> dict[str, float]:
        out = {}
        for location_id in ("loc-1", "loc-2"):
            qty = self._ledger(location_id)[1].get(sale_id, {}).get(product_id, 0.0)
            if qty > 0:
                out[location_id] = qty
        return out

    def available(self, location_id: str, product_id: str) -> float:
        on_hand, allocated = self._ledger(location_id)
        return on_hand.get(product_id, 0) - sum(a.get(product_id, 0) for a in allocated.values())

    def deallocate(self, sale_id: str, location_id: str, product_id: str, quantity: float) -> None:
        held = self._ledger(location_id)[1].get(sale_id, {})
        held[product_id] = max(0.0, held.get(product_id, 0.0) - quantity)

    def release(self, sale_id: str) -> None:
        self.allocated.pop(sale_id, None)
        self.allocated_2.pop(sale_id, None)

    def consume(self, sale_id: str, location_id: str, product_id: str, quantity: float) -> None:
        on_hand, allocated = self._ledger(location_id)
        on_hand[product_id] -= quantity
        held = allocated.get(sale_id, {})
        held[product_id] = max(0.0, held.get(product_id, 0) - quantity)

    def restock(self, location_id: str, product_id: str, quantity: float) -> None:
        on_hand = self._ledger(location_id)[0]
        on_hand[product_id] = on_hand.get(product_id, 0.0) + quantity


CUSTOMER = {"ID": "c1", "Name": "Corner Cafe", "Currency": "NZD", "Contacts": [{"Name": "Sam", "Email": "s@x"}],
            "Addresses": [{"Line1": "1 Road"}]}
LOCATION = {"ID": "loc-1", "Name": "Main Warehouse"}
LOCATION_2 = {"ID": "loc-2", "Name": "Overflow"}


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
    first = {"TrackingNumber": "T1", "IsShipped": True}
    sales.set_ship(env, doc, task, {"Status": "PARTIALLY AUTHORISED", "Lines": [first]})
    assert doc["CombinedShippingStatus"] == "SHIPPING"
    with pytest.raises(SaleError, match="already shipped must be kept"):
        sales.set_ship(env, doc, task, {"Status": "AUTHORISED", "Lines": [{"TrackingNumber": "T2"}]})
    with pytest.raises(SaleError, match="cannot go back to DRAFT"):
        sales.set_ship(env, doc, task, {"Status": "DRAFT", "Lines": [first]})
    sales.set_ship(env, doc, task, {"Status": "AUTHORISED", "Lines": [first, {"TrackingNumber": "T2"}]})
    assert [line["TrackingNumber"] for line in task["Ship"]["Lines"]] == ["T1", "T2"]
    with pytest.raises(SaleError, match="Ship is already AUTHORISED"):
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


# ---------------------------------------------------------------- pick locations, payments, invoice undo, relocation


def test_pick_line_from_another_location_moves_the_hold_and_ships_from_there() -> None:
    env = FakeEnv(stock_2={"p1": 10.0})
    doc = authorised(env)  # 4 x p1 allocated at Main Warehouse
    assert env.held("sale-1", "p1") == {"loc-1": 4.0}
    task = sales.task_for_stage(env, doc, "sale-1")
    sales.set_pick(env, doc, task, {"Status": "AUTHORISED", "Lines": [
        {"ProductID": "p1", "Quantity": 3, "Location": "Overflow"}, {"ProductID": "p1", "Quantity": 1}]})
    assert [(line["Location"], line["LocationID"], line["Quantity"]) for line in task["Pick"]["Lines"]] == [
        ("Overflow", "loc-2", 3.0), ("Main Warehouse", "loc-1", 1.0)]
    assert env.held("sale-1", "p1") == {"loc-1": 1.0, "loc-2": 3.0}  # never more than ordered
    sales.set_pack(env, doc, task, {"Status": "AUTHORISED"})
    sales.set_ship(env, doc, task, {"Status": "AUTHORISED"})
    assert (env.on_hand["p1"], env.on_hand_2["p1"]) == (99.0, 7.0)
    sales.undo_sale(env, doc)  # shipped stock returns where it was picked from
    assert (env.on_hand["p1"], env.on_hand_2["p1"]) == (100.0, 10.0)
    assert env.held("sale-1", "p1") == {}


def test_pick_refused_without_stock_at_the_line_location() -> None:
    env = FakeEnv(stock_2={"p1": 2.0})
    doc = authorised(env)
    task = sales.task_for_stage(env, doc, "sale-1")
    with pytest.raises(SaleError, match="Not enough stock at location Overflow for SKU TEA-1"):
        sales.set_pick(env, doc, task, {"Status": "AUTHORISED", "Lines": [
            {"ProductID": "p1", "Quantity": 4, "LocationID": "loc-2"}]})
    assert env.held("sale-1", "p1") == {"loc-1": 4.0}  # nothing moved
    sales.set_pick(env, doc, task, {"Status": "DRAFT", "Lines": [  # a draft takes no stock: allowed
        {"ProductID": "p1", "Quantity": 4, "LocationID": "loc-2"}]})
    with pytest.raises(SaleError, match="Location not found"):
        sales.set_pick(env, doc, task, {"Status": "AUTHORISED", "Lines": [
            {"ProductID": "p1", "Quantity": 4, "Location": "Nowhere"}]})


def test_location_changes_only_while_the_order_is_not_authorised() -> None:
    env = FakeEnv(stock_2={"p1": 10.0})
    doc = new_sale(env)
    sales.update_sale(env, doc, {"Location": "Overflow"})
    assert doc["Location"] == "Overflow"
    sales.set_order(env, doc, {"Status": "AUTHORISED", "Lines": [{"ProductID": "p1", "Quantity": 4}]})
    assert env.held("sale-1", "p1") == {"loc-2": 4.0}  # allocated at the (new) header location
    with pytest.raises(SaleError, match="Location cannot be changed while the Order is AUTHORISED"):
        sales.update_sale(env, doc, {"LocationID": "loc-1"})
    with pytest.raises(SaleError, match="Location not found"):
        sales.update_sale(env, doc, {"Location": "Nowhere"})
    sales.undo_sale(env, doc)
    sales.update_sale(env, doc, {"LocationID": "loc-1"})
    sales.set_order(env, doc, {"Status": "AUTHORISED"})
    assert doc["Location"] == "Main Warehouse" and env.held("sale-1", "p1") == {"loc-1": 4.0}


def test_payments_partial_full_delete_and_the_undo_rules() -> None:
    env = FakeEnv()
    doc = authorised(env)
    invoice = sales.add_invoice(env, doc, {"Status": "AUTHORISED", "InvoiceDate": "2026-11-20"})
    assert invoice["InvoiceDate"] == "2026-11-20T00:00:00" and invoice["Total"] == 48.4
    first = sales.add_payment(env, doc, invoice, 20.0, 0.93, reference="BANK 1", date_paid="2026-11-21",
                              account="1110")
    assert first["DatePaid"] == "2026-11-21T00:00:00" and first["Reference"] == "BANK 1"
    assert invoice["Status"] == "AUTHORISED" and doc["CombinedPaymentStatus"] == "PARTIALLY PAID"
    with pytest.raises(SaleError, match=r"exceeds the balance 28\.40"):
        sales.add_payment(env, doc, invoice, 30.0, 0.93)
    with pytest.raises(SaleError, match="payments"):
        sales.undo_sale(env, doc)  # any payment blocks Undo, not only a PAID invoice
    with pytest.raises(SaleError, match="has payments"):
        sales.void_invoice(env, doc, invoice["TaskID"], void=False)
    second = sales.add_payment(env, doc, invoice, 28.4, 0.93)
    assert invoice["Status"] == "PAID" and invoice["Paid"] == 48.4
    sales.delete_payment(env, doc, second["ID"])
    assert invoice["Status"] == "AUTHORISED" and invoice["Paid"] == 20.0
    sales.update_payment(env, doc, first["ID"], {"Amount": 48.4})
    assert invoice["Status"] == "PAID"
    assert [row["Amount"] for row in sales.payment_rows(doc)] == [48.4]
    with pytest.raises(SaleError, match="not found"):
        sales.delete_payment(env, doc, "nope")


def test_invoice_undo_void_and_reauthorise_keep_number_and_totals() -> None:
    env = FakeEnv()
    doc = authorised(env)
    invoice = sales.add_invoice(env, doc, {"Status": "AUTHORISED"})
    number, total = invoice["InvoiceNumber"], invoice["Total"]
    sales.void_invoice(env, doc, invoice["TaskID"], void=False)
    assert invoice["Status"] == "DRAFT" and doc["Status"] == "INVOICING"
    with pytest.raises(SaleError, match="Nothing to undo"):
        sales.void_invoice(env, doc, invoice["TaskID"], void=False)
    sales.update_invoice(env, doc, invoice, {"Status": "AUTHORISED", "InvoiceDate": "2026-11-01",
                                             "Lines": [{"ProductID": "p1", "Quantity": 4}]})
    assert (invoice["Status"], invoice["InvoiceNumber"], invoice["Total"]) == ("AUTHORISED", number, total)
    assert invoice["InvoiceDate"] == "2026-11-01T00:00:00"
    with pytest.raises(SaleError, match="only while DRAFT"):
        sales.update_invoice(env, doc, invoice, {"Status": "AUTHORISED"})
    sales.void_invoice(env, doc, invoice["TaskID"], void=True)
    assert invoice["Status"] == "VOIDED" and doc["CombinedInvoiceStatus"] == "NOT INVOICED"
    again = sales.add_invoice(env, doc, {"Status": "DRAFT", "Lines": [{"ProductID": "p1", "Quantity": 1}]})
    assert again["Total"] == 12.1  # a quarter of the order line, pro rata
    with pytest.raises(SaleError, match="only 3 left to invoice"):
        sales.add_invoice(env, doc, {"Lines": [{"ProductID": "p1", "Quantity": 4}]})
