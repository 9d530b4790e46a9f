"""The Shopify sandbox as a Starlette app: the REST Admin endpoints the platform uses, for several shops at once.

Admin API, per shop (point `ShopifyClient` at `{root}/shops/{shop}`):

- `GET  /shops/{shop}/admin/api/{version}/orders.json?name=%231001&status=any` (also `ids`, `limit`)
- `GET  /shops/{shop}/admin/api/{version}/orders/{id}.json`
- `GET  /shops/{shop}/admin/api/{version}/orders/{id}/fulfillment_orders.json`
- `GET  /shops/{shop}/admin/api/{version}/orders/{id}/fulfillments.json`
- `POST /shops/{shop}/admin/api/{version}/fulfillments.json`

Every Admin request needs `X-Shopify-Access-Token` (401 otherwise), takes a slot of the shop's leaky bucket
(`X-Shopify-Shop-Api-Call-Limit: used/size` on every reply, 429 with `Retry-After` when full). Shops installed
without the fulfillment scopes answer 404 on the fulfillment endpoints.

Control, no token, not rate limited:

- `POST /sandbox/shops` `{shop, access_token, fulfillment_scopes?}`; `GET /sandbox/shops`
- `POST /sandbox/orders` `{shop?, name?, email?, closed?, line_items: [{sku, quantity, title?, price?, location?}]}`
  → `{"order": {..., "fulfillment_order_ids": [...]}}`; `GET /sandbox/orders?shop=` every order with its
  fulfillment orders and fulfillments
- `POST /sandbox/faults` `{fault, count?, shop?, method?, path?}` or `{"faults": [...]}` of those (or of names):
  the next matching Admin requests meet `429`, `500`, `502`, `503`, `drop` (served, then the connection is cut
  mid-reply) or `slow` (held `slow_seconds`); `GET /sandbox/faults` lists the pending ones
- `POST /sandbox/bucket` `{shop?, level}`: set how full a shop's bucket is
- `GET /sandbox/stats`: requests per endpoint and shop, throttles, faults served, bucket levels
- `POST /sandbox/reset`: back to the configured shops with no orders, faults or counts
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .state import INVALID_TOKEN, SandboxHttpError, ShopifySandbox, ShopifySandboxOptions

CALL_LIMIT_HEADER = "X-Shopify-Shop-Api-Call-Limit"
TOKEN_HEADER = "X-Shopify-Access-Token"
_VERSION = re.compile(r"^(\d{4}-(0[1-9]|1[0-2])|unstable)$")
_ORDER = re.compile(r"^orders/(\d+)\.json$")
_ORDER_CHILD = re.compile(r"^orders/(\d+)/(fulfillment_orders|fulfillments)\.json$")
_THROTTLED = "Exceeded {rate:g} calls per second for api client. Reduce request rates to resume uninterrupted service."


class _DroppedConnection(Exception):
    """Raised mid-reply on purpose: uvicorn then closes the connection, which is the fault wanted."""


class _DropFilter(logging.Filter):
    # uvicorn logs every failed ASGI call with a traceback; a deliberate drop is not worth one.
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _DroppedConnection))


def _install_drop_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(existing, _DropFilter) for existing in logger.filters):
        logger.addFilter(_DropFilter())


class _DroppedReply:
    """Sends the status, the headers (with the full Content-Length) and half the body, then cuts the line."""

    def __init__(self, inner: Response) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = bytes(self.inner.body)
        await send({"type": "http.response.start", "status": self.inner.status_code, "headers": self.inner.raw_headers})
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        raise _DroppedConnection("Shopify sandbox fault: connection dropped mid-reply")


def _errors(status: int, errors: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"errors": errors}, status_code=status, headers=headers)


def _control_error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _endpoint(method: str, path: str) -> str:
    return f"{method} " + re.sub(r"(?<=/)\d+(?=[/.])", "{id}", path)


def create_app(options: ShopifySandboxOptions | None = None) -> Starlette:
    sandbox = ShopifySandbox(options)
    _install_drop_filter()

    def dispatch(shop: str, method: str, path: str, params: dict[str, str], body: Any) -> tuple[int, Any]:
        state = sandbox.shops[shop]
        if method == "GET" and path == "orders.json":
            return 200, {"orders": sandbox.list_orders(shop, params)}
        match = _ORDER.match(path)
        if method == "GET" and match:
            return 200, {"order": sandbox.get_order(shop, int(match.group(1)))}
        child = _ORDER_CHILD.match(path)
        fulfillment_path = bool(child) or path == "fulfillments.json"
        if fulfillment_path and not state.fulfillment_scopes:
            raise SandboxHttpError(404, "Not Found")  # what Shopify answers an app without the scopes
        if method == "GET" and child:
            order_id, kind = int(child.group(1)), child.group(2)
            if kind == "fulfillment_orders":
                return 200, {"fulfillment_orders": sandbox.fulfillment_orders(shop, order_id)}
            return 200, {"fulfillments": sandbox.fulfillments(shop, order_id)}
        if method == "POST" and path == "fulfillments.json":
            return 201, {"fulfillment": sandbox.create_fulfillment(shop, body)}
        if path == "orders.json" or match or child or path == "fulfillments.json":
            raise SandboxHttpError(406, "Not Acceptable")  # a known path with the wrong method
        raise SandboxHttpError(404, "Not Found")

    async def admin(request: Request) -> Response | _DroppedReply:
        shop, version, path = (request.path_params[key] for key in ("shop", "version", "path"))
        method = request.method
        raw = await request.body()  # read now: once a `slow` client has hung up the body can no longer be read
        sandbox.count(shop, _endpoint(method, path))
        fault = sandbox.take_fault(shop, method, path)
        size = sandbox.options.bucket_size
        if fault == "429":
            retry = sandbox.options.retry_after_seconds
            return _errors(
                429,
                _THROTTLED.format(rate=sandbox.options.leak_per_second),
                {"Retry-After": str(float(1.0 if retry is None else retry)), CALL_LIMIT_HEADER: f"{size}/{size}"},
            )
        if fault in ("500", "502", "503"):
            return _errors(int(fault), "Internal Server Error" if fault == "500" else "Service Unavailable")
        if fault == "slow":
            await asyncio.sleep(sandbox.options.slow_seconds)

        state = sandbox.shops.get(shop)
        if state is None or not _VERSION.match(version):
            return _errors(404, "Not Found")
        if request.headers.get(TOKEN_HEADER) != state.token:
            sandbox.note_unauthorised()
            return _errors(401, INVALID_TOKEN)
        accepted, used, wait = sandbox.take_slot(state)
        headers = {CALL_LIMIT_HEADER: f"{used}/{size}", "X-Shopify-API-Version": version}
        if not accepted:
            return _errors(
                429,
                _THROTTLED.format(rate=sandbox.options.leak_per_second),
                {**headers, "Retry-After": str(float(round(wait, 3)))},
            )
        body: Any = None
        if method == "POST":
            try:
                body = json.loads(raw) if raw.strip() else None
            except ValueError:
                return _errors(400, "Bad Request: the body is not valid JSON", headers)
        try:
            status, payload = dispatch(shop, method, path, dict(request.query_params), body)
        except SandboxHttpError as exc:
            return _errors(exc.status, exc.errors, headers)
        response = JSONResponse(payload, status_code=status, headers=headers)
        return _DroppedReply(response) if fault == "drop" else response

    # -- control ----------------------------------------------------------------------------------------

    async def _json_body(request: Request) -> Any:
        raw = await request.body()
        return json.loads(raw) if raw.strip() else {}

    def _shop_of(body: dict) -> str:
        shop = body.get("shop")
        if shop is None:
            if len(sandbox.shops) != 1:
                raise ValueError(f"shop: name one of {sorted(sandbox.shops)}")
            return next(iter(sandbox.shops))
        if shop not in sandbox.shops:
            raise ValueError(f"shop: no sandbox shop {shop!r}; shops: {sorted(sandbox.shops)}")
        return shop

    async def control(request: Request) -> Response:
        action = request.path_params["action"]
        try:
            body = await _json_body(request) if request.method == "POST" else {}
        except ValueError:
            return _control_error("the body is not valid JSON")
        if not isinstance(body, dict):
            return _control_error("the body must be a JSON object")
        try:
            if action == "orders" and request.method == "POST":
                order = sandbox.create_order(
                    _shop_of(body),
                    body.get("line_items"),
                    name=body.get("name"),
                    email=body.get("email"),
                    currency=str(body.get("currency") or "USD"),
                    closed=bool(body.get("closed", False)),
                )
                return JSONResponse({"order": order}, status_code=201)
            if action == "orders":
                return JSONResponse({"orders": sandbox.snapshot(request.query_params.get("shop"))})
            if action == "shops" and request.method == "POST":
                shop = sandbox.add_shop(
                    str(body.get("shop") or ""),
                    str(body.get("access_token") or ""),
                    fulfillment_scopes=bool(body.get("fulfillment_scopes", True)),
                )
                return JSONResponse({"shop": shop.handle, "path": f"/shops/{shop.handle}"}, status_code=201)
            if action == "shops":
                return JSONResponse(
                    {
                        "shops": [
                            {"shop": handle, "path": f"/shops/{handle}", "fulfillment_scopes": state.fulfillment_scopes}
                            for handle, state in sandbox.shops.items()
                        ]
                    }
                )
            if action == "faults" and request.method == "POST":
                entries = body.get("faults", [body])
                if not isinstance(entries, list):
                    raise ValueError("faults: give a list")
                for entry in entries:
                    spec = {"fault": entry} if isinstance(entry, str) else entry
                    if not isinstance(spec, dict) or "fault" not in spec:
                        raise ValueError(f"fault entry {entry!r}: expected a name or {{fault, count?, ...}}")
                    sandbox.inject(
                        str(spec["fault"]),
                        spec.get("count", 1),
                        shop=spec.get("shop"),
                        method=spec.get("method"),
                        path=spec.get("path"),
                    )
                return JSONResponse({"pending": sandbox.stats()["faults_pending"]})
            if action == "faults":
                return JSONResponse({"pending": sandbox.stats()["faults_pending"]})
            if action == "bucket" and request.method == "POST":
                level = body.get("level")
                if isinstance(level, bool) or not isinstance(level, (int, float)):
                    raise ValueError("level: a number of used slots is required")
                shop = _shop_of(body)
                used = sandbox.fill_bucket(shop, float(level))
                return JSONResponse({"shop": shop, "used": used, "size": sandbox.options.bucket_size})
            if action == "stats":
                return JSONResponse(sandbox.stats())
            if action == "reset" and request.method == "POST":
                sandbox.reset()
                return JSONResponse({"reset": True})
        except ValueError as exc:
            return _control_error(str(exc))
        return _control_error(f"no control endpoint {request.method} /sandbox/{action}", 404)

    app = Starlette(
        routes=[
            Route("/shops/{shop}/admin/api/{version}/{path:path}", admin, methods=["GET", "POST", "PUT", "DELETE"]),
            Route("/sandbox/{action}", control, methods=["GET", "POST"]),
        ]
    )
    app.state.sandbox = sandbox
    return app
