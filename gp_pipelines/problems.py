"""One line per known problem: what went wrong (where): what to do.

Shared by the command line (gp_pipelines/cli_support.py turns these into `error: ...` and exit 2) and the
Dagster layer (gp_pipelines/resources/failures.py turns them into a `dg.Failure` whose first line is the same).
Plain Python, no Dagster: the CLI must not pay Dagster's import for an error message.

Secrets never appear: a database URL is shown as host, port, database and user; a key as the name of the
environment variable that holds it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
import psycopg

from gp_pipelines import database
from gp_pipelines.cin7.errors import (
    Cin7AuthError,
    Cin7BudgetError,
    Cin7Error,
    Cin7RequestError,
    Cin7ResponseError,
    Cin7ServerError,
    Cin7ThrottledError,
)


def one_line(text: object) -> str:
    """Any message as one line: lines joined with '; ', runs of spaces collapsed."""
    lines = [" ".join(line.split()) for line in str(text).strip().splitlines()]
    return "; ".join(line for line in lines if line).replace(":;", ":")


@dataclass(frozen=True)
class OutsideSystem:
    """Where a call went: the system, which account of it, its URL and the variables holding its secrets."""

    system: str  # "Cin7 Core", "Zoho Analytics", "Shopify", ...
    name: str = ""  # the instance or store key; "" for a system the platform has one of
    url: str = ""
    key_variables: tuple[str, ...] = ()
    account_label: str = "instance"  # what `name` is: "instance", "store"

    def where(self) -> str:
        parts = [f"{self.account_label} {self.name}" if self.name else "", self.url,
                 f"key in {', '.join(self.key_variables)}" if self.key_variables else ""]
        return ", ".join(part for part in parts if part)

    def as_metadata(self) -> dict[str, str]:
        """What a run failure carries as metadata (never a key, only the variables' names)."""
        metadata = {"system": self.system, "url": self.url, "key_variable": ", ".join(self.key_variables)}
        if self.name:
            metadata[self.account_label] = self.name
        return metadata


def _variables(target: OutsideSystem, fallback: str) -> str:
    return " and ".join(target.key_variables) if target.key_variables else fallback


def describe_outside_failure(exc: BaseException, target: OutsideSystem) -> str | None:
    """The one line for an error an outside system's client raised, or None when `exc` is not one."""
    from gp_pipelines.connectors.ecb import EcbFeedError
    from gp_pipelines.connectors.shopify import ShopifyAuthError, ShopifyError, ShopifyServerError
    from gp_pipelines.connectors.zoho import ZohoAuthError, ZohoError, ZohoTransportError

    system, where = target.system, target.where()
    if isinstance(exc, Cin7AuthError):
        return (f"{system} rejected the credentials ({where}): set {_variables(target, 'the key variable')} to an "
                "application key of that account (Cin7 Core: Integrations > API) and check the account_id in "
                "the config")
    if isinstance(exc, Cin7ThrottledError):
        return (f"{system} kept throttling ({where}): {exc.reason}: another integration may spend the same key's "
                "budget; run again later or add a key")
    if isinstance(exc, Cin7ServerError):
        return (f"{system} did not answer ({where}): {one_line(exc.reason)}: check that it is up and that the "
                "config's base_url is right, then run again")
    if isinstance(exc, Cin7ResponseError):
        return (f"{system} sent an unusable answer ({where}, {exc.endpoint}): {one_line(exc.reason)}: check the "
                "config's base_url; run again if it was an outage page")
    if isinstance(exc, Cin7BudgetError | Cin7RequestError):
        return f"{system} refused the request ({where}, {exc.endpoint}): {one_line(exc.reason)}"
    if isinstance(exc, Cin7Error):
        return f"{system} call failed ({where}): {one_line(exc.reason)}"
    if isinstance(exc, ZohoAuthError | ShopifyAuthError):
        return (f"{system} refused the credentials ({where}): {one_line(exc)}: check "
                f"{_variables(target, 'the credential variables')}")
    if isinstance(exc, ZohoTransportError | ShopifyServerError):
        return f"{system} did not answer ({where}): {one_line(exc)}: check that it is up, then run again"
    if isinstance(exc, ZohoError | ShopifyError | EcbFeedError):
        return f"{system} call failed ({where}): {one_line(exc)}"
    if isinstance(exc, httpx.HTTPError):
        url = _request_url(exc) or target.url
        return (f"{system} did not answer ({', '.join(p for p in (where, url) if p and p not in where)}): "
                f"{type(exc).__name__}: {one_line(exc) or 'no detail'}: check that it is up, then run again")
    return None


def _request_url(exc: httpx.HTTPError) -> str:
    try:
        return str(exc.request.url)
    except RuntimeError:  # an error raised without a request attached
        return ""


def describe_http_failure(exc: httpx.HTTPError) -> str:
    """An HTTP error from a client that says nothing of its system: at least the URL it called."""
    url = _request_url(exc)
    return (f"cannot reach {url or 'an outside system'} ({type(exc).__name__}): {one_line(exc) or 'no detail'}: "
            "check that it is up and that the config names the right URL")


# -- the platform database ------------------------------------------------------------------------------------


def _conninfo(url: str) -> dict:
    """The parts of a URL or conninfo string; ProgrammingError when it is neither."""
    try:
        return psycopg.conninfo.conninfo_to_dict(database.libpq_url(url) if "://" in url else url)
    except ValueError as exc:  # urllib's own complaint ("Invalid IPv6 URL"), before libpq sees it
        raise psycopg.ProgrammingError(str(exc)) from exc


def database_location(url: str) -> str:
    """host, port, database and user of a URL or conninfo string: never its password."""
    try:
        info = _conninfo(url)
    except psycopg.ProgrammingError:
        return "a URL that is not a valid PostgreSQL URL"
    host = str(info.get("host") or "localhost")
    if host.startswith("/"):
        host = f"socket {host}"
    parts = [f"host {host}"]
    if info.get("port"):
        parts.append(f"port {info['port']}")
    parts.append(f"database {info.get('dbname') or info.get('user') or '(default)'}")
    if info.get("user"):
        parts.append(f"user {info['user']}")
    return " ".join(parts)


def _database_reason(exc: BaseException, secrets: Sequence[str]) -> str:
    """libpq's reason, e.g. 'Connection refused', without its 'connection to server at ... failed:' lead-in."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    reason = first.rsplit("failed: ", 1)[-1].strip() or first
    for secret in secrets:
        if secret:
            reason = reason.replace(secret, "***")
    return reason


def describe_database_failure(exc: BaseException) -> str:
    """The one line for 'the platform database cannot be reached' (psycopg.OperationalError and friends)."""
    explicit = os.environ.get(database.DATABASE_URL_ENV)
    if explicit:
        password = ""
        with contextlib.suppress(psycopg.ProgrammingError):
            password = str(_conninfo(explicit).get("password") or "")
        return (f"cannot reach the platform database ({database.DATABASE_URL_ENV}: {database_location(explicit)}): "
                f"{_database_reason(exc, [password])}: start that server or correct {database.DATABASE_URL_ENV} "
                "(unset it to use the embedded server)")
    return (f"cannot reach the platform database (the embedded PostgreSQL under {database.pgdata_dir()}): "
            f"{_database_reason(exc, [])}: run `gp-pipelines db start`, or set {database.DATABASE_URL_ENV} to "
            "another server")


def describe_bad_database_url(exc: BaseException) -> str | None:
    """The line for a GP_DATABASE_URL psycopg cannot even parse, else None."""
    explicit = os.environ.get(database.DATABASE_URL_ENV)
    if not explicit:
        return None
    try:
        _conninfo(explicit)
    except psycopg.ProgrammingError as bad:
        reason = _database_reason(bad, [explicit])
        return (f"{database.DATABASE_URL_ENV} is not a PostgreSQL URL ({reason}): set it to "
                "postgresql://USER:PASSWORD@HOST:PORT/DATABASE, or unset it to use the embedded server")
    return None
