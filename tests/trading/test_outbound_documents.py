"""856, 810 and 846 from Cin7-shaped records: quantities, labels and totals exactly as Cin7 Core has them, and
documents the X12 validator finds nothing wrong with. (The HTTP round trip with the retailer is in
test_partner_flow.py.)"""

from __future__ import annotations

import copy
import io
from decimal import Decimal

import pytest

from gp_pipelines.automation import trading
from gp_pipelines.automation.trading import TradingError, build_810, build_846, build_846_feed, build_856
from gp_pipelines.edi.validator import iter_event_issues, iter_events
from gp_pipelines.edi.writer import CountingControlNumbers, EnvelopeSettings, write_interchange
from tests.trading.conftest import GS1_PREFIX, NOW, partner_config
from tests.trading.test_purchase_orders import PRODUCTS


def _line(product: str, sku: str, qty: float, price: float, total: float, po_line: str, discount: float = 0.0):
    return {"ProductID": product, "SKU": sku, "Name": sku.title(), "Quantity": qty, "Price": price,
            "Discount": discount, "Total": total, "Comment": f"PO line {po_line}"}  # fmt: skip


def _task(number: int, lines: list[tuple[str, float, str]], status: str = "AUTHORISED", carrier: str = "UPS"):
    return {
        "TaskID": f"t{number}", "FulfillmentNumber": number, "FulFilmentStatus": "FULFILLED",
        "Pick": {"Status": "AUTHORISED", "Lines": [{"ProductID": p, "Quantity": q} for p, q, _ in lines]},
        "Pack": {"Status": "AUTHORISED", "Lines": [{"ProductID": p, "Quantity": q, "Box": b} for p, q, b in lines]},
        "Ship": {"Status": status, "Lines": [{"ShipmentDate": "2026-11-24T00:00:00", "Carrier": carrier,
                                              "Boxes": "Box 1, Box 2", "TrackingNumber": f"1Z{number:016d}"}]},
    }  # fmt: skip


SALE = {
    "ID": "s-1", "Customer": "Wattle Co-op 8", "Location": "Main Warehouse", "Carrier": "UPS",
    "ExternalID": "PO-77", "CustomerReference": "PO-77", "TaxCalculation": "Exclusive", "Terms": "30 days",
    "ShippingAddress": {"Company": "Store 12", "Line1": "1 High Street", "City": "Sydney", "State": "NSW",
                        "Postcode": "2000", "Country": "Australia"},
    "BillingAddress": {"Line1": "81 Smith Street", "City": "Sydney", "State": "NSW", "Postcode": "2000",
                       "Country": "AU"},
    "Order": {"SaleOrderNumber": "SO-00077", "Lines": [
        _line("p1", "TEA-1", 6.0, 10.0, 60.0, "1"),
        _line("p2", "MUG-2", 3.0, 4.55, 12.29, "2", discount=10.0),  # 13.65 less 10% = 12.285 -> 12.29
        _line("p1", "TEA-1", 2.0, 10.0, 20.0, "3"),  # the same item on a second PO line
    ]},
    "Fulfilments": [
        _task(1, [("p1", 4.0, "Box 1"), ("p2", 3.0, "Box 2")]),
        _task(2, [("p1", 4.0, "Box A")]),
    ],
    "Invoices": [{
        "InvoiceNumber": "INV-00077", "InvoiceDate": "2026-11-25T00:00:00", "InvoiceDueDate": "2026-12-25T00:00:00",
        "Status": "AUTHORISED",
        "Lines": [
            {**_line("p1", "TEA-1", 6.0, 10.0, 60.0, "1"), "Tax": 6.0},
            {**_line("p2", "MUG-2", 3.0, 4.55, 12.29, "2", discount=10.0), "Tax": 1.23},
            {**_line("p1", "TEA-1", 2.0, 10.0, 20.0, "3"), "Tax": 2.0},
        ],
        "AdditionalCharges": [{"Description": "Freight", "Price": 15.0, "Quantity": 1, "Total": 15.0, "Tax": 1.5}],
        "TotalBeforeTax": 107.29, "Tax": 10.73, "Total": 118.02,
    }],
}  # fmt: skip


def validation_errors(document) -> list[str]:
    settings = EnvelopeSettings(sender_id="GPPIPELINES", receiver_id="RETAILSBX", usage="T")
    text = write_interchange([document], settings, CountingControlNumbers(), NOW)
    events = iter_events(io.BytesIO(text.encode()))
    return [str(issue) for event in events for issue in iter_event_issues(event) if issue.is_error]


def test_856_allocates_a_later_fulfilment_to_the_po_lines_still_open():
    first = build_856(SALE, SALE["Fulfilments"][0], partner_config(), "PO-77", [1, 2], products=PRODUCTS, now=NOW)
    packs = first.orders[0].packs
    assert [(p.sscc, [(i.line_number, i.quantity_shipped, i.quantity_ordered) for i in p.items]) for p in packs] == [
        (trading.sscc18(0, GS1_PREFIX, 1), [("1", Decimal(4), Decimal(6))]),
        (trading.sscc18(0, GS1_PREFIX, 2), [("2", Decimal(3), Decimal(3))]),
    ]
    assert packs[0].items[0].product_ids == {"UP": "012345678905", "VN": "TEA-1"}  # no 850 at hand: our ids
    assert (first.shipment_id, first.structure_code, first.shipment.carrier_scac) == ("SO-00077-1", "0001", "UPSN")
    assert (first.shipment.transport_method, first.shipment.shipped_date) == ("U", "20261124")
    assert first.shipment.parties[0].country == "AU" and first.shipment.parties[0].name == "Store 12"
    # The second fulfilment ships 4 more of TEA-1: 2 close PO line 1, 2 go to PO line 3.
    second = build_856(SALE, SALE["Fulfilments"][1], partner_config(), "", [3], now=NOW)
    (pack,) = second.orders[0].packs
    assert [(i.line_number, i.quantity_shipped) for i in pack.items] == [("1", Decimal(2)), ("3", Decimal(2))]
    assert second.orders[0].po_number == "PO-77"  # from ExternalID
    assert validation_errors(first) == [] and validation_errors(second) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda sale: sale["Fulfilments"][0]["Ship"].update(Status="DRAFT"), "is not shipped"),
        (lambda sale: sale["Fulfilments"][0]["Ship"]["Lines"][0].update(Carrier="Pigeon Post"),
         "carrier 'Pigeon Post' has no SCAC; add it to partner 'retail'"),
        (lambda sale: sale["Fulfilments"][0]["Pack"]["Lines"][0].update(Quantity=5.0), "packed"),
        (lambda sale: sale["Order"]["Lines"][0].update(Quantity=1.0), "more of product p1 than the order has left"),
    ],
)  # fmt: skip
def test_856_refuses_what_cin7_does_not_support(change, message):
    sale = copy.deepcopy(SALE)
    change(sale)
    with pytest.raises(TradingError, match=message):
        build_856(sale, sale["Fulfilments"][0], partner_config(), "PO-77", [1, 2])


def test_856_needs_a_serial_per_box():
    with pytest.raises(TradingError, match="not enough SSCC serials for box 'Box 2'"):
        build_856(SALE, SALE["Fulfilments"][0], partner_config(), "PO-77", [1])


def test_810_totals_equal_the_cin7_invoice_to_the_cent():
    invoice = build_810(SALE, SALE["Invoices"][0], "PO-77", products=PRODUCTS)
    assert (invoice.invoice_number, invoice.invoice_date, invoice.po_number) == ("INV-00077", "20261125", "PO-77")
    assert invoice.total_amount == Decimal("118.02") == invoice.computed_total()
    assert [(line.line_number, line.quantity, line.unit_price, line.amount) for line in invoice.lines] == [
        ("1", Decimal(6), Decimal("10.0"), Decimal("60.0")),
        ("2", Decimal(3), Decimal("4.55"), Decimal("12.29")),
        ("3", Decimal(2), Decimal("10.0"), Decimal("20.0")),
    ]
    (discount,) = invoice.lines[1].allowances_charges
    assert (discount.indicator, discount.code, discount.amount, discount.description) == ("A", "C310",
                                                                                          Decimal("1.36"),
                                                                                          "Discount 10%")  # fmt: skip
    assert [(c.indicator, c.code, c.amount) for c in invoice.allowances_charges] == [
        ("C", "D240", Decimal("15.00")), ("C", "H850", Decimal("10.73")),
    ]  # fmt: skip
    assert (invoice.terms[0].net_days, invoice.terms[0].net_due_date) == (30, "20261225")
    assert validation_errors(invoice) == []


def test_810_refuses_a_total_it_cannot_match_and_draft_invoices():
    sale = copy.deepcopy(SALE)
    sale["Invoices"][0]["Total"] = 118.03
    with pytest.raises(TradingError, match=r"add up to 118\.02 but Cin7's Total is 118\.03"):
        build_810(sale, sale["Invoices"][0], "PO-77")
    sale["Invoices"][0]["Status"] = "DRAFT"
    with pytest.raises(TradingError, match="is not authorised"):
        build_810(sale, sale["Invoices"][0], "PO-77")
    # Prices that include tax: the tax is inside the lines, not added on top.
    inclusive = copy.deepcopy(SALE)
    inclusive["TaxCalculation"] = "Inclusive"
    inclusive["Invoices"][0]["Total"] = 107.29
    assert build_810(inclusive, inclusive["Invoices"][0], "PO-77").computed_total() == Decimal("107.29")


STOCK = [
    {"ID": "p1", "SKU": "TEA-1", "Location": "Main Warehouse", "Bin": "A1", "Available": 7.0},
    {"ID": "p1", "SKU": "TEA-1", "Location": "Main Warehouse", "Bin": "B2", "Available": 5.0},
    {"ID": "p1", "SKU": "TEA-1", "Location": "Melbourne 3PL", "Bin": "", "Available": 30.0},
    {"ID": "p2", "SKU": "MUG-2", "Location": "Melbourne 3PL", "Bin": "", "Available": -3.0},
    {"ID": "p3", "SKU": "OLD-3", "Location": "Main Warehouse", "Bin": "", "Available": 50.0},
]


def test_846_offers_available_less_the_buffer_per_item():
    partner = partner_config(item_map={"RET-GIFT": "SPECIAL-4"}, inventory={"safety_buffer": 2})
    advice = build_846(STOCK, partner, PRODUCTS, now=NOW)
    offered = {item.product_ids["VN"]: item.quantities[0].quantity for item in advice.items}
    # 7 + 5 + 30 - 2 = 40; -3 - 2 floors at 0; the deprecated OLD-3 is left out; SPECIAL-4 has no stock.
    assert offered == {"TEA-1": Decimal(40), "MUG-2": Decimal(0), "SPECIAL-4": Decimal(0)}
    gift = next(item for item in advice.items if item.product_ids["VN"] == "SPECIAL-4")
    assert gift.product_ids == {"VN": "SPECIAL-4", "BP": "RET-GIFT"}  # the retailer's own id from item_map
    assert (advice.report_type, advice.date, advice.parties) == ("SI", "20261123", [])
    assert validation_errors(advice) == []
    tenth = build_846(STOCK, partner_config(inventory={"safety_buffer": "10%", "skus": ["TEA-1"]}), PRODUCTS)
    assert [(i.product_ids["VN"], i.quantities[0].quantity) for i in tenth.items] == [("TEA-1", Decimal(37))]


def test_846_feed_per_location():
    partner = partner_config(inventory={"per_location": True, "locations": ["Main Warehouse", "Melbourne 3PL"]})
    feed = build_846_feed(STOCK, partner, PRODUCTS, now=NOW)
    assert [(a.parties[0].role, a.parties[0].name) for a in feed] == [("WH", "Main Warehouse"),
                                                                      ("WH", "Melbourne 3PL")]  # fmt: skip
    assert [{i.product_ids["VN"]: i.quantities[0].quantity for i in a.items}["TEA-1"] for a in feed] == [12, 30]
    assert len({a.reference for a in feed}) == 2
    only_main = partner_config(inventory={"locations": ["Main Warehouse"]})
    (total,) = build_846_feed(STOCK, only_main, PRODUCTS, now=NOW)
    assert {i.product_ids["VN"]: i.quantities[0].quantity for i in total.items}["TEA-1"] == 12
