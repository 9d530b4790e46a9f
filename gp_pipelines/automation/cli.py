"""`gp-pipelines outbox|orders|inbox`: the automation from the shell, for operators.

- `outbox list` shows the backlog per state and every failed, overdue, dead or given-up action with its last
  error; `outbox requeue KEY... | --all-given-up` tries them again once the cause is fixed.
- `orders route --since DATE [--instance KEY] [--dry-run]` lists (dry run) or admits and routes the authorised
  sales ordered before the start line, which the automation otherwise leaves alone; `orders list [--state S]`
  and `orders show SALE` show the sales it handles, with each one's fulfilments, shipments and history.
- `inbox list` shows partner files per state; `inbox dismiss ID...` sets aside a quarantined or unreadable file
  once someone has dealt with it (it stays kept in `automation.edi_files`).

Each prints one line per problem and exits 1 when a step failed, 2 on a usage or config error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg

from gp_pipelines.automation import attention, outbox
from gp_pipelines.automation.orders import ensure_order_tables, sales_before_start_line
from gp_pipelines.automation.state import (
    FILE_STATES,
    FULFILMENT,
    INBOUND_FILE,
    SALE,
    SALE_STATES,
    SHIPMENT,
    rows,
    start_line,
    transition,
)
from gp_pipelines.automation.state import history as state_history
from gp_pipelines.cli_support import CommandError, positive_int
from gp_pipelines.config import load_config


def _user() -> str:
    return f"cli:{os.environ.get('USER', '?')}"


def _date(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _outbox(args: argparse.Namespace, conn: psycopg.Connection) -> int:
    if args.outbox_command == "list":
        print(", ".join(f"{state} {count}" for state, count in outbox.backlog(conn).items()))
        now = datetime.now(UTC)
        for item in attention.attention_items(conn, kinds=("outbox",)):
            print(f"{item.reason:<14} {item.key}  since {attention.age_text(now - item.since)}  {item.detail[:140]}")
        return 0
    keys = list(args.keys)
    if args.all_given_up:
        keys += [row[0] for row in conn.execute("SELECT key FROM automation.outbox WHERE state = 'given_up' "
                                                "ORDER BY id").fetchall()]  # fmt: skip
    if not keys:
        print("error: nothing to requeue: name keys (see `gp-pipelines outbox list`) or pass --all-given-up",
              file=sys.stderr)
        return 2
    known = {row[0] for row in conn.execute("SELECT key FROM automation.outbox WHERE key = ANY(%s)", (keys,))}
    unknown = [key for key in keys if key not in known]
    if unknown:  # checked before any is requeued: a typo in one key must not half-apply the command
        raise CommandError(f"no outbox item has the key {', '.join(map(repr, unknown))} (automation.outbox): see "
                           "`gp-pipelines outbox list` for the keys")
    for key in keys:
        item = outbox.requeue(conn, key, actor=_user())
        print(f"{item.key}: {item.state}")
    print("requeued items run at the next outbox_retry (sensor) or when you materialise automation/outbox")
    return 0


def _orders_route(args: argparse.Namespace, conn: psycopg.Connection) -> int:
    from gp_pipelines.automation.context import context_from_environment
    from gp_pipelines.automation.reconcile import take_routing_offer

    config = load_config()
    if args.instance and args.instance not in config.instance_keys:
        raise CommandError(f"unknown instance {args.instance!r} ({config.source}): use one of "
                           f"{', '.join(config.instance_keys)}")
    start = start_line(conn, config.automation.route_orders_since, actor=_user())
    waiting = sales_before_start_line(conn, config, args.since, start, args.instance)
    print(f"start line {start:%Y-%m-%d}: {len(waiting)} authorised, unrouted sale(s) ordered from "
          f"{args.since:%Y-%m-%d} before it" + (" (dry run: nothing is routed)" if args.dry_run else ""))
    for sale in waiting:
        print(f"  {sale['instance']:<6} {sale['order_number'] or sale['sale_id']:<14} {sale['order_date']}  "
              f"{sale['customer'][:40]}")
    if args.dry_run or not waiting:
        return 0
    failed = 0
    with context_from_environment(config, args.database_url, actor=_user(), environ=os.environ) as context:
        for sale in waiting:
            try:
                progress = take_routing_offer(conn, context, sale["instance"], sale["sale_id"], 0,
                                              admitted_by=f"operator:{_user()} (orders route --since)")
            except Exception as exc:  # recorded on the sale; the sensor offers it again after the back-off
                failed += 1
                print(f"  {sale['order_number'] or sale['sale_id']}: failed, offered again later: "
                      f"{outbox.describe_error(exc)}", file=sys.stderr)
                continue
            print(f"  {progress.order_number or sale['sale_id']}: {progress.state} {progress.reason}".rstrip())
    return 1 if failed else 0


def _orders_list(args: argparse.Namespace, conn: psycopg.Connection) -> int:
    found = rows(conn, """SELECT instance, sale_id, order_number, state, reason, updated_at FROM automation.sales
                           WHERE (%(state)s::text IS NULL OR state = %(state)s)
                             AND (%(instance)s::text IS NULL OR instance = %(instance)s)
                           ORDER BY updated_at DESC LIMIT %(limit)s""",
                 {"state": args.state, "instance": args.instance, "limit": args.limit})  # fmt: skip
    for sale in found:
        print(f"{sale['instance']:<6} {sale['order_number'] or sale['sale_id']:<14} {sale['state']:<20} "
              f"{sale['updated_at']:%Y-%m-%d %H:%M}  {(sale['reason'] or '')[:90]}")
    print(f"{len(found)} sale(s)", file=sys.stderr)
    return 0


def _orders_show(args: argparse.Namespace, conn: psycopg.Connection) -> int:
    found = rows(conn, "SELECT * FROM automation.sales WHERE (sale_id = %(sale)s OR order_number = %(sale)s) "
                       "AND (%(instance)s::text IS NULL OR instance = %(instance)s)",
                 {"sale": args.sale, "instance": args.instance})  # fmt: skip
    if len(found) != 1:
        if found:
            raise CommandError(f"{len(found)} sales match {args.sale!r} (automation.sales, instances "
                               f"{', '.join(sorted({sale['instance'] for sale in found}))}): name one with --instance")
        raise CommandError(f"unknown sale {args.sale!r} (the sales the automation handles, automation.sales): give "
                           "a sale ID or order number from `gp-pipelines orders list`")
    sale = found[0]
    key = (sale["instance"], sale["sale_id"])

    def story(kind, subject) -> list[str]:
        return [f"      {entry.at:%Y-%m-%d %H:%M:%S} {entry.from_state or '·'} → {entry.to_state}: {entry.cause}"
                for entry in state_history(conn, kind, subject)]

    print(f"{sale['instance']} {sale['order_number'] or sale['sale_id']} ({sale['sale_id']}): {sale['state']}"
          + (f" ({sale['reason']})" if sale["reason"] else ""))
    print("\n".join(story(SALE, key)))
    for f in rows(conn, "SELECT * FROM automation.fulfilments WHERE instance = %s AND sale_id = %s ORDER BY seq", key):
        where = f["location"] + (f" via 3PL {f['partner']}" if f["partner"] else " (in-house)")
        print(f"  fulfilment {f['seq']} {f['depositor_order']}: {where}: {f['state']}")
        print("\n".join(story(FULFILMENT, (*key, f["seq"]))))
        for s in rows(conn, "SELECT * FROM automation.shipments WHERE instance = %s AND sale_id = %s AND seq = %s "
                            "ORDER BY id", (*key, f["seq"])):  # fmt: skip
            print(f"    shipment {s['id']}: {s['lines']} {s['carrier']} {s['tracking_number']}: {s['state']}")
            print("\n".join(story(SHIPMENT, (s["id"],))))
    return 0


def _inbox(args: argparse.Namespace, conn: psycopg.Connection) -> int:
    if args.inbox_command == "list":
        found = rows(conn, """SELECT id, partner, display_name, state, coalesce(reason, last_error) AS why,
                                     archived_at IS NOT NULL AS archived, updated_at FROM automation.inbound_files
                               WHERE (%(state)s::text IS NULL OR state = %(state)s) ORDER BY id DESC LIMIT 200""",
                     {"state": args.state})  # fmt: skip
        for row in found:
            print(f"{row['id']:>6} {row['partner']:<14} {row['state']:<12} {row['display_name'][:50]:<50} "
                  f"{'moved' if row['archived'] else 'in inbox'}  {(row['why'] or '')[:80]}")
        return 0
    unknown = [str(file_id) for file_id in args.ids if not _exists(conn, file_id)]
    if unknown:
        raise CommandError(f"unknown inbox file id {', '.join(unknown)} (automation.inbound_files): see "
                           "`gp-pipelines inbox list` for the ids")
    failed = 0
    for file_id in args.ids:
        before = transition(conn, INBOUND_FILE, (file_id,), "dismissed", actor=_user(),
                            cause=f"dismissed by {_user()}" + (f": {args.note}" if args.note else "")) \
            if _dismissable(conn, file_id) else None
        if before is None:
            print(f"error: file {file_id} is not a quarantined or unreadable inbox file (see `gp-pipelines inbox "
                  "list`)", file=sys.stderr)
            failed += 1
        else:
            print(f"{file_id}: {before} → dismissed")
    return 1 if failed else 0


def _exists(conn: psycopg.Connection, file_id: int) -> bool:
    return conn.execute("SELECT 1 FROM automation.inbound_files WHERE id = %s", (file_id,)).fetchone() is not None


def _dismissable(conn: psycopg.Connection, file_id: int) -> bool:
    row = conn.execute("SELECT state FROM automation.inbound_files WHERE id = %s", (file_id,)).fetchone()
    return row is not None and row[0] in ("quarantined", "unreadable")


def register(commands: argparse._SubParsersAction, database_url: Callable[[], str]) -> None:
    """Add `outbox`, `orders` and `inbox` to a `gp-pipelines` subparsers object; `database_url()` names the
    platform database (the CLI knows which one the sandbox uses)."""

    def run(handler: Callable[[argparse.Namespace, psycopg.Connection], int]) -> Callable[[argparse.Namespace], int]:
        def command(args: argparse.Namespace) -> int:
            # An unreachable database is reported by the CLI's one handler (one line naming GP_DATABASE_URL).
            args.database_url = database_url()
            with psycopg.connect(args.database_url, autocommit=True) as conn:
                ensure_order_tables(conn)
                return handler(args, conn)
        return command

    box = commands.add_parser("outbox", help="the automation's outside actions: list what needs attention, "
                              "requeue given-up ones")
    box_commands = box.add_subparsers(dest="outbox_command", required=True)
    box_commands.add_parser("list", help="backlog per state, then every failed, stuck or given-up action")
    requeue = box_commands.add_parser("requeue", help="try given-up or failed actions again now")
    requeue.add_argument("keys", nargs="*", help="outbox keys (from `outbox list`)")
    requeue.add_argument("--all-given-up", action="store_true", help="every given-up action")
    box.set_defaults(func=run(_outbox))

    orders = commands.add_parser("orders", help="the sales the automation routes: admit old ones, list, show")
    order_commands = orders.add_subparsers(dest="orders_command", required=True)
    route = order_commands.add_parser("route", help="route authorised sales ordered before the start line")
    route.add_argument("--since", type=_date, required=True, metavar="DATE", help="first order date to admit")
    route.add_argument("--instance", help="only this instance")
    route.add_argument("--dry-run", action="store_true", help="list what would be routed, change nothing")
    route.set_defaults(func=run(_orders_route))
    listing = order_commands.add_parser("list", help="sales the automation handles, newest change first")
    listing.add_argument("--state", choices=SALE_STATES)
    listing.add_argument("--instance")
    listing.add_argument("--limit", type=positive_int, default=100)
    listing.set_defaults(func=run(_orders_list))
    show = order_commands.add_parser("show", help="one sale: its fulfilments, shipments and state history")
    show.add_argument("sale", metavar="SALE", help="the sale's ID or order number")
    show.add_argument("--instance")
    show.set_defaults(func=run(_orders_show))

    inbox = commands.add_parser("inbox", help="files from partners: list them, dismiss quarantined ones")
    inbox_commands = inbox.add_subparsers(dest="inbox_command", required=True)
    files = inbox_commands.add_parser("list", help="partner files, newest first")
    files.add_argument("--state", choices=FILE_STATES)
    files.set_defaults(func=run(_inbox))
    dismiss = inbox_commands.add_parser("dismiss", help="set aside quarantined or unreadable files once dealt with")
    dismiss.add_argument("ids", nargs="+", type=positive_int, metavar="ID", help="file ids (from `inbox list`)")
    dismiss.add_argument("--note", default="", help="why (kept in the file's history)")
    dismiss.set_defaults(func=run(_inbox))
