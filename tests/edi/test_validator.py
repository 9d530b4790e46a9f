"""Envelope checks, the spec engine on every set, the 856 HL rules, totals, and the issue model."""

from __future__ import annotations

import pytest

from gp_pipelines.edi.errors import ISSUE_KINDS, EdiIssue, Level
from gp_pipelines.edi.specs import SET_SPECS, parse_structure
from tests.edi.helpers import (
    ASN_BODY,
    BODIES,
    PO_BODY,
    SHIPPING_ADVICE_BODY,
    SHIPPING_ORDER_BODY,
    error_codes,
    interchange,
    issues_of,
    single,
)


@pytest.mark.parametrize("set_id", sorted(BODIES))
def test_every_set_fixture_is_clean(set_id):
    assert issues_of(single(set_id)) == []


def test_specs_exist_for_the_eight_sets():
    assert sorted(SET_SPECS) == ["810", "846", "850", "855", "856", "940", "945", "997"]


def test_structure_notation():
    root = parse_structure("ST BEG REF* [N1 N3{0,2} N4?]{0,200} [PO1 PID*]+ SE")
    assert [getattr(c, "tag", None) or c.name for c in root.children] == ["ST", "BEG", "REF", "N1", "PO1", "SE"]
    n1 = root.children[3]
    assert (n1.min_use, n1.max_use, n1.children[1].max_use) == (0, 200, 2)


# -- envelope ----------------------------------------------------------------------------------------------
def test_control_number_mismatches():
    data = single("850").replace("SE*12*1001", "SE*12*1002").replace("GE*1*1", "GE*1*2")
    data = data.replace("IEA*1*000000001", "IEA*1*000000009")
    assert sorted(error_codes(data)) == ["GE_CONTROL_MISMATCH", "IEA_CONTROL_MISMATCH", "SE_CONTROL_MISMATCH"]


def test_counts():
    data = single("850").replace("SE*12*", "SE*13*").replace("GE*1*1", "GE*2*1").replace("IEA*1*", "IEA*3*")
    assert sorted(error_codes(data)) == ["GE_SET_COUNT", "IEA_GROUP_COUNT", "SE_COUNT_MISMATCH"]


def test_padded_numbers_are_compared_as_numbers():
    data = single("850").replace("SE*12*", "SE*0000000012*").replace("GE*1*1", "GE*001*0001")
    assert error_codes(data) == []
    unpadded = single("850").replace("IEA*1*000000001", "IEA*1*1")
    assert error_codes(unpadded) == []
    assert [i.code for i in issues_of(unpadded)] == ["IEA_CONTROL_UNPADDED"]


def test_gs01_against_st01():
    data = interchange([("SH", [("850", PO_BODY)])])
    assert error_codes(data) == ["SET_WRONG_GROUP"]


def test_duplicate_st02_in_a_group():
    data = interchange([("PO", [("850", PO_BODY), ("850", PO_BODY)])]).replace("ST*850*1002", "ST*850*1001")
    data = data.replace("SE*12*1002", "SE*12*1001")
    assert error_codes(data) == ["ST_CONTROL_DUPLICATE"]


def test_missing_trailers():
    data = single("850")
    assert error_codes(data.replace("SE*12*1001~\n", "")) == ["SE_MISSING"]
    assert error_codes(data.replace("GE*1*1~\n", "")) == ["GE_MISSING"]
    assert error_codes(data.replace("IEA*1*000000001~\n", "")) == ["IEA_MISSING"]


def test_stray_segments_and_trailing_garbage():
    data = single("850")
    inside_group = data.replace("GE*1*1", "REF*XX*1~\nGE*1*1")
    assert error_codes(inside_group) == ["SEGMENT_OUTSIDE_SET"]
    after = data + "NTE*GARBAGE~\n"
    assert error_codes(after) == ["SEGMENT_OUTSIDE_ENVELOPE"]


def test_isa_field_checks():
    data = single("850").replace("*P*>", "*X*>").replace("240115*1430", "241315*2561")
    messages = [i.message for i in issues_of(data) if i.code == "ISA_INVALID_VALUE"]
    assert len(messages) == 3 and any("ISA15" in m for m in messages)


def test_gs_checks_and_older_versions():
    bad_date = single("850").replace("*20240115*1430*1*X*004010", "*240115*1430*1*Z*004010")
    assert error_codes(bad_date) == ["GS_INVALID_VALUE", "GS_INVALID_VALUE"]
    old = single("850").replace("*20240115*1430*1*X*004010", "*240115*1430*1*X*003010")
    old = old.replace("BEG*00*SA*PO123**20240115", "BEG*00*SA*PO123**240115")
    assert error_codes(old) == []


def test_other_envelope_versions_are_tolerated():
    data = single("856", version="00501", isa11="^")
    assert issues_of(data) == []
    unknown = single("856", version="00999")
    assert [i.code for i in issues_of(unknown)] == ["ISA_UNKNOWN_VERSION"]


def test_unknown_set_is_a_warning():
    data = interchange([("HC", [("837", ["BHT*0019*00*1*20240115*1200*CH"])])])
    assert [i.code for i in issues_of(data)] == ["SET_NOT_SUPPORTED"]
    assert error_codes(data) == []


# -- structure ---------------------------------------------------------------------------------------------
def codes_for(set_id: str, body: list[str]) -> list[str]:
    return error_codes(single(set_id, body))


def test_missing_mandatory_segment():
    assert codes_for("850", PO_BODY[1:]) == ["SEGMENT_REQUIRED_MISSING"]
    assert codes_for("945", [line for line in SHIPPING_ADVICE_BODY if not line.startswith("W27")]) == [
        "SEGMENT_REQUIRED_MISSING"
    ]


def test_missing_mandatory_loop():
    body = [line for line in PO_BODY if not line.startswith(("PO1", "PID"))]
    assert "SEGMENT_REQUIRED_MISSING" in codes_for("850", body)


def test_segment_out_of_order():
    body = [PO_BODY[0], PO_BODY[2], PO_BODY[1], *PO_BODY[3:]]  # REF after DTM
    issues = [i for i in issues_of(single("850", body)) if i.is_error]
    assert [i.code for i in issues] == ["SEGMENT_OUT_OF_ORDER"]
    assert issues[0].segment_position == 4 and issues[0].segment_id == "REF"


def test_segment_not_in_set_and_unrecognized():
    assert codes_for("850", [*PO_BODY[:2], "W05*N*1", *PO_BODY[2:]]) == ["SEGMENT_NOT_IN_SET"]
    assert codes_for("850", [*PO_BODY[:2], "bad segment", *PO_BODY[2:]]) == ["SEGMENT_UNRECOGNIZED"]


def test_segment_unexpected_in_this_loop():
    body = ["BIA*00*SI*INV-1*20240115", "QTY*33*1*EA", "LIN*1*UP*1", "CTT*1"]
    assert codes_for("846", body) == ["SEGMENT_UNEXPECTED"]


def test_segment_and_loop_over_max():
    assert codes_for("850", ["BEG*00*SA*PO123**20240115", *PO_BODY]) == ["SEGMENT_OVER_MAX"]
    parties = [f"N1*ST*STORE {i}" for i in range(11)]
    body = [SHIPPING_ORDER_BODY[0], *parties, *SHIPPING_ORDER_BODY[3:]]
    assert codes_for("940", body) == ["LOOP_OVER_MAX"]


@pytest.mark.parametrize(
    ("segment", "code", "element"),
    [
        ("BEG*00*SA*PO123**20241345", "ELEMENT_INVALID_DATE", 5),
        ("BEG*99*SA*PO123**20240115", "ELEMENT_INVALID_CODE", 1),
        ("BEG*00*SA***20240115", "ELEMENT_REQUIRED_MISSING", 3),
        ("BEG*00*S*PO123**20240115", "ELEMENT_TOO_SHORT", 2),
        ("BEG*00*SA*" + "P" * 23 + "**20240115", "ELEMENT_TOO_LONG", 3),
    ],
)
def test_element_rules(segment, code, element):
    issues = [i for i in issues_of(single("850", [segment, *PO_BODY[1:]])) if i.is_error]
    assert [(i.code, i.element_position, i.segment_position) for i in issues] == [(code, element, 2)]


def test_element_types():
    body = [*PO_BODY[:6], "PO1*1*twelve*EA*9.25*PE*UP*1", *PO_BODY[7:]]
    assert "ELEMENT_INVALID_CHARACTER" in codes_for("850", body)
    asn = [line.replace("1200", "2575") if line.startswith("BSN") else line for line in ASN_BODY]
    assert codes_for("856", asn) == ["ELEMENT_INVALID_TIME"]


# -- 856 hierarchy and totals ------------------------------------------------------------------------------
def asn_with(replacements: dict[str, str]) -> list[str]:
    return [replacements.get(line, line) for line in ASN_BODY]


@pytest.mark.parametrize(
    ("replacements", "code"),
    [
        ({"HL*3*2*P*1": "HL*4*2*P*1"}, "HL_ID_SEQUENCE"),
        ({"HL*6*5*I*0": "HL*6*9*I*0"}, "HL_PARENT_UNKNOWN"),
        ({"HL*1**S*1": "HL*1**O*1"}, "HL_FIRST_NOT_SHIPMENT"),
        ({"HL*4*3*I*0": "HL*4*3*I*1"}, "HL_CHILD_CODE"),
        ({"CTT*6*15": "CTT*5*15"}, "CTT_COUNT_MISMATCH"),
        ({"CTT*6*15": "CTT*6*16"}, "CTT_HASH_MISMATCH"),
    ],
)
def test_asn_rules(replacements, code):
    assert code in codes_for("856", asn_with(replacements))


def test_asn_parent_zero_is_only_a_warning():
    data = single("856", asn_with({"HL*1**S*1": "HL*1*0*S*1"}))
    assert [i.code for i in issues_of(data)] == ["HL_PARENT_ZERO"]


def test_ctt_count_for_other_sets():
    assert codes_for("850", [*PO_BODY[:-1], "CTT*3"]) == ["CTT_COUNT_MISMATCH"]
    body = [*PO_BODY[:-1], "CTT*2*14"]
    assert codes_for("850", body) == ["CTT_HASH_MISMATCH"]


def test_warehouse_totals():
    assert codes_for("940", [*SHIPPING_ORDER_BODY[:-1], "W76*16"]) == ["TOTAL_MISMATCH"]
    assert codes_for("945", [*SHIPPING_ADVICE_BODY[:-1], "W03*15*30*LB"]) == ["TOTAL_MISMATCH"]


def test_invoice_total_is_a_warning():
    body = [line.replace("TDS*17100", "TDS*17000") for line in BODIES["810"][1]]
    issues = issues_of(single("810", body))
    assert [i.code for i in issues] == ["TOTAL_AMOUNT_MISMATCH"] and not issues[0].is_error


# -- the issue model ---------------------------------------------------------------------------------------
def test_issue_carries_location_and_a_readable_message():
    data = single("856", asn_with({"HL*6*5*I*0": "HL*6*9*I*0"}))
    (issue,) = [i for i in issues_of(data) if i.code == "HL_PARENT_UNKNOWN"]
    assert (issue.interchange_control, issue.group_control, issue.set_id, issue.set_control) == (
        "000000001", "1", "856", "1001"
    )  # fmt: skip
    assert (issue.segment_id, issue.segment_position, issue.element_position) == ("HL", 18, 2)
    assert issue.byte_offset == data.index("HL*6*9")
    assert "parent '9'" in issue.message
    assert str(issue).startswith("error HL_PARENT_UNKNOWN [ISA 000000001, GS 1, ST 856 1001, segment 18 HL]")
    assert issue.as_dict()["ack_code"] == "7"


def test_every_code_maps_onto_an_acknowledgment_level():
    ak304 = {str(n) for n in range(1, 9)}
    ak403 = {str(n) for n in range(1, 11)}
    for code, kind in ISSUE_KINDS.items():
        if kind.ack_code is None:
            continue
        if kind.level == Level.SEGMENT:
            assert kind.ack_code in ak304, code
        if kind.level == Level.ELEMENT:
            assert kind.ack_code in ak403, code
    assert EdiIssue("SE_COUNT_MISMATCH", "x").kind.ack_code == "4"
    assert EdiIssue("GE_MISSING", "x").kind.ack_code == "3"
