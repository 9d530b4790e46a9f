"""A partner who can write its folder may plant symlinks there; no operation follows one, on either transport.
Everything outside the partner's folder stays exactly as it was (or absent), and each refusal names the link."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from gp_pipelines.connectors.transport import FolderTransport, Transport, TransportError

from .conftest import partner_writes


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the partner's, holding something worth stealing or overwriting."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.x12").write_bytes(b"SECRET")
    (folder / "945.x12").write_bytes(b"not the partner's")
    return folder


def snapshot(folder: Path) -> dict[str, tuple[bytes, int] | None]:
    """Every entry below `folder` with its content and modification time, links not followed."""
    found: dict[str, tuple[bytes, int] | None] = {}
    for parent, folders, files in os.walk(folder):
        for name in folders:
            found[os.path.relpath(os.path.join(parent, name), folder)] = None
        for name in files:
            path = os.path.join(parent, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, folder)] = (handle.read(), os.lstat(path).st_mtime_ns)
    return found


def assert_refused(call: Callable[[], object], link: str) -> TransportError:
    with pytest.raises(TransportError) as caught:
        call()
    error = caught.value
    assert error.retryable is False
    assert f"{link} is a symlink" in error.reason and "not followed" in error.reason, error.reason
    assert "\n" not in str(error)
    return error


def reading_calls(transport: Transport, name: str) -> list[Callable[[], object]]:
    return [lambda: transport.fetch(name), lambda: transport.fetch_to(name, io.BytesIO()),
            lambda: transport.stat(name), lambda: transport.archive_inbound(name)]  # fmt: skip


def test_a_symlinked_inbound_folder_is_refused(transport: Transport, root: Path, outside: Path) -> None:
    (root / "out").symlink_to(outside)
    before = snapshot(outside)

    error = assert_refused(transport.list_inbound, "out")
    if isinstance(transport, FolderTransport):  # a chrooted SFTP server will not say where outside it points
        assert f"(to {outside})" in error.reason
    for call in reading_calls(transport, "secret.x12"):
        assert_refused(call, "out")

    assert snapshot(outside) == before  # no archive folder created, nothing moved


@pytest.mark.parametrize("folder", ["processed", "quarantine"])
def test_a_symlinked_archive_folder_is_refused(transport: Transport, root: Path, outside: Path, folder: str) -> None:
    partner_writes(root, "945.x12", b"ours")
    (root / "out" / folder).symlink_to(outside)
    before = snapshot(outside)

    assert_refused(lambda: transport.archive_inbound("945.x12", folder), f"out/{folder}")

    assert (root / "out" / "945.x12").read_bytes() == b"ours"  # still in the inbox, for a person to look at
    assert snapshot(outside) == before
    # The file gone from the inbox: the "already archived" check does not look through the link either.
    (root / "out" / "945.x12").unlink()
    assert_refused(lambda: transport.archive_inbound("945.x12", folder), f"out/{folder}")


def test_a_dangling_archive_link_creates_nothing_outside(transport: Transport, root: Path, outside: Path) -> None:
    partner_writes(root, "945.x12", b"ours")
    (root / "out" / "processed").symlink_to(outside / "made_by_us")

    assert_refused(lambda: transport.archive_inbound("945.x12"), "out/processed")

    assert not (outside / "made_by_us").exists()


def test_a_symlinked_outbound_folder_is_refused(transport: Transport, root: Path, outside: Path) -> None:
    (root / "in").symlink_to(outside)
    before = snapshot(outside)

    assert_refused(lambda: transport.put("945.x12", b"overwrite?"), "in")
    assert_refused(lambda: transport.put("new_940.x12", b"plant?"), "in")

    assert snapshot(outside) == before


def test_a_symlink_where_we_put_a_file_is_refused(transport: Transport, root: Path, outside: Path) -> None:
    (root / "in").mkdir()
    (root / "in" / "940.x12").symlink_to(outside / "secret.x12")
    before = snapshot(outside)

    assert_refused(lambda: transport.put("940.x12", b"overwrite?"), "in/940.x12")

    assert snapshot(outside) == before
    assert (root / "in" / "940.x12").is_symlink() and os.listdir(root / "in") == ["940.x12"]  # no temp left


def test_a_symlinked_inbound_file_is_not_listed_and_not_read(transport: Transport, root: Path, outside: Path) -> None:
    partner_writes(root, "945_1.x12", b"real")
    (root / "out" / "945_link.x12").symlink_to(outside / "secret.x12")
    (root / "out" / "945_dir").symlink_to(outside)
    before = snapshot(outside)

    assert [remote.name for remote in transport.list_inbound()] == ["945_1.x12"]
    for call in reading_calls(transport, "945_link.x12"):
        error = assert_refused(call, "out/945_link.x12")
        assert "SECRET" not in str(error)

    assert snapshot(outside) == before
    assert (root / "out" / "945_link.x12").is_symlink()  # left where the partner put it


def test_a_symlink_deeper_in_a_configured_folder_is_refused(make_transport: Callable[..., Transport], root: Path,
                                                             outside: Path) -> None:
    (outside / "out").mkdir()
    (outside / "out" / "945.x12").write_bytes(b"outside")
    (root / "edi").symlink_to(outside)
    transport = make_transport(inbound_dir="edi/out", outbound_dir="edi/in")
    before = snapshot(outside)

    assert_refused(transport.list_inbound, "edi")
    assert_refused(lambda: transport.fetch("945.x12"), "edi")
    assert_refused(lambda: transport.put("940.x12", b"x"), "edi")

    assert snapshot(outside) == before


def test_the_configured_root_itself_may_be_a_symlink(tmp_path: Path, root: Path) -> None:
    mount = tmp_path / "mount"
    mount.symlink_to(root)  # an operator's mount point: trusted
    transport = FolderTransport(mount)

    transport.put("940.x12", b"940")
    partner_writes(root, "945.x12", b"945")
    assert [remote.name for remote in transport.list_inbound()] == ["945.x12"]
    assert transport.fetch("945.x12") == b"945"
    transport.archive_inbound("945.x12")

    assert (root / "in" / "940.x12").read_bytes() == b"940"
    assert (root / "out" / "processed" / "945.x12").read_bytes() == b"945"
