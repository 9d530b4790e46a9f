"""One engine validates every transaction set against its `SetSpec`: structure, elements, HL tree, totals.

Throughput matters (846 and 856 feeds run to tens of MB), so the per-segment work is kept small: element rules
are compiled from the tables in `specs.py` into one Python function per segment and element count, the loop
tree's transitions are memoised on its nodes, structure issues are memoised per sequence of segment tags, and
the totals and HL rules read only the segment positions collected in the single pass.
"""

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
        self.counts = [0] * len(node.children)


def _child_tag(child: SegmentNode | LoopNode) -> str:
    return child.tag if isinstance(child, SegmentNode) else child.trigger


def _next_index(node: LoopNode, position: int, tag: str, is_root: bool) -> tuple[int, tuple[int, ...]]:
    """The child of `node` that `tag` matches after child `position` (-1: none), and the required children
    skipped on the way; memoised on the node, since the answer depends on nothing else."""
    key = (position, tag, is_root)
    found = node.transitions.get(key)
    if found is None:
        index = -1
        # Inside a loop the trigger is not matched again: a repeated trigger starts the next iteration.
        start = max(position, 0 if is_root else 1)
        for candidate in node.positions.get(tag, ()):
            if candidate >= start:
                index = candidate
                break
        # In a loop the trigger (child 0) has always been counted; only the other required children can lack.
        required = node.required if is_root else node.required_after_trigger
        skipped = tuple(r for r in required if max(position, 0) <= r < index) if index != position else ()
        found = node.transitions[key] = (index, skipped)
    return found


class StructureValidator:
    """Walks the segments of one set through the spec's loop tree, collecting issues."""

    def __init__(self, spec: SetSpec) -> None:
        self.spec = spec
        self.tags = spec.tags
        self.issues: list[EdiIssue] = []
        self.stack = [_LoopState(spec.root)]

    def _issue(self, code: str, message: str, position: int, tag: str, element: int | None = None) -> None:
        self.issues.append(EdiIssue(code, message, segment_id=tag, segment_position=position, element_position=element))

    def _check_skipped(self, state: _LoopState, up_to: int, position: int, tag: str) -> None:
        start = max(state.position, 0)
        node = state.node
        counts = state.counts
        for index in node.required:
            if start <= index < up_to and node.children[index].min_use > counts[index]:
                child = node.children[index]
                kind = "loop" if isinstance(child, LoopNode) else "segment"
                self._issue(
                    "SEGMENT_REQUIRED_MISSING",
                    f"mandatory {kind} {node.child_tags[index]} missing before {tag}",
                    position,
                    node.child_tags[index],
                )

    def feed(self, segment_tag: str, position: int) -> None:
        if segment_tag not in self.tags:
            if not _TAG.match(segment_tag):
                self._issue(
                    "SEGMENT_UNRECOGNIZED", f"'{segment_tag}' is not a segment identifier", position, segment_tag
                )
            else:
                self._report_misplaced(segment_tag, position)
            return
        stack = self.stack
        depth = len(stack) - 1
        state = stack[depth]
        node = state.node
        found = node.transitions.get((state.position, segment_tag, depth == 0))
        if found is None:
            found = _next_index(node, state.position, segment_tag, depth == 0)
        index, skipped = found
        while index < 0:
            depth -= 1
            if depth < 0:
                self._report_misplaced(segment_tag, position)
                return
            state = stack[depth]
            node = state.node
            index, skipped = _next_index(node, state.position, segment_tag, depth == 0)
        while len(stack) - 1 > depth:
            closed = stack.pop()
            if closed.node.required_after_trigger:
                self._check_skipped(closed, len(closed.node.children), position, segment_tag)
        if skipped:
            self._check_skipped(state, index, position, segment_tag)
        state.position = index
        counts = state.counts
        used = counts[index] + 1
        counts[index] = used
        if used > node.max_uses[index]:
            child = node.children[index]
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
        if node.is_loop[index]:
            loop = _LoopState(node.children[index], 0)
            loop.counts[0] = 1
            stack.append(loop)

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
# Most segments are clean, so each segment spec is compiled into Python functions that only answer "is this
# segment clean?", one per element count (a segment with n elements can only break the rules of its first n
# positions, so absent positions and the syntax notes on them are settled at compile time). The detailed
# (slower) check below runs only for the segments that are not clean. Functions are compiled on first use.
def _value_test(rule: ElementRule, name: str, constants: dict) -> str:
    low, high, data_type = rule.min_length, rule.max_length, rule.data_type
    length = f"len({name}) <= {high}" if low <= 1 else f"{low} <= len({name}) <= {high}"
    if rule.codes is not None:
        key = f"C{len(constants)}"
        constants[key] = rule.codes
        if all(low <= len(code) <= high for code in rule.codes):
            return f"{name} in {key}"
        return f"{name} in {key} and {length}"
    if data_type == "R" or data_type[0] == "N":
        # Fast path for plain unsigned integers; anything else (signs, points) goes through the regex.
        digits = f"{name}.isdigit() and {name}.isascii() and {length}"
        return f"(({digits}) or _number_fits({name}, {data_type!r}, {low}, {high}))"
    if data_type == "DT":
        return f"_valid_date({name}, old)"
    if data_type == "TM":
        return f"_valid_time({name})"
    return length


def _note_test(note: SyntaxNote, count: int) -> str | None:
    """The note as an expression over v1..v<count> (positions beyond `count` are empty); None: always kept."""
    present = [f"v{p}" for p in note.positions if p <= count]
    complete = len(present) == len(note.positions)
    first, others = note.positions[0], [f"v{p}" for p in note.positions[1:] if p <= count]
    if note.kind == "P":
        if not present:
            return None
        return " == ".join(f"(not {v})" for v in present) if complete else f"not ({' or '.join(present)})"
    if note.kind == "R":
        return " or ".join(present) if present else "False"
    if note.kind in "CL":
        if first > count:
            return None
        if note.kind == "C":
            return f"not v{first} or ({' and '.join(others)})" if complete else f"not v{first}"
        return f"not v{first} or ({' or '.join(others)})" if others else f"not v{first}"
    if len(present) < 2:  # E
        return None
    return f"({' + '.join(f'(not not {v})' for v in present)}) <= 1"


def compile_segment(spec: SegmentSpec, element_count: int):
    """A function `(elements, old_version) -> bool` for segments with `element_count` elements after the tag:
    True when the segment breaks no rule of `spec`. Syntax notes are those of 004010: for older versions
    (`old_version`) they are not checked."""
    if element_count > spec.max_elements or any(
        rule.required for rule in spec.elements if rule.position > element_count
    ):
        return lambda elements, old: False
    constants: dict = {}
    names = [f"v{position}" for position in range(1, element_count + 1)]
    lines = ["def clean(e, old):"]
    if names:
        lines.append(f"    _, {', '.join(names)}, = e")
    for rule in spec.elements[:element_count]:
        name = f"v{rule.position}"
        test = _value_test(rule, name, constants)
        if rule.required:
            lines.append(f"    if not {name} or not ({test}): return False")
        else:
            lines.append(f"    if {name} and not ({test}): return False")
    notes = [test for test in (_note_test(note, element_count) for note in spec.notes) if test is not None]
    if notes:
        lines.append("    if old: return True")
        lines.extend(f"    if not ({test}): return False" for test in notes)
    lines.append("    return True")
    namespace = {"_valid_date": valid_date, "_valid_time": valid_time, "_number_fits": _number_fits, **constants}
    exec("\n".join(lines), namespace)  # the source is generated from the spec tables above
    return namespace["clean"]


# tag -> one slot per element count (index = len(elements), tag included), filled on first use
CLEAN_TABLES: dict[str, list] = {tag: [None] * (spec.max_elements + 2) for tag, spec in SEGMENT_SPECS.items()}


def clean_check(tag: str, length: int):
    """The compiled check for a `tag` segment of `length` elements (tag included); None for unknown tags."""
    table = CLEAN_TABLES.get(tag)
    if table is None:
        return None
    if length >= len(table):
        return _never_clean
    check = table[length]
    if check is None:
        check = table[length] = compile_segment(SEGMENT_SPECS[tag], length - 1)
    return check


def _never_clean(elements: list[str], old: bool) -> bool:
    return False


def is_clean(elements: list[str], old_version: bool = False) -> bool:
    """True when the segment (elements, tag first) breaks no element rule or syntax note of its spec."""
    check = clean_check(elements[0], len(elements))
    return True if check is None else check(elements, old_version)


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
    if value.isdigit() and value.isascii():
        return float(value)
    return float(value) if _DECIMAL.match(value) else None


def _check_hierarchy(segments: list[Segment], found: dict[str, list[int]]) -> list[EdiIssue]:
    """856 HL rules: ids 1, 2, 3...; parents seen before; first HL is the shipment; HL04 agrees with children;
    each level sits under a level that the structure named in BSN05 allows (`HL_STRUCTURES`)."""
    issues = []
    levels: dict[str, str] = {}
    hl_positions = [(position, segments[position - 1].elements) for position in found.get("HL", ())]
    parents_with_children = {hl[2] for _, hl in hl_positions if len(hl) > 2 and hl[2]}
    structure_code = next((segment[5] for segment in segments[:3] if segment.tag == "BSN"), "")
    children_allowed = HL_CHILDREN.get(structure_code)
    position = 0

    def issue(code: str, message: str, element: int) -> None:
        issues.append(EdiIssue(code, message, segment_id="HL", segment_position=position, element_position=element))

    for ordinal, (position, hl) in enumerate(hl_positions, start=1):  # noqa: B007 - `issue` reads `position`
        if len(hl) < 5:
            hl = hl + [""] * (5 - len(hl))
        _, hl_id, parent, level, child_code = hl[:5]
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


def _sum(segments: list[Segment], positions: list[int], element: int) -> float:
    total = 0.0
    for position in positions:
        elements = segments[position - 1].elements
        if len(elements) > element:
            total += _number(elements[element]) or 0
    return total


def _check_totals(spec: SetSpec, segments: list[Segment], found: dict[str, list[int]]) -> list[EdiIssue]:
    issues = []
    ctt_positions = found.get("CTT")
    if ctt_positions and spec.ctt_counts:
        ctt_position = ctt_positions[0]
        ctt = segments[ctt_position - 1]
        counted = len(found.get(spec.ctt_counts, ()))
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
            sums = [_sum(segments, found.get(tag, []), position) for tag, position in spec.ctt_hash_sources]
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
        targets = found.get(tag)
        position = targets[0] if targets else None
        declared = _number(segments[position - 1][element]) if position else None
        if declared is None:
            continue
        total = sum(_sum(segments, found.get(source, []), source_element) for source, source_element in rule.sources)
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


# Structure issues depend on nothing but the sequence of segment tags, and a partner's system sends the same
# shapes again and again: the issues of recently seen shapes are kept (bounded in count and in set size, so
# memory stays flat). `SHAPE_CACHE_SIZE = 0` switches the memo off.
SHAPE_CACHE_SIZE = 256
SHAPE_CACHE_MAX_SEGMENTS = 4096
_shape_cache: dict[tuple[str, str], tuple[tuple, ...]] = {}


def _structure_issues(spec: SetSpec, segments: list[Segment]) -> list[EdiIssue]:
    """The structure pass alone (segment order, loops, repeats, mandatory segments)."""
    key = None
    if SHAPE_CACHE_SIZE and len(segments) <= SHAPE_CACHE_MAX_SEGMENTS:
        key = (spec.set_id, "\x1f".join([segment.tag for segment in segments]))
        cached = _shape_cache.get(key)
        if cached is not None:
            return [EdiIssue(code, message, segment_id=tag, segment_position=position, element_position=element)
                    for code, message, tag, position, element in cached]  # fmt: skip
    validator = StructureValidator(spec)
    feed = validator.feed
    for position, segment in enumerate(segments, start=1):
        feed(segment.tag, position)
    validator.finish(len(segments))
    if key is not None:
        if len(_shape_cache) >= SHAPE_CACHE_SIZE:
            del _shape_cache[next(iter(_shape_cache))]  # the oldest
        _shape_cache[key] = tuple(
            (i.code, i.message, i.segment_id, i.segment_position, i.element_position) for i in validator.issues
        )
    return validator.issues


_plans: dict[int, tuple[SetSpec, dict[str, tuple[list | None, bool]]]] = {}


def _plan(spec: SetSpec) -> dict[str, tuple[list | None, bool]]:
    """Per tag of the set: its compiled-check table and whether the totals or HL rules read it."""
    entry = _plans.get(id(spec))
    if entry is None or entry[0] is not spec:  # the spec is kept in the entry, so its id is not reused
        entry = _plans[id(spec)] = (spec, {tag: (CLEAN_TABLES.get(tag), tag in spec.watched_tags) for tag in spec.tags})
    return entry[1]


def validate_set(spec: SetSpec, segments: list[Segment], version: str = "004010") -> list[EdiIssue]:
    """All issues of one transaction set (ST ... SE inclusive) against its spec."""
    old_version = version[:3] < "004"
    element_issues: list[EdiIssue] = []
    plan = _plan(spec)
    found: dict[str, list[int]] = {}  # positions of the segments the totals and the HL rules read
    for position, segment in enumerate(segments, start=1):
        tag = segment.tag
        step = plan.get(tag)
        if step is None:
            continue  # not part of the set: the structure pass reports it
        table, watched = step
        if table is not None:
            elements = segment.elements
            count = len(elements)
            try:
                check = table[count]
            except IndexError:  # more elements than the segment has
                check = _never_clean
            if check is None:
                check = clean_check(tag, count)
            if not check(elements, old_version):
                element_issues.extend(check_elements(segment, position, old_version))
        if watched:
            positions = found.get(tag)
            if positions is None:
                found[tag] = [position]
            else:
                positions.append(position)
    issues = _structure_issues(spec, segments) + element_issues
    if spec.hierarchical:
        issues.extend(_check_hierarchy(segments, found))
    issues.extend(_check_totals(spec, segments, found))
    issues.sort(key=lambda issue: (issue.segment_position or 0, issue.element_position or 0))
    return issues
