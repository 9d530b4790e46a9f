"""Moving EDI files to and from a partner: one interface, two ways (SFTP, or a watched folder on a shared disk).

The directions are named from our side: `put` writes into the partner's inbox (`outbound_dir`, "in" by default),
`list_inbound`/`fetch` read what the partner left for us (`inbound_dir`, "out" by default), and
`archive_inbound` moves a file we have stored into a subfolder on the partner's side, so it is not read again
and nothing is deleted.

Guarantees both implementations keep (the tests run the same cases against both):
- `put` is atomic for the reader: the bytes go to a hidden temporary name (`.NAME.<random>.part`) that is renamed
  to NAME when complete, so a partner polling the folder never reads half a file. A second `put` of the same
  name replaces the file (a retried send is harmless).
- `list_inbound` shows regular files only, oldest first (then by name), never temporary or hidden names nor
  subfolders; a missing inbound folder lists as empty.
- `archive_inbound` is idempotent: a file already moved is not an error; if the archive already holds a different
  file of that name (the partner sent the name twice), the new one is kept beside it as NAME.1, NAME.2 ...
- Every failure is a `TransportError` saying where, what, which file and why, never with a password in it;
  `retryable` is True for outages (connection refused or lost, timeouts, an unmounted share) and False for what
  a retry cannot fix (wrong credentials, a host key that does not match, a missing file).

SFTP uses asyncssh behind a small synchronous facade: each `SftpTransport` runs one event loop in a daemon thread
and keeps one SSH connection open across calls, reconnecting once when a kept connection turns out to be dead.
Host keys: with `known_host_key` the server's key is pinned and any other key is refused; without it any key is
accepted and its fingerprint is logged and kept in `host_key_fingerprint` (fine for the sandbox; production
configs should pin).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import posixpath
import secrets
import socket
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import asyncssh
from asyncssh.constants import FILEXFER_TYPE_REGULAR

from gp_pipelines.config import ConfigError, TransportConfig

log = logging.getLogger(__name__)

T = TypeVar("T")

TEMP_SUFFIX = ".part"
DEFAULT_TIMEOUT_SECONDS = 30.0
# Names other tools use for files still being written; never offered to the reader.
_TEMP_SUFFIXES = (TEMP_SUFFIX, ".tmp", ".filepart", ".partial", ".swp")


@dataclass(frozen=True)
class RemoteFile:
    """A file waiting in the inbound folder; `modified` is UTC with whole seconds (what SFTP can report)."""

    name: str
    size: int
    modified: datetime


class TransportError(Exception):
    """A file operation with a partner failed; `retryable` says whether trying again later can help."""

    def __init__(self, where: str, operation: str, path: str, reason: str, *, retryable: bool) -> None:
        self.where = where
        self.operation = operation
        self.path = path
        self.reason = reason
        self.retryable = retryable
        target = f" {path!r}" if path else ""
        kind = "retryable" if retryable else "not retryable"
        super().__init__(f"{where}: {operation}{target} failed ({kind}): {reason}")


def is_visible_name(name: str) -> bool:
    """Whether a file name in a partner folder is a finished file for the other side to read."""
    return bool(name) and not name.startswith(".") and not name.lower().endswith(_TEMP_SUFFIXES)


def _check_name(name: str) -> str:
    # A name is one path component: the partner decides nothing about where we write or read.
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name or name.startswith("."):
        raise ValueError(f"not a plain file name: {name!r}")
    return name


def _temp_name(name: str) -> str:
    return f".{name}.{secrets.token_hex(6)}{TEMP_SUFFIX}"


def _modified(timestamp: float | int | None) -> datetime:
    return datetime.fromtimestamp(int(timestamp or 0), UTC)


def _sorted(files: list[RemoteFile]) -> list[RemoteFile]:
    return sorted(files, key=lambda file: (file.modified, file.name))


def _archive_candidates(name: str) -> list[str]:
    """Archive names tried in order: NAME, then NAME.1, NAME.2 ... (bounded: a runaway loop is a bug)."""
    return [name] + [f"{name}.{n}" for n in range(1, 1000)]


class Transport(ABC):
    """File exchange with one partner; see the module docstring for the guarantees."""

    where: str

    @abstractmethod
    def put(self, name: str, data: bytes) -> None:
        """Deliver `data` as `name` in the partner's inbox, atomically for the reader."""

    @abstractmethod
    def list_inbound(self) -> list[RemoteFile]:
        """Finished files the partner left for us, oldest first."""

    @abstractmethod
    def fetch(self, name: str) -> bytes:
        """The content of one inbound file."""

    @abstractmethod
    def archive_inbound(self, name: str, folder: str = "processed") -> None:
        """Move an inbound file we have stored into `folder` under the inbound folder (idempotent)."""

    def close(self) -> None:  # noqa: B027 - folders hold nothing open; connections override this
        """Release connections; the transport may be used again afterwards (it reconnects)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# ---------------------------------------------------------------- watched folder


class FolderTransport(Transport):
    """Folders on a shared disk: `root/outbound_dir` is the partner's inbox, `root/inbound_dir` ours."""

    def __init__(
        self, root: str | Path, outbound_dir: str = "in", inbound_dir: str = "out", *, where: str | None = None
    ) -> None:
        self.root = Path(root)
        self.outbound = self.root / outbound_dir
        self.inbound = self.root / inbound_dir
        self.where = where or f"folder {self.root}"

    def __repr__(self) -> str:
        return f"FolderTransport({str(self.root)!r}, outbound={self.outbound.name!r}, inbound={self.inbound.name!r})"

    def _fail(self, operation: str, path: str, exc: OSError) -> TransportError:
        # A root that has gone away is an unmounted or unreachable share: an outage, not a bad file.
        outage = not self.root.is_dir()
        reason = f"shared folder {self.root} is not reachable" if outage else (exc.strerror or str(exc))
        return TransportError(self.where, operation, path, reason, retryable=outage)

    def put(self, name: str, data: bytes) -> None:
        _check_name(name)
        target = self.outbound / name
        temp = self.outbound / _temp_name(name)
        try:
            if not self.root.is_dir():
                raise FileNotFoundError(str(self.root))
            self.outbound.mkdir(parents=True, exist_ok=True)
            with open(temp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, target)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise self._fail("put", str(target), exc) from None

    def list_inbound(self) -> list[RemoteFile]:
        try:
            if not self.root.is_dir():
                raise FileNotFoundError(str(self.root))
            if not self.inbound.is_dir():
                return []
            files = []
            with os.scandir(self.inbound) as entries:
                for entry in entries:
                    if is_visible_name(entry.name) and entry.is_file(follow_symlinks=False):
                        stat = entry.stat(follow_symlinks=False)
                        files.append(RemoteFile(entry.name, stat.st_size, _modified(stat.st_mtime)))
        except OSError as exc:
            raise self._fail("list", str(self.inbound), exc) from None
        return _sorted(files)

    def fetch(self, name: str) -> bytes:
        path = self.inbound / _check_name(name)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise self._fail("fetch", str(path), exc) from None

    def archive_inbound(self, name: str, folder: str = "processed") -> None:
        source = self.inbound / _check_name(name)
        archive = self.inbound / _check_name(folder)
        try:
            if not source.exists():
                if (archive / name).is_file():
                    return  # moved by an earlier call
                raise FileNotFoundError(2, "no such file in the inbound folder or its archive")
            archive.mkdir(exist_ok=True)
            for candidate in _archive_candidates(name):
                target = archive / candidate
                if not target.exists():
                    _move_without_overwrite(source, target)
                    return
            raise FileExistsError(17, f"too many files named {name} in {archive}")
        except OSError as exc:
            raise self._fail("archive", str(source), exc) from None


def _move_without_overwrite(source: Path, target: Path) -> None:
    # A hard link fails if the target appeared meanwhile, so a concurrent archiver never overwrites a file;
    # shares that cannot link (SMB, FAT) fall back to a plain rename after the existence check.
    try:
        os.link(source, target)
    except FileExistsError:
        raise
    except OSError:
        os.rename(source, target)
        return
    source.unlink()


# ---------------------------------------------------------------- SFTP


def parse_host_key(line: str) -> asyncssh.SSHKey:
    """An OpenSSH public key from a known_hosts-style line ("[host]:port ssh-ed25519 AAAA... comment" or just
    "ssh-ed25519 AAAA...")."""
    tokens = line.split()
    for index, token in enumerate(tokens[:-1]):
        if token.startswith(("ssh-", "ecdsa-", "sk-", "rsa-")):
            try:
                return asyncssh.import_public_key(f"{token} {tokens[index + 1]}")
            except (asyncssh.KeyImportError, ValueError) as exc:
                raise ValueError(f"known_host_key is not a valid public key: {exc}") from None
    raise ValueError("known_host_key must hold '<key type> <base64 key>', e.g. 'ssh-ed25519 AAAA...'")


class _LoopThread:
    """One asyncio event loop in a daemon thread, so synchronous callers can run coroutines on it."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()  # the coroutine must not go on writing after the caller gave up
            raise

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            self.loop.close()


class SftpTransport(Transport):
    """A partner's SFTP server; paths are relative to the login folder."""

    def __init__(
        self,
        host: str,
        port: int = 22,
        username: str = "",
        password: str | None = None,
        *,
        known_host_key: str | None = None,
        outbound_dir: str = "in",
        inbound_dir: str = "out",
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        where: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self._password = password  # never in repr, messages or logs
        self._pinned_key = parse_host_key(known_host_key) if known_host_key else None
        self.outbound_dir = outbound_dir.strip("/") or "."
        self.inbound_dir = inbound_dir.strip("/") or "."
        self.timeout = timeout
        self.where = where or f"sftp {username}@{host}:{port}"
        self.host_key_fingerprint: str | None = None
        self._loop: _LoopThread | None = None
        self._connection: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SftpTransport({self.where!r}, pinned={self._pinned_key is not None})"

    # -- the synchronous facade ----------------------------------------------------------------------------
    def _run(self, operation: str, path: str, action: Callable[[asyncssh.SFTPClient], Coroutine[Any, Any, T]]) -> T:
        with self._lock:
            if self._loop is None:
                self._loop = _LoopThread(f"sftp-{self.host}:{self.port}")
            reused = self._sftp is not None
            try:
                return self._loop.run(self._call(action), self.timeout * 2 + 5)
            except Exception as exc:
                error = self._translate(operation, path, exc)
                if not (error.retryable and reused):
                    raise error from None
            # The kept connection died (server restarted, idle cut): one fresh connection, one more try.
            try:
                return self._loop.run(self._call(action), self.timeout * 2 + 5)
            except Exception as exc:
                raise self._translate(operation, path, exc) from None

    async def _call(self, action: Callable[[asyncssh.SFTPClient], Coroutine[Any, Any, T]]) -> T:
        try:
            sftp = await asyncio.wait_for(self._client(), self.timeout)
            return await asyncio.wait_for(action(sftp), self.timeout)
        except asyncssh.SFTPError as exc:
            # A refused file operation leaves the connection usable; only a lost one is dropped.
            if isinstance(exc, asyncssh.SFTPConnectionLost | asyncssh.SFTPNoConnection):
                await self._drop_connection()
            raise
        except BaseException:
            await self._drop_connection()
            raise

    async def _client(self) -> asyncssh.SFTPClient:
        if self._sftp is not None:
            return self._sftp
        known_hosts = ([self._pinned_key], [], []) if self._pinned_key else None
        connection = await asyncssh.connect(
            self.host,
            self.port,
            username=self.username,
            password=self._password,
            known_hosts=known_hosts,
            client_keys=None,
            agent_path=None,
            config=None,
            preferred_auth="password,keyboard-interactive",
            connect_timeout=self.timeout,
            login_timeout=self.timeout,
        )
        try:
            sftp = await connection.start_sftp_client()
        except BaseException:
            connection.close()
            raise
        server_key = connection.get_server_host_key()
        fingerprint = server_key.get_fingerprint() if server_key else None
        if self._pinned_key is None and fingerprint != self.host_key_fingerprint:
            log.warning("%s: host key not pinned; accepted %s (set known_host_key to pin it)", self.where, fingerprint)
        self.host_key_fingerprint = fingerprint
        self._connection, self._sftp = connection, sftp
        return sftp

    async def _drop_connection(self) -> None:
        sftp, connection = self._sftp, self._connection
        self._sftp = self._connection = None
        if sftp is not None:
            sftp.exit()
        if connection is not None:
            connection.close()
            # Closing a dead connection has nothing left to report.
            with contextlib.suppress(TimeoutError, OSError, asyncssh.Error):
                await asyncio.wait_for(connection.wait_closed(), 2)

    def _translate(self, operation: str, path: str, exc: BaseException) -> TransportError:
        address = f"{self.host}:{self.port}"
        retryable = True
        match exc:
            case asyncssh.PermissionDenied():
                reason, retryable = f"authentication failed for user {self.username!r}", False
            case asyncssh.HostKeyNotVerifiable():
                reason, retryable = f"the host key of {address} does not match the pinned known_host_key", False
            case ConnectionRefusedError():
                reason = f"connection refused by {address}"
            case TimeoutError():
                reason = f"no answer from {address} within {self.timeout:g} s"
            case socket.gaierror():
                reason = f"cannot resolve host {self.host!r}: {exc.strerror}"
            case asyncssh.SFTPNoSuchFile():
                reason, retryable = "no such file or folder", False
            case asyncssh.SFTPPermissionDenied():
                reason, retryable = "permission denied by the server", False
            case asyncssh.SFTPConnectionLost() | asyncssh.SFTPNoConnection():
                reason = f"connection to {address} lost"
            case asyncssh.SFTPError():
                reason, retryable = f"the server refused: {exc.reason}", False
            case asyncssh.DisconnectError() | asyncssh.ChannelOpenError():
                reason = f"connection to {address} closed: {exc.reason}"
            case OSError():
                reason = f"network error talking to {address}: {exc.strerror or exc}"
            case _:
                reason, retryable = f"{type(exc).__name__}: {exc}", False
        if self._password and self._password in reason:
            reason = reason.replace(self._password, "***")  # belt and braces: no message carries the secret
        return TransportError(self.where, operation, path, reason, retryable=retryable)

    def close(self) -> None:
        with self._lock:
            loop, self._loop = self._loop, None
            if loop is None:
                return
            try:
                loop.run(self._drop_connection(), 5)
            except Exception:  # closing must not fail on a dead connection
                self._sftp = self._connection = None
            loop.stop()

    # -- operations ----------------------------------------------------------------------------------------
    def _outbound(self, name: str) -> str:
        return posixpath.join(self.outbound_dir, name)

    def _inbound(self, name: str) -> str:
        return posixpath.join(self.inbound_dir, name)

    def put(self, name: str, data: bytes) -> None:
        target = self._outbound(_check_name(name))
        temp = self._outbound(_temp_name(name))

        async def upload(sftp: asyncssh.SFTPClient) -> None:
            try:
                try:
                    handle = await sftp.open(temp, "wb")
                except asyncssh.SFTPNoSuchFile:
                    await sftp.makedirs(self.outbound_dir, exist_ok=True)  # the partner's inbox, first use
                    handle = await sftp.open(temp, "wb")
                async with handle:
                    await handle.write(data)
                try:
                    await sftp.posix_rename(temp, target)
                except asyncssh.SFTPOpUnsupported:
                    # Servers without the POSIX rename extension refuse to rename over an existing file.
                    if await sftp.exists(target):
                        await sftp.remove(target)
                    await sftp.rename(temp, target)
            except asyncssh.SFTPError:
                with contextlib.suppress(asyncssh.SFTPError):  # the temporary file may never have been created
                    await sftp.remove(temp)
                raise

        self._run("put", target, upload)

    def list_inbound(self) -> list[RemoteFile]:
        async def listing(sftp: asyncssh.SFTPClient) -> list[RemoteFile]:
            try:
                entries = await sftp.readdir(self.inbound_dir)
            except asyncssh.SFTPNoSuchFile:
                return []
            files = []
            for entry in entries:
                name = entry.filename if isinstance(entry.filename, str) else entry.filename.decode()
                if is_visible_name(name) and entry.attrs.type == FILEXFER_TYPE_REGULAR:
                    files.append(RemoteFile(name, entry.attrs.size or 0, _modified(entry.attrs.mtime)))
            return files

        return _sorted(self._run("list", self.inbound_dir, listing))

    def fetch(self, name: str) -> bytes:
        path = self._inbound(_check_name(name))

        async def download(sftp: asyncssh.SFTPClient) -> bytes:
            async with sftp.open(path, "rb") as handle:
                return await handle.read()

        return self._run("fetch", path, download)

    def archive_inbound(self, name: str, folder: str = "processed") -> None:
        source = self._inbound(_check_name(name))
        archive = self._inbound(_check_name(folder))

        async def move(sftp: asyncssh.SFTPClient) -> None:
            if not await sftp.isfile(source):
                if await sftp.isfile(posixpath.join(archive, name)):
                    return  # moved by an earlier call
                raise asyncssh.SFTPNoSuchFile("no such file in the inbound folder or its archive")
            if not await sftp.isdir(archive):
                with contextlib.suppress(asyncssh.SFTPFailure):  # created meanwhile by another archiver
                    await sftp.mkdir(archive)
            for candidate in _archive_candidates(name):
                # Plain SFTP rename never overwrites, so an archived file of the same name is never lost.
                try:
                    await sftp.rename(source, posixpath.join(archive, candidate))
                    return
                except asyncssh.SFTPFailure:
                    if not await sftp.exists(posixpath.join(archive, candidate)):
                        raise
            raise asyncssh.SFTPFailure(f"too many files named {name} in {archive}")

        self._run("archive", source, move)


# ---------------------------------------------------------------- from config


def transport_for(
    config: TransportConfig, environ: Mapping[str, str] = os.environ, *, partner: str | None = None
) -> Transport:
    """The transport a partner's config describes; secrets come from the environment variables it names."""
    label = f"partner {partner!r}" if partner else "partner"
    if config.kind == "folder":
        return FolderTransport(
            config.root or "", config.outbound_dir, config.inbound_dir, where=f"{label} folder {config.root}"
        )

    def secret(field: str, variable: str | None) -> str | None:
        if variable is None:
            return None
        value = environ.get(variable)
        if not value:
            raise ConfigError(f"{label} transport.{field}: environment variable {variable} is not set")
        return value

    username = secret("username_env", config.username_env) or ""
    password = secret("password_env", config.password_env)
    try:
        return SftpTransport(
            config.host or "",
            config.port,
            username,
            password,
            known_host_key=config.known_host_key,
            outbound_dir=config.outbound_dir,
            inbound_dir=config.inbound_dir,
            where=f"{label} sftp {config.host}:{config.port}",
        )
    except ValueError as exc:
        raise ConfigError(f"{label} transport.known_host_key: {exc}") from None
