"""EDI exchange with partners: every file kept, every interchange's acknowledgement tracked.

- `automation.edi_files` keeps each file received or sent, byte for byte, with its state (received, processed,
  quarantined, sent) and the reason when it was quarantined. A file is identified by partner, direction, name
  and content hash, so the same delivery stored twice is one row and a re-delivery with other content is
  another. Nothing is deleted.
- `automation.edi_interchanges` has one row per functional group we sent (waiting for its 997) or received.
  `apply_functional_ack` matches a partner's 997 to the group it acknowledges (AK101 functional id + AK102
  group control number); `overdue_acks` lists groups whose 997 is late. The view `automation.interchange_status`
  shows the state of every interchange for the UI and the `status` command.
- `envelope_for` turns a partner's config into the writer's envelope settings, `write_for_partner` writes
  documents with that partner's persistent control numbers.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, BinaryIO

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from gp_pipelines.config import PartnerConfig
from gp_pipelines.edi.control_numbers import PostgresControlNumbers
from gp_pipelines.edi.control_numbers import ensure_table as ensure_control_number_table
from gp_pipelines.edi.models import Document, FunctionalAck
from gp_pipelines.edi.reader import Delimiters
from gp_pipelines.edi.validator import GroupEnd, GroupHeader, InterchangeHeader, iter_events
from gp_pipelines.edi.writer import EnvelopeSettings, write_interchange
from gp_pipelines.schema.automation import EDI_FILE_STATES

FILE_STATES = EDI_FILE_STATES

_AK901_STATE = {"A": "accepted", "E": "accepted_with_errors", "P": "partially_accepted", "R": "rejected"}


# Files are kept in parts (automation.edi_file_parts), so a large file is written and read a part at a time,
# never whole in memory. Rows stored before parts existed keep their `content`.
PART_SIZE = 4 * 1024 * 1024


def ensure_exchange_tables(conn: psycopg.Connection) -> None:
    """The EDI tables are part of the platform's schema: make sure it is current (see `ensure_schema`)."""
    ensure_control_number_table(conn)


def content_hash(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


@dataclass(frozen=True)
class StoredFile:
    id: int
    partner: str
    direction: str
    file_name: str
    content_hash: str
    state: str
    reason: str | None
    created: bool  # False when the same file (name and content) was already stored


def store_file(conn: psycopg.Connection, partner: str, direction: str, file_name: str, content: bytes,
               state: str = "received") -> StoredFile:
    """Keep a file before anything else is done with it; the same name and content stored twice is one row."""
    return store_stream(conn, partner, direction, file_name, io.BytesIO(content), content_hash(content), state)


def store_stream(conn: psycopg.Connection, partner: str, direction: str, file_name: str, stream: BinaryIO,
                 digest: str, state: str = "received") -> StoredFile:
    """`store_file` for a file read from `stream` (whose SHA-256 the caller computed while it arrived), written a
    part at a time; row and parts commit together."""
    with conn.transaction():
        row = conn.execute(
            """INSERT INTO automation.edi_files (partner, direction, file_name, content_hash, state)
               VALUES (%s, %s, %s, %s, %s)
               ON CONFLICT (partner, direction, file_name, content_hash) DO NOTHING
               RETURNING id, state, reason""",
            (partner, direction, file_name, digest, state),
        ).fetchone()
        created = row is not None
        if row is None:
            row = conn.execute(
                "SELECT id, state, reason FROM automation.edi_files "
                "WHERE partner = %s AND direction = %s AND file_name = %s AND content_hash = %s",
                (partner, direction, file_name, digest),
            ).fetchone()
        else:
            size = 0
            for part, data in enumerate(iter(lambda: stream.read(PART_SIZE), b"")):
                conn.execute("INSERT INTO automation.edi_file_parts (file_id, part, data) VALUES (%s, %s, %s)",
                             (row[0], part, data))
                size += len(data)
            conn.execute("UPDATE automation.edi_files SET size = %s WHERE id = %s", (size, row[0]))
    return StoredFile(row[0], partner, direction, file_name, digest, row[1], row[2], created)


def mark_file(conn: psycopg.Connection, file_id: int, state: str, reason: str | None = None) -> None:
    if state not in FILE_STATES:
        raise ValueError(f"file state must be one of {FILE_STATES}, not {state!r}")
    conn.execute(
        "UPDATE automation.edi_files SET state = %s, reason = %s, updated_at = now() WHERE id = %s",
        (state, reason, file_id),
    )


def iter_file_content(conn: psycopg.Connection, file_id: int) -> Iterator[bytes]:
    """A stored file's bytes, a part at a time."""
    inline = conn.execute("SELECT content FROM automation.edi_files WHERE id = %s", (file_id,)).fetchone()
    if inline is None:
        raise KeyError(f"no stored EDI file with id {file_id}")
    if inline[0] is not None:
        yield bytes(inline[0])
        return
    part = 0
    while (row := conn.execute("SELECT data FROM automation.edi_file_parts WHERE file_id = %s AND part = %s",
                               (file_id, part)).fetchone()) is not None:
        yield bytes(row[0])
        part += 1


def file_content(conn: psycopg.Connection, file_id: int) -> bytes:
    """A stored file's bytes (for the small files we send; large inbound ones are read with `iter_file_content`)."""
    return b"".join(iter_file_content(conn, file_id))


@dataclass(frozen=True)
class GroupSummary:
    interchange_control: str
    group_control: str
    functional_id: str
    set_ids: tuple[str, ...]


def groups_of(content: bytes | BinaryIO) -> list[GroupSummary]:
    """The functional groups of an X12 file (envelope numbers and set ids), for the interchange log."""
    groups = []
    interchange = ""
    set_ids: list[str] = []
    stream = io.BytesIO(content) if isinstance(content, bytes) else content
    for event in iter_events(stream, validate_sets=False):
        if isinstance(event, InterchangeHeader):
            interchange = event.control_number
        elif isinstance(event, GroupHeader):
            set_ids = []
        elif isinstance(event, GroupEnd):
            groups.append(GroupSummary(interchange, event.header.control_number, event.header.functional_id,
                                       tuple(set_ids)))
        elif hasattr(event, "set_id"):
            set_ids.append(event.set_id)
    return groups


def record_interchanges(conn: psycopg.Connection, partner: str, direction: str, file_id: int,
                        content: bytes | BinaryIO, ack_within: timedelta | None = None) -> list[GroupSummary]:
    """Log each functional group of a file. Outbound groups other than 997s wait for an acknowledgement
    (due after `ack_within`); a 997 is never acknowledged, and inbound groups are logged as received."""
    groups = groups_of(content)
    for group in groups:
        if direction == "out":
            awaiting = group.functional_id != "FA" and ack_within is not None
            state = "awaiting_ack" if awaiting else "no_ack_expected"
        else:
            state = "received"
        conn.execute(
            """INSERT INTO automation.edi_interchanges
                   (partner, direction, file_id, interchange_control, group_control, functional_id, set_ids,
                    set_count, state, ack_due_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s,
                       CASE WHEN %s::interval IS NULL THEN NULL ELSE now() + %s::interval END)
               ON CONFLICT (partner, direction, interchange_control, group_control) DO NOTHING""",
            (partner, direction, file_id, group.interchange_control, group.group_control, group.functional_id,
             list(group.set_ids), len(group.set_ids), state, ack_within if state == "awaiting_ack" else None,
             ack_within if state == "awaiting_ack" else None),
        )
    return groups


def apply_functional_ack(conn: psycopg.Connection, partner: str, ack: FunctionalAck) -> dict[str, Any] | None:
    """Record a partner's 997 against the outbound group it acknowledges; None when no such group was sent."""
    detail = {
        "status": ack.status,
        "sets_included": ack.sets_included,
        "sets_received": ack.sets_received,
        "sets_accepted": ack.sets_accepted,
        "group_codes": list(ack.group_codes),
        "sets": [{"set_id": s.set_id, "control_number": s.control_number, "status": s.status,
                  "codes": list(s.codes), "errors": len(s.segments)} for s in ack.sets],
    }  # fmt: skip
    row = conn.execute(
        """UPDATE automation.edi_interchanges
              SET state = %s, acked_at = now(), ack_detail = %s
            WHERE partner = %s AND direction = 'out' AND functional_id = %s
              AND ltrim(group_control, '0') = ltrim(%s, '0')
        RETURNING id, interchange_control, group_control, state, file_id""",
        (_AK901_STATE.get(ack.status, "rejected"), Jsonb(detail), partner, ack.functional_id,
         ack.group_control_number),
    ).fetchone()
    if row is None:
        return None
    return {"id": row[0], "interchange_control": row[1], "group_control": row[2], "state": row[3],
            "file_id": row[4], **detail}


def overdue_acks(conn: psycopg.Connection, now: datetime | None = None) -> list[dict[str, Any]]:
    """Outbound groups whose 997 is late and not yet reported."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT i.id, i.partner, f.file_name, i.interchange_control, i.group_control, i.functional_id,
                      i.set_ids, i.created_at, i.ack_due_at
                 FROM automation.edi_interchanges i LEFT JOIN automation.edi_files f ON f.id = i.file_id
                WHERE i.state = 'awaiting_ack' AND i.ack_due_at < coalesce(%s, now())
                  AND i.overdue_notified_at IS NULL
                ORDER BY i.ack_due_at""",
            (now,),
        ).fetchall()


def mark_overdue_notified(conn: psycopg.Connection, interchange_ids: Iterable[int]) -> None:
    conn.execute("UPDATE automation.edi_interchanges SET overdue_notified_at = now() WHERE id = ANY(%s)",
                 (list(interchange_ids),))


def envelope_for(partner: PartnerConfig) -> EnvelopeSettings:
    """Our envelope towards a partner, from its config (ids, qualifiers, usage indicator, separators)."""
    return EnvelopeSettings(
        sender_id=partner.our_id,
        receiver_id=partner.interchange_id,
        sender_qualifier=partner.our_qualifier,
        receiver_qualifier=partner.interchange_qualifier,
        application_sender=partner.our_group_id or partner.our_id,
        application_receiver=partner.group_id or partner.interchange_id,
        usage=partner.usage,
        ack_requested="0",
        delimiters=Delimiters(partner.element_separator, partner.component_separator, partner.segment_terminator,
                              "^", "\n"),
    )


def write_for_partner(conn: psycopg.Connection, partner: PartnerConfig, documents: Iterable[Document],
                      now: datetime | None = None) -> str:
    """One interchange for the partner with its persistent control numbers (allocated in the caller's
    transaction, so numbers and the stored file commit together)."""
    return write_interchange(documents, envelope_for(partner), PostgresControlNumbers(partner.key, conn), now)


def outbound_file_name(partner: PartnerConfig, set_id: str, reference: str) -> str:
    """A file name the partner can sort and we can trace: set, our reference, partner key."""
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in reference)
    return f"{set_id}_{partner.key}_{safe}.x12"
