"""What automation needs from the models: 850 routing (TD5), terms (ITD), allowances/charges (SAC), N2 and
PER on parties; 810 line and summary SAC with TDS totals that agree."""

from __future__ import annotations

import io
from datetime import datetime
from decimal import Decimal

from gp_pipelines.edi.codec import document_from_dict, to_jsonable
from gp_pipelines.edi.models import AllowanceCharge, Invoice, InvoiceLine, PurchaseOrder
from gp_pipelines.edi.validator import TransactionSet, iter_events
from gp_pipelines.edi.writer import CountingControlNumbers, EnvelopeSettings, read_documents, write_interchange
from tests.edi.helpers import issues_of, single

FULL_PO_BODY = [
    "BEG*00*SA*PO777**20240115",
    "CUR*BY*USD",
    "REF*DP*038",
    "SAC*A*C310***2500*3*2.5*****02***VOLUME DISCOUNT",
    "SAC*C*D240***1500",
    "ITD*08*3*2**10**30*****2/10 NET 30",
    "DTM*002*20240201",
    "TD5*O*2*UPSN*U*UPS GROUND*******CG",
    "N1*ST*ACME STORE*92*0042",
    "N2*RECEIVING DOCK 4",
    "N3*1 MAIN ST",
    "N4*SPRINGFIELD*IL*62701*US",
    "PER*DC*JANE DOE*TE*555-0100*EM*JANE@ACME.EXAMPLE",
    "PO1*1*12*EA*9.25*PE*UP*012345678905",
    "CTT*1*12",
]

FULL_INVOICE_BODY = [
    "BIG*20240120*INV-7*20240115*PO777",
    "N1*RE*VENDOR CO*92*V1",
    "PER*IC*AR DESK*EM*AR@VENDOR.EXAMPLE",
    "ITD*08*3*2**10**30",
    "IT1*1*12*EA*9.25**UP*012345678905",
    "SAC*A*C310***1110",
    "IT1*2*3*CA*20**VN*CD-2",
    "TDS*16890*15990",
    "SAC*C*D240***900*******06***FREIGHT",
    "CTT*2",
]


def model_of(text: str):
    (event,) = [e for e in iter_events(io.BytesIO(text.encode())) if isinstance(e, TransactionSet)]
    assert [str(i) for i in event.issues] == []
    (document,) = read_documents(text.encode())
    return document


def rewrite(document) -> str:
    return write_interchange(
        [document], EnvelopeSettings("ME", "PARTNER"), CountingControlNumbers(), datetime(2024, 1, 1)
    )


def test_purchase_order_routing_terms_charges_and_contacts():
    order = model_of(single("850", FULL_PO_BODY))
    assert isinstance(order, PurchaseOrder)
    discount, freight = order.allowances_charges
    assert (discount.indicator, discount.code, discount.amount, discount.percent, discount.handling_code) == (
        "A", "C310", Decimal("25.00"), Decimal("2.5"), "02"
    )  # fmt: skip
    assert discount.description == "VOLUME DISCOUNT" and freight.signed_amount == Decimal("15.00")
    (terms,) = order.terms
    assert (terms.type_code, terms.discount_percent, terms.discount_days, terms.net_days, terms.description) == (
        "08", Decimal(2), 10, 30, "2/10 NET 30"
    )  # fmt: skip
    (carrier,) = order.carriers
    assert (carrier.sequence, carrier.carrier_code, carrier.transport_method, carrier.routing) == (
        "O", "UPSN", "U", "UPS GROUND"
    )  # fmt: skip
    assert carrier.service_level == "CG"
    (ship_to,) = order.parties
    assert ship_to.additional_names == ["RECEIVING DOCK 4"]
    (contact,) = ship_to.contacts
    assert (contact.function, contact.name, contact.numbers) == (
        "DC", "JANE DOE", {"TE": "555-0100", "EM": "JANE@ACME.EXAMPLE"}
    )  # fmt: skip


def test_purchase_order_new_fields_round_trip_through_x12_and_json():
    order = model_of(single("850", FULL_PO_BODY))
    text = rewrite(order)
    assert [str(i) for i in issues_of(text)] == []
    assert "TD5*O*2*UPSN*U*UPS GROUND*******CG~" in text and "N2*RECEIVING DOCK 4~" in text
    assert read_documents(text.encode()) == [order]
    assert document_from_dict("850", to_jsonable(order)) == order


def test_invoice_allowances_charges_and_totals():
    invoice = model_of(single("810", FULL_INVOICE_BODY))
    assert isinstance(invoice, Invoice)
    first, second = invoice.lines
    assert first.allowances_charges == [AllowanceCharge("A", "C310", Decimal("11.10"))]
    assert (first.amount, second.amount) == (Decimal("99.90"), Decimal(60))
    (freight,) = invoice.allowances_charges
    assert (freight.indicator, freight.amount, freight.handling_code, freight.description) == (
        "C", Decimal("9.00"), "06", "FREIGHT"
    )  # fmt: skip
    assert invoice.total_amount == invoice.computed_total() == Decimal("168.90")
    assert invoice.amount_subject_to_discount == Decimal("159.90") and invoice.terms[0].net_days == 30
    assert invoice.parties[0].contacts[0].numbers == {"EM": "AR@VENDOR.EXAMPLE"}
    text = rewrite(invoice)
    assert [str(i) for i in issues_of(text)] == []
    assert read_documents(text.encode()) == [invoice]
    assert document_from_dict("810", to_jsonable(invoice)) == invoice


def test_invoice_total_counts_charges_and_allowances():
    wrong = [line.replace("TDS*16890", "TDS*16000") for line in FULL_INVOICE_BODY]
    issues = issues_of(single("810", wrong))
    assert [(i.code, i.severity, i.segment_position, i.element_position) for i in issues] == [
        ("TOTAL_AMOUNT_MISMATCH", "warning", 9, 1)
    ]
    assert "168.90" in issues[0].message


def test_computed_total_rounds_to_cents():
    invoice = Invoice("1", "20240101", lines=[InvoiceLine("1", Decimal(3), "EA", Decimal("0.335"))])
    assert invoice.computed_total() == Decimal("1.01")
