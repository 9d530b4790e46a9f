"""997 builder: for each inbound functional group, the acknowledgment that accepts, partially accepts or
rejects it, with AK3/AK4/AK5/AK9 codes taken from the issue table in `errors.py`."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import BinaryIO

from gp_pipelines.edi.errors import EdiIssue, Level
from gp_pipelines.edi.models import ElementError, FunctionalAck, SegmentError, SetAck
from gp_pipelines.edi.reader import Delimiters
from gp_pipelines.edi.validator import GroupEnd, GroupHeader, InterchangeHeader, TransactionSet, iter_events
from gp_pipelines.edi.writer import ControlNumberSource, EnvelopeSettings, write_interchange


def set_ack(transaction: TransactionSet) -> SetAck:
    """The AK2/AK5 answer for one set (its segments are needed only when it has errors)."""
    errors = [issue for issue in transaction.issues if issue.is_error]
    codes: list[str] = []
    by_position: dict[int, SegmentError] = {}
    for issue in errors:
        level, code = issue.kind.level, issue.kind.ack_code
        if level == Level.SET:
            if code and code not in codes:
                codes.append(code)
        elif level in (Level.SEGMENT, Level.ELEMENT):
            position = issue.segment_position or 0
            segment_error = by_position.setdefault(position, SegmentError(issue.segment_id or "", position))
            if level == Level.SEGMENT:
                segment_error.code = code or ""
            else:
                segment_error.elements.append(_element_error(issue, transaction))
    segments = [by_position[position] for position in sorted(by_position)]
    for segment_error in segments:
        if not segment_error.code:
            segment_error.code = "8"  # segment has data element errors
    if segments and "5" not in codes:
        codes.append("5")  # one or more segments in error
    return SetAck(transaction.set_id, transaction.control_number, "R" if errors else "A", codes[:5], segments)


def _element_error(issue: EdiIssue, transaction: TransactionSet) -> ElementError:
    position = issue.element_position or 0
    bad_value = ""
    if issue.segment_position and issue.segment_position <= len(transaction.segments):
        bad_value = transaction.segments[issue.segment_position - 1][position][:99]
    return ElementError(str(position), issue.kind.ack_code or "7", "", bad_value)


def build_functional_ack(group: GroupHeader, transactions: list[TransactionSet], end: GroupEnd) -> FunctionalAck:
    """The 997 content for one group, from its sets and its end event."""
    return functional_ack(group, [set_ack(transaction) for transaction in transactions], end)


def functional_ack(group: GroupHeader, set_acks: list[SetAck], end: GroupEnd, *, received: int | None = None,
                   accepted: int | None = None) -> FunctionalAck:
    """The 997 content for one group from each set's answer (a reader that streams a large file keeps these
    instead of the sets). With `received` and `accepted` given, `set_acks` may list only the sets that were not
    accepted: the AK2 loops then answer those, and AK9 carries the counts of all."""
    received = len(set_acks) if received is None else received
    accepted = sum(ack.status == "A" for ack in set_acks) if accepted is None else accepted
    group_errors = [issue for issue in end.issues if issue.is_error and issue.kind.level == Level.GROUP]
    group_codes = list(dict.fromkeys(issue.kind.ack_code for issue in group_errors if issue.kind.ack_code))
    declared = end.declared_set_count
    included = int(declared) if declared and declared.isascii() and declared.isdigit() else received
    if group_errors or accepted == 0:
        status = "R"
    elif accepted == received:
        status = "A"
    else:
        status = "P"
    return FunctionalAck(
        group.functional_id,
        group.control_number,
        status,
        included,
        received,
        accepted,
        group_codes[:5],
        set_acks,
    )


def functional_acks(stream: BinaryIO) -> list[tuple[InterchangeHeader, FunctionalAck]]:
    """One 997 per functional group in the stream (997 groups themselves are never acknowledged)."""
    acks = []
    transactions: list[TransactionSet] = []
    for event in iter_events(stream):
        if isinstance(event, GroupHeader):
            transactions = []
        elif isinstance(event, TransactionSet):
            transactions.append(event)
        elif isinstance(event, GroupEnd) and event.header.functional_id != "FA":
            acks.append((event.header.interchange, build_functional_ack(event.header, transactions, event)))
    return acks


def write_acks(
    acks: Iterable[tuple[InterchangeHeader, FunctionalAck]],
    control_numbers: ControlNumberSource | None = None,
    delimiters: Delimiters | None = None,
    now: datetime | None = None,
) -> str:
    """The 997 interchanges, addressed back to each inbound interchange's sender (ids swapped)."""
    by_interchange: dict[int, tuple[InterchangeHeader, list[FunctionalAck]]] = {}
    for header, ack in acks:
        by_interchange.setdefault(id(header), (header, []))[1].append(ack)
    parts = []
    for header, group_acks in by_interchange.values():
        settings = EnvelopeSettings(
            sender_id=header.receiver_id, receiver_id=header.sender_id,
            sender_qualifier=header.receiver_qualifier, receiver_qualifier=header.sender_qualifier,
            usage=header.usage or "P",
            delimiters=delimiters or Delimiters("*", ">", "~", "^", "\n"),
        )  # fmt: skip
        parts.append(write_interchange(group_acks, settings, control_numbers, now))
    return "".join(parts)
