"""The 3PL warehouse stand-in: reads 940s from its inbox, answers each group with a 997, ships with 945s.

It works on a folder tree (`root/in` for what the depositor sends, `root/out` for what it sends back), the same
tree `SftpSandboxServer` serves or a watched folder, through a `FolderTransport` seen from the warehouse's side
(so its own writes are atomic too). State (orders, plans, what was sent) lives in memory.

One pass (`process_once`):
1. every finished file in `in/` is read with the project's validator; each functional group other than a 997
   gets a 997 (accepting or rejecting, built by `edi/ack.py`) in `out/`; each accepted 940 becomes an order
   unless its W0502 is already known (a 940 seen twice is processed once; W0501 `C` cancels an order that has
   not shipped). 997s from the depositor are recorded; one rejecting a 945 that was malformed on purpose makes
   the warehouse send the corrected 945. The file then moves to `in/processed/` (`in/rejected/` when it is not
   X12 at all).
2. every planned 945 that is due (`ship_delay_seconds` after receipt, plus `partial_gap_seconds` for the
   balance of a partial order) is written to `out/`.

How each order ships (full, partial in two 945s, short with the rest cancelled), whether its first 945 is
malformed or delivered twice, its carrier and tracking numbers all come from `order_random(seed, W0502)`, so a
seed replays the same story. Time is `clock() + advance(...)`; `process_once(now=...)` overrides it for a pass.
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Self

from gp_pipelines.connectors.transport import FolderTransport
from gp_pipelines.edi.ack import build_functional_ack, write_acks
from gp_pipelines.edi.errors import X12ReadError
from gp_pipelines.edi.mapping import document_from_segments
from gp_pipelines.edi.models import FunctionalAck, WarehouseShippingOrder
from gp_pipelines.edi.validator import GroupEnd, GroupHeader, InterchangeHeader, TransactionSet, iter_events
from gp_pipelines.edi.writer import CountingControlNumbers, EnvelopeSettings, write_interchange
from gp_pipelines.sandbox.threepl.documents import (
    MALFORMED_KINDS,
    PlannedShipment,
    ShippedLine,
    choose_fulfilment,
    malform,
    order_random,
    plan_shipments,
    safe_file_part,
    shipping_advice,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ThreePLOptions:
    """Behaviour of the stand-in; rates are probabilities per order, drawn from `seed` and the order number."""

    seed: int = 0
    ship_delay_seconds: float = 30.0
    partial_gap_seconds: float = 60.0
    partial_rate: float = 0.0
    short_rate: float = 0.0
    malformed_rate: float = 0.0
    duplicate_rate: float = 0.0
    resend_rejected: bool = True
    carriers: tuple[str, ...] = ("UPSN", "FDEG", "USPS")
    warehouse_name: str = "GP SANDBOX 3PL"

    def __post_init__(self) -> None:
        rates = (self.partial_rate, self.short_rate, self.malformed_rate, self.duplicate_rate)
        if any(not 0 <= rate <= 1 for rate in rates) or self.partial_rate + self.short_rate > 1:
            raise ValueError("rates are probabilities (0..1), and partial_rate + short_rate must not exceed 1")
        if not self.carriers:
            raise ValueError("name at least one carrier SCAC")


@dataclass
class ShipmentRecord:
    """A 945 the warehouse sent (or will send, while `sent_at` is None)."""

    order_number: str
    sequence: int
    due_at: float
    carrier_scac: str
    tracking_number: str
    lines: list[ShippedLine]
    final: bool
    malformed: str | None = None  # the MALFORMED_KINDS way its first delivery was broken
    duplicated: bool = False  # delivered twice (identical bytes, two file names)
    sent_at: float | None = None
    file_names: list[str] = field(default_factory=list)
    interchange_control: str = ""
    group_control: str = ""
    resent: bool = False  # a corrected copy went out after the depositor's 997 rejected the malformed one

    @property
    def units_shipped(self) -> Decimal:
        return sum((line.shipped for line in self.lines), Decimal(0))


@dataclass
class WarehouseOrder:
    """A 940 the warehouse accepted, with its shipment plan."""

    order_number: str
    po_number: str
    received_at: float
    source_file: str
    fulfilment: str
    document: WarehouseShippingOrder
    shipments: list[ShipmentRecord] = field(default_factory=list)
    cancelled: bool = False


@dataclass(frozen=True)
class AckRecord:
    """A 997 the warehouse sent for one inbound group."""

    file_name: str
    source_file: str
    functional_id: str
    group_control: str
    status: str


@dataclass
class PassSummary:
    """What one `process_once` did."""

    files_read: int = 0
    acks_sent: int = 0
    orders_received: int = 0
    shipments_sent: int = 0
    files_rejected: int = 0


class ThreePLWarehouse:
    """See the module docstring. `warehouse_id` is this warehouse's ISA id, `depositor_id` ours (the platform)."""

    def __init__(
        self,
        root: str | Path,
        *,
        warehouse_id: str,
        depositor_id: str,
        warehouse_qualifier: str = "ZZ",
        depositor_qualifier: str = "ZZ",
        usage: str = "P",
        options: ThreePLOptions | None = None,
        clock: Callable[[], float] = time.time,
        inbound_dir: str = "in",
        outbound_dir: str = "out",
        control_start: int | None = None,
    ) -> None:
        self.root = Path(root)
        self.options = options or ThreePLOptions()
        self.settings = EnvelopeSettings(
            sender_id=warehouse_id,
            receiver_id=depositor_id,
            sender_qualifier=warehouse_qualifier,
            receiver_qualifier=depositor_qualifier,
            usage=usage,
        )
        self._clock = clock
        self._offset = 0.0
        # From the warehouse's side its inbox is where the depositor puts files, and it puts files into `out/`.
        for folder in (inbound_dir, outbound_dir):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        self.transport = FolderTransport(self.root, outbound_dir=outbound_dir, inbound_dir=inbound_dir)
        # A restarted stand-in must not reuse ISA13s the depositor already saw (it would take them for duplicates),
        # so by default numbering starts from the clock.
        if control_start is None:
            control_start = 1 + int(self.now()) % 900_000_000
        self._control = CountingControlNumbers(control_start)
        self._orders: dict[str, WarehouseOrder] = {}
        self._acks_sent: list[AckRecord] = []
        self._acks_received: list[FunctionalAck] = []
        self._rejected_files: list[tuple[str, str]] = []
        self._seen_files: set[str] = set()  # content hashes: a re-delivered file is archived, not re-read
        self._force_malformed: list[str] = []
        self._force_duplicate = 0
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.last_error: str | None = None

    # -- clock ---------------------------------------------------------------------------------------------
    def now(self) -> float:
        return self._clock() + self._offset

    def advance(self, seconds: float) -> float:
        """Move the warehouse's clock forward (tests and demos skip the shipping delay this way)."""
        with self._lock:
            self._offset += seconds
            return self.now()

    # -- controls ------------------------------------------------------------------------------------------
    def force_next_malformed(self, kind: str | None = None) -> None:
        """Break the next 945 sent (SE01 count by default; see `MALFORMED_KINDS`)."""
        kind = kind or MALFORMED_KINDS[0]
        if kind not in MALFORMED_KINDS:
            raise ValueError(f"unknown malformation {kind!r}; choose from {', '.join(MALFORMED_KINDS)}")
        with self._lock:
            self._force_malformed.append(kind)

    def force_next_duplicate(self) -> None:
        """Deliver the next 945 sent twice."""
        with self._lock:
            self._force_duplicate += 1

    # -- what happened -------------------------------------------------------------------------------------
    def orders(self) -> list[WarehouseOrder]:
        with self._lock:
            return list(self._orders.values())

    def shipments(self, include_planned: bool = False) -> list[ShipmentRecord]:
        """The 945s sent, in the order they were sent (planned ones last, by due time, when asked for)."""
        with self._lock:
            records = [record for order in self._orders.values() for record in order.shipments]
        sent = sorted((r for r in records if r.sent_at is not None), key=lambda r: (r.sent_at, r.interchange_control))
        planned = sorted((r for r in records if r.sent_at is None), key=lambda r: (r.due_at, r.order_number))
        return sent + (planned if include_planned else [])

    def acknowledgments(self) -> list[AckRecord]:
        with self._lock:
            return list(self._acks_sent)

    def received_acks(self) -> list[FunctionalAck]:
        with self._lock:
            return list(self._acks_received)

    def rejected_files(self) -> list[tuple[str, str]]:
        """(file name, reason) of inbound files that could not be read as X12."""
        with self._lock:
            return list(self._rejected_files)

    # -- one pass ------------------------------------------------------------------------------------------
    def process_once(self, now: float | None = None) -> PassSummary:
        """Read the inbox, answer it, and send every 945 due at `now` (default: the warehouse clock)."""
        with self._lock:
            current = self.now() if now is None else now
            summary = PassSummary()
            for remote in self.transport.list_inbound():
                self._read_inbound(remote.name, current, summary)
            self._send_due(current, summary)
            return summary

    def _read_inbound(self, name: str, now: float, summary: PassSummary) -> None:
        data = self.transport.fetch(name)
        summary.files_read += 1
        digest = hashlib.sha256(data).hexdigest()
        if digest in self._seen_files:
            self.transport.archive_inbound(name)
            return
        try:
            groups, acks_received = _read_groups(data)
        except X12ReadError as exc:
            self._rejected_files.append((name, exc.message))
            summary.files_rejected += 1
            self.transport.archive_inbound(name, "rejected")
            return
        self._acks_received.extend(acks_received)
        for ack in acks_received:
            self._on_depositor_ack(ack, now, summary)
        answers = []
        for header, group, transactions, end in groups:
            ack = build_functional_ack(group, transactions, end)
            answers.append((header, ack))
            if ack.status == "R":
                continue
            for transaction, set_ack in zip(transactions, ack.sets, strict=True):
                if transaction.set_id == "940" and set_ack.status in ("A", "E"):
                    document = document_from_segments("940", transaction.segments)
                    if isinstance(document, WarehouseShippingOrder):
                        self._receive_order(document, name, now, summary)
        if answers:
            text = write_acks(answers, self._control, now=_datetime(now))
            ack_name = f"997_{self._control.last['ISA']:09d}.x12"
            self.transport.put(ack_name, text.encode("utf-8"))
            for _, ack in answers:
                self._acks_sent.append(
                    AckRecord(ack_name, name, ack.functional_id, ack.group_control_number, ack.status)
                )
            summary.acks_sent += len(answers)
        self.transport.archive_inbound(name)
        self._seen_files.add(digest)

    def _receive_order(self, document: WarehouseShippingOrder, source: str, now: float, summary: PassSummary) -> None:
        known = self._orders.get(document.order_number)
        if document.status == "C":
            if known is not None and not any(record.sent_at for record in known.shipments):
                known.cancelled = True
                known.shipments.clear()
            return
        if known is not None:
            return  # a 940 seen twice is processed once
        options = self.options
        rng = order_random(options.seed, document.order_number)
        wanted = choose_fulfilment(rng, options.partial_rate, options.short_rate)
        malformed = rng.choice(MALFORMED_KINDS) if rng.random() < options.malformed_rate else None
        duplicated = rng.random() < options.duplicate_rate
        fulfilment, planned = plan_shipments(
            document, wanted, rng, received_at=now, delay_seconds=options.ship_delay_seconds,
            partial_gap_seconds=options.partial_gap_seconds, carriers=options.carriers,
        )  # fmt: skip
        order = WarehouseOrder(document.order_number, document.po_number, now, source, fulfilment, document)
        order.shipments = [_record(document.order_number, shipment) for shipment in planned]
        order.shipments[0].malformed, order.shipments[0].duplicated = malformed, duplicated
        self._orders[document.order_number] = order
        summary.orders_received += 1

    def _send_due(self, now: float, summary: PassSummary) -> None:
        due = [
            (order, record)
            for order in self._orders.values()
            for record in order.shipments
            if record.sent_at is None and record.due_at <= now and not order.cancelled
        ]
        for order, record in sorted(due, key=lambda pair: (pair[1].due_at, pair[0].order_number, pair[1].sequence)):
            if self._force_malformed:
                record.malformed = self._force_malformed.pop(0)
            if self._force_duplicate:
                self._force_duplicate -= 1
                record.duplicated = True
            text = self._write_945(order, record, now)
            if record.malformed:
                text = malform(text, record.malformed)
            name = f"945_{safe_file_part(order.order_number)}_{record.interchange_control}.x12"
            self.transport.put(name, text.encode("utf-8"))
            record.file_names.append(name)
            if record.duplicated:
                # The same bytes again under a second name, as a 3PL that re-sends its outbox does.
                copy = name.removesuffix(".x12") + "_2.x12"
                self.transport.put(copy, text.encode("utf-8"))
                record.file_names.append(copy)
            record.sent_at = now
            summary.shipments_sent += 1

    def _write_945(self, order: WarehouseOrder, record: ShipmentRecord, now: float) -> str:
        moment = _datetime(now)
        planned = PlannedShipment(
            record.sequence, record.due_at, record.carrier_scac, record.tracking_number, record.lines, record.final
        )
        advice = shipping_advice(order.document, planned, moment.strftime("%Y%m%d"), self.options.warehouse_name)
        text = write_interchange([advice], self.settings, self._control, now=moment)
        record.interchange_control = f"{self._control.last['ISA']:09d}"
        record.group_control = str(self._control.last["GS"])
        return text

    def _on_depositor_ack(self, ack: FunctionalAck, now: float, summary: PassSummary) -> None:
        """A 997 rejecting a 945 broken on purpose gets the corrected 945 (a real 3PL fixes and re-sends)."""
        if ack.functional_id != "SW" or ack.status not in ("R", "P") or not self.options.resend_rejected:
            return
        for order in self._orders.values():
            for record in order.shipments:
                if record.group_control == ack.group_control_number and record.malformed and not record.resent:
                    text = self._write_945(order, record, now)
                    name = f"945_{safe_file_part(order.order_number)}_{record.interchange_control}.x12"
                    self.transport.put(name, text.encode("utf-8"))
                    record.file_names.append(name)
                    record.resent = True
                    summary.shipments_sent += 1

    # -- background polling --------------------------------------------------------------------------------
    def start(self, poll_interval: float = 1.0) -> Self:
        """Poll the inbox from a daemon thread until `stop()` (the demo and `dev` run it this way)."""
        if self._thread is not None:
            return self
        self._stop.clear()

        def poll() -> None:
            while not self._stop.is_set():
                try:
                    self.process_once()
                    self.last_error = None
                except Exception as exc:  # a bad pass must not end the warehouse; the next one tries again
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.warning("3PL sandbox pass failed: %s", self.last_error)
                self._stop.wait(poll_interval)

        self._thread = threading.Thread(target=poll, name="threepl-sandbox", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _datetime(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _record(order_number: str, shipment: PlannedShipment) -> ShipmentRecord:
    return ShipmentRecord(
        order_number, shipment.sequence, shipment.due_at, shipment.carrier_scac, shipment.tracking_number,
        shipment.lines, shipment.final,
    )  # fmt: skip


Group = tuple[InterchangeHeader, GroupHeader, list[TransactionSet], GroupEnd]


def _read_groups(data: bytes) -> tuple[list[Group], list[FunctionalAck]]:
    """The functional groups to answer (every one but 997 groups) and the 997s received, validated."""
    groups: list[Group] = []
    acks: list[FunctionalAck] = []
    transactions: list[TransactionSet] = []
    for event in iter_events(io.BytesIO(data)):
        if isinstance(event, GroupHeader):
            transactions = []
        elif isinstance(event, TransactionSet):
            transactions.append(event)
            if event.set_id == "997" and event.accepted:
                document = document_from_segments("997", event.segments)
                if isinstance(document, FunctionalAck):
                    acks.append(document)
        elif isinstance(event, GroupEnd) and event.header.functional_id != "FA":
            groups.append((event.header.interchange, event.header, transactions, event))
    return groups, acks
