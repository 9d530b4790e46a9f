"""997 Functional Acknowledgment."""

from __future__ import annotations

from gp_pipelines.edi.mapping.common import Row, decimal_or_zero
from gp_pipelines.edi.models import ElementError, FunctionalAck, SegmentError, SetAck
from gp_pipelines.edi.reader import Segment


def read_functional_ack(segments: list[Segment]) -> FunctionalAck:
    ack = FunctionalAck("", "", "", 0, 0, 0)
    current: SetAck | None = None
    for segment in segments:
        tag = segment.tag
        if tag == "AK1":
            ack.functional_id, ack.group_control_number = segment[1], segment[2]
        elif tag == "AK2":
            current = SetAck(segment[1], segment[2], "")
            ack.sets.append(current)
        elif tag == "AK3" and current is not None:
            current.segments.append(SegmentError(segment[1], int(decimal_or_zero(segment[2])), segment[4], segment[3]))
        elif tag == "AK4" and current is not None and current.segments:
            current.segments[-1].elements.append(ElementError(segment[1], segment[3], segment[2], segment[4]))
        elif tag == "AK5" and current is not None:
            current.status, current.codes = segment[1], [value for value in segment.elements[2:7] if value]
        elif tag == "AK9":
            ack.status = segment[1]
            ack.sets_included, ack.sets_received, ack.sets_accepted = (
                int(decimal_or_zero(segment[i])) for i in (2, 3, 4)
            )
            ack.group_codes = [value for value in segment.elements[5:10] if value]
    return ack


def write_functional_ack(ack: FunctionalAck) -> list[Row]:
    rows: list[Row] = [["AK1", ack.functional_id, ack.group_control_number]]
    for set_ack in ack.sets:
        rows.append(["AK2", set_ack.set_id, set_ack.control_number])
        for error in set_ack.segments:
            rows.append(["AK3", error.segment_id, str(error.position), error.loop_id, error.code])
            rows.extend(
                ["AK4", element.position, element.reference, element.code, element.bad_value]
                for element in error.elements[:99]
            )
        rows.append(["AK5", set_ack.status, *set_ack.codes[:5]])
    rows.append(
        [
            "AK9",
            ack.status,
            str(ack.sets_included),
            str(ack.sets_received),
            str(ack.sets_accepted),
            *ack.group_codes[:5],
        ]
    )
    return rows
