"""846 Inventory Inquiry/Advice."""

from __future__ import annotations

from decimal import Decimal

from gp_pipelines.edi.mapping.common import (
    PartyReader,
    Row,
    decimal_or_zero,
    description_row,
    format_decimal,
    pair_values,
    pairs,
    party_rows,
)
from gp_pipelines.edi.models import InventoryAdvice, InventoryItem, Quantity
from gp_pipelines.edi.reader import Segment


def read_inventory_advice(segments: list[Segment]) -> InventoryAdvice:
    advice = InventoryAdvice(reference="", date="")
    party_reader = PartyReader()
    for segment in segments:
        tag = segment.tag
        if party_reader.read(segment, advice.parties if not advice.items else None):
            continue
        if tag == "BIA":
            advice.purpose, advice.report_type, advice.reference, advice.date = (
                segment[1], segment[2], segment[3], segment[4]
            )  # fmt: skip
        elif tag == "LIN":
            advice.items.append(InventoryItem(pairs(segment, 2), segment[1]))
        elif tag == "PID" and advice.items:
            advice.items[-1].description = segment[5]
        elif tag == "QTY" and advice.items:
            advice.items[-1].quantities.append(Quantity(segment[1], decimal_or_zero(segment[2]), segment[3]))
    return advice


def write_inventory_advice(advice: InventoryAdvice) -> list[Row]:
    rows: list[Row] = [["BIA", advice.purpose, advice.report_type, advice.reference, advice.date]]
    rows.extend(party_rows(advice.parties))
    total = Decimal(0)
    for item in advice.items:
        rows.append(["LIN", item.line_number, *pair_values(item.product_ids)])
        rows.extend(description_row(item.description))
        for quantity in item.quantities:
            rows.append(["QTY", quantity.qualifier, format_decimal(quantity.quantity), quantity.uom])
            total += quantity.quantity
    rows.append(["CTT", str(len(advice.items)), format_decimal(total)])
    return rows
