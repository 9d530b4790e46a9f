"""Zoho Analytics REST API v2 over httpx: OAuth refresh-token flow, imports, SQL export, table metadata.

Facts used (reference/analytics_exports.md §1): every call carries `Authorization: Zoho-oauthtoken <token>`
and `ZANALYTICS-ORGID`; parameters travel as one JSON object in the `CONFIG` query parameter (even for POST);
a failure body is `{"status": "failure", "data": {"errorCode": n, "errorMessage": "..."}}`. Error 8535 means
the access token expired: it is refreshed once and the call repeated. 6045 means a per-minute limit was hit:
the call is waited out and repeated. 6043/6044 mean the day's API units are spent: never retried.

Why not the `zoho-analytics-connector` package: it wraps `requests` (the platform uses httpx everywhere) and
carries the v1 ReportClient; the few v2 calls needed here fit in this module.

The access token is cached per process (keyed by accounts host, client id and a hash of the refresh token), so
clients built one after another in the same process share it instead of asking the accounts host each time.
Secrets never appear in exceptions or `repr`: errors name the method and path, never the query string.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from gp_pipelines.connectors.http import http_client

DEFAULT_ACCOUNTS_URL = "https://accounts.zoho.com"
DEFAULT_API_URL = "https://analyticsapi.zoho.com"
TOKEN_PATH = "/oauth/v2/token"
SYNC_IMPORT_MAX_BYTES = 20 * 1000 * 1000  # 20 MB per sync import (§1.3); the decimal megabyte, to stay under
BATCH_MAX_BYTES = 100 * 1000 * 1000  # 100 MB per async file or batch (§1.3)
IMPORT_TYPES = ("append", "truncateadd", "updateadd")
ON_ERROR = ("abort", "skiprow", "setcolumnempty")
UNITS_PER_1000_ROWS = {"append": 10, "truncateadd": 10, "updateadd": 15}  # §1.6

TOKEN_EXPIRED = 8535
AUTH_ERRORS = {8518, 8535}
THROTTLED = 6045
UNITS_EXHAUSTED = {6043, 6044}

JOB_NOT_INITIATED, JOB_IN_PROGRESS, JOB_FAILED, JOB_COMPLETED, JOB_NOT_FOUND = 1001, 1002, 1003, 1004, 1005

# Refresh this long before the announced expiry, so a token never dies between our check and Zoho's.
_TOKEN_MARGIN_SECONDS = 60.0


def import_units(rows: int, import_type: str) -> int:
    """API units one import request of `rows` rows costs: 10 per 1,000 rows for append and truncateadd, 15 for
    updateadd (§1.6). Rounded up per request (an assumption: Zoho does not document the rounding)."""
    if import_type not in UNITS_PER_1000_ROWS:
        raise ValueError(f"unknown import type {import_type!r}; known: {IMPORT_TYPES}")
    return math.ceil(rows * UNITS_PER_1000_ROWS[import_type] / 1000)


class ZohoError(RuntimeError):
    """Any failure talking to Zoho Analytics."""


class ZohoApiError(ZohoError):
    """Zoho answered with a failure body (or an unusable one)."""

    def __init__(self, method: str, path: str, status: int, code: int | None, message: str) -> None:
        self.method, self.path, self.status, self.code, self.message = method, path, status, code, message
        what = f"error {code}: {message}" if code is not None else message
        super().__init__(f"Zoho Analytics {method} {path} (HTTP {status}): {what}")


class ZohoAuthError(ZohoApiError):
    """The credentials were refused (bad client or refresh token, wrong data centre, token refused twice)."""


class ZohoThrottledError(ZohoApiError):
    """Error 6045 persisted through every wait: the per-minute limits are exhausted for longer than allowed."""


class ZohoUnitsExhaustedError(ZohoApiError):
    """Error 6043/6044: the organisation's API units for the day are spent."""


class ZohoTransportError(ZohoError):
    """The request never got a usable answer (connection refused, timeout, 5xx after every retry)."""


class ZohoJobError(ZohoError):
    """An import or export job ended in error, was not found, or did not finish in time."""

    def __init__(self, kind: str, job_id: str, code: int | None, status: str, detail: str = "") -> None:
        self.kind, self.job_id, self.code, self.status = kind, job_id, code, status
        super().__init__(f"Zoho Analytics {kind} job {job_id}: {status}" + (f" ({detail})" if detail else ""))


@dataclass(frozen=True)
class ZohoCredentials:
    """The OAuth client and refresh token of a Zoho "Self Client". Never printed."""

    client_id: str
    client_secret: str
    refresh_token: str

    def __repr__(self) -> str:
        return "ZohoCredentials(client_id=***, client_secret=***, refresh_token=***)"

    def cache_key(self, accounts_url: str) -> tuple[str, str, str]:
        digest = hashlib.sha256(self.refresh_token.encode()).hexdigest()
        return accounts_url, self.client_id, digest


@dataclass(frozen=True)
class View:
    view_id: str
    name: str
    view_type: str


@dataclass(frozen=True)
class ImportSummary:
    """`importSummary` of a sync import or a finished import job."""

    import_type: str
    total_rows: int
    success_rows: int
    total_columns: int
    selected_columns: int
    warnings: int
    operation: str
    errors: Any = None

    @classmethod
    def from_reply(cls, data: dict[str, Any]) -> ImportSummary:
        info = data.get("jobInfo", data)
        summary = info.get("importSummary") or {}
        return cls(
            import_type=str(summary.get("importType", "")),
            total_rows=int(summary.get("totalRowCount", 0)),
            success_rows=int(summary.get("successRowCount", 0)),
            total_columns=int(summary.get("totalColumnCount", 0)),
            selected_columns=int(summary.get("selectedColumnCount", 0)),
            warnings=int(summary.get("warnings", 0)),
            operation=str(summary.get("importOperation", "")),
            errors=info.get("importErrors"),
        )


@dataclass
class ClientStats:
    """What the client did, for Dagster metadata: requests sent, token refreshes, waits for 6045, retries."""

    requests: int = 0
    token_refreshes: int = 0
    throttle_waits: int = 0
    retries: int = 0
    seconds_waited: float = 0.0
    units_errors: int = 0

    def as_metadata(self) -> dict[str, Any]:
        return {"api_requests": self.requests, "token_refreshes": self.token_refreshes,
                "throttle_waits": self.throttle_waits, "retries": self.retries,
                "seconds_waited": round(self.seconds_waited, 2)}


@dataclass
class _CachedToken:
    value: str
    expires_at: float  # time.monotonic()


_TOKEN_CACHE: dict[tuple[str, str, str], _CachedToken] = {}
_TOKEN_LOCK = threading.Lock()


def forget_cached_tokens() -> None:
    """Drop every cached access token of this process (tests; a rotated refresh token)."""
    with _TOKEN_LOCK:
        _TOKEN_CACHE.clear()


@dataclass
class ZohoAnalyticsClient:
    """One organisation and workspace of Zoho Analytics.

    `poll_interval_seconds` paces job polling (Zoho suggests about 10 s); `throttle_wait_seconds` is how long a
    6045 is waited out before the call is repeated, at most `throttle_retries` times; 5xx replies and transport
    errors are retried `server_retries` times with a doubling backoff. `timeout_seconds` bounds each network
    operation, `deadline_seconds` each whole HTTP request: long enough for a large export download or a 100 MB
    batch upload, short enough that a server dribbling its reply cannot hold a run for ever. `sleep` is
    injectable for tests.
    """

    api_url: str
    accounts_url: str
    org_id: str
    workspace_id: str
    credentials: ZohoCredentials = field(repr=False)
    timeout_seconds: float = 120.0
    deadline_seconds: float = 300.0
    poll_interval_seconds: float = 10.0
    job_timeout_seconds: float = 1800.0
    throttle_wait_seconds: float = 60.0
    throttle_retries: int = 6
    server_retries: int = 3
    backoff_seconds: float = 1.0
    sleep: Callable[[float], None] = time.sleep
    stats: ClientStats = field(default_factory=ClientStats)

    def __post_init__(self) -> None:
        self.api_url = self.api_url.rstrip("/")
        self.accounts_url = self.accounts_url.rstrip("/")
        for name in ("org_id", "workspace_id"):
            if not str(getattr(self, name)).strip():
                raise ValueError(f"ZohoAnalyticsClient: {name} must not be empty")
        self._http = http_client(
            timeout=self.timeout_seconds, deadline=self.deadline_seconds, headers={"User-Agent": "gp-pipelines"}
        )

    # -- lifecycle -------------------------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ZohoAnalyticsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- OAuth -----------------------------------------------------------------------------------------------

    def _cache_key(self) -> tuple[str, str, str]:
        return self.credentials.cache_key(self.accounts_url)

    def access_token(self) -> str:
        """The cached access token, or a fresh one when there is none or it is about to expire."""
        with _TOKEN_LOCK:
            cached = _TOKEN_CACHE.get(self._cache_key())
            if cached is not None and cached.expires_at - _TOKEN_MARGIN_SECONDS > time.monotonic():
                return cached.value
        return self.refresh_access_token()

    def refresh_access_token(self) -> str:
        """POST the refresh-token grant to the accounts host; cache and return the new access token."""
        url = self.accounts_url + TOKEN_PATH
        form = {"client_id": self.credentials.client_id, "client_secret": self.credentials.client_secret,
                "refresh_token": self.credentials.refresh_token, "grant_type": "refresh_token"}
        try:
            reply = self._http.post(url, data=form)
        except httpx.HTTPError as exc:
            raise ZohoTransportError(f"Zoho accounts host {self.accounts_url}: {type(exc).__name__}: {exc}") from None
        self.stats.token_refreshes += 1
        try:
            body = reply.json()
        except ValueError:
            body = {}
        token = body.get("access_token") if isinstance(body, dict) else None
        if reply.status_code != 200 or not token:
            reason = body.get("error") if isinstance(body, dict) and body.get("error") else reply.reason_phrase
            raise ZohoAuthError(
                "POST", TOKEN_PATH, reply.status_code, None,
                f"the accounts host {self.accounts_url} refused the refresh token ({reason}); check the client id, "
                "client secret and refresh token, and that accounts_url is the accounts host of the account's data "
                "centre (e.g. https://accounts.zoho.com.au for Australia)",
            )
        lifetime = float(body.get("expires_in", 3600))
        with _TOKEN_LOCK:
            _TOKEN_CACHE[self._cache_key()] = _CachedToken(token, time.monotonic() + lifetime)
        return token

    def _forget_token(self, token: str) -> None:
        with _TOKEN_LOCK:
            cached = _TOKEN_CACHE.get(self._cache_key())
            if cached is not None and cached.value == token:
                del _TOKEN_CACHE[self._cache_key()]

    # -- the one request path ------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        config: dict[str, Any] | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        raw: bool = False,
    ) -> Any:
        """Send one API call; return the reply's `data` (or the raw bytes with `raw`). Handles 8535 (refresh
        once), 6045 (wait and repeat), 5xx and transport errors (backoff and repeat)."""
        params = {"CONFIG": json.dumps(config, separators=(",", ":"))} if config else None
        refreshed = False
        throttled = 0
        failures = 0
        while True:
            token = self.access_token()
            headers = {"Authorization": f"Zoho-oauthtoken {token}", "ZANALYTICS-ORGID": self.org_id}
            self.stats.requests += 1
            try:
                reply = self._http.request(method, self.api_url + path, params=params, headers=headers, files=files)
            except httpx.HTTPError as exc:
                failures += 1
                if failures > self.server_retries:
                    raise ZohoTransportError(
                        f"Zoho Analytics {method} {path}: {type(exc).__name__}: {exc} "
                        f"(after {failures} attempts)") from None
                self._backoff(failures)
                continue
            code, message, body = _failure_of(reply)
            if code is None and reply.status_code < 400:
                if raw:
                    return reply.content
                if not isinstance(body, dict) or body.get("status") != "success":
                    raise ZohoApiError(method, path, reply.status_code, None,
                                       f"unexpected reply body: {reply.text[:200]!r}")
                return body.get("data", {})
            if code == TOKEN_EXPIRED and not refreshed:
                # The token may have been revoked or expired early: refresh once, then give up.
                refreshed = True
                self._forget_token(token)
                self.refresh_access_token()
                continue
            if code == THROTTLED:
                throttled += 1
                if throttled > self.throttle_retries:
                    raise ZohoThrottledError(method, path, reply.status_code, code,
                                             f"{message} (still throttled after {throttled - 1} waits of "
                                             f"{self.throttle_wait_seconds:g} s)")
                self.stats.throttle_waits += 1
                self._wait(self.throttle_wait_seconds)
                continue
            if code is None and reply.status_code >= 500:
                failures += 1
                if failures > self.server_retries:
                    raise ZohoApiError(method, path, reply.status_code, None,
                                       f"server error after {failures} attempts: {reply.text[:200]!r}")
                self._backoff(failures)
                continue
            if code in UNITS_EXHAUSTED:
                self.stats.units_errors += 1
                raise ZohoUnitsExhaustedError(method, path, reply.status_code, code, message)
            if code in AUTH_ERRORS:
                raise ZohoAuthError(method, path, reply.status_code, code, message)
            raise ZohoApiError(method, path, reply.status_code, code, message or repr(reply.text[:200]))

    def _backoff(self, attempt: int) -> None:
        self.stats.retries += 1
        self._wait(self.backoff_seconds * 2 ** (attempt - 1))

    def _wait(self, seconds: float) -> None:
        self.stats.seconds_waited += seconds
        self.sleep(seconds)

    @property
    def _workspace(self) -> str:
        return f"/restapi/v2/workspaces/{self.workspace_id}"

    @property
    def _bulk(self) -> str:
        return f"/restapi/v2/bulk/workspaces/{self.workspace_id}"

    # -- metadata --------------------------------------------------------------------------------------------

    def list_views(self) -> list[View]:
        data = self._request("GET", f"{self._workspace}/views")
        return [View(str(v["viewId"]), str(v["viewName"]), str(v.get("viewType", ""))) for v in data.get("views", [])]

    def find_view(self, name: str) -> View | None:
        wanted = name.lower()
        return next((view for view in self.list_views() if view.name.lower() == wanted), None)

    def create_table(self, name: str, columns: Iterable[tuple[str, str]], description: str = "") -> str:
        """Create an empty table; `columns` are (name, Zoho data type such as PLAIN, NUMBER, DECIMAL_NUMBER,
        DATE, BOOLEAN). Returns the new view id."""
        design: dict[str, Any] = {"TABLENAME": name,
                                  "COLUMNS": [{"COLUMNNAME": c, "DATATYPE": t} for c, t in columns]}
        if description:
            design["TABLEDESCRIPTION"] = description
        data = self._request("POST", f"{self._workspace}/tables", config={"tableDesign": design})
        return str(data["viewId"])

    def rename_view(self, view_id: str, new_name: str) -> None:
        self._request("PUT", f"{self._workspace}/views/{view_id}", config={"viewName": new_name})

    def delete_view(self, view_id: str) -> None:
        self._request("DELETE", f"{self._workspace}/views/{view_id}")

    # -- imports ---------------------------------------------------------------------------------------------

    @staticmethod
    def _import_config(import_type: str, matching_columns: Iterable[str] | None, on_error: str,
                       date_format: str | None) -> dict[str, Any]:
        if import_type not in IMPORT_TYPES:
            raise ValueError(f"import_type must be one of {IMPORT_TYPES}, not {import_type!r}")
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, not {on_error!r}")
        config: dict[str, Any] = {"importType": import_type, "fileType": "csv", "autoIdentify": True,
                                  "onError": on_error}
        if import_type == "updateadd":
            matching = list(matching_columns or [])
            if not matching:
                raise ValueError("an updateadd import needs matching_columns (the key the rows are matched on)")
            config["matchingColumns"] = matching
        if date_format:
            config["dateFormat"] = date_format
        return config

    @staticmethod
    def _file(csv_bytes: bytes) -> dict[str, tuple[str, bytes, str]]:
        return {"FILE": ("data.csv", csv_bytes, "text/csv")}

    def import_sync(self, view_id: str, csv_bytes: bytes, *, import_type: str,
                    matching_columns: Iterable[str] | None = None, on_error: str = "abort",
                    date_format: str | None = None) -> ImportSummary:
        """Import a CSV (at most 20 MB) into an existing table and wait for the summary."""
        if len(csv_bytes) > SYNC_IMPORT_MAX_BYTES:
            raise ValueError(f"a sync import takes at most {SYNC_IMPORT_MAX_BYTES} bytes; got {len(csv_bytes)}")
        config = self._import_config(import_type, matching_columns, on_error, date_format)
        data = self._request("POST", f"{self._workspace}/views/{view_id}/data", config=config,
                             files=self._file(csv_bytes))
        return ImportSummary.from_reply(data)

    def start_bulk_import(self, view_id: str, csv_bytes: bytes, *, import_type: str,
                          matching_columns: Iterable[str] | None = None, on_error: str = "abort",
                          date_format: str | None = None) -> str:
        """Start an async import of one file (at most 100 MB); returns the job id to `wait_for_import`."""
        if len(csv_bytes) > BATCH_MAX_BYTES:
            raise ValueError(f"an async import takes at most {BATCH_MAX_BYTES} bytes; got {len(csv_bytes)}")
        config = self._import_config(import_type, matching_columns, on_error, date_format)
        data = self._request("POST", f"{self._bulk}/views/{view_id}/data", config=config,
                             files=self._file(csv_bytes))
        return str(data["jobId"])

    def import_batches(self, view_id: str, batches: list[bytes], *, import_type: str,
                       matching_columns: Iterable[str] | None = None, on_error: str = "abort",
                       date_format: str | None = None) -> str:
        """Send `batches` (each a CSV with its header, at most 100 MB) as one batch-import job: the first with
        `batchKey: start`, the rest with the key the server returned, the last marked `isLastBatch`. Returns the
        job id to `wait_for_import`. A batch the server failed on (5xx) is sent again by `_request`."""
        if not batches:
            raise ValueError("import_batches needs at least one batch")
        base = self._import_config(import_type, matching_columns, on_error, date_format)
        batch_key, job_id = "start", ""
        for index, batch in enumerate(batches):
            if len(batch) > BATCH_MAX_BYTES:
                raise ValueError(f"batch {index + 1} has {len(batch)} bytes; at most {BATCH_MAX_BYTES} are allowed")
            config = {**base, "batchKey": batch_key, "isLastBatch": index == len(batches) - 1}
            data = self._request("POST", f"{self._bulk}/views/{view_id}/data/batch", config=config,
                                 files=self._file(batch))
            job_id = str(data["jobId"])
            batch_key = str(data.get("batchKey") or batch_key)
        return job_id

    def import_job(self, job_id: str) -> dict[str, Any]:
        return self._request("GET", f"{self._bulk}/importjobs/{job_id}")

    def wait_for_import(self, job_id: str) -> ImportSummary:
        data = self._wait_for_job("import", job_id, lambda: self.import_job(job_id))
        return ImportSummary.from_reply(data)

    # -- exports ---------------------------------------------------------------------------------------------

    def start_sql_export(self, sql: str, response_format: str = "csv") -> str:
        data = self._request("GET", f"{self._bulk}/data", config={"sqlQuery": sql, "responseFormat": response_format})
        return str(data["jobId"])

    def export_job(self, job_id: str) -> dict[str, Any]:
        return self._request("GET", f"{self._bulk}/exportjobs/{job_id}")

    def download_export(self, job_id: str) -> bytes:
        return self._request("GET", f"{self._bulk}/exportjobs/{job_id}/data", raw=True)

    def export_sql(self, sql: str) -> list[dict[str, str]]:
        """Run a SELECT through the async SQL export (start, poll, download as CSV); rows as dicts of text."""
        job_id = self.start_sql_export(sql)
        self._wait_for_job("export", job_id, lambda: self.export_job(job_id))
        text = self.download_export(job_id).decode("utf-8-sig")
        return list(csv.DictReader(io.StringIO(text)))

    # -- jobs ------------------------------------------------------------------------------------------------

    def _wait_for_job(self, kind: str, job_id: str, poll: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        deadline = time.monotonic() + self.job_timeout_seconds
        while True:
            data = poll()
            code = _int_or_none(data.get("jobCode"))
            status = str(data.get("jobStatus", ""))
            if code == JOB_COMPLETED:
                return data
            if code in (JOB_FAILED, JOB_NOT_FOUND):
                detail = data.get("jobInfo", {}).get("importErrors") if isinstance(data.get("jobInfo"), dict) else ""
                raise ZohoJobError(kind, job_id, code, status or str(code), str(detail or ""))
            if code not in (JOB_NOT_INITIATED, JOB_IN_PROGRESS):
                raise ZohoJobError(kind, job_id, code, f"unexpected job code {data.get('jobCode')!r}")
            if time.monotonic() > deadline:
                raise ZohoJobError(kind, job_id, code, f"not finished after {self.job_timeout_seconds:g} s")
            self._wait(self.poll_interval_seconds)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _failure_of(reply: httpx.Response) -> tuple[int | None, str, Any]:
    """(errorCode, errorMessage, parsed body) of a reply; code None when the body is not a Zoho failure."""
    if "json" not in reply.headers.get("content-type", ""):
        return None, "", None
    try:
        body = reply.json()
    except ValueError:
        return None, "", None
    if isinstance(body, dict) and body.get("status") == "failure":
        data = body.get("data") or {}
        code = _int_or_none(data.get("errorCode"))
        return code, str(data.get("errorMessage", body.get("summary", ""))), body
    return None, "", body
