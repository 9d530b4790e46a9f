"""Hypothesis strategies for random, valid models of every set."""

from __future__ import annotations

import string
from datetime import date, time

from hypothesis import strategies as st

from gp_pipelines.edi import models as m

WORD = string.ascii_uppercase + string.digits + "-./#&"
text = st.text(alphabet=WORD, min_size=1, max_size=12)
maybe_text = st.one_of(st.just(""), text)
phrase = st.lists(text, min_size=1, max_size=3).map(" ".join)  # spaces inside, never at the ends
code2 = st.text(alphabet=string.ascii_uppercase, min_size=2, max_size=2)
digits3 = st.text(alphabet=string.digits, min_size=3, max_size=3)
quantity = st.decimals(min_value=0, max_value=99_999, places=2, allow_nan=False, allow_infinity=False)
maybe_quantity = st.one_of(st.none(), quantity)
x12_date = st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)).map(lambda d: d.strftime("%Y%m%d"))
x12_time = st.times().map(lambda t: time(t.hour, t.minute).strftime("%H%M"))


def product_ids(min_size: int = 0, max_size: int = 3):
    return st.dictionaries(code2, text, min_size=min_size, max_size=max_size)


@st.composite
def parties(draw, max_size: int = 3) -> list[m.Party]:
    result = []
    for _ in range(draw(st.integers(0, max_size))):
        has_id = draw(st.booleans())
        result.append(m.Party(
            role=draw(code2), name=draw(st.one_of(st.just(""), phrase)),
            id_qualifier=draw(code2) if has_id else "",
            id=draw(st.text(WORD, min_size=2, max_size=12)) if has_id else "",
            address_lines=draw(st.lists(phrase, max_size=3)), city=draw(maybe_text), state=draw(maybe_text),
            postal_code=draw(maybe_text), country=draw(maybe_text),
        ))  # fmt: skip
    return result


def order_line(cls=m.OrderLine, **extra):
    return st.builds(cls, line_number=text, quantity=quantity, uom=code2, unit_price=maybe_quantity,
                     product_ids=product_ids(), description=st.one_of(st.just(""), phrase), **extra)  # fmt: skip


purchase_orders = st.builds(
    m.PurchaseOrder, po_number=text, po_date=x12_date, purpose=st.sampled_from(["00", "01", "05"]),
    order_type=code2, currency=st.one_of(st.just(""), st.just("USD")),
    references=st.dictionaries(code2, text, max_size=3), dates=st.dictionaries(digits3, x12_date, max_size=3),
    parties=parties(), lines=st.lists(order_line(), min_size=1, max_size=5),
)  # fmt: skip

line_statuses = st.builds(
    m.LineStatus,
    status=code2,
    quantity=maybe_quantity,
    uom=st.one_of(st.just(""), code2),
    date_qualifier=st.one_of(st.just(""), digits3),
    date=st.one_of(st.just(""), x12_date),
)
purchase_order_acks = st.builds(
    m.PurchaseOrderAck, po_number=text, po_date=x12_date, purpose=st.sampled_from(["00", "06"]), ack_type=code2,
    seller_order_number=maybe_text, ack_date=st.one_of(st.just(""), x12_date), parties=parties(),
    lines=st.lists(order_line(m.AckLine, statuses=st.lists(line_statuses, max_size=3)), max_size=4),
)  # fmt: skip

ship_items = st.builds(m.ShipItem, product_ids=product_ids(1), quantity_shipped=quantity, uom=code2,
                       line_number=maybe_text, quantity_ordered=maybe_quantity,
                       description=st.one_of(st.just(""), phrase))  # fmt: skip
packs = st.builds(
    m.Pack,
    sscc=st.one_of(st.just(""), st.text(string.digits, min_size=18, max_size=20)),
    level=st.sampled_from(["P", "T"]),
    items=st.lists(ship_items, max_size=3),
)


@st.composite
def shipments(draw) -> m.Shipment:
    has_weight = draw(st.booleans())
    return m.Shipment(
        lading_quantity=draw(maybe_quantity), packaging_code=draw(st.one_of(st.just(""), st.just("CTN25"))),
        weight=draw(quantity) if has_weight else None, weight_uom="LB" if has_weight else "",
        carrier_scac=draw(maybe_text), transport_method=draw(st.one_of(st.just(""), st.just("M"))),
        bill_of_lading=draw(maybe_text), tracking_number=draw(maybe_text),
        shipped_date=draw(st.one_of(st.just(""), x12_date)), parties=draw(parties()),
    )  # fmt: skip


ship_notices = st.builds(
    m.ShipNotice, shipment_id=st.text(WORD, min_size=2, max_size=12), date=x12_date, time=x12_time,
    purpose=st.sampled_from(["00", "05", "14"]), structure_code=st.sampled_from(["0001", "0002"]),
    shipment=shipments(),
    orders=st.lists(st.builds(m.ShipOrder, po_number=text, po_date=st.one_of(st.just(""), x12_date),
                              invoice_number=maybe_text, packs=st.lists(packs, max_size=3),
                              items=st.lists(ship_items, max_size=3)), max_size=3),
)  # fmt: skip

inventory_advices = st.builds(
    m.InventoryAdvice, reference=text, date=x12_date, purpose=st.just("00"), report_type=code2, parties=parties(),
    items=st.lists(st.builds(m.InventoryItem, product_ids=product_ids(1), line_number=maybe_text,
                             description=st.one_of(st.just(""), phrase),
                             quantities=st.lists(st.builds(m.Quantity, qualifier=digits3.map(lambda s: s[:2]),
                                                           quantity=quantity, uom=code2), max_size=3)),
                   min_size=1, max_size=5),
)  # fmt: skip

invoices = st.builds(
    m.Invoice, invoice_number=text, invoice_date=x12_date, po_number=maybe_text,
    po_date=st.one_of(st.just(""), x12_date), total_amount=quantity, parties=parties(),
    lines=st.lists(st.builds(m.InvoiceLine, line_number=text, quantity=quantity, uom=code2, unit_price=quantity,
                             product_ids=product_ids(), description=st.one_of(st.just(""), phrase)), max_size=5),
)  # fmt: skip


@st.composite
def warehouse_orders(draw) -> m.WarehouseShippingOrder:
    has_carrier = draw(st.booleans())
    return m.WarehouseShippingOrder(
        order_number=draw(text), po_number=draw(maybe_text), status=draw(st.sampled_from(["N", "C", "R"])),
        parties=draw(parties()), dates=draw(st.dictionaries(code2, x12_date, max_size=2)),
        notes=draw(st.lists(phrase, max_size=2)),
        carrier_scac=draw(maybe_text) if has_carrier else "", payment_method="PP" if has_carrier else "",
        transport_method="M" if has_carrier else "", routing=draw(maybe_text) if has_carrier else "",
        lines=draw(st.lists(st.builds(m.WarehouseOrderLine, line_number=text, quantity=quantity, uom=code2,
                                      upc=maybe_text, product_ids=product_ids(max_size=2),
                                      description=st.one_of(st.just(""), phrase)), max_size=5)),
    )  # fmt: skip


warehouse_advices = st.builds(
    m.WarehouseShippingAdvice, order_number=text, ship_date=x12_date, shipment_id=maybe_text, po_number=maybe_text,
    reporting_code=st.sampled_from(["F", "P"]), parties=parties(), transport_method=st.sampled_from(["M", "H"]),
    carrier_scac=maybe_text, routing=maybe_text, payment_method=st.one_of(st.just(""), st.just("PP")),
    total_weight=maybe_quantity, weight_uom=st.one_of(st.just(""), st.just("LB")),
    lines=st.lists(st.builds(m.WarehouseAdviceLine, line_number=text, status=code2, quantity_ordered=maybe_quantity,
                             quantity_shipped=quantity, uom=code2, quantity_difference=maybe_quantity, upc=maybe_text,
                             product_ids=product_ids(max_size=1), lot=maybe_text,
                             description=st.one_of(st.just(""), phrase), license_plate=maybe_text), max_size=5),
)  # fmt: skip

digit_codes = st.integers(1, 30).map(str)
functional_acks = st.builds(
    m.FunctionalAck, functional_id=code2, group_control_number=st.integers(1, 999_999_999).map(str),
    status=st.sampled_from(["A", "E", "P", "R"]), sets_included=st.integers(0, 999),
    sets_received=st.integers(0, 999), sets_accepted=st.integers(0, 999),
    group_codes=st.lists(digit_codes, max_size=5),
    sets=st.lists(st.builds(
        m.SetAck, set_id=digits3, control_number=st.text(string.digits, min_size=4, max_size=9),
        status=st.sampled_from(["A", "E", "R"]), codes=st.lists(digit_codes, max_size=5),
        segments=st.lists(st.builds(
            m.SegmentError, segment_id=st.text(string.ascii_uppercase, min_size=2, max_size=3),
            position=st.integers(1, 9999), code=st.one_of(st.just(""), st.integers(1, 8).map(str)),
            loop_id=st.one_of(st.just(""), code2),
            elements=st.lists(st.builds(m.ElementError, position=st.integers(1, 99).map(str), code=digit_codes,
                                        reference=st.one_of(st.just(""), st.integers(1, 999).map(str)),
                                        bad_value=maybe_text), max_size=3)), max_size=3)), max_size=4),
)  # fmt: skip

DOCUMENTS = {
    "850": purchase_orders, "855": purchase_order_acks, "856": ship_notices, "846": inventory_advices,
    "810": invoices, "940": warehouse_orders(), "945": warehouse_advices, "997": functional_acks,
}  # fmt: skip
