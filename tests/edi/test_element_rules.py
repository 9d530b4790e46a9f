"""Element rules and syntax notes kept as data in `specs.py`: every segment of the eight sets has a definition,
each rule kind fails with its code, position and 997 AK403 code, and the compiled fast path agrees with the
detailed check."""

from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gp_pipelines.edi.ack import functional_acks
from gp_pipelines.edi.reader import Segment
from gp_pipelines.edi.specs import SEGMENT_SPECS, SET_SPECS, SyntaxNote, parse_segment
from gp_pipelines.edi.structure import check_elements, is_clean
from tests.edi.helpers import BODIES, INVENTORY_BODY, PO_ACK_BODY, PO_BODY, issues_of, single


def test_every_segment_of_the_eight_sets_has_element_rules():
    used = set().union(*(spec.tags for spec in SET_SPECS.values()))
    assert used <= set(SEGMENT_SPECS)
    assert SEGMENT_SPECS["N1"].max_elements == 6
    assert [str(note) for note in SEGMENT_SPECS["N1"].notes] == ["R0203", "P0304"]
    assert SEGMENT_SPECS["PO1"].max_elements == 25 and "P0607" in map(str, SEGMENT_SPECS["PO1"].notes)


def test_notation_errors_are_refused():
    with pytest.raises(ValueError, match="usage"):
        parse_segment("ZZ", "Q AN 1/2")
    with pytest.raises(ValueError, match="not understood"):
        parse_segment("ZZ", "O AN 1/2; O AN 1/2 | Q0102")
    with pytest.raises(ValueError, match="does not have"):
        parse_segment("ZZ", "O AN 1/2; O AN 1/2 | P0203")


@pytest.mark.parametrize(
    ("kind", "present", "violated"),
    [
        ("P", {3}, True), ("P", {3, 4}, False), ("P", set(), False),
        ("R", set(), True), ("R", {4}, False),
        ("C", {3}, True), ("C", {3, 4}, True), ("C", {3, 4, 5}, False), ("C", {4}, False),
        ("L", {3}, True), ("L", {3, 5}, False), ("L", {4, 5}, False),
        ("E", {3, 4}, True), ("E", {5}, False),
    ],
)  # fmt: skip
def test_syntax_note_semantics(kind, present, violated):
    positions = (3, 4) if kind in "PRE" else (3, 4, 5)
    assert SyntaxNote(kind, positions).violated(present) is violated


def replace(body: list[str], old: str, new: str) -> list[str]:
    assert old in body
    return [new if line == old else line for line in body]


NO_QUANTITY_BODY = replace(
    replace(PO_BODY, "PO1*2*3*CA*20*PE*VN*CD-2", "PO1*2**CA*20*PE*VN*CD-2"), "CTT*2*15", "CTT*2*12"
)
# (set, body, issue code, segment position (ST = 1), element position, AK403)
CASES = [
    ("850", replace(PO_BODY, "REF*DP*038", "REF*DP*038*DEPT 38*X>Y*EXTRA"), "TOO_MANY_ELEMENTS", 3, 5, "3"),
    ("850", replace(PO_BODY, "REF*DP*038", "REF*DP"), "ELEMENT_CONDITIONAL_MISSING", 3, 2, "2"),
    ("850", replace(PO_BODY, "N1*ST*ACME STORE*92*0042", "N1*ST*ACME STORE*92"), "ELEMENT_CONDITIONAL_MISSING", 5, 4,
     "2"),
    ("850", replace(PO_BODY, "N1*ST*ACME STORE*92*0042", "N1*ST"), "ELEMENT_CONDITIONAL_MISSING", 5, 2, "2"),
    ("850", replace(PO_BODY, "PO1*2*3*CA*20*PE*VN*CD-2", "PO1*2*3*CA*20*PE*VN"), "ELEMENT_CONDITIONAL_MISSING",
     10, 7, "2"),
    ("850", NO_QUANTITY_BODY, "ELEMENT_CONDITIONAL_MISSING",
     10, 2, "2"),
    ("850", replace(PO_BODY, "DTM*002*20240201", "DTM*002"), "ELEMENT_CONDITIONAL_MISSING", 4, 2, "2"),
    ("846", replace(INVENTORY_BODY, "QTY*17*7*CA", "QTY*17*7*CA*SEVEN"), "ELEMENT_EXCLUSION_VIOLATED", 8, 4, "10"),
    ("846", [*INVENTORY_BODY[:3], "MEA*PD*WT*****01*AB", *INVENTORY_BODY[3:]], "ELEMENT_CONDITIONAL_MISSING", 5, 3,
     "2"),
    ("855", replace(PO_ACK_BODY, "BAK*00*AC*PO123*20240115****20240116", "BAK*00*XX*PO123*20240115"),
     "ELEMENT_INVALID_CODE", 2, 2, "7"),
    ("855", replace(PO_ACK_BODY, "ACK*IA*12*EA", "ACK*IA*12"), "ELEMENT_CONDITIONAL_MISSING", 4, 3, "2"),
    ("856", replace(BODIES["856"][1], "TD5**2*UPSN*M", "TD5**2**M"), "ELEMENT_CONDITIONAL_MISSING", 5, 3, "2"),
    ("856", replace(BODIES["856"][1], "SN1**12*EA", "SN1**12*EACH"), "ELEMENT_TOO_LONG", 15, 3, "5"),
    ("940", replace(BODIES["940"][1], "LX*1", "LX*A1"), "ELEMENT_INVALID_CHARACTER", 7, 1, "6"),
    ("945", replace(BODIES["945"][1], "W03*14*30*LB", "W03*14*30"), "ELEMENT_CONDITIONAL_MISSING", 9, 3, "2"),
    ("810", replace(BODIES["810"][1], "IT1*2*3*CA*20**VN*CD-2", "IT1*2*3**20**VN*CD-2"),
     "ELEMENT_CONDITIONAL_MISSING", 5, 3, "2"),
]  # fmt: skip


@pytest.mark.parametrize(("set_id", "body", "code", "segment", "element", "ak403"), CASES)
def test_each_rule_fails_with_code_position_and_ak403(set_id, body, code, segment, element, ak403):
    data = single(set_id, body)
    errors = [issue for issue in issues_of(data) if issue.is_error]
    assert [(i.code, i.segment_position, i.element_position) for i in errors] == [(code, segment, element)]
    assert errors[0].kind.ack_code == ak403
    (_, ack), *_ = functional_acks(io.BytesIO(data.encode()))
    (segment_error,) = ack.sets[0].segments
    assert (segment_error.position, segment_error.code) == (segment, "8")
    assert [(e.position, e.code) for e in segment_error.elements] == [(str(element), ak403)]


@pytest.mark.parametrize(
    ("segment", "code"),
    [("AK5*Z", "ELEMENT_INVALID_CODE"), ("AK5*A*1*2*3*4*5*6", "TOO_MANY_ELEMENTS")],
)
def test_closed_code_lists_and_counts_in_the_997(segment, code):
    body = ["AK1*PO*1", "AK2*850*0001", segment, "AK9*A*1*1*1"]
    assert [i.code for i in issues_of(single("997", body)) if i.is_error] == [code]


def test_open_code_lists_only_warn():
    data = single("850", replace(PO_BODY, "N1*ST*ACME STORE*92*0042", "N1*QQ*ACME STORE*92*0042"))
    issues = issues_of(data)
    assert [(i.code, i.severity, i.segment_position, i.element_position) for i in issues] == [
        ("ELEMENT_CODE_UNLISTED", "warning", 5, 1)
    ]
    (_, ack), *_ = functional_acks(io.BytesIO(data.encode()))
    assert ack.status == "A" and ack.sets[0].segments == []


def test_open_list_still_checks_length():
    data = single("850", replace(PO_BODY, "PO1*2*3*CA*20*PE*VN*CD-2", "PO1*2*3*CASE*20*PE*VN*CD-2"))
    assert [i.code for i in issues_of(data)] == ["ELEMENT_TOO_LONG"]


def test_syntax_notes_are_not_applied_to_older_versions():
    body = replace(PO_BODY, "N1*ST*ACME STORE*92*0042", "N1*ST*ACME STORE*92")
    body = replace(body, "BEG*00*SA*PO123**20240115", "BEG*00*SA*PO123**240115")
    old = single("850", body).replace("*20240115*1430*1*X*004010", "*240115*1430*1*X*003010")
    assert issues_of(old) == []
    assert [i.code for i in issues_of(single("850", body))] == ["ELEMENT_INVALID_DATE", "ELEMENT_CONDITIONAL_MISSING"]


# -- the compiled fast path ------------------------------------------------------------------------------------
FIXTURE_SEGMENTS = sorted({line for _, body in BODIES.values() for line in body})
EDITS = st.sampled_from(["", "X", "12", "-3.5", "ABC", "20241345", "2575", "EA", "0", "1" * 90, "A B", "99"])


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(line=st.sampled_from(FIXTURE_SEGMENTS), edits=st.lists(st.tuples(st.integers(1, 32), EDITS), max_size=4),
       old=st.booleans())  # fmt: skip
def test_compiled_check_agrees_with_the_detailed_check(line, edits, old):
    elements = line.split("*")
    for position, value in edits:
        if position >= len(elements):
            elements.extend([""] * (position - len(elements) + 1))
        elements[position] = value
    segment = Segment(elements)
    issues = check_elements(segment, 1, old)
    # Open-list codes are warnings, but the fast path reports them too (the detailed check then decides).
    assert is_clean(elements, old) == (issues == [])


# -- the structure memo ----------------------------------------------------------------------------------------
def test_structure_memo_gives_the_same_fresh_issues(monkeypatch):
    from gp_pipelines.edi import structure

    broken = single("850", [PO_BODY[0], PO_BODY[2], PO_BODY[1], *PO_BODY[3:]])  # REF after DTM
    first, second = issues_of(broken), issues_of(broken)  # the second comes from the memo
    assert [str(i) for i in first] == [str(i) for i in second] and first[0] is not second[0]
    assert [i.code for i in second] == ["SEGMENT_OUT_OF_ORDER"] and second[0].set_control == "1001"
    monkeypatch.setattr(structure, "SHAPE_CACHE_SIZE", 0)
    assert [str(i) for i in issues_of(broken)] == [str(i) for i in first]


def test_structure_memo_is_bounded(monkeypatch):
    from gp_pipelines.edi import structure

    monkeypatch.setattr(structure, "SHAPE_CACHE_SIZE", 3)
    monkeypatch.setattr(structure, "_shape_cache", {})
    for extra in range(6):
        issues_of(single("850", [*PO_BODY[:2], *["REF*ZZ*X"] * extra, *PO_BODY[2:]]))
    assert len(structure._shape_cache) == 3
