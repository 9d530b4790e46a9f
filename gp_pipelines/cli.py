"""The `gp-pipelines` command: demo, dev, the database URL, the sandboxes, config checks."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import timedelta

from gp_pipelines import database, local_state
from gp_pipelines.cli_support import (
    CommandError,
    Parser,
    add_debug_flags,
    harden_numbers,
    non_negative_float,
    positive_int,
    run_command,
)
from gp_pipelines.problems import one_line


def _cmd_status(args: argparse.Namespace) -> int:
    """The platform on one screen; exit 1 when something needs attention (handy for a cron or a probe)."""
    import json

    import psycopg

    from gp_pipelines.config import load_config
    from gp_pipelines.sandbox.local import DAGSTER_STORAGE_ENV
    from gp_pipelines.status import collect_status, dagster_check_results, format_status
    from gp_pipelines.warehouse.checks import scope_from_config

    config = load_config()
    url = _platform_database_url()
    os.environ.setdefault(DAGSTER_STORAGE_ENV, database.dagster_storage_url())
    home = args.dagster_home or os.environ.get("DAGSTER_HOME") or str(local_state.current().dagster_home)
    waiting_after = timedelta(minutes=config.automation.notify_waiting_after_minutes)
    with psycopg.connect(url, autocommit=True) as conn:
        report = collect_status(conn, config.instance_keys, check_results=lambda: dagster_check_results(home),
                                waiting_after=waiting_after, scope=scope_from_config(config))
    print(json.dumps(report.as_dict(), default=str, indent=2) if args.json else format_status(report))
    return 0 if report.healthy else 1


def _platform_database_url() -> str:
    """The database the platform's tables are in: GP_DATABASE_URL, else the current mode's on the embedded
    server (`gp_sandbox` without GP_CONFIG, as `dev` and `demo` use it; `gp` with it)."""
    return database.database_url()


def _cmd_config(args: argparse.Namespace) -> int:
    from gp_pipelines.config import load_config

    config = load_config()
    print(f"config: {config.source}")
    print(f"reporting currency: {config.reporting_currency}")
    for instance in config.instances:
        print(f"  {instance.key:<8} {instance.name:<32} {instance.base_url}")
    missing = config.missing_key_variables()
    if missing:
        print("not set in the environment: " + ", ".join(missing), file=sys.stderr)
        return 1
    return 0


def _date(text: str):
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _cmd_cache_query(args: argparse.Namespace) -> int:
    import dataclasses

    import psycopg

    from gp_pipelines.cin7 import queries

    _check_instances(args.instance)
    with psycopg.connect(database.database_url()) as conn:
        if args.question == "sales":
            rows = queries.sales_with_sku(
                conn,
                args.sku,
                since=args.since,
                until=args.until,
                location=args.location,
                customer=args.customer,
                instances=args.instance,
            )
        elif args.question == "stock":
            rows = [
                row
                for row in queries.stock_of_sku(conn, args.sku)
                if not args.instance or row.instance in args.instance
            ]
        else:
            rows = queries.authorised_unshipped_orders(conn, args.instance)
        if not rows:
            _say_what_is_unknown(conn, args)
    records = [dataclasses.asdict(row) for row in rows]
    if args.json:
        for record in records:
            print(json.dumps(record))
    elif records:
        header = list(records[0])
        widths = [max(len(name), *(len(str(record[name])) for record in records)) for name in header]
        print("  ".join(name.ljust(width) for name, width in zip(header, widths, strict=True)))
        for record in records:
            print("  ".join(str(record[name]).ljust(width) for name, width in zip(header, widths, strict=True)))
    print(f"{len(records)} row(s)", file=sys.stderr)
    return 0


def _check_instances(keys: list[str] | None) -> None:
    from gp_pipelines.config import load_config

    known = load_config().instance_keys
    unknown = [key for key in keys or [] if key not in known]
    if unknown:
        raise CommandError(f"unknown instance {', '.join(map(repr, unknown))} (the config in force): use one of "
                           f"{', '.join(known)}")


def _say_what_is_unknown(conn, args: argparse.Namespace) -> None:
    """No rows: if it is because the SKU, location or customer is unknown to the cache, say so (exit 2) rather
    than answer `0 row(s)` as if the question were sound."""
    from gp_pipelines.cin7.store import CACHE_SCHEMA

    instances = args.instance or None
    checks = [("SKU", "products", ["payload->>'SKU'"], getattr(args, "sku", None)),
              ("location", "locations", ["payload->>'Name'", "id"], getattr(args, "location", None)),
              ("customer", "customers", ["payload->>'Name'", "id"], getattr(args, "customer", None))]
    for label, table, columns, value in checks:
        if not value:
            continue
        if conn.execute("SELECT to_regclass(%s)", (f"{CACHE_SCHEMA}.{table}",)).fetchone()[0] is None:
            raise CommandError(f"the ERP cache holds no {table} yet ({CACHE_SCHEMA}.{table}): run `gp-pipelines "
                               f"sync --entity {table}` first")
        scope = "AND instance = ANY(%(instances)s)" if instances else ""
        matches = " OR ".join(f"{column} = %(value)s" for column in columns)
        found = conn.execute(f"SELECT 1 FROM {CACHE_SCHEMA}.{table} WHERE deleted_at IS NULL {scope} "
                             f"AND ({matches}) LIMIT 1", {"value": value, "instances": instances}).fetchone()
        if found:
            continue
        known = [row[0] for row in conn.execute(
            f"SELECT DISTINCT {columns[0]} FROM {CACHE_SCHEMA}.{table} WHERE deleted_at IS NULL {scope} "
            f"ORDER BY 1 LIMIT 11", {"instances": instances})]  # fmt: skip
        where = f"{CACHE_SCHEMA}.{table}" + (f" of {', '.join(instances)}" if instances else "")
        if not known:
            raise CommandError(f"unknown {label} {value!r} ({where} is empty): sync it first with "
                               f"`gp-pipelines sync --entity {table}`")
        listed = ", ".join(map(str, known[:10])) + (", ..." if len(known) > 10 else "")
        raise CommandError(f"unknown {label} {value!r} ({where}): check the spelling; known ones include {listed}")


def _cmd_relocate(args: argparse.Namespace) -> int:
    """Move one sale to another location (see gp_pipelines/automation/relocate.py); 1 when refused or failed."""
    import psycopg

    from gp_pipelines.automation.relocate import RelocationError, relocate_sale
    from gp_pipelines.cin7.client import client_from_environment
    from gp_pipelines.cin7.limiter import PostgresRateLimiter
    from gp_pipelines.config import load_config

    instance = load_config().instance(args.instance)
    database_url = database.database_url()
    limiter = PostgresRateLimiter(database_url, calls=instance.calls_per_minute, label=instance.key)
    try:
        with client_from_environment(instance, limiter) as client, \
                psycopg.connect(database_url, autocommit=True) as conn:
            result = relocate_sale(client, conn, instance.key, args.sale, args.location, dry_run=args.dry_run,
                                   require_stock=args.require_stock, lock_wait_seconds=args.wait,
                                   actor=f"cli:{os.environ.get('USER', '?')}")
    except RelocationError as exc:  # refused or failed part-way: 1, as documented; Cin7 and config errors: 2
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 1
    finally:
        limiter.close()
    print("\n".join(result.describe()))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    # bench/ lives beside the package in the checkout, not inside it.
    sys.path.insert(0, str(database.project_home().parent))
    from bench.__main__ import BENCHMARKS

    if args.name not in BENCHMARKS:
        raise CommandError(f"unknown benchmark {args.name!r} (bench/): use one of {', '.join(BENCHMARKS)}")
    options = {name: getattr(args, name) for name in ("size", "lines") if getattr(args, name)}
    BENCHMARKS[args.name](as_json=args.json, **options)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="gp-pipelines", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    from gp_pipelines.stack_cli import register as register_stack

    register_stack(commands)

    config = commands.add_parser("config", help="validate the config in force and list its instances")
    config.set_defaults(func=_cmd_config)

    status = commands.add_parser("status", help="freshness, latest checks, outbox backlog and EDI acks on one "
                                 "screen (exit 1 when something needs attention)")
    status.add_argument("--json", action="store_true", help="print the report as JSON")
    status.add_argument("--dagster-home", default=None, help="Dagster instance folder (default: $DAGSTER_HOME)")
    status.set_defaults(func=_cmd_status)

    from gp_pipelines.automation.cli import register as register_automation

    register_automation(commands, _platform_database_url)

    cache = commands.add_parser("cache", help="ask the ERP cache (indexed SQL on the JSONB records)")
    cache_commands = cache.add_subparsers(dest="cache_command", required=True)
    query = cache_commands.add_parser("query", help="run one of the cache queries")
    questions = query.add_subparsers(dest="question", required=True)
    sales = questions.add_parser("sales", help="sales with a SKU, optionally shipped from a location, for a customer")
    sales.add_argument("--sku", required=True)
    sales.add_argument("--since", type=_date, help="first order date (default: 12 months ago)")
    sales.add_argument("--until", type=_date, help="day after the last order date (default: tomorrow)")
    sales.add_argument("--location", help="shipped from this location (name)")
    sales.add_argument("--customer", help="customer name or CustomerID")
    stock = questions.add_parser("stock", help="stock of a SKU across instances, locations, bins and batches")
    stock.add_argument("--sku", required=True)
    questions.add_parser("unshipped", help="authorised orders not yet shipped")
    for question in (sales, stock, questions.choices["unshipped"]):
        question.add_argument("--instance", action="append", help="only this instance (repeatable)")
        question.add_argument("--json", action="store_true", help="one JSON object per line")
        question.set_defaults(func=_cmd_cache_query)

    from gp_pipelines.cin7.sync_cli import register as register_sync
    from gp_pipelines.edi.cli import register as register_edi

    register_sync(commands)

    register_edi(commands)

    from gp_pipelines.warehouse_cli import register as register_warehouse

    register_warehouse(commands, _platform_database_url)

    relocate = commands.add_parser("relocate", help="move a sale to another location, keeping its invoices "
                                   "and payments (resumes an unfinished move)")
    relocate.add_argument("--instance", required=True, help="instance key from the config")
    relocate.add_argument("--sale", required=True, metavar="SALE_ID", help="the sale's ID in Cin7 Core")
    relocate.add_argument("--location", required=True, help="target location name (or ID)")
    relocate.add_argument("--dry-run", action="store_true", help="print the validations and the plan only")
    relocate.add_argument("--require-stock", action="store_true",
                          help="refuse when the target cannot cover every line from stock")
    relocate.add_argument("--wait", type=non_negative_float, default=0.0, metavar="SECONDS",
                          help="wait this long for another worker's lock on the order (default: refuse at once)")
    relocate.set_defaults(func=_cmd_relocate)

    bench = commands.add_parser("bench", help="run a benchmark from bench/ and print its figures")
    bench.add_argument("name", help="benchmark name, e.g. edi or sandbox")
    bench.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    bench.add_argument("--size", choices=["small", "medium", "large"], help="sandbox size (sync benchmark)")
    bench.add_argument("--lines", type=positive_int, help="sale lines to generate (warehouse benchmark)")
    bench.set_defaults(func=_cmd_bench)
    harden_numbers(parser)
    add_debug_flags(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Every command runs under one handler: a known error is one line on stderr and exit 2, anything else one
    line and exit 1 (`--debug` or GP_DEBUG=1 adds the traceback); see gp_pipelines/cli_support.py."""
    args = build_parser().parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
