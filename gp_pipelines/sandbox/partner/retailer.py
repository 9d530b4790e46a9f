"""A retailer's EDI intake on one machine: it sends purchase orders and checks what its vendor (we) sends back.

It owns a folder tree like a 3PL: `out/` holds what it sends us (850s, and the 997s acknowledging our groups),
`in/` is where we put 855s, 856s, 810s, 846s and the 997s for its 850s; what it has read moves to
`in/processed/`. It validates strictly, as a retailer's translator does: the envelope must come from our ISA id
to its own with the agreed usage indicator and versions, control numbers must match and not repeat, every set
must pass the platform's validator and the retailer's business rules (`intake.py`). Every functional group is
answered with a 997 built by the platform's own 997 builder; a rejected group's 997 names what is wrong.
"""

from __future__ import annotations

import io
import logging
import os
import random
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Self

from gp_pipelines.edi.ack import build_functional_ack
from gp_pipelines.edi.errors import EdiIssue, X12ReadError
from gp_pipelines.edi.mapping import document_from_segments
from gp_pipelines.edi.models import Document, FunctionalAck, OrderLine, Party, PurchaseOrder
from gp_pipelines.edi.reader import Delimiters
from gp_pipelines.edi.validator import (
    GroupEnd,
    GroupHeader,
    InterchangeEnd,
    InterchangeHeader,
    TransactionSet,
    iter_events,
)
from gp_pipelines.edi.writer import CountingControlNumbers, EnvelopeSettings, write_interchange
from gp_pipelines.sandbox.partner.intake import CHECKS, PartnerBook, check_digit_ok, normalized_id, po_line
from gp_pipelines.sandbox.threaded import StartStop

log = logging.getLogger(__name__)

CENT = Decimal("0.01")
# What a retailer receives from a vendor, by GS01: acknowledgments, ASNs, invoices, inventory, 997s.
RECEIVED_GROUPS = {"PR": "855", "SH": "856", "IN": "810", "IB": "846", "FA": "997"}
_TEMP_SUFFIXES = (".part", ".tmp", ".filepart", ".partial", ".swp")
_CITIES = (("Columbus", "OH", "43004"), ("Denver", "CO", "80202"), ("Austin", "TX", "73301"),
           ("Portland", "OR", "97201"), ("Raleigh", "NC", "27601"))  # fmt: skip


@dataclass(frozen=True)
class PartnerItem:
    """An item in the retailer's catalogue: the ids it orders by (qualifier -> value) and the cost it pays."""

    ids: dict[str, str]
    price: Decimal
    description: str = ""


@dataclass(frozen=True)
class Store:
    """A ship-to location of the retailer (850 N1*ST with its buyer-assigned code)."""

    code: str
    name: str
    address: str
    city: str
    state: str
    postcode: str
    country: str = "US"


@dataclass
class Receipt:
    """What the intake made of one file: the sets in it, whether everything was accepted, and why not."""

    file_name: str
    set_ids: tuple[str, ...]
    accepted: bool
    problems: list[str] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)
    acks: list[FunctionalAck] = field(default_factory=list)
    ack_file: str | None = None

    @property
    def set_id(self) -> str:
        return ",".join(dict.fromkeys(self.set_ids))


def items_from_products(
    products: Iterable[Mapping[str, Any]], price_tier: str, id_kind: str = "upc", limit: int | None = None
) -> list[PartnerItem]:
    """A retailer catalogue from Cin7 products: ordered by barcode (`upc`: UP/EN/UK by length), by the vendor's
    SKU (`sku`: VN), or both; priced at the Cin7 tier price. Deprecated products are left out."""
    if id_kind not in ("upc", "sku", "both"):
        raise ValueError(f"id_kind must be 'upc', 'sku' or 'both', not {id_kind!r}")
    items = []
    for product in products:
        if str(product.get("Status") or "Active") != "Active":
            continue
        ids: dict[str, str] = {}
        barcode = str(product.get("Barcode") or "")
        qualifier = {12: "UP", 13: "EN", 14: "UK"}.get(len(barcode)) if barcode.isdigit() else None
        if id_kind in ("upc", "both") and qualifier:
            ids[qualifier] = barcode
        if id_kind in ("sku", "both") and product.get("SKU"):
            ids["VN"] = str(product["SKU"])
        price = (product.get("PriceTiers") or {}).get(price_tier)
        if not ids or price is None:
            continue
        items.append(PartnerItem(ids, Decimal(str(price)).quantize(CENT), str(product.get("Name") or "")[:80]))
        if limit is not None and len(items) >= limit:
            break
    return items


class PartnerSandbox(StartStop):
    """The retailer. `partner_id` is its ISA id, `our_id` ours; `usage` the ISA15 both sides agreed."""

    def __init__(
        self,
        root: str | Path,
        partner_id: str,
        our_id: str,
        seed: int = 42,
        *,
        name: str = "Sandbox Retail",
        partner_qualifier: str = "ZZ",
        our_qualifier: str = "ZZ",
        partner_group_id: str | None = None,
        our_group_id: str | None = None,
        usage: str = "T",
        interchange_version: str = "00401",
        group_version: str = "004010",
        stores: list[Store] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.root = Path(root)
        self.partner_id, self.our_id = partner_id, our_id
        self.partner_qualifier, self.our_qualifier = partner_qualifier, our_qualifier
        self.partner_group_id = partner_group_id or partner_id
        self.our_group_id = our_group_id or our_id
        self.seed = seed
        self.name = name
        self.usage = usage
        self.interchange_version, self.group_version = interchange_version, group_version
        self.clock = clock or datetime.now
        self.stores = stores or self._default_stores()
        self.book = PartnerBook()
        self.control_numbers = CountingControlNumbers()
        self.envelope = EnvelopeSettings(
            sender_id=partner_id, receiver_id=our_id, sender_qualifier=partner_qualifier,
            receiver_qualifier=our_qualifier, application_sender=self.partner_group_id,
            application_receiver=self.our_group_id, interchange_version=interchange_version,
            group_version=group_version, usage=usage, delimiters=Delimiters("*", ">", "~", "^", "\n"),
        )  # fmt: skip
        self._receipts: list[Receipt] = []
        self._interchanges_seen: set[tuple[str, str]] = set()
        self._groups_seen: set[tuple[str, str]] = set()
        self._po_count = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        for folder in (self.out_dir, self.in_dir, self.processed_dir):
            folder.mkdir(parents=True, exist_ok=True)

    @property
    def out_dir(self) -> Path:
        return self.root / "out"

    @property
    def in_dir(self) -> Path:
        return self.root / "in"

    @property
    def processed_dir(self) -> Path:
        return self.in_dir / "processed"

    @property
    def orders(self) -> dict[str, PurchaseOrder]:
        return dict(self.book.orders)

    def partner_entry(self, key: str, instance: str, **trading: Any) -> dict[str, Any]:
        """The platform's `partners` entry for this retailer (ids, usage, folder transport), plus the trading
        settings given (customer, gs1_company_prefix, ...)."""
        return {
            "key": key, "name": self.name, "kind": "trading", "instance": instance,
            "interchange_qualifier": self.partner_qualifier, "interchange_id": self.partner_id,
            "group_id": self.partner_group_id, "our_qualifier": self.our_qualifier, "our_id": self.our_id,
            "our_group_id": self.our_group_id, "usage": self.usage,
            "transport": {"kind": "folder", "root": str(self.root), "outbound_dir": "in", "inbound_dir": "out"},
            **trading,
        }  # fmt: skip

    def received(self) -> list[Receipt]:
        with self._lock:
            return list(self._receipts)

    def _default_stores(self) -> list[Store]:
        rng = random.Random(f"{self.seed}:stores")
        stores = []
        for _ in range(2):
            code = f"{rng.randrange(1, 10_000):04d}"
            city, state, postcode = rng.choice(_CITIES)
            stores.append(Store(code, f"{self.name} #{code}", f"{rng.randrange(100, 9999)} Commerce Way", city,
                                state, postcode))  # fmt: skip
        return stores

    # ------------------------------------------------------------ sending

    def add_items(self, items: Iterable[PartnerItem]) -> None:
        """Items the retailer knows (an 846 may only name these)."""
        for item in items:
            self.book.catalog.update(normalized_id(value) for value in item.ids.values())

    def send_purchase_orders(
        self,
        n: int,
        items: list[PartnerItem],
        *,
        unknown_item: bool = False,
        wrong_price: bool = False,
        store: Store | None = None,
        lines: int | None = None,
    ) -> list[PurchaseOrder]:
        """Write `n` 850s (one interchange and file each) into `out/`, deterministic from the seed: 1-3 lines of
        the given items (or exactly `lines`); `unknown_item` adds a line for an item the vendor cannot know,
        `wrong_price` offers the first line at a price the vendor never agreed."""
        if not items:
            raise ValueError("send_purchase_orders needs at least one catalogue item")
        self.add_items(items)
        sent = []
        with self._lock:
            for _ in range(n):
                self._po_count += 1
                order = self._purchase_order(self._po_count, items, unknown_item, wrong_price, store, lines)
                now = self.clock()
                content = write_interchange([order], self.envelope, self.control_numbers, now)
                self.book.orders[order.po_number] = order
                self.book.sent_groups[str(self.control_numbers.last["GS"])] = order.po_number
                self._write_out(f"850_{order.po_number}.x12", content)
                sent.append(order)
        return sent

    def _purchase_order(
        self, number: int, items: list[PartnerItem], unknown_item: bool, wrong_price: bool, store: Store | None,
        lines: int | None,
    ) -> PurchaseOrder:  # fmt: skip
        rng = random.Random(f"{self.seed}:po:{number}")
        count = min(lines or rng.randint(1, 3), len(items))
        order_lines = []
        for index, item in enumerate(rng.sample(items, count), start=1):
            quantity = Decimal(rng.choice([1, 2, 3, 4, 6, 12]))
            order_lines.append(OrderLine(str(index), quantity, "EA", item.price, dict(item.ids), item.description))
        if wrong_price:
            first = order_lines[0]
            first.unit_price = (first.unit_price * Decimal("1.25") + 1).quantize(CENT, rounding=ROUND_HALF_UP)
        if unknown_item:
            body = "0" + "".join(str(rng.randrange(10)) for _ in range(10))
            upc = next(body + digit for digit in "0123456789" if check_digit_ok(body + digit))
            order_lines.append(OrderLine(str(len(order_lines) + 1), Decimal(2), "EA", Decimal("9.99"), {"UP": upc},
                                         "Item the vendor does not carry"))  # fmt: skip
        store = store or rng.choice(self.stores)
        today = self.clock()
        return PurchaseOrder(
            po_number=f"PO{self.seed}-{number:05d}", po_date=today.strftime("%Y%m%d"), purpose="00", order_type="SA",
            references={"IA": self.our_id[:30]}, dates={"010": (today + timedelta(days=3)).strftime("%Y%m%d")},
            parties=[
                Party("BY", self.name),
                Party("ST", store.name, "92", store.code, [store.address], store.city, store.state, store.postcode,
                      store.country),
            ],
            lines=order_lines,
        )  # fmt: skip

    def _write_out(self, name: str, content: str) -> Path:
        # Hidden temporary name, then rename: a vendor polling out/ never reads half a file.
        target = self.out_dir / name
        temporary = self.out_dir / f".{name}.{os.getpid()}.part"
        temporary.write_text(content, encoding="utf-8")
        os.replace(temporary, target)
        return target

    # ------------------------------------------------------------ receiving

    def process_once(self) -> list[Receipt]:
        """Read every file we left in `in/`, answer each group with a 997 in `out/`, move the file to
        `in/processed/`; returns what it made of each."""
        with self._lock:
            receipts = []
            for path in self._waiting_files():
                receipt = self._process(path.name, path.read_bytes())
                self._archive(path)
                receipts.append(receipt)
                self._receipts.append(receipt)
            return receipts

    def _waiting_files(self) -> list[Path]:
        files = [
            path for path in self.in_dir.iterdir()
            if path.is_file() and not path.name.startswith(".") and not path.name.endswith(_TEMP_SUFFIXES)
        ]  # fmt: skip
        return sorted(files, key=lambda path: (path.stat().st_mtime, path.name))

    def _archive(self, path: Path) -> None:
        target = self.processed_dir / path.name
        counter = 0
        while target.exists():
            counter += 1
            target = self.processed_dir / f"{path.name}.{counter}"
        os.replace(path, target)

    def _process(self, file_name: str, data: bytes) -> Receipt:
        try:
            events = list(iter_events(io.BytesIO(data)))
        except X12ReadError as exc:
            return Receipt(file_name, (), False, [f"not readable as X12: {exc}"])
        receipt = Receipt(file_name, (), True)
        set_ids: list[str] = []
        groups: list[tuple[GroupHeader, list[TransactionSet], GroupEnd]] = []
        transactions: list[TransactionSet] = []
        for event in events:
            if isinstance(event, EdiIssue):
                receipt.problems.append(str(event))
            elif isinstance(event, InterchangeHeader):
                groups = []
            elif isinstance(event, GroupHeader):
                transactions = []
            elif isinstance(event, TransactionSet):
                transactions.append(event)
                set_ids.append(event.set_id)
            elif isinstance(event, GroupEnd):
                groups.append((event.header, transactions, event))
            elif isinstance(event, InterchangeEnd):
                self._interchange(event, groups, receipt)
        receipt.set_ids = tuple(set_ids)
        if receipt.acks:
            content = write_interchange(receipt.acks, self.envelope, self.control_numbers, self.clock())
            receipt.ack_file = self._write_out(f"997_{self.control_numbers.last['ISA']:09d}.x12", content).name
        receipt.accepted = not receipt.problems
        return receipt

    def _envelope_problems(self, header: InterchangeHeader, end: InterchangeEnd) -> list[str]:
        problems = [str(issue) for issue in end.issues if issue.is_error]
        expected = [
            ("ISA05/06 sender", f"{header.sender_qualifier}/{header.sender_id}",
             f"{self.our_qualifier}/{self.our_id}"),
            ("ISA07/08 receiver", f"{header.receiver_qualifier}/{header.receiver_id}",
             f"{self.partner_qualifier}/{self.partner_id}"),
            ("ISA15 usage indicator", header.usage, self.usage),
            ("ISA12 version", header.version, self.interchange_version),
        ]  # fmt: skip
        problems += [f"{what} is {found!r}, expected {wanted!r}" for what, found, wanted in expected if found != wanted]
        key = (header.sender_id, header.control_number)
        if key in self._interchanges_seen:
            problems.append(f"interchange control number {header.control_number} from {header.sender_id} was "
                            "already received (duplicate)")  # fmt: skip
        self._interchanges_seen.add(key)
        return problems

    def _group_problems(self, header: GroupHeader) -> list[str]:
        expected = [
            ("GS02 application sender", header.sender, self.our_group_id),
            ("GS03 application receiver", header.receiver, self.partner_group_id),
            ("GS08 version", header.version, self.group_version),
        ]
        problems = [f"{what} is {found!r}, expected {wanted!r}" for what, found, wanted in expected if found != wanted]
        key = (header.sender, header.control_number.lstrip("0"))
        if key in self._groups_seen:
            problems.append(f"group control number {header.control_number} from {header.sender} was already "
                            "received (duplicate)")  # fmt: skip
        self._groups_seen.add(key)
        if header.functional_id not in RECEIVED_GROUPS:
            problems.append(f"functional group {header.functional_id!r} is not one a retailer receives from a vendor")
        return problems

    def _interchange(
        self, end: InterchangeEnd, groups: list[tuple[GroupHeader, list[TransactionSet], GroupEnd]], receipt: Receipt
    ) -> None:
        envelope = self._envelope_problems(end.header, end)
        receipt.problems += envelope
        for header, transactions, group_end in groups:
            own = self._group_problems(header)
            receipt.problems += own + [str(issue) for issue in group_end.issues if issue.is_error]
            for message in envelope + own:
                # Reject the whole group (AK9 R, AK905 1) for what is wrong around it.
                group_end.issues.append(EdiIssue("GS_INVALID_VALUE", message, group_control=header.control_number))
            if header.functional_id == "FA":
                self._their_acks(transactions, receipt)
                continue
            documents: dict[int, Document] = {}
            for transaction in transactions:
                document = self._read(transaction)
                check = CHECKS.get(transaction.set_id)
                if document is not None and check is not None and not any(i.is_error for i in transaction.issues):
                    transaction.issues += check(transaction, self.book)
                receipt.problems += [str(issue) for issue in transaction.issues if issue.is_error]
                if document is not None:
                    documents[id(transaction)] = document
                    receipt.documents.append(document)
            ack = build_functional_ack(header, transactions, group_end)
            receipt.acks.append(ack)
            if ack.status != "R":
                for transaction, set_ack in zip(transactions, ack.sets, strict=True):
                    if set_ack.status == "A" and id(transaction) in documents:
                        self._remember(documents[id(transaction)])

    @staticmethod
    def _read(transaction: TransactionSet) -> Document | None:
        try:
            return document_from_segments(transaction.set_id, transaction.segments)
        except (ValueError, IndexError):
            return None  # a set too broken to read is reported by its validation issues

    def _their_acks(self, transactions: list[TransactionSet], receipt: Receipt) -> None:
        """The vendor's 997s for our 850 groups: they must acknowledge a group we sent (never answered)."""
        for transaction in transactions:
            receipt.problems += [str(issue) for issue in transaction.issues if issue.is_error]
            ack = self._read(transaction)
            if not isinstance(ack, FunctionalAck):
                continue
            receipt.documents.append(ack)
            group = ack.group_control_number.lstrip("0")
            if ack.functional_id != "PO" or group not in self.book.sent_groups:
                receipt.problems.append(f"997 acknowledges {ack.functional_id} group {ack.group_control_number}, "
                                        "which we never sent")  # fmt: skip
            else:
                self.book.group_acks[group] = ack

    def _remember(self, document: Document) -> None:
        """What an accepted document tells the retailer for the documents that follow."""
        book = self.book
        set_id = document.SET_ID
        if set_id == "855":
            book.acknowledged[document.po_number] = document.ack_type
        elif set_id == "856":
            for order in document.orders:
                po = book.orders.get(order.po_number)
                for pack in order.packs:
                    book.ssccs.add(pack.sscc)
                    for item in pack.items:
                        line = self._line(po, item.line_number, item.product_ids)
                        if line is not None:
                            book.shipped[(order.po_number, line.line_number)] += item.quantity_shipped
        elif set_id == "810":
            book.invoices.add(document.invoice_number)
            po = book.orders.get(document.po_number)
            for invoice_line in document.lines:
                line = self._line(po, invoice_line.line_number, invoice_line.product_ids)
                if line is not None:
                    book.invoiced[(document.po_number, line.line_number)] += invoice_line.quantity

    @staticmethod
    def _line(po: PurchaseOrder | None, line_number: str, ids: dict[str, str]) -> OrderLine | None:
        return po_line(po, line_number, ids) if po is not None else None

    # ------------------------------------------------------------ background polling

    def start(self, interval_seconds: float = 0.5) -> Self:
        """Poll `in/` from a daemon thread until `stop()`."""
        if self._thread is not None:
            return self
        self._stop.clear()

        def run() -> None:
            while not self._stop.wait(interval_seconds):
                try:
                    self.process_once()
                except Exception:  # a sandbox bug must not end the polling silently
                    log.exception("partner sandbox %s: processing in/ failed", self.partner_id)

        self._thread = threading.Thread(target=run, name=f"partner-{self.partner_id}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=10)
            self._thread = None

