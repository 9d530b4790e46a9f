"""Hypothesis strategies for random, valid models of every set."""

from __future__ import annotations

import dataclasses
import string
from datetime import date, time
from decimal import Decimal

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


scac = st.text(alphabet=string.ascii_uppercase, min_size=2, max_size=4)
maybe_scac = st.one_of(st.just(""), scac)
line_numbers = st.integers(1, 999_999).map(str)  # LX01 is N0 1/6
amount = st.decimals(min_value=0, max_value=99_999, places=2, allow_nan=False, allow_infinity=False)
maybe_amount = st.one_of(st.none(), amount)
maybe_date = st.one_of(st.just(""), x12_date)
maybe_phrase = st.one_of(st.just(""), phrase)


def product_ids(min_size: int = 0, max_size: int = 3):
    return st.dictionaries(code2, text, min_size=min_size, max_size=max_size)


contacts = st.builds(
    m.Contact, function=st.sampled_from(["IC", "BD", "DC"]), name=maybe_phrase,
    numbers=st.dictionaries(st.sampled_from(["TE", "EM", "FX"]), text, max_size=3),
)  # fmt: skip


@st.composite
def parties(draw, max_size: int = 3) -> list[m.Party]:
    result = []
    for _ in range(draw(st.integers(0, max_size))):
        has_id = draw(st.booleans())
        result.append(m.Party(
            role=draw(st.sampled_from(["ST", "BT", "BY", "VN", "SF", "RE", "WH"])),
            name=draw(phrase) if not has_id else draw(maybe_phrase),  # N1 R0203: a name or an id
            id_qualifier=draw(code2) if has_id else "",
            id=draw(st.text(WORD, min_size=2, max_size=12)) if has_id else "",
            additional_names=draw(st.lists(phrase, max_size=2)),
            address_lines=draw(st.lists(phrase, max_size=3)),
            city=draw(st.one_of(st.just(""), st.text(WORD, min_size=2, max_size=12))),
            state=draw(st.one_of(st.just(""), code2)),
            postal_code=draw(st.one_of(st.just(""), st.text(string.digits, min_size=5, max_size=9))),
            country=draw(st.one_of(st.just(""), st.just("US"), st.just("CA"))),
            contacts=draw(st.lists(contacts, max_size=2)),
        ))  # fmt: skip
    return result


@st.composite
def allowances_charges(draw) -> m.AllowanceCharge:
    has_percent, has_quantity = draw(st.booleans()), draw(st.booleans())
    return m.AllowanceCharge(
        indicator=draw(st.sampled_from(["A", "C"])), code=draw(st.sampled_from(["D240", "C310", "H850", "F050"])),
        amount=draw(maybe_amount), percent_qualifier="1" if has_percent else "",
        percent=draw(st.decimals(0, 99, places=2)) if has_percent else None, rate=draw(maybe_amount),
        uom=draw(code2) if has_quantity else "", quantity=draw(quantity) if has_quantity else None,
        handling_code=draw(st.sampled_from(["", "02", "06"])), reference=draw(maybe_text),
        description=draw(maybe_phrase),
    )  # fmt: skip


payment_terms = st.builds(
    m.PaymentTerms, type_code=st.sampled_from(["01", "05", "08", "14"]),  # never an empty ITD
    basis_date_code=st.sampled_from(["", "1", "3"]),
    discount_percent=st.one_of(st.none(), st.decimals(0, 99, places=2)),
    discount_due_date=maybe_date, discount_days=st.one_of(st.none(), st.integers(0, 999)), net_due_date=maybe_date,
    net_days=st.one_of(st.none(), st.integers(0, 999)), discount_amount=maybe_amount, description=maybe_phrase,
)  # fmt: skip


@st.composite
def carriers(draw) -> m.CarrierRouting:
    code = draw(maybe_scac)
    carrier = m.CarrierRouting(
        carrier_code=code, id_qualifier="2" if code else "",
        transport_method=draw(st.sampled_from(["", "M", "U", "A"])),
        routing=draw(maybe_text), sequence=draw(st.sampled_from(["", "O", "B"])),
        service_level=draw(st.sampled_from(["", "ND", "SE", "CG"])),
    )  # fmt: skip
    if not (code or carrier.transport_method or carrier.routing or carrier.service_level):
        carrier.transport_method = "M"  # TD5 R0204050612: at least one of them
    return carrier


def order_line(cls=m.OrderLine, **extra):
    return st.builds(cls, line_number=text, quantity=quantity, uom=code2, unit_price=maybe_quantity,
                     product_ids=product_ids(), description=st.one_of(st.just(""), phrase), **extra)  # fmt: skip


purchase_orders = st.builds(
    m.PurchaseOrder, po_number=text, po_date=x12_date, purpose=st.sampled_from(["00", "01", "05"]),
    order_type=code2, currency=st.one_of(st.just(""), st.just("USD")),
    references=st.dictionaries(code2, text, max_size=3),
    allowances_charges=st.lists(allowances_charges(), max_size=2), terms=st.lists(payment_terms, max_size=2),
    dates=st.dictionaries(digits3, x12_date, max_size=3), carriers=st.lists(carriers(), max_size=2),
    parties=parties(), lines=st.lists(order_line(), min_size=1, max_size=5),
)  # fmt: skip


@st.composite
def line_statuses(draw) -> m.LineStatus:
    has_quantity, has_date = draw(st.booleans()), draw(st.booleans())  # ACK P0203 and C0504
    return m.LineStatus(
        status=draw(code2), quantity=draw(quantity) if has_quantity else None,
        uom=draw(code2) if has_quantity else "", date_qualifier=draw(digits3) if has_date else "",
        date=draw(x12_date) if has_date else "",
    )  # fmt: skip


purchase_order_acks = st.builds(
    m.PurchaseOrderAck, po_number=text, po_date=x12_date, purpose=st.sampled_from(["00", "06"]),
    ack_type=st.sampled_from(["AC", "AD", "AE", "AK", "RD", "RJ"]),
    seller_order_number=maybe_text, ack_date=st.one_of(st.just(""), x12_date), parties=parties(),
    lines=st.lists(order_line(m.AckLine, statuses=st.lists(line_statuses(), max_size=3)), max_size=4),
)  # fmt: skip

ship_items = st.builds(m.ShipItem, product_ids=product_ids(1), quantity_shipped=quantity, uom=code2,
                       line_number=maybe_text, quantity_ordered=maybe_quantity,
                       description=st.one_of(st.just(""), phrase))  # fmt: skip
cartons = st.builds(
    m.Pack, sscc=st.one_of(st.just(""), st.text(string.digits, min_size=18, max_size=20)), level=st.just("P"),
    items=st.lists(ship_items, min_size=1, max_size=3),
)  # fmt: skip
# A tare (pallet) holds cartons: S-O-T-P-I, allowed by BSN05 0001 with its optional tare level.
tares = st.builds(
    m.Pack, sscc=st.text(string.digits, min_size=18, max_size=18), level=st.just("T"),
    packs=st.lists(cartons, min_size=1, max_size=2),
)  # fmt: skip


@st.composite
def shipments(draw) -> m.Shipment:
    has_weight = draw(st.booleans())
    packaging = draw(st.one_of(st.just(""), st.just("CTN25")))
    lading = st.integers(1, 9_999_999).map(Decimal)  # TD102 is N0; TD101 needs it (C0102)
    return m.Shipment(
        lading_quantity=draw(lading) if packaging else draw(st.one_of(st.none(), lading)),
        packaging_code=packaging,
        weight=draw(quantity) if has_weight else None, weight_uom="LB" if has_weight else "",
        carrier_scac=draw(maybe_scac), transport_method=draw(st.one_of(st.just(""), st.just("M"))),
        bill_of_lading=draw(maybe_text), tracking_number=draw(maybe_text),
        shipped_date=draw(st.one_of(st.just(""), x12_date)), parties=draw(parties()),
    )  # fmt: skip


@st.composite
def ship_orders(draw, structure_code: str) -> m.ShipOrder:
    order = m.ShipOrder(po_number=draw(text), po_date=draw(maybe_date), invoice_number=draw(maybe_text))
    if structure_code == "0001":  # S-O-(T)-P-I: items only inside cartons
        order.packs = draw(st.lists(st.one_of(cartons, tares), max_size=3))
    else:  # 0002 S-O-I(-P): items directly under the order
        order.items = draw(st.lists(ship_items, max_size=3))
    return order


@st.composite
def ship_notices(draw) -> m.ShipNotice:
    structure_code = draw(st.sampled_from(["0001", "0002"]))
    return m.ShipNotice(
        shipment_id=draw(st.text(WORD, min_size=2, max_size=12)), date=draw(x12_date), time=draw(x12_time),
        purpose=draw(st.sampled_from(["00", "05", "14"])), structure_code=structure_code,
        shipment=draw(shipments()), orders=draw(st.lists(ship_orders(structure_code), max_size=3)),
    )  # fmt: skip


inventory_advices = st.builds(
    m.InventoryAdvice, reference=text, date=x12_date, purpose=st.just("00"), report_type=code2, parties=parties(),
    items=st.lists(st.builds(m.InventoryItem, product_ids=product_ids(1), line_number=maybe_text,
                             description=st.one_of(st.just(""), phrase),
                             quantities=st.lists(st.builds(m.Quantity, qualifier=digits3.map(lambda s: s[:2]),
                                                           quantity=quantity, uom=code2), max_size=3)),
                   min_size=1, max_size=5),
)  # fmt: skip


@st.composite
def invoices(draw) -> m.Invoice:
    lines = draw(st.lists(st.builds(
        m.InvoiceLine, line_number=text, quantity=quantity, uom=code2, unit_price=quantity,
        product_ids=product_ids(), description=maybe_phrase,
        allowances_charges=st.lists(allowances_charges(), max_size=2),
    ), max_size=5))  # fmt: skip
    invoice = m.Invoice(
        invoice_number=draw(text), invoice_date=draw(x12_date), po_number=draw(maybe_text), po_date=draw(maybe_date),
        amount_subject_to_discount=draw(maybe_amount), discounted_amount=draw(maybe_amount),
        terms_discount_amount=draw(maybe_amount), parties=draw(parties()),
        terms=draw(st.lists(payment_terms, max_size=2)), lines=lines,
        allowances_charges=draw(st.lists(allowances_charges(), max_size=3)),
    )  # fmt: skip
    invoice.total_amount = invoice.computed_total()  # TDS01 consistent with lines, charges and allowances
    return invoice


@st.composite
def warehouse_orders(draw) -> m.WarehouseShippingOrder:
    has_carrier = draw(st.booleans())
    return m.WarehouseShippingOrder(
        order_number=draw(text), po_number=draw(maybe_text), status=draw(st.sampled_from(["N", "C", "R"])),
        parties=draw(parties()), references=draw(st.dictionaries(code2, text, max_size=2)),
        dates=draw(st.dictionaries(code2, x12_date, max_size=2)), notes=draw(st.lists(phrase, max_size=2)),
        carrier_scac=draw(maybe_scac) if has_carrier else "", payment_method="PP" if has_carrier else "",
        transport_method="M" if has_carrier else "", routing=draw(maybe_text) if has_carrier else "",
        lines=draw(st.lists(st.builds(m.WarehouseOrderLine, line_number=line_numbers, quantity=quantity, uom=code2,
                                      upc=maybe_text, product_ids=product_ids(max_size=2),
                                      description=st.one_of(st.just(""), phrase)), max_size=5)),
    )  # fmt: skip


warehouse_advices = st.builds(
    m.WarehouseShippingAdvice,
    order_number=text,
    ship_date=x12_date,
    shipment_id=maybe_text,
    po_number=maybe_text,
    reporting_code=st.sampled_from(["F", "P"]),
    parties=parties(),
    references=st.dictionaries(code2, text, max_size=2),
    transport_method=st.sampled_from(["M", "H"]),
    carrier_scac=maybe_scac,
    routing=maybe_text,
    payment_method=st.one_of(st.just(""), st.just("PP")),
    total_weight=maybe_quantity,
    weight_uom=st.just(""),
    lines=st.lists(
        st.builds(
            m.WarehouseAdviceLine,
            line_number=line_numbers,
            status=code2,
            quantity_ordered=maybe_quantity,
            quantity_shipped=quantity,
            uom=code2,
            quantity_difference=maybe_quantity,
            upc=maybe_text,
            product_ids=product_ids(max_size=1),
            lot=maybe_text,
            description=st.one_of(st.just(""), phrase),
            license_plate=maybe_text,
        ),
        max_size=5,
    ),
).map(lambda advice: dataclasses.replace(advice, weight_uom="LB" if advice.total_weight is not None else ""))

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
            elements=st.lists(st.builds(m.ElementError, position=st.integers(1, 99).map(str),
                                        code=st.sampled_from([str(n) for n in (*range(1, 11), 12, 13)]),
                                        reference=st.one_of(st.just(""), st.integers(1, 999).map(str)),
                                        bad_value=maybe_text), max_size=3)), max_size=3)), max_size=4),
)  # fmt: skip

DOCUMENTS = {
    "850": purchase_orders, "855": purchase_order_acks, "856": ship_notices(), "846": inventory_advices,
    "810": invoices(), "940": warehouse_orders(), "945": warehouse_advices, "997": functional_acks,
}  # fmt: skip
