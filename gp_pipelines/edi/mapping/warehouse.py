"""940 Warehouse Shipping Order and 945 Warehouse Shipping Advice (the 3PL exchange)."""

from __future__ import annotations

from decimal import Decimal

from gp_pipelines.edi.mapping.common import (
    PartyReader,
    Row,
    decimal_or_none,
    decimal_or_zero,
    format_decimal,
    pair_values,
    pairs,
    party_rows,
)
from gp_pipelines.edi.models import (
    WarehouseAdviceLine,
    WarehouseOrderLine,
    WarehouseShippingAdvice,
    WarehouseShippingOrder,
)
from gp_pipelines.edi.reader import Segment


def read_warehouse_shipping_order(segments: list[Segment]) -> WarehouseShippingOrder:
    order = WarehouseShippingOrder(order_number="")
    party_reader = PartyReader()
    line_number = ""
    for segment in segments:
        tag = segment.tag
        if party_reader.read(segment, order.parties if not order.lines and not line_number else None):
            continue
        if tag == "W05":
            order.status, order.order_number, order.po_number = segment[1], segment[2], segment[3]
        elif tag == "N9" and not line_number:
            order.references[segment[1]] = segment[2]
        elif tag == "G62" and not line_number:
            order.dates[segment[1]] = segment[2]
        elif tag == "NTE" and not line_number:
            order.notes.append(segment[2])
        elif tag == "W66":
            order.payment_method, order.transport_method, order.routing = segment[1], segment[2], segment[5]
            order.carrier_scac = segment[10]
        elif tag == "LX":
            line_number = segment[1]
        elif tag == "W01":
            order.lines.append(
                WarehouseOrderLine(
                    line_number, decimal_or_zero(segment[1]), segment[2], segment[3], pairs(segment, 4, limit=2)
                )
            )
        elif tag == "G69" and order.lines:
            order.lines[-1].description = segment[1]
    return order


def write_warehouse_shipping_order(order: WarehouseShippingOrder) -> list[Row]:
    rows: list[Row] = [["W05", order.status, order.order_number, order.po_number]]
    rows.extend(party_rows(order.parties))
    rows.extend(["N9", qualifier, value] for qualifier, value in order.references.items())
    rows.extend(["G62", qualifier, value] for qualifier, value in order.dates.items())
    rows.extend(["NTE", "WHI", note] for note in order.notes)
    if order.payment_method or order.transport_method or order.routing or order.carrier_scac:
        rows.append(
            [
                "W66",
                order.payment_method or "PP",
                order.transport_method or "M",
                "",
                "",
                order.routing,
                "",
                "",
                "",
                "",
                order.carrier_scac,
            ]
        )
    for line in order.lines:
        rows.append(["LX", line.line_number])
        rows.append(["W01", format_decimal(line.quantity), line.uom, line.upc, *pair_values(line.product_ids)])
        if line.description:
            rows.append(["G69", line.description])
    rows.append(["W76", format_decimal(sum((line.quantity for line in order.lines), Decimal(0)))])
    return rows


def read_warehouse_shipping_advice(segments: list[Segment]) -> WarehouseShippingAdvice:
    advice = WarehouseShippingAdvice(order_number="", ship_date="")
    party_reader = PartyReader()
    line_number = ""
    for segment in segments:
        tag = segment.tag
        if party_reader.read(segment, advice.parties if not line_number else None):
            continue
        if tag == "W06":
            advice.reporting_code, advice.order_number, advice.ship_date, advice.shipment_id = (
                segment[1],
                segment[2],
                segment[3],
                segment[4],
            )
            advice.po_number = segment[6]
        elif tag == "N9" and not line_number:
            advice.references[segment[1]] = segment[2]
        elif tag == "W27" and not line_number:
            advice.transport_method, advice.carrier_scac, advice.routing, advice.payment_method = (
                segment[1],
                segment[2],
                segment[3],
                segment[4],
            )
        elif tag == "LX":
            line_number = segment[1]
        elif tag == "W12":
            advice.lines.append(
                WarehouseAdviceLine(
                    line_number,
                    segment[1],
                    decimal_or_none(segment[2]),
                    decimal_or_zero(segment[3]),
                    segment[5],
                    decimal_or_none(segment[4]),
                    segment[6],
                    pairs(segment, 7, limit=1),
                    segment[9],
                )
            )
        elif tag == "G69" and advice.lines:
            advice.lines[-1].description = segment[1]
        elif tag == "N9" and segment[1] == "LV" and advice.lines:
            advice.lines[-1].license_plate = segment[2]
        elif tag == "W03":
            advice.total_weight, advice.weight_uom = decimal_or_none(segment[2]), segment[3]
    return advice


def write_warehouse_shipping_advice(advice: WarehouseShippingAdvice) -> list[Row]:
    rows: list[Row] = [
        ["W06", advice.reporting_code, advice.order_number, advice.ship_date, advice.shipment_id, "", advice.po_number]
    ]
    rows.extend(party_rows(advice.parties))
    rows.extend(["N9", qualifier, value] for qualifier, value in advice.references.items())
    rows.append(["W27", advice.transport_method, advice.carrier_scac, advice.routing, advice.payment_method])
    for line in advice.lines:
        rows.append(["LX", line.line_number])
        rows.append(
            [
                "W12",
                line.status,
                format_decimal(line.quantity_ordered),
                format_decimal(line.quantity_shipped),
                format_decimal(line.quantity_difference),
                line.uom,
                line.upc,
                # W12 has room for one product id pair (W1207/08); the lot number follows in W1209.
                *(pair_values(dict(list(line.product_ids.items())[:1])) or ["", ""]),
                line.lot,
            ]
        )
        if line.description:
            rows.append(["G69", line.description])
        if line.license_plate:
            rows.append(["N9", "LV", line.license_plate])
    shipped = sum((line.quantity_shipped for line in advice.lines), Decimal(0))
    rows.append(["W03", format_decimal(shipped), format_decimal(advice.total_weight), advice.weight_uom])
    return rows
