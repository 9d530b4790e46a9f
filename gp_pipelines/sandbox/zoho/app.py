"""Zoho Analytics REST API v2 as a Starlette app (contract: reference/analytics_exports.md §1).

Accounts: `POST /oauth/v2/token` (refresh-token grant; parameters in the form body or the query string)
answers `{access_token, expires_in, token_type, api_domain}`; tokens expire after `token_lifetime_seconds`.

API, every call with `Authorization: Zoho-oauthtoken <token>` and `ZANALYTICS-ORGID`, parameters as JSON in
the `CONFIG` query parameter, replies `{"status": "success"|"failure", "summary", "data"}`:

| call | method and path |
|---|---|
| list views | GET `/restapi/v2/workspaces/{ws}/views` |
| create table | POST `/restapi/v2/workspaces/{ws}/tables` (`tableDesign`) |
| rename / delete view | PUT / DELETE `/restapi/v2/workspaces/{ws}/views/{view}` (`viewName`) |
| sync import | POST `/restapi/v2/workspaces/{ws}/views/{view}/data` (multipart `FILE`, or `DATA`) |
| async import | POST `/restapi/v2/bulk/workspaces/{ws}/views/{view}/data` → `jobId` |
| batch import | POST `/restapi/v2/bulk/workspaces/{ws}/views/{view}/data/batch` → `jobId`, `batchKey` |
| import job | GET `/restapi/v2/bulk/workspaces/{ws}/importjobs/{job}` (job codes 1001–1005) |
| SQL export | GET `/restapi/v2/bulk/workspaces/{ws}/data` (`sqlQuery`, `responseFormat` csv or json) → `jobId` |
| view export | GET `/restapi/v2/bulk/workspaces/{ws}/views/{view}/data` → `jobId` |
| export job / download | GET `/restapi/v2/bulk/workspaces/{ws}/exportjobs/{job}` and `.../{job}/data` |

Import `CONFIG`: `importType` (append, truncateadd, updateadd + `matchingColumns`), `fileType` (csv),
`autoIdentify`, `onError` (abort, skiprow, setcolumnempty). Batch imports take `batchKey` ("start", then the
key returned) and `isLastBatch`; append and updateadd commit each batch as it lands, truncateadd only after the
last batch. A job answers 1002 (in progress) for `job_polls_until_done` polls after its last batch, then 1004.

Limits: requests per `window_seconds` (60) per category — overall 100, BULK 40 (`/bulk/` and `/data` calls,
job polls included), METADATA 60 (views and tables), DML 100 (kept for completeness: no row-level DML call is
emulated); over it, error 6045 (HTTP 429; the real status for 6045 is not documented). API units per UTC day
(`daily_units`, the Standard plan's 10,000 by default): imports cost 10 per 1,000 rows for append and
truncateadd and 15 for updateadd, rounded up per request; 6043 when the day's units are spent, 6044 when a
request needs more than are left. Exports cost `export_units` per job (0 by default; unverified upstream).

Error codes: 8518 missing/malformed Authorization, 8535 invalid or expired token, 8083 no org header, 7387
workspace not in that org, 7103 workspace not found, 7138 view not found, 7003 missing parameter, 8504 bad
parameter, 7235 a file column that is not in the table, 7507 a value that does not fit its column, 7111 a
view name already used (sandbox choice: the real code for a duplicate name is not documented).

Control (`/sandbox/...`, no auth): `POST /sandbox/faults` with any of `{"throttle": n}` (the next n API calls
answer 6045), `{"fail_batch": n}` (the n-th import request from now answers HTTP 500 once), `{"drop_batch": n}`
(the n-th import request from now is acknowledged in full but its rows are discarded), `{"job_error": n}`
(the next n import jobs end 1003), `{"expire_tokens": true}`, `{"corrupt": {"table", "column", "delta"}}`
(change a number in a stored table now). `POST /sandbox/settings` changes options; `GET /sandbox/state`
shows units used, requests, token grants and every table with its row count.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .store import SandboxError, Table, ZohoStore, render

UNITS_PER_1000_ROWS = {"append": 10, "truncateadd": 10, "updateadd": 15}
DEFAULT_LIMITS = {"overall": 100, "bulk": 40, "metadata": 60, "dml": 100}
JOB_STATUS = {1001: "JOB NOT INITIATED", 1002: "JOB IN PROGRESS", 1003: "ERROR OCCURRED", 1004: "JOB COMPLETED",
              1005: "JOB NOT FOUND"}
FAULT_KEYS = ("throttle", "fail_batch", "drop_batch", "job_error", "expire_tokens", "corrupt")
_SETTINGS = {"token_lifetime_seconds": float, "daily_units": int, "per_minute": dict, "window_seconds": float,
             "job_polls_until_done": int, "export_units": int, "units_used": int}


@dataclass(frozen=True)
class ZohoSandboxIdentity:
    """The sandbox organisation, workspace and Self Client, derived from the seed (stable across restarts)."""

    org_id: str
    workspace_id: str
    client_id: str
    client_secret: str
    refresh_token: str


def sandbox_identity(seed: int = 42) -> ZohoSandboxIdentity:
    def digits(label: str, count: int) -> str:
        return str(int(hashlib.sha256(f"zoho:{seed}:{label}".encode()).hexdigest(), 16))[:count]

    def hexa(label: str, count: int) -> str:
        return hashlib.sha256(f"zoho:{seed}:{label}".encode()).hexdigest()[:count]

    return ZohoSandboxIdentity(
        org_id="6" + digits("org", 8),
        workspace_id="17" + digits("workspace", 17),
        client_id="1000." + hexa("client", 30).upper(),
        client_secret=hexa("secret", 42),
        refresh_token="1000." + hexa("refresh", 32) + "." + hexa("refresh2", 32),
    )


@dataclass
class ZohoSandboxOptions:
    seed: int = 42
    token_lifetime_seconds: float = 3600.0
    daily_units: int = 10_000
    per_minute: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    window_seconds: float = 60.0
    job_polls_until_done: int = 1
    export_units: int = 0


@dataclass
class ImportJob:
    job_id: str
    table: Table
    import_type: str
    matching: list[str] | None
    on_error: str
    batch_key: str
    columns: list[str] | None = None
    pending: list[tuple[Any, ...]] = field(default_factory=list)  # truncateadd rows held until the last batch
    batches: int = 0
    total_rows: int = 0
    success_rows: int = 0
    errors: list[str] = field(default_factory=list)
    complete: bool = False  # the last batch has arrived
    polls_after_complete: int = 0
    failed: str = ""


@dataclass
class ExportJob:
    job_id: str
    headers: list[str]
    rows: list[tuple[Any, ...]]
    response_format: str
    polls: int = 0


@dataclass
class Faults:
    throttle: int = 0
    fail_at: set[int] = field(default_factory=set)  # absolute import-request numbers
    drop_at: set[int] = field(default_factory=set)
    job_errors: int = 0


class ZohoSandbox:
    """The whole stand-in: identity, tokens, limits, units, jobs, faults and the workspace's tables."""

    def __init__(self, options: ZohoSandboxOptions) -> None:
        self.options = options
        self.identity = sandbox_identity(options.seed)
        # View ids are unique per start, as Zoho's are globally: state keyed by id must never match a table of
        # an earlier sandbox that happened to get the same number.
        self.store = ZohoStore(first_view_id=int(self.identity.workspace_id[:6]) * 10**13
                               + secrets.randbelow(10**6) * 10**6 + 1)
        self.tokens: dict[str, float] = {}  # access token -> expiry (monotonic)
        self.token_grants = 0
        self.requests: dict[str, int] = {}
        self.windows: dict[str, deque[float]] = {}
        self.units_day = datetime.now(UTC).date()
        self.units_used = 0
        self.import_requests = 0
        self.import_jobs: dict[str, ImportJob] = {}
        self.export_jobs: dict[str, ExportJob] = {}
        self.faults = Faults()
        self.lock = threading.RLock()
        self._next_job = 1

    # -- accounting ------------------------------------------------------------------------------------------

    def new_job_id(self) -> str:
        with self.lock:
            self._next_job += 1
            return self.identity.workspace_id[:6] + f"{self._next_job:013d}"

    def _roll_day(self) -> None:
        today = datetime.now(UTC).date()
        if today != self.units_day:
            self.units_day, self.units_used = today, 0

    def charge(self, units: int) -> None:
        """Spend units for one request, or refuse it with 6043 (nothing left) / 6044 (not enough left)."""
        with self.lock:
            self._roll_day()
            left = self.options.daily_units - self.units_used
            if units and left <= 0:
                raise SandboxError(6043, "The API units for the day are exhausted for this organization", 400,
                                   "API_UNITS_EXHAUSTED")
            if units > left:
                raise SandboxError(6044, f"This request needs {units} API units; only {left} are left today", 400,
                                   "API_UNITS_LIMIT_EXCEEDED")
            self.units_used += units

    def admit(self, category: str) -> None:
        """Count a request against the per-minute limits; 6045 when over (or when a throttle fault is queued)."""
        now = time.monotonic()
        with self.lock:
            self.requests[category] = self.requests.get(category, 0) + 1
            if self.faults.throttle > 0:
                self.faults.throttle -= 1
                raise SandboxError(6045, "API request limit per minute exceeded; try again after a minute", 429,
                                   "RATE_LIMIT_EXCEEDED")
            for bucket in ("overall", category):
                limit = self.options.per_minute.get(bucket)
                window = self.windows.setdefault(bucket, deque())
                while window and window[0] <= now - self.options.window_seconds:
                    window.popleft()
                if limit is not None and len(window) >= limit:
                    raise SandboxError(6045, f"{bucket.upper()} API limit of {limit} requests per minute exceeded",
                                       429, "RATE_LIMIT_EXCEEDED")
            for bucket in ("overall", category):
                self.windows[bucket].append(now)

    def next_import_request(self) -> str:
        """Number this import request and say which fault, if any, it suffers: 'fail', 'drop' or ''."""
        with self.lock:
            self.import_requests += 1
            number = self.import_requests
            if number in self.faults.fail_at:
                self.faults.fail_at.discard(number)
                return "fail"
            if number in self.faults.drop_at:
                self.faults.drop_at.discard(number)
                return "drop"
            return ""

    # -- control ---------------------------------------------------------------------------------------------

    def inject(self, faults: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(faults) - set(FAULT_KEYS))
        if unknown:
            raise ValueError(f"unknown Zoho sandbox faults {unknown}; known: {list(FAULT_KEYS)}")
        result: dict[str, Any] = {}
        with self.lock:
            if "throttle" in faults:
                self.faults.throttle += int(faults["throttle"])
            if "fail_batch" in faults:
                self.faults.fail_at.add(self.import_requests + int(faults["fail_batch"]))
            if "drop_batch" in faults:
                self.faults.drop_at.add(self.import_requests + int(faults["drop_batch"]))
            if "job_error" in faults:
                self.faults.job_errors += int(faults["job_error"])
            if faults.get("expire_tokens"):
                self.tokens = dict.fromkeys(self.tokens, 0.0)
            if "corrupt" in faults:
                spec = faults["corrupt"]
                result["corrupted"] = self.store.change_number(spec["table"], spec["column"],
                                                               float(spec.get("delta", 1)))
        return result

    def settings(self, changes: dict[str, Any]) -> None:
        unknown = sorted(set(changes) - set(_SETTINGS))
        if unknown:
            raise ValueError(f"unknown Zoho sandbox settings {unknown}; known: {list(_SETTINGS)}")
        with self.lock:
            for key, value in changes.items():
                if key == "per_minute":
                    self.options.per_minute.update({k: int(v) for k, v in value.items()})
                    self.windows.clear()
                elif key == "units_used":
                    self._roll_day()
                    self.units_used = int(value)
                else:
                    setattr(self.options, key, _SETTINGS[key](value))

    def state(self) -> dict[str, Any]:
        with self.lock:
            self._roll_day()
            return {
                "org_id": self.identity.org_id,
                "workspace_id": self.identity.workspace_id,
                "units_used": self.units_used,
                "daily_units": self.options.daily_units,
                "requests": dict(self.requests),
                "token_grants": self.token_grants,
                "import_requests": self.import_requests,
                "import_jobs": len(self.import_jobs),
                "export_jobs": len(self.export_jobs),
                "tables": {t.name: {"view_id": t.view_id, "rows": self.store.row_count(t),
                                    "columns": [c for c, _ in t.columns]}
                           for t in self.store.tables.values()},
            }


# -- replies -------------------------------------------------------------------------------------------------


def success(data: Any = None, summary: str = "", status: int = 200) -> Response:
    body = {"status": "success", "summary": summary, "data": data if data is not None else {}}
    return JSONResponse(body, status_code=status)


def failure(error: SandboxError) -> Response:
    body = {"status": "failure", "summary": error.summary,
            "data": {"errorCode": error.code, "errorMessage": error.message}}
    return JSONResponse(body, status_code=error.status)


def _config(request: Request) -> dict[str, Any]:
    raw = request.query_params.get("CONFIG")
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SandboxError(8504, f"CONFIG is not valid JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise SandboxError(8504, "CONFIG must be a JSON object")
    return value


async def _payload(request: Request) -> bytes:
    """The imported file: multipart field FILE (or DATA), or a form field DATA."""
    content_type = request.headers.get("content-type", "")
    body = await request.body()
    if content_type.startswith("multipart/form-data"):
        message = BytesParser(policy=policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name in ("FILE", "DATA"):
                return part.get_payload(decode=True) or b""
    elif content_type.startswith("application/x-www-form-urlencoded"):
        data = parse_qs(body.decode("utf-8"), keep_blank_values=True).get("DATA")
        if data:
            return data[0].encode("utf-8")
    raise SandboxError(7003, "no file: send the data as multipart field FILE (or DATA)")


def _import_settings(config: dict[str, Any], table: Table) -> tuple[str, list[str] | None, str]:
    import_type = config.get("importType")
    if not import_type:
        raise SandboxError(7003, "CONFIG is missing the mandatory parameter importType")
    if import_type not in UNITS_PER_1000_ROWS:
        raise SandboxError(8504, f"importType {import_type!r} is not one of append, truncateadd, updateadd")
    if config.get("fileType", "csv") != "csv":
        raise SandboxError(8504, f"fileType {config.get('fileType')!r} is not supported by the sandbox (csv only)")
    on_error = config.get("onError", "abort")
    if on_error not in ("abort", "skiprow", "setcolumnempty"):
        raise SandboxError(8504, f"onError {on_error!r} is not one of abort, skiprow, setcolumnempty")
    matching = config.get("matchingColumns")
    if import_type == "updateadd":
        if not matching or not isinstance(matching, list):
            raise SandboxError(7003, "importType updateadd needs matchingColumns")
        canonical = []
        for column in matching:
            name = table.canonical(str(column))
            if name is None:
                raise SandboxError(8504, f"matchingColumns: {column!r} is not a column of table {table.name!r}")
            canonical.append(name)
        matching = canonical
    return import_type, matching, on_error


def _units(rows: int, import_type: str) -> int:
    return math.ceil(rows * UNITS_PER_1000_ROWS[import_type] / 1000)


def _summary(import_type: str, table: Table, columns: list[str], total: int, ok: int, warnings: int) -> dict:
    return {"importType": import_type.upper(), "totalColumnCount": len(table.columns),
            "selectedColumnCount": len(columns), "totalRowCount": total, "successRowCount": ok,
            "warnings": warnings, "importOperation": "updated" if import_type != "append" else "created"}


def create_app(options: ZohoSandboxOptions | None = None) -> Starlette:
    sandbox = ZohoSandbox(options or ZohoSandboxOptions())
    store = sandbox.store
    ident = sandbox.identity

    def api(category: str, handler: Callable[[Request, dict[str, Any]], Awaitable[Response]]):
        async def endpoint(request: Request) -> Response:
            try:
                auth = request.headers.get("authorization", "")
                if not auth.startswith("Zoho-oauthtoken "):
                    raise SandboxError(8518, "Invalid or missing Authorization header", 401, "INVALID_AUTHENTICATION")
                token = auth.removeprefix("Zoho-oauthtoken ").strip()
                with sandbox.lock:
                    expiry = sandbox.tokens.get(token)
                if expiry is None or expiry <= time.monotonic():
                    raise SandboxError(8535, "Invalid oauthtoken", 401, "INVALID_OAUTHTOKEN")
                org = request.headers.get("zanalytics-orgid")
                if not org:
                    raise SandboxError(8083, "Organization id is not present in the request header", 400)
                workspace = request.path_params.get("ws")
                if workspace is not None and workspace != ident.workspace_id:
                    raise SandboxError(7103, f"Workspace {workspace} not found", 404, "WORKSPACE_NOT_FOUND")
                if org != ident.org_id:
                    raise SandboxError(7387, f"The workspace is not in organization {org}", 400)
                sandbox.admit(category)
                return await handler(request, _config(request))
            except SandboxError as error:
                return failure(error)

        return endpoint

    # -- accounts ----------------------------------------------------------------------------------------------

    async def token(request: Request) -> Response:
        params = dict(request.query_params)
        body = await request.body()
        if body and request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            params.update({k: v[0] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()})
        if params.get("grant_type") != "refresh_token":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        if params.get("client_id") != ident.client_id or params.get("client_secret") != ident.client_secret:
            return JSONResponse({"error": "invalid_client"}, status_code=400)
        if params.get("refresh_token") != ident.refresh_token:
            return JSONResponse({"error": "invalid_code"}, status_code=400)
        access = "1000." + secrets.token_hex(32)
        with sandbox.lock:
            sandbox.tokens[access] = time.monotonic() + sandbox.options.token_lifetime_seconds
            sandbox.token_grants += 1
        return JSONResponse({"access_token": access, "api_domain": str(request.base_url).rstrip("/"),
                             "token_type": "Bearer", "expires_in": int(sandbox.options.token_lifetime_seconds)})

    # -- metadata ----------------------------------------------------------------------------------------------

    async def list_views(request: Request, config: dict) -> Response:
        with store.lock:
            views = [{"viewId": t.view_id, "viewName": t.name, "viewType": "Table", "viewDesc": t.description}
                     for t in store.tables.values()]
        return success({"views": views}, "Get views")

    async def create_table(request: Request, config: dict) -> Response:
        design = config.get("tableDesign")
        if not isinstance(design, dict):
            raise SandboxError(7003, "CONFIG is missing the mandatory parameter tableDesign")
        columns = design.get("COLUMNS")
        if not isinstance(columns, list) or not all(isinstance(c, dict) for c in columns):
            raise SandboxError(8504, "tableDesign.COLUMNS must be a list of {COLUMNNAME, DATATYPE}")
        pairs = [(str(c.get("COLUMNNAME", "")), str(c.get("DATATYPE", ""))) for c in columns]
        table = store.create_table(str(design.get("TABLENAME", "")), pairs, str(design.get("TABLEDESCRIPTION", "")))
        return success({"viewId": table.view_id}, "Create table")

    async def change_view(request: Request, config: dict) -> Response:
        view_id = request.path_params["view"]
        if request.method == "DELETE":
            store.delete(view_id)
            return success(None, "Delete view")
        name = config.get("viewName")
        if not name:
            raise SandboxError(7003, "CONFIG is missing the mandatory parameter viewName")
        store.rename(view_id, str(name))
        return success(None, "Rename view")

    # -- imports -----------------------------------------------------------------------------------------------

    async def read_import(request: Request, config: dict, table: Table) -> tuple[str, list[str] | None, str, Any,
                                                                               str]:
        import_type, matching, on_error = _import_settings(config, table)
        payload = await _payload(request)
        fault = sandbox.next_import_request()
        if fault == "fail":
            return import_type, matching, on_error, None, fault
        parsed = store.parse(table, payload, on_error)
        if matching:
            missing = [m for m in matching if m not in parsed.columns]
            if missing:
                raise SandboxError(8504, f"matchingColumns {missing} are not columns of the file")
        sandbox.charge(_units(parsed.total_rows, import_type))
        return import_type, matching, on_error, parsed, fault

    def server_error() -> Response:
        return Response("<html><body><h1>500 Internal Server Error</h1></body></html>", 500, media_type="text/html")

    async def sync_import(request: Request, config: dict) -> Response:
        table = store.by_id(request.path_params["view"])
        import_type, matching, _, parsed, fault = await read_import(request, config, table)
        if fault == "fail":
            return server_error()
        if fault != "drop":
            store.apply(table, parsed.columns, parsed.rows, import_type, matching)
        # A dropped import still reports every row as imported: only reading back can catch it.
        ok = parsed.total_rows - parsed.skipped_rows
        return success({"importSummary": _summary(import_type, table, parsed.columns, parsed.total_rows, ok,
                                                  len(parsed.errors)),
                        "columnDetails": {c: table.column_type(c) for c in parsed.columns},
                        "importErrors": "\n".join(parsed.errors[:100])}, "Import data")

    def add_batch(job: ImportJob, parsed: Any, fault: str, last: bool) -> None:
        job.batches += 1
        job.columns = job.columns or parsed.columns
        if parsed.columns != job.columns:
            raise SandboxError(8504, f"batch {job.batches} has columns {parsed.columns}; the job's first batch had "
                                     f"{job.columns}")
        job.total_rows += parsed.total_rows
        job.success_rows += parsed.total_rows - parsed.skipped_rows
        job.errors += parsed.errors
        if fault != "drop":
            if job.import_type == "truncateadd":
                job.pending += parsed.rows
            else:
                store.apply(job.table, parsed.columns, parsed.rows, job.import_type, job.matching)
        if last:
            job.complete = True
            with sandbox.lock:
                doomed = sandbox.faults.job_errors > 0
                if doomed:
                    sandbox.faults.job_errors -= 1
            if doomed:
                job.failed = "the import failed while the job was processed (injected fault)"
            elif job.import_type == "truncateadd":
                store.apply(job.table, job.columns or [], job.pending, "truncateadd")
            job.pending = []

    async def bulk_import(request: Request, config: dict) -> Response:
        table = store.by_id(request.path_params["view"])
        import_type, matching, on_error, parsed, fault = await read_import(request, config, table)
        if fault == "fail":
            return server_error()
        job = ImportJob(sandbox.new_job_id(), table, import_type, matching, on_error, batch_key="")
        add_batch(job, parsed, fault, last=True)
        sandbox.import_jobs[job.job_id] = job
        return success({"jobId": job.job_id}, "Create import job")

    async def batch_import(request: Request, config: dict) -> Response:
        table = store.by_id(request.path_params["view"])
        batch_key = config.get("batchKey")
        if not batch_key:
            raise SandboxError(7003, "CONFIG is missing the mandatory parameter batchKey ('start' for the first)")
        if batch_key == "start":
            job = None
        else:
            job = next((j for j in sandbox.import_jobs.values() if j.batch_key == batch_key), None)
            if job is None or job.complete:
                raise SandboxError(8504, f"batchKey {batch_key!r} does not belong to an open batch import")
            if job.table.view_id != table.view_id:
                raise SandboxError(8504, f"batchKey {batch_key!r} belongs to another table")
        import_type, matching, on_error, parsed, fault = await read_import(request, config, table)
        if fault == "fail":
            return server_error()
        if job is None:
            job = ImportJob(sandbox.new_job_id(), table, import_type, matching, on_error, secrets.token_hex(16))
            sandbox.import_jobs[job.job_id] = job
        elif import_type != job.import_type:
            raise SandboxError(8504, f"importType {import_type!r} differs from the job's {job.import_type!r}")
        last = config.get("isLastBatch") in (True, "true", "True")
        add_batch(job, parsed, fault, last)
        return success({"jobId": job.job_id, "batchKey": job.batch_key}, "Batch import")

    def job_reply(job_id: str, code: int, info: dict | None = None) -> Response:
        data: dict[str, Any] = {"jobId": job_id, "jobCode": str(code), "jobStatus": JOB_STATUS[code]}
        if info is not None:
            data["jobInfo"] = info
        return success(data, "Get job details")

    async def import_job(request: Request, config: dict) -> Response:
        job = sandbox.import_jobs.get(request.path_params["job"])
        if job is None:
            return job_reply(request.path_params["job"], 1005)
        if not job.complete or job.polls_after_complete < sandbox.options.job_polls_until_done:
            if job.complete:
                job.polls_after_complete += 1
            return job_reply(job.job_id, 1002)
        info = {"viewId": job.table.view_id,
                "importSummary": _summary(job.import_type, job.table, job.columns or [], job.total_rows,
                                          0 if job.failed else job.success_rows, len(job.errors)),
                "columnDetails": {c: job.table.column_type(c) for c in job.columns or []},
                "importErrors": job.failed or "\n".join(job.errors[:100])}
        return job_reply(job.job_id, 1003 if job.failed else 1004, info)

    # -- exports -----------------------------------------------------------------------------------------------

    def start_export(sql: str, config: dict) -> Response:
        response_format = config.get("responseFormat", "csv")
        if response_format not in ("csv", "json"):
            raise SandboxError(8504, f"responseFormat {response_format!r} is not supported by the sandbox (csv, json)")
        headers, rows = store.query(sql)
        sandbox.charge(sandbox.options.export_units)
        job = ExportJob(sandbox.new_job_id(), headers, rows, response_format)
        sandbox.export_jobs[job.job_id] = job
        return success({"jobId": job.job_id}, "Create export job")

    async def sql_export(request: Request, config: dict) -> Response:
        sql = config.get("sqlQuery")
        if not sql:
            raise SandboxError(7003, "CONFIG is missing the mandatory parameter sqlQuery")
        return start_export(str(sql), config)

    async def view_export(request: Request, config: dict) -> Response:
        table = store.by_id(request.path_params["view"])
        return start_export(f"SELECT * FROM {_quote(table.name)}", config)

    async def export_job(request: Request, config: dict) -> Response:
        job = sandbox.export_jobs.get(request.path_params["job"])
        if job is None:
            return job_reply(request.path_params["job"], 1005)
        if job.polls < sandbox.options.job_polls_until_done:
            job.polls += 1
            return job_reply(job.job_id, 1002)
        path = f"/restapi/v2/bulk/workspaces/{ident.workspace_id}/exportjobs/{job.job_id}/data"
        return job_reply(job.job_id, 1004, {"downloadUrl": str(request.base_url).rstrip("/") + path})

    async def export_download(request: Request, config: dict) -> Response:
        job = sandbox.export_jobs.get(request.path_params["job"])
        if job is None:
            raise SandboxError(8504, f"export job {request.path_params['job']} not found", 404)
        if job.polls < sandbox.options.job_polls_until_done:
            raise SandboxError(8504, f"export job {job.job_id} has not completed yet")
        if job.response_format == "json":
            records = [dict(zip(job.headers, (render(v) for v in row), strict=True)) for row in job.rows]
            return JSONResponse({"data": records})
        lines = [_csv_line(job.headers)] + [_csv_line([render(v) for v in row]) for row in job.rows]
        return Response("".join(lines), media_type="text/csv")

    # -- control -----------------------------------------------------------------------------------------------

    async def control_faults(request: Request) -> Response:
        try:
            result = sandbox.inject(await request.json())
        except SandboxError as error:
            return JSONResponse({"error": error.message}, status_code=400)
        except (ValueError, KeyError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"ok": True, **result})

    async def control_settings(request: Request) -> Response:
        try:
            sandbox.settings(await request.json())
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"ok": True})

    async def control_state(request: Request) -> Response:
        return JSONResponse(sandbox.state())

    ws = "/restapi/v2/workspaces/{ws}"
    bulk = "/restapi/v2/bulk/workspaces/{ws}"
    routes = [
        Route("/oauth/v2/token", token, methods=["POST"]),
        Route(f"{ws}/views", api("metadata", list_views), methods=["GET"]),
        Route(f"{ws}/tables", api("metadata", create_table), methods=["POST"]),
        Route(f"{ws}/views/{{view}}", api("metadata", change_view), methods=["PUT", "DELETE"]),
        Route(f"{ws}/views/{{view}}/data", api("bulk", sync_import), methods=["POST"]),
        Route(f"{bulk}/views/{{view}}/data", api("bulk", bulk_import), methods=["POST"]),
        Route(f"{bulk}/views/{{view}}/data", api("bulk", view_export), methods=["GET"]),
        Route(f"{bulk}/views/{{view}}/data/batch", api("bulk", batch_import), methods=["POST"]),
        Route(f"{bulk}/importjobs/{{job}}", api("bulk", import_job), methods=["GET"]),
        Route(f"{bulk}/data", api("bulk", sql_export), methods=["GET"]),
        Route(f"{bulk}/exportjobs/{{job}}", api("bulk", export_job), methods=["GET"]),
        Route(f"{bulk}/exportjobs/{{job}}/data", api("bulk", export_download), methods=["GET"]),
        Route("/sandbox/faults", control_faults, methods=["POST"]),
        Route("/sandbox/settings", control_settings, methods=["POST"]),
        Route("/sandbox/state", control_state, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.state.sandbox = sandbox
    return app


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _csv_line(values: list[str]) -> str:
    cells = []
    for value in values:
        if any(ch in value for ch in ',"\n\r'):
            value = '"' + value.replace('"', '""') + '"'
        cells.append(value)
    return ",".join(cells) + "\r\n"
