"""Typed business content of each transaction set, so automation code never touches segment positions.

Amounts and quantities are `Decimal`; dates are the X12 strings (CCYYMMDD) as sent; product ids keep the
partner's qualifiers (`{"UP": "012345678905", "VN": "AB-1"}`), in the order they were sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal


@dataclass
class Contact:
    """A PER segment: function (IC information contact, BD buyer, DC delivery ...), name, and up to three
    communication numbers by qualifier (`{"TE": "555-0100", "EM": "ops@example.com"}`)."""

    function: str = "IC"
    name: str = ""
    numbers: dict[str, str] = field(default_factory=dict)


@dataclass
class Party:
    """An N1 loop: ship-to (ST), bill-to (BT), buyer (BY), vendor (VN), ship-from (SF), warehouse (WH) ...;
    `additional_names` are the N2 lines, `contacts` the PER segments."""

    role: str
    name: str = ""
    id_qualifier: str = ""
    id: str = ""
    address_lines: list[str] = field(default_factory=list)
    city: str = ""
    state: str = ""
    postal_code: str = ""
    country: str = ""
    additional_names: list[str] = field(default_factory=list)
    contacts: list[Contact] = field(default_factory=list)


@dataclass
class CarrierRouting:
    """A TD5 segment: who carries the goods and how (TD503 is the SCAC when TD502 is 2)."""

    carrier_code: str = ""
    id_qualifier: str = "2"
    transport_method: str = ""  # TD504: M motor, U parcel, A air, H customer pickup ...
    routing: str = ""  # TD505 free-text routing
    sequence: str = ""  # TD501: O origin carrier, B ...
    service_level: str = ""  # TD512: ND next day, SE second day, ...


@dataclass
class PaymentTerms:
    """An ITD segment; `discount_amount` is ITD08 with its two implied decimals applied."""

    type_code: str = ""  # ITD01: 01 basic, 05 discount not applicable, 08 basic discount offered, 14 previously agreed
    basis_date_code: str = ""  # ITD02: 1 ship date, 2 delivery date, 3 invoice date ...
    discount_percent: Decimal | None = None
    discount_due_date: str = ""
    discount_days: int | None = None
    net_due_date: str = ""
    net_days: int | None = None
    discount_amount: Decimal | None = None
    description: str = ""


@dataclass
class AllowanceCharge:
    """A SAC segment: `indicator` A allowance / C charge (N, P, Q, R also exist); `amount` is SAC05 with its two
    implied decimals applied; `code` is SAC02 (e.g. D240 freight, C310 discount, H850 tax)."""

    indicator: str
    code: str = ""
    amount: Decimal | None = None
    percent_qualifier: str = ""
    percent: Decimal | None = None
    rate: Decimal | None = None
    uom: str = ""
    quantity: Decimal | None = None
    handling_code: str = ""  # SAC12: 02 off invoice, 06 charge to be paid by customer ...
    reference: str = ""
    description: str = ""

    @property
    def signed_amount(self) -> Decimal:
        """What this adds to an invoice total: charges add, allowances subtract, the others count nothing."""
        if self.amount is None or self.indicator not in ("A", "C"):
            return Decimal(0)
        return self.amount if self.indicator == "C" else -self.amount


@dataclass
class OrderLine:
    """A PO1 line of an 850 (or 855)."""

    line_number: str
    quantity: Decimal
    uom: str
    unit_price: Decimal | None = None
    product_ids: dict[str, str] = field(default_factory=dict)
    description: str = ""


@dataclass
class PurchaseOrder:
    """850 Purchase Order."""

    SET_ID = "850"
    po_number: str
    po_date: str
    purpose: str = "00"
    order_type: str = "SA"
    currency: str = ""
    references: dict[str, str] = field(default_factory=dict)
    dates: dict[str, str] = field(default_factory=dict)
    parties: list[Party] = field(default_factory=list)
    lines: list[OrderLine] = field(default_factory=list)
    allowances_charges: list[AllowanceCharge] = field(default_factory=list)  # header SAC loop
    terms: list[PaymentTerms] = field(default_factory=list)  # ITD
    carriers: list[CarrierRouting] = field(default_factory=list)  # TD5


@dataclass
class LineStatus:
    """An ACK segment: IA accepted, IB backordered, IR rejected, IQ quantity changed ..."""

    status: str
    quantity: Decimal | None = None
    uom: str = ""
    date_qualifier: str = ""
    date: str = ""


@dataclass
class AckLine(OrderLine):
    statuses: list[LineStatus] = field(default_factory=list)


@dataclass
class PurchaseOrderAck:
    """855 Purchase Order Acknowledgment."""

    SET_ID = "855"
    po_number: str
    po_date: str
    purpose: str = "00"
    ack_type: str = "AC"
    seller_order_number: str = ""
    ack_date: str = ""
    parties: list[Party] = field(default_factory=list)
    lines: list[AckLine] = field(default_factory=list)


@dataclass
class ShipItem:
    """HL level I: LIN + SN1 (+ PID)."""

    product_ids: dict[str, str]
    quantity_shipped: Decimal
    uom: str = "EA"
    line_number: str = ""
    quantity_ordered: Decimal | None = None
    description: str = ""


@dataclass
class Pack:
    """HL level P (carton) or T (tare/pallet) with its SSCC-18 label (MAN*GM); a tare holds cartons (`packs`,
    S-O-T-P-I) or items directly."""

    sscc: str = ""
    level: str = "P"
    items: list[ShipItem] = field(default_factory=list)
    packs: list[Pack] = field(default_factory=list)


@dataclass
class ShipOrder:
    """HL level O: the purchase order (PRF) shipped, with packs (S-O-P-I) or items directly (S-O-I)."""

    po_number: str
    po_date: str = ""
    invoice_number: str = ""
    packs: list[Pack] = field(default_factory=list)
    items: list[ShipItem] = field(default_factory=list)


@dataclass
class Shipment:
    """HL level S: carrier, weight, references and the ship-from/ship-to parties."""

    lading_quantity: Decimal | None = None
    packaging_code: str = ""
    weight: Decimal | None = None
    weight_uom: str = ""
    carrier_scac: str = ""
    transport_method: str = ""
    bill_of_lading: str = ""
    tracking_number: str = ""
    shipped_date: str = ""
    parties: list[Party] = field(default_factory=list)


@dataclass
class ShipNotice:
    """856 Ship Notice/Manifest (ASN): shipment, order, pack and item levels."""

    SET_ID = "856"
    shipment_id: str
    date: str
    time: str
    purpose: str = "00"
    structure_code: str = "0001"
    shipment: Shipment = field(default_factory=Shipment)
    orders: list[ShipOrder] = field(default_factory=list)


@dataclass
class Quantity:
    qualifier: str  # 33 available for sale, 17 on hand, 02 cumulative ...
    quantity: Decimal
    uom: str = ""


@dataclass
class InventoryItem:
    product_ids: dict[str, str]
    line_number: str = ""
    description: str = ""
    quantities: list[Quantity] = field(default_factory=list)


@dataclass
class InventoryAdvice:
    """846 Inventory Inquiry/Advice."""

    SET_ID = "846"
    reference: str
    date: str
    purpose: str = "00"
    report_type: str = "SI"
    parties: list[Party] = field(default_factory=list)
    items: list[InventoryItem] = field(default_factory=list)


@dataclass
class InvoiceLine:
    line_number: str
    quantity: Decimal
    uom: str
    unit_price: Decimal
    product_ids: dict[str, str] = field(default_factory=dict)
    description: str = ""
    allowances_charges: list[AllowanceCharge] = field(default_factory=list)

    @property
    def amount(self) -> Decimal:
        return self.quantity * self.unit_price + sum((ac.signed_amount for ac in self.allowances_charges), Decimal(0))


@dataclass
class Invoice:
    """810 Invoice. TDS amounts carry their two implied decimals applied: `total_amount` is TDS01 (lines plus
    charges minus allowances, see `computed_total`), `amount_subject_to_discount` TDS02, `discounted_amount`
    TDS03, `terms_discount_amount` TDS04. `allowances_charges` are the summary SAC loop (freight, handling)."""

    SET_ID = "810"
    invoice_number: str
    invoice_date: str
    po_number: str = ""
    po_date: str = ""
    total_amount: Decimal = Decimal(0)
    parties: list[Party] = field(default_factory=list)
    lines: list[InvoiceLine] = field(default_factory=list)
    amount_subject_to_discount: Decimal | None = None
    discounted_amount: Decimal | None = None
    terms_discount_amount: Decimal | None = None
    terms: list[PaymentTerms] = field(default_factory=list)
    allowances_charges: list[AllowanceCharge] = field(default_factory=list)

    def computed_total(self) -> Decimal:
        """What TDS01 should say: line amounts (with line allowances/charges) plus summary charges minus
        summary allowances, rounded to cents."""
        total = sum((line.amount for line in self.lines), Decimal(0))
        total += sum((ac.signed_amount for ac in self.allowances_charges), Decimal(0))
        return total.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@dataclass
class WarehouseOrderLine:
    line_number: str
    quantity: Decimal
    uom: str
    upc: str = ""
    product_ids: dict[str, str] = field(default_factory=dict)
    description: str = ""


@dataclass
class WarehouseShippingOrder:
    """940 Warehouse Shipping Order (depositor to 3PL)."""

    SET_ID = "940"
    order_number: str
    po_number: str = ""
    status: str = "N"
    parties: list[Party] = field(default_factory=list)
    # Header N9 references, qualifier -> value (e.g. CO customer order number, SA our sale id)
    references: dict[str, str] = field(default_factory=dict)
    dates: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    carrier_scac: str = ""
    payment_method: str = ""
    transport_method: str = ""
    routing: str = ""
    lines: list[WarehouseOrderLine] = field(default_factory=list)


@dataclass
class WarehouseAdviceLine:
    line_number: str
    status: str
    quantity_ordered: Decimal | None
    quantity_shipped: Decimal
    uom: str
    quantity_difference: Decimal | None = None
    upc: str = ""
    product_ids: dict[str, str] = field(default_factory=dict)
    lot: str = ""
    description: str = ""
    license_plate: str = ""


@dataclass
class WarehouseShippingAdvice:
    """945 Warehouse Shipping Advice (3PL to depositor); `order_number` is the 940's W0502."""

    SET_ID = "945"
    order_number: str
    ship_date: str
    shipment_id: str = ""
    po_number: str = ""
    reporting_code: str = "F"
    parties: list[Party] = field(default_factory=list)
    # Header N9 references, qualifier -> value: 2I tracking number, BM bill of lading, CN carrier's pro number
    references: dict[str, str] = field(default_factory=dict)
    transport_method: str = "M"
    carrier_scac: str = ""
    routing: str = ""
    payment_method: str = ""
    total_weight: Decimal | None = None
    weight_uom: str = ""
    lines: list[WarehouseAdviceLine] = field(default_factory=list)


@dataclass
class ElementError:
    position: str  # "3" or "3>1" for a component
    code: str  # AK403
    reference: str = ""
    bad_value: str = ""


@dataclass
class SegmentError:
    segment_id: str
    position: int
    code: str = ""  # AK304; empty when only element errors are reported
    loop_id: str = ""
    elements: list[ElementError] = field(default_factory=list)


@dataclass
class SetAck:
    set_id: str
    control_number: str
    status: str  # AK501: A, E, R
    codes: list[str] = field(default_factory=list)  # AK502-AK506
    segments: list[SegmentError] = field(default_factory=list)


@dataclass
class FunctionalAck:
    """997 Functional Acknowledgment of one functional group."""

    SET_ID = "997"
    functional_id: str
    group_control_number: str
    status: str  # AK901: A, E, P, R
    sets_included: int
    sets_received: int
    sets_accepted: int
    group_codes: list[str] = field(default_factory=list)  # AK905-AK909
    sets: list[SetAck] = field(default_factory=list)


Document = (
    PurchaseOrder
    | PurchaseOrderAck
    | ShipNotice
    | InventoryAdvice
    | Invoice
    | WarehouseShippingOrder
    | WarehouseShippingAdvice
    | FunctionalAck
)
