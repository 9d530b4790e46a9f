"""What the 3PL stand-in decides and writes, as pure functions: the shipment plan of a 940 (full, partial or
short, chosen from the seed), carrier tracking numbers and SSCC labels, the 945 model of one shipment, and the
ways a 945 file can be broken on purpose."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from decimal import Decimal

from gp_pipelines.edi.models import (
    Party,
    WarehouseAdviceLine,
    WarehouseOrderLine,
    WarehouseShippingAdvice,
    WarehouseShippingOrder,
)

FULL, PARTIAL, SHORT = "full", "partial", "short"
FULFILMENTS = (FULL, PARTIAL, SHORT)
# W1201 (X12 element 368): complete; partial with the balance to follow; partial with the rest cancelled.
STATUS_COMPLETE, STATUS_PARTIAL_BALANCE_TO_FOLLOW, STATUS_PARTIAL_REST_CANCELLED = "CC", "PR", "CP"
# Broken on purpose: SE01 or GE01 counts off by one, IEA02 not matching ISA13, or the trailers cut off.
MALFORMED_KINDS = ("se_count", "ge_count", "iea_control", "truncated")
WEIGHT_PER_UNIT_LB = Decimal("0.5")
_GS1_COMPANY_PREFIX = "0614141"  # GS1's documentation prefix: never a real company


@dataclass
class ShippedLine:
    """One W12 of a shipment: `shipped` in this 945, `difference` = ordered minus everything shipped so far."""

    line_number: str
    status: str
    ordered: Decimal
    shipped: Decimal
    difference: Decimal
    uom: str
    upc: str = ""
    product_ids: dict[str, str] = field(default_factory=dict)
    description: str = ""
    license_plate: str = ""


@dataclass
class PlannedShipment:
    """One 945 the warehouse will send: when (`due_at`), by which carrier, with which tracking number."""

    sequence: int
    due_at: float
    carrier_scac: str
    tracking_number: str
    lines: list[ShippedLine]
    final: bool


def order_random(seed: int, order_number: str) -> random.Random:
    """The generator for one order: the same seed and order number always give the same decisions."""
    return random.Random(f"threepl:{seed}:{order_number}")


def choose_fulfilment(rng: random.Random, partial_rate: float, short_rate: float) -> str:
    draw = rng.random()
    if draw < partial_rate:
        return PARTIAL
    if draw < partial_rate + short_rate:
        return SHORT
    return FULL


def tracking_number(rng: random.Random, scac: str) -> str:
    """A tracking number in the carrier's usual shape (not a real one)."""
    digits = "".join(rng.choice("0123456789") for _ in range(22))
    if scac.startswith("UPS"):
        return "1Z" + "GP7A21" + "03" + digits[:10]
    if scac.startswith("FD"):
        return digits[:12]
    if scac == "USPS":
        return "9400" + digits[:18]
    return scac[:4] + digits[:10]


def sscc(serial: int) -> str:
    """An SSCC-18 carton label with its application identifier (20 digits, "00" + 18 with the GS1 check)."""
    body = "0" + _GS1_COMPANY_PREFIX + f"{serial % 10**9:09d}"
    total = sum(int(digit) * (3 if index % 2 == 0 else 1) for index, digit in enumerate(reversed(body)))
    return "00" + body + str((10 - total % 10) % 10)


def _units(quantity: Decimal) -> int:
    """Whole units that can be split between shipments; fractional quantities (kg, m) ship in one go."""
    return int(quantity) if quantity == quantity.to_integral_value() and quantity > 0 else 0


def _first_id(product_ids: dict[str, str]) -> dict[str, str]:
    # W12 carries one qualifier/value pair (W1207/W1208): the 940's first one.
    return dict(list(product_ids.items())[:1])


def _line(source: WarehouseOrderLine, status: str, shipped: Decimal, difference: Decimal) -> ShippedLine:
    return ShippedLine(
        source.line_number, status, source.quantity, shipped, difference, source.uom, source.upc,
        _first_id(source.product_ids), source.description,
    )  # fmt: skip


def split_partial(rng: random.Random, lines: list[WarehouseOrderLine]) -> list[Decimal] | None:
    """Quantities for the first of two shipments, or None when the order cannot be split."""
    now = []
    for line in lines:
        units = _units(line.quantity)
        if units >= 2:
            now.append(Decimal(rng.randint(1, units - 1)))
        else:
            now.append(line.quantity if rng.random() < 0.5 else Decimal(0))
    shipped_now = sum(now, Decimal(0))
    remaining = sum((line.quantity - qty for line, qty in zip(lines, now, strict=True)), Decimal(0))
    return now if shipped_now > 0 and remaining > 0 else None


def split_short(rng: random.Random, lines: list[WarehouseOrderLine]) -> list[Decimal] | None:
    """Quantities shipped when some lines come up short, or None when nothing can be short and still ship."""
    shipped = []
    for line in lines:
        units = _units(line.quantity)
        short = units >= 1 and rng.random() < 0.5
        shipped.append(Decimal(rng.randint(0, units - 1)) if short else line.quantity)
    if all(qty == line.quantity for line, qty in zip(lines, shipped, strict=True)):
        candidates = [index for index, line in enumerate(lines) if _units(line.quantity) >= 1]
        if not candidates:
            return None
        index = rng.choice(candidates)
        shipped[index] = Decimal(rng.randint(0, _units(lines[index].quantity) - 1))
    return shipped if sum(shipped, Decimal(0)) > 0 else None


def plan_shipments(
    order: WarehouseShippingOrder,
    fulfilment: str,
    rng: random.Random,
    *,
    received_at: float,
    delay_seconds: float,
    partial_gap_seconds: float,
    carriers: tuple[str, ...],
) -> tuple[str, list[PlannedShipment]]:
    """The 945s one 940 will produce and the fulfilment actually used (a split that is impossible ships in full)."""
    fulfilment, shipments = _plan(order, fulfilment, rng, received_at + delay_seconds, partial_gap_seconds, carriers)
    for shipment in shipments:
        for line in shipment.lines:
            line.license_plate = sscc(rng.randrange(10**9))
    return fulfilment, shipments


def _plan(
    order: WarehouseShippingOrder,
    fulfilment: str,
    rng: random.Random,
    first_due: float,
    partial_gap_seconds: float,
    carriers: tuple[str, ...],
) -> tuple[str, list[PlannedShipment]]:
    carrier = order.carrier_scac or rng.choice(carriers)
    lines = order.lines
    if fulfilment == PARTIAL and (now := split_partial(rng, lines)) is not None:
        first = [
            _line(line, STATUS_COMPLETE if qty == line.quantity else STATUS_PARTIAL_BALANCE_TO_FOLLOW, qty,
                  line.quantity - qty)
            for line, qty in zip(lines, now, strict=True) if qty > 0
        ]  # fmt: skip
        second = [
            _line(line, STATUS_COMPLETE, line.quantity - qty, Decimal(0))
            for line, qty in zip(lines, now, strict=True)
            if line.quantity - qty > 0
        ]
        return PARTIAL, [
            PlannedShipment(1, first_due, carrier, tracking_number(rng, carrier), first, final=False),
            PlannedShipment(2, first_due + partial_gap_seconds, carrier, tracking_number(rng, carrier), second, True),
        ]
    if fulfilment == SHORT and (shipped := split_short(rng, lines)) is not None:
        short_lines = [
            _line(line, STATUS_COMPLETE if qty == line.quantity else STATUS_PARTIAL_REST_CANCELLED, qty,
                  line.quantity - qty)
            for line, qty in zip(lines, shipped, strict=True)
        ]  # fmt: skip
        return SHORT, [PlannedShipment(1, first_due, carrier, tracking_number(rng, carrier), short_lines, True)]
    full = [_line(line, STATUS_COMPLETE, line.quantity, Decimal(0)) for line in lines]
    return FULL, [PlannedShipment(1, first_due, carrier, tracking_number(rng, carrier), full, True)]


def shipping_advice(
    order: WarehouseShippingOrder, shipment: PlannedShipment, ship_date: str, warehouse_name: str
) -> WarehouseShippingAdvice:
    """The 945 of one shipment: W0602 is the 940's W0502, W0604 and N9*2I the tracking number, W12 lines
    mirror W01."""
    parties = [Party("SF", warehouse_name)] + [party for party in order.parties if party.role not in ("SF", "WH")]
    lines = [
        WarehouseAdviceLine(
            line.line_number, line.status, line.ordered, line.shipped, line.uom, line.difference, line.upc,
            dict(line.product_ids), "", line.description, line.license_plate,
        )
        for line in shipment.lines
    ]  # fmt: skip
    units = sum((line.shipped for line in shipment.lines), Decimal(0))
    return WarehouseShippingAdvice(
        order_number=order.order_number,
        ship_date=ship_date,
        shipment_id=shipment.tracking_number,
        po_number=order.po_number,
        reporting_code="F",
        parties=parties,
        references={"2I": shipment.tracking_number},
        transport_method=order.transport_method or "M",
        carrier_scac=shipment.carrier_scac,
        routing=order.routing,
        payment_method=order.payment_method or "PP",
        total_weight=(units * WEIGHT_PER_UNIT_LB).normalize() if units else Decimal(0),
        weight_uom="LB",
        lines=lines,
    )


def malform(text: str, kind: str, segment_terminator: str = "~") -> str:
    """The interchange broken in one of the `MALFORMED_KINDS` ways (the writer puts one segment per line)."""
    if kind not in MALFORMED_KINDS:
        raise ValueError(f"unknown malformation {kind!r}; choose from {', '.join(MALFORMED_KINDS)}")
    lines = text.rstrip("\n").split("\n")
    if kind == "truncated":
        return "\n".join(line for line in lines if not line.startswith(("SE*", "GE*", "IEA*"))) + "\n"
    tag = {"se_count": "SE*", "ge_count": "GE*", "iea_control": "IEA*"}[kind]
    position = 2 if kind == "iea_control" else 1
    for index, line in enumerate(lines):
        if line.startswith(tag):
            elements = line.removesuffix(segment_terminator).split("*")
            value = int(elements[position]) + 1
            # A control number keeps its zero-padded width; a count is just one more than the truth.
            width = len(elements[position])
            elements[position] = f"{value % 10**width:0{width}d}" if kind == "iea_control" else str(value)
            lines[index] = "*".join(elements) + segment_terminator
    return "\n".join(lines) + "\n"


def safe_file_part(text: str) -> str:
    """An order number made safe for a file name."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:40] or "order"
