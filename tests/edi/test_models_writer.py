"""Models and the writer: write -> read gives back an equal model for every set; what is written validates."""

from __future__ import annotations

import io
from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gp_pipelines.edi.codec import document_from_dict, to_jsonable
from gp_pipelines.edi.mapping import document_from_segments
from gp_pipelines.edi.models import FunctionalAck, PurchaseOrder, ShipNotice
from gp_pipelines.edi.reader import Delimiters, iter_segments
from gp_pipelines.edi.validator import TransactionSet, iter_events
from gp_pipelines.edi.writer import CountingControlNumbers, EnvelopeSettings, read_documents, write_interchange
from tests.edi.helpers import BODIES, issues_of, single
from tests.edi.strategies import DOCUMENTS

NOW = datetime(2024, 1, 15, 14, 30)
SETTINGS = EnvelopeSettings(sender_id="ME", receiver_id="PARTNER")
DELIMITER_CHOICES = [
    Delimiters("*", ">", "~", "^", "\n"),
    Delimiters("|", "^", "~", None, ""),
    Delimiters("*", ":", "'", "!", "\r\n"),
    Delimiters("\x1f", "\x1e", "\x1c", None, ""),
    Delimiters("*", ">", "\n", None, ""),
]


def write(documents, **overrides) -> str:
    envelope = EnvelopeSettings(**{"sender_id": "ME", "receiver_id": "PARTNER", **overrides})
    return write_interchange(documents, envelope, CountingControlNumbers(), NOW)


def model_of(text: str):
    for event in iter_events(io.BytesIO(text.encode())):
        if isinstance(event, TransactionSet):
            return document_from_segments(event.set_id, event.segments)
    return None


@pytest.mark.parametrize("set_id", sorted(BODIES))
def test_fixture_reads_and_rewrites_to_the_same_model(set_id):
    document = model_of(single(set_id))
    rewritten = write([document])
    assert [i for i in issues_of(rewritten) if i.is_error] == []
    assert read_documents(rewritten.encode()) == [document]


def test_purchase_order_model():
    order = model_of(single("850"))
    assert isinstance(order, PurchaseOrder)
    assert (order.po_number, order.po_date, order.references, order.dates) == (
        "PO123", "20240115", {"DP": "038"}, {"002": "20240201"}
    )  # fmt: skip
    (ship_to,) = order.parties
    assert (ship_to.role, ship_to.name, ship_to.city, ship_to.address_lines) == (
        "ST", "ACME STORE", "SPRINGFIELD", ["1 MAIN ST"]
    )  # fmt: skip
    first = order.lines[0]
    assert (first.quantity, first.unit_price, first.product_ids, first.description) == (
        Decimal(12), Decimal("9.25"), {"UP": "012345678905", "VN": "AB-1"}, "SMALL WIDGET"
    )  # fmt: skip


def test_ship_notice_levels():
    notice = model_of(single("856"))
    assert isinstance(notice, ShipNotice)
    assert notice.shipment.carrier_scac == "UPSN" and notice.shipment.weight == Decimal(10)
    (order,) = notice.orders
    assert order.po_number == "PO123"
    assert [pack.sscc[-4:] for pack in order.packs] == ["2360", "2377"]
    assert [item.product_ids for pack in order.packs for item in pack.items] == [
        {"UP": "012345678905"}, {"VN": "CD-2"}
    ]  # fmt: skip


def test_envelope_ids_counts_and_fixed_width_isa():
    text = write([model_of(single("850")), model_of(single("856")), model_of(single("850"))],
                 sender_qualifier="01", receiver_qualifier="08", usage="T", interchange_version="00501")  # fmt: skip
    lines = text.splitlines()
    assert len(lines[0]) == 106
    assert lines[0] == ("ISA*00*          *00*          *01*ME             *08*PARTNER        *240115*1430*^*00501*"
                        "000000001*0*T*>~")  # fmt: skip
    assert [line for line in lines if line.startswith(("GS", "GE", "IEA"))] == [
        "GS*PO*ME*PARTNER*20240115*1430*1*X*004010~", "GE*2*1~",
        "GS*SH*ME*PARTNER*20240115*1430*2*X*004010~", "GE*1*2~", "IEA*2*000000001~",
    ]  # fmt: skip
    assert [line for line in lines if line.startswith("ST")] == ["ST*850*0001~", "ST*850*0002~", "ST*856*0003~"]
    assert issues_of(text) == []


def test_delimiters_inside_data_are_replaced():
    order = model_of(single("850"))
    order.lines[0].description = "3*4~5>6^7"
    text = write([order])
    assert "3 4 5 6 7" in text
    assert issues_of(text) == []


def test_trailing_empty_elements_are_dropped_and_empty_segments_never_written():
    order = model_of(single("850"))
    order.parties[0].address_lines = []
    order.parties[0].city = order.parties[0].state = order.parties[0].postal_code = order.parties[0].country = ""
    text = write([order])
    assert "N1*ST*ACME STORE*92*0042~" in text and "N4" not in text and "**~" not in text


def test_invalid_delimiters_are_refused():
    with pytest.raises(ValueError):
        EnvelopeSettings("A", "B", delimiters=Delimiters("*", "*", "~"))
    with pytest.raises(ValueError):
        EnvelopeSettings("A", "B", delimiters=Delimiters("*", "A", "~"))


def test_control_numbers_wrap():
    numbers = CountingControlNumbers(start=999_999_999)
    assert [numbers.next_number("ISA") for _ in range(2)] == [999_999_999, 1]


def test_json_codec_round_trip():
    ack = FunctionalAck("PO", "12", "A", 1, 1, 1)
    assert document_from_dict("997", to_jsonable(ack)) == ack
    notice = model_of(single("856"))
    assert document_from_dict("856", to_jsonable(notice)) == notice
    with pytest.raises(ValueError):
        document_from_dict("123", {})


@pytest.mark.parametrize("set_id", sorted(DOCUMENTS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_models_round_trip_and_validate(set_id, data):
    document = data.draw(DOCUMENTS[set_id])
    delimiters = data.draw(st.sampled_from(DELIMITER_CHOICES))
    text = write([document], delimiters=delimiters)
    assert read_documents(text.encode("utf-8")) == [document]
    assert [str(issue) for issue in issues_of(text) if issue.is_error] == []
    segments = list(iter_segments(io.BytesIO(text.encode("utf-8"))))
    assert segments[0].delimiters.element == delimiters.element
