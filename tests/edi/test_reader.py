"""The tokenizer: separators from each ISA and every input quirk the issue lists."""

from __future__ import annotations

import io

import pytest

from gp_pipelines.edi.errors import X12ReadError
from gp_pipelines.edi.reader import X12Tokenizer, iter_segments
from tests.edi.helpers import PO_BODY, error_codes, interchange, single


def tags(data: str | bytes, chunk_size: int = 1 << 20) -> list[str]:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return [segment.tag for segment in iter_segments(io.BytesIO(raw), chunk_size)]


EXPECTED_PO = ["ISA", "GS", "ST", *[line.split("*")[0] for line in PO_BODY], "SE", "GE", "IEA"]


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 64, 1 << 20])
def test_segments_do_not_depend_on_chunk_size(chunk_size):
    data = "\ufeff" + single("850", terminator="\u2026", suffix="\r\n")
    assert tags(data, chunk_size) == EXPECTED_PO
    assert error_codes(data) == []


def test_separators_come_from_the_isa():
    data = single("850", element="|", component="^", terminator="}", suffix="")
    segments = list(iter_segments(io.BytesIO(data.encode())))
    assert [s.tag for s in segments] == EXPECTED_PO
    assert segments[0].delimiters.element == "|"
    assert segments[0].delimiters.component == "^"
    assert segments[0].delimiters.segment == "}"
    assert segments[0][16] == "^"
    assert segments[3][3] == "PO123"


@pytest.mark.parametrize(
    ("terminator", "suffix"),
    [("~", ""), ("~", "\n"), ("~", "\r\n"), ("\n", ""), ("\r\n", ""), ("\r", ""), ("\x15", ""), ("\u2026", "\n")],
)
def test_terminators_and_suffixes(terminator, suffix):
    data = single("850", terminator=terminator, suffix=suffix)
    assert tags(data) == EXPECTED_PO
    assert error_codes(data) == []


def test_control_character_element_separator():
    data = single("850", element="\x7f", terminator="\x1d", suffix="")
    assert tags(data) == EXPECTED_PO


def test_utf8_bom_leading_blank_lines_and_indentation():
    data = single("850").replace("\n", "\n    ")
    assert tags("\ufeff\n\n  " + data) == EXPECTED_PO
    assert error_codes("\ufeff" + data) == []


def test_spaces_after_terminators():
    assert tags(single("850", suffix="   ")) == EXPECTED_PO


def test_line_breaks_inside_segments_when_the_terminator_is_printable():
    flat = single("850", suffix="")
    wrapped = "\n".join(flat[i : i + 80] for i in range(0, len(flat), 80))  # 80-column files
    segments = list(iter_segments(io.BytesIO(wrapped.encode())))
    assert [s.tag for s in segments] == EXPECTED_PO
    assert segments[0].elements == next(iter(iter_segments(io.BytesIO(flat.encode())))).elements
    assert error_codes(wrapped) == []


def test_unpadded_isa_is_read_by_counting_separators():
    data = single("850").replace("SENDER         ", "SENDER").replace("          ", " ")
    segments = list(iter_segments(io.BytesIO(data.encode())))
    assert [s.tag for s in segments] == EXPECTED_PO
    assert segments[0][6] == "SENDER"
    assert error_codes(data) == []  # only a warning


def test_several_interchanges_each_with_its_own_separators():
    first = single("850", control="000000001")
    second = single("940", element="|", component="\\", terminator="\n", suffix="", control="000000002")
    third = single("856", element="^", component=":", terminator="'", suffix="\r\n", control="000000003")
    segments = list(iter_segments(io.BytesIO((first + second + third).encode())))
    assert [s.tag for s in segments].count("ISA") == 3
    assert [s.delimiters.element for s in segments if s.tag == "ISA"] == ["*", "|", "^"]
    assert error_codes(first + second + third) == []


def test_repetition_separator_only_from_00402():
    modern = single("850", version="00501", isa11="^")
    old = single("850", version="00401", isa11="^")
    assert next(iter_segments(io.BytesIO(modern.encode()))).delimiters.repetition == "^"
    assert next(iter_segments(io.BytesIO(old.encode()))).delimiters.repetition is None
    body = [*PO_BODY[:1], "REF*DP*038^039", *PO_BODY[2:]]
    segments = list(iter_segments(io.BytesIO(single("850", body, version="00501", isa11="^").encode())))
    assert segments[4].repetitions(2) == ["038", "039"]


def test_components():
    body = ["AK1*PO*1", "AK2*850*0001", "AK3*PO1*5**8", "AK4*2>1**7*XX", "AK5*R*5", "AK9*R*1*1*0"]
    segments = list(iter_segments(io.BytesIO(single("997", body).encode())))
    assert segments[6].components(1) == ["2", "1"]


def test_last_segment_without_terminator_or_newline():
    data = single("850", terminator="\n", suffix="").rstrip("\n")
    assert tags(data) == EXPECTED_PO
    assert tags(single("850").rstrip("\n~")) == EXPECTED_PO


def test_new_isa_without_iea_starts_a_new_interchange():
    first = single("850").replace("IEA*1*000000001~\n", "")
    data = first + single("940", element="|", control="000000002")
    assert tags(data).count("ISA") == 2
    assert "IEA_MISSING" in error_codes(data)


@pytest.mark.parametrize(
    ("data", "offset"),
    [
        (b"hello world", 0),
        (b"\n\nGS*PO*A*B~", 2),
        (b"ISA*00*", 0),
        (b"ISA0000", 0),
        (interchange([]).replace("*>~", "*>*").encode(), 0),  # terminator equals the element separator
        (b"ISA" + b"*" * 2000, 0),
    ],
)
def test_unreadable_input_raises_with_offset(data, offset):
    with pytest.raises(X12ReadError) as raised:
        list(iter_segments(io.BytesIO(data)))
    assert raised.value.offset == offset


def test_empty_input_has_no_segments():
    assert tags(b"") == []
    assert tags(b"\xef\xbb\xbf \n") == []


def test_runaway_segment_is_a_read_error(monkeypatch):
    monkeypatch.setattr("gp_pipelines.edi.reader.MAX_SEGMENT_BYTES", 1000)
    data = single("850").encode() + b"\n" + single("850", terminator="!").encode()[:106] + b"x" * 5000
    with pytest.raises(X12ReadError):
        list(iter_segments(io.BytesIO(data), chunk_size=100))


class CountingStream(io.RawIOBase):
    """An endless generated file that records how much was read."""

    def __init__(self, unit: bytes, repeats: int) -> None:
        self.unit, self.left, self.read_bytes = unit, repeats, 0
        self.pending = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while len(self.pending) < size and self.left:
            self.pending += self.unit
            self.left -= 1
        out, self.pending = self.pending[:size], self.pending[size:]
        self.read_bytes += len(out)
        return out


def test_reading_is_streaming():
    unit = single("856").encode()
    stream = CountingStream(unit, repeats=10_000)
    tokenizer = X12Tokenizer(stream, chunk_size=4096)
    first = next(iter(tokenizer))
    assert first.tag == "ISA"
    assert stream.read_bytes <= 4096  # the whole file is never read up front
