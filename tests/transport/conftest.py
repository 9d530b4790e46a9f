"""Fixtures: a real SFTP sandbox server on 127.0.0.1 over a temporary folder, and both transports on that folder."""

from __future__ import annotations

from collections.abc import Iterator
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
