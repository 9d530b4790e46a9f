"""The EDI exchange log: files kept once, interchanges awaiting their 997, acks matched, overdue ones found."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from gp_pipelines.automation import exchange
from gp_pipelines.config import PartnerConfig
from gp_pipelines.edi.ack import functional_acks
from gp_pipelines.edi.models import WarehouseOrderLine, WarehouseShippingOrder

PARTNER = PartnerConfig(
    key="tpl", name="Test 3PL", kind="threepl", instance="au", interchange_id="TPLWMS",
    transport={"kind": "folder", "root": "/nonexistent"},
)  # fmt: skip


def _order(number: str) -> WarehouseShippingOrder:
    return WarehouseShippingOrder(
        order_number=number, references={"SA": "sale-1"},
        lines=[WarehouseOrderLine("1", Decimal("2"), "EA", product_ids={"VN": "SKU-1"})],
    )  # fmt: skip


@pytest.fixture
def conn(db):
    exchange.ensure_exchange_tables(db)
    return db


def test_store_file_keeps_one_row_per_name_and_content(conn):
    first = exchange.store_file(conn, "tpl", "in", "945_1.x12", b"ISA...")
    again = exchange.store_file(conn, "tpl", "in", "945_1.x12", b"ISA...")
    changed = exchange.store_file(conn, "tpl", "in", "945_1.x12", b"ISA... changed")
    assert first.created and not again.created and changed.created
    assert first.id == again.id != changed.id
    exchange.mark_file(conn, first.id, "quarantined", "bad envelope")
    assert exchange.store_file(conn, "tpl", "in", "945_1.x12", b"ISA...").reason == "bad envelope"
    assert exchange.file_content(conn, changed.id) == b"ISA... changed"
    with pytest.raises(ValueError, match="file state"):
        exchange.mark_file(conn, first.id, "lost")


def test_outbound_groups_await_their_997_and_acks_match_by_group_number(conn):
    content = exchange.write_for_partner(conn, PARTNER, [_order("SO-1-1"), _order("SO-1-2")]).encode()
    stored = exchange.store_file(conn, "tpl", "out", "940_tpl_SO-1.x12", content, state="sent")
    groups = exchange.record_interchanges(conn, "tpl", "out", stored.id, content, ack_within=timedelta(hours=1))
    assert [(g.functional_id, g.set_ids) for g in groups] == [("OW", ("940", "940"))]
    # Logging the same file again adds nothing.
    exchange.record_interchanges(conn, "tpl", "out", stored.id, content, ack_within=timedelta(hours=1))
    assert conn.execute("SELECT count(*) FROM automation.edi_interchanges").fetchone()[0] == 1

    later = datetime.now(UTC) + timedelta(hours=2)
    assert [row["group_control"] for row in exchange.overdue_acks(conn, later)] == [groups[0].group_control]
    assert exchange.overdue_acks(conn) == []  # not due yet

    # The partner's 997, built by our own ack builder from what we sent: it accepts the group.
    [(_header, ack)] = functional_acks(io.BytesIO(content))
    matched = exchange.apply_functional_ack(conn, "tpl", ack)
    assert matched["state"] == "accepted" and matched["sets_accepted"] == 2
    assert exchange.overdue_acks(conn, later) == []
    state = conn.execute("SELECT state FROM automation.interchange_status").fetchone()[0]
    assert state == "accepted"


def test_an_ack_for_an_unknown_group_matches_nothing(conn):
    content = exchange.write_for_partner(conn, PARTNER, [_order("SO-9-1")]).encode()
    [(_header, ack)] = functional_acks(io.BytesIO(content))
    assert exchange.apply_functional_ack(conn, "other_partner", ack) is None


def test_control_numbers_persist_per_partner(conn):
    first = exchange.groups_of(exchange.write_for_partner(conn, PARTNER, [_order("A")]).encode())
    second = exchange.groups_of(exchange.write_for_partner(conn, PARTNER, [_order("B")]).encode())
    assert int(second[0].interchange_control) == int(first[0].interchange_control) + 1
    assert int(second[0].group_control) == int(first[0].group_control) + 1


def test_envelope_uses_the_partner_config():
    settings = exchange.envelope_for(PARTNER.model_copy(update={"usage": "T", "element_separator": "|"}))
    assert (settings.sender_id, settings.receiver_id, settings.usage) == ("GPPIPELINES", "TPLWMS", "T")
    assert settings.delimiters.element == "|"
    assert exchange.outbound_file_name(PARTNER, "940", "SO-1/2") == "940_tpl_SO-1_2.x12"
