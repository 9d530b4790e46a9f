"""850 Purchase Order and 855 Purchase Order Acknowledgment."""

from __future__ import annotations

from decimal import Decimal

from gp_pipelines.edi.mapping.common import (
    PartyReader,
    Row,
    allowance_charge_row,
    carrier_row,
    decimal_or_none,
    decimal_or_zero,
    description_row,
    format_decimal,
    pair_values,
    pairs,
    party_rows,
    read_allowance_charge,
    read_carrier,
    read_terms,
    terms_row,
)
from gp_pipelines.edi.models import AckLine, LineStatus, OrderLine, Party, PurchaseOrder, PurchaseOrderAck
from gp_pipelines.edi.reader import Segment


def _read_order_lines(segments: list[Segment], line_type: type[OrderLine], parties: list[Party]) -> list:
    lines: list = []
    party_reader = PartyReader()
    for segment in segments:
        tag = segment.tag
        if party_reader.read(segment, parties if not lines else None):
            continue
        if tag == "PO1":
            lines.append(
                line_type(
                    segment[1], decimal_or_zero(segment[2]), segment[3], decimal_or_none(segment[4]), pairs(segment, 6)
                )
            )
        elif tag == "PID" and lines:
            lines[-1].description = segment[5]
        elif tag == "ACK" and lines and isinstance(lines[-1], AckLine):
            lines[-1].statuses.append(
                LineStatus(segment[1], decimal_or_none(segment[2]), segment[3], segment[4], segment[5])
            )
    return lines


def _order_line_rows(line: OrderLine) -> list[Row]:
    price_basis = "PE" if line.unit_price is not None else ""
    return [
        [
            "PO1",
            line.line_number,
            format_decimal(line.quantity),
            line.uom,
            format_decimal(line.unit_price),
            price_basis,
            *pair_values(line.product_ids),
        ],
        *description_row(line.description),
    ]


def read_purchase_order(segments: list[Segment]) -> PurchaseOrder:
    order = PurchaseOrder(po_number="", po_date="")
    for segment in segments:
        tag = segment.tag
        if tag == "PO1":
            break
        if tag == "BEG":
            order.purpose, order.order_type, order.po_number, order.po_date = (
                segment[1], segment[2], segment[3], segment[5]
            )  # fmt: skip
        elif tag == "CUR":
            order.currency = segment[2]
        elif tag == "REF":
            order.references[segment[1]] = segment[2]
        elif tag == "DTM":
            order.dates[segment[1]] = segment[2]
        elif tag == "SAC":
            order.allowances_charges.append(read_allowance_charge(segment))
        elif tag == "ITD":
            order.terms.append(read_terms(segment))
        elif tag == "TD5":
            order.carriers.append(read_carrier(segment))
    order.lines = _read_order_lines(segments, OrderLine, order.parties)
    return order


def write_purchase_order(order: PurchaseOrder) -> list[Row]:
    # Header order of the 850 spec: BEG CUR REF* ... SAC-loop ITD* ... DTM* ... TD5* ... N1-loop.
    rows: list[Row] = [["BEG", order.purpose, order.order_type, order.po_number, "", order.po_date]]
    if order.currency:
        rows.append(["CUR", "BY", order.currency])
    rows.extend(["REF", qualifier, value] for qualifier, value in order.references.items())
    rows.extend(allowance_charge_row(item) for item in order.allowances_charges)
    rows.extend(terms_row(terms) for terms in order.terms)
    rows.extend(["DTM", qualifier, value] for qualifier, value in order.dates.items())
    rows.extend(carrier_row(carrier) for carrier in order.carriers)
    rows.extend(party_rows(order.parties))
    for line in order.lines:
        rows.extend(_order_line_rows(line))
    rows.append(
        ["CTT", str(len(order.lines)), format_decimal(sum((line.quantity for line in order.lines), Decimal(0)))]
    )
    return rows


def read_purchase_order_ack(segments: list[Segment]) -> PurchaseOrderAck:
    ack = PurchaseOrderAck(po_number="", po_date="")
    for segment in segments:
        if segment.tag == "BAK":
            ack.purpose, ack.ack_type, ack.po_number, ack.po_date = segment[1], segment[2], segment[3], segment[4]
            ack.seller_order_number, ack.ack_date = segment[8], segment[9]
    ack.lines = _read_order_lines(segments, AckLine, ack.parties)
    return ack


def write_purchase_order_ack(ack: PurchaseOrderAck) -> list[Row]:
    rows: list[Row] = [
        [
            "BAK",
            ack.purpose,
            ack.ack_type,
            ack.po_number,
            ack.po_date,
            "",
            "",
            "",
            ack.seller_order_number,
            ack.ack_date,
        ]
    ]
    rows.extend(party_rows(ack.parties))
    for line in ack.lines:
        rows.extend(_order_line_rows(line))
        rows.extend(
            ["ACK", status.status, format_decimal(status.quantity), status.uom, status.date_qualifier, status.date]
            for status in line.statuses
        )
    rows.append(["CTT", str(len(ack.lines))])
    return rows
