"""Trading-partner EDI as pure functions: an 850 becomes a Cin7 Core sale, and Cin7 Core documents become the
855, 856, 810 and 846 a retailer expects. No Dagster, no HTTP: callers pass Cin7 records as the API (or the
cache) returns them, and send what comes back.

Decisions where the issue is silent (a retailer's usual practice):
- Rejection. A PO is acknowledged line by line: a bad line (unknown item, price outside the tolerance, a unit
  we do not sell in) is rejected (ACK IR) and the sale is made of the good lines (BAK02 AC). The whole PO is
  rejected (BAK02 RD, every line IR, and `SaleDraft.sale` is None so nothing is written to Cin7 Core) when no
  line is acceptable, when the header cannot be honoured (change/cancel purposes, an unknown ship-to without an
  address, a currency other than the customer's), or on any bad line when the partner has
  `partial_acceptance: false` (the "ship complete or not at all" retailers).
- Prices. The sale uses the PO price when it is within `price_tolerance` of the Cin7 tier price: the retailer
  pays what its PO says, and the 810 must match the PO to pass its three-way match. A line without a PO price
  takes the tier price.
- Backorders. A line whose quantity the available stock does not cover is still sold (Cin7 backorders it on
  authorisation) and acknowledged as IA for the covered part and IB for the rest, so the ACK quantities add up
  to the PO quantity.
- Item matching. `item_map` (the exceptions) is checked first, then `item_match` in order: upc (UP/EN/UK
  against the product Barcode, compared as GTIN-14), sku (SK), buyer_part (BP/IN) and vendor_part (VN/VP)
  against the SKU. A deprecated product counts as unknown.
- Traceability. Each sale line's Comment says which PO line it came from ("PO line 3"); the 856 and 810 echo
  that line number and, when the 850 is passed in, the partner's own item ids.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from gp_pipelines.config import PartnerConfig
from gp_pipelines.edi.models import (
    AckLine,
    AllowanceCharge,
    InventoryAdvice,
    InventoryItem,
    Invoice,
    InvoiceLine,
    LineStatus,
    OrderLine,
    Pack,
    Party,
    PaymentTerms,
    PurchaseOrder,
    PurchaseOrderAck,
    Quantity,
    ShipItem,
    Shipment,
    ShipNotice,
    ShipOrder,
)

CENT = Decimal("0.01")
ACCEPTED, BACKORDERED, REJECTED = "accepted", "backordered", "rejected"
SHIPPED_STATUSES = ("AUTHORISED",)
INVOICED_STATUSES = ("AUTHORISED", "PAID")
# Product id qualifiers (X12 element 235) each `item_match` kind reads.
ITEM_QUALIFIERS: dict[str, tuple[str, ...]] = {
    "upc": ("UP", "EN", "UK"),
    "sku": ("SK",),
    "buyer_part": ("BP", "IN"),
    "vendor_part": ("VN", "VP"),
}
PARCEL_SCACS = frozenset(["UPSN", "FDEG", "FDEN", "USPS"])
_PO_LINE_COMMENT = re.compile(r"\bPO line (\S+)")
_COUNTRY_CODES = {
    "united states": "US", "united states of america": "US", "usa": "US", "australia": "AU", "new zealand": "NZ",
    "canada": "CA", "united kingdom": "GB", "great britain": "GB", "ireland": "IE", "germany": "DE",
    "france": "FR", "mexico": "MX",
}  # fmt: skip


class TradingError(ValueError):
    """A Cin7 document or partner setting cannot become the EDI document asked for; the message says why."""


# ---------------------------------------------------------------- small conversions


def money(value: Any) -> Decimal:
    """A Cin7 JSON amount as Decimal cents (floats go through str, so 41.56 stays 41.56)."""
    return to_decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def to_decimal(value: Any, what: str = "number") -> Decimal:
    if isinstance(value, Decimal):
        return value
    try:
        number = Decimal(str(value if value is not None else 0))
    except InvalidOperation:
        raise TradingError(f"{what} {value!r} is not a number") from None
    if not number.is_finite():
        raise TradingError(f"{what} {value!r} is not a number")
    return number


def quantity(value: Any, what: str = "quantity") -> Decimal:
    """A quantity without a trailing '.0' (Cin7 sends 4.0 for four units; X12 wants 4)."""
    number = to_decimal(value, what)
    return number.quantize(Decimal(1)) if number == number.to_integral_value() else number.normalize()


def edi_date(value: str | None) -> str:
    """A Cin7 date ("2026-11-22T00:00:00", "2026-11-22") as X12 CCYYMMDD; "" when absent."""
    if not value:
        return ""
    digits = str(value)[:10].replace("-", "")
    if len(digits) != 8 or not digits.isdigit():
        raise TradingError(f"date {value!r} is not yyyy-MM-dd")
    return digits


def cin7_date(value: str) -> str:
    """An X12 CCYYMMDD as a Cin7 business date (midnight, no zone)."""
    if len(value) != 8 or not value.isdigit():
        raise TradingError(f"date {value!r} is not CCYYMMDD")
    return f"{value[:4]}-{value[4:6]}-{value[6:]}T00:00:00"


def gtin14(value: str) -> str | None:
    """A UPC-A, EAN-13, EAN-8 or GTIN-14 as its 14-digit form (so 012345678905 and 0012345678905 agree)."""
    text = value.strip()
    return text.zfill(14) if text.isdigit() and len(text) in (8, 12, 13, 14) else None


def gtin_qualifier(barcode: str) -> str | None:
    """The X12 qualifier of a barcode by its length: UP (UPC-A), EN (EAN-13), UK (GTIN-14)."""
    text = barcode.strip()
    if not text.isdigit():
        return None
    return {12: "UP", 13: "EN", 14: "UK"}.get(len(text))


def gs1_check_digit(digits: str) -> str:
    """The GS1 mod-10 check digit: weights 3, 1, 3, 1 ... from the rightmost digit."""
    if not (digits.isascii() and digits.isdigit()):
        raise TradingError(f"GS1 data {digits!r} must be digits only")
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return str((10 - total % 10) % 10)


def sscc18(extension_digit: int, company_prefix: str, serial: int | str) -> str:
    """An SSCC-18: extension digit, GS1 company prefix, serial reference (zero-padded to fill 16 digits), check
    digit."""
    if not 0 <= int(extension_digit) <= 9:
        raise TradingError(f"SSCC extension digit {extension_digit!r} must be 0-9")
    if not (company_prefix.isascii() and company_prefix.isdigit() and 6 <= len(company_prefix) <= 12):
        raise TradingError(f"GS1 company prefix {company_prefix!r} must be 6 to 12 digits")
    width = 16 - len(company_prefix)
    text = str(serial)
    if not (text.isascii() and text.isdigit()) or len(text) > width:
        raise TradingError(f"SSCC serial {serial!r} must be at most {width} digits with prefix {company_prefix}")
    body = f"{int(extension_digit)}{company_prefix}{text.zfill(width)}"
    return body + gs1_check_digit(body)


def valid_sscc18(code: str) -> bool:
    """18 digits whose last is the GS1 check digit of the first 17."""
    return len(code) == 18 and code.isascii() and code.isdigit() and gs1_check_digit(code[:17]) == code[17]


def _clip(text: Any, length: int) -> str:
    return str(text or "").strip()[:length]


def _country(value: str) -> str:
    text = (value or "").strip()
    if 2 <= len(text) <= 3 and text.isalpha():
        return text.upper()
    return _COUNTRY_CODES.get(text.lower(), "")


def _party(role: str, name: str, address: Mapping[str, Any] | None, id_qualifier: str = "", code: str = "") -> Party:
    """An N1 loop from a Cin7 address, cut to the X12 lengths (N102 60, N3 55, N401 2-30, N402 2-3, N403 3-15);
    a value too short for its element is left out rather than sent invalid."""
    address = address or {}

    def part(key: str, low: int, high: int) -> str:
        text = _clip(address.get(key), high)
        return text if len(text) >= low else ""

    return Party(
        role=role, name=_clip(name, 60) or role, id_qualifier=id_qualifier if code else "", id=_clip(code, 80),
        address_lines=[line for line in (part("Line1", 1, 55), part("Line2", 1, 55)) if line],
        city=part("City", 2, 30), state=part("State", 2, 3), postal_code=part("Postcode", 3, 15),
        country=_country(str(address.get("Country") or "")),
    )  # fmt: skip


# ---------------------------------------------------------------- items


@dataclass(frozen=True)
class ItemMatch:
    """What a PO line's item ids found in Cin7 Core: the product, how, and with which id; or why not."""

    line_number: str
    product: dict[str, Any] | None
    matched_by: str = ""  # item_map, upc, sku, buyer_part or vendor_part
    partner_id: str = ""
    reason: str = ""


class ProductIndex:
    """Cin7 products by SKU and by barcode (as GTIN-14), built once per PO."""

    def __init__(self, products: Iterable[Mapping[str, Any]]) -> None:
        self.by_sku: dict[str, dict[str, Any]] = {}
        self.by_sku_folded: dict[str, dict[str, Any]] = {}
        self.by_gtin: dict[str, dict[str, Any]] = {}
        self.by_id: dict[str, dict[str, Any]] = {}
        for product in products:
            product = dict(product)
            sku = str(product.get("SKU") or "").strip()
            if sku:
                self.by_sku.setdefault(sku, product)
                self.by_sku_folded.setdefault(sku.casefold(), product)
            code = gtin14(str(product.get("Barcode") or ""))
            if code:
                self.by_gtin.setdefault(code, product)
            if product.get("ID"):
                self.by_id[str(product["ID"]).lower()] = product

    def sku(self, value: str) -> dict[str, Any] | None:
        value = value.strip()
        return self.by_sku.get(value) or self.by_sku_folded.get(value.casefold())

    def barcode(self, value: str) -> dict[str, Any] | None:
        code = gtin14(value)
        return self.by_gtin.get(code) if code else None

    def product(self, product_id: str) -> dict[str, Any] | None:
        return self.by_id.get(str(product_id).lower())


def _active(product: Mapping[str, Any]) -> bool:
    return str(product.get("Status") or "Active") == "Active"


def _ids_text(ids: Mapping[str, str]) -> str:
    return ", ".join(f"{qualifier} {value}" for qualifier, value in ids.items()) or "no item id"


def match_item(
    line_number: str, product_ids: Mapping[str, str], partner: PartnerConfig, index: ProductIndex
) -> ItemMatch:
    """One PO line's item: `item_map` exceptions first, then the partner's `item_match` kinds in order."""
    found: dict[str, Any] | None = None
    how = partner_id = ""
    for value in product_ids.values():
        if value in partner.item_map:
            sku = partner.item_map[value]
            found = index.sku(sku)
            if found is None:
                return ItemMatch(line_number, None, reason=f"item_map sends {value} to SKU {sku}, "
                                 "which Cin7 Core does not have")  # fmt: skip
            how, partner_id = "item_map", value
            break
    if found is None:
        for kind in partner.item_match:
            for qualifier in ITEM_QUALIFIERS[kind]:
                value = product_ids.get(qualifier)
                if not value:
                    continue
                found = index.barcode(value) if kind == "upc" else index.sku(value)
                if found is not None:
                    how, partner_id = kind, value
                    break
            if found is not None:
                break
    if found is None:
        tried = ", ".join(["item_map", *partner.item_match])
        return ItemMatch(line_number, None, reason=f"unknown item ({_ids_text(product_ids)}; tried {tried})")
    if not _active(found):
        return ItemMatch(line_number, None, how, partner_id, f"SKU {found.get('SKU')} is deprecated in Cin7 Core")
    return ItemMatch(line_number, found, how, partner_id)


def resolve_items(po: PurchaseOrder, partner: PartnerConfig, products: Iterable[Mapping[str, Any]]) -> list[ItemMatch]:
    """Per PO line, the Cin7 product its item ids name (`product` None, with a `reason`, when none does)."""
    index = products if isinstance(products, ProductIndex) else ProductIndex(products)
    return [match_item(line.line_number, line.product_ids, partner, index) for line in po.lines]


def tier_price(product: Mapping[str, Any], tier: str) -> Decimal | None:
    """The product's price in a Cin7 price tier, by tier name ("Wholesale") or number ("Tier 2", "2")."""
    tiers = product.get("PriceTiers") or {}
    for name, price in tiers.items():
        if str(name).casefold() == tier.casefold() and price is not None:
            return money(price)
    number = re.fullmatch(r"(?:(?:price\s*)?tier\s*)?(\d{1,2})", tier.strip(), re.IGNORECASE)
    if number and product.get(f"PriceTier{int(number.group(1))}") is not None:
        return money(product[f"PriceTier{int(number.group(1))}"])
    return None


# ---------------------------------------------------------------- customers and ship-to


def find_customer(customers: Iterable[Mapping[str, Any]], reference: str) -> dict[str, Any] | None:
    """A Cin7 customer by ID or, failing that, by name (both case-insensitive)."""
    customers = list(customers)
    wanted = reference.strip().casefold()
    for key in ("ID", "Name"):
        for customer in customers:
            if str(customer.get(key) or "").strip().casefold() == wanted:
                return dict(customer)
    return None


def ship_to_party(po: PurchaseOrder) -> Party | None:
    return next((party for party in po.parties if party.role == "ST"), None)


def customer_reference(po: PurchaseOrder, partner: PartnerConfig) -> str:
    """The Cin7 customer (name or ID) a PO is sold to: its ship-to code's customer, else the partner's."""
    party = ship_to_party(po)
    mapped = partner.ship_to.get(party.id) if party is not None and party.id else None
    reference = (mapped.customer if mapped else None) or partner.customer
    if not reference:
        raise TradingError(f"partner {partner.key!r}: no Cin7 customer for PO {po.po_number}: set customer, or "
                           "customer on the ship-to code")  # fmt: skip
    return reference


@dataclass(frozen=True)
class ShipToResolution:
    code: str
    address: dict[str, Any] | None  # a Cin7 ShippingAddress; None = the customer's own
    problem: str = ""


def resolve_ship_to(po: PurchaseOrder, partner: PartnerConfig) -> ShipToResolution:
    """The PO's delivery address: the ship-to code's configured address, else the address on the PO; a code we
    do not know and an address the PO does not give is a problem (we cannot ship)."""
    party = ship_to_party(po)
    if party is None:
        return ShipToResolution("", None)
    po_address = _address_from_party(party) if party.address_lines else None
    mapped = partner.ship_to.get(party.id) if party.id else None
    if mapped is not None:
        if mapped.address is not None:
            address = mapped.address
            return ShipToResolution(party.id, {
                "Company": mapped.name or party.name, "Line1": address.line1, "Line2": address.line2,
                "City": address.city, "State": address.state, "Postcode": address.postcode,
                "Country": address.country, "ShipToOther": True,
            })  # fmt: skip
        if po_address is not None and mapped.name:
            po_address["Company"] = mapped.name
        return ShipToResolution(party.id, po_address)
    if po_address is not None:
        return ShipToResolution(party.id, po_address)
    if party.id:
        return ShipToResolution(party.id, None, f"ship-to code {party.id} is not in partner {partner.key!r}'s "
                                "ship_to and the PO gives no address")  # fmt: skip
    return ShipToResolution("", None)


def _address_from_party(party: Party) -> dict[str, Any]:
    lines = [*party.address_lines, "", ""]
    return {
        "Company": party.name, "Line1": lines[0], "Line2": lines[1], "City": party.city, "State": party.state,
        "Postcode": party.postal_code, "Country": party.country, "ShipToOther": True,
    }  # fmt: skip


def existing_sale_for_po(sales: Iterable[Mapping[str, Any]], po_number: str) -> dict[str, Any] | None:
    """The live sale already made for a PO (ExternalID = PO number): the same PO twice makes one sale. Takes
    saleList headers or sale documents."""
    for sale in sales:
        if str(sale.get("ExternalID") or "") == po_number and sale.get("Status") != "VOIDED":
            return dict(sale)
    return None


# ---------------------------------------------------------------- 850 -> sale


@dataclass
class LineDecision:
    """What we do with one PO line; `available` is the part of `quantity` stock covers now."""

    line_number: str
    status: str  # accepted, backordered or rejected
    quantity: Decimal
    uom: str
    product_ids: dict[str, str]
    product: dict[str, Any] | None = None
    unit_price: Decimal | None = None  # the price the sale line uses
    available: Decimal = Decimal(0)
    reason: str = ""

    @property
    def ack_statuses(self) -> list[tuple[str, Decimal]]:
        """The 855 ACK codes and quantities: IA, IA + IB (part backordered), IB, or IR; they add up to the PO
        quantity."""
        if self.status == REJECTED:
            return [("IR", self.quantity)]
        if self.status == ACCEPTED:
            return [("IA", self.quantity)]
        parts = [("IA", self.available)] if self.available > 0 else []
        return [*parts, ("IB", quantity(self.quantity - self.available))]


@dataclass
class SaleDraft:
    """The Cin7 Core writes for one PO, or why there are none. `sale` is the POST sale body; `order_body(id)` the
    POST sale/order body that authorises it. `accepted` False means write nothing (and answer the 855 RD)."""

    po_number: str
    accepted: bool
    decisions: list[LineDecision]
    problems: list[str] = field(default_factory=list)
    sale: dict[str, Any] | None = None
    order_lines: list[dict[str, Any]] = field(default_factory=list)
    memo: str = ""

    def order_body(self, sale_id: str) -> dict[str, Any]:
        if not self.accepted or self.sale is None:
            raise TradingError(f"PO {self.po_number} was rejected: there is no order to write")
        return {"SaleID": sale_id, "Status": "AUTHORISED", "Memo": self.memo, "Lines": self.order_lines}

    @property
    def rejected_lines(self) -> list[LineDecision]:
        return [decision for decision in self.decisions if decision.status == REJECTED]


PriceLookup = Callable[[Mapping[str, Any]], Decimal | None]


def _header_problems(po: PurchaseOrder, customer: Mapping[str, Any], ship_to: ShipToResolution) -> list[str]:
    problems = []
    if po.purpose not in ("", "00", "07"):
        problems.append(f"BEG01 purpose {po.purpose} (change, cancel or replace) is not processed automatically")
    if not po.po_number:
        problems.append("BEG03 PO number is missing")
    if not po.lines:
        problems.append("the PO has no PO1 lines")
    currency = str(customer.get("Currency") or "")
    if po.currency and currency and po.currency != currency:
        problems.append(f"PO currency {po.currency} differs from customer {customer.get('Name')}'s {currency}")
    if customer.get("Status") not in (None, "Active"):
        problems.append(f"customer {customer.get('Name')} is {customer.get('Status')} in Cin7 Core")
    if ship_to.problem:
        problems.append(ship_to.problem)
    return problems


def _decide_line(
    line: OrderLine,
    match: ItemMatch,
    partner: PartnerConfig,
    price_lookup: PriceLookup,
    tier: str,
    remaining: dict[str, Decimal] | None,
) -> LineDecision:
    decision = LineDecision(line.line_number, REJECTED, line.quantity, line.uom, dict(line.product_ids))
    if match.product is None:
        decision.reason = match.reason
        return decision
    product = match.product
    decision.product = product
    if line.uom not in partner.accepted_uoms:
        units = ", ".join(partner.accepted_uoms)
        decision.reason = f"unit of measure {line.uom or '(none)'} is not one we sell in ({units})"
        return decision
    if line.quantity <= 0:
        decision.reason = f"quantity {line.quantity} is not positive"
        return decision
    expected = price_lookup(product)
    if line.unit_price is None:
        if expected is None:
            decision.reason = f"no price on the PO and no {tier!r} tier price for SKU {product.get('SKU')}"
            return decision
        decision.unit_price = expected
    else:
        if expected is not None:
            tolerance = to_decimal(partner.price_tolerance.of(float(expected)))
            if abs(line.unit_price - expected) > tolerance:
                decision.reason = (
                    f"price mismatch: PO {line.unit_price}, Cin7 {tier!r} tier {expected} for SKU {product.get('SKU')}"
                    f" (tolerance {tolerance.quantize(CENT)})"
                )
                return decision
        decision.unit_price = line.unit_price
    if remaining is None:
        decision.status, decision.available = ACCEPTED, line.quantity
        return decision
    product_id = str(product.get("ID"))
    free = max(remaining.get(product_id, Decimal(0)), Decimal(0))
    decision.available = quantity(min(free, line.quantity))
    remaining[product_id] = free - line.quantity
    decision.status = ACCEPTED if decision.available >= line.quantity else BACKORDERED
    if decision.status == BACKORDERED:
        decision.reason = f"{decision.available} of {line.quantity} available now"
    return decision


def sale_from_purchase_order(
    po: PurchaseOrder,
    partner: PartnerConfig,
    customer: Mapping[str, Any],
    products: Iterable[Mapping[str, Any]],
    price_lookup: PriceLookup | None = None,
    available: Mapping[str, Any] | None = None,
) -> SaleDraft:
    """Decide every PO line and, unless the PO is rejected as a whole, the Cin7 sale that carries the good lines.

    `customer` is the Cin7 customer record (see `customer_reference` / `find_customer`); `price_lookup` gives the
    expected unit price of a product (default: its price in the partner's `price_tier`, else the customer's
    tier); `available` is stock available to sell per product ID (None: no backorder check)."""
    tier = partner.price_tier or str(customer.get("PriceTier") or "") or "Tier 1"
    lookup = price_lookup or (lambda product: tier_price(product, tier))
    index = ProductIndex(products)
    ship_to = resolve_ship_to(po, partner)
    problems = _header_problems(po, customer, ship_to)
    remaining = {str(key): to_decimal(value) for key, value in available.items()} if available is not None else None
    decisions = []
    seen: set[str] = set()
    for line in po.lines:
        if line.line_number and line.line_number in seen:
            decision = LineDecision(line.line_number, REJECTED, line.quantity, line.uom, dict(line.product_ids),
                                    reason=f"PO1 line number {line.line_number} is used twice")  # fmt: skip
        else:
            match = match_item(line.line_number, line.product_ids, partner, index)
            decision = _decide_line(line, match, partner, lookup, tier, remaining)
        seen.add(line.line_number)
        decisions.append(decision)
    good = [decision for decision in decisions if decision.status != REJECTED]
    if not good and not problems:
        problems.append("no line of the PO can be accepted")
    if not partner.partial_acceptance and len(good) < len(decisions):
        problems.append(f"partner {partner.key!r} takes whole POs only and {len(decisions) - len(good)} line(s) "
                        "are rejected")  # fmt: skip
    if problems:
        for decision in decisions:
            if decision.status != REJECTED:
                decision.status, decision.reason = REJECTED, "purchase order rejected: " + "; ".join(problems)
        return SaleDraft(po.po_number, False, decisions, problems)
    return SaleDraft(
        po.po_number, True, decisions, [], _sale_body(po, partner, customer, ship_to, tier),
        [_order_line(decision, customer) for decision in good], f"EDI 850 PO {po.po_number} from {partner.name}",
    )  # fmt: skip


def _sale_body(
    po: PurchaseOrder, partner: PartnerConfig, customer: Mapping[str, Any], ship_to: ShipToResolution, tier: str
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Customer": customer.get("Name"),
        "CustomerID": customer.get("ID"),
        "ExternalID": po.po_number,  # the idempotency key: the same PO twice finds this sale
        "CustomerReference": po.po_number,
        "PriceTier": tier,
        "SkipQuote": True,
        "SourceChannel": "EDI",
        "Note": f"EDI 850 from {partner.name}, PO {po.po_number}" + (f" ship-to {ship_to.code}" if ship_to.code
                                                                       else ""),
    }  # fmt: skip
    if po.po_date:
        body["SaleOrderDate"] = cin7_date(po.po_date)
    ship_by = po.dates.get("010") or po.dates.get("038") or po.dates.get("037")
    if ship_by:
        body["ShipBy"] = cin7_date(ship_by)
    if ship_to.address is not None:
        body["ShippingAddress"] = ship_to.address
    if partner.location:
        body["Location"] = partner.location
    scac_to_carrier = {scac: carrier for carrier, scac in partner.carrier_scac.items()}
    for routing in po.carriers:
        if routing.carrier_code in scac_to_carrier:
            body["Carrier"] = scac_to_carrier[routing.carrier_code]
            break
    return body


def _order_line(decision: LineDecision, customer: Mapping[str, Any]) -> dict[str, Any]:
    product = decision.product or {}
    price = decision.unit_price or Decimal(0)
    line = {
        "ProductID": product.get("ID"),
        "SKU": product.get("SKU"),
        "Name": product.get("Name"),
        "Quantity": float(decision.quantity),
        "Price": float(price),
        "Discount": 0.0,
        "Total": float((decision.quantity * price).quantize(CENT, rounding=ROUND_HALF_UP)),
        "Comment": f"PO line {decision.line_number}",
    }
    if customer.get("TaxRule"):
        line["TaxRule"] = customer["TaxRule"]
    return line


# ---------------------------------------------------------------- 855


def build_855(
    po: PurchaseOrder, decisions: Sequence[LineDecision], sale_order_number: str = "", now: datetime | None = None
) -> PurchaseOrderAck:
    """The acknowledgment: BAK02 AD when every line is accepted as ordered, RD when every line is rejected, AC
    otherwise; one PO1 per PO line echoing the partner's ids, with ACK quantities that add up to the order."""
    if len(decisions) != len(po.lines):
        raise TradingError(f"PO {po.po_number} has {len(po.lines)} lines but {len(decisions)} decisions")
    now = now or datetime.now()
    statuses = {decision.status for decision in decisions}
    ack_type = "AD" if statuses == {ACCEPTED} else "RD" if statuses == {REJECTED} else "AC"
    lines = []
    for line, decision in zip(po.lines, decisions, strict=True):
        if line.line_number != decision.line_number:
            raise TradingError(f"PO {po.po_number}: decision for line {decision.line_number} is where line "
                               f"{line.line_number} is")  # fmt: skip
        lines.append(AckLine(
            line.line_number, line.quantity, line.uom, line.unit_price, dict(line.product_ids), line.description,
            statuses=[LineStatus(code, qty, line.uom) for code, qty in decision.ack_statuses],
        ))  # fmt: skip
    return PurchaseOrderAck(
        po_number=po.po_number, po_date=po.po_date, purpose="00", ack_type=ack_type,
        seller_order_number=sale_order_number if ack_type != "RD" else "", ack_date=now.strftime("%Y%m%d"),
        lines=lines,
    )  # fmt: skip


# ---------------------------------------------------------------- the sale's lines as PO lines


@dataclass
class _SaleLine:
    product_id: str
    po_line: str
    quantity: Decimal
    sku: str
    name: str
    left: Decimal = Decimal(0)


def _sale_lines(sale: Mapping[str, Any]) -> list[_SaleLine]:
    result = []
    order = sale.get("Order") or {}
    for number, line in enumerate(order.get("Lines") or [], start=1):
        comment = _PO_LINE_COMMENT.search(str(line.get("Comment") or ""))
        qty = quantity(line.get("Quantity"), f"sale {order.get('SaleOrderNumber')} line {number} Quantity")
        result.append(_SaleLine(str(line.get("ProductID")), comment.group(1) if comment else str(number), qty,
                                str(line.get("SKU") or ""), str(line.get("Name") or ""), qty))  # fmt: skip
    return result


def _item_ids(sale_line: _SaleLine, po: PurchaseOrder | None, products: ProductIndex | None) -> dict[str, str]:
    """The partner's own ids for the line when the 850 is at hand, else the barcode and our SKU (as the vendor's
    item number)."""
    if po is not None:
        for line in po.lines:
            if line.line_number == sale_line.po_line and line.product_ids:
                return dict(line.product_ids)
    ids: dict[str, str] = {}
    product = products.product(sale_line.product_id) if products is not None else None
    barcode = str((product or {}).get("Barcode") or "")
    if gtin_qualifier(barcode):
        ids[gtin_qualifier(barcode)] = barcode
    if sale_line.sku:
        ids["VN"] = _clip(sale_line.sku, 48)
    return ids


def _allocate(
    sale_lines: list[_SaleLine], product_id: str, qty: Decimal, where: str
) -> list[tuple[_SaleLine, Decimal]]:
    """Spread a shipped quantity of a product over the sale lines of that product, first line first."""
    parts = []
    for line in sale_lines:
        if qty <= 0:
            break
        if line.product_id == product_id and line.left > 0:
            take = min(line.left, qty)
            line.left -= take
            qty -= take
            parts.append((line, take))
    if qty > 0:
        raise TradingError(f"{where}: {qty} more of product {product_id} than the order has left to ship")
    return parts


# ---------------------------------------------------------------- 856


def _task_label(sale: Mapping[str, Any], task: Mapping[str, Any]) -> str:
    return f"sale {(sale.get('Order') or {}).get('SaleOrderNumber') or sale.get('ID')} fulfilment " \
           f"{task.get('FulfillmentNumber') or task.get('TaskID')}"  # fmt: skip


def build_856(
    sale: Mapping[str, Any],
    task: Mapping[str, Any],
    partner: PartnerConfig,
    po_number: str,
    sscc_serials: Iterable[int | str],
    *,
    po: PurchaseOrder | None = None,
    products: Iterable[Mapping[str, Any]] | None = None,
    now: datetime | None = None,
) -> ShipNotice:
    """The ASN of one shipped Cin7 fulfilment, pick and pack (BSN05 0001): shipment (carrier SCAC, tracking,
    ship date, ship-from/ship-to), order (PRF = PO number), one pack per Cin7 box with an SSCC-18 made from the
    next of `sscc_serials`, and the items in each box with the quantities Cin7 packed."""
    where = _task_label(sale, task)
    now = now or datetime.now()
    ship = task.get("Ship") or {}
    if ship.get("Status") not in SHIPPED_STATUSES:
        raise TradingError(f"{where} is not shipped (Ship status {ship.get('Status')!r})")
    if partner.gs1_company_prefix is None:
        raise TradingError(f"partner {partner.key!r} has no gs1_company_prefix: SSCC-18 labels cannot be made")
    po_number = po_number or str(sale.get("ExternalID") or sale.get("CustomerReference") or "")
    if not po_number:
        raise TradingError(f"{where}: no PO number (neither given nor in ExternalID/CustomerReference)")
    index = ProductIndex(products) if products is not None else None

    picked = (task.get("Pick") or {}).get("Lines") or []
    pack = task.get("Pack") or {}
    # Boxes come from the pack lines; a task shipped without packing is one box.
    lines = pack.get("Lines") if pack.get("Status") == "AUTHORISED" and pack.get("Lines") else None
    lines = lines or [{**line, "Box": "Box 1"} for line in picked]
    if not lines:
        raise TradingError(f"{where} has no picked or packed lines")
    if _per_product(lines) != _per_product(picked):
        raise TradingError(f"{where}: packed {_per_product(lines)} but picked {_per_product(picked)}")
    sale_lines = _sale_lines(sale)
    for earlier in sale.get("Fulfilments") or []:
        if earlier.get("TaskID") == task.get("TaskID"):
            break
        if earlier.get("FulFilmentStatus") != "VOIDED" and (earlier.get("Ship") or {}).get("Status") == "AUTHORISED":
            for line in (earlier.get("Pick") or {}).get("Lines") or []:
                _allocate(sale_lines, str(line.get("ProductID")), quantity(line.get("Quantity")), where)

    serials = iter(sscc_serials)
    packs: dict[str, Pack] = {}
    items: dict[tuple[str, int], ShipItem] = {}
    for line in lines:
        box = str(line.get("Box") or "Box 1")
        if box not in packs:
            serial = next(serials, None)
            if serial is None:
                raise TradingError(f"{where}: not enough SSCC serials for box {box!r}")
            packs[box] = Pack(sscc=sscc18(partner.sscc_extension_digit, partner.gs1_company_prefix, serial))
        shipped = quantity(line.get("Quantity"), f"{where} pack line Quantity")
        for sale_line, part in _allocate(sale_lines, str(line.get("ProductID")), shipped, where):
            key = (box, id(sale_line))
            if key in items:
                items[key].quantity_shipped += part
                continue
            items[key] = ShipItem(
                product_ids=_item_ids(sale_line, po, index), quantity_shipped=part, uom="EA",
                line_number=sale_line.po_line, quantity_ordered=sale_line.quantity,
                description=_clip(sale_line.name, 80),
            )  # fmt: skip
            packs[box].items.append(items[key])

    ship_lines = ship.get("Lines") or [{}]
    first = ship_lines[0]
    carrier = str(first.get("Carrier") or sale.get("Carrier") or "")
    scac = _scac(carrier, partner, where)
    address = ship.get("ShippingAddress") or sale.get("ShippingAddress")
    ship_to_id = ship_to_party(po) if po is not None else None
    shipment = Shipment(
        lading_quantity=Decimal(len(packs)), packaging_code="CTN25", carrier_scac=scac,
        transport_method="U" if scac in PARCEL_SCACS else "M",
        tracking_number=_clip(first.get("TrackingNumber"), 30), shipped_date=edi_date(first.get("ShipmentDate")),
        parties=[
            _party("ST", (address or {}).get("Company") or str(sale.get("Customer") or ""), address,
                   ship_to_id.id_qualifier if ship_to_id else "", ship_to_id.id if ship_to_id else ""),
            _party("SF", str(sale.get("Location") or ""), None),
        ],
    )  # fmt: skip
    order_number = str((sale.get("Order") or {}).get("SaleOrderNumber") or sale.get("ID"))
    return ShipNotice(
        shipment_id=_clip(f"{order_number}-{task.get('FulfillmentNumber') or 1}", 30),
        date=now.strftime("%Y%m%d"), time=now.strftime("%H%M"), purpose="00", structure_code="0001",
        shipment=shipment,
        orders=[ShipOrder(po_number=po_number, po_date=po.po_date if po is not None else "",
                          packs=list(packs.values()))],
    )  # fmt: skip


def _per_product(lines: Iterable[Mapping[str, Any]]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for line in lines:
        key = str(line.get("ProductID"))
        totals[key] = totals.get(key, Decimal(0)) + quantity(line.get("Quantity"))
    return totals


def _scac(carrier: str, partner: PartnerConfig, where: str) -> str:
    for name, scac in partner.carrier_scac.items():
        if name.casefold() == carrier.strip().casefold():
            return scac
    raise TradingError(f"{where}: carrier {carrier!r} has no SCAC; add it to partner {partner.key!r}'s carrier_scac")


# ---------------------------------------------------------------- 810


_CHARGE_CODES = (("freight", "D240"), ("shipping", "D240"), ("delivery", "D240"), ("handling", "D500"))


def _charge(charge: Mapping[str, Any]) -> AllowanceCharge | None:
    total = money(charge.get("Total"))
    if total == 0:
        return None
    description = _clip(charge.get("Description"), 80)
    code = next((code for word, code in _CHARGE_CODES if word in description.casefold()), "ZZZZ")
    if total < 0:
        return AllowanceCharge("A", "C310", -total, description=description or "Discount")
    return AllowanceCharge("C", code, total, description=description or "Charge")


def _terms(sale: Mapping[str, Any], invoice: Mapping[str, Any]) -> list[PaymentTerms]:
    days = re.search(r"(\d+)\s*day", str(sale.get("Terms") or ""), re.IGNORECASE)
    due = edi_date(invoice.get("InvoiceDueDate"))
    if not days and not due:
        return []
    return [PaymentTerms(type_code="01", basis_date_code="3", net_due_date=due,
                         net_days=int(days.group(1)) if days else None,
                         description=_clip(sale.get("Terms"), 80))]  # fmt: skip


def build_810(
    sale: Mapping[str, Any],
    invoice: Mapping[str, Any],
    po_number: str,
    *,
    po: PurchaseOrder | None = None,
    products: Iterable[Mapping[str, Any]] | None = None,
) -> Invoice:
    """The 810 of an authorised Cin7 invoice, to the cent: IT1 lines at the Cin7 price with the line discount as a
    SAC allowance, additional charges as summary SACs (D240 freight, D500 handling, ZZZZ other), tax as a summary
    SAC H850 (unless prices include tax), and TDS01 = the Cin7 invoice Total. Raises `TradingError` rather than
    send a total that differs from Cin7's."""
    label = f"invoice {invoice.get('InvoiceNumber')} of sale {(sale.get('Order') or {}).get('SaleOrderNumber')}"
    if invoice.get("Status") not in INVOICED_STATUSES:
        raise TradingError(f"{label} is not authorised (status {invoice.get('Status')!r})")
    po_number = po_number or str(sale.get("ExternalID") or sale.get("CustomerReference") or "")
    if not po_number:
        raise TradingError(f"{label}: no PO number (neither given nor in ExternalID/CustomerReference)")
    index = ProductIndex(products) if products is not None else None
    sale_lines = _sale_lines(sale)
    used: set[int] = set()
    lines = []
    for number, raw in enumerate(invoice.get("Lines") or [], start=1):
        where = f"{label} line {number}"
        product_id = str(raw.get("ProductID"))
        sale_line = next((line for i, line in enumerate(sale_lines) if i not in used and line.product_id == product_id),
                         None)  # fmt: skip
        if sale_line is None:
            sale_line = _SaleLine(product_id, str(number), Decimal(0), str(raw.get("SKU") or ""),
                                  str(raw.get("Name") or ""))  # fmt: skip
        else:
            used.add(sale_lines.index(sale_line))
        qty = quantity(raw.get("Quantity"), f"{where} Quantity")
        price = to_decimal(raw.get("Price"), f"{where} Price")
        line = InvoiceLine(sale_line.po_line, qty, "EA", price, _item_ids(sale_line, po, index),
                           _clip(raw.get("Name"), 80))  # fmt: skip
        # The line discount (and Cin7's rounding of the line total) as an allowance, so the IT1 amount is the
        # Cin7 line Total to the cent.
        difference = (qty * price - money(raw.get("Total"))).quantize(CENT, rounding=ROUND_HALF_UP)
        if difference > 0:
            discount = quantity(raw.get("Discount") or 0, f"{where} Discount")
            text = f"Discount {discount}%" if discount else "Discount"
            line.allowances_charges.append(AllowanceCharge("A", "C310", difference, description=text))
        elif difference < 0:
            line.allowances_charges.append(AllowanceCharge("C", "ZZZZ", -difference, description="Adjustment"))
        lines.append(line)
    summary = [item for item in (_charge(c) for c in invoice.get("AdditionalCharges") or []) if item]
    tax = money(invoice.get("Tax"))
    if tax and str(sale.get("TaxCalculation") or "Exclusive") != "Inclusive":
        summary.append(AllowanceCharge("C" if tax > 0 else "A", "H850", abs(tax), description="Tax"))
    address = sale.get("ShippingAddress")
    ship_to_id = ship_to_party(po) if po is not None else None
    document = Invoice(
        invoice_number=_clip(invoice.get("InvoiceNumber"), 22), invoice_date=edi_date(invoice.get("InvoiceDate")),
        po_number=po_number, po_date=po.po_date if po is not None else "", total_amount=money(invoice.get("Total")),
        parties=[
            _party("BT", str(sale.get("Customer") or ""), sale.get("BillingAddress")),
            _party("ST", (address or {}).get("Company") or str(sale.get("Customer") or ""), address,
                   ship_to_id.id_qualifier if ship_to_id else "", ship_to_id.id if ship_to_id else ""),
        ],
        lines=lines, terms=_terms(sale, invoice), allowances_charges=summary,
    )  # fmt: skip
    if document.computed_total() != document.total_amount:
        raise TradingError(f"{label}: lines, charges and tax add up to {document.computed_total()} but Cin7's "
                           f"Total is {document.total_amount}")  # fmt: skip
    return document


# ---------------------------------------------------------------- 846


def available_quantities(
    stock_rows: Iterable[Mapping[str, Any]], partner: PartnerConfig, location: str | None = None
) -> dict[str, Decimal]:
    """Cin7 `Available` summed per product ID over bins and batches (and locations, unless `location` names one),
    counting only the partner's `inventory.locations` when it lists some."""
    allowed = set(partner.inventory.locations) if partner.inventory.locations is not None else None
    totals: dict[str, Decimal] = {}
    for row in stock_rows:
        where = str(row.get("Location") or "")
        if (allowed is not None and where not in allowed) or (location is not None and where != location):
            continue
        product_id = str(row.get("ID"))
        totals[product_id] = totals.get(product_id, Decimal(0)) + to_decimal(row.get("Available"), "Available")
    return totals


def advertised_quantity(available: Decimal, partner: PartnerConfig) -> Decimal:
    """What the 846 offers: available less the safety buffer, in whole units, never below 0."""
    buffer = to_decimal(partner.inventory.safety_buffer.of(float(available)))
    return max((available - buffer).to_integral_value(rounding=ROUND_FLOOR), Decimal(0))


def _feed_products(products: Iterable[Mapping[str, Any]], partner: PartnerConfig) -> list[dict[str, Any]]:
    skus = set(partner.inventory.skus) if partner.inventory.skus is not None else None
    chosen = [dict(p) for p in products if _active(p) and (skus is None or str(p.get("SKU")) in skus)]
    return sorted(chosen, key=lambda p: str(p.get("SKU") or ""))


def _catalog_ids(product: Mapping[str, Any], partner: PartnerConfig) -> dict[str, str]:
    """The ids a partner knows an item by: its barcode, our SKU as vendor item number, and its own id where
    `item_map` has one."""
    ids: dict[str, str] = {}
    barcode = str(product.get("Barcode") or "").strip()
    qualifier = gtin_qualifier(barcode)
    if qualifier:
        ids[qualifier] = barcode
    sku = str(product.get("SKU") or "")
    if sku:
        ids["VN"] = _clip(sku, 48)
    for partner_id, mapped in partner.item_map.items():
        if mapped == sku:
            ids.setdefault(gtin_qualifier(partner_id) or "BP", _clip(partner_id, 48))
    return ids


def build_846(
    stock_rows: Iterable[Mapping[str, Any]],
    partner: PartnerConfig,
    products: Iterable[Mapping[str, Any]],
    *,
    location: str | None = None,
    now: datetime | None = None,
    reference: str | None = None,
) -> InventoryAdvice:
    """One 846 snapshot: every active product of the partner's assortment (0 when out of stock), QTY 33
    available for sale = Cin7 Available less the safety buffer; for one Cin7 `location` (named in N1*WH) or all."""
    now = now or datetime.now()
    totals = available_quantities(stock_rows, partner, location)
    items = []
    for number, product in enumerate(_feed_products(products, partner), start=1):
        ids = _catalog_ids(product, partner)
        if not ids:
            raise TradingError(f"product {product.get('ID')} has neither barcode nor SKU to name it in an 846")
        offered = advertised_quantity(totals.get(str(product.get("ID")), Decimal(0)), partner)
        items.append(InventoryItem(ids, str(number), _clip(product.get("Name"), 80), [Quantity("33", offered, "EA")]))
    parties = [Party("WH", _clip(location, 60))] if location else []
    return InventoryAdvice(
        reference=_clip(reference or f"INV{now:%Y%m%d%H%M%S}", 30), date=now.strftime("%Y%m%d"), purpose="00",
        report_type="SI", parties=parties, items=items,
    )  # fmt: skip


def build_846_feed(
    stock_rows: Iterable[Mapping[str, Any]],
    partner: PartnerConfig,
    products: Iterable[Mapping[str, Any]],
    now: datetime | None = None,
) -> list[InventoryAdvice]:
    """The partner's scheduled feed: one 846 in total, or one per location when `inventory.per_location`."""
    now = now or datetime.now()
    rows = list(stock_rows)
    products = list(products)
    if not partner.inventory.per_location:
        return [build_846(rows, partner, products, now=now)]
    locations = partner.inventory.locations or sorted({str(row.get("Location") or "") for row in rows} - {""})
    return [
        build_846(rows, partner, products, location=name, now=now, reference=f"INV{now:%Y%m%d%H%M%S}-{n}")
        for n, name in enumerate(locations, start=1)
    ]
