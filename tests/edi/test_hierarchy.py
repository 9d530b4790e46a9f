"""856 HL tree against BSN05 (the hierarchical structure code) and packs nested in tares in `ShipNotice`."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest

from gp_pipelines.edi.mapping import summarize
from gp_pipelines.edi.models import Pack, ShipItem, ShipNotice, ShipOrder
from gp_pipelines.edi.specs import HL_STRUCTURES, allowed_children
from gp_pipelines.edi.validator import TransactionSet, iter_events
from gp_pipelines.edi.writer import CountingControlNumbers, EnvelopeSettings, read_documents, write_interchange
from tests.edi.helpers import issues_of, single


def asn(structure_code: str, levels: list[tuple[str, str]]) -> list[str]:
    """An 856 body from (level, parent id) pairs, with the segments each level needs and exact totals."""
    body = [f"BSN*00*ASN1*20240116*1200*{structure_code}".rstrip("*")]
    parents = {parent for _, parent in levels}
    hash_total = 0
    for number, (level, parent) in enumerate(levels, start=1):
        body.append(f"HL*{number}*{parent}*{level}*{1 if str(number) in parents else 0}")
        if level == "O":
            body.append("PRF*PO123")
        elif level in ("P", "T"):
            body.append(f"MAN*GM*{number:020d}")
        elif level == "I":
            body += [f"LIN**UP*01234567890{number}", "SN1**2*EA"]
            hash_total += 2
    body.append(f"CTT*{len(levels)}*{hash_total}")
    return body


PICK_AND_PACK = [("S", ""), ("O", "1"), ("P", "2"), ("I", "3"), ("P", "2"), ("I", "5")]
WITH_TARE = [("S", ""), ("O", "1"), ("T", "2"), ("P", "3"), ("I", "4"), ("P", "3"), ("I", "6")]
STANDARD_CARTON = [("S", ""), ("O", "1"), ("I", "2"), ("P", "3"), ("I", "2")]


def test_structure_table():
    assert allowed_children(HL_STRUCTURES["0001"]) == {
        "S": {"O"}, "O": {"T", "P"}, "T": {"P"}, "P": {"I"}, "I": set()
    }  # fmt: skip
    assert allowed_children(HL_STRUCTURES["0002"])["O"] == {"I"}


@pytest.mark.parametrize(
    ("code", "levels"),
    [("0001", PICK_AND_PACK), ("0001", WITH_TARE), ("0002", STANDARD_CARTON), ("0002", STANDARD_CARTON[:3])],
)
def test_structures_that_follow_bsn05_are_clean(code, levels):
    assert issues_of(single("856", asn(code, levels))) == []


@pytest.mark.parametrize(
    ("code", "levels", "positions"),
    [
        ("0001", [("S", ""), ("O", "1"), ("I", "2")], [6]),  # item directly under the order
        ("0001", [("S", ""), ("O", "1"), ("P", "2"), ("T", "3"), ("I", "4")], [8, 10]),  # tare inside a carton
        ("0002", PICK_AND_PACK, [6, 8, 11, 13]),  # packs under the order in an S-O-I-P structure
        ("0001", [("S", ""), ("P", "1"), ("I", "2")], [4]),  # pack straight under the shipment
    ],
)
def test_level_not_allowed_by_bsn05(code, levels, positions):
    issues = [i for i in issues_of(single("856", asn(code, levels))) if i.is_error]
    assert [(i.code, i.segment_position, i.element_position) for i in issues] == [
        ("HL_LEVEL_UNEXPECTED", position, 3) for position in positions
    ]
    assert f"BSN05 {code}" in issues[0].message and issues[0].kind.ack_code == "7"


def test_unknown_or_missing_structure_code_is_not_checked():
    odd = [("S", ""), ("O", "1"), ("I", "2")]
    assert issues_of(single("856", asn("", odd))) == []
    assert [i.code for i in issues_of(single("856", asn("0099", odd)))] == ["ELEMENT_CODE_UNLISTED"]


def model_of(text: str) -> ShipNotice:
    (event,) = [e for e in iter_events(io.BytesIO(text.encode())) if isinstance(e, TransactionSet)]
    (notice,) = read_documents(text.encode())
    assert event.accepted
    return notice


def test_cartons_on_pallets_are_nested_in_the_model():
    notice = model_of(single("856", asn("0001", WITH_TARE)))
    (order,) = notice.orders
    (pallet,) = order.packs
    assert pallet.level == "T" and pallet.sscc.endswith("3") and pallet.items == []
    assert [(pack.level, pack.sscc[-1], len(pack.items)) for pack in pallet.packs] == [("P", "4", 1), ("P", "6", 1)]
    assert summarize(notice).endswith("1 orders, 3 packs, 2 items")


def test_nested_packs_are_written_back_as_the_same_tree():
    item = ShipItem({"UP": "012345678905"}, Decimal(4), "EA", "1")
    pallet = Pack("000000000000000001", "T", packs=[Pack("000000000000000002", "P", [item]), Pack(level="P")])
    notice = ShipNotice("ASN9", "20240116", "1200", orders=[ShipOrder("PO9", packs=[pallet])])
    text = write_interchange([notice], EnvelopeSettings("ME", "PARTNER"), CountingControlNumbers())
    assert "HL*3*2*T*1~" in text and "HL*4*3*P*1~" in text and "HL*5*4*I*0~" in text and "HL*6*3*P*0~" in text
    assert [i for i in issues_of(text) if i.is_error] == []
    assert read_documents(text.encode()) == [notice]
