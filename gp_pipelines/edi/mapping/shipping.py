"""856 Ship Notice/Manifest: the HL tree (shipment, order, tare, pack, item) to and from `ShipNotice`."""

from __future__ import annotations

from decimal import Decimal

from gp_pipelines.edi.mapping.common import (
    PartyReader,
    Row,
    decimal_or_none,
    decimal_or_zero,
    description_row,
    format_decimal,
    pair_values,
    pairs,
    party_rows,
)
from gp_pipelines.edi.models import Pack, ShipItem, ShipNotice, ShipOrder
from gp_pipelines.edi.reader import Segment


def read_ship_notice(segments: list[Segment]) -> ShipNotice:
    notice = ShipNotice(shipment_id="", date="", time="")
    shipment = notice.shipment
    by_id: dict[str, object] = {}
    current: object = None
    party_reader = PartyReader()
    for segment in segments:
        tag = segment.tag
        if tag == "BSN":
            notice.purpose, notice.shipment_id, notice.date, notice.time, notice.structure_code = (
                segment[1], segment[2], segment[3], segment[4], segment[5]
            )  # fmt: skip
            continue
        if tag == "HL":
            current = _open_level(notice, by_id, segment)
            by_id[segment[1]] = current
            continue
        if party_reader.read(segment, shipment.parties if current is shipment else None):
            continue
        if current is shipment or current is None:
            if tag == "TD1":
                shipment.packaging_code, shipment.lading_quantity = segment[1], decimal_or_none(segment[2])
                shipment.weight, shipment.weight_uom = decimal_or_none(segment[7]), segment[8]
            elif tag == "TD5":
                shipment.carrier_scac, shipment.transport_method = segment[3], segment[4]
            elif tag == "REF" and segment[1] == "BM":
                shipment.bill_of_lading = segment[2]
            elif tag == "REF" and segment[1] == "CN":
                shipment.tracking_number = segment[2]
            elif tag == "DTM" and segment[1] == "011":
                shipment.shipped_date = segment[2]
        elif isinstance(current, ShipOrder):
            if tag == "PRF":
                current.po_number, current.po_date = segment[1], segment[4]
            elif tag == "REF" and segment[1] == "IV":
                current.invoice_number = segment[2]
        elif isinstance(current, Pack) and tag == "MAN" and segment[1] == "GM":
            current.sscc = segment[2]
        elif isinstance(current, ShipItem):
            if tag == "LIN":
                current.line_number, current.product_ids = segment[1], pairs(segment, 2)
            elif tag == "SN1":
                current.quantity_shipped, current.uom = decimal_or_zero(segment[2]), segment[3]
                current.quantity_ordered = decimal_or_none(segment[5])
            elif tag == "PID":
                current.description = segment[5]
    return notice


def _open_level(notice: ShipNotice, by_id: dict[str, object], hl: Segment) -> object:
    parent = by_id.get(hl[2])
    level = hl[3]
    if level == "S":
        return notice.shipment
    if level == "O":
        order = ShipOrder(po_number="")
        notice.orders.append(order)
        return order
    if level in ("P", "T"):
        pack = Pack(level=level)
        if isinstance(parent, Pack):  # a carton on a pallet (S-O-T-P-I)
            parent.packs.append(pack)
        else:
            order = parent if isinstance(parent, ShipOrder) else (notice.orders[-1] if notice.orders else None)
            if order is not None:
                order.packs.append(pack)
        return pack
    item = ShipItem(product_ids={}, quantity_shipped=Decimal(0))
    if isinstance(parent, Pack | ShipOrder):
        parent.items.append(item)
    return item


def write_ship_notice(notice: ShipNotice) -> list[Row]:
    rows: list[Row] = [["BSN", notice.purpose, notice.shipment_id, notice.date, notice.time, notice.structure_code]]
    counter = 0
    hash_total = Decimal(0)

    def hl(parent: int | None, level: str, has_children: bool) -> int:
        nonlocal counter
        counter += 1
        rows.append(["HL", str(counter), str(parent or ""), level, "1" if has_children else "0"])
        return counter

    def item_rows(item: ShipItem, parent: int) -> None:
        nonlocal hash_total
        hl(parent, "I", False)
        rows.append(["LIN", item.line_number, *pair_values(item.product_ids)])
        ordered = format_decimal(item.quantity_ordered)
        rows.append(
            ["SN1", "", format_decimal(item.quantity_shipped), item.uom, "", ordered, item.uom if ordered else ""]
        )
        rows.extend(description_row(item.description))
        hash_total += item.quantity_shipped

    def pack_rows(pack: Pack, parent: int) -> None:
        pack_id = hl(parent, pack.level, bool(pack.items or pack.packs))
        if pack.sscc:
            rows.append(["MAN", "GM", pack.sscc])
        for item in pack.items:
            item_rows(item, pack_id)
        for inner in pack.packs:
            pack_rows(inner, pack_id)

    shipment = notice.shipment
    top = hl(None, "S", bool(notice.orders))
    if shipment.packaging_code or shipment.lading_quantity is not None or shipment.weight is not None:
        weight = format_decimal(shipment.weight)
        rows.append(
            ["TD1", shipment.packaging_code, format_decimal(shipment.lading_quantity), "", "", "",
             "G" if weight else "", weight, shipment.weight_uom]
        )  # fmt: skip
    if shipment.carrier_scac or shipment.transport_method:
        rows.append(["TD5", "", "2" if shipment.carrier_scac else "", shipment.carrier_scac, shipment.transport_method])
    if shipment.bill_of_lading:
        rows.append(["REF", "BM", shipment.bill_of_lading])
    if shipment.tracking_number:
        rows.append(["REF", "CN", shipment.tracking_number])
    if shipment.shipped_date:
        rows.append(["DTM", "011", shipment.shipped_date])
    rows.extend(party_rows(shipment.parties))
    for order in notice.orders:
        order_id = hl(top, "O", bool(order.items or order.packs))
        rows.append(["PRF", order.po_number, "", "", order.po_date])
        if order.invoice_number:
            rows.append(["REF", "IV", order.invoice_number])
        for item in order.items:
            item_rows(item, order_id)
        for pack in order.packs:
            pack_rows(pack, order_id)
    rows.append(["CTT", str(counter), format_decimal(hash_total)])
    return rows
