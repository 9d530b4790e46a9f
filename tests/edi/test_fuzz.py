"""Random byte mutations of valid files never crash the toolkit: only `X12ReadError` may escape."""

from __future__ import annotations

import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gp_pipelines.edi.ack import functional_acks, write_acks
from gp_pipelines.edi.errors import X12ReadError
from gp_pipelines.edi.reader import iter_segments
from gp_pipelines.edi.report import parse_report
from gp_pipelines.edi.validator import EnvelopeWalker
from tests.edi.helpers import BODIES, single

VALID_FILES = [
    single(set_id, **options).encode("utf-8")
    for set_id in sorted(BODIES)
    for options in ({}, {"element": "|", "terminator": "\n", "suffix": ""}, {"terminator": "\u2026"})
]
INTERESTING_BYTES = [*list(b"*~>^|\n\r ISAGSTEIE0123456789"), 0, 29, 127, 226, 128, 166, 239, 255]


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(VALID_FILES)))
    for _ in range(draw(st.integers(1, 8))):
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "duplicate"]))
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        byte = draw(st.one_of(st.sampled_from(INTERESTING_BYTES), st.integers(0, 255)))
        if action == "flip" and data:
            data[position] = byte
        elif action == "insert":
            data.insert(position, byte)
        elif action == "delete" and data:
            del data[position]
        elif action == "truncate":
            del data[position:]
        else:
            end = draw(st.integers(position, len(data)))
            data[position:position] = data[position:end]
    return bytes(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated(), chunk_size=st.sampled_from([3, 64, 1 << 20]))
def test_mutations_only_raise_typed_errors(data, chunk_size):
    try:
        list(EnvelopeWalker().walk(iter_segments(io.BytesIO(data), chunk_size)))
        report = parse_report(io.BytesIO(data))
    except X12ReadError as exc:
        assert exc.offset >= 0
        return
    assert isinstance(report["errors"], list)
    write_acks(functional_acks(io.BytesIO(data)))
