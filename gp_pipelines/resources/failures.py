"""The Dagster side of "one line per error": a domain error that escapes a run becomes a `dg.Failure` whose first
line names the instance, the outside system, its URL and the variable holding its key (never the key), with the
same facts as metadata; and the domain's `logging` lines (rate-limit waits, retries, progress) reach the run's
log. The resources use these, so asset bodies need nothing of their own (see gp_pipelines/problems.py for the
wording, shared with the CLI).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import dagster as dg
import httpx
import psycopg

from gp_pipelines.cin7.errors import Cin7Error
from gp_pipelines.connectors.ecb import EcbFeedError
from gp_pipelines.connectors.shopify import ShopifyError
from gp_pipelines.connectors.zoho import ZohoError
from gp_pipelines.problems import OutsideSystem, describe_database_failure, describe_outside_failure

OUTSIDE_ERRORS = (Cin7Error, ZohoError, ShopifyError, EcbFeedError, httpx.HTTPError)
DOMAIN_LOGGER = "gp_pipelines"


def run_failure(exc: BaseException, target: OutsideSystem) -> dg.Failure | None:
    """The `dg.Failure` for a domain error, or None for anything else (left as it is)."""
    if isinstance(exc, psycopg.OperationalError):
        return dg.Failure(description=describe_database_failure(exc), metadata={"system": "PostgreSQL"})
    line = describe_outside_failure(exc, target) if isinstance(exc, OUTSIDE_ERRORS) else None
    if line is None:
        return None
    metadata: dict[str, Any] = {**target.as_metadata(), "error": type(exc).__name__}
    return dg.Failure(description=line, metadata=metadata)


@contextlib.contextmanager
def failures_named(target: OutsideSystem | Callable[[BaseException], OutsideSystem]) -> Iterator[None]:
    """Turn a domain error leaving the block into a `dg.Failure` naming `target` (or `target(exc)`, for a
    resource serving several accounts). Errors handled inside the block never get here."""
    try:
        yield
    except dg.Failure:
        raise
    except Exception as exc:
        failure = run_failure(exc, target(exc) if callable(target) else target)
        if failure is None:
            raise
        raise failure from exc


class _ToRunLog(logging.Handler):
    """Forwards records made on this thread (a step's own work, not another step's in a thread pool)."""

    def __init__(self, log: Any) -> None:
        super().__init__(logging.INFO)
        self._log = log
        self._thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self._thread:
            return
        try:
            message = record.getMessage()
            if record.levelno >= logging.ERROR:
                self._log.error(message)
            elif record.levelno >= logging.WARNING:
                self._log.warning(message)
            else:
                self._log.info(message)
        except Exception:  # a log line must never fail the run
            self.handleError(record)


@contextlib.contextmanager
def domain_logs_to(log: Any | None) -> Iterator[None]:
    """While the block runs, INFO and above from the domain packages go to `log` (a step's `context.log`).

    Why not Dagster's `python_logs.managed_python_loggers`: that is instance config (dagster.yaml), absent from
    ephemeral instances and tests; this works wherever the run happens. Don't configure both: lines would
    show twice."""
    if log is None:
        yield
        return
    logger = logging.getLogger(DOMAIN_LOGGER)
    handler = _ToRunLog(log)
    previous = logger.level
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)  # INFO records are dropped before any handler otherwise
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
