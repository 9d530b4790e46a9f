"""Typed errors for Cin7 Core calls, so callers can tell "wait", "fix credentials" and "bad data" apart."""

from __future__ import annotations


class Cin7Error(RuntimeError):
    """Base class. `instance` and `endpoint` say where it happened."""

    def __init__(self, message: str, *, instance: str = "", endpoint: str = "", status: int | None = None):
        where = " ".join(part for part in (f"[{instance}]" if instance else "", endpoint) if part)
        super().__init__(f"{where}: {message}" if where else message)
        self.instance = instance
        self.endpoint = endpoint
        self.reason = message  # without the "[instance] endpoint:" prefix, for messages that say where themselves
        self.status = status


class Cin7AuthError(Cin7Error):
    """403 Incorrect credentials: retrying cannot help."""


class Cin7ThrottledError(Cin7Error):
    """Still throttled after waiting out the limit as long as allowed."""


class Cin7ServerError(Cin7Error):
    """5xx or timeouts that outlasted the retries."""


class Cin7ResponseError(Cin7Error):
    """A body that is not what the API promises: HTML, truncated JSON, an error model inside HTTP 200."""


class Cin7RequestError(Cin7Error):
    """The API rejected the request (4xx with an error model): e.g. an illegal status transition."""


class Cin7BudgetError(Cin7Error):
    """A run that would spend more calls than it is allowed to (a full read over its budget): refused before it
    starts."""
