"""Helpers every set mapping shares: numbers, qualifier/value pairs, and the segments several sets carry
(N1 loops with N2/N3/N4/PER, SAC, TD5, ITD, PID)."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal, InvalidOperation

from gp_pipelines.edi.models import AllowanceCharge, CarrierRouting, Contact, Party, PaymentTerms
from gp_pipelines.edi.reader import Segment

Row = list[str]  # one segment to write: tag first, then elements


def decimal_or_none(value: str) -> Decimal | None:
    try:
        number = Decimal(value) if value else None
    except InvalidOperation:
        return None
    return number if number is None or number.is_finite() else None  # "NaN", "Infinity" are not amounts


def decimal_or_zero(value: str) -> Decimal:
    return decimal_or_none(value) or Decimal(0)


def int_or_none(value: str) -> int | None:
    return int(value) if value.isascii() and value.isdigit() else None


def format_decimal(value: Decimal | None) -> str:
    if value is None:
        return ""
    text = format(value, "f")
    return "0" if text in ("-0", "") else text


def from_implied(value: str, places: int = 2) -> Decimal | None:
    """An Nn element (implied decimals, e.g. N2 `12345` = 123.45) as a Decimal."""
    number = decimal_or_none(value)
    return None if number is None else number.scaleb(-places)


def to_implied(value: Decimal | None, places: int = 2) -> str:
    """A Decimal as an Nn element: `123.45` -> `12345` for N2 (rounded to the implied precision)."""
    if value is None:
        return ""
    return format_decimal(value.scaleb(places).to_integral_value())


def pairs(segment: Segment, start: int, limit: int = 30) -> dict[str, str]:
    """Qualifier/value pairs from `start` on (PO106/PO107, LIN02/LIN03 ...)."""
    ids: dict[str, str] = {}
    for position in range(start, min(len(segment.elements), start + 2 * limit), 2):
        if segment[position] and segment[position + 1]:
            ids[segment[position]] = segment[position + 1]
    return ids


def pair_values(ids: dict[str, str]) -> list[str]:
    return [text for pair in ids.items() for text in pair]


# -- N1 loop -----------------------------------------------------------------------------------------------
class PartyReader:
    """N1/N2/N3/N4/PER into `Party` objects appended to whatever list the caller points at."""

    def __init__(self) -> None:
        self.current: Party | None = None

    def read(self, segment: Segment, target: list[Party] | None) -> bool:
        """True when the segment belonged to a party (the caller skips it)."""
        tag = segment.tag
        party = self.current
        if tag == "N1" and target is not None:
            self.current = Party(segment[1], segment[2], segment[3], segment[4])
            target.append(self.current)
        elif party is None:
            return False
        elif tag == "N2":
            party.additional_names.extend(value for value in segment.elements[1:3] if value)
        elif tag == "N3":
            party.address_lines.extend(value for value in segment.elements[1:3] if value)
        elif tag == "N4":
            party.city, party.state, party.postal_code, party.country = segment[1], segment[2], segment[3], segment[4]
        elif tag == "PER":
            party.contacts.append(read_contact(segment))
        elif tag == "REF":
            return False  # a party's REF stays with the reader of the set (it may be a header REF)
        else:
            self.current = None
            return False
        return True


def read_contact(segment: Segment) -> Contact:
    return Contact(segment[1], segment[2], pairs(segment, 3, limit=3))


def contact_row(contact: Contact) -> Row:
    return ["PER", contact.function, contact.name, *pair_values(contact.numbers)]


def party_rows(parties: Iterable[Party]) -> list[Row]:
    rows: list[Row] = []
    for party in parties:
        rows.append(["N1", party.role, party.name, party.id_qualifier if party.id else "", party.id])
        names = party.additional_names
        rows.extend(["N2", *names[i : i + 2]] for i in range(0, len(names), 2))
        lines = party.address_lines
        rows.extend(["N3", *lines[i : i + 2]] for i in range(0, len(lines), 2))
        if party.city or party.state or party.postal_code or party.country:
            rows.append(["N4", party.city, party.state, party.postal_code, party.country])
        rows.extend(contact_row(contact) for contact in party.contacts)
    return rows


def description_row(description: str) -> list[Row]:
    return [["PID", "F", "", "", "", description]] if description else []


# -- SAC, TD5, ITD -----------------------------------------------------------------------------------------
def read_allowance_charge(segment: Segment) -> AllowanceCharge:
    return AllowanceCharge(
        indicator=segment[1], code=segment[2], amount=from_implied(segment[5]), percent_qualifier=segment[6],
        percent=decimal_or_none(segment[7]), rate=decimal_or_none(segment[8]), uom=segment[9],
        quantity=decimal_or_none(segment[10]), handling_code=segment[12], reference=segment[13],
        description=segment[15],
    )  # fmt: skip


def allowance_charge_row(item: AllowanceCharge) -> Row:
    return [
        "SAC", item.indicator, item.code, "", "", to_implied(item.amount), item.percent_qualifier,
        format_decimal(item.percent), format_decimal(item.rate), item.uom, format_decimal(item.quantity), "",
        item.handling_code, item.reference, "", item.description,
    ]  # fmt: skip


def read_carrier(segment: Segment) -> CarrierRouting:
    return CarrierRouting(
        carrier_code=segment[3], id_qualifier=segment[2], transport_method=segment[4], routing=segment[5],
        sequence=segment[1], service_level=segment[12],
    )  # fmt: skip


def carrier_row(carrier: CarrierRouting) -> Row:
    return [
        "TD5", carrier.sequence, carrier.id_qualifier if carrier.carrier_code else "", carrier.carrier_code,
        carrier.transport_method, carrier.routing, "", "", "", "", "", "", carrier.service_level,
    ]  # fmt: skip


def read_terms(segment: Segment) -> PaymentTerms:
    return PaymentTerms(
        type_code=segment[1], basis_date_code=segment[2], discount_percent=decimal_or_none(segment[3]),
        discount_due_date=segment[4], discount_days=int_or_none(segment[5]), net_due_date=segment[6],
        net_days=int_or_none(segment[7]), discount_amount=from_implied(segment[8]), description=segment[12],
    )  # fmt: skip


def terms_row(terms: PaymentTerms) -> Row:
    def number(value: int | None) -> str:
        return "" if value is None else str(value)

    return [
        "ITD", terms.type_code, terms.basis_date_code, format_decimal(terms.discount_percent),
        terms.discount_due_date, number(terms.discount_days), terms.net_due_date, number(terms.net_days),
        to_implied(terms.discount_amount), "", "", "", terms.description,
    ]  # fmt: skip
