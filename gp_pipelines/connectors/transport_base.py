"""The contract every partner transport keeps (see `gp_pipelines.connectors.transport` for the guarantees):
file names as bytes and how they travel as text, what the operations return, the one error type, and the
`Transport` interface. The implementations are in `transport`, which re-exports all of this."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import BinaryIO, Self

TEMP_SUFFIX = ".part"
DEFAULT_CHUNK_SIZE = 1024 * 1024
# Names other tools use for files still being written; never offered to the reader.
_TEMP_SUFFIXES = (TEMP_SUFFIX, ".tmp", ".filepart", ".partial", ".swp")
# A token that is not the plain name: the name's bytes in hex. A plain name that starts like this is hexed too.
TOKEN_PREFIX = "hex:"


# ---------------------------------------------------------------- names


def _raw(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def _decoded(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def printable(value: bytes | str) -> str:
    """A name or path for messages and the UI: a byte that is not UTF-8 shows as `\\xff`, a control or other
    invisible character as `\\x1b`/`\\u202e`. For people only: `name_to_token` is the lossless form."""
    if isinstance(value, str):
        try:
            value = _raw(value)
        except UnicodeEncodeError:  # a lone surrogate that no byte decodes to
            return value.encode("utf-8", "backslashreplace").decode("ascii")
    text = value.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else _escape(ord(c)) for c in text)


def _escape(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def name_to_token(name: str) -> str:
    """A file name as plain text for JSON, run config and run keys: the name itself when it is clean UTF-8 with
    nothing invisible in it, else `hex:` and its bytes in hex. `name_from_token` reverses it exactly."""
    raw = _raw(name)  # a str that is no name's decoding raises ValueError
    if name.isprintable() and not name.startswith(TOKEN_PREFIX):  # surrogates and controls are not printable
        return name
    return TOKEN_PREFIX + raw.hex()


def name_from_token(token: str) -> str:
    """The name (`RemoteFile.name`, surrogate-escaped) a `name_to_token` token stands for."""
    if token.startswith(TOKEN_PREFIX):
        return _decoded(bytes.fromhex(token[len(TOKEN_PREFIX) :]))
    return token


def is_visible_name(name: str) -> bool:
    """Whether a file name in a partner folder is a finished file for the other side to read."""
    return bool(name) and not name.startswith(".") and not name.lower().endswith(_TEMP_SUFFIXES)


def _component(name: str) -> bytes:
    # One path component: the partner decides nothing about where we write or read.
    try:
        raw = _raw(name)
    except UnicodeEncodeError:
        raise ValueError(f"not a file name: {printable(name)!r}") from None
    if raw in (b"", b".", b"..") or b"/" in raw or b"\x00" in raw:
        raise ValueError(f"not a plain file name: {printable(raw)!r}")
    return raw


def _read_name(name: str) -> bytes:
    raw = _component(name)
    if raw.startswith(b"."):  # never listed: hidden or still being written
        raise ValueError(f"not a visible file name: {printable(raw)!r}")
    return raw


def _write_name(name: str) -> bytes:
    raw = _read_name(name)
    if b"\\" in raw:  # a separator on Windows shares: a name we choose must mean one file everywhere
        raise ValueError(f"not a plain file name: {printable(raw)!r}")
    return raw


def _folder_parts(folder: str) -> tuple[bytes, ...]:
    """A configured folder as components below the root ("" or "." is the root itself)."""
    parts = tuple(part for part in os.fsencode(folder).split(b"/") if part not in (b"", b"."))
    if b".." in parts:
        raise ValueError(f"folder {folder!r} must stay inside the partner's folder")
    return parts


def _joined(*parts: bytes) -> bytes:
    return b"/".join(part for part in parts if part) or b"."


def _temp_name(raw: bytes) -> bytes:
    return b".%s.%s%s" % (raw, secrets.token_hex(6).encode(), TEMP_SUFFIX.encode())


def _archive_candidates(raw: bytes) -> list[bytes]:
    """Archive names tried in order: NAME, then NAME.1, NAME.2 ... (bounded: a runaway loop is a bug)."""
    return [raw] + [b"%s.%d" % (raw, n) for n in range(1, 1000)]


def _modified(timestamp: float | int | None) -> datetime:
    return datetime.fromtimestamp(int(timestamp or 0), UTC)


# ---------------------------------------------------------------- what the operations return


@dataclass(frozen=True)
class RemoteFile:
    """A file waiting in the inbound folder; `modified` is UTC with whole seconds (what SFTP can report).
    `name` is `raw_name` decoded with surrogateescape (see the module docstring)."""

    name: str
    size: int
    modified: datetime
    raw_name: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "raw_name", _raw(self.name))

    @classmethod
    def from_raw(cls, raw_name: bytes, size: int, modified: datetime) -> RemoteFile:
        return cls(_decoded(raw_name), size, modified)

    @property
    def display_name(self) -> str:
        return printable(self.raw_name)


@dataclass(frozen=True)
class FetchedFile:
    """What `fetch_to` wrote: `size` bytes with this `sha256` (hex). `modified` and `opened_size` were stat'ed
    when the read started; a `size` other than `opened_size` means the file changed while it was read."""

    name: str
    size: int
    sha256: str
    modified: datetime
    opened_size: int

    @property
    def display_name(self) -> str:
        return printable(self.name)


class TransportError(Exception):
    """A file operation with a partner failed; `retryable` says whether trying again later can help."""

    def __init__(self, where: str, operation: str, path: str, reason: str, *, retryable: bool) -> None:
        self.where = where
        self.operation = operation
        self.path = printable(path)
        self.reason = " ".join(reason.split())  # one line, whatever a server sent
        self.retryable = retryable
        target = f" '{self.path}'" if path else ""
        kind = "retryable" if retryable else "not retryable"
        super().__init__(f"{where}: {operation}{target} failed ({kind}): {self.reason}")


class _Refused(Exception):
    """What no retry fixes and no OS error describes: a symlink, a file that is not a regular file."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _SinkFailed(Exception):
    """The caller's sink raised: its error is the caller's, passed on as it was, not a transport failure."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _symlink(label: bytes, target: bytes | None) -> _Refused:
    to = f" (to {printable(target)})" if target is not None else ""
    return _Refused(f"{printable(label)} is a symlink{to}: links inside the partner's folder are not followed, "
                    "they could point outside it")  # fmt: skip


def _wrong_kind(label: bytes, kind: str = "a regular file") -> _Refused:
    return _Refused(f"{printable(label)} is not {kind}")


class _Digest:
    """Writes chunks into the sink, counting and hashing them on the way."""

    def __init__(self, sink: BinaryIO) -> None:
        self.sink = sink
        self.size = 0
        self._sha = hashlib.sha256()

    def add(self, chunk: bytes) -> None:
        self._sha.update(chunk)
        self.size += len(chunk)
        try:
            while chunk:
                written = self.sink.write(chunk)
                if written is None or written >= len(chunk):
                    break
                if written <= 0:
                    raise OSError(errno.EIO, "the sink accepted no bytes")
                chunk = chunk[written:]  # a raw sink may take part of a chunk
        except Exception as exc:
            raise _SinkFailed(exc) from exc

    def result(self, name: str, modified: float | int | None, opened_size: int) -> FetchedFile:
        return FetchedFile(name, self.size, self._sha.hexdigest(), _modified(modified), opened_size)


def _check_chunk_size(chunk_size: int) -> int:
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, not {chunk_size}")
    return chunk_size


def _sorted(files: list[RemoteFile]) -> list[RemoteFile]:
    return sorted(files, key=lambda file: (file.modified, file.raw_name))


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
    def stat(self, name: str) -> RemoteFile | None:
        """One inbound file as a listing shows it, or None when it is gone."""

    @abstractmethod
    def fetch_to(self, name: str, sink: BinaryIO, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> FetchedFile:
        """Stream one inbound file into `sink` chunk by chunk, hashing it on the way."""

    def fetch(self, name: str) -> bytes:
        """The content of one small inbound file (a large one goes through `fetch_to`)."""
        buffer = io.BytesIO()
        self.fetch_to(name, buffer)
        return buffer.getvalue()

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
