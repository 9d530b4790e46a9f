"""One engine validates every transaction set against its `SetSpec`: structure, elements, HL tree, totals."""

from __future__ import annotations

import re
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

from gp_pipelines.edi.errors import EdiIssue
from gp_pipelines.edi.reader import Segment
from gp_pipelines.edi.specs import (
    HL_CHILDREN,
    HL_STRUCTURES,
    SEGMENT_SPECS,
    ElementRule,
    LoopNode,
    SegmentNode,
    SegmentSpec,
    SetSpec,
    SyntaxNote,
)

_DECIMAL = re.compile(r"-?(\d+\.?\d*|\.\d+)\Z", re.ASCII)
_INTEGER = re.compile(r"-?\d+\Z", re.ASCII)
_TAG = re.compile(r"[A-Z][A-Z0-9]{1,2}\Z")


class _LoopState:
    """One iteration of a loop being matched: which child was matched last and how often each was used."""

    __slots__ = ("counts", "node", "position")

    def __init__(self, node: LoopNode, position: int = -1) -> None:
        self.node = node
        self.position = position
        self.counts: dict[int, int] = {}


def _child_tag(child: SegmentNode | LoopNode) -> str:
    return child.tag if isinstance(child, SegmentNode) else child.trigger


class StructureValidator:
    """Walks the segments of one set through the spec's loop tree, collecting issues."""

    def __init__(self, spec: SetSpec) -> None:
        self.spec = spec
        self.issues: list[EdiIssue] = []
        self.stack = [_LoopState(spec.root)]

    def _issue(self, code: str, message: str, position: int, tag: str, element: int | None = None) -> None:
        self.issues.append(EdiIssue(code, message, segment_id=tag, segment_position=position, element_position=element))

    def _find(self, state: _LoopState, tag: str) -> int:
        indices = state.node.positions.get(tag)
        if indices is None:
            return -1
        # Inside a loop the trigger is not matched again: a repeated trigger starts the next iteration.
        start = max(state.position, 0 if state is self.stack[0] else 1)
        for index in indices:
            if index >= start:
                return index
        return -1

    def _check_skipped(self, state: _LoopState, up_to: int, position: int, tag: str) -> None:
        start = max(state.position, 0)
        for index in state.node.required:
            if start <= index < up_to and state.node.children[index].min_use > state.counts.get(index, 0):
                child = state.node.children[index]
                kind = "loop" if isinstance(child, LoopNode) else "segment"
                self._issue(
                    "SEGMENT_REQUIRED_MISSING",
                    f"mandatory {kind} {state.node.child_tags[index]} missing before {tag}",
                    position,
                    state.node.child_tags[index],
                )

    def feed(self, segment_tag: str, position: int) -> None:
        if segment_tag not in self.spec.tags and not _TAG.match(segment_tag):
            self._issue("SEGMENT_UNRECOGNIZED", f"'{segment_tag}' is not a segment identifier", position, segment_tag)
            return
        for depth in range(len(self.stack) - 1, -1, -1):
            index = self._find(self.stack[depth], segment_tag)
            if index >= 0:
                break
        else:
            self._report_misplaced(segment_tag, position)
            return
        while len(self.stack) - 1 > depth:
            closed = self.stack.pop()
            self._check_skipped(closed, len(closed.node.children), position, segment_tag)
        state = self.stack[depth]
        child = state.node.children[index]
        if index != state.position:
            self._check_skipped(state, index, position, segment_tag)
            state.position = index
        used = state.counts.get(index, 0) + 1
        state.counts[index] = used
        if used > child.max_use:
            if isinstance(child, LoopNode):
                self._issue(
                    "LOOP_OVER_MAX", f"loop {child.name} repeats more than {child.max_use} times", position, segment_tag
                )
            else:
                self._issue(
                    "SEGMENT_OVER_MAX",
                    f"{segment_tag} used more than {child.max_use} times here",
                    position,
                    segment_tag,
                )
        if isinstance(child, LoopNode):
            loop = _LoopState(child, 0)
            loop.counts[0] = 1
            self.stack.append(loop)

    def _report_misplaced(self, tag: str, position: int) -> None:
        if tag not in self.spec.tags:
            self._issue("SEGMENT_NOT_IN_SET", f"{tag} is not part of a {self.spec.set_id}", position, tag)
            return
        for state in reversed(self.stack):
            if any(_child_tag(child) == tag for child in state.node.children[: max(state.position, 0)]):
                self._issue(
                    "SEGMENT_OUT_OF_ORDER",
                    f"{tag} comes too late: it belongs before {_child_tag(state.node.children[state.position])}",
                    position,
                    tag,
                )
                return
        self._issue(
            "SEGMENT_UNEXPECTED", f"{tag} is not expected at this point of the {self.spec.set_id}", position, tag
        )

    def finish(self, position: int) -> None:
        while self.stack:
            closed = self.stack.pop()
            self._check_skipped(closed, len(closed.node.children), position, "SE")


@lru_cache(maxsize=4096)
def valid_date(value: str, old_version: bool = False) -> bool:
    """CCYYMMDD (and YYMMDD in 003xxx and older versions)."""
    if not (value.isascii() and value.isdigit()):
        return False
    try:
        if len(value) == 8:
            date(int(value[:4]), int(value[4:6]), int(value[6:]))
            return True
        if len(value) == 6 and old_version:
            date(2000 + int(value[:2]), int(value[2:4]), int(value[4:]))
            return True
    except ValueError:
        return False
    return False


def valid_time(value: str) -> bool:
    return (
        value.isascii()
        and value.isdigit()
        and len(value) in (4, 6, 7, 8)
        and int(value[:2]) < 24
        and int(value[2:4]) < 60
        and (len(value) < 6 or int(value[4:6]) < 60)
    )


def _significant_length(rule: ElementRule, value: str) -> int:
    if rule.data_type == "R" or rule.data_type[0] == "N":
        return len(value) - (value[0] == "-") - ("." in value)
    return len(value)


def _number_fits(value: str, data_type: str, low: int, high: int) -> bool:
    """Slow path of the numeric types: signs, decimal points and lengths without them."""
    pattern = _DECIMAL if data_type == "R" else _INTEGER
    if not pattern.match(value):
        return False
    length = len(value) - (value[0] == "-") - ("." in value)
    return low <= length <= high


# -- compiled element checks ----------------------------------------------------------------------------------
# Most segments are clean, so each segment spec is compiled once into a Python function that only answers "is
# this segment clean?" with inlined type, length, code-list and syntax-note tests; the detailed (slower) check
# below runs only for the segments that are not.
def _value_test(rule: ElementRule, name: str, constants: dict) -> str:
    low, high, data_type = rule.min_length, rule.max_length, rule.data_type
    if rule.codes is not None:
        key = f"C{len(constants)}"
        constants[key] = rule.codes
        return f"{name} in {key} and {low} <= len({name}) <= {high}"
    if data_type == "R" or data_type[0] == "N":
        # Fast path for plain unsigned integers; anything else (signs, points) goes through the regex.
        digits = f"({name}.isdigit() and {name}.isascii() and {low} <= len({name}) <= {high})"
        return f"({digits} or _number_fits({name}, {data_type!r}, {low}, {high}))"
    if data_type == "DT":
        return f"_valid_date({name}, old)"
    if data_type == "TM":
        return f"_valid_time({name})"
    return f"{low} <= len({name}) <= {high}"


def compile_segment(spec: SegmentSpec):
    """A function `(elements, old_version) -> bool`: True when the segment breaks no rule of `spec`.

    Syntax notes are those of 004010: for older versions (`old_version`) they are not checked."""
    constants: dict = {}
    count = spec.max_elements
    lines = ["def clean(e, old):", "    n = len(e)", f"    if n > {count + 1}: return False"]
    noted = {position for note in spec.notes for position in note.positions}
    for rule in spec.elements:
        i = rule.position
        name = f"v{i}"
        test = _value_test(rule, name, constants)
        if rule.required:
            lines.append(f"    {name} = e[{i}] if n > {i} else ''")
            lines.append(f"    if not {name} or not ({test}): return False")
        elif i in noted:
            lines.append(f"    {name} = e[{i}] if n > {i} else ''")
            lines.append(f"    if {name} and not ({test}): return False")
        else:
            lines.append(f"    if n > {i}:")
            lines.append(f"        {name} = e[{i}]")
            lines.append(f"        if {name} and not ({test}): return False")
    if spec.notes:
        lines.append("    if old: return True")
    for note in spec.notes:
        present = [f"bool(v{p})" for p in note.positions]
        if note.kind == "P":
            test = f"len({{{', '.join(present)}}}) == 1"
        elif note.kind == "R":
            test = " or ".join(present)
        elif note.kind == "C":
            test = f"not {present[0]} or ({' and '.join(present[1:])})"
        elif note.kind == "L":
            test = f"not {present[0]} or ({' or '.join(present[1:])})"
        else:
            test = f"({' + '.join(present)}) <= 1"
        lines.append(f"    if not ({test}): return False")
    lines.append("    return True")
    namespace = {"_valid_date": valid_date, "_valid_time": valid_time, "_number_fits": _number_fits, **constants}
    exec("\n".join(lines), namespace)
    return namespace["clean"]


CLEAN_CHECKS = {tag: compile_segment(spec) for tag, spec in SEGMENT_SPECS.items()}


def check_elements(segment: Segment, position: int, old_version: bool) -> list[EdiIssue]:
    """Element rules of one segment (count, mandatory, type, length, code list, syntax notes)."""
    spec = SEGMENT_SPECS.get(segment.tag)
    if spec is None:
        return []
    issues = []
    elements = segment.elements
    count = len(elements)
    tag = segment.tag

    def issue(code: str, element: int, text: str) -> None:
        issues.append(
            EdiIssue(
                code,
                f"{tag}{element:02d} {text}",
                segment_id=tag,
                segment_position=position,
                element_position=element,
            )
        )

    if count - 1 > spec.max_elements:
        issue("TOO_MANY_ELEMENTS", spec.max_elements + 1,
              f"and later: {tag} has {count - 1} elements, the standard defines {spec.max_elements}")  # fmt: skip
    present = {i for i in range(1, min(count, spec.max_elements + 1)) if elements[i]}
    for rule in spec.elements:
        value = elements[rule.position] if rule.position < count else ""
        problem = _element_problem(rule, value, old_version) if value or rule.required else None
        if problem:
            issue(problem[0], rule.position, problem[1])
    for note in () if old_version else spec.notes:
        if note.violated(present):
            _note_issue(note, present, issue)
    return issues


def _note_issue(note: SyntaxNote, present: set[int], issue) -> None:
    names = ", ".join(f"{p:02d}" for p in note.positions)
    if note.kind == "E":
        second = [p for p in note.positions if p in present][1]
        issue("ELEMENT_EXCLUSION_VIOLATED", second, f"may not be used together with the others of {names} ({note})")
        return
    if note.kind == "R":
        missing, text = note.positions[0], f"or one of elements {names} is required ({note})"
    elif note.kind == "P":
        missing = next(p for p in note.positions if p not in present)
        text = f"is required: elements {names} are used together or not at all ({note})"
    elif note.kind == "C":
        missing = next(p for p in note.positions[1:] if p not in present)
        text = f"is required when element {note.positions[0]:02d} is used ({note})"
    else:  # L
        missing = note.positions[1]
        text = f"or another of {names[4:]} is required when element {note.positions[0]:02d} is used ({note})"
    issue("ELEMENT_CONDITIONAL_MISSING", missing, text)


def _element_problem(rule: ElementRule, value: str, old_version: bool) -> tuple[str, str] | None:
    if value == "":
        return ("ELEMENT_REQUIRED_MISSING", "is mandatory but empty")
    data_type = rule.data_type
    if data_type == "R" and not _DECIMAL.match(value):
        return ("ELEMENT_INVALID_CHARACTER", f"'{value}' is not a decimal number")
    if data_type[0] == "N" and not _INTEGER.match(value):
        return ("ELEMENT_INVALID_CHARACTER", f"'{value}' is not a whole number")
    if data_type == "DT":
        if valid_date(value, old_version):
            return None
        return ("ELEMENT_INVALID_DATE", f"'{value}' is not a valid date ({'YYMMDD' if old_version else 'CCYYMMDD'})")
    if data_type == "TM":
        return None if valid_time(value) else ("ELEMENT_INVALID_TIME", f"'{value}' is not a valid time (HHMM[SS])")
    unlisted = rule.codes is not None and value not in rule.codes
    if unlisted and rule.closed:
        return ("ELEMENT_INVALID_CODE", f"'{value}' is not one of {', '.join(sorted(rule.codes))}")
    length = _significant_length(rule, value)
    if length < rule.min_length:
        return ("ELEMENT_TOO_SHORT", f"'{value}' is shorter than {rule.min_length}")
    if length > rule.max_length:
        return ("ELEMENT_TOO_LONG", f"'{value}' is longer than {rule.max_length}")
    if unlisted:
        return ("ELEMENT_CODE_UNLISTED", f"'{value}' is not among the codes known for this element")
    return None


def _number(value: str) -> float | None:
    return float(value) if _DECIMAL.match(value) else None


def _check_hierarchy(segments: list[Segment]) -> list[EdiIssue]:
    """856 HL rules: ids 1, 2, 3...; parents seen before; first HL is the shipment; HL04 agrees with children;
    each level sits under a level that the structure named in BSN05 allows (`HL_STRUCTURES`)."""
    issues = []
    levels: dict[str, str] = {}
    hl_positions = [(position, segment) for position, segment in enumerate(segments, start=1) if segment.tag == "HL"]
    parents_with_children = {segment[2] for _, segment in hl_positions if segment[2]}
    structure_code = next((segment[5] for segment in segments[:3] if segment.tag == "BSN"), "")
    children_allowed = HL_CHILDREN.get(structure_code)
    for ordinal, (position, hl) in enumerate(hl_positions, start=1):

        def issue(code: str, message: str, element: int, _pos: int = position) -> None:
            issues.append(EdiIssue(code, message, segment_id="HL", segment_position=_pos, element_position=element))

        hl_id, parent, level, child_code = hl[1], hl[2], hl[3], hl[4]
        if hl_id != str(ordinal):
            issue("HL_ID_SEQUENCE", f"HL01 is '{hl_id}', expected {ordinal} (ids count 1, 2, 3 ...)", 1)
        if ordinal == 1:
            if parent == "0":
                issue("HL_PARENT_ZERO", "first HL has parent '0' instead of an empty HL02", 2)
            elif parent:
                issue("HL_PARENT_UNKNOWN", f"first HL has a parent ('{parent}'); it must be the top level", 2)
            if level != "S":
                issue("HL_FIRST_NOT_SHIPMENT", f"first HL has level '{level}', expected S (shipment)", 3)
        elif not parent or parent not in levels:
            issue("HL_PARENT_UNKNOWN", f"HL {hl_id} refers to parent '{parent}', which does not come before it", 2)
        elif children_allowed is not None:
            parent_level = levels[parent]
            allowed = children_allowed.get(parent_level, frozenset())
            if level not in allowed:
                expected = ", ".join(sorted(allowed)) or "nothing"
                issue(
                    "HL_LEVEL_UNEXPECTED",
                    f"HL {hl_id} is level '{level}' under a '{parent_level}', but BSN05 {structure_code} "
                    f"({HL_STRUCTURES[structure_code]}) allows {expected} there",
                    3,
                )
        if child_code in ("0", "1") and (child_code == "1") != (hl_id in parents_with_children):
            expected = "1" if hl_id in parents_with_children else "0"
            issue("HL_CHILD_CODE", f"HL {hl_id} has HL04 '{child_code}' but should be {expected}", 4)
        levels.setdefault(hl_id, level)
    return issues


def _check_totals(spec: SetSpec, segments: list[Segment]) -> list[EdiIssue]:
    issues = []
    ctt_position = next((i for i, s in enumerate(segments, start=1) if s.tag == "CTT"), None)
    if ctt_position is not None and spec.ctt_counts:
        ctt = segments[ctt_position - 1]
        counted = sum(1 for segment in segments if segment.tag == spec.ctt_counts)
        declared = _number(ctt[1])
        if declared is not None and declared != counted:
            issues.append(
                EdiIssue(
                    "CTT_COUNT_MISMATCH",
                    f"CTT01 says {ctt[1]} but the set has {counted} {spec.ctt_counts} segments",
                    segment_id="CTT",
                    segment_position=ctt_position,
                    element_position=1,
                )
            )
        declared_hash = _number(ctt[2])
        if declared_hash is not None and spec.ctt_hash_sources:
            sums = [_sum(segments, tag, position) for tag, position in spec.ctt_hash_sources]
            if not any(abs(total - declared_hash) < 1e-6 for total in sums):
                sources = " or ".join(f"{tag}{position:02d}" for tag, position in spec.ctt_hash_sources)
                issues.append(
                    EdiIssue(
                        "CTT_HASH_MISMATCH",
                        f"CTT02 hash total {ctt[2]} does not equal the sum of "
                        f"{sources} ({', '.join(f'{s:g}' for s in sums)})",
                        segment_id="CTT",
                        segment_position=ctt_position,
                        element_position=2,
                    )
                )
    for rule in spec.totals:
        tag, element = rule.target
        position = next((i for i, s in enumerate(segments, start=1) if s.tag == tag), None)
        declared = _number(segments[position - 1][element]) if position else None
        if declared is None:
            continue
        total = sum(_sum(segments, source, source_element) for source, source_element in rule.sources)
        if abs(total - declared) > 1e-6:
            sources = " + ".join(f"{source}{source_element:02d}" for source, source_element in rule.sources)
            issues.append(
                EdiIssue(
                    rule.code,
                    f"{tag}{element:02d} is {declared:g} but the sum of {sources} is {total:g}",
                    segment_id=tag,
                    segment_position=position,
                    element_position=element,
                )
            )
    if spec.set_id == "810":
        issues.extend(_check_invoice_total(segments))
    return issues


def _check_invoice_total(segments: list[Segment]) -> list[EdiIssue]:
    """TDS01 (implied 2 decimals) against the lines plus charges minus allowances (SAC01 C/A, SAC05 N2, on lines
    and in the summary); a warning, since partners' rounding and tax conventions differ."""
    position = next((i for i, s in enumerate(segments, start=1) if s.tag == "TDS"), None)
    if position is None or not _INTEGER.match(segments[position - 1][1]):
        return []
    declared = Decimal(segments[position - 1][1]).scaleb(-2)
    total = Decimal(0)
    for segment in segments:
        if segment.tag == "IT1" and _DECIMAL.match(segment[2]) and _DECIMAL.match(segment[4]):
            total += Decimal(segment[2]) * Decimal(segment[4])
        elif segment.tag == "SAC" and segment[1] in ("A", "C") and _INTEGER.match(segment[5]):
            amount = Decimal(segment[5]).scaleb(-2)
            total += amount if segment[1] == "C" else -amount
    total = total.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    if abs(total - declared) <= Decimal("0.01"):
        return []
    return [
        EdiIssue(
            "TOTAL_AMOUNT_MISMATCH",
            f"TDS01 is {declared:.2f} but lines, charges and allowances add up to {total:.2f}",
            segment_id="TDS",
            segment_position=position,
            element_position=1,
        )
    ]


def _sum(segments: list[Segment], tag: str, element: int) -> float:
    return sum(_number(s[element]) or 0 for s in segments if s.tag == tag)


def validate_set(spec: SetSpec, segments: list[Segment], version: str = "004010") -> list[EdiIssue]:
    """All issues of one transaction set (ST ... SE inclusive) against its spec."""
    old_version = version[:3] < "004"
    validator = StructureValidator(spec)
    element_issues: list[EdiIssue] = []
    feed = validator.feed
    clean_checks = CLEAN_CHECKS
    for position, segment in enumerate(segments, start=1):
        tag = segment.tag
        feed(tag, position)
        clean = clean_checks.get(tag)
        if clean is not None and not clean(segment.elements, old_version):
            element_issues.extend(check_elements(segment, position, old_version))
    validator.finish(len(segments))
    issues = validator.issues + element_issues
    if spec.hierarchical:
        issues.extend(_check_hierarchy(segments))
    issues.extend(_check_totals(spec, segments))
    issues.sort(key=lambda issue: (issue.segment_position or 0, issue.element_position or 0))
    return issues
