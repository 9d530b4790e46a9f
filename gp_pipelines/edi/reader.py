"""Streaming X12 tokenizer: bytes in, `Segment`s out, delimiters re-read from every ISA.

The file is read in chunks and split on the segment terminator in bulk; only the bytes of the current chunk
and one unfinished segment are held, so memory does not grow with the file. Tolerated on input: a UTF-8 BOM,
whitespace before an ISA, CR/LF after terminators (and inside segments when the terminator is printable),
spaces and indentation around segments, unpadded ISA fields, CR/LF/CRLF and multi-byte terminators, and
several interchanges per file, each with its own delimiters.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from gp_pipelines.edi.errors import X12ReadError

CHUNK_SIZE = 1 << 20
# A segment longer than this means the terminator was mis-detected or the file is not X12.
MAX_SEGMENT_BYTES = 8 << 20
_ISA_SEARCH_LIMIT = 1024
_BOM = b"\xef\xbb\xbf"
_WHITESPACE = b" \t\r\n\x00"
_NEWLINES = (b"\r", b"\n")
ISA_FIELD_WIDTHS = (2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1, 1)


@dataclass(frozen=True)
class Delimiters:
    """The four X12 delimiters plus the cosmetic suffix a writer puts after each terminator."""

    element: str = "*"
    component: str = ">"
    segment: str = "~"
    repetition: str | None = None
    suffix: str = ""

    def all(self) -> tuple[str, ...]:
        return tuple(d for d in (self.element, self.component, self.segment, self.repetition) if d)


class Segment:
    """One segment: `elements[0]` is the tag, so `segment[1]` is the XX01 element ("" when absent)."""

    __slots__ = ("delimiters", "elements", "offset", "tag")

    def __init__(self, elements: list[str], offset: int = -1, delimiters: Delimiters | None = None) -> None:
        self.elements = elements
        self.tag = elements[0]  # a plain attribute: read for every segment, many times
        self.offset = offset
        self.delimiters = delimiters

    def __getitem__(self, position: int) -> str:
        return self.elements[position] if position < len(self.elements) else ""

    def components(self, position: int) -> list[str]:
        separator = self.delimiters.component if self.delimiters else ">"
        return self[position].split(separator)

    def repetitions(self, position: int) -> list[str]:
        separator = self.delimiters.repetition if self.delimiters else None
        value = self[position]
        return value.split(separator) if separator else [value]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Segment) and self.elements == other.elements

    def __hash__(self) -> int:
        return hash(tuple(self.elements))

    def __repr__(self) -> str:
        return f"Segment({'*'.join(self.elements)!r})"


class _Interchange:
    """Byte-level delimiters of the interchange being read."""

    def __init__(self, element: int, component: int, terminator: bytes, repetition: int | None, crlf: bool):
        self.element = element
        self.terminator = terminator
        self.printable_terminator = terminator not in _NEWLINES
        # CRLF files are split on LF; the CR is stripped from each piece like any other whitespace.
        self.strip = bytes(b for b in _WHITESPACE if b not in (element, component, repetition or -1))
        self.strip_text = self.strip.decode("latin-1")
        single_bytes = [element, component] + ([repetition] if repetition is not None else [])
        self.latin1_only = any(b >= 0x80 for b in single_bytes)
        text_terminator = terminator.decode("utf-8", "replace") if len(terminator) > 1 else chr(terminator[0])
        self.delimiters = Delimiters(
            element=chr(element),
            component=chr(component),
            segment=text_terminator,
            repetition=chr(repetition) if repetition is not None else None,
            suffix="\r\n" if crlf else "",
        )

    def decode(self, raw: bytes) -> str:
        if self.latin1_only:
            return raw.decode("latin-1")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")


def _is_alphanumeric(byte: int) -> bool:
    return chr(byte).isalnum() and byte < 0x80


class X12Tokenizer:
    """Iterate the segments of one binary stream: `for segment in X12Tokenizer(stream): ...`."""

    def __init__(self, stream: BinaryIO, chunk_size: int = CHUNK_SIZE) -> None:
        self._stream = stream
        self._chunk_size = chunk_size
        self._buffer = b""
        self._buffer_offset = 0  # absolute offset of _buffer[0]
        self._pos = 0
        self._eof = False
        self._current: _Interchange | None = None
        self._previous: _Interchange | None = None

    # -- buffer -------------------------------------------------------------------------------------------
    def _fill(self) -> bool:
        """Read one more chunk; False at end of file."""
        if self._eof:
            return False
        chunk = self._stream.read(self._chunk_size)
        if not chunk:
            self._eof = True
            return False
        self._buffer_offset += self._pos
        self._buffer = self._buffer[self._pos :] + chunk
        self._pos = 0
        return True

    def _absolute(self, index: int) -> int:
        return self._buffer_offset + index

    # -- iteration ----------------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Segment]:
        while True:
            if self._current is None:
                if not self._skip_whitespace():
                    return
                if self._buffer.startswith(b"ISA", self._pos):
                    yield self._read_isa()
                else:
                    stray = self._read_stray()
                    if stray is not None:
                        yield stray
            else:
                yield from self._read_interchange_body()

    def _skip_whitespace(self) -> bool:
        """Move to the next non-blank byte (BOMs included); False at end of file."""
        while True:
            buffer = self._buffer
            pos = self._pos
            while pos < len(buffer):
                if buffer[pos] in _WHITESPACE:
                    pos += 1
                elif buffer.startswith(_BOM, pos):
                    pos += 3
                elif len(buffer) - pos < 3 and not self._eof:
                    break  # maybe a BOM or "ISA" split across chunks
                else:
                    self._pos = pos
                    return True
            self._pos = pos
            if not self._fill():
                return self._pos < len(self._buffer)

    def _read_stray(self) -> Segment | None:
        """Bytes between interchanges: one segment cut with the previous delimiters, or a read error."""
        if self._previous is None:
            raise X12ReadError("input does not start with an ISA segment", self._absolute(self._pos))
        interchange = self._previous
        while True:
            end = self._buffer.find(interchange.terminator, self._pos)
            if end >= 0 or self._eof:
                break
            if len(self._buffer) - self._pos > MAX_SEGMENT_BYTES:
                raise X12ReadError("no segment terminator found", self._absolute(self._pos))
            self._fill()
        end = len(self._buffer) if end < 0 else end
        start = self._pos
        self._pos = min(len(self._buffer), end + len(interchange.terminator))
        return self._segment(interchange, self._buffer[start:end], start)

    def _segment(self, interchange: _Interchange, raw: bytes, start: int) -> Segment | None:
        left_stripped = raw.lstrip(interchange.strip)
        cleaned = left_stripped.rstrip(interchange.strip)
        if interchange.printable_terminator and (b"\n" in cleaned or b"\r" in cleaned):
            # Wrapped records (80-column files): line breaks inside a segment are not data.
            cleaned = cleaned.replace(b"\r", b"").replace(b"\n", b"")
        if not cleaned:
            return None
        offset = self._buffer_offset + start + len(raw) - len(left_stripped)
        text = interchange.decode(cleaned)
        return Segment(text.split(interchange.delimiters.element), offset, interchange.delimiters)

    def _text_segment(self, interchange: _Interchange, piece: str, start: int) -> Segment | None:
        """`_segment` for an ASCII piece already decoded; the usual shape (one LF after the terminator, no other
        blanks at the ends, no line breaks inside) takes the short way."""
        if piece[:1] == "\n" and "\n" in interchange.strip_text:
            piece = piece[1:]
            start += 1
        strip = interchange.strip_text
        if piece and piece[0] not in strip and piece[-1] not in strip and "\n" not in piece and "\r" not in piece:
            return Segment(
                piece.split(interchange.delimiters.element), self._buffer_offset + start, interchange.delimiters
            )
        return self._segment(interchange, piece.encode("ascii"), start)

    # -- ISA ------------------------------------------------------------------------------------------------
    def _read_isa(self) -> Segment:
        while True:
            parsed = self._parse_isa()
            if parsed is not None:
                break
            if not self._fill():
                parsed = self._parse_isa(at_eof=True)
                break
        elements, interchange, end = parsed
        start = self._pos
        self._pos = end
        self._current = interchange
        self._previous = interchange
        return Segment(elements, self._absolute(start), interchange.delimiters)

    def _parse_isa(self, at_eof: bool = False):
        """(elements, interchange, end index) from the ISA at _pos; None when more bytes are needed."""
        buffer = self._buffer
        start = self._pos
        offset = self._absolute(start)
        limit = min(len(buffer), start + _ISA_SEARCH_LIMIT)

        def incomplete(message: str):
            if at_eof or len(buffer) - start >= _ISA_SEARCH_LIMIT:
                raise X12ReadError(message, offset)
            return None

        if limit - start < 4:
            return incomplete("truncated ISA segment")
        separator = buffer[start + 3]
        if _is_alphanumeric(separator) or separator in _WHITESPACE:
            raise X12ReadError(f"invalid element separator {chr(separator)!r} after ISA", offset)
        fields: list[bytes] = []
        field = bytearray()
        index = start + 4
        while len(fields) < 15:
            if index >= limit:
                return incomplete("ISA segment does not have 16 elements")
            byte = buffer[index]
            if byte == separator:
                fields.append(bytes(field))
                field.clear()
            elif byte not in (13, 10):
                field.append(byte)
            index += 1
        while index < limit and buffer[index] in (13, 10):
            index += 1
        if index + 1 >= limit:
            return incomplete("ISA segment ends before its terminator")
        component = buffer[index]
        index += 1
        first = buffer[index]
        crlf = False
        if first == 13 and index + 1 < len(buffer) and buffer[index + 1] == 10:
            terminator, end, crlf = b"\n", index + 2, True
        elif first == 13 and index + 1 >= len(buffer) and not at_eof:
            return None  # CR at the chunk edge: is it CRLF?
        elif first >= 0xC0:
            width = 2 if first < 0xE0 else 3 if first < 0xF0 else 4
            if index + width > len(buffer) and not at_eof:
                return None
            candidate = buffer[index : index + width]
            try:
                candidate.decode("utf-8")
                terminator = candidate
            except UnicodeDecodeError:
                terminator = bytes([first])
            end = index + len(terminator)
        else:
            terminator, end = bytes([first]), index + 1
        if _is_alphanumeric(component) or component in (separator, 13, 10) or terminator[0] in (separator, component):
            raise X12ReadError("ISA delimiters are inconsistent (equal to each other or alphanumeric)", offset)
        if _is_alphanumeric(terminator[0]) or terminator[0] in b" \t":
            raise X12ReadError(f"invalid segment terminator {terminator!r}", offset)
        texts = [field.decode("latin-1") for field in fields]
        version = texts[11].strip()
        repetition = None
        if version >= "00402" and len(texts[10]) == 1:
            candidate = texts[10].encode("latin-1")[0]
            if not _is_alphanumeric(candidate) and candidate not in (separator, component, terminator[0], 32):
                repetition = candidate
        interchange = _Interchange(separator, component, terminator, repetition, crlf)
        return ["ISA", *texts, chr(component)], interchange, end

    # -- interchange body -----------------------------------------------------------------------------------
    def _read_interchange_body(self) -> Iterator[Segment]:
        """Segments up to and including IEA (or up to the next ISA); then back to boundary mode."""
        interchange = self._current
        terminator = interchange.terminator
        while True:
            last = self._buffer.rfind(terminator, self._pos)
            if last < 0 and not self._eof:
                if len(self._buffer) - self._pos > MAX_SEGMENT_BYTES:
                    raise X12ReadError("no segment terminator found", self._absolute(self._pos))
                self._fill()
                continue
            final = last < 0  # end of file: the rest is one last, unterminated piece
            region_end = len(self._buffer) if final else last
            region = self._buffer[self._pos : region_end]
            if final:
                region = region.split(terminator, 1)[0]
            step = len(terminator)
            if interchange.printable_terminator and region.isascii():
                # ASCII: text offsets are byte offsets, so the region is decoded and split once; when every
                # terminator is followed by one LF (the usual "~\n"), both are split off together.
                text = region.decode("ascii")
                separator = interchange.delimiters.segment
                newlines = text.count("\n")
                after_terminator = text.count(separator + "\n")
                if "\n" in interchange.strip_text and text.count(separator) == after_terminator:
                    separator += "\n"
                    step += 1
                pieces = text.split(separator)
                cut = self._text_segment
                # Pieces can hold line breaks only when some LF does not follow a terminator, or CRs exist.
                line_breaks_inside = newlines != after_terminator or "\r" in text
            else:
                pieces = region.split(terminator)
                cut = self._segment
                line_breaks_inside = True
            piece_start = self._pos
            text_pieces = cut == self._text_segment
            strip = interchange.strip_text
            base = self._buffer_offset
            delimiters = interchange.delimiters
            element = delimiters.element
            for piece in pieces:
                start = piece_start
                piece_start += len(piece) + step
                if (
                    text_pieces
                    and piece
                    and piece[0] not in strip
                    and piece[-1] not in strip
                    and (not line_breaks_inside or ("\n" not in piece and "\r" not in piece))
                ):
                    segment = Segment(piece.split(element), base + start, delimiters)  # the usual shape, inlined
                else:
                    segment = cut(interchange, piece, start)
                    if segment is None:
                        continue
                tag = segment.tag
                if tag[:3] == "ISA" and (len(tag) == 3 or not tag[3].isalnum()):
                    # A new interchange without IEA: re-read its delimiters from its own header.
                    self._pos = start + piece.find(b"ISA" if isinstance(piece, bytes) else "ISA")
                    self._current = None
                    return
                yield segment
                if tag == "IEA":
                    self._pos = min(piece_start, len(self._buffer))
                    self._current = None
                    return
            self._pos = len(self._buffer) if final else last + len(terminator)
            if final:
                self._current = None
                return


def iter_segments(stream: BinaryIO, chunk_size: int = CHUNK_SIZE) -> Iterator[Segment]:
    """All segments of a binary stream, in order; raises `X12ReadError` for input that is not X12."""
    return iter(X12Tokenizer(stream, chunk_size))
