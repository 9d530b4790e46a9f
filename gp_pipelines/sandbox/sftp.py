"""A real SFTP server on 127.0.0.1 for tests, the demo and dev: one user, one password, one folder (chrooted).

It runs asyncssh's SFTP server in its own event loop on a daemon thread. The host key is generated once per
object and kept across `stop()`/`start()`, so a client that pinned `host_key_line` keeps trusting it; `stop()`
drops every open connection and `start()` binds the same port again, which is how tests play an outage.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from pathlib import Path
from typing import Self

import asyncssh

from gp_pipelines.sandbox.threaded import StartStop


class _PasswordOnly(asyncssh.SSHServer):
    """Password authentication for the one configured user; tracks connections so `stop()` can cut them."""

    def __init__(self, owner: SftpSandboxServer) -> None:
        self.owner = owner
        self.connection: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.connection = conn
        self.owner._connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._connections.discard(self.connection)

    def begin_auth(self, username: str) -> bool:
        return True  # authentication is always required

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        # Both compared in constant time, so a probe learns nothing from timing.
        user_ok = secrets.compare_digest(username.encode(), self.owner.username.encode())
        password_ok = secrets.compare_digest(password.encode(), self.owner._password.encode())
        return user_ok and password_ok


class SftpSandboxServer(StartStop):
    """Serves `root` over SFTP to `username`/`password` on 127.0.0.1; `port=0` picks a free port at `start()`."""

    start_timeout_seconds = 10.0

    def __init__(self, root: str | Path, username: str, password: str, port: int = 0) -> None:
        self.root = Path(root)
        self.username = username
        self._password = password
        self.port = port
        self._host_key = asyncssh.generate_private_key("ssh-ed25519")
        self._connections: set[asyncssh.SSHServerConnection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncssh.SSHAcceptor | None = None

    def __repr__(self) -> str:
        return f"SftpSandboxServer(root={str(self.root)!r}, port={self.port}, running={self.running})"

    @property
    def host_key_line(self) -> str:
        """The public host key as "ssh-ed25519 AAAA...", for a client's `known_host_key`."""
        return self._host_key.export_public_key("openssh").decode().split("\n")[0].strip()

    @property
    def host_key_fingerprint(self) -> str:
        return self._host_key.get_fingerprint()

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> Self:
        if self._thread is not None:
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name=f"sftp-sandbox-{self.port}", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            future = asyncio.run_coroutine_threadsafe(self._listen(), loop)
            self._server = future.result(self.start_timeout_seconds)
        except BaseException:
            self.stop()
            raise
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _listen(self) -> asyncssh.SSHAcceptor:
        chroot = str(self.root.resolve()).encode()
        return await asyncssh.create_server(
            lambda: _PasswordOnly(self),
            "127.0.0.1",
            self.port,
            server_host_keys=[self._host_key],
            sftp_factory=lambda channel: asyncssh.SFTPServer(channel, chroot=chroot),
            allow_scp=False,
            config=None,
            reuse_address=True,
        )

    async def _close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for connection in list(self._connections):
            connection.close()
        if server is not None:
            await server.wait_closed()
        self._connections.clear()

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._close(), loop).result(5)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            if not thread.is_alive():
                loop.close()
            self._loop = self._thread = None
            self._server = None

