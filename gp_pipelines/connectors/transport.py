"""Moving EDI files to and from a partner: one interface, two ways (SFTP, or a watched folder on a shared disk).

The directions are named from our side: `put` writes into the partner's inbox (`outbound_dir`, "in" by default),
`list_inbound`/`stat`/`fetch_to`/`fetch` read what the partner left for us (`inbound_dir`, "out" by default), and
`archive_inbound` moves a file we have stored into a subfolder on the partner's side, so it is not read again
and nothing is deleted.

Guarantees both implementations keep (the tests run the same cases against both):
- `put` is atomic for the reader: the bytes go to a hidden temporary name (`.NAME.<random>.part`) that is renamed
  to NAME when complete, so a partner polling the folder never reads half a file. A second `put` of the same
  name replaces the file (a retried send is harmless).
- `list_inbound` shows regular files only, oldest first (then by name), never temporary or hidden names,
  subfolders or symlinks; a missing inbound folder lists as empty. One entry never breaks the listing: any name
  a POSIX server can hold is listed (not UTF-8, backslashes, control characters, long names).
- Names: a file's name is its bytes (`RemoteFile.raw_name`). `RemoteFile.name` is those bytes decoded as UTF-8
  with `surrogateescape`, so it turns back into exactly the same bytes, and every operation takes that str and
  works on exactly those bytes. `display_name`/`printable()` show a name in messages and the UI (a byte that is
  not UTF-8 as `\\xff`, control characters escaped); `name_to_token`/`name_from_token` carry a name through
  JSON and Dagster run config losslessly. A name we write must be one plain, visible path component; a name we
  read may hold anything but `/` and NUL.
- `fetch_to` streams a file into a sink chunk by chunk, hashing on the way (memory: a chunk or two, whatever the
  file's size), and reports the size and modification time stat'ed when the read started, so a caller can tell
  a file that changed while it was read; `fetch` is the same for small files, as bytes. An error the sink raises
  is passed on as it is; a stream is never retried once the sink holds bytes. `stat` is one entry, None when gone.
  Anything but a regular file (a FIFO, a device) is refused, never opened in a way that could hang.
- Symlinks: the configured root (or the SFTP login folder) is trusted, everything below it is the partner's.
  A symlink there (the inbound or outbound folder, an archive subfolder, a file) is never followed: the
  operation is refused with a non-retryable error naming the link, and nothing is read or written outside the
  partner's folder. Folders open every level with `O_NOFOLLOW` and work through directory descriptors, so a
  link swapped in between a check and its use is refused too; SFTP checks with `lstat` (all the protocol offers).
- `archive_inbound` is idempotent: a file already moved is not an error; if the archive already holds a different
  file of that name (the partner sent the name twice), the new one is kept beside it as NAME.1, NAME.2 ...
- Every failure is a `TransportError`, one line saying where, what, which file (printable) and why, never with a
  password in it; `retryable` is True for outages (connection refused or lost, timeouts, an unmounted share) and
  False for what a retry cannot fix (wrong credentials, a host key that does not match, a missing file, a symlink).

SFTP uses asyncssh behind a small synchronous facade: each `SftpTransport` runs one event loop in a daemon thread
and keeps one SSH connection open across calls, reconnecting once when a kept connection turns out to be dead.
Paths travel as bytes (`path_encoding=None`), so no name is ever decoded strictly. A call has an overall deadline
of twice the timeout; a stream instead has the timeout per step, so a transfer that keeps moving is never cut
and one that stalls is. Host keys: with `known_host_key` the server's key is pinned and any other key is refused;
without it any key is accepted and its fingerprint is logged and kept in `host_key_fingerprint` (fine for the
sandbox; production configs should pin).

The types and the interface are in `transport_base`; this module re-exports them (import from here).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from pathlib import Path
from stat import S_ISDIR, S_ISLNK, S_ISREG
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from gp_pipelines.config import ConfigError, TransportConfig
from gp_pipelines.connectors.transport_base import (
    DEFAULT_CHUNK_SIZE,
    TEMP_SUFFIX,
    TOKEN_PREFIX,
    FetchedFile,
    RemoteFile,
    Transport,
    TransportError,
    _archive_candidates,
    _check_chunk_size,
    _decoded,
    _Digest,
    _folder_parts,
    _joined,
    _modified,
    _raw,
    _read_name,
    _Refused,
    _SinkFailed,
    _sorted,
    _symlink,
    _temp_name,
    _write_name,
    _wrong_kind,
    is_visible_name,
    name_from_token,
    name_to_token,
    printable,
)

__all__ = [
    "DEFAULT_CHUNK_SIZE", "DEFAULT_TIMEOUT_SECONDS", "TEMP_SUFFIX", "TOKEN_PREFIX", "FetchedFile", "FolderTransport",
    "RemoteFile", "SftpTransport", "Transport", "TransportError", "is_visible_name", "name_from_token",
    "name_to_token", "parse_host_key", "printable", "transport_for",
]  # fmt: skip

log = logging.getLogger(__name__)


if TYPE_CHECKING:
    import asyncssh
else:

    class _ImportedOnFirstUse:
        """asyncssh, imported when an SFTP transport first uses it: importing it takes a tenth of a second and
        forks ldconfig and gcc (ctypes.util.find_library), in every process that loads the code location,
        while only partners on SFTP need it."""

        def __getattr__(self, name: str) -> Any:
            import asyncssh as module

            globals()["asyncssh"] = module  # from now on the name is the module itself
            return getattr(module, name)

    asyncssh = _ImportedOnFirstUse()

T = TypeVar("T")

DEFAULT_TIMEOUT_SECONDS = 30.0


# ---------------------------------------------------------------- watched folder

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO the partner named like a file must not hang the read (it is refused once open).
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class FolderTransport(Transport):
    """Folders on a shared disk: `root/outbound_dir` is the partner's inbox, `root/inbound_dir` ours."""

    def __init__(
        self, root: str | Path, outbound_dir: str = "in", inbound_dir: str = "out", *, where: str | None = None
    ) -> None:
        self.root = Path(root)
        self.outbound = self.root / outbound_dir
        self.inbound = self.root / inbound_dir
        self._outbound_parts = _folder_parts(outbound_dir)
        self._inbound_parts = _folder_parts(inbound_dir)
        self.where = where or f"folder {self.root}"

    def __repr__(self) -> str:
        return f"FolderTransport({str(self.root)!r}, outbound={self.outbound.name!r}, inbound={self.inbound.name!r})"

    def _path(self, *parts: bytes) -> str:
        return printable(_joined(os.fsencode(self.root), *parts))

    @contextlib.contextmanager
    def _errors(self, operation: str, path: str) -> Iterator[None]:
        try:
            yield
        except _Refused as exc:
            raise TransportError(self.where, operation, path, exc.reason, retryable=False) from None
        except _SinkFailed as exc:
            raise exc.error from None
        except OSError as exc:
            # A root that has gone away is an unmounted or unreachable share: an outage, not a bad file.
            outage = not self.root.is_dir()
            reason = f"shared folder {self.root} is not reachable" if outage else (exc.strerror or str(exc))
            raise TransportError(self.where, operation, path, reason, retryable=outage) from None

    def _folder(self, stack: contextlib.ExitStack, parts: tuple[bytes, ...], *, create: bool = False,
                base: int | None = None, base_parts: tuple[bytes, ...] = ()) -> int | None:
        """A descriptor of the folder `parts` below `base` (default: the root), opened one level at a time
        without following a symlink; None when it does not exist and `create` is False."""
        if base is None:
            # The root is the operator's (a mount may well be a symlink): the one place a link is followed.
            base = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            stack.callback(os.close, base)
        for depth, part in enumerate(parts, 1):
            label = _joined(*base_parts, *parts[:depth])
            for attempt in (1, 2):
                try:
                    opened = os.open(part, _DIR_FLAGS, dir_fd=base)
                    break
                except FileNotFoundError:
                    if not create or attempt == 2:
                        return None
                    with contextlib.suppress(FileExistsError):  # created meanwhile by another run
                        os.mkdir(part, dir_fd=base)
                except OSError:
                    _refuse_link(base, part, label, "a folder")
                    raise
            stack.callback(os.close, opened)
            base = opened
        return base

    def _inbound_folder(self, stack: contextlib.ExitStack) -> int:
        found = self._folder(stack, self._inbound_parts)
        if found is None:
            raise FileNotFoundError(errno.ENOENT, "no such file or folder")
        return found

    def put(self, name: str, data: bytes) -> None:
        raw = _write_name(name)
        temp = _temp_name(raw)
        with self._errors("put", self._path(*self._outbound_parts, raw)), contextlib.ExitStack() as stack:
            folder = self._folder(stack, self._outbound_parts, create=True)
            assert folder is not None  # created when missing
            _refuse_link(folder, raw, _joined(*self._outbound_parts, raw))  # replacing a link is not ours to do
            fd = os.open(temp, _WRITE_FLAGS, 0o666, dir_fd=folder)
            try:
                with open(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temp, raw, src_dir_fd=folder, dst_dir_fd=folder)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp, dir_fd=folder)
                raise

    def list_inbound(self) -> list[RemoteFile]:
        files = []
        with self._errors("list", self._path(*self._inbound_parts)), contextlib.ExitStack() as stack:
            folder = self._folder(stack, self._inbound_parts)
            if folder is None:
                return []
            with os.scandir(folder) as entries:
                for entry in entries:
                    raw = os.fsencode(entry.name)  # the exact bytes, whatever the locale decoded them as
                    if not is_visible_name(_decoded(raw)):
                        continue
                    try:
                        if not entry.is_file(follow_symlinks=False):
                            continue
                        stat = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue  # gone between reading the folder and the stat: not in this listing
                    files.append(RemoteFile.from_raw(raw, stat.st_size, _modified(stat.st_mtime)))
        return _sorted(files)

    def stat(self, name: str) -> RemoteFile | None:
        raw = _read_name(name)
        label = _joined(*self._inbound_parts, raw)
        with self._errors("stat", self._path(label)), contextlib.ExitStack() as stack:
            folder = self._folder(stack, self._inbound_parts)
            if folder is None or (found := _lstat(folder, raw)) is None:
                return None
            if not S_ISREG(found.st_mode):
                _refuse_link(folder, raw, label)
                raise _wrong_kind(label)
            return RemoteFile.from_raw(raw, found.st_size, _modified(found.st_mtime))

    def fetch_to(self, name: str, sink: BinaryIO, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> FetchedFile:
        raw = _read_name(name)
        _check_chunk_size(chunk_size)
        label = _joined(*self._inbound_parts, raw)
        with self._errors("fetch", self._path(label)), contextlib.ExitStack() as stack:
            folder = self._inbound_folder(stack)
            try:
                fd = os.open(raw, _READ_FLAGS, dir_fd=folder)
            except OSError:
                _refuse_link(folder, raw, label)
                raise
            with open(fd, "rb", buffering=0) as handle:
                opened = os.fstat(fd)
                if not S_ISREG(opened.st_mode):
                    raise _wrong_kind(label)
                os.set_blocking(fd, True)
                digest = _Digest(sink)
                while chunk := handle.read(chunk_size):
                    digest.add(chunk)
            return digest.result(name, opened.st_mtime, opened.st_size)

    def archive_inbound(self, name: str, folder: str = "processed") -> None:
        raw = _read_name(name)
        archive_raw = _write_name(folder)
        label = _joined(*self._inbound_parts, raw)
        archive_parts = (*self._inbound_parts, archive_raw)
        with self._errors("archive", self._path(label)), contextlib.ExitStack() as stack:
            inbound = self._inbound_folder(stack)
            source = _lstat(inbound, raw)
            if source is None:
                archive = self._folder(stack, (archive_raw,), base=inbound, base_parts=self._inbound_parts)
                moved = None if archive is None else _lstat(archive, raw)
                if moved is not None and S_ISREG(moved.st_mode):
                    return  # moved by an earlier call
                raise FileNotFoundError(errno.ENOENT, "no such file in the inbound folder or its archive")
            if not S_ISREG(source.st_mode):
                _refuse_link(inbound, raw, label)
                raise _wrong_kind(label)
            archive = self._folder(stack, (archive_raw,), create=True, base=inbound, base_parts=self._inbound_parts)
            assert archive is not None  # created when missing
            for candidate in _archive_candidates(raw):
                if _lstat(archive, candidate) is not None:
                    continue
                try:
                    _move_without_overwrite(inbound, raw, archive, candidate)
                    return
                except FileExistsError:
                    continue  # another archiver took this name meanwhile
            where = printable(_joined(*archive_parts))
            raise FileExistsError(errno.EEXIST, f"too many files named {printable(raw)} in {where}")


def _lstat(folder: int, raw: bytes) -> os.stat_result | None:
    try:
        return os.lstat(raw, dir_fd=folder)
    except FileNotFoundError:
        return None


def _refuse_link(folder: int, raw: bytes, label: bytes, kind: str = "a regular file") -> None:
    """Raise the refusal if `raw` in `folder` is a symlink (what O_NOFOLLOW met), or not a folder when `kind`
    asks for one; return when neither (the caller goes on, or raises the OS error it had)."""
    found = _lstat(folder, raw)
    if found is not None and S_ISLNK(found.st_mode):
        target = None
        with contextlib.suppress(OSError):
            target = os.readlink(raw, dir_fd=folder)
        raise _symlink(label, target)
    if found is not None and kind == "a folder" and not S_ISDIR(found.st_mode):
        raise _wrong_kind(label, kind)


def _move_without_overwrite(source_folder: int, source: bytes, target_folder: int, target: bytes) -> None:
    # A hard link fails if the target appeared meanwhile, so a concurrent archiver never overwrites a file;
    # shares that cannot link (SMB, FAT) fall back to a plain rename after the existence check.
    try:
        os.link(source, target, src_dir_fd=source_folder, dst_dir_fd=target_folder, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError:
        os.rename(source, target, src_dir_fd=source_folder, dst_dir_fd=target_folder)
        return
    os.unlink(source, dir_fd=source_folder)


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

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None) -> T:
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


_Action = Callable[["asyncssh.SFTPClient"], Coroutine[Any, Any, T]]


async def _lstat_remote(sftp: asyncssh.SFTPClient, path: bytes) -> asyncssh.SFTPAttrs | None:
    try:
        return await sftp.lstat(path)
    except asyncssh.SFTPNoSuchFile:
        return None


async def _refuse_remote(sftp: asyncssh.SFTPClient, path: bytes, attrs: asyncssh.SFTPAttrs, kind: str) -> None:
    """Raise the refusal unless `attrs` (an lstat) is a folder or a regular file as `kind` asks."""
    wanted = asyncssh.FILEXFER_TYPE_DIRECTORY if kind == "a folder" else asyncssh.FILEXFER_TYPE_REGULAR
    if attrs.type == asyncssh.FILEXFER_TYPE_SYMLINK:
        target = None
        with contextlib.suppress(asyncssh.SFTPError):
            target = await sftp.readlink(path)
        raise _symlink(path, target)
    if attrs.type != wanted:
        raise _wrong_kind(path, kind)


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
        self._outbound_parts = _folder_parts(outbound_dir)
        self._inbound_parts = _folder_parts(inbound_dir)
        self.outbound_dir = _decoded(_joined(*self._outbound_parts))
        self.inbound_dir = _decoded(_joined(*self._inbound_parts))
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
    def _run(self, operation: str, path: bytes, action: _Action[T], *, stream: bool = False,
             can_retry: Callable[[], bool] = lambda: True) -> T:
        """Run `action` with a connected client. A stream has the timeout per step (inside `action`) instead
        of an overall deadline; `can_retry` says whether a second try would repeat nothing the caller saw."""
        with self._lock:
            if self._loop is None:
                self._loop = _LoopThread(f"sftp-{self.host}:{self.port}")
            deadline = None if stream else self.timeout * 2 + 5
            reused = self._sftp is not None
            try:
                return self._loop.run(self._call(action, stream), deadline)
            except _SinkFailed as exc:
                raise exc.error from None
            except Exception as exc:
                error = self._translate(operation, path, exc)
                if not (error.retryable and reused and can_retry()):
                    raise error from None
            # The kept connection died (server restarted, idle cut): one fresh connection, one more try.
            try:
                return self._loop.run(self._call(action, stream), deadline)
            except _SinkFailed as exc:
                raise exc.error from None
            except Exception as exc:
                raise self._translate(operation, path, exc) from None

    async def _call(self, action: _Action[T], stream: bool) -> T:
        try:
            sftp = await asyncio.wait_for(self._client(), self.timeout)
            return await (action(sftp) if stream else asyncio.wait_for(action(sftp), self.timeout))
        except (_Refused, _SinkFailed):
            raise  # the connection is fine
        except asyncssh.SFTPError as exc:
            # A refused file operation leaves the connection usable; only a lost one is dropped.
            if isinstance(exc, asyncssh.SFTPConnectionLost | asyncssh.SFTPNoConnection):
                await self._drop_connection()
            raise
        except BaseException:
            await self._drop_connection()
            raise

    def _step(self, awaitable: Awaitable[T]) -> Awaitable[T]:
        return asyncio.wait_for(awaitable, self.timeout)

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
            # Paths as bytes both ways: a name that is not UTF-8 is listed and opened like any other.
            sftp = await connection.start_sftp_client(path_encoding=None)
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

    def _translate(self, operation: str, path: bytes, exc: BaseException) -> TransportError:
        address = f"{self.host}:{self.port}"
        retryable = True
        match exc:
            case _Refused():
                reason, retryable = exc.reason, False
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
        return TransportError(self.where, operation, printable(path), reason, retryable=retryable)

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
    async def _folder(self, sftp: asyncssh.SFTPClient, parts: tuple[bytes, ...], *, create: bool = False) -> bool:
        """Whether the folder `parts` exists, checked level by level with lstat (a symlink is refused)."""
        for depth in range(1, len(parts) + 1):
            path = _joined(*parts[:depth])
            attrs = await _lstat_remote(sftp, path)
            if attrs is None:
                if not create:
                    return False
                with contextlib.suppress(asyncssh.SFTPFailure, asyncssh.SFTPFileAlreadyExists):
                    await sftp.mkdir(path)  # an error here is "created meanwhile", checked just below
                if (attrs := await _lstat_remote(sftp, path)) is None:
                    raise asyncssh.SFTPNoSuchFile(f"could not create {printable(path)}")
            await _refuse_remote(sftp, path, attrs, "a folder")
        return True

    async def _inbound_file(self, sftp: asyncssh.SFTPClient, raw: bytes) -> asyncssh.SFTPAttrs | None:
        """The lstat of an inbound file, None when it (or the inbound folder) is missing; refuses a symlink."""
        if not await self._folder(sftp, self._inbound_parts):
            return None
        path = _joined(*self._inbound_parts, raw)
        attrs = await _lstat_remote(sftp, path)
        if attrs is not None:
            await _refuse_remote(sftp, path, attrs, "a regular file")
        return attrs

    def put(self, name: str, data: bytes) -> None:
        raw = _write_name(name)
        target = _joined(*self._outbound_parts, raw)
        temp = _joined(*self._outbound_parts, _temp_name(raw))

        async def upload(sftp: asyncssh.SFTPClient) -> None:
            await self._folder(sftp, self._outbound_parts, create=True)  # the partner's inbox, first use
            existing = await _lstat_remote(sftp, target)
            if existing is not None and existing.type == asyncssh.FILEXFER_TYPE_SYMLINK:
                await _refuse_remote(sftp, target, existing, "a regular file")
            try:
                async with sftp.open(temp, "xb") as handle:
                    await handle.write(data)
                try:
                    await sftp.posix_rename(temp, target)
                except asyncssh.SFTPOpUnsupported:
                    # Servers without the POSIX rename extension refuse to rename over an existing file.
                    if await _lstat_remote(sftp, target) is not None:
                        await sftp.remove(target)
                    await sftp.rename(temp, target)
            except asyncssh.SFTPError:
                with contextlib.suppress(asyncssh.SFTPError):  # the temporary file may never have been created
                    await sftp.remove(temp)
                raise

        self._run("put", target, upload)

    def list_inbound(self) -> list[RemoteFile]:
        async def listing(sftp: asyncssh.SFTPClient) -> list[RemoteFile]:
            if not await self._folder(sftp, self._inbound_parts):
                return []
            files = []
            for entry in await sftp.readdir(_joined(*self._inbound_parts)):
                raw = entry.filename if isinstance(entry.filename, bytes) else _raw(entry.filename)
                # The server lstats entries: a symlink is its own type, never REGULAR.
                if is_visible_name(_decoded(raw)) and entry.attrs.type == asyncssh.FILEXFER_TYPE_REGULAR:
                    files.append(RemoteFile.from_raw(raw, entry.attrs.size or 0, _modified(entry.attrs.mtime)))
            return files

        return _sorted(self._run("list", _joined(*self._inbound_parts), listing))

    def stat(self, name: str) -> RemoteFile | None:
        raw = _read_name(name)

        async def look(sftp: asyncssh.SFTPClient) -> RemoteFile | None:
            attrs = await self._inbound_file(sftp, raw)
            return None if attrs is None else RemoteFile.from_raw(raw, attrs.size or 0, _modified(attrs.mtime))

        return self._run("stat", _joined(*self._inbound_parts, raw), look)

    def fetch_to(self, name: str, sink: BinaryIO, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> FetchedFile:
        raw = _read_name(name)
        _check_chunk_size(chunk_size)
        path = _joined(*self._inbound_parts, raw)
        digest = _Digest(sink)  # written from the event loop's thread while the caller waits for the result

        async def download(sftp: asyncssh.SFTPClient) -> FetchedFile:
            if await self._step(self._inbound_file(sftp, raw)) is None:
                raise asyncssh.SFTPNoSuchFile("no such file or folder")
            async with await self._step(sftp.open(path, "rb")) as handle:
                # What was opened, stat'ed through the handle: the lstat above cannot see a swap in between.
                opened = await self._step(handle.stat())
                if opened.type != asyncssh.FILEXFER_TYPE_REGULAR:
                    raise _wrong_kind(path)
                while chunk := await self._step(handle.read(chunk_size, digest.size)):
                    digest.add(chunk)
            return digest.result(name, opened.mtime, opened.size or 0)

        # Once the sink holds bytes a second try would write them twice: the caller retries the whole file.
        return self._run("fetch", path, download, stream=True, can_retry=lambda: digest.size == 0)

    def archive_inbound(self, name: str, folder: str = "processed") -> None:
        raw = _read_name(name)
        archive_parts = (*self._inbound_parts, _write_name(folder))
        source = _joined(*self._inbound_parts, raw)

        async def move(sftp: asyncssh.SFTPClient) -> None:
            if await self._inbound_file(sftp, raw) is None:
                if await self._folder(sftp, archive_parts):
                    moved = await _lstat_remote(sftp, _joined(*archive_parts, raw))
                    if moved is not None and moved.type == asyncssh.FILEXFER_TYPE_REGULAR:
                        return  # moved by an earlier call
                raise asyncssh.SFTPNoSuchFile("no such file in the inbound folder or its archive")
            await self._folder(sftp, archive_parts, create=True)
            for candidate in _archive_candidates(raw):
                target = _joined(*archive_parts, candidate)
                if await _lstat_remote(sftp, target) is not None:
                    continue
                # Plain SFTP rename never overwrites, so an archived file of the same name is never lost.
                try:
                    await sftp.rename(source, target)
                    return
                except (asyncssh.SFTPFailure, asyncssh.SFTPFileAlreadyExists):
                    if await _lstat_remote(sftp, target) is None:
                        raise
            raise asyncssh.SFTPFailure(f"too many files named {printable(raw)} in {printable(_joined(*archive_parts))}")

        self._run("archive", source, move)


# ---------------------------------------------------------------- from config


def transport_for(
    config: TransportConfig, environ: Mapping[str, str] = os.environ, *, partner: str | None = None
) -> Transport:
    """The transport a partner's config describes; secrets come from the environment variables it names."""
    label = f"partner {partner!r}" if partner else "partner"
    for field_name in ("outbound_dir", "inbound_dir"):
        try:
            _folder_parts(getattr(config, field_name))
        except ValueError as exc:
            raise ConfigError(f"{label} transport.{field_name}: {exc}") from None
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
