"""What every `gp-pipelines` command shares: one line per error, validated numbers, `--debug`.

`run_command` is the one handler: a known error (config, database unreachable, credentials, an outside system
down, an unknown key or id, a bad argument) becomes ONE line on stderr, `error: <problem> (<where>): <what to
do>`, and exit code 2. Anything else is a bug or a case nobody described yet: one line naming the exception,
exit code 1 (the code the commands already use for "a step failed"), and `--debug` (or GP_DEBUG=1) for the
traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

from gp_pipelines.problems import (
    OutsideSystem,
    describe_bad_database_url,
    describe_database_failure,
    describe_http_failure,
    describe_outside_failure,
    one_line,
)

DEBUG_ENV = "GP_DEBUG"
EXIT_KNOWN_PROBLEM = 2
EXIT_UNEXPECTED = 1


class CommandError(Exception):
    """A problem a command explains itself in one line (an unknown id, an impossible request): exit 2."""


# -- arguments -----------------------------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line like every other error (argparse prints the usage first)."""

    def error(self, message: str) -> Any:
        self.exit(EXIT_KNOWN_PROBLEM, f"error: {message} ({self.prog}): see `{self.prog} --help`\n")


def bounded_number(kind: type, minimum: float, maximum: float | None, what: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if value != value or value < minimum or (maximum is not None and value > maximum):  # NaN compares false
            raise argparse.ArgumentTypeError(f"{text} is out of range: give {what}")
        return value

    parse.__name__ = what  # argparse names the type in some messages
    return parse


non_negative_int = bounded_number(int, 0, None, "a whole number, 0 or more")
positive_int = bounded_number(int, 1, None, "a whole number, 1 or more")
port_number = bounded_number(int, 0, 65535, "a port number from 0 to 65535")
non_negative_float = bounded_number(float, 0, None, "a number of 0 or more")


def harden_numbers(parser: argparse.ArgumentParser) -> None:
    """Every number the CLI takes is a count, a budget, a size, a seed, a duration or a port: none may be
    negative. Options declared with a bare `int`/`float` (a command added later, a sub-CLI owned elsewhere) get
    the checked type here, so nothing slips through unvalidated."""
    for action in parser._actions:
        if action.type is int:
            action.type = port_number if "port" in action.dest else non_negative_int
        elif action.type is float:
            action.type = non_negative_float
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                harden_numbers(sub)


def add_debug_flags(parser: argparse.ArgumentParser, top: bool = True) -> None:
    """`--debug` before or after the command name (`gp-pipelines --debug sync` and `gp-pipelines sync --debug`)."""
    if not any("--debug" in action.option_strings for action in parser._actions):
        # SUPPRESS below the top: a sub-parser's own default would overwrite a --debug given before the command.
        parser.add_argument("--debug", action="store_true", default=False if top else argparse.SUPPRESS,
                            help=f"show the traceback of an error (also {DEBUG_ENV}=1)")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                add_debug_flags(sub, top=False)


def debug_requested(args: argparse.Namespace | None = None) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get(DEBUG_ENV, "").strip() in ("1", "true", "yes")


# -- errors --------------------------------------------------------------------------------------------------


def _config_or_none():
    from gp_pipelines.config import ConfigError, load_config

    try:
        return load_config()
    except ConfigError:
        return None


def cin7_target(instance_key: str) -> OutsideSystem:
    """Cin7 Core as the config in force describes the instance (its URL and key variables)."""
    config = _config_or_none()
    for instance in config.instances if config else []:
        if instance.key == instance_key:
            return OutsideSystem("Cin7 Core", instance.key, instance.base_url, tuple(instance.application_key_env))
    return OutsideSystem("Cin7 Core", instance_key)


def _zoho_target() -> OutsideSystem:
    config = _config_or_none()
    zoho = config.zoho_analytics if config else None
    if zoho is None:
        return OutsideSystem("Zoho Analytics")
    return OutsideSystem("Zoho Analytics", "", zoho.api_url,
                         (zoho.client_id_env, zoho.client_secret_env, zoho.refresh_token_env))


def _shopify_target(shop: str) -> OutsideSystem:
    config = _config_or_none()
    for store in config.automation.shopify if config else []:
        if store.key == shop:
            return OutsideSystem("Shopify", store.key, store.shop_url, (store.access_token_env,), "store")
    return OutsideSystem("Shopify", shop, account_label="store")


def explain(exc: BaseException) -> str | None:
    """The one line for a known problem, or None for an unexpected exception."""
    import httpx
    import psycopg
    from sqlalchemy.exc import DBAPIError

    from gp_pipelines import database, local_state
    from gp_pipelines.automation.locks import LockBusyError
    from gp_pipelines.automation.outbox import OutboxItemNotFound
    from gp_pipelines.cin7.errors import Cin7Error
    from gp_pipelines.config import ConfigError
    from gp_pipelines.connectors.ecb import EcbFeedError
    from gp_pipelines.connectors.notify import NotificationConfigError
    from gp_pipelines.connectors.shopify import ShopifyError
    from gp_pipelines.connectors.transport_base import TransportError
    from gp_pipelines.connectors.zoho import ZohoError
    from gp_pipelines.edi.errors import X12ReadError

    if isinstance(exc, DBAPIError) and isinstance(exc.orig, BaseException):
        return explain(exc.orig)  # SQLAlchemy (migrations) wraps the psycopg error that says what happened
    if isinstance(exc, OutboxItemNotFound):
        return f"no outbox item has the key {exc.args[0]!r} (the outbox): see `gp-pipelines outbox list` for its keys"
    if isinstance(exc, CommandError | ConfigError | local_state.StackRunning | NotificationConfigError |
                  LockBusyError | X12ReadError | TransportError | EcbFeedError):
        return one_line(exc)
    if isinstance(exc, database.DatabaseError):
        cause = exc.__cause__
        return describe_database_failure(cause) if isinstance(cause, psycopg.OperationalError) else one_line(exc)
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return describe_database_failure(exc)
    if isinstance(exc, psycopg.ProgrammingError):
        return describe_bad_database_url(exc)  # None (unexpected) unless GP_DATABASE_URL is malformed
    if isinstance(exc, Cin7Error):
        return describe_outside_failure(exc, cin7_target(exc.instance))
    if isinstance(exc, ZohoError):
        return describe_outside_failure(exc, _zoho_target())
    if isinstance(exc, ShopifyError):
        return describe_outside_failure(exc, _shopify_target(exc.shop))
    if isinstance(exc, httpx.HTTPError):
        return describe_http_failure(exc)
    if isinstance(exc, OSError) and exc.filename:
        return f"cannot use {exc.filename} ({exc.strerror or type(exc).__name__}): check the path and its permissions"
    return None


def report(exc: BaseException, *, debug: bool, file: Any = None) -> int:
    """Print the one line for `exc` (and the traceback under --debug); return the exit code."""
    stream = file or sys.stderr
    if debug:
        traceback.print_exception(exc, file=stream)
    line = explain(exc)
    if line is not None:
        print(f"error: {line}", file=stream, flush=True)
        return EXIT_KNOWN_PROBLEM
    detail = one_line(exc)
    print(f"error: unexpected {type(exc).__name__}{': ' + detail if detail else ''}"
          + ("" if debug else ": rerun with --debug for the traceback"), file=stream, flush=True)
    return EXIT_UNEXPECTED


def run_command(func: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    """Run one command under the one error handler."""
    try:
        return int(func(args) or 0)
    except BrokenPipeError:  # the reader went away (`... | head`): stop quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        return report(exc, debug=debug_requested(args))
