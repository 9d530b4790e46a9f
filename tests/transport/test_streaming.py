"""`fetch_to` streams a file into a sink chunk by chunk, hashing on the way, never holding the whole file."""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc
from pathlib import Path

import pytest

from gp_pipelines.connectors.transport import FolderTransport, Transport, TransportError

from .conftest import partner_writes

MIB = 1024 * 1024
SIZE = 30 * MIB


class HashingSink:
    """A sink that keeps nothing: counts and hashes what it is given, as a spool to disk would cost no memory."""

    def __init__(self) -> None:
        self.size = 0
        self.writes = 0
        self.sha = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.size += len(data)
        self.writes += 1
        self.sha.update(data)
        return len(data)


def _big_file(root: Path, name: str = "945_big.x12") -> str:
    """A 30 MB inbound file written a chunk at a time; its sha256."""
    sha = hashlib.sha256()
    path = partner_writes(root, name, b"")
    with open(path, "ab") as handle:
        for _ in range(SIZE // MIB):
            chunk = os.urandom(MIB)
            sha.update(chunk)
            handle.write(chunk)
    return sha.hexdigest()


def test_a_30_mb_file_streams_with_its_size_and_hash(transport: Transport, root: Path) -> None:
    expected = _big_file(root)
    (listed,) = transport.list_inbound()
    sink = HashingSink()

    fetched = transport.fetch_to("945_big.x12", sink)  # type: ignore[arg-type] - write() is all a sink needs

    assert fetched.size == fetched.opened_size == sink.size == SIZE
    assert fetched.sha256 == sink.sha.hexdigest() == expected
    assert fetched.modified == listed.modified
    assert sink.writes >= SIZE // MIB  # chunk by chunk, never in one piece


def test_streaming_memory_stays_far_below_the_file_size(root: Path) -> None:
    expected = _big_file(root)
    transport = FolderTransport(root)
    sink = HashingSink()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        fetched = transport.fetch_to("945_big.x12", sink)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert fetched.sha256 == expected
    assert peak - before < 4 * MIB, f"streaming a {SIZE} byte file grew memory by {peak - before} bytes"


def test_small_chunks_give_the_same_bytes(transport: Transport, root: Path) -> None:
    data = bytes(range(256)) * 41
    partner_writes(root, "997_1.x12", data)
    sink = io.BytesIO()
    fetched = transport.fetch_to("997_1.x12", sink, chunk_size=7)
    assert sink.getvalue() == data and fetched.sha256 == hashlib.sha256(data).hexdigest()
    with pytest.raises(ValueError):
        transport.fetch_to("997_1.x12", io.BytesIO(), chunk_size=0)


def test_an_empty_file_streams_as_nothing(transport: Transport, root: Path) -> None:
    partner_writes(root, "997_empty.x12", b"")
    fetched = transport.fetch_to("997_empty.x12", io.BytesIO())
    assert (fetched.size, fetched.opened_size, fetched.sha256) == (0, 0, hashlib.sha256(b"").hexdigest())


def test_a_file_growing_while_it_is_read_reports_the_change(transport: Transport, root: Path) -> None:
    path = partner_writes(root, "945_growing.x12", b"a" * 4096)

    class PartnerKeepsWriting(HashingSink):
        def write(self, data: bytes) -> int:
            if self.writes == 0:
                with open(path, "ab") as handle:
                    handle.write(b"b" * 4096)
            return super().write(data)

    fetched = transport.fetch_to("945_growing.x12", PartnerKeepsWriting(), chunk_size=1024)  # type: ignore[arg-type]
    assert fetched.opened_size == 4096 and fetched.size == 8192  # the caller can see it changed


def test_a_failing_sink_raises_its_own_error_not_a_transport_error(transport: Transport, root: Path) -> None:
    partner_writes(root, "945_1.x12", b"x" * 10)

    class FullDisk:
        def write(self, data: bytes) -> int:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError) as caught:
        transport.fetch_to("945_1.x12", FullDisk())  # type: ignore[arg-type]
    assert not isinstance(caught.value, TransportError) and caught.value.errno == 28
    assert transport.fetch("945_1.x12") == b"x" * 10  # the transport is still fine


def test_a_fifo_named_like_a_file_is_refused_not_waited_on(transport: Transport, root: Path) -> None:
    partner_writes(root, "945_1.x12", b"x")
    os.mkfifo(root / "out" / "945_fifo.x12")
    assert [remote.name for remote in transport.list_inbound()] == ["945_1.x12"]
    for call in (lambda: transport.fetch("945_fifo.x12"), lambda: transport.stat("945_fifo.x12"),
                 lambda: transport.archive_inbound("945_fifo.x12")):
        with pytest.raises(TransportError) as caught:
            call()
        assert caught.value.retryable is False and "not a regular file" in caught.value.reason
