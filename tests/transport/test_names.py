"""File names are bytes: any name a POSIX server can hold is listed, read, streamed and archived on both
transports, shown printably, and carried through JSON run config as a token that gives back the same bytes."""

from __future__ import annotations

import hashlib
import io
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gp_pipelines.connectors.transport import (
    TOKEN_PREFIX,
    RemoteFile,
    Transport,
    TransportError,
    name_from_token,
    name_to_token,
    printable,
)

from .conftest import partner_writes

GOOD = [b"945_000000001.x12", b"997_000000002.x12"]
ODD = [
    b"945_\xff\xfe.x12",  # not UTF-8: what broke every listing
    b"back\\slash.x12",  # a plain character on a POSIX server
    b"with  spaces .x12",
    b"ctl\x01\x1b\x7f\t.x12",
    b"n" * 246 + b".x12",  # 250 bytes, near the 255 a name may have
    "é_945_ünïcode.x12".encode(),
    b"hex:4142.x12",  # looks like a token, must not be read as one
    b"\xed\xb3\xbf.x12",  # the UTF-8 form of a surrogate: not valid UTF-8 either
]


def _decoded(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def test_odd_names_among_good_ones_list_fetch_stream_stat_and_archive(transport: Transport, root: Path) -> None:
    names = GOOD + ODD
    for index, raw in enumerate(names):
        partner_writes(root, raw, b"ISA*%d~" % index, mtime=1_700_000_000 + index)

    listed = transport.list_inbound()

    assert [remote.raw_name for remote in listed] == names  # oldest first, none lost, none broken
    for index, remote in enumerate(listed):
        data = b"ISA*%d~" % index
        assert remote.name == _decoded(remote.raw_name) and remote.size == len(data)
        # The way a sensor hands a name to a run: a token in JSON, back to the same name.
        name = name_from_token(json.loads(json.dumps({"name": name_to_token(remote.name)}))["name"])
        assert name == remote.name
        assert transport.stat(name) == remote
        assert transport.fetch(name) == data
        sink = io.BytesIO()
        fetched = transport.fetch_to(name, sink)
        assert sink.getvalue() == data
        assert (fetched.size, fetched.opened_size, fetched.sha256) == (len(data), len(data), _sha(data))
        assert fetched.modified == remote.modified and fetched.name == name
        transport.archive_inbound(name)
        transport.archive_inbound(name)  # idempotent for odd names too

    assert transport.list_inbound() == []
    assert sorted(os.listdir(os.fsencode(root / "out" / "processed"))) == sorted(names)


def test_display_names_are_printable_and_say_which_bytes(transport: Transport, root: Path) -> None:
    for raw in ODD:
        partner_writes(root, raw, b"x")
    shown = {remote.raw_name: remote.display_name for remote in transport.list_inbound()}
    assert shown[b"945_\xff\xfe.x12"] == "945_\\xff\\xfe.x12"
    assert shown[b"ctl\x01\x1b\x7f\t.x12"] == "ctl\\x01\\x1b\\x7f\\x09.x12"
    assert shown[b"back\\slash.x12"] == "back\\slash.x12"
    assert shown["é_945_ünïcode.x12".encode()] == "é_945_ünïcode.x12"
    assert all(name.isprintable() for name in shown.values())


def test_an_error_names_the_odd_file_printably_on_one_line(transport: Transport) -> None:
    with pytest.raises(TransportError) as caught:
        transport.fetch(_decoded(b"945_\xff\nnext.x12"))
    message = str(caught.value)
    assert "945_\\xff\\x0anext.x12" in message and "\n" not in message
    assert caught.value.retryable is False


def test_stat_of_a_gone_file_is_none(transport: Transport, root: Path) -> None:
    assert transport.stat("945_1.x12") is None  # no inbound folder yet
    path = partner_writes(root, b"945_\xff.x12", b"x")
    assert transport.stat(_decoded(b"945_\xff.x12")) is not None
    os.unlink(path)
    assert transport.stat(_decoded(b"945_\xff.x12")) is None


@pytest.mark.parametrize("name", ["", ".", "..", "../escape.x12", "sub/945.x12", "nul\x00.x12", ".hidden"])
def test_names_that_are_no_single_visible_file_are_refused_for_every_operation(transport: Transport,
                                                                              name: str) -> None:
    for call in (lambda: transport.put(name, b"x"), lambda: transport.fetch(name), lambda: transport.stat(name),
                 lambda: transport.fetch_to(name, io.BytesIO()), lambda: transport.archive_inbound(name)):
        with pytest.raises(ValueError):
            call()


def test_names_we_write_are_plain_but_a_backslash_can_be_read(transport: Transport, root: Path) -> None:
    with pytest.raises(ValueError):
        transport.put("back\\slash.x12", b"x")  # a separator on a Windows share
    with pytest.raises(ValueError):
        transport.archive_inbound("945.x12", folder="../elsewhere")
    partner_writes(root, "back\\slash.x12", b"read me")
    assert transport.fetch("back\\slash.x12") == b"read me"


def test_remote_file_carries_its_raw_name() -> None:
    modified = datetime(2026, 1, 2, tzinfo=UTC)
    remote = RemoteFile.from_raw(b"945_\xff.x12", 3, modified)
    assert remote == RemoteFile(_decoded(b"945_\xff.x12"), 3, modified)
    assert remote.raw_name == b"945_\xff.x12" and remote.display_name == "945_\\xff.x12"
    with pytest.raises(ValueError):
        RemoteFile("\ud800", 1, modified)  # a lone surrogate no byte decodes to


# ---------------------------------------------------------------- tokens


@given(st.binary(max_size=300))
def test_a_token_gives_back_the_exact_bytes_of_any_name(raw: bytes) -> None:
    name = _decoded(raw)
    token = name_to_token(name)
    token.encode("utf-8")  # plain text: JSON, Dagster run config and run keys take it
    assert token.isprintable()
    assert json.loads(json.dumps(token, ensure_ascii=False)) == token
    back = name_from_token(token)
    assert back == name and back.encode("utf-8", "surrogateescape") == raw
    assert "\n" not in printable(raw) and printable(raw).isprintable()


@given(st.text(max_size=100))
def test_a_clean_name_is_its_own_token(name: str) -> None:
    token = name_to_token(name)
    if name.isprintable() and not name.startswith(TOKEN_PREFIX):
        assert token == name
    else:
        assert token.startswith(TOKEN_PREFIX)
    assert name_from_token(token) == name


def test_tokens_of_odd_names() -> None:
    assert name_to_token("945_1.x12") == "945_1.x12"
    assert name_to_token(_decoded(b"945_\xff.x12")) == "hex:3934355fff2e783132"
    assert name_from_token("hex:4142") == "AB"
    assert name_from_token(name_to_token("hex:4142")) == "hex:4142"
    with pytest.raises(ValueError):
        name_from_token("hex:not-hex")
    with pytest.raises(ValueError):
        name_to_token("\ud800")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
