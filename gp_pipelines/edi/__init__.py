"""X12 EDI toolkit (plain Python, no Dagster): streaming reader, validator driven by per-set specs, typed
models, writer, 997 builder. Persistent control numbers live in `gp_pipelines.edi.control_numbers`."""

from gp_pipelines.edi.ack import build_functional_ack, functional_acks, write_acks
from gp_pipelines.edi.errors import EdiIssue, X12ReadError
from gp_pipelines.edi.mapping import document_from_segments, summarize
from gp_pipelines.edi.reader import Delimiters, Segment, iter_segments
from gp_pipelines.edi.report import parse_report
from gp_pipelines.edi.validator import (
    GroupEnd,
    GroupHeader,
    InterchangeEnd,
    InterchangeHeader,
    TransactionSet,
    iter_events,
)
from gp_pipelines.edi.writer import CountingControlNumbers, EnvelopeSettings, read_documents, write_interchange

__all__ = [
    "CountingControlNumbers",
    "Delimiters",
    "EdiIssue",
    "EnvelopeSettings",
    "GroupEnd",
    "GroupHeader",
    "InterchangeEnd",
    "InterchangeHeader",
    "Segment",
    "TransactionSet",
    "X12ReadError",
    "build_functional_ack",
    "document_from_segments",
    "functional_acks",
    "iter_events",
    "iter_segments",
    "parse_report",
    "read_documents",
    "summarize",
    "write_acks",
    "write_interchange",
]
