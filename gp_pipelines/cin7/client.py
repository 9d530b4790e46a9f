"""The one HTTP client for Cin7 Core API v2.

Every call goes through `Cin7Client.request`, which knows the API's habits (reference/cin7_core_api.md §2,
§9): throttling arrives as 429 with `Retry-After: 60 Seconds`, as 503 with a limit message, or as 400 with an
error list; outages are 5xx or timeouts; error models arrive inside HTTP 200; a wrong path answers with an
HTML page and status 200; bad credentials are 403 `Incorrect credentials!`. Throttles are waited out, outages
retried with backoff up to a cap, malformed bodies retried then raised as typed errors, 403 raised at once.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from gp_pipelines.cin7.errors import (
    Cin7AuthError,
    Cin7Error,
    Cin7RequestError,
    Cin7ResponseError,
    Cin7ServerError,
    Cin7ThrottledError,
)
from gp_pipelines.cin7.limiter import LOGGED_WAIT_SECONDS, LocalRateLimiter, RateLimiter, key_fingerprint
from gp_pipelines.config import ConfigError, InstanceConfig
from gp_pipelines.connectors.http import DeadlineExceeded, http_client

LIMIT_MESSAGE = re.compile(r"calls per (60 seconds|minute) API limit|API limit", re.IGNORECASE)
MAX_PAGE_SIZE = 1000
_PROCESS_LIMITER = LocalRateLimiter()
_log = logging.getLogger(__name__)


@dataclass
class CallStats:
    """What the calls cost: shown as Dagster metadata and in benchmarks."""

    calls: int = 0
    retries: int = 0
    throttled: int = 0
    seconds_waited: float = 0.0
    by_endpoint: dict[str, int] = field(default_factory=dict)

    def as_metadata(self) -> dict[str, float | int]:
        return {
            "api_calls": self.calls,
            "api_retries": self.retries,
            "api_throttled": self.throttled,
            "seconds_waited_for_rate_limit": round(self.seconds_waited, 2),
        }


@dataclass
class RetryPolicy:
    max_attempts: int = 6  # per call, across throttles and faults
    backoff_base: float = 1.0  # seconds; doubled per failed attempt
    backoff_cap: float = 30.0
    throttle_wait_default: float = 5.0  # when a throttle names no wait (503, 400 forms)
    throttle_wait_cap: float = 65.0


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After: 60 Seconds` (Cin7's non-RFC form), `30 sec` or `12` → seconds; None when absent."""
    if not value:
        return None
    match = re.search(r"\d+(\.\d+)?", value)
    return float(match.group()) if match else None


class Cin7Client:
    """Calls one Cin7 Core account, spreading calls across its application keys."""

    def __init__(
        self,
        base_url: str,
        account_id: str,
        application_keys: Sequence[str],
        *,
        instance: str = "",
        timeout: float = 30.0,
        deadline: float = 60.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        http: httpx.Client | None = None,
        limiter: RateLimiter | None = None,
    ):
        if not application_keys:
            raise Cin7AuthError("no application key given", instance=instance)
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.account_id = account_id
        self.instance = instance
        self._keys = list(application_keys)
        self._key_ids = [key_fingerprint(account_id, key) for key in self._keys]
        # Without a shared (PostgreSQL) limiter, at least every client in this process shares one budget.
        self._limiter = limiter or _PROCESS_LIMITER
        self._next_key = 0
        self._key_free_at = [0.0] * len(self._keys)  # monotonic time each key may be used again
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        # `timeout` bounds each network operation, `deadline` each whole HTTP request (a dribbling server).
        self._http = http or http_client(timeout=timeout, deadline=deadline)
        self._owns_http = http is None
        self.stats = CallStats()
        # The API's own clock, from the `Date` header of the latest answer: bounds the sync's watermark.
        self.server_time: datetime | None = None
        self.server_offset: timedelta | None = None  # server_time minus our clock when it arrived

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Cin7Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- key rotation -------------------------------------------------------------------------------

    def _pick_key(self) -> int:
        """Round-robin over the keys, skipping keys still cooling down after a throttle."""
        now = time.monotonic()
        count = len(self._keys)
        for offset in range(count):
            index = (self._next_key + offset) % count
            if self._key_free_at[index] <= now:
                self._next_key = (index + 1) % count
                return index
        index = min(range(count), key=lambda i: self._key_free_at[i])
        wait = self._key_free_at[index] - now
        if wait >= LOGGED_WAIT_SECONDS:
            _log.info("waiting %.0f s for the %s rate limit (the API throttled %s)", wait, self.instance or "API",
                      "its key" if count == 1 else f"all {count} keys")
        self._wait(wait)
        self._next_key = (index + 1) % count
        return index

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self.stats.seconds_waited += seconds
            self._sleep(seconds)

    # -- calls --------------------------------------------------------------------------------------

    def get(self, endpoint: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", endpoint, params=params)

    def post(self, endpoint: str, body: Any) -> Any:
        return self.request("POST", endpoint, body=body)

    def put(self, endpoint: str, body: Any) -> Any:
        return self.request("PUT", endpoint, body=body)

    def delete(self, endpoint: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("DELETE", endpoint, params=params)

    def request(
        self,
        method: str,
        endpoint: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> Any:
        """One logical call: retried through throttles and faults; returns the parsed JSON body."""
        url = self.base_url + endpoint.lstrip("/")
        last_problem: Cin7Error | None = None
        for attempt in range(1, self.retry.max_attempts + 1):
            key_index = self._pick_key()
            self.stats.seconds_waited += self._limiter.acquire(self._key_ids[key_index])
            headers = {
                "api-auth-accountid": self.account_id,
                "api-auth-applicationkey": self._keys[key_index],
                "Accept": "application/json",
            }
            self.stats.calls += 1
            self.stats.by_endpoint[endpoint] = self.stats.by_endpoint.get(endpoint, 0) + 1
            if attempt > 1:
                self.stats.retries += 1
            try:
                response = self._http.request(
                    method, url, params=_clean_params(params), json=body, headers=headers
                )
            except httpx.TimeoutException as exc:
                # A deadline's own message names the host and path already.
                reason = str(exc) if isinstance(exc, DeadlineExceeded) else f"{url} timed out ({type(exc).__name__})"
                last_problem = Cin7ServerError(reason, instance=self.instance, endpoint=endpoint)
                self._retry_after_failure(method, url, attempt, last_problem)
                continue
            except httpx.TransportError as exc:
                last_problem = Cin7ServerError(
                    f"cannot connect to {url}: {exc or type(exc).__name__}", instance=self.instance, endpoint=endpoint
                )
                self._retry_after_failure(method, url, attempt, last_problem)
                continue

            self._note_server_clock(response)
            outcome = self._classify(response, endpoint, method)
            if isinstance(outcome, _Throttle):
                self.stats.throttled += 1
                self._key_free_at[key_index] = time.monotonic() + outcome.wait
                if outcome.wait >= LOGGED_WAIT_SECONDS:
                    _log.info("%s %s: throttled by the API (HTTP %s): this key waits %.0f s (attempt %d of %d)",
                              method, url, response.status_code, outcome.wait, attempt, self.retry.max_attempts)
                last_problem = Cin7ThrottledError(
                    f"throttled ({response.status_code}); waited out {self.retry.max_attempts} times",
                    instance=self.instance,
                    endpoint=endpoint,
                    status=response.status_code,
                )
                continue
            if isinstance(outcome, _Retryable):
                last_problem = outcome.error
                self._retry_after_failure(method, url, attempt, last_problem)
                continue
            return outcome.value
        assert last_problem is not None
        raise last_problem

    def _retry_after_failure(self, method: str, url: str, attempt: int, problem: Cin7Error) -> None:
        """Log the failed attempt with its URL and back off, except after the last one: waiting then only delays
        the error (a sandbox that is down used to cost 30 s of silence at the end)."""
        if attempt >= self.retry.max_attempts:
            return
        wait = self._backoff(attempt)
        _log.warning("%s %s failed (attempt %d of %d): %s; retrying in %.1f s", method, url, attempt,
                     self.retry.max_attempts, problem.reason, wait)
        self._wait(wait)

    def _backoff(self, attempt: int) -> float:
        return min(self.retry.backoff_cap, self.retry.backoff_base * 2 ** (attempt - 1))

    def _note_server_clock(self, response: httpx.Response) -> None:
        header = response.headers.get("date")
        if not header:
            return
        try:
            moment = parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        self.server_time = moment
        self.server_offset = moment - datetime.now(UTC)

    def _classify(self, response: httpx.Response, endpoint: str, method: str = "GET") -> _Outcome:
        status = response.status_code
        text = response.text
        where = {"instance": self.instance, "endpoint": endpoint, "status": status}
        if status == 403:
            raise Cin7AuthError(
                f"credentials rejected ({text.strip()[:80] or '403'}): check the account id and the "
                "application key variables in the config",
                **where,
            )
        if status == 429 or (status in (503, 400) and LIMIT_MESSAGE.search(text)):
            wait = parse_retry_after(response.headers.get("Retry-After"))
            if wait is None:
                wait = parse_retry_after(response.headers.get("x-ratelimit-reset"))
            if wait is None:
                wait = self.retry.throttle_wait_default
            return _Throttle(min(wait, self.retry.throttle_wait_cap))
        if status >= 500:
            at = self.base_url + endpoint.lstrip("/")
            return _Retryable(Cin7ServerError(f"server error (HTTP {status} from {at}): {text.strip()[:200]}", **where))
        content_type = response.headers.get("content-type", "")
        if "html" in content_type or text.lstrip().startswith("<"):
            # Cin7 answers a wrong path with a 200 HTML page; an outage page looks the same.
            return _Retryable(
                Cin7ResponseError("received an HTML page instead of JSON (wrong endpoint?)", **where)
            )
        if status in (404, 408) and _error_in_json(text) is None:
            # Cin7 answers a missing record with a JSON error model; a bare 404/408 comes from a gateway or
            # proxy in between and says nothing about the record: transient, never a deletion.
            return _Retryable(Cin7ServerError(f"HTTP {status} without an API error ({text.strip()[:80] or 'empty'}; "
                                              "a gateway or proxy answered)", **where))
        if status >= 400:
            raise Cin7RequestError(_error_message(text) or f"HTTP {status}", **where)
        if not text.strip():
            if method == "GET":  # every read answers a JSON document; an empty 200 is a broken answer
                return _Retryable(Cin7ResponseError("empty body in HTTP 200", **where))
            return _Done(None)
        try:
            value = json.loads(text)
        except ValueError:
            return _Retryable(
                Cin7ResponseError(f"malformed JSON body ({len(text)} bytes, truncated?)", **where)
            )
        message = _error_in_body(value)
        if message is not None:
            return _Retryable(Cin7ResponseError(f"error inside HTTP 200: {message}", **where))
        return _Done(value)

    # -- paging -------------------------------------------------------------------------------------

    def paginate(
        self,
        endpoint: str,
        list_key: str,
        params: Mapping[str, Any] | None = None,
        *,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield each page's records. Stops by `Total` arithmetic, or on a short page where `Total` is absent."""
        for page in self.walk_pages(endpoint, list_key, params, page_size=page_size):
            yield page.records

    def get_page(
        self,
        endpoint: str,
        list_key: str,
        params: Mapping[str, Any] | None = None,
        *,
        page: int = 1,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Page:
        """One page of a list endpoint, with the `Total` the API reported for it (None where it sends none)."""
        body = self.get(endpoint, {**(params or {}), "Page": page, "Limit": page_size})
        if not isinstance(body, dict) or not isinstance(body.get(list_key, []), list):
            raise Cin7ResponseError(
                f"expected an object with a '{list_key}' list", instance=self.instance, endpoint=endpoint
            )
        total = body.get("Total")
        return Page(page, body.get(list_key) or [], None if total is None else int(total))

    def walk_pages(
        self,
        endpoint: str,
        list_key: str,
        params: Mapping[str, Any] | None = None,
        *,
        page_size: int = MAX_PAGE_SIZE,
        start_page: int = 1,
    ) -> Iterator[Page]:
        """Yield each `Page` (records and `Total`), stopping as `paginate` does."""
        number = start_page
        while True:
            page = self.get_page(endpoint, list_key, params, page=number, page_size=page_size)
            yield page
            if page.total is not None:
                if number >= math.ceil(page.total / page_size):
                    return
            elif len(page.records) < page_size:
                return
            if not page.records:
                return
            number += 1


@dataclass
class Page:
    number: int
    records: list[dict[str, Any]]
    total: int | None  # what the API said matches the whole query; None where the endpoint sends no Total


@dataclass
class _Done:
    value: Any


@dataclass
class _Throttle:
    wait: float


@dataclass
class _Retryable:
    error: Cin7Error


_Outcome = _Done | _Throttle | _Retryable


def _clean_params(params: Mapping[str, Any] | None) -> dict[str, str] | None:
    if not params:
        return None
    cleaned = {}
    for name, value in params.items():
        if value is None:
            continue
        cleaned[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return cleaned


def _error_in_body(value: Any) -> str | None:
    """Cin7's error model: `{"ErrorCode": n, "Exception": "..."}`, sometimes wrapped in a list."""
    candidates = value if isinstance(value, list) else [value]
    for item in candidates[:1]:
        if isinstance(item, dict) and "ErrorCode" in item and "Exception" in item:
            return f"{item['ErrorCode']}: {item['Exception']}"
    return None


def _error_in_json(text: str) -> str | None:
    """The API's error model in a body, or None when the body is not JSON or holds none."""
    try:
        return _error_in_body(json.loads(text))
    except ValueError:
        return None


def _error_message(text: str) -> str | None:
    return _error_in_json(text) or text.strip()[:300] or None


def client_from_environment(instance: InstanceConfig, limiter: RateLimiter,
                            environ: Mapping[str, str] | None = None, **options: Any) -> Cin7Client:
    """A client for a configured instance outside Dagster, its application keys read from the environment
    variables the config names; a variable that is not set is a `ConfigError` naming it (never a key)."""
    env = os.environ if environ is None else environ
    missing = [name for name in instance.application_key_env if not env.get(name)]
    if missing:
        raise ConfigError(f"instance {instance.key!r}: application key variable(s) not set: {', '.join(missing)}")
    keys = [env[name] for name in instance.application_key_env]
    return Cin7Client(instance.base_url, instance.account_id, keys, instance=instance.key, limiter=limiter, **options)
