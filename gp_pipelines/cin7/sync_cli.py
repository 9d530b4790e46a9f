"""`gp-pipelines sync [--instance KEY] [--entity NAME]`: the cache sync outside Dagster, for operators and scripts.

The same engine the Dagster assets call (`sync.sync_entity`), for the instances in the config, with calls
budgeted by the PostgreSQL-backed limiter so a manual sync shares each key's budget with running pipelines.
Prints one line per (instance, entity); exits 1 if any sync failed, 2 on a usage or config error.
Also runnable as `python -m gp_pipelines.cin7.sync_cli [options]`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

import psycopg

from gp_pipelines import database
from gp_pipelines.cin7.client import client_from_environment
from gp_pipelines.cin7.entities import ENTITIES, entity
from gp_pipelines.cin7.errors import Cin7AuthError, Cin7Error
from gp_pipelines.cin7.limiter import (
    LocalRateLimiter,
    PostgresRateLimiter,
    RateLimiter,
)
from gp_pipelines.cin7.store import ensure_cache_schema
from gp_pipelines.cin7.sync import MODES, SyncRules, estimate_full_read, sync_entity
from gp_pipelines.cli_support import CommandError, Parser, add_debug_flags, explain, non_negative_int, run_command
from gp_pipelines.config import load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--instance", action="append", metavar="KEY",
                        help="instance key from the config (repeatable; default: every instance)")
    parser.add_argument("--entity", action="append", metavar="NAME",
                        help=f"entity to sync (repeatable; default: all): {', '.join(ENTITIES)}")
    parser.add_argument("--mode", choices=MODES, default="incremental",
                        help="incremental follows the change feed; reconcile walks every list whole and marks "
                        "deletions; full also re-reads every document (its cost is printed first)")
    parser.add_argument("--sweep", type=non_negative_int, default=None, metavar="N",
                        help="records to re-verify per entity (default: the engine's share of the run)")
    parser.add_argument("--no-wait", action="store_true",
                        help="skip an (instance, entity) another sync is running instead of waiting for it")
    parser.add_argument("--calls-per-minute", type=non_negative_int, default=None,
                        help="budget per application key, shared through PostgreSQL (default: the instance's "
                        "calls_per_minute from the config; 0 = no limiter, for sandboxes and benchmarks)")
    parser.add_argument("--accept-deletions", action="store_true",
                        help="let a reconcile mark more than cache.max_delete_share of an entity deleted (after "
                        "checking in Cin7 that the records are really gone)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per sync instead of text")


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `sync` command to a `gp-pipelines` subparsers object."""
    parser = subparsers.add_parser("sync", help="sync the ERP cache from Cin7 Core outside Dagster",
                                   description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    parser.set_defaults(func=run_sync_command)
    return parser


def run_sync_command(args: argparse.Namespace) -> int:
    config = load_config()
    instances = [config.instance(key) for key in (args.instance or config.instance_keys)]
    unknown = [name for name in args.entity or [] if name not in ENTITIES]
    if unknown:
        raise CommandError(f"unknown entity {', '.join(map(repr, unknown))} (the entity registry): use one of "
                           f"{', '.join(ENTITIES)}")
    entities = [entity(name) for name in (args.entity or list(ENTITIES))]
    missing = [name for inst in instances for name in inst.application_key_env if not os.environ.get(name)]
    if missing:
        raise CommandError("application key variable(s) not set (the environment): " + ", ".join(missing)
                           + ": export them (for the sandbox: source the env file `dev` writes)")
    database_url = database.database_url()
    ensure_cache_schema(database_url)  # an unreachable database: one line from the CLI's handler, exit 2
    _show_progress()
    rules = SyncRules.from_config(config.cache, accept_deletions=args.accept_deletions)
    failures = 0
    for instance in instances:
        budget = instance.calls_per_minute if args.calls_per_minute is None else args.calls_per_minute
        limiter: RateLimiter = (
            PostgresRateLimiter(database_url, calls=budget, label=instance.key) if budget > 0
            else LocalRateLimiter(10**9, 1.0)
        )
        try:
            with client_from_environment(instance, limiter) as client:
                for item in entities:
                    try:
                        estimate = None
                        if args.mode == "full" and not args.json:
                            # What the full read will cost, before it spends it (one call for the Total).
                            estimate = estimate_full_read(client, item)
                            print(f"{instance.key}/{item.name}: full read, {estimate.describe(budget or None)}",
                                  flush=True)
                        result = sync_entity(database_url, client, instance.key, item, mode=args.mode,
                                             sweep=args.sweep, wait_for_lock=not args.no_wait, rules=rules,
                                             max_calls=config.cache.full_read_max_calls, estimate=estimate)
                    except Cin7AuthError as exc:
                        print(f"error: {explain(exc)}", file=sys.stderr, flush=True)
                        failures += 1
                        break  # every call of this instance would fail the same way
                    except Cin7Error as exc:
                        print(f"{instance.key}/{item.name}: failed: {explain(exc)}", file=sys.stderr, flush=True)
                        failures += 1
                        continue
                    except psycopg.Error as exc:
                        # Already reconnected once inside the engine; the next entity gets its own try.
                        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                        print(f"{instance.key}/{item.name}: failed: database: {first}", file=sys.stderr, flush=True)
                        failures += 1
                        continue
                    if result.refused_reconcile:
                        refused = result.refused_reconcile
                        print(f"{instance.key}/{item.name}: reconcile refused: it would mark {refused['would_delete']}"
                              f" of {refused['live']} rows deleted (over {refused['max_share']:.0%}); rows kept. "
                              "If they are gone in Cin7, run again with --accept-deletions", file=sys.stderr,
                              flush=True)
                        failures += 1
                    if args.json:
                        print(json.dumps(result.as_metadata()), flush=True)
                    else:
                        print(result.summary(), flush=True)
        finally:
            if isinstance(limiter, PostgresRateLimiter):
                limiter.close()
    return 1 if failures else 0


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (a test's capture, a redirect), not the one at setup."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def _show_progress() -> None:
    """Rate-limit waits, retries and page/document progress (INFO from the client, limiter and engine) on
    stderr: a sync that waits 52 s says so instead of looking hung."""
    logger = logging.getLogger("gp_pipelines.cin7")
    if not any(isinstance(handler, _CurrentStderr) for handler in logger.handlers):
        handler = _CurrentStderr()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(prog="python -m gp_pipelines.cin7.sync_cli", description=__doc__)
    add_arguments(parser)
    add_debug_flags(parser)
    args = parser.parse_args(argv)
    return run_command(run_sync_command, args)


if __name__ == "__main__":
    sys.exit(main())
