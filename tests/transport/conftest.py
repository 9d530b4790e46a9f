"""Fixtures: a real SFTP sandbox server on 127.0.0.1 over a temporary folder, and both transports on that folder."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gp_pipelines.connectors.transport import FolderTransport, SftpTransport, Transport
from gp_pipelines.sandbox.sftp import SftpSandboxServer

USERNAME = "depositor"
PASSWORD = "s3cret-Pa55word"
TIMEOUT = 5.0


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "partner"
    folder.mkdir()
    return folder


@pytest.fixture
def sftp_server(root: Path) -> Iterator[SftpSandboxServer]:
    with SftpSandboxServer(root, USERNAME, PASSWORD) as server:
        yield server


def sftp_transport(server: SftpSandboxServer, **overrides: object) -> SftpTransport:
    values: dict[str, object] = {"known_host_key": server.host_key_line, "timeout": TIMEOUT}
    values.update(overrides)
    password = str(values.pop("password", PASSWORD))
    return SftpTransport("127.0.0.1", server.port, USERNAME, password, **values)  # type: ignore[arg-type]


@pytest.fixture(params=["folder", "sftp"])
def transport(request: pytest.FixtureRequest, root: Path) -> Iterator[Transport]:
    """The same partner folder, reached as a watched folder or over SFTP: both must behave the same."""
    if request.param == "folder":
        with FolderTransport(root) as folder:
            yield folder
        return
    server = request.getfixturevalue("sftp_server")
    with sftp_transport(server) as sftp:
        yield sftp


@pytest.fixture(params=["folder", "sftp"])
def make_transport(request: pytest.FixtureRequest, root: Path) -> Iterator[Callable[..., Transport]]:
    """Like `transport`, with other folders: `make_transport(inbound_dir="edi/out")`."""
    made: list[Transport] = []

    def make(**folders: str) -> Transport:
        if request.param == "folder":
            made.append(FolderTransport(root, **folders))
        else:
            made.append(sftp_transport(request.getfixturevalue("sftp_server"), **folders))
        return made[-1]

    yield make
    for transport in made:
        transport.close()


def partner_writes(root: Path, name: str | bytes, data: bytes, mtime: int | None = None) -> bytes:
    """What the partner does on its side: drop a file into our inbound folder ("out"); any bytes make a name."""
    folder = os.fsencode(root / "out")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, os.fsencode(name))
    with open(path, "wb") as handle:
        handle.write(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path
