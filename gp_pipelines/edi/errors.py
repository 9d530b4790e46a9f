"""Error model of the EDI toolkit: unreadable input raises, everything else is a typed issue.

Every issue code maps onto the 997 (AK304 segment syntax, AK403 element syntax, AK502 set, AK905 group) or,
for interchange problems, onto the TA1 note code (TA105): the 997 builder needs no other knowledge.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum


class X12ReadError(Exception):
    """The input cannot be read as X12 at all (no ISA, inconsistent delimiters, runaway segment)."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} (byte offset {offset})")
        self.message = message
        self.offset = offset


class Level(StrEnum):
    INTERCHANGE = "interchange"
    GROUP = "group"
    SET = "set"
    SEGMENT = "segment"
    ELEMENT = "element"


@dataclass(frozen=True)
class IssueKind:
    level: Level
    ack_code: str | None  # TA105, AK905, AK502, AK304 or AK403 depending on level
    severity: str = "error"  # "warning" never rejects anything


# One table: the code a person sees, the level it belongs to, and its 997/TA1 code.
ISSUE_KINDS: dict[str, IssueKind] = {
    # interchange (TA1 TA105 note codes)
    "ISA_NOT_FIXED_WIDTH": IssueKind(Level.INTERCHANGE, None, "warning"),
    "ISA_INVALID_VALUE": IssueKind(Level.INTERCHANGE, "014"),
    "ISA_UNKNOWN_VERSION": IssueKind(Level.INTERCHANGE, "017", "warning"),
    "IEA_MISSING": IssueKind(Level.INTERCHANGE, "023"),
    "IEA_CONTROL_MISMATCH": IssueKind(Level.INTERCHANGE, "001"),
    "IEA_CONTROL_UNPADDED": IssueKind(Level.INTERCHANGE, None, "warning"),
    "IEA_GROUP_COUNT": IssueKind(Level.INTERCHANGE, "021"),
    "SEGMENT_OUTSIDE_ENVELOPE": IssueKind(Level.INTERCHANGE, "024"),
    # functional group (AK905)
    "GE_MISSING": IssueKind(Level.GROUP, "3"),
    "GE_CONTROL_MISMATCH": IssueKind(Level.GROUP, "4"),
    "GE_SET_COUNT": IssueKind(Level.GROUP, "5"),
    "GS_INVALID_VALUE": IssueKind(Level.GROUP, "1"),
    "GS_VERSION_UNKNOWN": IssueKind(Level.GROUP, "2", "warning"),
    "SEGMENT_OUTSIDE_SET": IssueKind(Level.GROUP, "1"),
    # transaction set (AK502)
    "SET_NOT_SUPPORTED": IssueKind(Level.SET, "1", "warning"),
    "SET_WRONG_GROUP": IssueKind(Level.SET, "1"),
    "SE_MISSING": IssueKind(Level.SET, "2"),
    "SE_CONTROL_MISMATCH": IssueKind(Level.SET, "3"),
    "SE_COUNT_MISMATCH": IssueKind(Level.SET, "4"),
    "ST_CONTROL_DUPLICATE": IssueKind(Level.SET, "23"),
    # segment (AK304)
    "SEGMENT_UNRECOGNIZED": IssueKind(Level.SEGMENT, "1"),
    "SEGMENT_UNEXPECTED": IssueKind(Level.SEGMENT, "2"),
    "SEGMENT_REQUIRED_MISSING": IssueKind(Level.SEGMENT, "3"),
    "LOOP_OVER_MAX": IssueKind(Level.SEGMENT, "4"),
    "SEGMENT_OVER_MAX": IssueKind(Level.SEGMENT, "5"),
    "SEGMENT_NOT_IN_SET": IssueKind(Level.SEGMENT, "6"),
    "SEGMENT_OUT_OF_ORDER": IssueKind(Level.SEGMENT, "7"),
    # element (AK403)
    "ELEMENT_REQUIRED_MISSING": IssueKind(Level.ELEMENT, "1"),
    "ELEMENT_CONDITIONAL_MISSING": IssueKind(Level.ELEMENT, "2"),  # a P, R, C or L syntax note is broken
    "TOO_MANY_ELEMENTS": IssueKind(Level.ELEMENT, "3"),
    "ELEMENT_TOO_SHORT": IssueKind(Level.ELEMENT, "4"),
    "ELEMENT_TOO_LONG": IssueKind(Level.ELEMENT, "5"),
    "ELEMENT_INVALID_CHARACTER": IssueKind(Level.ELEMENT, "6"),
    "ELEMENT_INVALID_CODE": IssueKind(Level.ELEMENT, "7"),
    "ELEMENT_INVALID_DATE": IssueKind(Level.ELEMENT, "8"),
    "ELEMENT_INVALID_TIME": IssueKind(Level.ELEMENT, "9"),
    "ELEMENT_EXCLUSION_VIOLATED": IssueKind(Level.ELEMENT, "10"),  # an E syntax note is broken
    # a code outside an open list (the codes the platform knows): partner guides decide, so never a rejection
    "ELEMENT_CODE_UNLISTED": IssueKind(Level.ELEMENT, None, "warning"),
    # business rules, reported on the element that is wrong (AK403 7 = invalid value)
    "HL_ID_SEQUENCE": IssueKind(Level.ELEMENT, "7"),
    "HL_PARENT_UNKNOWN": IssueKind(Level.ELEMENT, "7"),
    "HL_PARENT_ZERO": IssueKind(Level.ELEMENT, None, "warning"),
    "HL_FIRST_NOT_SHIPMENT": IssueKind(Level.ELEMENT, "7"),
    "HL_CHILD_CODE": IssueKind(Level.ELEMENT, "7"),
    "HL_LEVEL_UNEXPECTED": IssueKind(Level.ELEMENT, "7"),  # level code not allowed by BSN05 under its parent
    "CTT_COUNT_MISMATCH": IssueKind(Level.ELEMENT, "7"),
    "CTT_HASH_MISMATCH": IssueKind(Level.ELEMENT, "7"),
    "TOTAL_MISMATCH": IssueKind(Level.ELEMENT, "7"),
    "TOTAL_AMOUNT_MISMATCH": IssueKind(Level.ELEMENT, None, "warning"),
}


@dataclass
class EdiIssue:
    """One finding, located by interchange/group/set control number and segment position (ST = 1)."""

    code: str
    message: str
    interchange_control: str | None = None
    group_control: str | None = None
    set_id: str | None = None
    set_control: str | None = None
    segment_id: str | None = None
    segment_position: int | None = None
    element_position: int | None = None
    byte_offset: int | None = None

    @property
    def kind(self) -> IssueKind:
        return ISSUE_KINDS[self.code]

    @property
    def severity(self) -> str:
        return self.kind.severity

    @property
    def is_error(self) -> bool:
        return self.kind.severity == "error"

    def as_dict(self) -> dict:
        data = {key: value for key, value in asdict(self).items() if value is not None}
        data["severity"] = self.severity
        data["level"] = self.kind.level.value
        if self.kind.ack_code is not None:
            data["ack_code"] = self.kind.ack_code
        return data

    def __str__(self) -> str:
        where = []
        if self.interchange_control is not None:
            where.append(f"ISA {self.interchange_control}")
        if self.group_control is not None:
            where.append(f"GS {self.group_control}")
        if self.set_control is not None:
            where.append(f"ST {self.set_id or ''} {self.set_control}".replace("  ", " "))
        if self.segment_position is not None:
            where.append(f"segment {self.segment_position} {self.segment_id or ''}".rstrip())
        location = ", ".join(where)
        return f"{self.severity} {self.code}" + (f" [{location}]" if location else "") + f": {self.message}"
