"""The one client for the Shopify Admin REST API: find the order a Cin7 Core sale came from, post its tracking.

Facts it relies on (reference/analytics_exports.md §5.2):

- Requests carry `X-Shopify-Access-Token`; paths are `/admin/api/{version}/...` under the shop's domain.
- Tracking is posted as a fulfillment of the order's *fulfillment orders* (one per location group):
  `GET orders/{id}/fulfillment_orders.json`, then `POST fulfillments.json` with
  `line_items_by_fulfillment_order` (leave out the line items to fulfil a whole fulfillment order) and
  `tracking_info {number, url, company}`. A fulfillment holds **one** tracking number.
- Fulfillment-order line items do not carry the SKU: they point at the order line (`line_item_id`), which does.
  `quantity` is the line's total, `fulfillable_quantity` what remains to fulfil.
- Rate limit: a leaky bucket per app and store (40 requests, leaking 2/s on Standard plans), reported on every
  reply as `X-Shopify-Shop-Api-Call-Limit: used/limit`; a full bucket answers 429 with `Retry-After` seconds.
- A 404 on the fulfillment endpoints often means the app lacks the fulfillment-order access scopes.

Retry policy: GETs are retried through 429 (waiting `Retry-After`), 5xx, timeouts and dropped connections. A POST
is repeated only when Shopify surely did not act on it (429, connection refused); any other failure of a POST
raises an error with `ambiguous=True`, because repeating it blind could fulfil twice. `post_tracking` handles
that by reading the order's fulfillments again before trying once more: the outbox rule "read the outside
system's state first".

The client is not thread-safe (one per run or sensor tick). The access token is never logged nor put in an error.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

import httpx

from gp_pipelines.connectors.http import http_client

log = logging.getLogger(__name__)

DEFAULT_API_VERSION = "2025-01"
TOKEN_HEADER = "X-Shopify-Access-Token"
CALL_LIMIT_HEADER = "X-Shopify-Shop-Api-Call-Limit"
STANDARD_LEAK_PER_SECOND = 2.0
OPEN_FULFILLMENT_ORDER_STATUSES = ("open", "in_progress")
_DEAD_FULFILLMENT_STATUSES = ("cancelled", "error", "failure")
_API_VERSION = re.compile(r"^(\d{4}-(0[1-9]|1[0-2])|unstable)$")
_SCOPE_HINT = (
    "on fulfillment endpoints a 404 often means the app lacks the fulfillment-order access scopes "
    "(read/write_merchant_managed_fulfillment_orders, read/write_assigned_fulfillment_orders); "
    "grant them and reinstall the app"
)


# -- errors -------------------------------------------------------------------------------------------------


class ShopifyError(RuntimeError):
    """A Shopify call failed. `ambiguous` is True when Shopify may have acted although no reply came back;
    `timed_out` when the reply was waited for in vain (Shopify may still be working on the request)."""

    def __init__(
        self,
        message: str,
        *,
        shop: str = "",
        endpoint: str = "",
        status: int | None = None,
        ambiguous: bool = False,
        timed_out: bool = False,
    ) -> None:
        self.shop = shop
        self.endpoint = endpoint
        self.status = status
        self.ambiguous = ambiguous
        self.timed_out = timed_out
        where = " ".join(part for part in (f"Shopify {shop}" if shop else "Shopify", endpoint) if part)
        super().__init__(f"{where}: {message}")


class ShopifyAuthError(ShopifyError):
    """401 (token rejected) or 403 (a scope or permission is missing): fix the credentials, do not retry."""


class ShopifyNotFound(ShopifyError):
    """404, or an order the caller asked for does not exist in the shop."""


class ShopifyValidationError(ShopifyError):
    """400/422: Shopify refused the request; `errors` holds its error body."""

    def __init__(self, message: str, *, errors: Any = None, **where: Any) -> None:
        self.errors = errors
        super().__init__(message, **where)


class ShopifyThrottledError(ShopifyError):
    """Still throttled (429) after every attempt."""


class ShopifyServerError(ShopifyError):
    """5xx, timeout or dropped connection, after the retries allowed."""


class ShopifyResponseError(ShopifyError):
    """A reply that is not the JSON expected (wrong shop_url, a proxy page, a truncated body)."""


class ShopifyFulfillmentError(ShopifyError):
    """The fulfillment asked for does not fit the order (unknown SKU, more than remains, bad quantity)."""


class ShopifyAlreadyFulfilled(ShopifyFulfillmentError):
    """Nothing asked for remains open on the order (fulfilled by someone else, e.g. by hand in Shopify)."""


# -- stats and helpers --------------------------------------------------------------------------------------


@dataclass
class ShopifyCallStats:
    """What the calls cost: shown as Dagster metadata."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0  # 429 replies received
    paced: int = 0  # waits taken because the bucket was nearly full
    seconds_waited: float = 0.0
    fulfillments_created: int = 0
    fulfillments_reused: int = 0  # post_tracking found its tracking number already posted
    by_endpoint: dict[str, int] = field(default_factory=dict)

    def as_metadata(self) -> dict[str, float | int]:
        return {
            "shopify_requests": self.requests,
            "shopify_retries": self.retries,
            "shopify_throttled": self.throttled,
            "shopify_paced": self.paced,
            "shopify_seconds_waited": round(self.seconds_waited, 2),
            "shopify_fulfillments_created": self.fulfillments_created,
            "shopify_fulfillments_reused": self.fulfillments_reused,
        }


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After: 2.0` → 2.0; None when absent or unreadable."""
    if not value:
        return None
    match = re.search(r"\d+(\.\d+)?", value)
    return float(match.group()) if match else None


def parse_call_limit(value: str | None) -> tuple[int, int] | None:
    """`X-Shopify-Shop-Api-Call-Limit: 32/40` → (32, 40); None when absent or malformed."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", value or "")
    if not match or int(match.group(2)) <= 0:
        return None
    return int(match.group(1)), int(match.group(2))


def normalise_shop_url(shop_url: str) -> str:
    """`acme.myshopify.com`, `https://acme.myshopify.com/` or a sandbox URL → the URL without a trailing slash."""
    text = (shop_url or "").strip().rstrip("/")
    if not text:
        raise ValueError("shop_url is empty: give https://<shop>.myshopify.com (or the sandbox shop URL)")
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"shop_url {shop_url!r} is not an http(s) URL such as https://<shop>.myshopify.com")
    if parts.query or parts.fragment:
        raise ValueError(f"shop_url {shop_url!r} must not carry a query or fragment")
    return text


def _error_text(body: Any) -> str:
    """Shopify's error bodies: `{"errors": "..."}`, `{"errors": [...]}`, `{"errors": {"field": [...]}}`."""
    errors = body.get("errors", body.get("error")) if isinstance(body, dict) else body
    if isinstance(errors, dict):
        parts = []
        for key, value in errors.items():
            items = value if isinstance(value, list) else [value]
            parts.append(f"{key}: {'; '.join(str(item) for item in items)}")
        text = "; ".join(parts)
    elif isinstance(errors, list):
        text = "; ".join(str(item) for item in errors)
    else:
        text = str(errors) if errors is not None else ""
    return text[:500]


def _whole_quantity(sku: str, quantity: Any, where: str) -> int:
    try:
        value = Decimal(str(quantity))
    except InvalidOperation:
        raise ShopifyFulfillmentError(f"{where}: quantity {quantity!r} for SKU {sku!r} is not a number") from None
    if not value.is_finite() or value < 0 or value != value.to_integral_value():
        raise ShopifyFulfillmentError(
            f"{where}: quantity {quantity!r} for SKU {sku!r} must be a whole number of units, zero or more"
        )
    return int(value)


def units_wanted(lines_by_sku: Mapping[str, Decimal | int], where: str = "lines_by_sku") -> dict[str, int]:
    """SKU → whole units, SKUs stripped and merged, zeros dropped; a bad SKU or quantity raises naming it."""
    wanted: dict[str, int] = {}
    for sku, quantity in lines_by_sku.items():
        key = str(sku).strip()
        if not key:
            raise ShopifyFulfillmentError(f"{where}: lines_by_sku holds an empty SKU")
        units = _whole_quantity(key, quantity, where)
        if units:
            wanted[key] = wanted.get(key, 0) + units
    return wanted


def plan_fulfillment(
    order: Mapping[str, Any],
    fulfillment_orders: Sequence[Mapping[str, Any]],
    lines_by_sku: Mapping[str, Decimal | int] | None,
) -> list[dict[str, Any]]:
    """The `line_items_by_fulfillment_order` for fulfilling `lines_by_sku` (SKU → units) of `order`, or every
    open fulfillment order when it is None. Units are taken from the open fulfillment orders in Shopify's order.
    Raises ShopifyFulfillmentError when a SKU is not on the order or more is asked than remains open, and
    ShopifyAlreadyFulfilled when nothing asked for remains open at all."""
    where = f"order {order.get('name') or order.get('id')}"
    open_orders = [fo for fo in fulfillment_orders if fo.get("status") in OPEN_FULFILLMENT_ORDER_STATUSES]
    if lines_by_sku is None:
        plan = [
            {"fulfillment_order_id": fo["id"]}
            for fo in open_orders
            if any(int(line.get("fulfillable_quantity") or 0) > 0 for line in fo.get("line_items", []))
        ]
        if not plan:
            raise ShopifyAlreadyFulfilled(f"{where} has no open fulfillment order left to fulfil")
        return plan

    wanted = units_wanted(lines_by_sku, where)
    if not wanted:
        raise ShopifyFulfillmentError(f"{where}: lines_by_sku asks for no units")

    sku_by_line = {line["id"]: (line.get("sku") or "").strip() for line in order.get("line_items", [])}
    unknown = sorted(set(wanted) - set(sku_by_line.values()))
    if unknown:
        known = sorted({sku for sku in sku_by_line.values() if sku})
        raise ShopifyFulfillmentError(f"{where}: SKU {', '.join(unknown)} not on the order (its SKUs: {known})")

    remaining = dict(wanted)
    plan = []
    for fo in open_orders:
        items = []
        for line in fo.get("line_items", []):
            sku = sku_by_line.get(line.get("line_item_id"), "")
            take = min(remaining.get(sku, 0), int(line.get("fulfillable_quantity") or 0))
            if take > 0:
                items.append({"id": line["id"], "quantity": take})
                remaining[sku] -= take
        if items:
            plan.append({"fulfillment_order_id": fo["id"], "fulfillment_order_line_items": items})
    short = {sku: units for sku, units in remaining.items() if units > 0}
    if not short:
        return plan
    if not plan:
        raise ShopifyAlreadyFulfilled(f"{where}: nothing of SKU {', '.join(sorted(short))} remains open to fulfil")
    detail = ", ".join(f"{sku}: asked {wanted[sku]}, open {wanted[sku] - gap}" for sku, gap in sorted(short.items()))
    raise ShopifyFulfillmentError(f"{where}: asked to fulfil more than remains open ({detail})")


def fulfillments_with_tracking(fulfillments: Sequence[Mapping[str, Any]], tracking_number: str) -> list[dict]:
    """The live fulfillments carrying `tracking_number` (compared without case or surrounding spaces)."""
    target = tracking_number.strip().casefold()
    found = []
    for fulfillment in fulfillments:
        if fulfillment.get("status") in _DEAD_FULFILLMENT_STATUSES:
            continue
        numbers = [*(fulfillment.get("tracking_numbers") or []), fulfillment.get("tracking_number")]
        if any(number and str(number).strip().casefold() == target for number in numbers):
            found.append(dict(fulfillment))
    return found


def units_by_sku(fulfillments: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """SKU → units the fulfillments hold (their `line_items` carry the SKU and the quantity fulfilled)."""
    units: dict[str, int] = {}
    for fulfillment in fulfillments:
        for line in fulfillment.get("line_items", []):
            sku = (line.get("sku") or "").strip()
            units[sku] = units.get(sku, 0) + int(line.get("quantity") or 0)
    return units


def group_by_location(
    plan: Sequence[Mapping[str, Any]], fulfillment_orders: Sequence[Mapping[str, Any]]
) -> dict[Any, list[dict]]:
    """The plan split by the fulfillment orders' assigned location: Shopify takes one location per fulfillment."""
    location_of = {fo["id"]: fo.get("assigned_location_id") for fo in fulfillment_orders}
    groups: dict[Any, list[dict]] = {}
    for entry in plan:
        groups.setdefault(location_of.get(entry["fulfillment_order_id"]), []).append(dict(entry))
    return groups


# -- the client ---------------------------------------------------------------------------------------------


class ShopifyClient:
    """Calls one Shopify store's Admin REST API.

    `name` labels the store in errors and logs (default: the shop host); `token_source` says where the token came
    from (e.g. "environment variable SHOPIFY_TOKEN_MAIN") so an auth error can point there without showing it.
    `leak_per_second` is the store plan's leak rate (2 Standard, 4 Advanced, 20 Plus); requests are paced so the
    bucket keeps `bucket_reserve` slots free. `max_wait` caps any single wait (Retry-After, backoff). `timeout`
    bounds each network operation, `deadline` each whole HTTP request (a reply dribbled byte by byte).
    """

    def __init__(
        self,
        shop_url: str,
        access_token: str,
        api_version: str = DEFAULT_API_VERSION,
        *,
        name: str = "",
        token_source: str = "",
        timeout: float = 30.0,
        deadline: float = 60.0,
        max_attempts: int = 6,
        max_wait: float = 60.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        leak_per_second: float = STANDARD_LEAK_PER_SECOND,
        bucket_reserve: int = 4,
        pace: bool = True,
        sleep: Callable[[float], None] = time.sleep,
        http: httpx.Client | None = None,
    ) -> None:
        self.shop_url = normalise_shop_url(shop_url)
        host = self.shop_url.split("://", 1)[1]
        self.shop = f"{name} ({host})" if name else host
        if not access_token or not access_token.strip():
            raise ShopifyAuthError(
                f"no access token given{f' ({token_source})' if token_source else ''}", shop=self.shop
            )
        if not _API_VERSION.match(api_version or ""):
            raise ValueError(f"Shopify {self.shop}: api_version {api_version!r} is not like 2025-01 (or 'unstable')")
        if max_attempts < 1 or leak_per_second <= 0 or bucket_reserve < 0 or max_wait < 0:
            raise ValueError(
                f"Shopify {self.shop}: max_attempts ≥ 1, leak_per_second > 0, bucket_reserve ≥ 0 "
                "and max_wait ≥ 0 are required"
            )
        self.api_version = api_version
        self.timeout = timeout
        self.token_source = token_source
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.leak_per_second = leak_per_second
        self.bucket_reserve = bucket_reserve
        self.pace = pace
        self.stats = ShopifyCallStats()
        self._base = f"{self.shop_url}/admin/api/{api_version}/"
        self._token = access_token.strip()
        self._sleep = sleep
        self._http = http or http_client(timeout=timeout, deadline=deadline)
        self._owns_http = http is None
        self._bucket: tuple[float, int, float] | None = None  # (used, limit, monotonic time seen)

    def __repr__(self) -> str:  # never the token
        return f"ShopifyClient({self.shop_url!r}, api_version={self.api_version!r})"

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> ShopifyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- pacing and waiting ---------------------------------------------------------------------------------

    def _wait(self, seconds: float) -> None:
        seconds = min(max(0.0, seconds), self.max_wait)
        if seconds > 0:
            self.stats.seconds_waited += seconds
            self._sleep(seconds)

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))

    def bucket_estimate(self) -> tuple[float, int] | None:
        """(requests in the bucket now, bucket size) as last reported by Shopify, minus what has leaked since."""
        if self._bucket is None:
            return None
        used, limit, seen_at = self._bucket
        return max(0.0, used - (time.monotonic() - seen_at) * self.leak_per_second), limit

    def _pace_before_request(self) -> None:
        estimate = self.bucket_estimate() if self.pace else None
        if estimate is None:
            return
        used, limit = estimate
        ceiling = max(1, limit - self.bucket_reserve)
        if used + 1 > ceiling:
            # Wait until this request fits under the ceiling; other processes of the app share the bucket.
            self.stats.paced += 1
            self._wait((used + 1 - ceiling) / self.leak_per_second)

    def _note_call_limit(self, response: httpx.Response) -> None:
        reported = parse_call_limit(response.headers.get(CALL_LIMIT_HEADER))
        if reported is not None:
            self._bucket = (float(reported[0]), reported[1], time.monotonic())

    # -- requests -------------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> Any:
        """One logical call to `{shop}/admin/api/{version}/{path}`; returns the parsed JSON reply.

        GETs are retried through throttles and faults; a POST only where Shopify surely did not act (see the
        module notes). 401/403 raise ShopifyAuthError, 404 ShopifyNotFound, 400/422 ShopifyValidationError."""
        method = method.upper()
        path = path.lstrip("/")
        endpoint = f"{method} {path.split('?', 1)[0]}"
        repeatable = method in ("GET", "HEAD")
        headers = {TOKEN_HEADER: self._token, "Accept": "application/json"}
        problem: tuple[type[ShopifyError], str, int | None] = (ShopifyError, "no attempt made", None)
        for attempt in range(1, self.max_attempts + 1):
            if attempt > 1:
                self.stats.retries += 1
            self._pace_before_request()
            self.stats.requests += 1
            self.stats.by_endpoint[endpoint] = self.stats.by_endpoint.get(endpoint, 0) + 1
            try:
                response = self._http.request(method, self._base + path, params=params, json=body, headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # The request never reached Shopify, so repeating it is safe whatever the method.
                problem = (ShopifyServerError, f"could not connect ({type(exc).__name__}: {exc})", None)
                self._wait(self._backoff(attempt))
                continue
            except httpx.TransportError as exc:
                problem = (ShopifyServerError, f"no complete reply ({type(exc).__name__}: {exc})", None)
                if not repeatable:
                    raise ShopifyServerError(
                        problem[1],
                        shop=self.shop,
                        endpoint=endpoint,
                        ambiguous=True,
                        timed_out=isinstance(exc, httpx.TimeoutException),
                    ) from None
                self._wait(self._backoff(attempt))
                continue

            status = response.status_code
            if status == 429:
                # Throttled requests are not processed, so any method may be repeated after Retry-After.
                self.stats.throttled += 1
                self._bucket = None  # Retry-After is the authority now; the next reply reports the bucket again
                wait = parse_retry_after(response.headers.get("Retry-After"))
                problem = (ShopifyThrottledError, "throttled (HTTP 429)", 429)
                log.info("Shopify %s %s throttled; waiting %.2fs", self.shop, endpoint, 1.0 if wait is None else wait)
                self._wait(1.0 if wait is None else wait)
                continue
            self._note_call_limit(response)
            if status >= 500:
                detail = _error_text(_json_or_none(response)) or response.reason_phrase
                problem = (ShopifyServerError, f"HTTP {status} ({detail})", status)
                if not repeatable:
                    raise ShopifyServerError(
                        problem[1], shop=self.shop, endpoint=endpoint, status=status, ambiguous=True
                    )
                self._wait(self._backoff(attempt))
                continue
            if status >= 400:
                raise self._client_error(response, endpoint)
            try:
                return response.json()
            except ValueError:
                kind = response.headers.get("content-type", "no content type")
                problem = (
                    ShopifyResponseError,
                    f"HTTP {status} with a body that is not JSON ({kind}); is shop_url "
                    "the shop's admin domain (https://<shop>.myshopify.com)?",
                    status,
                )
                if not repeatable:
                    raise ShopifyResponseError(
                        problem[1], shop=self.shop, endpoint=endpoint, status=status, ambiguous=True
                    ) from None
                self._wait(self._backoff(attempt))
        kind, message, status = problem
        raise kind(
            f"{message}; gave up after {self.max_attempts} attempts", shop=self.shop, endpoint=endpoint, status=status
        )

    def _client_error(self, response: httpx.Response, endpoint: str) -> ShopifyError:
        status = response.status_code
        detail = _error_text(_json_or_none(response)) or response.reason_phrase
        where = {"shop": self.shop, "endpoint": endpoint, "status": status}
        if status == 401:
            check = self.token_source or "the store's access token"
            return ShopifyAuthError(f"HTTP 401: the access token was rejected ({detail}); check {check}", **where)
        if status == 403:
            return ShopifyAuthError(
                f"HTTP 403: the app is not allowed to do this ({detail}); grant the access "
                "scope it names and reinstall the app",
                **where,
            )
        if status == 404:
            hint = f"; {_SCOPE_HINT}" if "fulfillment" in endpoint else ""
            return ShopifyNotFound(f"HTTP 404: not found ({detail}){hint}", **where)
        if status in (400, 422):
            return ShopifyValidationError(
                f"HTTP {status}: Shopify refused the request: {detail}", errors=_json_or_none(response), **where
            )
        if status == 402:
            return ShopifyError(f"HTTP 402: the shop is frozen (its Shopify bill is unpaid): {detail}", **where)
        if status == 423:
            return ShopifyError(f"HTTP 423: the shop is locked: {detail}", **where)
        return ShopifyError(f"HTTP {status}: {detail}", **where)

    def _get(self, path: str, key: str, params: Mapping[str, Any] | None = None) -> Any:
        reply = self.request("GET", path, params=params)
        if not isinstance(reply, dict) or key not in reply:
            raise ShopifyResponseError(f"the reply has no {key!r}", shop=self.shop, endpoint=f"GET {path}")
        return reply[key]

    # -- resources ------------------------------------------------------------------------------------------

    def find_order(self, external_id: str | int) -> dict | None:
        """The order a Cin7 Core sale's `ExternalID` names: a numeric order id, or an order name such as `#1042`.

        A bare number that is not an order id is tried as the order name `#<number>`. None when no order matches.
        """
        text = str(external_id).strip()
        if not text:
            raise ValueError(f"Shopify {self.shop}: find_order needs an order id or name; the ExternalID is empty")
        if text.isdigit():
            try:
                return self._get(f"orders/{text}.json", "order")
            except ShopifyNotFound:
                pass
            name = f"#{text}"
        else:
            name = text
        # status=any: without it Shopify lists only open orders, and a shipped order may be archived already.
        orders = self._get("orders.json", "orders", params={"name": name, "status": "any"})
        matches = [order for order in orders if str(order.get("name", "")).strip().casefold() == name.casefold()]
        if len(matches) > 1:
            ids = [order.get("id") for order in matches]
            raise ShopifyError(
                f"{len(matches)} orders are named {name!r} (ids {ids}); use the order id",
                shop=self.shop,
                endpoint="GET orders.json",
            )
        return matches[0] if matches else None

    def fulfillment_orders(self, order_id: int | str) -> list[dict]:
        return self._get(f"orders/{order_id}/fulfillment_orders.json", "fulfillment_orders")

    def fulfillments(self, order_id: int | str) -> list[dict]:
        return self._get(f"orders/{order_id}/fulfillments.json", "fulfillments", params={"limit": 250})

    def create_fulfillment(
        self,
        fulfillment_order_lines: Sequence[Mapping[str, Any]],
        tracking_number: str | None,
        tracking_url: str | None = None,
        tracking_company: str | None = None,
        notify_customer: bool = False,
    ) -> dict:
        """POST one fulfillment with (at most) one tracking number. Each entry of `fulfillment_order_lines` is
        `{fulfillment_order_id, fulfillment_order_line_items?: [{id, quantity}]}`; without line items the whole
        fulfillment order is fulfilled. Not repeated blind: a lost reply raises with `ambiguous=True`."""
        if not fulfillment_order_lines:
            raise ValueError(f"Shopify {self.shop}: create_fulfillment needs at least one fulfillment order")
        groups = []
        for index, entry in enumerate(fulfillment_order_lines):
            if "fulfillment_order_id" not in entry:
                raise ValueError(f"Shopify {self.shop}: fulfillment_order_lines[{index}] has no fulfillment_order_id")
            group: dict[str, Any] = {"fulfillment_order_id": entry["fulfillment_order_id"]}
            if entry.get("fulfillment_order_line_items"):
                group["fulfillment_order_line_items"] = [
                    {"id": item["id"], "quantity": int(item["quantity"])}
                    for item in entry["fulfillment_order_line_items"]
                ]
            groups.append(group)
        fulfillment: dict[str, Any] = {"line_items_by_fulfillment_order": groups, "notify_customer": notify_customer}
        tracking = {"number": tracking_number, "url": tracking_url, "company": tracking_company}
        tracking = {key: value for key, value in tracking.items() if value}
        if tracking:
            fulfillment["tracking_info"] = tracking
        reply = self.request("POST", "fulfillments.json", body={"fulfillment": fulfillment})
        if not isinstance(reply, dict) or not isinstance(reply.get("fulfillment"), dict):
            raise ShopifyResponseError(
                "the reply has no 'fulfillment'", shop=self.shop, endpoint="POST fulfillments.json", ambiguous=True
            )
        self.stats.fulfillments_created += 1
        return reply["fulfillment"]

    def post_tracking(
        self,
        external_id: str | int,
        lines_by_sku: Mapping[str, Decimal | int] | None,
        tracking_number: str,
        tracking_url: str | None = None,
        company: str | None = None,
        *,
        notify_customer: bool = False,
    ) -> dict:
        """Post a shipment's tracking to the order `external_id` names; returns the Shopify fulfillment (the
        first one when the units sit at several Shopify locations, see `post_tracking_fulfillments`)."""
        return self.post_tracking_fulfillments(
            external_id, lines_by_sku, tracking_number, tracking_url, company, notify_customer=notify_customer
        )[0]

    def post_tracking_fulfillments(
        self,
        external_id: str | int,
        lines_by_sku: Mapping[str, Decimal | int] | None,
        tracking_number: str,
        tracking_url: str | None = None,
        company: str | None = None,
        *,
        notify_customer: bool = False,
    ) -> list[dict]:
        """Post a shipment's tracking; returns every fulfillment on the order that carries it.

        `lines_by_sku` (SKU → units) fulfils only those units; None fulfils everything still open. Shopify takes
        one location per fulfillment, so units open at several locations become one fulfillment per location,
        each with the tracking number.

        Idempotent: the order's fulfillments are read first, and units already posted under this tracking
        number are not posted again; when nothing is left to post, the existing fulfillments are returned and
        nothing is created. So a repeat after a crash, or after a POST whose reply was lost, completes the work
        once. Raises ShopifyNotFound (no such order), ShopifyFulfillmentError (a SKU not on the order, more than
        remains open) and ShopifyAlreadyFulfilled (nothing asked for is open, and none of it under this number)."""
        if not isinstance(tracking_number, str) or not tracking_number.strip():
            raise ValueError(f"Shopify {self.shop}: post_tracking needs a tracking number (one per fulfillment)")
        number = tracking_number.strip()
        order = self.find_order(external_id)
        if order is None:
            raise ShopifyNotFound(
                f"no order {str(external_id).strip()!r} in the shop", shop=self.shop, endpoint="post_tracking"
            )
        last: ShopifyError | None = None
        for attempt in range(1, self.max_attempts + 1):
            posted = fulfillments_with_tracking(self.fulfillments(order["id"]), number)
            wanted: dict[str, int] | None = None
            if lines_by_sku is not None:
                # Units already posted under this number (an earlier try) are not asked for again.
                done = units_by_sku(posted)
                wanted = units_wanted(lines_by_sku, f"order {order.get('name')}")
                wanted = {sku: units - done.get(sku, 0) for sku, units in wanted.items() if units > done.get(sku, 0)}
                if posted and not wanted:
                    return self._reused(posted, order, number)
            fulfillment_orders = self.fulfillment_orders(order["id"])
            try:
                plan = plan_fulfillment(order, fulfillment_orders, wanted)
            except ShopifyAlreadyFulfilled:
                if posted:
                    return self._reused(posted, order, number)
                raise
            groups = group_by_location(plan, fulfillment_orders)
            if posted and lines_by_sku is None:
                # Everything open was asked for: locations already holding this number were done by an earlier try.
                done_at = {fulfillment.get("location_id") for fulfillment in posted}
                groups = {location: group for location, group in groups.items() if location not in done_at}
                if not groups:
                    return self._reused(posted, order, number)
            created = []
            try:
                for group in groups.values():
                    created.append(self.create_fulfillment(group, number, tracking_url, company, notify_customer))
            except ShopifyError as exc:
                if not exc.ambiguous:
                    raise
                # Shopify may have acted: the next pass reads the fulfillments before posting what is left.
                last = exc
                log.warning("%s; reading the order again before the next try", exc)
                # After a timeout Shopify may still be processing the POST: give it a timeout's length to land.
                self._wait(max(self._backoff(attempt), self.timeout if exc.timed_out else 0.0))
                continue
            return posted + created
        assert last is not None
        raise last

    def _reused(self, posted: list[dict], order: Mapping[str, Any], number: str) -> list[dict]:
        self.stats.fulfillments_reused += 1
        log.info(
            "Shopify %s: tracking %s is already on order %s (fulfillment %s); nothing posted",
            self.shop,
            number,
            order.get("name"),
            ", ".join(str(f.get("id")) for f in posted),
        )
        return posted


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
