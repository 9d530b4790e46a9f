"""Say what a file is when it is not X12, from its first bytes, so a quarantine reason tells a person what
arrived (an error page, a spreadsheet, UTF-16 text) instead of "bad ISA"."""

from __future__ import annotations

HEAD_BYTES = 512
_BOMS = {b"\xef\xbb\xbf": "UTF-8"}
_MAGIC = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"\xd0\xcf\x11\xe0", "an old Office document (e.g. .xls)"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
)


def describe_non_x12(head: bytes) -> str | None:
    """Why a file starting with `head` is not X12, in words; None when it starts like X12 (an ISA segment after
    an optional UTF-8 byte-order mark and blanks)."""
    if not head:
        return "the file is empty"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or _looks_utf16(head):
        return "UTF-16 text, not X12 (X12 is 8-bit text): ask the partner to send it as ASCII/UTF-8"
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return f"{what}, not X12"
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")
    if text.startswith(b"ISA"):
        return None
    lowered = text[:200].lower()
    if lowered.startswith(b"<") and (b"<html" in lowered or b"<!doctype html" in lowered):
        return "an HTML page (an error page from a web server or proxy?), not X12"
    if lowered.startswith(b"<"):
        return "XML, not X12"
    if lowered.startswith((b"{", b"[")):
        return "JSON, not X12"
    control = sum(1 for byte in head if (byte < 32 and byte not in (9, 10, 13)) or byte == 127)
    if control > len(head) // 10:
        return "binary data, not X12"
    return f"text that does not start with an ISA segment (it starts {text[:24]!r})"


def _looks_utf16(head: bytes) -> bool:
    # ASCII written as UTF-16 without a byte-order mark: every other byte is NUL.
    sample = head[:64]
    if len(sample) < 8:
        return False
    even, odd = sample[0::2], sample[1::2]
    return odd.count(0) >= len(odd) * 0.8 or even.count(0) >= len(even) * 0.8


def looks_unfinished(head: bytes, tail: bytes) -> bool:
    """Whether an X12 file (first bytes `head`, last bytes `tail`) stops before its last interchange ends: the
    last segment is not an IEA closed by the segment terminator the ISA declares. A file still being uploaded
    looks like this; so does one a partner cut short."""
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")
    if len(text) < 106 or not text.startswith(b"ISA"):
        return False
    terminator = text[105:106]
    end = tail.rstrip(b" \t\r\n\x00")
    if not end.endswith(terminator):
        return True
    last = end[:-1].rsplit(terminator, 1)[-1].lstrip(b" \t\r\n")
    return not last.startswith(b"IEA")
