"""FolderTransport and SftpTransport keep the same contract (each case runs against both), plus the failures
only a network transport has: bad credentials, a host key that does not match, an outage and its end."""

from __future__ import annotations

import os
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gp_pipelines.config import ConfigError, TransportConfig
from gp_pipelines.connectors.transport import (
    FolderTransport,
    SftpTransport,
    Transport,
    TransportError,
    is_visible_name,
    transport_for,
)
from gp_pipelines.sandbox.sftp import SftpSandboxServer

from .conftest import PASSWORD, USERNAME, sftp_transport


def _partner_writes(root: Path, name: str, data: bytes, mtime: int | None = None) -> Path:
    """What the partner does on its side: drop a file into our inbound folder ("out")."""
    path = root / "out" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


# ---------------------------------------------------------------- the shared contract


def test_put_delivers_the_exact_bytes_into_the_partner_inbox(transport: Transport, root: Path) -> None:
    transport.put("940_000000001.x12", b"ISA*first~")
    transport.put("940_000000001.x12", b"ISA*second~")  # a retried send replaces, never duplicates
    transport.put("940_000000002.x12", b"")

    assert sorted(p.name for p in (root / "in").iterdir()) == ["940_000000001.x12", "940_000000002.x12"]
    assert (root / "in" / "940_000000001.x12").read_bytes() == b"ISA*second~"
    assert (root / "in" / "940_000000002.x12").read_bytes() == b""


def test_put_is_atomic_for_a_reader_polling_the_inbox(transport: Transport, root: Path) -> None:
    data = os.urandom(1024) * 4096  # 4 MiB: long enough to be watched in flight
    (root / "in").mkdir()
    partial: list[tuple[str, int]] = []
    temporary: set[str] = set()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            with os.scandir(root / "in") as entries:
                for entry in entries:
                    try:
                        size = entry.stat().st_size
                    except FileNotFoundError:
                        continue  # a temporary name renamed away between listing and stat
                    if not is_visible_name(entry.name):
                        temporary.add(entry.name)
                    elif size != len(data):
                        partial.append((entry.name, size))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        transport.put("big.x12", data)
    finally:
        done.set()
        watcher.join()

    assert partial == [], "the reader saw a half-written file under its final name"
    assert all(name.startswith(".big.x12.") and name.endswith(".part") for name in temporary)
    assert os.listdir(root / "in") == ["big.x12"]  # no temporary file left behind
    assert (root / "in" / "big.x12").read_bytes() == data


def test_list_shows_finished_files_only_oldest_first(transport: Transport, root: Path) -> None:
    _partner_writes(root, "b_945.x12", b"bb", mtime=1_700_000_100)
    _partner_writes(root, "a_997.x12", b"a", mtime=1_700_000_100)
    _partner_writes(root, "z_945.x12", b"zzz", mtime=1_700_000_000)
    for name in (".hidden", ".c_945.x12.1a2b.part", "d_945.x12.tmp", "e.filepart"):
        _partner_writes(root, name, b"partial")
    (root / "out" / "processed").mkdir()
    _partner_writes(root, "processed/old.x12", b"done")

    files = transport.list_inbound()

    assert [(f.name, f.size) for f in files] == [("z_945.x12", 3), ("a_997.x12", 1), ("b_945.x12", 2)]
    assert files[0].modified == datetime.fromtimestamp(1_700_000_000, UTC)


def test_list_of_a_missing_inbound_folder_is_empty(transport: Transport) -> None:
    assert transport.list_inbound() == []


def test_fetch_returns_the_bytes_and_a_missing_file_is_not_retryable(transport: Transport, root: Path) -> None:
    payload = "ISA*00*é~".encode() + bytes(range(256))
    _partner_writes(root, "945_1.x12", payload)
    assert transport.fetch("945_1.x12") == payload

    with pytest.raises(TransportError) as caught:
        transport.fetch("nope.x12")
    assert caught.value.retryable is False
    assert caught.value.operation == "fetch" and "nope.x12" in str(caught.value)


def test_archive_moves_the_file_and_is_idempotent(transport: Transport, root: Path) -> None:
    _partner_writes(root, "945_1.x12", b"one")

    transport.archive_inbound("945_1.x12")
    transport.archive_inbound("945_1.x12")  # already moved: nothing to do, no error

    assert not (root / "out" / "945_1.x12").exists()
    assert (root / "out" / "processed" / "945_1.x12").read_bytes() == b"one"
    assert transport.list_inbound() == []


def test_archive_keeps_both_when_the_partner_reuses_a_name(transport: Transport, root: Path) -> None:
    _partner_writes(root, "945_1.x12", b"first")
    transport.archive_inbound("945_1.x12")
    _partner_writes(root, "945_1.x12", b"second")

    transport.archive_inbound("945_1.x12", folder="processed")

    archive = root / "out" / "processed"
    assert (archive / "945_1.x12").read_bytes() == b"first"
    assert (archive / "945_1.x12.1").read_bytes() == b"second"


def test_archive_of_a_file_that_never_was_fails(transport: Transport) -> None:
    with pytest.raises(TransportError) as caught:
        transport.archive_inbound("ghost.x12")
    assert caught.value.retryable is False and caught.value.operation == "archive"


@pytest.mark.parametrize("name", ["", "../escape.x12", "sub/945.x12", ".hidden", ".."])
def test_names_must_be_plain_file_names(transport: Transport, name: str) -> None:
    with pytest.raises(ValueError):
        transport.put(name, b"x")
    with pytest.raises(ValueError):
        transport.fetch(name)


# ---------------------------------------------------------------- outages and credentials


def test_folder_transport_on_a_missing_share_is_retryable(tmp_path: Path) -> None:
    transport = FolderTransport(tmp_path / "unmounted")
    for call in (lambda: transport.put("a.x12", b"a"), transport.list_inbound):
        with pytest.raises(TransportError) as caught:
            call()
        assert caught.value.retryable is True and "not reachable" in caught.value.reason


def test_wrong_password_is_a_clear_non_retryable_error_without_the_password(sftp_server: SftpSandboxServer) -> None:
    wrong = "Wr0ng-Secret-Value"
    with sftp_transport(sftp_server, password=wrong) as transport:
        with pytest.raises(TransportError) as caught:
            transport.list_inbound()
        assert "Wr0ng-Secret-Value" not in repr(transport)
    error = caught.value
    assert error.retryable is False
    assert f"authentication failed for user {USERNAME!r}" in str(error)
    assert wrong not in str(error) and wrong not in repr(error) and PASSWORD not in str(error)


def test_a_host_key_other_than_the_pinned_one_is_refused(sftp_server: SftpSandboxServer, root: Path) -> None:
    impostor = SftpSandboxServer(root, USERNAME, PASSWORD)  # a different generated key, never started
    with (
        sftp_transport(sftp_server, known_host_key=impostor.host_key_line) as transport,
        pytest.raises(TransportError) as caught,
    ):
        transport.list_inbound()
    assert caught.value.retryable is False and "does not match the pinned" in caught.value.reason


def test_an_unpinned_host_key_is_accepted_and_its_fingerprint_reported(sftp_server: SftpSandboxServer) -> None:
    with sftp_transport(sftp_server, known_host_key=None) as transport:
        assert transport.list_inbound() == []
        assert transport.host_key_fingerprint == sftp_server.host_key_fingerprint


def test_server_down_is_retryable_and_a_restart_brings_it_back(sftp_server: SftpSandboxServer, root: Path) -> None:
    with sftp_transport(sftp_server) as transport:
        transport.put("before.x12", b"1")  # the connection is open and kept

        sftp_server.stop()
        with pytest.raises(TransportError) as caught:
            transport.put("during.x12", b"2")
        assert caught.value.retryable is True
        assert "connection refused" in caught.value.reason
        assert PASSWORD not in str(caught.value)

        sftp_server.start()  # same port, same host key
        transport.put("after.x12", b"3")
        _partner_writes(root, "945.x12", b"945")
        assert [f.name for f in transport.list_inbound()] == ["945.x12"]
    assert sorted(os.listdir(root / "in")) == ["after.x12", "before.x12"]


def test_a_server_that_never_answers_times_out_as_retryable() -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts TCP, never speaks SSH
    try:
        port = silent.getsockname()[1]
        started = time.monotonic()
        with (
            SftpTransport("127.0.0.1", port, USERNAME, PASSWORD, timeout=0.5) as transport,
            pytest.raises(TransportError) as caught,
        ):
            transport.list_inbound()
        assert time.monotonic() - started < 5
        assert caught.value.retryable is True and "within 0.5 s" in caught.value.reason
    finally:
        silent.close()


# ---------------------------------------------------------------- from config


def test_transport_for_a_folder_config(root: Path) -> None:
    config = TransportConfig(kind="folder", root=str(root), outbound_dir="to_3pl", inbound_dir="from_3pl")
    transport = transport_for(config, environ={}, partner="acme_3pl")
    assert isinstance(transport, FolderTransport)
    transport.put("940.x12", b"x")
    assert (root / "to_3pl" / "940.x12").read_bytes() == b"x"


def test_transport_for_an_sftp_config_reads_the_secrets_from_the_environment(
    sftp_server: SftpSandboxServer, root: Path
) -> None:
    config = TransportConfig(
        kind="sftp", host="127.0.0.1", port=sftp_server.port, username_env="ACME_SFTP_USER",
        password_env="ACME_SFTP_PASSWORD", known_host_key=sftp_server.host_key_line,
    )  # fmt: skip
    environ = {"ACME_SFTP_USER": USERNAME, "ACME_SFTP_PASSWORD": PASSWORD}
    with transport_for(config, environ, partner="acme_3pl") as transport:
        assert isinstance(transport, SftpTransport)
        transport.put("940.x12", b"x")
        assert PASSWORD not in repr(transport)
    assert (root / "in" / "940.x12").read_bytes() == b"x"


def test_transport_for_names_the_missing_variable(sftp_server: SftpSandboxServer) -> None:
    config = TransportConfig(
        kind="sftp", host="127.0.0.1", port=sftp_server.port, username_env="ACME_SFTP_USER",
        password_env="ACME_SFTP_PASSWORD",
    )  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        transport_for(config, {"ACME_SFTP_USER": USERNAME}, partner="acme_3pl")
    message = str(caught.value)
    assert "acme_3pl" in message and "transport.password_env" in message and "ACME_SFTP_PASSWORD" in message


def test_transport_for_rejects_a_host_key_that_is_not_one() -> None:
    config = TransportConfig(kind="sftp", host="127.0.0.1", username_env="ACME_SFTP_USER", known_host_key="not-a-key")
    with pytest.raises(ConfigError, match=r"transport\.known_host_key"):
        transport_for(config, {"ACME_SFTP_USER": USERNAME}, partner="acme_3pl")


def test_transport_for_refuses_a_folder_that_climbs_out_of_the_partner_folder(root: Path) -> None:
    sftp = {"host": "127.0.0.1", "username_env": "ACME_SFTP_USER"}
    for kind, extra in (("folder", {"root": str(root)}), ("sftp", sftp)):
        config = TransportConfig(kind=kind, inbound_dir="../other_partner/out", **extra)
        with pytest.raises(ConfigError, match=r"transport\.inbound_dir"):
            transport_for(config, {"ACME_SFTP_USER": USERNAME}, partner="acme_3pl")
