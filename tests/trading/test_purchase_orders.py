"""850 to sale: item resolution, per-line decisions (accept, backorder, reject), the sale Cin7 Core is asked to
create, whole-PO rejection that writes nothing, and the 855 built from the decisions."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gp_pipelines.automation import trading
from gp_pipelines.automation.trading import TradingError, build_855, resolve_items, sale_from_purchase_order
from gp_pipelines.edi.models import OrderLine, Party, PurchaseOrder
from tests.trading.conftest import partner_config

PRODUCTS = [
    {"ID": "p1", "SKU": "TEA-1", "Barcode": "012345678905", "Name": "Green Tea", "Status": "Active",
     "PriceTier1": 15.0, "PriceTier2": 10.0, "PriceTiers": {"Retail": 15.0, "Wholesale": 10.0}},
    {"ID": "p2", "SKU": "MUG-2", "Barcode": "9312345678907", "Name": "Mug", "Status": "Active",
     "PriceTiers": {"Retail": 6.0, "Wholesale": 4.5}},
    {"ID": "p3", "SKU": "OLD-3", "Barcode": "036000291452", "Name": "Old Kettle", "Status": "Deprecated",
     "PriceTiers": {"Wholesale": 20.0}},
    {"ID": "p4", "SKU": "SPECIAL-4", "Barcode": "", "Name": "Gift Box", "Status": "Active",
     "PriceTiers": {"Wholesale": 7.25}},
]  # fmt: skip
CUSTOMER = {"ID": "c1", "Name": "Retail Co", "Currency": "AUD", "PriceTier": "Retail", "TaxRule": "GST on Income",
            "Status": "Active"}  # fmt: skip
STORE = Party("ST", "Store 12", "92", "0012", ["1 High Street"], "Sydney", "NSW", "2000", "AU")


def line(number: str, quantity: int, price: str | None, **ids: str) -> OrderLine:
    return OrderLine(number, Decimal(quantity), "EA", Decimal(price) if price else None, ids)


def order(*lines: OrderLine, parties: list[Party] | None = None, **fields) -> PurchaseOrder:
    return PurchaseOrder("PO-1001", "20261123", parties=[STORE] if parties is None else parties, lines=list(lines),
                         **fields)  # fmt: skip


def decide(po: PurchaseOrder, available=None, **config):
    return sale_from_purchase_order(po, partner_config(**config), CUSTOMER, PRODUCTS, available=available)


def test_items_resolve_by_upc_sku_and_item_map():
    po = order(
        line("1", 1, None, UP="012345678905"),
        line("2", 1, None, EN="0012345678905"),  # the same GTIN written as an EAN-13
        line("3", 1, None, BP="RET-55", VN="MUG-2"),
        line("4", 1, None, BP="B-777"),
        line("5", 1, None, SK="tea-1"),
        line("6", 1, None, UP="999999999993"),
        line("7", 1, None, UP="036000291452"),
    )
    partner = partner_config(item_map={"B-777": "SPECIAL-4"}, item_match=["upc", "sku", "buyer_part", "vendor_part"])
    matches = resolve_items(po, partner, PRODUCTS)
    assert [(m.product["ID"] if m.product else None, m.matched_by) for m in matches] == [
        ("p1", "upc"), ("p1", "upc"), ("p2", "vendor_part"), ("p4", "item_map"), ("p1", "sku"), (None, ""),
        (None, "upc"),
    ]  # fmt: skip
    assert "unknown item (UP 999999999993" in matches[5].reason
    assert "deprecated" in matches[6].reason
    # A partner matched by UPC only does not find items by part numbers.
    only_upc = resolve_items(po, partner_config(item_match=["upc"]), PRODUCTS)
    assert only_upc[2].product is None and only_upc[3].product is None


def test_item_map_to_a_sku_cin7_lacks_is_named():
    (match,) = resolve_items(order(line("1", 1, None, BP="X")), partner_config(item_map={"X": "NOPE"}), PRODUCTS)
    assert match.product is None and "SKU NOPE" in match.reason


def test_unknown_item_is_rejected_and_the_sale_carries_the_good_lines():
    po = order(line("1", 2, "10.00", UP="012345678905"), line("2", 3, "4.50", UP="999999999993"))
    draft = decide(po)
    assert draft.accepted
    assert [(d.line_number, d.status) for d in draft.decisions] == [("1", "accepted"), ("2", "rejected")]
    assert "unknown item" in draft.decisions[1].reason
    assert draft.sale["ExternalID"] == draft.sale["CustomerReference"] == "PO-1001"
    assert draft.sale["CustomerID"] == "c1" and draft.sale["PriceTier"] == "Wholesale"
    assert draft.sale["Location"] == "Main Warehouse" and draft.sale["SaleOrderDate"] == "2026-11-23T00:00:00"
    assert draft.sale["ShippingAddress"]["Line1"] == "1 High Street"
    body = draft.order_body("sale-1")
    assert body["SaleID"] == "sale-1" and body["Status"] == "AUTHORISED"
    assert [(x["ProductID"], x["Quantity"], x["Price"], x["Total"], x["Comment"]) for x in body["Lines"]] == [
        ("p1", 2.0, 10.0, 20.0, "PO line 1")
    ]


def test_price_mismatch_beyond_the_tolerance_is_rejected():
    po = order(line("1", 1, "12.00", UP="012345678905"), line("2", 1, "4.54", VN="MUG-2"))
    draft = decide(po, price_tolerance=0.05)
    assert [d.status for d in draft.decisions] == ["rejected", "accepted"]
    assert "price mismatch: PO 12.00, Cin7 'Wholesale' tier 10.00" in draft.decisions[0].reason
    # The PO price is what the sale uses (the retailer pays what its PO says).
    assert draft.order_lines[0]["Price"] == 4.54
    generous = decide(po, price_tolerance="20%")
    assert [d.status for d in generous.decisions] == ["accepted", "accepted"]
    assert generous.order_lines[0]["Price"] == 12.0
    # Without a PO price the tier price is used.
    assert decide(order(line("1", 1, None, VN="MUG-2"))).order_lines[0]["Price"] == 4.5


def test_backorder_when_stock_is_short():
    po = order(line("1", 5, None, UP="012345678905"), line("2", 2, None, VN="TEA-1"), line("3", 1, None, VN="MUG-2"))
    draft = decide(po, available={"p1": 6, "p2": 0})
    statuses = [(d.status, d.ack_statuses) for d in draft.decisions]
    assert statuses == [
        ("accepted", [("IA", Decimal(5))]),
        ("backordered", [("IA", Decimal(1)), ("IB", Decimal(1))]),  # the first line took 5 of the 6
        ("backordered", [("IB", Decimal(1))]),
    ]
    assert draft.accepted and len(draft.order_lines) == 3  # backordered lines are sold; Cin7 backorders them


def test_a_po_with_nothing_acceptable_is_rejected_whole_and_writes_nothing():
    draft = decide(order(line("1", 1, None, UP="999999999993")))
    assert not draft.accepted and draft.sale is None and draft.order_lines == []
    assert draft.problems == ["no line of the PO can be accepted"]
    with pytest.raises(TradingError, match="rejected"):
        draft.order_body("sale-1")
    ack = build_855(order(line("1", 1, None, UP="999999999993")), draft.decisions, "")
    assert ack.ack_type == "RD" and ack.seller_order_number == ""


@pytest.mark.parametrize(
    ("po", "config", "problem"),
    [
        (order(line("1", 1, None, UP="012345678905"), line("2", 1, None, UP="9")), {"partial_acceptance": False},
         "takes whole POs only"),
        (order(line("1", 1, None, UP="012345678905"), purpose="01"), {}, "BEG01 purpose 01"),
        (order(line("1", 1, None, UP="012345678905"), currency="USD"), {}, "PO currency USD differs"),
        (order(line("1", 1, None, UP="012345678905"), parties=[Party("ST", "Store 99", "92", "0099")]), {},
         "ship-to code 0099 is not in partner 'retail'"),
    ],
)  # fmt: skip
def test_header_problems_reject_the_whole_po(po, config, problem):
    draft = decide(po, **config)
    assert not draft.accepted and draft.sale is None
    assert any(problem in text for text in draft.problems), draft.problems
    assert all(d.status == "rejected" for d in draft.decisions)
    assert draft.decisions[0].reason.startswith("purchase order rejected:") or "unknown" in draft.decisions[0].reason


def test_ship_to_codes_map_to_customers_and_addresses():
    partner = partner_config(ship_to={
        "0099": {"customer": "Store Customer", "name": "DC West",
                 "address": {"line1": "9 Dock Road", "city": "Perth", "state": "WA", "postcode": "6000"}},
        "0012": {"name": "Store Twelve"},
    })  # fmt: skip
    dc = order(line("1", 1, None, UP="012345678905"), parties=[Party("ST", "x", "92", "0099")])
    assert trading.customer_reference(dc, partner) == "Store Customer"
    assert trading.customer_reference(order(line("1", 1, None)), partner) == "Wattle Co-op 8"
    resolved = trading.resolve_ship_to(dc, partner)
    assert resolved.address["Line1"] == "9 Dock Road" and resolved.address["Company"] == "DC West"
    # A known code without a configured address keeps the PO's address under the configured name.
    store = trading.resolve_ship_to(order(line("1", 1, None)), partner)
    assert (store.address["Company"], store.address["City"]) == ("Store Twelve", "Sydney")
    customers = [{"ID": "AB-1", "Name": "Store Customer"}, {"ID": "c2", "Name": "Other"}]
    assert trading.find_customer(customers, "store customer")["ID"] == "AB-1"
    assert trading.find_customer(customers, "ab-1")["Name"] == "Store Customer"
    assert trading.find_customer(customers, "Nobody") is None
    with pytest.raises(TradingError, match="no Cin7 customer"):
        trading.customer_reference(dc, partner_config(customer=None))


def test_855_from_decisions():
    po = order(line("1", 5, "10.00", UP="012345678905"), line("2", 2, "4.50", VN="MUG-2"),
               line("3", 1, "1.00", UP="999999999993"))  # fmt: skip
    draft = decide(po, available={"p1": 100, "p2": 1})
    ack = build_855(po, draft.decisions, "SO-00042")
    assert (ack.po_number, ack.po_date, ack.ack_type, ack.seller_order_number) == ("PO-1001", "20261123", "AC",
                                                                                    "SO-00042")  # fmt: skip
    assert [(a.line_number, a.quantity, a.product_ids, [(s.status, s.quantity) for s in a.statuses])
            for a in ack.lines] == [
        ("1", Decimal(5), {"UP": "012345678905"}, [("IA", Decimal(5))]),
        ("2", Decimal(2), {"VN": "MUG-2"}, [("IA", Decimal(1)), ("IB", Decimal(1))]),
        ("3", Decimal(1), {"UP": "999999999993"}, [("IR", Decimal(1))]),
    ]  # fmt: skip
    everything = decide(order(line("1", 5, "10.00", UP="012345678905")))
    assert build_855(order(line("1", 5, "10.00", UP="012345678905")), everything.decisions, "SO-1").ack_type == "AD"
    with pytest.raises(TradingError, match="2 lines but 1 decisions"):
        build_855(po.__class__("PO-2", "20261123", lines=po.lines[:2]), everything.decisions, "SO-1")


def test_same_po_finds_its_existing_sale():
    sales = [{"ID": "s1", "ExternalID": "PO-1001", "Status": "VOIDED"}, {"ID": "s2", "ExternalID": "PO-1001",
             "Status": "ORDERED"}, {"ID": "s3", "ExternalID": "PO-9", "Status": "ORDERED"}]  # fmt: skip
    assert trading.existing_sale_for_po(sales, "PO-1001")["ID"] == "s2"
    assert trading.existing_sale_for_po(sales, "PO-7") is None


def test_tier_prices_by_name_and_number():
    assert trading.tier_price(PRODUCTS[0], "wholesale") == Decimal("10.00")
    assert trading.tier_price(PRODUCTS[0], "Tier 1") == Decimal("15.00")
    assert trading.tier_price(PRODUCTS[0], "2") == Decimal("10.00")
    assert trading.tier_price(PRODUCTS[0], "VIP") is None
