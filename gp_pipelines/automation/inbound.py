"""Files from partners: taken when complete, kept, validated, acknowledged, acted on once, moved out of the
inbox — or quarantined with the reason. One file never blocks another.

Each file listed in a partner's inbox is one `InboxEntry` (its name as a lossless token, size and modification
time) and one row in `automation.inbound_files` with its own state (`automation.state`). `inbox_offers` is what
the partner inbox sensor computes from a listing and the rows: an entry is offered once it is complete (its
size and time unchanged across two listings, or at once when the partner uploads under a temporary name and
renames), and again after a failed or dead run (the run key carries the attempt). `process_inbox_entry` is the
run's whole work for one entry:

1. It takes the entry (only the run whose attempt matches the row's count; a lease guards against a dead run).
2. It streams the file to a spool (memory up to a few MB, then disk), hashing and looking for NUL bytes as it
   goes; a file that changed while it was read is left as `incomplete` (the partner is still writing it), one
   that cannot be read is `unreadable` and reported, an outage is `failed` and offered again with back-off.
3. It keeps the bytes in `automation.edi_files` (in parts) before anything else.
4. It reads and validates the file from the spool, one transaction set at a time, checking every document
   applies (a 945 for an order we sent, no more shipped than ordered) before any acts, so a bad file changes
   nothing. Non-X12 input (text, HTML, UTF-16, binary), NUL bytes, envelope or set errors and unmatched
   documents quarantine the file with the reason, answered by a rejecting 997 where a group could be read, and
   notified.
5. A good file is answered with a 997 per group; a second pass applies each document: 997s are matched to what
   we sent, a 945 becomes a shipment record (`automation.shipping`: identified by its content, so a re-delivery
   is a duplicate), other sets go to their handler (850s for trading partners).
6. The file is moved to the partner's `processed` (or `quarantine`) folder, and each sale it concerned is
   advanced by the reconciler (ship in Cin7, then tracking), which the outbox retry repeats after an outage.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO

import psycopg

from gp_pipelines.automation import exchange, outbox
from gp_pipelines.automation.context import AutomationContext
from gp_pipelines.automation.errors import UnmatchedDocument
from gp_pipelines.automation.locks import advisory_lock
from gp_pipelines.automation.orders import SEND_EDI, ensure_order_tables
from gp_pipelines.automation.reconcile import SaleProgress, advance_sale
from gp_pipelines.automation.schema import record_audit
from gp_pipelines.automation.shipping import ShipmentCheck, record_shipping_advice
from gp_pipelines.automation.state import FILE_FINAL, INBOUND_FILE, record_history, rows, transition
from gp_pipelines.config import PartnerConfig
from gp_pipelines.connectors.transport import RemoteFile, TransportError, name_from_token, name_to_token, printable
from gp_pipelines.edi.ack import functional_ack, set_ack
from gp_pipelines.edi.errors import EdiIssue, X12ReadError
from gp_pipelines.edi.mapping import document_from_segments
from gp_pipelines.edi.models import FunctionalAck, SetAck, WarehouseShippingAdvice
from gp_pipelines.edi.sniff import HEAD_BYTES, describe_non_x12, looks_unfinished
from gp_pipelines.edi.validator import GroupEnd, GroupHeader, InterchangeHeader, TransactionSet, iter_events

_log = logging.getLogger(__name__)
SPOOL_IN_MEMORY = 4 * 1024 * 1024  # larger files spill to a temporary file while they are processed
MAX_REASONS = 5


# ---------------------------------------------------------------- what the sensor offers


@dataclass(frozen=True)
class InboxEntry:
    """One listed file: the name as a token that round-trips to its exact bytes, its size and time, and the
    number of runs it has had (part of the run key, so a retry is a new run)."""

    partner: str
    name: str
    size: int
    modified: datetime
    attempt: int = 0

    @property
    def signature(self) -> list[int]:
        """Size and time as listed (whole seconds, what SFTP reports): equal across two listings = complete."""
        return [self.size, int(self.modified.timestamp())]

    @property
    def run_key(self) -> str:
        return f"{self.partner}:{self.name}:{self.size}:{self.signature[1]}:{self.attempt}"

    @property
    def display_name(self) -> str:
        return RemoteFile(name_from_token(self.name), self.size, self.modified).display_name

    @classmethod
    def of(cls, partner: str, remote: RemoteFile, attempt: int = 0) -> InboxEntry:
        return cls(partner, name_to_token(remote.name), remote.size, remote.modified, attempt)


def inbox_offers(conn: psycopg.Connection, partner: PartnerConfig, listing: Sequence[RemoteFile],
                 previous: Mapping[str, Sequence[Any]], *, now: datetime | None = None,
                 limit: int = 50) -> tuple[list[InboxEntry], dict[str, list[Any]], int]:
    """(entries to hand to runs, this listing's signatures for the next tick, entries still being written).

    `previous` is the last tick's signatures by name token. With `inbound_ready: stable` an entry is complete
    when the last tick saw the same size and time; `on_arrival` takes it at once."""
    at = now or datetime.now(UTC)
    entries = [InboxEntry.of(partner.key, remote) for remote in listing]
    seen = {entry.name: entry.signature for entry in entries}
    known = {(row["name"], row["listed_size"], int(row["listed_modified"].timestamp())): row for row in rows(
        conn, "SELECT * FROM automation.inbound_files WHERE partner = %s AND name = ANY(%s)",
        (partner.key, list(seen)))}  # fmt: skip
    offers: list[InboxEntry] = []
    settling = 0
    for entry in entries:
        if partner.transport.inbound_ready == "stable" and list(previous.get(entry.name) or []) != entry.signature:
            settling += 1
            continue
        row = known.get((entry.name, *entry.signature))
        if row is None:
            offers.append(entry)
            continue
        free = row["lease_until"] is None or row["lease_until"] < at
        due = row["next_attempt_at"] <= at
        finished = row["state"] in (*FILE_FINAL, "quarantined")
        redelivered = finished and row["archived_at"] is not None  # moved out, and here again: same name and time
        retry = due and (row["state"] in ("failed", "taken", "incomplete") or finished)  # incl. a failed move
        if free and (redelivered or retry):
            offers.append(dataclasses.replace(entry, attempt=row["attempts"]))
    return offers[:limit], seen, settling


# ---------------------------------------------------------------- the result of one run


@dataclass
class InboundResult:
    partner: str
    file_name: str  # printable
    state: str  # a FILE_STATES value, or busy / archived
    reason: str = ""
    documents: list[str] = field(default_factory=list)  # e.g. "945 SO-00012-1: new"
    outbox: list[str] = field(default_factory=list)
    sales: list[SaleProgress] = field(default_factory=list)

    def as_metadata(self) -> dict[str, Any]:
        return {"partner": self.partner, "file": self.file_name, "state": self.state, "reason": self.reason,
                "documents": len(self.documents), "actions": len(self.outbox), "sales": len(self.sales)}


# ---------------------------------------------------------------- reading and checking a stored file


class _Sink:
    """Where a fetched file goes: a spool file, with its first bytes and the first NUL byte noted on the way."""

    def __init__(self) -> None:
        self.spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - closed by the run
        self.head = b""
        self.first_nul: int | None = None
        self.size = 0

    def write(self, data: bytes) -> int:
        if len(self.head) < HEAD_BYTES:
            self.head += data[: HEAD_BYTES - len(self.head)]
        if self.first_nul is None and (at := data.find(b"\x00")) >= 0:
            self.first_nul = self.size + at
        self.size += len(data)
        return self.spool.write(data)


# A 997 answers each set with an AK2 loop; in a group of more sets than this it answers only those not accepted
# (the first this many of them), and AK9 carries the counts of all (a common practice for large groups), so a
# huge file costs no memory per set.
AK2_FOR_EVERY_SET_UP_TO = 1000


@dataclass
class _GroupAnswers:
    """What a 997 needs of one group's sets: accepted ones as (set id, control number) while the group is small,
    the others as their full answer (built while their segments were at hand)."""

    header: GroupHeader
    accepted: list[tuple[str, str]] = field(default_factory=list)
    refused: list[SetAck] = field(default_factory=list)
    order: list[bool] = field(default_factory=list)  # per set: accepted? (the AK2 loops keep the file's order)
    accepted_count: int = 0
    refused_count: int = 0
    end: GroupEnd | None = None

    def add(self, transaction: TransactionSet) -> None:
        if transaction.accepted:
            self.accepted_count += 1
        else:
            self.refused_count += 1
            if len(self.refused) < AK2_FOR_EVERY_SET_UP_TO:
                self.refused.append(set_ack(transaction))
        if self.accepted_count + self.refused_count > AK2_FOR_EVERY_SET_UP_TO:
            self.accepted, self.order = [], []  # a large group: only the counts and the refused sets
            return
        if transaction.accepted:
            self.accepted.append((transaction.set_id, transaction.control_number))
        self.order.append(transaction.accepted)

    def ack(self, reject_all: bool) -> FunctionalAck:
        assert self.end is not None
        if self.accepted_count + self.refused_count <= AK2_FOR_EVERY_SET_UP_TO:  # every set answered, in order
            good, bad = iter(self.accepted), iter(self.refused)
            answers = [SetAck(*next(good), "A") if ok else next(bad) for ok in self.order]
            ack = functional_ack(self.header, answers, self.end)
        else:
            ack = functional_ack(self.header, self.refused, self.end, accepted=self.accepted_count,
                                 received=self.accepted_count + self.refused_count)
        return _rejecting(ack) if reject_all else ack


@dataclass
class _Scan:
    issues: list[str] = field(default_factory=list)  # the first MAX_REASONS, in words
    issue_count: int = 0
    groups: list[_GroupAnswers] = field(default_factory=list)
    unmatched: str = ""
    sets: int = 0

    def add_issues(self, issues: Any) -> None:
        for issue in issues:
            if issue.is_error:
                self.issue_count += 1
                if len(self.issues) < MAX_REASONS:
                    self.issues.append(str(issue))

    def add_problem(self, text: str) -> None:
        self.issue_count += 1
        if len(self.issues) < MAX_REASONS:
            self.issues.append(text)


def _scan(conn: psycopg.Connection, partner: PartnerConfig, stream: BinaryIO,
          handlers: Mapping[str, Any]) -> _Scan:
    """One streaming pass: every error, what the 997s need of each set, and whether every document applies (the
    first that does not is `unmatched`). Holds one set at a time. Never raises on what the file holds."""
    scan = _Scan()
    shipments = ShipmentCheck()
    current: _GroupAnswers | None = None
    saw_interchange = False
    try:
        for event in iter_events(stream):
            if isinstance(event, EdiIssue):
                scan.add_issues([event])
                continue
            scan.add_issues(getattr(event, "issues", ()))
            if isinstance(event, InterchangeHeader):
                saw_interchange = True
            elif isinstance(event, GroupHeader):
                current = _GroupAnswers(event)
            elif isinstance(event, TransactionSet):
                scan.sets += 1
                if event.accepted and not scan.unmatched:
                    scan.unmatched = _precheck(conn, partner, event, handlers, shipments)
                if current is not None:
                    current.add(event)
            elif isinstance(event, GroupEnd):
                answers = current if current is not None and current.header is event.header else \
                    _GroupAnswers(event.header)
                answers.end = event
                scan.groups.append(answers)
                current = None
    except X12ReadError as exc:
        scan.add_problem(f"not readable as X12 after the part read so far: {exc}")
    if not saw_interchange and not scan.issue_count:
        scan.add_problem("no ISA interchange header: not an X12 file")
    return scan


def _precheck(conn: psycopg.Connection, partner: PartnerConfig, transaction: TransactionSet,
              handlers: Mapping[str, Any], shipments: ShipmentCheck) -> str:
    """Why this (valid) set cannot apply, or ''."""
    try:
        document = document_from_segments(transaction.set_id, transaction.segments)
        if isinstance(document, FunctionalAck):
            return ""
        if isinstance(document, WarehouseShippingAdvice):
            shipments.check(conn, partner, document)
        elif transaction.set_id in handlers:
            precheck = getattr(handlers[transaction.set_id], "precheck", None)
            if precheck is not None:
                precheck(conn, partner, document)
        else:
            return f"set {transaction.set_id} is not expected from {partner.name}"
    except UnmatchedDocument as exc:
        return str(exc)
    except (ValueError, KeyError, IndexError, TypeError, ArithmeticError) as exc:  # a document our models refuse
        return f"set {transaction.set_id} {transaction.control_number} could not be read: {exc}"
    return ""


def _tail(spool: BinaryIO, size: int = 256) -> bytes:
    spool.seek(0, 2)
    spool.seek(max(0, spool.tell() - size))
    return spool.read()


def _documents(stream: BinaryIO) -> Iterator[tuple[str, Any]]:
    """The second pass over a file that passed the first: (set id, document), one at a time."""
    for event in iter_events(stream):
        if isinstance(event, TransactionSet):
            yield event.set_id, document_from_segments(event.set_id, event.segments)


def _rejecting(ack: FunctionalAck) -> FunctionalAck:
    """The same 997 with every set and the group rejected (for a file we refuse as a whole)."""
    return dataclasses.replace(ack, status="R", sets_accepted=0,
                               sets=[SetAck(s.set_id, s.control_number, "R", s.codes, s.segments) for s in ack.sets])





def _send_acks(conn: psycopg.Connection, context: AutomationContext, partner: PartnerConfig, scan: _Scan,
               stored: exchange.StoredFile, *, reject_all: bool = False) -> list[str]:
    """One 997 per functional group (997 groups themselves are never acknowledged), sent through the outbox."""
    acks = [group.ack(reject_all) for group in scan.groups if group.header.functional_id != "FA"]
    if not acks:
        return []
    key = f"edi.send:{partner.key}:997:{stored.id}"
    with conn.transaction():
        if outbox.get_item(conn, key) is None:
            content = exchange.write_for_partner(conn, partner, acks).encode()
            stem = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in stored.file_name.rsplit(".", 1)[0])
            name = exchange.outbound_file_name(partner, "997", f"{stored.id}_{stem[:60]}")
            ack_file = exchange.store_file(conn, partner.key, "out", name, content)
            outbox.enqueue(conn, key, SEND_EDI, {"partner": partner.key, "file_id": ack_file.id, "file_name": name},
                           subject=stored.file_name, actor=context.actor)
    item = context.run(conn, key)
    return [f"{key}: {item.outcome}"]


# ---------------------------------------------------------------- one entry


def _take(conn: psycopg.Connection, context: AutomationContext, entry: InboxEntry) -> dict[str, Any] | None:
    """The entry's row, taken for this run; None when another run has it (or had this attempt)."""
    with conn.transaction():
        created = conn.execute(
            """INSERT INTO automation.inbound_files (partner, name, display_name, listed_size, listed_modified,
                                                    state, attempts, lease_until)
               VALUES (%s, %s, %s, %s, %s, 'taken', 1, now() + %s)
               ON CONFLICT (partner, name, listed_size, listed_modified) DO NOTHING RETURNING id""",
            (entry.partner, entry.name, entry.display_name, entry.size, entry.modified, context.run_lease),
        ).fetchone()
        if created and entry.attempt == 0:
            record_history(conn, INBOUND_FILE, (created[0],), None, "taken",
                           cause=f"listed in {entry.partner}'s inbox ({entry.size} bytes)", actor=context.actor)
            for (older,) in conn.execute(
                    "SELECT id FROM automation.inbound_files WHERE partner = %s AND name = %s AND id <> %s "
                    "AND state IN ('failed', 'incomplete', 'taken', 'unreadable') AND archived_at IS NULL",
                    (entry.partner, entry.name, created[0])).fetchall():  # fmt: skip
                transition(conn, INBOUND_FILE, (older,), "superseded", actor=context.actor,
                           changes={"lease_until": None},
                           cause=f"the partner changed the file: now {entry.size} bytes (file {created[0]})")
            return rows(conn, "SELECT * FROM automation.inbound_files WHERE id = %s", (created[0],))[0]
        taken = rows(conn, """
            UPDATE automation.inbound_files SET attempts = attempts + 1, lease_until = now() + %s, updated_at = now()
             WHERE partner = %s AND name = %s AND listed_size = %s AND listed_modified = %s AND attempts = %s
               AND (lease_until IS NULL OR lease_until < now()) RETURNING *""",
                     (context.run_lease, entry.partner, entry.name, entry.size, entry.modified, entry.attempt))
        if taken and taken[0]["state"] in ("failed", "incomplete"):
            transition(conn, INBOUND_FILE, (taken[0]["id"],), "taken", actor=context.actor,
                       cause=f"offered again (attempt {taken[0]['attempts']})")
            taken[0]["state"] = "taken"
    return taken[0] if taken else None


def _settle(conn: psycopg.Connection, context: AutomationContext, row: Mapping[str, Any], state: str, cause: str,
            **changes: Any) -> None:
    transition(conn, INBOUND_FILE, (row["id"],), state, cause=cause, actor=context.actor,
               changes={"lease_until": None, "reason": cause if state in ("quarantined", "unreadable",
                                                                          "incomplete", "failed") else None,
                        **changes})  # fmt: skip


def _retry_later(conn: psycopg.Connection, context: AutomationContext, row: Mapping[str, Any], state: str,
                 cause: str) -> None:
    delay = context.policy.delay(int(row["attempts"]))
    _settle(conn, context, row, state, cause, last_error=cause, next_attempt_at=datetime.now(UTC) + delay)


def _notify(context: AutomationContext, conn: psycopg.Connection, partner: PartnerConfig, row: Mapping[str, Any],
            what: str, reason: str) -> None:
    if context.notifier is None:
        return
    context.notifier.notify(
        f"EDI file {what}: {partner.name} {row['display_name']}",
        f"The file {row['display_name']} from {partner.name} ({partner.key}) was {what} and changed nothing.\n"
        f"Reason: {reason}\n"
        + (f"It is kept in automation.edi_files (id {row['file_id']}).\n" if row.get("file_id") else "")
        + "See `gp-pipelines status`; once dealt with, `gp-pipelines inbox dismiss` sets it aside.",
        key=f"edi.{what}:{partner.key}:{row['id']}", conn=conn)


def _archive(context: AutomationContext, conn: psycopg.Connection, row: Mapping[str, Any], folder: str) -> bool:
    """Move the file out of the partner's inbox (it is kept and its state recorded first). A failed move leaves
    it listed; the entry is offered again after a back-off and only the move is repeated."""
    try:
        context.transport(row["partner"]).archive_inbound(name_from_token(row["name"]), folder)
    except TransportError as exc:
        _log.warning("could not move %s to %s on the partner side: %s", row["display_name"], folder, exc)
        delay = context.policy.delay(int(row["attempts"]))
        conn.execute("UPDATE automation.inbound_files SET last_error = %s, next_attempt_at = now() + %s, "
                     "lease_until = NULL WHERE id = %s", (str(exc), delay, row["id"]))
        return False
    conn.execute("UPDATE automation.inbound_files SET archived_at = now(), lease_until = NULL, last_error = NULL "
                 "WHERE id = %s", (row["id"],))
    return True


def process_inbox_entry(conn: psycopg.Connection, context: AutomationContext, partner: PartnerConfig,
                        entry: InboxEntry) -> InboundResult:
    """Process one inbox entry (see the module docstring). `conn` is autocommit. Raises only for an outage of
    an outside system after recording it (the entry is offered again after the back-off). A negative attempt (a
    run launched by hand) takes whatever the entry's count is now."""
    ensure_order_tables(conn)
    if entry.attempt < 0:
        known = conn.execute("SELECT attempts FROM automation.inbound_files WHERE partner = %s AND name = %s AND "
                             "listed_size = %s AND listed_modified = %s",
                             (entry.partner, entry.name, entry.size, entry.modified)).fetchone()  # fmt: skip
        entry = dataclasses.replace(entry, attempt=known[0] if known else 0)
    row = _take(conn, context, entry)
    if row is None:
        return InboundResult(partner.key, entry.display_name, "busy", "another run has this entry")
    result = InboundResult(partner.key, row["display_name"], row["state"])
    if row["state"] in (*FILE_FINAL, "quarantined") and row["archived_at"] is not None:
        transition(conn, INBOUND_FILE, (row["id"],), "taken", actor=context.actor, changes={"archived_at": None},
                   cause="listed again after it was moved out of the inbox: a re-delivery")
        row = {**row, "state": "taken", "archived_at": None}
    if row["state"] in (*FILE_FINAL, "quarantined"):
        archived = _archive(context, conn, row, "quarantine" if row["state"] == "quarantined" else "processed")
        result.reason = "moved out of the inbox" if archived else "still in the inbox: the move failed"
        return result
    sink = _Sink()
    try:
        return _process(conn, context, partner, entry, row, sink, result)
    finally:
        sink.spool.close()


def _process(conn: psycopg.Connection, context: AutomationContext, partner: PartnerConfig, entry: InboxEntry,
             row: dict[str, Any], sink: _Sink, result: InboundResult) -> InboundResult:
    transport = context.transport(partner.key)
    name = name_from_token(entry.name)
    try:
        fetched = transport.fetch_to(name, sink)
        after = transport.stat(name)
    except TransportError as exc:
        if exc.retryable:
            _retry_later(conn, context, row, "failed", str(exc))
            raise
        _settle(conn, context, row, "unreadable", str(exc))
        _notify(context, conn, partner, row, "unreadable", str(exc))
        result.state, result.reason = "unreadable", str(exc)
        return result
    # Complete: what was read, what the file was when the read began and when it ended all equal the listing.
    read = [[fetched.size, int(fetched.modified.timestamp())], [fetched.opened_size, int(fetched.modified.timestamp())]]
    if after is None or any(state != entry.signature for state in [*read, InboxEntry.of("", after).signature]):
        cause = ("it changed while being read (the partner is still writing it): taken when it stops changing"
                 if after is not None else "it left the inbox before it was read")
        _retry_later(conn, context, row, "incomplete", cause)
        result.state, result.reason = "incomplete", cause
        return result
    age = (datetime.now(UTC) - fetched.modified).total_seconds()
    if age < partner.transport.inbound_settle_minutes * 60 and looks_unfinished(sink.head, _tail(sink.spool)):
        cause = (f"it stops before its IEA and changed {age:.0f} s ago: taken for a file still being uploaded, "
                 "read again later")
        _retry_later(conn, context, row, "incomplete", cause)
        result.state, result.reason = "incomplete", cause
        return result
    sink.spool.seek(0)
    stored = exchange.store_stream(conn, partner.key, "in", row["display_name"], sink.spool, fetched.sha256)
    conn.execute("UPDATE automation.inbound_files SET file_id = %s, content_hash = %s WHERE id = %s",
                 (stored.id, fetched.sha256, row["id"]))
    row = {**row, "file_id": stored.id}
    label = f"{row['display_name']} (stored as file {stored.id})"
    if not stored.created and stored.state in ("processed", "quarantined"):
        # The same name and bytes again: what it said was applied (or refused) when it first came.
        cause = f"the same file (name and content) was {stored.state} before (stored file {stored.id})"
        state, folder = ("duplicate", "processed") if stored.state == "processed" else ("quarantined", "quarantine")
        _settle(conn, context, row, state, cause)
        _archive(context, conn, row, folder)
        result.state, result.reason = state, cause
        return result

    def quarantine(reason: str, scan: _Scan | None, *, reject_all: bool) -> InboundResult:
        reason = printable(reason)  # a reason may quote the file's own bytes, NULs included
        if scan is not None:
            result.outbox += _send_acks(conn, context, partner, scan, stored, reject_all=reject_all)
        with conn.transaction():
            exchange.mark_file(conn, stored.id, "quarantined", reason)
            _settle(conn, context, row, "quarantined", reason)
            record_audit(conn, "edi.quarantined", actor=context.actor, subject=row["display_name"],
                         detail={"partner": partner.key, "file_id": stored.id, "reason": reason})
        _notify(context, conn, partner, row, "quarantined", reason)
        _archive(context, conn, row, "quarantine")
        result.state, result.reason = "quarantined", reason
        return result

    not_x12 = describe_non_x12(sink.head)
    if not_x12 is not None:
        return quarantine(not_x12, None, reject_all=True)
    with advisory_lock(conn, f"gp.edi.in.{stored.id}", wait_seconds=context.lock_wait_seconds) as held:
        if not held:
            _retry_later(conn, context, row, "failed", "another run is processing the same stored file")
            result.state = "busy"
            return result
        sink.spool.seek(0)
        scan = _scan(conn, partner, sink.spool, context.extra_handlers)
        problems, count = list(scan.issues), scan.issue_count
        if sink.first_nul is not None:
            problems.insert(0, f"the file contains NUL bytes (the first at byte {sink.first_nul}): binary data or a "
                               "broken transfer")
            count += 1
        if problems:
            more = f" (+{count - MAX_REASONS} more)" if count > MAX_REASONS else ""
            return quarantine("; ".join(problems[:MAX_REASONS]) + more, scan, reject_all=sink.first_nul is not None)
        if scan.unmatched:
            return quarantine(scan.unmatched, scan, reject_all=False)
        sink.spool.seek(0)
        with conn.transaction():
            exchange.record_interchanges(conn, partner.key, "in", stored.id, sink.spool)
        result.outbox += _send_acks(conn, context, partner, scan, stored)
        sink.spool.seek(0)
        touched, acting, new = _apply(conn, context, partner, sink.spool, stored.id, label, result)
        # A re-delivery: every document that acts had been applied before.
        state = "duplicate" if acting and not new else "processed"
        with conn.transaction():
            exchange.mark_file(conn, stored.id, "processed")
            summary = f"{len(result.documents)} document(s): " + "; ".join(result.documents[:5])
            _settle(conn, context, row, state, summary)
            record_audit(conn, "edi.processed", actor=context.actor, subject=row["display_name"],
                         detail={"partner": partner.key, "documents": result.documents[:50], "state": state})
        result.state = state
    _archive(context, conn, row, "processed")
    for instance, sale_id in touched:
        result.sales.append(advance_sale(conn, context, instance, sale_id, allow_planning=False,
                                         cause=f"{label} processed"))
    return result


def _apply(conn: psycopg.Connection, context: AutomationContext, partner: PartnerConfig, stream: BinaryIO,
           file_id: int, label: str, result: InboundResult) -> tuple[list[tuple[str, str]], int, int]:
    """Act on each document once; returns (sales to advance, documents that act, of them new ones)."""
    touched: list[tuple[str, str]] = []
    acting = new = 0
    for set_id, document in _documents(stream):
        if isinstance(document, FunctionalAck):
            matched = exchange.apply_functional_ack(conn, partner.key, document)
            result.documents.append(f"997 for group {document.group_control_number}: "
                                    f"{matched['state'] if matched else 'unmatched'}")
            if matched:  # the sales whose 940 it answers move on (acknowledged) from their state
                touched += [sale for sale in conn.execute(
                    "SELECT DISTINCT instance, sale_id FROM automation.fulfilments WHERE edi_file_id = %s",
                    (matched["file_id"],)).fetchall() if tuple(sale) not in touched]  # fmt: skip
            if matched and matched["state"] == "rejected" and context.notifier is not None:
                context.notifier.notify(
                    f"{partner.name} rejected our group {document.group_control_number}",
                    f"997 from {partner.name}: {matched}", key=f"edi.rejected:{partner.key}:{matched['id']}",
                    conn=conn)
        elif isinstance(document, WarehouseShippingAdvice):
            acting += 1
            sale, created = record_shipping_advice(conn, context, partner, document, file_id, label)
            result.documents.append(f"945 {document.order_number}: {'new' if created else 'duplicate'}")
            if created:
                new += 1
                if sale not in touched:
                    touched.append(sale)
        else:
            result.documents.append(f"{set_id} {getattr(document, 'po_number', '') or ''}".strip())
            result.outbox += context.extra_handlers[set_id](conn, context, partner, document, file_id)
            acting += 1
            new += 1  # set handlers keep their own once-only records (e.g. one sale per PO)
    return touched, acting, new


# ---------------------------------------------------------------- without a sensor (demo, tests, CLI)


def process_partner_file(conn: psycopg.Connection, context: AutomationContext, partner: PartnerConfig,
                         file_name: str) -> InboundResult:
    """Process one file in the partner's inbox now, as a run for its current listing would (for callers that
    know the file is complete: the demo, tests). `file_name` is the name as listed."""
    remote = context.transport(partner.key).stat(file_name)
    if remote is None:
        return InboundResult(partner.key, file_name, "incomplete", "no such file in the inbox")
    return process_inbox_entry(conn, context, partner, InboxEntry.of(partner.key, remote, attempt=-1))


def process_inbox(conn: psycopg.Connection, context: AutomationContext, partner: PartnerConfig,
                  on_error: Callable[[str, Exception], None] | None = None) -> list[InboundResult]:
    """Every file in the partner's inbox, one after the other; one file's outage is reported to `on_error`
    (default: logged) and does not stop the others."""
    results = []
    for remote in context.transport(partner.key).list_inbound():
        try:
            results.append(process_partner_file(conn, context, partner, remote.name))
        except Exception as exc:
            (on_error or (lambda name, error: _log.warning("%s: %s", name, error)))(remote.display_name, exc)
    return results
