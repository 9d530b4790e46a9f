"""The business rules a retailer's EDI intake applies once a set has passed X12 validation: it must refer to a
purchase order the retailer sent, name its lines and items, and add up. Each failure is an `EdiIssue` located at
the segment and element at fault, so the 997 that rejects the set names the problem (AK3/AK4).

Written independently of the platform's builders (its own GS1 check digit, its own sums): the sandbox is the
oracle the outbound documents are tested against, so it must not share their mistakes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from gp_pipelines.edi.errors import EdiIssue
from gp_pipelines.edi.mapping.common import pairs
from gp_pipelines.edi.models import FunctionalAck, OrderLine, PurchaseOrder
from gp_pipelines.edi.reader import Segment
from gp_pipelines.edi.validator import TransactionSet

CENT = Decimal("0.01")
ACCEPTABLE_ACK_CODES = frozenset(["IA", "IB", "IR", "IC", "IQ", "IP", "ID", "AC"])


def normalized_id(value: str) -> str:
    """Item ids compared the way retail systems compare them: GTINs as 14 digits, anything else upper-case."""
    text = value.strip()
    if text.isdigit() and len(text) in (8, 12, 13, 14):
        return text.zfill(14)
    return text.upper()


def check_digit_ok(code: str) -> bool:
    """GS1 mod 10 over an all-digit code whose last digit is the check digit."""
    if not (code.isascii() and code.isdigit()) or len(code) < 2:
        return False
    body = code[:-1]
    weighted = sum(int(digit) * (3 if index % 2 == 0 else 1) for index, digit in enumerate(reversed(body)))
    return (10 - weighted % 10) % 10 == int(code[-1])


def _decimal(value: str) -> Decimal | None:
    try:
        number = Decimal(value) if value else None
    except InvalidOperation:
        return None
    return number if number is None or number.is_finite() else None


@dataclass
class PartnerBook:
    """What the retailer knows: the POs it sent, its catalogue, and what it was already told."""

    orders: dict[str, PurchaseOrder] = field(default_factory=dict)
    catalog: set[str] = field(default_factory=set)  # normalized item ids
    shipped: Counter[tuple[str, str]] = field(default_factory=Counter)  # (PO, line) -> units on ASNs accepted
    invoiced: Counter[tuple[str, str]] = field(default_factory=Counter)
    ssccs: set[str] = field(default_factory=set)
    invoices: set[str] = field(default_factory=set)
    acknowledged: dict[str, str] = field(default_factory=dict)  # PO -> BAK02 of the last 855 accepted
    sent_groups: dict[str, str] = field(default_factory=dict)  # our GS06 -> PO number (the 850 groups)
    group_acks: dict[str, FunctionalAck] = field(default_factory=dict)  # our GS06 -> the vendor's 997


class _Checker:
    """Collects issues for one transaction set, located by segment position (ST = 1) and element."""

    def __init__(self, transaction: TransactionSet) -> None:
        self.transaction = transaction
        self.segments = transaction.segments
        self.issues: list[EdiIssue] = []

    def issue(self, code: str, message: str, position: int, element: int | None = None) -> None:
        segment = self.segments[position - 1] if 0 < position <= len(self.segments) else None
        self.issues.append(EdiIssue(
            code, message, set_id=self.transaction.set_id, set_control=self.transaction.control_number,
            segment_id=segment.tag if segment is not None else None, segment_position=position,
            element_position=element,
        ))  # fmt: skip

    def first(self, tag: str) -> tuple[int, Segment] | None:
        return next(((i, s) for i, s in enumerate(self.segments, start=1) if s.tag == tag), None)


def po_line(order: PurchaseOrder, line_number: str, ids: dict[str, str]) -> OrderLine | None:
    """The PO line an item refers to: by line number when it names one, else by any item id in common."""
    wanted = {normalized_id(value) for value in ids.values()}
    for line in order.lines:
        if line_number and line.line_number == line_number:
            return line
    for line in order.lines:
        if wanted & {normalized_id(value) for value in line.product_ids.values()}:
            return line
    return None


def _ids_agree(line: OrderLine, ids: dict[str, str]) -> bool:
    ours = {normalized_id(value) for value in line.product_ids.values()}
    return not ids or bool(ours & {normalized_id(value) for value in ids.values()})


def _known_order(check: _Checker, book: PartnerBook, tag: str, element: int, label: str) -> PurchaseOrder | None:
    found = check.first(tag)
    if found is None:
        return None
    position, segment = found
    number = segment[element]
    if not number:
        check.issue("ELEMENT_REQUIRED_MISSING", f"{label}: no PO number in {tag}{element:02d}", position, element)
        return None
    order = book.orders.get(number)
    if order is None:
        check.issue("ELEMENT_INVALID_CODE", f"{label}: PO {number} is not a purchase order we sent", position, element)
    return order


# ---------------------------------------------------------------- 855


def check_855(transaction: TransactionSet, book: PartnerBook) -> list[EdiIssue]:
    check = _Checker(transaction)
    order = _known_order(check, book, "BAK", 3, "855")
    if order is None:
        return check.issues
    bak_position, bak = check.first("BAK")
    if bak[2] not in ("RD", "RJ") and not bak[8]:
        check.issue("ELEMENT_REQUIRED_MISSING", "855 accepts the PO but gives no seller order number (BAK08)",
                    bak_position, 8)  # fmt: skip
    lines: list[tuple[int, Segment, list[tuple[int, Segment]]]] = []
    for position, segment in enumerate(check.segments, start=1):
        if segment.tag == "PO1":
            lines.append((position, segment, []))
        elif segment.tag == "ACK" and lines:
            lines[-1][2].append((position, segment))
    seen: set[str] = set()
    for position, po1, acks in lines:
        line = next((line for line in order.lines if line.line_number == po1[1]), None)
        if line is None:
            check.issue("ELEMENT_INVALID_CODE", f"855 acknowledges line {po1[1]!r}, which PO {order.po_number} "
                        "does not have", position, 1)  # fmt: skip
            continue
        seen.add(line.line_number)
        if not _ids_agree(line, pairs(po1, 6)):
            check.issue("ELEMENT_INVALID_CODE", f"855 line {line.line_number}: item ids do not match the PO's",
                        position, 7)  # fmt: skip
        if not acks:
            check.issue("SEGMENT_REQUIRED_MISSING", f"855 line {line.line_number} has no ACK status", position)
            continue
        total = Decimal(0)
        for ack_position, ack in acks:
            if ack[1] not in ACCEPTABLE_ACK_CODES:
                check.issue("ELEMENT_INVALID_CODE", f"855 line {line.line_number}: status {ack[1]!r} is not one "
                            "we process", ack_position, 1)  # fmt: skip
            amount = _decimal(ack[2])
            if amount is None:
                check.issue("ELEMENT_REQUIRED_MISSING", f"855 line {line.line_number}: ACK without a quantity",
                            ack_position, 2)  # fmt: skip
            else:
                total += amount
        if total != line.quantity:
            check.issue("TOTAL_MISMATCH", f"855 line {line.line_number}: ACK quantities add up to {total}, the PO "
                        f"ordered {line.quantity}", acks[-1][0], 2)  # fmt: skip
    missing = [line.line_number for line in order.lines if line.line_number not in seen]
    if missing:
        check.issue("SEGMENT_REQUIRED_MISSING", f"855 does not acknowledge PO line(s) {', '.join(missing)}",
                    bak_position)  # fmt: skip
    return check.issues


# ---------------------------------------------------------------- 856


@dataclass
class _Level:
    position: int
    id: str
    parent: str
    code: str
    segments: list[tuple[int, Segment]] = field(default_factory=list)

    def find(self, tag: str, qualifier: str | None = None) -> tuple[int, Segment] | None:
        return next(((p, s) for p, s in self.segments if s.tag == tag and (qualifier is None or s[1] == qualifier)),
                    None)  # fmt: skip


_PARENT_LEVEL = {"O": "S", "P": "O", "I": "P"}


def check_856(transaction: TransactionSet, book: PartnerBook) -> list[EdiIssue]:
    check = _Checker(transaction)
    bsn = check.first("BSN")
    if bsn is not None and bsn[1][5] != "0001":
        check.issue("ELEMENT_INVALID_CODE", f"856 BSN05 is {bsn[1][5]!r}; we take pick and pack ASNs (0001: "
                    "shipment, order, pack, item)", bsn[0], 5)  # fmt: skip
    levels: list[_Level] = []
    for position, segment in enumerate(check.segments, start=1):
        if segment.tag == "HL":
            levels.append(_Level(position, segment[1], segment[2], segment[3]))
        elif levels:
            levels[-1].segments.append((position, segment))
    by_id = {level.id: level for level in levels}
    order: PurchaseOrder | None = None
    shipped_here: Counter[tuple[str, str]] = Counter()
    ssccs_here: set[str] = set()
    for level in levels:
        expected_parent = _PARENT_LEVEL.get(level.code)
        if level.code not in ("S", "O", "P", "I"):
            check.issue("HL_LEVEL_UNEXPECTED", f"856 HL {level.id} has level {level.code!r}; we take S, O, P and I "
                        "only", level.position, 3)  # fmt: skip
        elif expected_parent and (by_id.get(level.parent) is None or by_id[level.parent].code != expected_parent):
            check.issue("HL_LEVEL_UNEXPECTED", f"856 HL {level.id} ({level.code}) must sit under an "
                        f"{expected_parent} level", level.position, 2)  # fmt: skip
        if level.code == "S":
            _check_shipment(check, level)
        elif level.code == "O":
            prf = level.find("PRF")
            if prf is None:
                check.issue("SEGMENT_REQUIRED_MISSING", f"856 order level HL {level.id} has no PRF (PO number)",
                            level.position)  # fmt: skip
                order = None
                continue
            order = book.orders.get(prf[1][1])
            if order is None:
                check.issue("ELEMENT_INVALID_CODE", f"856: PO {prf[1][1]!r} is not a purchase order we sent",
                            prf[0], 1)  # fmt: skip
        elif level.code == "P":
            man = level.find("MAN", "GM")
            if man is None:
                check.issue("SEGMENT_REQUIRED_MISSING", f"856 pack HL {level.id} has no SSCC-18 label (MAN*GM)",
                            level.position)  # fmt: skip
                continue
            code = man[1][2]
            if len(code) != 18 or not check_digit_ok(code):
                check.issue("ELEMENT_INVALID_CODE", f"856 pack HL {level.id}: {code!r} is not an SSCC-18 with a "
                            "valid GS1 check digit", man[0], 2)  # fmt: skip
            elif code in ssccs_here or code in book.ssccs:
                check.issue("ELEMENT_INVALID_CODE", f"856 pack HL {level.id}: SSCC {code} was already used",
                            man[0], 2)  # fmt: skip
            ssccs_here.add(code)
        elif level.code == "I" and order is not None:
            _check_item(check, level, order, book, shipped_here)
    return check.issues


def _check_shipment(check: _Checker, level: _Level) -> None:
    td5 = level.find("TD5")
    if td5 is None or not (2 <= len(td5[1][3]) <= 4 and td5[1][3].isalpha() and td5[1][2] == "2"):
        check.issue("SEGMENT_REQUIRED_MISSING", "856 shipment level has no carrier SCAC (TD5*...*2*SCAC)",
                    td5[0] if td5 else level.position)  # fmt: skip
    if level.find("REF", "CN") is None and level.find("REF", "BM") is None:
        check.issue("SEGMENT_REQUIRED_MISSING", "856 shipment level has neither tracking (REF*CN) nor bill of "
                    "lading (REF*BM)", level.position)  # fmt: skip
    if level.find("DTM", "011") is None:
        check.issue("SEGMENT_REQUIRED_MISSING", "856 shipment level has no ship date (DTM*011)", level.position)


def _check_item(
    check: _Checker, level: _Level, order: PurchaseOrder, book: PartnerBook, shipped_here: Counter[tuple[str, str]]
) -> None:
    lin, sn1 = level.find("LIN"), level.find("SN1")
    if lin is None or sn1 is None:
        check.issue("SEGMENT_REQUIRED_MISSING", f"856 item HL {level.id} needs LIN and SN1", level.position)
        return
    ids = pairs(lin[1], 2)
    line = po_line(order, lin[1][1], ids)
    if line is None:
        check.issue("ELEMENT_INVALID_CODE", f"856 item HL {level.id} is not on PO {order.po_number}", lin[0], 3)
        return
    if not _ids_agree(line, ids):
        check.issue("ELEMENT_INVALID_CODE", f"856 item HL {level.id}: ids do not match PO line {line.line_number}",
                    lin[0], 3)  # fmt: skip
    units = _decimal(sn1[1][2])
    if units is None or units <= 0:
        check.issue("ELEMENT_INVALID_CODE", f"856 item HL {level.id}: shipped quantity {sn1[1][2]!r}", sn1[0], 2)
        return
    key = (order.po_number, line.line_number)
    shipped_here[key] += units
    total = book.shipped[key] + shipped_here[key]
    if total > line.quantity:
        check.issue("TOTAL_MISMATCH", f"856 ships {total} of PO {order.po_number} line {line.line_number} "
                    f"({book.shipped[key]} on earlier ASNs) but {line.quantity} were ordered", sn1[0], 2)  # fmt: skip


# ---------------------------------------------------------------- 810


def check_810(transaction: TransactionSet, book: PartnerBook) -> list[EdiIssue]:
    check = _Checker(transaction)
    order = _known_order(check, book, "BIG", 4, "810")
    big = check.first("BIG")
    if big is not None and big[1][2] in book.invoices:
        check.issue("ELEMENT_INVALID_CODE", f"810 invoice number {big[1][2]} was already received", big[0], 2)
    total = Decimal(0)
    invoiced_here: Counter[tuple[str, str]] = Counter()
    for position, segment in enumerate(check.segments, start=1):
        if segment.tag == "IT1":
            units, price = _decimal(segment[2]), _decimal(segment[4])
            if units is None or price is None:
                continue  # the X12 validation has reported it
            total += units * price
            if order is not None:
                _check_invoice_line(check, position, segment, order, book, invoiced_here)
        elif segment.tag == "SAC" and segment[1] in ("A", "C"):
            amount = _decimal(segment[5])
            if amount is not None:
                total += amount.scaleb(-2) if segment[1] == "C" else -amount.scaleb(-2)
    tds = check.first("TDS")
    declared = _decimal(tds[1][1]) if tds else None
    computed = total.quantize(CENT, rounding=ROUND_HALF_UP)
    if tds is not None and declared is not None and declared.scaleb(-2) != computed:
        check.issue("TOTAL_MISMATCH", f"810 TDS01 says {declared.scaleb(-2):.2f} but its lines, allowances and "
                    f"charges add up to {computed:.2f}", tds[0], 1)  # fmt: skip
    return check.issues


def _check_invoice_line(
    check: _Checker, position: int, it1: Segment, order: PurchaseOrder, book: PartnerBook,
    invoiced_here: Counter[tuple[str, str]],
) -> None:  # fmt: skip
    line = po_line(order, it1[1], pairs(it1, 6))
    if line is None:
        check.issue("ELEMENT_INVALID_CODE", f"810 line {it1[1]!r} is not on PO {order.po_number}", position, 1)
        return
    price = _decimal(it1[4])
    if line.unit_price is not None and price is not None and abs(price - line.unit_price) >= Decimal("0.005"):
        check.issue("ELEMENT_INVALID_CODE", f"810 line {line.line_number} bills {price} a unit but PO "
                    f"{order.po_number} agreed {line.unit_price}", position, 4)  # fmt: skip
    key = (order.po_number, line.line_number)
    invoiced_here[key] += _decimal(it1[2]) or Decimal(0)
    if book.invoiced[key] + invoiced_here[key] > line.quantity:
        check.issue("TOTAL_MISMATCH", f"810 bills {book.invoiced[key] + invoiced_here[key]} of PO line "
                    f"{line.line_number} but {line.quantity} were ordered", position, 2)  # fmt: skip


# ---------------------------------------------------------------- 846


def check_846(transaction: TransactionSet, book: PartnerBook) -> list[EdiIssue]:
    check = _Checker(transaction)
    current: tuple[int, Segment] | None = None
    has_quantity = False

    def close() -> None:
        if current is not None and not has_quantity:
            check.issue("SEGMENT_REQUIRED_MISSING", f"846 item {current[1][3]!r} has no QTY*33 (available)",
                        current[0])  # fmt: skip

    for position, segment in enumerate(check.segments, start=1):
        if segment.tag == "LIN":
            close()
            current, has_quantity = (position, segment), False
            ids = pairs(segment, 2)
            if not {normalized_id(value) for value in ids.values()} & book.catalog:
                check.issue("ELEMENT_INVALID_CODE", f"846 item {segment[3]!r} is not in our catalogue", position, 3)
        elif segment.tag == "QTY" and current is not None and segment[1] == "33":
            has_quantity = True
            amount = _decimal(segment[2])
            if amount is None or amount < 0:
                check.issue("ELEMENT_INVALID_CODE", f"846 available quantity {segment[2]!r} is not a quantity",
                            position, 2)  # fmt: skip
    close()
    return check.issues


CHECKS = {"855": check_855, "856": check_856, "810": check_810, "846": check_846}
