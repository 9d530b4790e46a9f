"""Reading a large partner file keeps only bounded answers (the one database read is the first 945's order)."""

from __future__ import annotations

import io

import pytest

from gp_pipelines.automation.inbound import AK2_FOR_EVERY_SET_UP_TO, MAX_REASONS, _scan
from gp_pipelines.automation.orders import ensure_order_tables
from gp_pipelines.config import PartnerConfig

PARTNER = PartnerConfig(key="acme", name="Acme", kind="threepl", instance="au", interchange_id="ACME3PL",
                        our_id="GPPIPELINES", transport={"kind": "folder", "root": "/tmp/unused"})
_SET = ("ST*945*{n:09d}~W06*F*SO-{n}*20261122*SHIP{n}~N1*ST*Customer*92*{n1}~W27*M*UPSN~"
        "LX*1~W12*CC*1*1*0*EA**VN*SKU-{n}~W03*1~SE*8*{n:09d}~")


def _file(sets: int, bad_every: int) -> bytes:
    isa = ("ISA*00*          *00*          *ZZ*ACME3PL        *ZZ*GPPIPELINES    *261122*1200*U*00401*000000001*"
           "0*T*>~GS*SW*ACME3PL*GPPIPELINES*20261122*1200*1*X*004010~")
    body = "".join(_SET.format(n=n, n1="1" if n % bad_every == 0 else "C1") for n in range(1, sets + 1))
    return f"{isa}{body}GE*{sets}*1~IEA*1*000000001~".encode()


@pytest.fixture
def conn(db):
    ensure_order_tables(db)
    return db


def test_a_small_group_answers_every_set_in_order(conn):
    scan = _scan(conn, PARTNER, io.BytesIO(_file(6, bad_every=3)), {"945": None})
    assert "no 940 of ours" in scan.unmatched  # the first document decides; the rest are not looked up
    ack = scan.groups[0].ack(reject_all=False)
    assert [s.status for s in ack.sets] == ["A", "A", "R", "A", "A", "R"]
    assert (ack.status, ack.sets_received, ack.sets_accepted) == ("P", 6, 4)


def test_a_large_group_keeps_counts_and_a_bounded_number_of_answers_and_reasons(conn):
    sets = 3 * AK2_FOR_EVERY_SET_UP_TO
    scan = _scan(conn, PARTNER, io.BytesIO(_file(sets, bad_every=1)), {})
    group = scan.groups[0]
    assert group.refused_count == sets and len(group.refused) == AK2_FOR_EVERY_SET_UP_TO
    assert group.accepted == [] and group.order == []
    assert len(scan.issues) == MAX_REASONS and scan.issue_count == sets
    ack = group.ack(reject_all=False)
    assert (ack.status, ack.sets_received, ack.sets_accepted, len(ack.sets)) == ("R", sets, 0, AK2_FOR_EVERY_SET_UP_TO)
    mixed = _scan(conn, PARTNER, io.BytesIO(_file(sets, bad_every=10)), {}).groups[0].ack(reject_all=False)
    assert (mixed.status, mixed.sets_received, mixed.sets_accepted) == ("P", sets, sets - sets // 10)
    assert len(mixed.sets) == sets // 10 and all(s.status == "R" for s in mixed.sets)
