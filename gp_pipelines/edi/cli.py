"""`gp-pipelines edi parse|ack|write`: the toolkit from the command line.

Exit status: 0 valid, 1 read but with errors, 2 unreadable (not X12, missing file, bad JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gp_pipelines.cli_support import Parser, add_debug_flags, bounded_number, run_command
from gp_pipelines.edi.ack import functional_acks, write_acks
from gp_pipelines.edi.codec import document_from_dict
from gp_pipelines.edi.errors import X12ReadError
from gp_pipelines.edi.mapping import MAPPINGS
from gp_pipelines.edi.reader import Delimiters
from gp_pipelines.edi.report import format_report, parse_report
from gp_pipelines.edi.writer import CountingControlNumbers, EnvelopeSettings, write_interchange

EXIT_VALID, EXIT_INVALID, EXIT_UNREADABLE = 0, 1, 2
# ISA13/GS06/ST02 control numbers are 1 to 9 digits and never 0.
control_number = bounded_number(int, 1, 999_999_999, "a control number from 1 to 999999999")


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_UNREADABLE


def cmd_parse(args: argparse.Namespace) -> int:
    try:
        with open(args.file, "rb") as stream:
            report = parse_report(stream)
    except X12ReadError as exc:
        if args.json:
            print(
                json.dumps(
                    {
                        "interchanges": [],
                        "errors": [{"code": "UNREADABLE", "message": exc.message, "byte_offset": exc.offset}],
                        "valid": False,
                    }
                )
            )
        return _fail(f"{args.file} cannot be read as X12: {exc}")
    except OSError as exc:
        return _fail(str(exc))
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return EXIT_VALID if report["valid"] else EXIT_INVALID


def cmd_ack(args: argparse.Namespace) -> int:
    try:
        with open(args.file, "rb") as stream:
            acks = functional_acks(stream)
    except X12ReadError as exc:
        return _fail(f"{args.file} cannot be read as X12: {exc}")
    except OSError as exc:
        return _fail(str(exc))
    sys.stdout.write(write_acks(acks, _control_numbers(args)))
    return EXIT_VALID


def _control_numbers(args: argparse.Namespace):
    if getattr(args, "partner", None):
        from gp_pipelines.edi.control_numbers import PostgresControlNumbers

        return PostgresControlNumbers(args.partner, args.database_url)
    return CountingControlNumbers(args.start)


def cmd_write(args: argparse.Namespace) -> int:
    try:
        payload = json.loads(Path(args.source).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return _fail(f"cannot read {args.source}: {exc}")
    envelope = payload.pop("envelope", {}) if isinstance(payload, dict) else {}
    body = payload.get("document", payload) if isinstance(payload, dict) else payload
    documents = body if isinstance(body, list) else [body]
    try:
        models = [document_from_dict(args.set_id, document) for document in documents]
        delimiters = Delimiters(
            args.element, args.component, args.terminator, args.repetition, "\n" if args.newline else ""
        )
        settings = EnvelopeSettings(
            **{
                "sender_id": args.sender_id,
                "receiver_id": args.receiver_id,
                "usage": args.usage,
                "delimiters": delimiters,
                **envelope,
            }
        )
    except (ValueError, TypeError, ArithmeticError) as exc:
        return _fail(f"{args.source} is not a valid {args.set_id} document: {exc}")
    text = write_interchange(models, settings, _control_numbers(args))
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return EXIT_VALID


def register(subparsers) -> None:
    """Add the `edi` command (parse, ack, write) to an argparse subparsers object."""
    edi = subparsers.add_parser("edi", help="read, validate, acknowledge and write X12 EDI")
    commands = edi.add_subparsers(dest="edi_command", required=True)

    parse = commands.add_parser("parse", help="print the structure and every validation error of a file")
    parse.add_argument("file")
    parse.add_argument("--json", action="store_true", help="one JSON object: interchanges, errors, warnings")
    parse.set_defaults(func=cmd_parse)

    numbering = argparse.ArgumentParser(add_help=False)
    numbering.add_argument("--partner", help="take control numbers from this partner's PostgreSQL sequence")
    numbering.add_argument("--database-url", help="PostgreSQL URL (default: the platform database)")
    numbering.add_argument("--start", type=control_number, default=1, help="first control number without --partner")

    ack = commands.add_parser("ack", parents=[numbering], help="print the 997 for every group of a file")
    ack.add_argument("file")
    ack.set_defaults(func=cmd_ack)

    write = commands.add_parser("write", parents=[numbering], help="write a document from JSON")
    write.add_argument("set_id", metavar="SET", choices=sorted(MAPPINGS))
    write.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="FILE.json",
        help='the document (or a list), or {"envelope": {...}, "document": ...}',
    )
    write.add_argument("--out", help="write here instead of stdout")
    write.add_argument("--sender-id", default="SENDER")
    write.add_argument("--receiver-id", default="RECEIVER")
    write.add_argument("--usage", default="P", choices=["P", "T", "I"])
    write.add_argument("--element", default="*")
    write.add_argument("--component", default=">")
    write.add_argument("--terminator", default="~")
    write.add_argument("--repetition", default="^")
    write.add_argument("--no-newline", dest="newline", action="store_false", help="no line break after segments")
    write.set_defaults(func=cmd_write)


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="gp-pipelines")
    register(parser.add_subparsers(dest="command", required=True))
    add_debug_flags(parser)
    args = parser.parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
