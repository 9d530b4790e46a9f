"""Envelope walker: segments in, envelope events out, with ISA/GS/ST checks and per-set spec validation.

`iter_events` streams: it holds one transaction set at a time. Events, in file order:
`InterchangeHeader`, `GroupHeader`, `TransactionSet`, `GroupEnd`, `InterchangeEnd`, plus a bare `EdiIssue`
for segments found outside any interchange.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from gp_pipelines.edi.errors import EdiIssue
from gp_pipelines.edi.reader import ISA_FIELD_WIDTHS, Delimiters, Segment, iter_segments
from gp_pipelines.edi.specs import FUNCTIONAL_IDS, KNOWN_ISA_VERSIONS, SET_SPECS
from gp_pipelines.edi.structure import valid_date, valid_time, validate_set


@dataclass
class InterchangeHeader:
    control_number: str
    sender_qualifier: str
    sender_id: str
    receiver_qualifier: str
    receiver_id: str
    date: str
    time: str
    version: str
    usage: str
    ack_requested: str
    delimiters: Delimiters | None
    byte_offset: int = -1
    issues: list[EdiIssue] = field(default_factory=list)


@dataclass
class GroupHeader:
    functional_id: str
    sender: str
    receiver: str
    date: str
    time: str
    control_number: str
    agency: str
    version: str
    interchange: InterchangeHeader | None = None
    issues: list[EdiIssue] = field(default_factory=list)


@dataclass
class TransactionSet:
    set_id: str
    control_number: str
    segments: list[Segment]
    group: GroupHeader | None = None
    issues: list[EdiIssue] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return not any(issue.is_error for issue in self.issues)


@dataclass
class GroupEnd:
    header: GroupHeader
    declared_set_count: str | None  # None when GE is missing
    set_count: int
    accepted_count: int
    issues: list[EdiIssue] = field(default_factory=list)


@dataclass
class InterchangeEnd:
    header: InterchangeHeader
    declared_group_count: str | None
    group_count: int
    issues: list[EdiIssue] = field(default_factory=list)


Event = InterchangeHeader | GroupHeader | TransactionSet | GroupEnd | InterchangeEnd | EdiIssue


_ENVELOPE_TAGS = frozenset(["ISA", "GS", "ST", "SE", "GE", "IEA"])


def _same_number(left: str, right: str) -> bool:
    return left.isascii() and right.isascii() and left.isdigit() and right.isdigit() and int(left) == int(right)


def _version_of(group: GroupHeader | None) -> str:
    return group.version if group else "004010"


class EnvelopeWalker:
    """State machine over segments; see the module docstring for the events it yields."""

    def __init__(self, validate_sets: bool = True) -> None:
        self.validate_sets = validate_sets
        self.interchange: InterchangeHeader | None = None
        self.group: GroupHeader | None = None
        self.set_segments: list[Segment] | None = None
        self.group_count = 0
        self.set_count = 0
        self.accepted_count = 0
        self.set_controls: set[str] = set()

    # -- issue helpers -------------------------------------------------------------------------------------
    def _issue(self, code: str, message: str, segment: Segment | None = None, **where) -> EdiIssue:
        return EdiIssue(
            code,
            message,
            interchange_control=self.interchange.control_number if self.interchange else None,
            group_control=self.group.control_number if self.group else None,
            segment_id=segment.tag if segment is not None else None,
            byte_offset=segment.offset if segment is not None and segment.offset >= 0 else None,
            **where,
        )

    # -- walking -------------------------------------------------------------------------------------------
    def walk(self, segments: Iterable[Segment]) -> Iterator[Event]:
        collect = None  # append of the set being read; only envelope segments change it
        for segment in segments:
            tag = segment.tag
            if tag not in _ENVELOPE_TAGS and collect is not None:
                collect(segment)
                continue
            if tag == "ISA":
                yield from self._close_interchange(None)
                yield self._open_interchange(segment)
            elif tag == "GS":
                yield from self._on_gs(segment)
            elif tag == "ST":
                yield from self._on_st(segment)
            elif tag == "SE":
                yield from self._on_se(segment)
            elif tag == "GE":
                yield from self._close_group(segment)
            elif tag == "IEA":
                yield from self._close_interchange(segment)
            else:
                yield from self._stray(segment)
            collect = self.set_segments.append if self.set_segments is not None else None
        yield from self._close_interchange(None)

    def _stray(self, segment: Segment) -> Iterator[Event]:
        if self.group is not None:
            self.group.issues.append(self._issue("SEGMENT_OUTSIDE_SET", f"{segment.tag} outside ST/SE", segment))
        elif self.interchange is not None:
            self.interchange.issues.append(
                self._issue("SEGMENT_OUTSIDE_ENVELOPE", f"{segment.tag} outside GS/GE", segment)
            )
        else:
            yield self._issue("SEGMENT_OUTSIDE_ENVELOPE", f"{segment.tag} outside ISA/IEA", segment)

    # -- interchange ---------------------------------------------------------------------------------------
    def _open_interchange(self, isa: Segment) -> InterchangeHeader:
        fields = [isa[i].strip() for i in range(1, 17)]
        header = InterchangeHeader(
            control_number=fields[12],
            sender_qualifier=fields[4],
            sender_id=fields[5],
            receiver_qualifier=fields[6],
            receiver_id=fields[7],
            date=fields[8],
            time=fields[9],
            version=fields[11],
            usage=fields[14],
            ack_requested=fields[13],
            delimiters=isa.delimiters,
            byte_offset=isa.offset,
        )
        self.interchange = header
        self.group_count = 0
        widths = [len(isa[i]) for i in range(1, 17)]
        if widths != list(ISA_FIELD_WIDTHS):
            header.issues.append(
                self._issue(
                    "ISA_NOT_FIXED_WIDTH",
                    f"ISA is not fixed-width (field widths {widths}, expected "
                    f"{list(ISA_FIELD_WIDTHS)}); delimiters were read by counting separators",
                    isa,
                )
            )
        checks = [
            (fields[14] in ("P", "T", "I"), f"ISA15 usage indicator '{fields[14]}' is not P, T or I"),
            (valid_date(fields[8], old_version=True) and len(fields[8]) == 6, f"ISA09 '{fields[8]}' is not YYMMDD"),
            (valid_time(fields[9]) and len(fields[9]) == 4, f"ISA10 '{fields[9]}' is not HHMM"),
            (fields[12].isascii() and fields[12].isdigit(), f"ISA13 control number '{fields[12]}' is not numeric"),
        ]
        for ok, message in checks:
            if not ok:
                header.issues.append(self._issue("ISA_INVALID_VALUE", message, isa))
        if fields[11] not in KNOWN_ISA_VERSIONS:
            header.issues.append(self._issue("ISA_UNKNOWN_VERSION", f"ISA12 version '{fields[11]}' is unknown", isa))
        return header

    def _close_interchange(self, iea: Segment | None) -> Iterator[Event]:
        if self.interchange is None:
            if iea is not None:
                yield from self._stray(iea)
            return
        yield from self._close_group(None, missing_by=iea)
        header = self.interchange
        issues: list[EdiIssue] = []
        if iea is None:
            issues.append(self._issue("IEA_MISSING", f"interchange {header.control_number} has no IEA trailer"))
        else:
            if iea[2] != header.control_number:
                if _same_number(iea[2], header.control_number):
                    issues.append(
                        self._issue(
                            "IEA_CONTROL_UNPADDED",
                            f"IEA02 {iea[2]} matches ISA13 {header.control_number} only numerically (not zero-padded)",
                            iea,
                        )
                    )
                else:
                    issues.append(
                        self._issue(
                            "IEA_CONTROL_MISMATCH", f"IEA02 {iea[2]} does not match ISA13 {header.control_number}", iea
                        )
                    )
            if not _same_number(iea[1], str(self.group_count)):
                issues.append(
                    self._issue(
                        "IEA_GROUP_COUNT", f"IEA01 says {iea[1]} groups but the interchange has {self.group_count}", iea
                    )
                )
        yield InterchangeEnd(header, iea[1] if iea else None, self.group_count, header.issues + issues)
        self.interchange = None

    # -- group ---------------------------------------------------------------------------------------------
    def _on_gs(self, gs: Segment) -> Iterator[Event]:
        if self.interchange is None:
            yield from self._stray(gs)
            return
        yield from self._close_group(None, missing_by=gs)
        header = GroupHeader(gs[1], gs[2], gs[3], gs[4], gs[5], gs[6], gs[7], gs[8], self.interchange)
        self.group = header
        self.group_count += 1
        self.set_count = self.accepted_count = 0
        self.set_controls = set()
        old_version = header.version[:3] < "004"
        checks = [
            (len(gs.elements) - 1 >= 8, f"GS has {len(gs.elements) - 1} elements, expected 8"),
            (
                valid_date(header.date, old_version) and (old_version or len(header.date) == 8),
                f"GS04 date '{header.date}' is not {'YYMMDD' if old_version else 'CCYYMMDD'}",
            ),
            (valid_time(header.time), f"GS05 time '{header.time}' is not HHMM[SS]"),
            (
                header.control_number.isascii() and header.control_number.isdigit(),
                f"GS06 control number '{header.control_number}' is not numeric",
            ),
            (header.agency in ("X", "T"), f"GS07 agency '{header.agency}' is not X (or T)"),
        ]
        for ok, message in checks:
            if not ok:
                header.issues.append(self._issue("GS_INVALID_VALUE", message, gs))
        if not (len(header.version) >= 6 and header.version[:6].isascii() and header.version[:6].isdigit()):
            header.issues.append(self._issue("GS_VERSION_UNKNOWN", f"GS08 version '{header.version}' is unknown", gs))
        yield header

    def _close_group(self, ge: Segment | None, missing_by: Segment | None = None) -> Iterator[Event]:
        if self.group is None:
            if ge is not None:
                yield from self._stray(ge)
            return
        yield from self._close_set(None, missing_by=ge or missing_by)
        header = self.group
        issues = list(header.issues)
        if ge is None:
            issues.append(self._issue("GE_MISSING", f"group {header.control_number} has no GE trailer", missing_by))
        else:
            if ge[2] != header.control_number and not _same_number(ge[2], header.control_number):
                issues.append(
                    self._issue("GE_CONTROL_MISMATCH", f"GE02 {ge[2]} does not match GS06 {header.control_number}", ge)
                )
            if not _same_number(ge[1], str(self.set_count)):
                issues.append(
                    self._issue(
                        "GE_SET_COUNT", f"GE01 says {ge[1]} transaction sets but the group has {self.set_count}", ge
                    )
                )
        yield GroupEnd(header, ge[1] if ge else None, self.set_count, self.accepted_count, issues)
        self.group = None

    # -- transaction set -----------------------------------------------------------------------------------
    def _on_st(self, st: Segment) -> Iterator[Event]:
        if self.group is None:
            yield from self._stray(st)
            return
        yield from self._close_set(None, missing_by=st)
        self.set_segments = [st]

    def _on_se(self, se: Segment) -> Iterator[Event]:
        if self.set_segments is None:
            yield from self._stray(se)
            return
        yield from self._close_set(se)

    def _close_set(self, se: Segment | None, missing_by: Segment | None = None) -> Iterator[Event]:
        if self.set_segments is None:
            return
        segments = self.set_segments
        self.set_segments = None
        st = segments[0]
        set_id, control = st[1], st[2]
        issues: list[EdiIssue] = []
        if se is None:
            issues.append(EdiIssue("SE_MISSING", f"transaction set {set_id} {control} has no SE trailer"))
        else:
            segments.append(se)
            if se[2] != control:
                issues.append(
                    EdiIssue(
                        "SE_CONTROL_MISMATCH",
                        f"SE02 {se[2]} does not match ST02 {control}",
                        segment_id="SE",
                        segment_position=len(segments),
                    )
                )
            if not _same_number(se[1], str(len(segments))):
                issues.append(
                    EdiIssue(
                        "SE_COUNT_MISMATCH",
                        f"SE01 says {se[1]} segments but the set has {len(segments)} (ST to SE inclusive)",
                        segment_id="SE",
                        segment_position=len(segments),
                    )
                )
        group = self.group
        expected_group = FUNCTIONAL_IDS.get(set_id)
        if expected_group and group.functional_id != expected_group:
            issues.append(
                EdiIssue(
                    "SET_WRONG_GROUP",
                    f"a {set_id} belongs in a {expected_group} group, not in GS01 '{group.functional_id}'",
                    segment_id="ST",
                    segment_position=1,
                )
            )
        if control in self.set_controls:
            issues.append(
                EdiIssue(
                    "ST_CONTROL_DUPLICATE",
                    f"ST02 {control} is used twice in group {group.control_number}",
                    segment_id="ST",
                    segment_position=1,
                )
            )
        self.set_controls.add(control)
        spec = SET_SPECS.get(set_id)
        if spec is None:
            issues.append(
                EdiIssue(
                    "SET_NOT_SUPPORTED",
                    f"no spec for transaction set {set_id}: structure not checked",
                    segment_id="ST",
                    segment_position=1,
                )
            )
        elif self.validate_sets:
            found = validate_set(spec, segments, _version_of(group))
            if se is None:  # already reported as SE_MISSING
                found = [i for i in found if not (i.code == "SEGMENT_REQUIRED_MISSING" and i.segment_id == "SE")]
            issues.extend(found)
        for issue in issues:
            issue.interchange_control = self.interchange.control_number if self.interchange else None
            issue.group_control = group.control_number
            issue.set_id, issue.set_control = set_id, control
            if issue.segment_position is not None and issue.byte_offset is None:
                position = issue.segment_position - 1
                if 0 <= position < len(segments) and segments[position].offset >= 0:
                    issue.byte_offset = segments[position].offset
        transaction = TransactionSet(set_id, control, segments, group, issues)
        self.set_count += 1
        self.accepted_count += transaction.accepted
        yield transaction


def iter_events(stream: BinaryIO, validate_sets: bool = True) -> Iterator[Event]:
    """Read and validate a binary stream, one event at a time (raises `X12ReadError` for non-X12 input)."""
    return EnvelopeWalker(validate_sets).walk(iter_segments(stream))


def iter_event_issues(event: Event) -> list[EdiIssue]:
    """The issues an event carries (headers carry none: their issues travel with the matching end event)."""
    if isinstance(event, EdiIssue):
        return [event]
    if isinstance(event, TransactionSet | GroupEnd | InterchangeEnd):
        return event.issues
    return []
