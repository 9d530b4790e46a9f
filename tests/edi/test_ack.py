"""The 997 builder: accept, partially accept or reject each inbound group with the right codes."""

from __future__ import annotations

import io

from gp_pipelines.edi.ack import functional_acks, write_acks
from gp_pipelines.edi.models import ElementError, SegmentError
from gp_pipelines.edi.writer import CountingControlNumbers, read_documents
from tests.edi.helpers import PO_BODY, interchange, issues_of, single


def acks_for(text: str):
    return [ack for _, ack in functional_acks(io.BytesIO(text.encode()))]


def test_accepts_a_clean_group():
    (ack,) = acks_for(single("850"))
    assert (ack.functional_id, ack.group_control_number, ack.status) == ("PO", "1", "A")
    assert (ack.sets_included, ack.sets_received, ack.sets_accepted, ack.group_codes) == (1, 1, 1, [])
    assert [(s.set_id, s.control_number, s.status, s.codes, s.segments) for s in ack.sets] == [
        ("850", "1001", "A", [], [])
    ]


def test_partially_accepts_with_segment_and_element_errors():
    bad_body = [PO_BODY[0].replace("20240115", "20241399"), *PO_BODY[1:3], "W05*N*1", *PO_BODY[3:]]
    text = interchange([("PO", [("850", PO_BODY), ("850", bad_body)])])
    (ack,) = acks_for(text)
    assert (ack.status, ack.sets_received, ack.sets_accepted) == ("P", 2, 1)
    good, bad = ack.sets
    assert good.status == "A"
    assert (bad.status, bad.codes) == ("R", ["5"])
    assert bad.segments == [
        SegmentError("BEG", 2, "8", elements=[ElementError("5", "8", "", "20241399")]),
        SegmentError("W05", 5, "6"),
    ]


def test_set_level_codes():
    text = single("850").replace("SE*12*1001", "SE*11*1009")
    (ack,) = acks_for(text)
    assert ack.status == "R"
    assert ack.sets[0].codes == ["3", "4"]


def test_rejects_a_group_with_envelope_errors():
    text = single("850").replace("GE*1*1", "GE*3*7")
    (ack,) = acks_for(text)
    assert (ack.status, ack.sets_included, ack.sets_received, ack.sets_accepted) == ("R", 3, 1, 1)
    assert ack.group_codes == ["4", "5"]


def test_missing_trailers():
    text = single("850").replace("SE*12*1001~\n", "").replace("GE*1*1~\n", "")
    (ack,) = acks_for(text)
    assert ack.sets[0].codes == ["2"] and ack.group_codes == ["3"]


def test_997_groups_are_never_acknowledged():
    text = interchange([("FA", [("997", ["AK1*PO*1", "AK9*A*1*1*1"])]), ("PO", [("850", PO_BODY)])])
    assert [ack.functional_id for ack in acks_for(text)] == ["PO"]


def test_written_997_is_addressed_back_and_valid():
    text = single("850") + single("940", control="000000002")
    out = write_acks(functional_acks(io.BytesIO(text.encode())), CountingControlNumbers(500))
    assert out.count("ISA*") == 2
    assert "*ZZ*RECEIVER       *ZZ*SENDER         *" in out
    assert issues_of(out) == []
    assert [(ack.functional_id, ack.status) for ack in read_documents(out.encode())] == [("PO", "A"), ("OW", "A")]
    assert "ISA*00*          *00*" in out and "*000000500*" in out
