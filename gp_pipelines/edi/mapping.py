"""Segments <-> models for every set. Readers ignore what the model does not carry; writers emit segments in
the order of the set specs, so what they write validates cleanly."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from gp_pipelines.edi.models import (
    AckLine,
    Document,
    ElementError,
    FunctionalAck,
    InventoryAdvice,
    InventoryItem,
    Invoice,
    InvoiceLine,
    LineStatus,
    OrderLine,
    Pack,
    Party,
    PurchaseOrder,
    PurchaseOrderAck,
    Quantity,
    SegmentError,
    SetAck,
    ShipItem,
    ShipNotice,
    ShipOrder,
    WarehouseAdviceLine,
    WarehouseOrderLine,
    WarehouseShippingAdvice,
    WarehouseShippingOrder,
)
from gp_pipelines.edi.reader import Segment

Row = list[str]  # one segment to write: tag first, then elements


def decimal_or_none(value: str) -> Decimal | None:
    try:
        return Decimal(value) if value else None
    except InvalidOperation:
        return None


def _decimal(value: str) -> Decimal:
    return decimal_or_none(value) or Decimal(0)


def format_decimal(value: Decimal | None) -> str:
    if value is None:
        return ""
    text = format(value, "f")
    return "0" if text in ("-0", "") else text


def _pairs(segment: Segment, start: int, limit: int = 30) -> dict[str, str]:
    """Qualifier/value pairs from `start` on (PO106/PO107, LIN02/LIN03 ...)."""
    ids: dict[str, str] = {}
    for position in range(start, min(len(segment.elements), start + 2 * limit), 2):
        if segment[position] and segment[position + 1]:
            ids[segment[position]] = segment[position + 1]
    return ids


def _pair_values(ids: dict[str, str]) -> list[str]:
    return [text for pair in ids.items() for text in pair]


class _PartyReader:
    """N1/N3/N4 into `Party` objects appended to whatever list the caller points at."""

    def __init__(self) -> None:
        self.current: Party | None = None

    def read(self, segment: Segment, target: list[Party] | None) -> bool:
        tag = segment.tag
        if tag == "N1" and target is not None:
            self.current = Party(segment[1], segment[2], segment[3], segment[4])
            target.append(self.current)
        elif tag == "N3" and self.current is not None:
            self.current.address_lines.extend(value for value in segment.elements[1:3] if value)
        elif tag == "N4" and self.current is not None:
            party = self.current
            party.city, party.state, party.postal_code, party.country = segment[1], segment[2], segment[3], segment[4]
        elif tag in ("N2", "PER", "REF") and self.current is not None:
            return tag != "REF"
        else:
            self.current = None
            return False
        return True


def _party_rows(parties: Iterable[Party]) -> list[Row]:
    rows: list[Row] = []
    for party in parties:
        rows.append(["N1", party.role, party.name, party.id_qualifier if party.id else "", party.id])
        lines = party.address_lines
        rows.extend(["N3", *lines[i : i + 2]] for i in range(0, len(lines), 2))
        if party.city or party.state or party.postal_code or party.country:
            rows.append(["N4", party.city, party.state, party.postal_code, party.country])
    return rows


def _description_row(description: str) -> list[Row]:
    return [["PID", "F", "", "", "", description]] if description else []


# -- 850 / 855 ---------------------------------------------------------------------------------------------
def _read_order_lines(segments: list[Segment], line_type: type[OrderLine], parties: list[Party]) -> list:
    lines: list = []
    party_reader = _PartyReader()
    for segment in segments:
        tag = segment.tag
        if party_reader.read(segment, parties if not lines else None):
            continue
        if tag == "PO1":
            lines.append(
                line_type(segment[1], _decimal(segment[2]), segment[3], decimal_or_none(segment[4]), _pairs(segment, 6))
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
            *_pair_values(line.product_ids),
        ],
        *_description_row(line.description),
    ]


def read_purchase_order(segments: list[Segment]) -> PurchaseOrder:
    order = PurchaseOrder(po_number="", po_date="")
    for segment in segments:
        if segment.tag == "PO1":
            break
        if segment.tag == "BEG":
            order.purpose, order.order_type, order.po_number, order.po_date = (
                segment[1],
                segment[2],
                segment[3],
                segment[5],
            )
        elif segment.tag == "CUR":
            order.currency = segment[2]
        elif segment.tag == "REF":
            order.references[segment[1]] = segment[2]
        elif segment.tag == "DTM":
            order.dates[segment[1]] = segment[2]
    order.lines = _read_order_lines(segments, OrderLine, order.parties)
    return order


def write_purchase_order(order: PurchaseOrder) -> list[Row]:
    rows: list[Row] = [["BEG", order.purpose, order.order_type, order.po_number, "", order.po_date]]
    if order.currency:
        rows.append(["CUR", "BY", order.currency])
    rows.extend(["REF", qualifier, value] for qualifier, value in order.references.items())
    rows.extend(["DTM", qualifier, value] for qualifier, value in order.dates.items())
    rows.extend(_party_rows(order.parties))
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
    rows.extend(_party_rows(ack.parties))
    for line in ack.lines:
        rows.extend(_order_line_rows(line))
        rows.extend(
            ["ACK", status.status, format_decimal(status.quantity), status.uom, status.date_qualifier, status.date]
            for status in line.statuses
        )
    rows.append(["CTT", str(len(ack.lines))])
    return rows


# -- 856 ---------------------------------------------------------------------------------------------------
def read_ship_notice(segments: list[Segment]) -> ShipNotice:
    notice = ShipNotice(shipment_id="", date="", time="")
    shipment = notice.shipment
    by_id: dict[str, object] = {}
    current: object = None
    party_reader = _PartyReader()
    for segment in segments:
        tag = segment.tag
        if tag == "BSN":
            notice.purpose, notice.shipment_id, notice.date, notice.time, notice.structure_code = (
                segment[1],
                segment[2],
                segment[3],
                segment[4],
                segment[5],
            )
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
                current.line_number, current.product_ids = segment[1], _pairs(segment, 2)
            elif tag == "SN1":
                current.quantity_shipped, current.uom = _decimal(segment[2]), segment[3]
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
    counter = {"next": 0}
    hash_total = Decimal(0)

    def hl(parent: int | None, level: str, has_children: bool) -> int:
        counter["next"] += 1
        rows.append(["HL", str(counter["next"]), str(parent or ""), level, "1" if has_children else "0"])
        return counter["next"]

    def item_rows(item: ShipItem, parent: int) -> None:
        nonlocal hash_total
        hl(parent, "I", False)
        rows.append(["LIN", item.line_number, *_pair_values(item.product_ids)])
        rows.append(
            [
                "SN1",
                "",
                format_decimal(item.quantity_shipped),
                item.uom,
                "",
                format_decimal(item.quantity_ordered),
                item.uom if item.quantity_ordered is not None else "",
            ]
        )
        rows.extend(_description_row(item.description))
        hash_total += item.quantity_shipped

    shipment = notice.shipment
    top = hl(None, "S", bool(notice.orders))
    if shipment.packaging_code or shipment.lading_quantity is not None or shipment.weight is not None:
        rows.append(
            [
                "TD1",
                shipment.packaging_code,
                format_decimal(shipment.lading_quantity),
                "",
                "",
                "",
                "G" if shipment.weight is not None else "",
                format_decimal(shipment.weight),
                shipment.weight_uom,
            ]
        )
    if shipment.carrier_scac or shipment.transport_method:
        rows.append(["TD5", "", "2" if shipment.carrier_scac else "", shipment.carrier_scac, shipment.transport_method])
    if shipment.bill_of_lading:
        rows.append(["REF", "BM", shipment.bill_of_lading])
    if shipment.tracking_number:
        rows.append(["REF", "CN", shipment.tracking_number])
    if shipment.shipped_date:
        rows.append(["DTM", "011", shipment.shipped_date])
    rows.extend(_party_rows(shipment.parties))
    for order in notice.orders:
        order_id = hl(top, "O", bool(order.items or order.packs))
        rows.append(["PRF", order.po_number, "", "", order.po_date])
        if order.invoice_number:
            rows.append(["REF", "IV", order.invoice_number])
        for item in order.items:
            item_rows(item, order_id)
        for pack in order.packs:
            pack_id = hl(order_id, pack.level, bool(pack.items))
            if pack.sscc:
                rows.append(["MAN", "GM", pack.sscc])
            for item in pack.items:
                item_rows(item, pack_id)
    rows.append(["CTT", str(counter["next"]), format_decimal(hash_total)])
    return rows


# -- 846 ---------------------------------------------------------------------------------------------------
def read_inventory_advice(segments: list[Segment]) -> InventoryAdvice:
    advice = InventoryAdvice(reference="", date="")
    party_reader = _PartyReader()
    for segment in segments:
        tag = segment.tag
        if party_reader.read(segment, advice.parties if not advice.items else None):
            continue
        if tag == "BIA":
            advice.purpose, advice.report_type, advice.reference, advice.date = (
                segment[1],
                segment[2],
                segment[3],
                segment[4],
            )
        elif tag == "LIN":
            advice.items.append(InventoryItem(_pairs(segment, 2), segment[1]))
        elif tag == "PID" and advice.items:
            advice.items[-1].description = segment[5]
        elif tag == "QTY" and advice.items:
            advice.items[-1].quantities.append(Quantity(segment[1], _decimal(segment[2]), segment[3]))
    return advice


def write_inventory_advice(advice: InventoryAdvice) -> list[Row]:
    rows: list[Row] = [["BIA", advice.purpose, advice.report_type, advice.reference, advice.date]]
    rows.extend(_party_rows(advice.parties))
    total = Decimal(0)
    for item in advice.items:
        rows.append(["LIN", item.line_number, *_pair_values(item.product_ids)])
        rows.extend(_description_row(item.description))
        for quantity in item.quantities:
            rows.append(["QTY", quantity.qualifier, format_decimal(quantity.quantity), quantity.uom])
            total += quantity.quantity
    rows.append(["CTT", str(len(advice.items)), format_decimal(total)])
    return rows


# -- 810 ---------------------------------------------------------------------------------------------------
def read_invoice(segments: list[Segment]) -> Invoice:
    invoice = Invoice(invoice_number="", invoice_date="")
    party_reader = _PartyReader()
    for segment in segments:
        tag = segment.tag
        if party_reader.read(segment, invoice.parties if not invoice.lines else None):
            continue
        if tag == "BIG":
            invoice.invoice_date, invoice.invoice_number, invoice.po_date, invoice.po_number = (
                segment[1],
                segment[2],
                segment[3],
                segment[4],
            )
        elif tag == "IT1":
            invoice.lines.append(
                InvoiceLine(segment[1], _decimal(segment[2]), segment[3], _decimal(segment[4]), _pairs(segment, 6))
            )
        elif tag == "PID" and invoice.lines:
            invoice.lines[-1].description = segment[5]
        elif tag == "TDS":
            invoice.total_amount = _decimal(segment[1]).scaleb(-2)  # N2: two implied decimals
    return invoice


def write_invoice(invoice: Invoice) -> list[Row]:
    rows: list[Row] = [["BIG", invoice.invoice_date, invoice.invoice_number, invoice.po_date, invoice.po_number]]
    rows.extend(_party_rows(invoice.parties))
    for line in invoice.lines:
        rows.append(
            [
                "IT1",
                line.line_number,
                format_decimal(line.quantity),
                line.uom,
                format_decimal(line.unit_price),
                "",
                *_pair_values(line.product_ids),
            ]
        )
        rows.extend(_description_row(line.description))
    cents = (invoice.total_amount * 100).to_integral_value()
    rows.append(["TDS", format_decimal(cents)])
    rows.append(["CTT", str(len(invoice.lines))])
    return rows


# -- 940 / 945 ---------------------------------------------------------------------------------------------
def read_warehouse_shipping_order(segments: list[Segment]) -> WarehouseShippingOrder:
    order = WarehouseShippingOrder(order_number="")
    party_reader = _PartyReader()
    line_number = ""
    for segment in segments:
        tag = segment.tag
        if party_reader.read(segment, order.parties if not order.lines and not line_number else None):
            continue
        if tag == "W05":
            order.status, order.order_number, order.po_number = segment[1], segment[2], segment[3]
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
                    line_number, _decimal(segment[1]), segment[2], segment[3], _pairs(segment, 4, limit=2)
                )
            )
        elif tag == "G69" and order.lines:
            order.lines[-1].description = segment[1]
    return order


def write_warehouse_shipping_order(order: WarehouseShippingOrder) -> list[Row]:
    rows: list[Row] = [["W05", order.status, order.order_number, order.po_number]]
    rows.extend(_party_rows(order.parties))
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
        rows.append(["W01", format_decimal(line.quantity), line.uom, line.upc, *_pair_values(line.product_ids)])
        if line.description:
            rows.append(["G69", line.description])
    rows.append(["W76", format_decimal(sum((line.quantity for line in order.lines), Decimal(0)))])
    return rows


def read_warehouse_shipping_advice(segments: list[Segment]) -> WarehouseShippingAdvice:
    advice = WarehouseShippingAdvice(order_number="", ship_date="")
    party_reader = _PartyReader()
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
                    _decimal(segment[3]),
                    segment[5],
                    decimal_or_none(segment[4]),
                    segment[6],
                    _pairs(segment, 7, limit=1),
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
    rows.extend(_party_rows(advice.parties))
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
                *(_pair_values(line.product_ids) or ["", ""]),
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


# -- 997 ---------------------------------------------------------------------------------------------------
def read_functional_ack(segments: list[Segment]) -> FunctionalAck:
    ack = FunctionalAck("", "", "", 0, 0, 0)
    current: SetAck | None = None
    for segment in segments:
        tag = segment.tag
        if tag == "AK1":
            ack.functional_id, ack.group_control_number = segment[1], segment[2]
        elif tag == "AK2":
            current = SetAck(segment[1], segment[2], "")
            ack.sets.append(current)
        elif tag == "AK3" and current is not None:
            current.segments.append(SegmentError(segment[1], int(_decimal(segment[2])), segment[4], segment[3]))
        elif tag == "AK4" and current is not None and current.segments:
            current.segments[-1].elements.append(ElementError(segment[1], segment[3], segment[2], segment[4]))
        elif tag == "AK5" and current is not None:
            current.status, current.codes = segment[1], [value for value in segment.elements[2:7] if value]
        elif tag == "AK9":
            ack.status = segment[1]
            ack.sets_included, ack.sets_received, ack.sets_accepted = (int(_decimal(segment[i])) for i in (2, 3, 4))
            ack.group_codes = [value for value in segment.elements[5:10] if value]
    return ack


def write_functional_ack(ack: FunctionalAck) -> list[Row]:
    rows: list[Row] = [["AK1", ack.functional_id, ack.group_control_number]]
    for set_ack in ack.sets:
        rows.append(["AK2", set_ack.set_id, set_ack.control_number])
        for error in set_ack.segments:
            rows.append(["AK3", error.segment_id, str(error.position), error.loop_id, error.code])
            rows.extend(
                ["AK4", element.position, element.reference, element.code, element.bad_value]
                for element in error.elements[:99]
            )
        rows.append(["AK5", set_ack.status, *set_ack.codes[:5]])
    rows.append(
        [
            "AK9",
            ack.status,
            str(ack.sets_included),
            str(ack.sets_received),
            str(ack.sets_accepted),
            *ack.group_codes[:5],
        ]
    )
    return rows


@dataclass(frozen=True)
class SetMapping:
    model: type
    read: Callable[[list[Segment]], Document]
    write: Callable[..., list[Row]]


MAPPINGS: dict[str, SetMapping] = {
    "850": SetMapping(PurchaseOrder, read_purchase_order, write_purchase_order),
    "855": SetMapping(PurchaseOrderAck, read_purchase_order_ack, write_purchase_order_ack),
    "856": SetMapping(ShipNotice, read_ship_notice, write_ship_notice),
    "846": SetMapping(InventoryAdvice, read_inventory_advice, write_inventory_advice),
    "810": SetMapping(Invoice, read_invoice, write_invoice),
    "940": SetMapping(WarehouseShippingOrder, read_warehouse_shipping_order, write_warehouse_shipping_order),
    "945": SetMapping(WarehouseShippingAdvice, read_warehouse_shipping_advice, write_warehouse_shipping_advice),
    "997": SetMapping(FunctionalAck, read_functional_ack, write_functional_ack),
}


def document_from_segments(set_id: str, segments: list[Segment]) -> Document | None:
    """The model of one transaction set (ST ... SE), or None for sets the platform does not model."""
    mapping = MAPPINGS.get(set_id)
    return mapping.read(segments) if mapping else None


def document_to_rows(document: Document) -> list[Row]:
    """The body segments (between ST and SE) of a model."""
    return MAPPINGS[document.SET_ID].write(document)


def summarize(document: Document | None) -> str:
    """One line a person can read about the business content."""
    match document:
        case PurchaseOrder():
            return f"PO {document.po_number} dated {document.po_date}: {len(document.lines)} lines"
        case PurchaseOrderAck():
            return f"ack {document.ack_type} of PO {document.po_number}: {len(document.lines)} lines"
        case ShipNotice():
            items = sum(len(o.items) + sum(len(p.items) for p in o.packs) for o in document.orders)
            packs = sum(len(o.packs) for o in document.orders)
            return (
                f"ASN {document.shipment_id} shipped {document.date}: {len(document.orders)} orders, "
                f"{packs} packs, {items} items"
            )
        case InventoryAdvice():
            return f"inventory {document.reference} dated {document.date}: {len(document.items)} items"
        case Invoice():
            return (
                f"invoice {document.invoice_number} for PO {document.po_number or '-'}: "
                f"{len(document.lines)} lines, total {document.total_amount}"
            )
        case WarehouseShippingOrder():
            return f"shipping order {document.order_number}: {len(document.lines)} lines"
        case WarehouseShippingAdvice():
            return (
                f"shipping advice for order {document.order_number} shipped {document.ship_date}: "
                f"{len(document.lines)} lines"
            )
        case FunctionalAck():
            return (
                f"997 for {document.functional_id} group {document.group_control_number}: {document.status} "
                f"({document.sets_accepted}/{document.sets_received} sets accepted)"
            )
    return ""
