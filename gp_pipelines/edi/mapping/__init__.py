"""Segments <-> models for every set, one module per set family; `MAPPINGS` ties each set id to its model, reader
and writer. Readers ignore what the model does not carry; writers emit segments in the order of the set specs,
so what they write validates cleanly."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gp_pipelines.edi.mapping.acknowledgment import read_functional_ack, write_functional_ack
from gp_pipelines.edi.mapping.common import Row, decimal_or_none, format_decimal
from gp_pipelines.edi.mapping.inventory import read_inventory_advice, write_inventory_advice
from gp_pipelines.edi.mapping.invoice import read_invoice, write_invoice
from gp_pipelines.edi.mapping.orders import (
    read_purchase_order,
    read_purchase_order_ack,
    write_purchase_order,
    write_purchase_order_ack,
)
from gp_pipelines.edi.mapping.shipping import read_ship_notice, write_ship_notice
from gp_pipelines.edi.mapping.warehouse import (
    read_warehouse_shipping_advice,
    read_warehouse_shipping_order,
    write_warehouse_shipping_advice,
    write_warehouse_shipping_order,
)
from gp_pipelines.edi.models import (
    Document,
    FunctionalAck,
    InventoryAdvice,
    Invoice,
    Pack,
    PurchaseOrder,
    PurchaseOrderAck,
    ShipNotice,
    WarehouseShippingAdvice,
    WarehouseShippingOrder,
)
from gp_pipelines.edi.reader import Segment

__all__ = ["MAPPINGS", "Row", "SetMapping", "decimal_or_none", "document_from_segments", "document_to_rows",
           "format_decimal", "summarize"]  # fmt: skip


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
            packs = [pack for order in document.orders for pack in _all_packs(order.packs)]
            items = sum(len(order.items) for order in document.orders) + sum(len(pack.items) for pack in packs)
            packs = len(packs)
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


def _all_packs(packs: list[Pack]) -> list[Pack]:
    """Packs with the cartons nested in tares, depth first."""
    return [found for pack in packs for found in (pack, *_all_packs(pack.packs))]
