"""The structure of a file (interchanges -> groups -> transaction sets) with its issues, as one dict."""

from __future__ import annotations

from typing import Any, BinaryIO

from gp_pipelines.edi.errors import EdiIssue, X12ReadError
from gp_pipelines.edi.mapping import document_from_segments, summarize
from gp_pipelines.edi.validator import (
    GroupEnd,
    GroupHeader,
    InterchangeEnd,
    InterchangeHeader,
    TransactionSet,
    iter_event_issues,
    iter_events,
)


def parse_report(stream: BinaryIO, summaries: bool = True) -> dict[str, Any]:
    """`{"interchanges": [...], "errors": [...], "warnings": [...], "valid": bool}`; raises X12ReadError."""
    interchanges: list[dict] = []
    issues: list[EdiIssue] = []
    interchange: dict | None = None
    group: dict | None = None
    for event in iter_events(stream):
        issues.extend(iter_event_issues(event))
        if isinstance(event, InterchangeHeader):
            delimiters = event.delimiters
            interchange = {
                "control_number": event.control_number,
                "sender": f"{event.sender_qualifier}:{event.sender_id}",
                "receiver": f"{event.receiver_qualifier}:{event.receiver_id}",
                "version": event.version, "usage": event.usage, "date": event.date, "time": event.time,
                "delimiters": {"element": delimiters.element, "component": delimiters.component,
                               "segment": delimiters.segment, "repetition": delimiters.repetition},
                "groups": [],
            }  # fmt: skip
            interchanges.append(interchange)
        elif isinstance(event, GroupHeader) and interchange is not None:
            group = {
                "functional_id": event.functional_id,
                "control_number": event.control_number,
                "sender": event.sender,
                "receiver": event.receiver,
                "version": event.version,
                "transactions": [],
            }
            interchange["groups"].append(group)
        elif isinstance(event, TransactionSet) and group is not None:
            entry = {
                "set_id": event.set_id,
                "control_number": event.control_number,
                "segment_count": len(event.segments),
                "accepted": event.accepted,
            }
            if summaries:
                entry["summary"] = _safe_summary(event)
            group["transactions"].append(entry)
        elif isinstance(event, GroupEnd):
            group = None
        elif isinstance(event, InterchangeEnd):
            interchange = None
    if not interchanges and not issues:
        raise X12ReadError("no X12 interchange found (empty input)", 0)
    issues.sort(key=lambda issue: issue.byte_offset if issue.byte_offset is not None else -1)
    errors = [issue.as_dict() for issue in issues if issue.is_error]
    warnings = [issue.as_dict() for issue in issues if not issue.is_error]
    return {"interchanges": interchanges, "errors": errors, "warnings": warnings, "valid": not errors}


def _safe_summary(transaction: TransactionSet) -> str:
    # A summary is a courtesy: a set too broken to map still gets listed with its errors.
    try:
        return summarize(document_from_segments(transaction.set_id, transaction.segments))
    except (ValueError, IndexError, ArithmeticError):
        return ""


def format_report(report: dict[str, Any]) -> str:
    lines = []
    for interchange in report["interchanges"]:
        lines.append(
            f"interchange {interchange['control_number']} {interchange['sender']} -> "
            f"{interchange['receiver']} version {interchange['version']} usage {interchange['usage']}"
        )
        for group in interchange["groups"]:
            lines.append(
                f"  group {group['functional_id']} {group['control_number']} version {group['version']}: "
                f"{len(group['transactions'])} sets"
            )
            for entry in group["transactions"]:
                summary = f" - {entry['summary']}" if entry.get("summary") else ""
                lines.append(
                    f"    {entry['set_id']} {entry['control_number']} ({entry['segment_count']} segments){summary}"
                )
    for key in ("errors", "warnings"):
        lines.append(f"{len(report[key])} {key}")
        for issue in report[key]:
            where = ", ".join(
                f"{name} {issue[field]}"
                for name, field in (
                    ("ISA", "interchange_control"),
                    ("GS", "group_control"),
                    ("ST", "set_control"),
                    ("segment", "segment_position"),
                    ("element", "element_position"),
                    ("offset", "byte_offset"),
                )
                if field in issue
            )
            lines.append(f"  {issue['code']}: {issue['message']}" + (f" [{where}]" if where else ""))
    return "\n".join(lines)
