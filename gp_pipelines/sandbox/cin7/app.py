"""HTTP face of the sandbox: the Cin7 Core v2 API under /ExternalApi/v2/ and control endpoints under /sandbox/.

One catch-all route does its own case-insensitive dispatch, because the real API treats paths and query
parameter names case-insensitively and answers unknown paths with an HTML page rather than a 404.
Request order for the API: credentials (403) → rate limiter (throttle) → fault draw → endpoint. The faults are
listed in `faults`: most replace the response (throttles, errors, HTML) or delay it (`slow`); `truncated` cuts
the body in half and `drip` sends it one byte at a time with a gap between bytes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from . import sales
from .endpoints import DETAIL_ENDPOINTS, LIST_BY_PATH, BadRequest, envelope, page_params, select
from .faults import FAULT_NAMES
from .model import DAY_MS, SandboxOptions, fmt_stamp
from .state import Sandbox
from .store import DocRecord, InstanceStore, Row
from .trading import hard_delete_drafts

API_PREFIX = "externalapi/v2/"
_HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>Cin7 Core</title></head><body>"
    "<h1>Cin7 Core</h1><p>The page you are looking for could not be found.</p></body></html>"
)
_OUTAGE_PAGE = (
    "<!DOCTYPE html><html><head><title>503 Service Unavailable</title></head><body>"
    "<h1>Service Unavailable</h1><p>The server is temporarily unable to service your request due to "
    "maintenance downtime or capacity problems. Please try again later.</p></body></html>"
)
_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]


def json_response(body: Any, status: int = 200) -> Response:
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(data, status, media_type="application/json")


def error_model(message: str, status: int = 400) -> Response:
    return json_response([{"ErrorCode": status, "Exception": message}], status)


def throttle_response(mode: str, limit: int, window: float, retry_after: int) -> Response:
    message = f"You have reached {limit} calls per {window:g} seconds API limit."
    if mode == "503":
        return PlainTextResponse(message, 503)
    if mode == "400":
        return error_model(message)
    return PlainTextResponse(message, 429, headers={
        "x-ratelimit-limit": str(limit),
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset": str(retry_after),
        "Retry-After": f"{retry_after} Seconds",  # the real, non-RFC form: a unit after the number
    })


def drip_response(response: Response, gap_seconds: float) -> StreamingResponse:
    """The same answer, head at once (Content-Length included), body one byte every `gap_seconds`: each read
    of a client gets a byte well before its read timeout, so only an overall deadline stops waiting."""
    body = bytes(response.body)

    async def byte_by_byte() -> Any:
        for index in range(len(body)):
            if index:
                await asyncio.sleep(gap_seconds)
            yield body[index : index + 1]

    # Starlette stops the generator when the client disconnects (it listens for http.disconnect meanwhile).
    return StreamingResponse(byte_by_byte(), response.status_code, headers=dict(response.headers))


class _Call:
    """One API request, parsed: lower-case path and parameter names, the instance, the JSON body."""

    def __init__(self, sandbox: Sandbox, store: InstanceStore, method: str, path: str, params: dict[str, str],
                 body: Any) -> None:
        self.sandbox = sandbox
        self.store = store
        self.method = method
        self.path = path
        self.params = params
        self.body = body

    def param(self, name: str) -> str:
        value = self.params.get(name.lower())
        if not value:
            raise BadRequest(f"Parameter {name} is required")
        return value

    def json_body(self) -> Row:
        if not isinstance(self.body, dict):
            raise BadRequest("Request body must be a JSON object")
        return self.body


Handler = Callable[[_Call], Response]


# ---------------------------------------------------------------- read handlers


def _me(call: _Call) -> Response:
    inst = call.store.instance
    return json_response({
        "Company": inst.company, "Currency": inst.currency, "TimeZone": inst.timezone,
        "DefaultWeightUnits": "kg", "DefaultDimensionsUnits": "cm", "LockDate": None,
        "OpeningBalanceDate": "2020-01-01T00:00:00", "TaxCalculationMethod": "Exclusive",
        "DefaultSaleTaxRuleId": None, "DefaultSaleTaxRuleName": call.store.tax_rule, "DiscountRule": "",
        "ApplyCustomerDiscountsAfterOtherDiscounts": False, "AutomaticallyApplyDiscounts": False,
        "MaximumDecimalPlacesInQuantity": 4, "RoundingTable": [],
    })


def _sale_record(call: _Call, param: str = "SaleID") -> DocRecord:
    sale_id = call.param(param)
    record = call.store.get("sales", sale_id)
    if not isinstance(record, DocRecord):
        raise BadRequest(f"Sale with ID = {sale_id} not found")
    return record


def _task_record(call: _Call) -> tuple[DocRecord, str]:
    task_id = call.param("TaskID")
    sale_id = call.store.task_index.get(task_id.lower())
    record = call.store.get("sales", sale_id or task_id)  # a Simple Sale's first task id is its sale id
    if not isinstance(record, DocRecord):
        raise BadRequest(f"Task with TaskID = {task_id} not found")
    return record, task_id


def _detail(call: _Call) -> Response:
    collection, id_param = DETAIL_ENDPOINTS[call.path]
    record_id = call.param(id_param)
    record = call.store.get(collection, record_id)
    if record is None:
        label = "ID" if id_param == "id" else "TaskID"
        raise BadRequest(f"Document with {label} = {record_id} not found")
    if isinstance(record, DocRecord):
        return json_response(record.document())
    return json_response(record.detail)  # type: ignore[attr-defined]


def _fulfilments(record: DocRecord) -> Response:
    return json_response({"SaleID": record.id, "Fulfilments": record.document()["Fulfilments"]})


def _invoices(record: DocRecord) -> Response:
    return json_response({"SaleID": record.id, "Invoices": record.document()["Invoices"]})


def _stage_response(record: DocRecord, task_id: str, stage: str) -> Response:
    doc = record.document()
    for task in doc["Fulfilments"]:
        if task["TaskID"].lower() == task_id.lower():
            return json_response({"TaskID": task["TaskID"], **task[stage]})
    raise BadRequest(f"Task with TaskID = {task_id} not found")


# ---------------------------------------------------------------- write handlers


def _mutate(call: _Call, record: DocRecord, change: Callable[[Row], Any]) -> Any:
    try:
        return call.store.mutate_sale(record, change)
    except sales.SaleError as exc:
        raise BadRequest(str(exc)) from None


def _sale(call: _Call) -> Response:
    if call.method == "GET":
        return _detail(call)
    if call.method == "DELETE":
        record = _sale_record(call, "ID")
        void = call.params.get("void", "false").strip().lower() == "true"
        _mutate(call, record, lambda d: (sales.void_sale if void else sales.undo_sale)(call.store, d))
        return json_response(record.document())
    body = call.json_body()
    if call.method == "PUT" and body.get("ID"):
        record = call.store.get("sales", body["ID"])
        if not isinstance(record, DocRecord):
            raise BadRequest(f"Sale with ID = {body['ID']} not found")
        _mutate(call, record, lambda d: sales.update_sale(call.store, d, body))
        return json_response(record.document())
    # POST, and the real quirk: a PUT without ID creates a new sale.
    try:
        record = call.store.create_sale(body)
    except sales.SaleError as exc:
        raise BadRequest(str(exc)) from None
    return json_response(record.document())


def _sale_order(call: _Call) -> Response:
    if call.method == "GET":
        record = _sale_record(call)
        return json_response({"SaleID": record.id, **record.document()["Order"]})
    body = call.json_body()
    call.params["saleid"] = str(body.get("SaleID") or "")
    record = _sale_record(call)
    _mutate(call, record, lambda d: sales.set_order(call.store, d, body))
    return json_response({"SaleID": record.id, **record.document()["Order"]})


def _sale_fulfilment(call: _Call) -> Response:
    if call.method == "GET":
        return _fulfilments(_sale_record(call))
    if call.method == "DELETE":
        record, task_id = _task_record(call)
        void = call.params.get("void", "false").strip().lower() == "true"
        _mutate(call, record, lambda d: sales.void_fulfilment(call.store, d, task_id, void))
        return _fulfilments(record)
    body = call.json_body()
    call.params["saleid"] = str(body.get("SaleID") or "")
    record = _sale_record(call)
    task = _mutate(call, record, lambda d: sales.add_fulfilment(call.store, d))
    return json_response({"SaleID": record.id, **task})


def _stage_handler(stage: str) -> Handler:
    setter = {"Pick": sales.set_pick, "Pack": sales.set_pack, "Ship": sales.set_ship}[stage]

    def handle(call: _Call) -> Response:
        if call.method != "GET":
            body = call.json_body()
            call.params["taskid"] = str(body.get("TaskID") or "")
        record, task_id = _task_record(call)
        if call.method != "GET":
            _mutate(call, record, lambda d: setter(call.store, d, sales.task_for_stage(call.store, d, task_id), body))
        return _stage_response(record, task_id, stage)

    return handle


def _sale_for_task(call: _Call, body: Row) -> DocRecord:
    """The sale a stage write is about: its `SaleID`, else the sale owning its `TaskID`."""
    if body.get("SaleID"):
        call.params["saleid"] = str(body["SaleID"])
        return _sale_record(call)
    call.params["taskid"] = str(body.get("TaskID") or "")
    record, _ = _task_record(call)
    return record


def _sale_invoice(call: _Call) -> Response:
    """GET ?SaleID=; POST creates an invoice, or with an existing invoice's `TaskID` edits/authorises that DRAFT
    invoice (as PUT does); DELETE ?TaskID=&Void= voids or undoes one."""
    if call.method == "GET":
        return _invoices(_sale_record(call))
    if call.method == "DELETE":
        record, task_id = _task_record(call)
        void = call.params.get("void", "false").strip().lower() == "true"
        _mutate(call, record, lambda d: sales.void_invoice(call.store, d, task_id, void))
        return _invoices(record)
    body = call.json_body()
    task_id = str(body.get("TaskID") or "")
    if call.method == "PUT" and not task_id:
        raise BadRequest("Parameter TaskID is required")
    record = _sale_for_task(call, body)
    existing = next((i for i in record.document()["Invoices"] if i["TaskID"].lower() == task_id.lower()), None)
    if existing is not None:
        tid = existing["TaskID"]
        _mutate(call, record, lambda d: sales.update_invoice(call.store, d, sales.find_invoice(d, tid), body))
    elif task_id and (call.method == "PUT" or task_id.lower() != record.id.lower()):
        raise BadRequest(f"Invoice with TaskID = {task_id} not found")
    else:
        _mutate(call, record, lambda d: sales.add_invoice(call.store, d, body))
    return _invoices(record)


def _payment_record(call: _Call, payment_id: str) -> DocRecord:
    sale_id = call.store.payment_index.get(payment_id.strip().lower())
    record = call.store.get("sales", sale_id) if sale_id else None
    if not isinstance(record, DocRecord):
        raise BadRequest(f"Payment with ID = {payment_id} not found")
    return record


def _sale_payment(call: _Call) -> Response:
    """GET ?SaleID= (a bare array), POST against an invoice's `TaskID`, PUT by `ID`, DELETE ?ID=."""
    if call.method == "GET":
        return json_response(sales.payment_rows(_sale_record(call).document()))
    if call.method == "DELETE":
        payment_id = call.param("ID")
        record = _payment_record(call, payment_id)
        _mutate(call, record, lambda d: sales.delete_payment(call.store, d, payment_id))
        return json_response(sales.payment_rows(record.document()))
    body = call.json_body()
    if call.method == "PUT":
        payment_id = str(body.get("ID") or "")
        if not payment_id:
            raise BadRequest("Parameter ID is required")
        record = _payment_record(call, payment_id)
        _mutate(call, record, lambda d: sales.update_payment(call.store, d, payment_id, body))
    else:
        if not body.get("TaskID"):
            raise BadRequest("Parameter TaskID is required: the TaskID of the invoice the payment is for")
        record = _sale_for_task(call, body)
        task_id = str(body["TaskID"])
        try:
            amount = float(body.get("Amount"))
            rate = float(body["CurrencyRate"]) if body.get("CurrencyRate") else None
        except (TypeError, ValueError):
            raise BadRequest("Amount and CurrencyRate must be numbers") from None

        def pay(doc: Row) -> Row:
            invoice = sales.find_invoice(doc, task_id)
            return sales.add_payment(
                call.store, doc, invoice, amount, rate if rate is not None else invoice["CurrencyConversionRate"],
                reference=body.get("Reference"), date_paid=body.get("DatePaid"),
                account=str(body.get("Account") or "1100"))

        payment_id = _mutate(call, record, pay)["ID"]
    row = next(r for r in sales.payment_rows(record.document()) if r["ID"] == payment_id)
    return json_response(row)


# path -> (allowed methods, handler)
ROUTES: dict[str, tuple[tuple[str, ...], Handler]] = {
    "me": (("GET",), _me),
    "sale": (("GET", "POST", "PUT", "DELETE"), _sale),
    "sale/order": (("GET", "POST"), _sale_order),
    "sale/fulfilment": (("GET", "POST", "DELETE"), _sale_fulfilment),
    "sale/fulfilment/pick": (("GET", "POST", "PUT"), _stage_handler("Pick")),
    "sale/fulfilment/pack": (("GET", "POST", "PUT"), _stage_handler("Pack")),
    "sale/fulfilment/ship": (("GET", "POST", "PUT"), _stage_handler("Ship")),
    "sale/invoice": (("GET", "POST", "PUT", "DELETE"), _sale_invoice),
    "sale/payment": (("GET", "POST", "PUT", "DELETE"), _sale_payment),
    **{path: (("GET",), _detail) for path in DETAIL_ENDPOINTS if path != "sale"},
}


# ---------------------------------------------------------------- the application


class SandboxApp:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.control: dict[str, Callable[[Request], Awaitable[Response]]] = {
            "sandbox/advance": self._advance,
            "sandbox/hard-delete": self._hard_delete,
            "sandbox/faults": self._faults,
            "sandbox/faults/next": self._faults_next,
            "sandbox/stats": self._stats,
            "sandbox/instances": self._instances,
        }

    async def handle(self, request: Request) -> Response:
        path = request.path_params.get("path", "").strip("/")
        lower = path.lower()
        if lower.startswith(API_PREFIX.rstrip("/")):
            response = await self.api(request, lower[len(API_PREFIX):].strip("/"))
            # The API's clock, as the real service sends it: the sandbox's virtual clock, not the host's.
            response.headers["date"] = formatdate(self.sandbox.clock.now_ms() / 1000, usegmt=True)
            return response
        if lower in self.control:
            try:
                return await self.control[lower](request)
            except (ValueError, KeyError, TypeError) as exc:
                return json_response({"error": str(exc)}, 400)
        return self.unknown()

    def unknown(self) -> Response:
        if self.sandbox.options.unknown_path == "404":
            return PlainTextResponse("Not Found", 404)
        return HTMLResponse(_HTML_PAGE, 200)

    async def api(self, request: Request, path: str) -> Response:
        sandbox, options = self.sandbox, self.sandbox.options
        app_key = request.headers.get("api-auth-applicationkey")
        store = sandbox.instance_for(request.headers.get("api-auth-accountid"), app_key)
        if store is None or app_key is None:
            return PlainTextResponse("Incorrect credentials!", 403)
        key = app_key.strip().lower()
        sandbox.calls[key] += 1
        decision = sandbox.limiter.hit(key)
        if not decision.allowed:
            sandbox.throttled[key] += 1
            return throttle_response(options.throttle_mode, options.rate_limit, options.rate_window_seconds,
                                     decision.retry_after_seconds)
        drawn = sandbox.faults.next_fault()
        fault = drawn.name if drawn else None
        if fault:
            sandbox.faults_served[fault] += 1
            early = await self._early_fault(fault, store, drawn.gap_seconds)
            if early is not None:
                return early
        params = {k.lower(): v for k, v in request.query_params.multi_items()}
        body: Any = None
        if request.method in ("POST", "PUT"):
            raw = await request.body()
            try:
                body = json.loads(raw) if raw.strip() else {}
            except ValueError:
                return error_model("Request body is not valid JSON")
        call = _Call(sandbox, store, request.method, path, params, body)
        try:
            response = self.dispatch(call, fault)
        except BadRequest as exc:
            response = error_model(str(exc))
        if fault == "truncated" and response.status_code == 200:
            cut = bytes(response.body)[: len(response.body) // 2]
            response = Response(cut, 200, media_type=response.media_type)
        if drawn is not None and drawn.name == "drip":
            response = drip_response(response, drawn.gap_seconds)
        return response

    async def _early_fault(self, fault: str, store: InstanceStore, seconds: float = 0.0) -> Response | None:
        """Faults that replace the response; the others change how the request is served."""
        options = self.sandbox.options
        if fault.startswith("throttle"):
            mode = fault.removeprefix("throttle") or options.throttle_mode
            window = options.rate_window_seconds
            return throttle_response(mode, options.rate_limit, window, max(1, round(window)))
        if fault == "error500":
            return error_model("An unexpected error occurred. Please try again later.", 500)
        if fault == "error503":
            return HTMLResponse(_OUTAGE_PAGE, 503)
        if fault == "error200":
            return json_response({"ErrorCode": 500, "Exception": "Object reference not set to an instance "
                                  "of an object."})
        if fault == "html200":
            return HTMLResponse(_HTML_PAGE, 200)
        if fault == "slow":
            await asyncio.sleep(options.slow_seconds)
        if fault == "hard_delete":
            hard_delete_drafts(store, 1, self.sandbox.control_rng)
        if fault == "proxy404":
            return PlainTextResponse("Not Found", 404)
        if fault == "empty200":
            return Response(b"", 200, media_type="application/json")
        if fault == "clock_step":
            self.sandbox.clock.step_back(int(seconds * 1000))
        return None

    def dispatch(self, call: _Call, fault: str | None = None) -> Response:
        endpoint = LIST_BY_PATH.get(call.path)
        if endpoint is not None:
            if call.method != "GET":
                return _not_allowed(call.method)
            if endpoint.paged:
                page_params(call.params)  # a bad Page/Limit is a 400 before any work
            records = self.sandbox.records(call.store, endpoint.collection)
            if fault == "future_stamp" and endpoint.cursor_field and records:
                ahead = call.store.now_ms() + 365 * DAY_MS
                with call.store.frozen_time(ahead):
                    self._bump(call.store, endpoint.collection, records, count=1)
                records = self.sandbox.records(call.store, endpoint.collection)
            matching = select(endpoint, records, call.params, self.sandbox.options.since_inclusive)
            if fault == "modify_during_paging" and endpoint.cursor_field and matching:
                self._bump(call.store, endpoint.collection, matching)
                matching = select(endpoint, records, call.params, self.sandbox.options.since_inclusive)
            if fault == "empty_page":
                matching = []
            return json_response(envelope(endpoint, matching, call.params))
        route = ROUTES.get(call.path)
        if route is None:
            return self.unknown()
        methods, handler = route
        if call.method not in methods:
            return _not_allowed(call.method)
        return handler(call)

    def _bump(self, store: InstanceStore, collection: str, matching: list[Any], count: int = 3) -> None:
        """Move a few matching records' modified stamps to now, as a concurrent user editing them would."""
        rng = self.sandbox.control_rng
        for record in rng.sample(matching, min(count, len(matching))):
            if isinstance(record, DocRecord) and record.kind == "sale":
                store.mutate_sale(record, lambda d: sales.touch(store, d))
            elif isinstance(record, DocRecord):
                doc = store.materialise(record)
                doc["LastUpdatedDate"] = fmt_stamp(store.now_ms())
                store.document_changed(record)
            else:
                store.touch_master(record, store.now_ms())

    # ------------------------------------------------------------ control endpoints

    @staticmethod
    async def _json(request: Request) -> dict[str, Any]:
        raw = await request.body()
        data = json.loads(raw) if raw.strip() else {}
        if not isinstance(data, dict):
            raise ValueError("body must be a JSON object")
        return data

    async def _advance(self, request: Request) -> Response:
        body = await self._json(request)
        return json_response(self.sandbox.advance(float(body.get("days", 1))))

    async def _hard_delete(self, request: Request) -> Response:
        body = await self._json(request)
        ids = self.sandbox.hard_delete(str(body.get("instance", "au")), int(body.get("count", 1)))
        return json_response({"instance": body.get("instance", "au"), "deleted": ids})

    async def _faults(self, request: Request) -> Response:
        body = await self._json(request)
        self.sandbox.faults.replace(str(body.get("spec", "")))
        return json_response({"spec": self.sandbox.faults.spec})

    async def _faults_next(self, request: Request) -> Response:
        body = await self._json(request)
        fault = str(body.get("fault", ""))
        if fault not in FAULT_NAMES:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULT_NAMES)}")
        gap = body.get("gap")
        self.sandbox.faults.force(fault, int(body.get("count", 1)), None if gap is None else float(gap))
        answer: dict[str, Any] = {"forced": fault, "count": int(body.get("count", 1))}
        if gap is not None:
            answer["gap"] = float(gap)
        return json_response(answer)

    async def _stats(self, request: Request) -> Response:
        return json_response(self.sandbox.stats())

    async def _instances(self, request: Request) -> Response:
        return json_response([
            {"key": i.key, "company": i.company, "currency": i.currency, "timezone": i.timezone,
             "account_id": i.account_id, "application_keys": list(i.application_keys)}
            for i in self.sandbox.instances
        ])


def _not_allowed(method: str) -> Response:
    return json_response({"Message": f"The requested resource does not support http method '{method}'."}, 405)


def create_app(options: SandboxOptions) -> Starlette:
    """The sandbox as an ASGI app; `app.state.sandbox` is the live state (handy in tests)."""
    sandbox = Sandbox(options)
    handler = SandboxApp(sandbox)
    app = Starlette(routes=[Route("/{path:path}", handler.handle, methods=_METHODS)])
    app.state.sandbox = sandbox
    return app
