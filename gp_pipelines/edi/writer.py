"""Models to X12 text: fixed-width ISA, configurable delimiters and envelope ids, exact counts.

Control numbers come from a `ControlNumberSource` (per partner, persistent in PostgreSQL in production, see
`control_numbers.py`; `CountingControlNumbers` for tests and one-off files).
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from gp_pipelines.edi.mapping import document_from_segments, document_to_rows
from gp_pipelines.edi.models import Document
from gp_pipelines.edi.reader import Delimiters
from gp_pipelines.edi.specs import SET_SPECS
from gp_pipelines.edi.validator import TransactionSet, iter_events

MAX_CONTROL_NUMBER = 999_999_999


class ControlNumberSource(Protocol):
    def next_number(self, kind: str) -> int:
        """The next control number of this kind ("ISA", "GS" or "ST")."""
        ...


class CountingControlNumbers:
    """In-memory counters (wrapping at 999999999); for tests and files nobody will see twice."""

    def __init__(self, start: int = 1) -> None:
        self.last = {"ISA": start - 1, "GS": start - 1, "ST": start - 1}

    def next_number(self, kind: str) -> int:
        self.last[kind] = self.last[kind] % MAX_CONTROL_NUMBER + 1
        return self.last[kind]


@dataclass
class EnvelopeSettings:
    """A partner profile's envelope: ids, versions, usage and delimiters (suffix "\\n" for one segment a line)."""

    sender_id: str
    receiver_id: str
    sender_qualifier: str = "ZZ"
    receiver_qualifier: str = "ZZ"
    application_sender: str = ""
    application_receiver: str = ""
    interchange_version: str = "00401"
    group_version: str = "004010"
    usage: str = "P"
    ack_requested: str = "0"
    delimiters: Delimiters = field(default_factory=lambda: Delimiters("*", ">", "~", "^", "\n"))

    def __post_init__(self) -> None:
        used = [d for d in (self.delimiters.element, self.delimiters.component, self.delimiters.segment) if d]
        if len(set(used)) != len(used) or any(d.isalnum() for d in used):
            raise ValueError(f"delimiters must differ from each other and not be letters or digits: {used}")


class _SegmentWriter:
    def __init__(self, delimiters: Delimiters) -> None:
        self.delimiters = delimiters
        self.forbidden = [d for d in (*delimiters.all(), "\r", "\n") if d]
        self.out = io.StringIO()

    def clean(self, value: str) -> str:
        # X12 has no escape character: a delimiter inside data is replaced, never sent.
        for character in self.forbidden:
            if character in value:
                value = value.replace(character, " ")
        return value

    def write(self, row: list[str], raw: bool = False) -> bool:
        values = [row[0]] + [value if raw else self.clean(value) for value in row[1:]]
        while len(values) > 1 and values[-1] == "":
            values.pop()
        if len(values) == 1:
            return False  # never an empty segment
        d = self.delimiters
        self.out.write(d.element.join(values) + d.segment + d.suffix)
        return True


def _isa(settings: EnvelopeSettings, control: int, now: datetime) -> list[str]:
    repetition = settings.delimiters.repetition if settings.interchange_version >= "00402" else None
    return [
        "ISA", "00", " " * 10, "00", " " * 10,
        settings.sender_qualifier.ljust(2)[:2], settings.sender_id.ljust(15)[:15],
        settings.receiver_qualifier.ljust(2)[:2], settings.receiver_id.ljust(15)[:15],
        now.strftime("%y%m%d"), now.strftime("%H%M"), repetition or "U", settings.interchange_version,
        f"{control:09d}", settings.ack_requested, settings.usage, settings.delimiters.component,
    ]  # fmt: skip


def write_interchange(
    documents: Iterable[Document],
    settings: EnvelopeSettings,
    control_numbers: ControlNumberSource | None = None,
    now: datetime | None = None,
) -> str:
    """One interchange holding the documents, one functional group per GS01 in order of first appearance."""
    control_numbers = control_numbers or CountingControlNumbers()
    now = now or datetime.now()
    writer = _SegmentWriter(settings.delimiters)
    groups: dict[str, list[Document]] = {}
    for document in documents:
        groups.setdefault(SET_SPECS[document.SET_ID].functional_id, []).append(document)
    isa_control = control_numbers.next_number("ISA")
    writer.write(_isa(settings, isa_control, now), raw=True)
    for functional_id, members in groups.items():
        group_control = control_numbers.next_number("GS")
        writer.write(
            [
                "GS",
                functional_id,
                settings.application_sender or settings.sender_id,
                settings.application_receiver or settings.receiver_id,
                now.strftime("%Y%m%d"),
                now.strftime("%H%M"),
                str(group_control),
                "X",
                settings.group_version,
            ]
        )
        for document in members:
            set_control = f"{control_numbers.next_number('ST'):04d}"
            writer.write(["ST", document.SET_ID, set_control])
            # SE01 counts what was actually written (empty rows are dropped), not what the model had.
            written = 1 + sum(writer.write(row) for row in document_to_rows(document))
            writer.write(["SE", str(written + 1), set_control])
        writer.write(["GE", str(len(members)), str(group_control)])
    writer.write(["IEA", str(len(groups)), f"{isa_control:09d}"])
    return writer.out.getvalue()


def read_documents(data: bytes) -> list[Document]:
    """Every modelled document of an X12 byte string, in order (issues are not checked here)."""
    documents = []
    for event in iter_events(io.BytesIO(data), validate_sets=False):
        if isinstance(event, TransactionSet):
            document = document_from_segments(event.set_id, event.segments)
            if document is not None:
                documents.append(document)
    return documents
