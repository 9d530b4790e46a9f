"""The 3PL sandbox driven the way the platform drives a real one: 940s put over SFTP, 997s and 945s read back
over SFTP, every file checked with the project's own reader and validator."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from gp_pipelines.connectors.transport import SftpTransport
from gp_pipelines.edi.ack import functional_acks, write_acks
from gp_pipelines.edi.models import (
    FunctionalAck,
    Party,
    WarehouseOrderLine,
    WarehouseShippingAdvice,
    WarehouseShippingOrder,
)
from gp_pipelines.edi.report import parse_report
from gp_pipelines.edi.writer import CountingControlNumbers, EnvelopeSettings, read_documents, write_interchange
from gp_pipelines.sandbox.sftp import SftpSandboxServer
from gp_pipelines.sandbox.threepl import MALFORMED_KINDS, ThreePLOptions, ThreePLWarehouse

from .conftest import sftp_transport

T0 = 1_790_000_000.0
DELAY = 30.0
GAP = 60.0
OURS, THEIRS = "GPPIPELINES", "SANDBOX3PL"


def shipping_order(number: str, *, status: str = "N", scac: str = "") -> WarehouseShippingOrder:
    return WarehouseShippingOrder(
        order_number=number, po_number=f"PO-{number}", status=status, carrier_scac=scac,
        parties=[Party("ST", "ACME STORE", "92", "0042", ["1 MAIN ST"], "SPRINGFIELD", "IL", "62701", "US")],
        lines=[
            WarehouseOrderLine("1", Decimal(12), "EA", "012345678905", {"VN": "AB-1"}, "SMALL WIDGET"),
            WarehouseOrderLine("2", Decimal(3), "CA", "", {"VN": "CD-2", "SK": "CD-2-SKU"}),
            WarehouseOrderLine("3", Decimal(7), "EA", "", {"SK": "EF-3"}),
        ],
    )  # fmt: skip


class Depositor:
    """The platform's side of the exchange, as the platform would do it: our EDI writer, the SFTP transport."""

    def __init__(self, transport: SftpTransport) -> None:
        self.transport = transport
        self.control = CountingControlNumbers(start=100)
        self.settings = EnvelopeSettings(sender_id=OURS, receiver_id=THEIRS)

    def interchange(self, *orders: WarehouseShippingOrder) -> bytes:
        return write_interchange(list(orders), self.settings, self.control).encode()

    def send(self, name: str, data: bytes) -> None:
        self.transport.put(name, data)

    def collect(self) -> dict[str, bytes]:
        """Everything the warehouse sent, archived after reading as the platform does."""
        files = {}
        for remote in self.transport.list_inbound():
            files[remote.name] = self.transport.fetch(remote.name)
            self.transport.archive_inbound(remote.name)
        return files


def acks_in(files: dict[str, bytes]) -> list[FunctionalAck]:
    return [doc for name, data in files.items() if name.startswith("997") for doc in read_documents(data)]


def advices_in(files: dict[str, bytes]) -> list[WarehouseShippingAdvice]:
    found = [doc for name, data in sorted(files.items()) if name.startswith("945") for doc in read_documents(data)]
    return [doc for doc in found if isinstance(doc, WarehouseShippingAdvice)]


def is_valid(data: bytes) -> bool:
    return parse_report(io.BytesIO(data))["valid"]


@pytest.fixture
def depositor(sftp_server: SftpSandboxServer) -> Iterator[Depositor]:
    with sftp_transport(sftp_server) as transport:
        yield Depositor(transport)


def warehouse(root: Path, **options: object) -> ThreePLWarehouse:
    values: dict[str, object] = {"seed": 7, "ship_delay_seconds": DELAY, "partial_gap_seconds": GAP}
    values.update(options)
    return ThreePLWarehouse(
        root, warehouse_id=THEIRS, depositor_id=OURS, options=ThreePLOptions(**values),  # type: ignore[arg-type]
        clock=lambda: T0,
    )  # fmt: skip


# ---------------------------------------------------------------- the normal exchange


def test_a_940_gets_an_accepting_997_then_a_valid_945_after_the_delay(depositor: Depositor, root: Path) -> None:
    threepl = warehouse(root)
    order = shipping_order("SO-1001", scac="UPSN")
    depositor.send("940_SO-1001.x12", depositor.interchange(order))

    threepl.process_once()
    files = depositor.collect()
    assert [name[:3] for name in files] == ["997"]
    assert all(is_valid(data) for data in files.values())
    [ack] = acks_in(files)
    assert (ack.functional_id, ack.group_control_number, ack.status) == ("OW", "100", "A")
    assert [(s.set_id, s.status) for s in ack.sets] == [("940", "A")]
    assert (root / "in" / "processed" / "940_SO-1001.x12").exists()

    threepl.process_once(now=T0 + DELAY - 1)
    assert depositor.collect() == {}  # not due yet

    threepl.advance(DELAY)
    threepl.process_once()
    files = depositor.collect()
    [(name, data)] = files.items()
    assert name.startswith("945_SO-1001_") and is_valid(data)
    [advice] = advices_in(files)
    [record] = threepl.shipments()
    assert advice.order_number == "SO-1001" and advice.po_number == "PO-SO-1001"
    assert advice.carrier_scac == "UPSN" and advice.shipment_id == record.tracking_number
    assert record.tracking_number.startswith("1Z") and record.file_names == [name]
    assert [(line.line_number, line.product_ids, line.quantity_ordered) for line in advice.lines] == [
        ("1", {"VN": "AB-1"}, 12), ("2", {"VN": "CD-2"}, 3), ("3", {"SK": "EF-3"}, 7),
    ]  # fmt: skip
    assert all(line.status == "CC" and line.quantity_shipped == line.quantity_ordered for line in advice.lines)
    assert advice.lines[0].upc == "012345678905" and advice.lines[0].description == "SMALL WIDGET"
    assert all(len(line.license_plate) == 20 for line in advice.lines)  # SSCC-18 with its "00"


def test_the_seed_decides_carrier_and_tracking(tmp_path: Path) -> None:
    def run(seed: int, folder: str) -> list[tuple[str, str, str]]:
        threepl = warehouse(tmp_path / folder, seed=seed, ship_delay_seconds=0)
        settings = EnvelopeSettings(sender_id=OURS, receiver_id=THEIRS)
        data = write_interchange([shipping_order("SO-1"), shipping_order("SO-2")], settings).encode()
        (tmp_path / folder / "in" / "940.x12").write_bytes(data)
        threepl.process_once()
        return [(r.order_number, r.carrier_scac, r.tracking_number) for r in threepl.shipments()]

    first = run(1, "a")
    assert [order for order, _, _ in first] == ["SO-1", "SO-2"]
    assert first == run(1, "b")
    assert [tracking for _, _, tracking in first] != [tracking for _, _, tracking in run(2, "c")]


def test_a_940_seen_twice_is_processed_once(depositor: Depositor, root: Path) -> None:
    threepl = warehouse(root, ship_delay_seconds=0)
    data = depositor.interchange(shipping_order("SO-2001"))
    depositor.send("940_a.x12", data)
    depositor.send("940_b.x12", depositor.interchange(shipping_order("SO-2001")))  # re-sent in a new interchange

    threepl.process_once()
    depositor.send("940_a.x12", data)  # the very same file again, after it was archived
    threepl.process_once()

    files = depositor.collect()
    assert len(threepl.orders()) == 1 and len(threepl.shipments()) == 1
    assert len(advices_in(files)) == 1
    assert [ack.status for ack in acks_in(files)] == ["A", "A"]  # every group received was answered once
    assert sorted(p.name for p in (root / "in" / "processed").iterdir()) == ["940_a.x12", "940_a.x12.1", "940_b.x12"]


def test_a_malformed_940_gets_a_rejecting_997_and_no_shipment(depositor: Depositor, root: Path) -> None:
    threepl = warehouse(root, ship_delay_seconds=0)
    text = depositor.interchange(shipping_order("SO-3001")).decode()
    broken = text.replace("SE*", "SE*9", 1)  # SE01 no longer counts the set's segments
    depositor.send("940_bad.x12", broken.encode())

    threepl.process_once()

    files = depositor.collect()
    [ack] = acks_in(files)
    assert (ack.functional_id, ack.status, ack.sets_accepted) == ("OW", "R", 0)
    assert ack.sets[0].status == "R" and "4" in ack.sets[0].codes  # AK502 4: SE01 count wrong
    assert threepl.orders() == [] and advices_in(files) == []


def test_a_file_that_is_not_x12_is_set_aside(depositor: Depositor, root: Path) -> None:
    threepl = warehouse(root)
    depositor.send("notes.txt", b"hello, this is not EDI")

    threepl.process_once()

    assert depositor.collect() == {}
    assert (root / "in" / "rejected" / "notes.txt").exists()
    assert [name for name, _ in threepl.rejected_files()] == ["notes.txt"]


def test_a_cancel_before_shipping_stops_the_order(depositor: Depositor, root: Path) -> None:
    threepl = warehouse(root)
    depositor.send("940_1.x12", depositor.interchange(shipping_order("SO-4001")))
    threepl.process_once()
    depositor.send("940_2.x12", depositor.interchange(shipping_order("SO-4001", status="C")))
    threepl.process_once(now=T0 + DELAY * 10)

    assert advices_in(depositor.collect()) == []
    assert threepl.orders()[0].cancelled


# ---------------------------------------------------------------- behaviours


def test_partial_shipment_sends_the_rest_in_a_second_945(depositor: Depositor, root: Path) -> None:
    threepl = warehouse(root, partial_rate=1.0)
    order = shipping_order("SO-5001")
    depositor.send("940.x12", depositor.interchange(order))
    threepl.process_once()
    depositor.collect()

    threepl.process_once(now=T0 + DELAY)
    first_files = depositor.collect()
    [first] = advices_in(first_files)
    assert all(is_valid(data) for data in first_files.values())
    assert {line.status for line in first.lines} <= {"CC", "PR"} and "PR" in {line.status for line in first.lines}

    threepl.process_once(now=T0 + DELAY + GAP - 1)
    assert depositor.collect() == {}
    threepl.process_once(now=T0 + DELAY + GAP)
    second_files = depositor.collect()
    [second] = advices_in(second_files)
    assert all(is_valid(data) for data in second_files.values())
    assert all(line.status == "CC" and line.quantity_difference == 0 for line in second.lines)
    assert first.shipment_id != second.shipment_id  # each shipment has its own tracking number

    shipped: dict[str, Decimal] = {}
    for advice in (first, second):
        assert advice.order_number == "SO-5001"
        for line in advice.lines:
            shipped[line.line_number] = shipped.get(line.line_number, Decimal(0)) + line.quantity_shipped
    assert shipped == {line.line_number: line.quantity for line in order.lines}
    assert threepl.orders()[0].fulfilment == "partial"
    assert [record.final for record in threepl.shipments()] == [False, True]


def test_short_ship_cancels_the_rest(depositor: Depositor, root: Path) -> None:
    threepl = warehouse(root, short_rate=1.0)
    order = shipping_order("SO-6001")
    depositor.send("940.x12", depositor.interchange(order))
    threepl.process_once()
    threepl.process_once(now=T0 + DELAY + GAP * 10)

    files = depositor.collect()
    [advice] = advices_in(files)
    assert all(is_valid(data) for data in files.values())
    assert len(advice.lines) == len(order.lines)
    short = [line for line in advice.lines if line.quantity_shipped < line.quantity_ordered]
    assert short and all(line.status == "CP" for line in short)
    assert all(line.status == "CC" for line in advice.lines if line not in short)
    assert all(line.quantity_difference == line.quantity_ordered - line.quantity_shipped for line in advice.lines)
    assert threepl.orders()[0].fulfilment == "short" and len(threepl.shipments()) == 1


EXPECTED_ISSUE = {
    "se_count": "SE_COUNT_MISMATCH",
    "ge_count": "GE_SET_COUNT",
    "iea_control": "IEA_CONTROL_MISMATCH",
    "truncated": "SE_MISSING",
}


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_a_forced_malformed_945_is_broken_the_way_it_says(depositor: Depositor, root: Path, kind: str) -> None:
    threepl = warehouse(root, ship_delay_seconds=0)
    threepl.force_next_malformed(kind)
    depositor.send("940.x12", depositor.interchange(shipping_order("SO-7001"), shipping_order("SO-7002")))
    threepl.process_once()

    files = {name: data for name, data in depositor.collect().items() if name.startswith("945")}
    [bad] = [data for name, data in files.items() if "SO-7001" in name]
    [good] = [data for name, data in files.items() if "SO-7002" in name]
    report = parse_report(io.BytesIO(bad))
    assert not report["valid"] and EXPECTED_ISSUE[kind] in {issue["code"] for issue in report["errors"]}
    assert is_valid(good)  # only the next one was broken
    assert [record.malformed for record in threepl.shipments()] == [kind, None]


def test_a_rejected_malformed_945_is_sent_again_corrected(depositor: Depositor, root: Path) -> None:
    threepl = warehouse(root, ship_delay_seconds=0)
    threepl.force_next_malformed("truncated")
    depositor.send("940.x12", depositor.interchange(shipping_order("SO-8001")))
    threepl.process_once()
    [bad] = [data for name, data in depositor.collect().items() if name.startswith("945")]
    assert not is_valid(bad)

    # The platform answers the 945's group with its 997, as it answers every inbound group.
    reply = write_acks(functional_acks(io.BytesIO(bad)), depositor.control)
    [ack] = read_documents(reply.encode())
    assert ack.status == "R"
    depositor.send("997_reply.x12", reply.encode())
    threepl.process_once()

    files = depositor.collect()
    [corrected] = advices_in(files)
    assert corrected.order_number == "SO-8001" and all(is_valid(data) for data in files.values())
    [record] = threepl.shipments()
    assert record.resent and len(record.file_names) == 2
    assert [ack.status for ack in threepl.received_acks()] == ["R"]


def test_duplicate_delivery_sends_the_same_945_twice(depositor: Depositor, root: Path) -> None:
    threepl = warehouse(root, ship_delay_seconds=0, duplicate_rate=1.0)
    depositor.send("940.x12", depositor.interchange(shipping_order("SO-9001")))
    threepl.process_once()

    files = {name: data for name, data in depositor.collect().items() if name.startswith("945")}
    assert len(files) == 2
    first, second = files.values()
    assert first == second and is_valid(first)
    [record] = threepl.shipments()
    assert record.duplicated and sorted(record.file_names) == sorted(files)


def test_force_next_duplicate_affects_only_the_next_945(depositor: Depositor, root: Path) -> None:
    threepl = warehouse(root, ship_delay_seconds=0)
    threepl.force_next_duplicate()
    depositor.send("940.x12", depositor.interchange(shipping_order("SO-9101"), shipping_order("SO-9102")))
    threepl.process_once()

    names = [name for name in depositor.collect() if name.startswith("945")]
    assert sum("SO-9101" in name for name in names) == 2 and sum("SO-9102" in name for name in names) == 1


def test_rates_mix_behaviours_deterministically(tmp_path: Path) -> None:
    def behaviours(folder: str) -> list[tuple[str, str | None, bool]]:
        threepl = warehouse(tmp_path / folder, partial_rate=0.3, short_rate=0.3, malformed_rate=0.2, duplicate_rate=0.2)
        orders = [shipping_order(f"SO-{n}") for n in range(30)]
        data = write_interchange(orders, EnvelopeSettings(sender_id=OURS, receiver_id=THEIRS)).encode()
        (tmp_path / folder / "in" / "940.x12").write_bytes(data)
        threepl.process_once()
        return [(o.fulfilment, o.shipments[0].malformed, o.shipments[0].duplicated) for o in threepl.orders()]

    mix = behaviours("a")
    assert {fulfilment for fulfilment, _, _ in mix} == {"full", "partial", "short"}
    assert 0 < sum(malformed is not None for _, malformed, _ in mix) < 30
    assert 0 < sum(duplicated for _, _, duplicated in mix) < 30
    assert mix == behaviours("b")


def test_background_polling_ships_without_being_called(depositor: Depositor, root: Path) -> None:
    threepl = ThreePLWarehouse(
        root, warehouse_id=THEIRS, depositor_id=OURS, options=ThreePLOptions(ship_delay_seconds=0)
    )
    depositor.send("940.x12", depositor.interchange(shipping_order("SO-9201")))
    with threepl.start(poll_interval=0.02):
        deadline = time.monotonic() + 5
        while not threepl.shipments() and time.monotonic() < deadline:
            time.sleep(0.02)
    assert len(threepl.shipments()) == 1 and threepl.last_error is None
    assert len(advices_in(depositor.collect())) == 1
