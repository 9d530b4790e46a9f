"""The Shopify sandbox's world: shops, orders, fulfillment orders, fulfillments, rate buckets, faults, counters.

Everything is in memory behind one lock (the Starlette handlers and the tests' Python calls may run on different
threads). Ids come from counters seeded by `seed` and timestamps from a fixed clock that ticks once per change,
so the same calls always produce the same data. Only the leaky buckets follow the real clock, as Shopify's do.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

DEFAULT_SHOP = "demo-store"
DEFAULT_TOKEN = "shpat_sandbox_demo_store"
DEFAULT_LOCATION = "Main warehouse"
FAULTS = ("429", "500", "502", "503", "drop", "slow")
INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"
OVER_FULFILMENT = "Invalid fulfillment order line item quantity requested."
_EPOCH = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


class SandboxHttpError(Exception):
    """Answered as `status` with `{"errors": errors}`, the shape Shopify uses."""

    def __init__(self, status: int, errors: Any) -> None:
        super().__init__(f"{status}: {errors}")
        self.status = status
        self.errors = errors


def not_found() -> SandboxHttpError:
    return SandboxHttpError(404, "Not Found")


def _missing(parameter: str) -> SandboxHttpError:
    return SandboxHttpError(400, {parameter: "Required parameter missing or invalid"})


def _unprocessable(message: str) -> SandboxHttpError:
    return SandboxHttpError(422, [message])


@dataclass
class ShopifySandboxOptions:
    shops: dict[str, str] = field(default_factory=lambda: {DEFAULT_SHOP: DEFAULT_TOKEN})  # handle → access token
    bucket_size: int = 40
    leak_per_second: float = 2.0  # Standard plan; Advanced 4, Plus 20
    retry_after_seconds: float | None = None  # None: the time until one slot has leaked
    slow_seconds: float = 2.0  # how long the `slow` fault holds a reply
    seed: int = 42

    def validate(self) -> None:
        if not self.shops:
            raise ValueError("the Shopify sandbox needs at least one shop")
        for handle, token in self.shops.items():
            _check_handle(handle)
            if not token:
                raise ValueError(f"Shopify sandbox shop {handle!r} has an empty access token")
        if self.bucket_size < 1 or self.leak_per_second <= 0:
            raise ValueError("bucket_size must be ≥ 1 and leak_per_second > 0")
        if self.retry_after_seconds is not None and self.retry_after_seconds < 0:
            raise ValueError("retry_after_seconds must be ≥ 0")


def _check_handle(handle: str) -> None:
    if not handle or not all(ch.isalnum() or ch == "-" for ch in handle):
        raise ValueError(f"bad shop handle {handle!r}: use letters, digits and '-'")


def _stable_id(*parts: object) -> int:
    digest = hashlib.sha256(":".join(str(part) for part in parts).encode()).digest()
    return 10_000_000_000 + int.from_bytes(digest[:6], "big") % 90_000_000_000


class LeakyBucket:
    """Shopify's REST limit: each request adds one; `leak_per_second` drain continuously; full means 429."""

    def __init__(self, size: int, leak_per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.leak = leak_per_second
        self._clock = clock
        self._level = 0.0
        self._at = clock()

    def _drain(self) -> float:
        now = self._clock()
        self._level = max(0.0, self._level - (now - self._at) * self.leak)
        self._at = now
        return self._level

    def take(self) -> tuple[bool, float]:
        """(accepted, seconds until one slot is free when refused)."""
        level = self._drain()
        if level + 1 <= self.size + 1e-9:
            self._level = level + 1
            return True, 0.0
        return False, (level + 1 - self.size) / self.leak

    def used(self) -> int:
        return min(self.size, math.ceil(self._drain() - 1e-9))

    def fill(self, level: float) -> None:
        self._drain()
        self._level = min(float(self.size), max(0.0, level))


@dataclass
class LineItem:
    id: int
    sku: str
    title: str
    quantity: int
    price: str
    variant_id: int
    product_id: int
    location_id: int


@dataclass
class FulfillmentOrderLine:
    id: int
    line_item: LineItem
    quantity: int
    remaining: int


@dataclass
class FulfillmentOrder:
    id: int
    order_id: int
    location_id: int
    location_name: str
    lines: list[FulfillmentOrderLine]
    created_at: datetime
    updated_at: datetime
    status: str = "open"


@dataclass
class Fulfillment:
    id: int
    order_id: int
    name: str
    location_id: int
    lines: list[tuple[LineItem, int]]
    tracking_number: str | None
    tracking_company: str | None
    tracking_url: str | None
    notify_customer: bool
    created_at: datetime
    fulfillment_order_ids: list[int]


@dataclass
class Order:
    id: int
    number: int
    name: str
    email: str
    currency: str
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    line_items: list[LineItem]
    fulfillment_orders: list[FulfillmentOrder] = field(default_factory=list)
    fulfillments: list[Fulfillment] = field(default_factory=list)

    def fulfillable(self, line: LineItem) -> int:
        return sum(
            fo_line.remaining
            for fo in self.fulfillment_orders
            for fo_line in fo.lines
            if fo_line.line_item is line and fo.status in ("open", "in_progress")
        )

    def fulfillment_status(self) -> str | None:
        left = sum(self.fulfillable(line) for line in self.line_items)
        total = sum(line.quantity for line in self.line_items)
        return None if left == total else ("fulfilled" if left == 0 else "partial")


@dataclass
class Shop:
    handle: str
    token: str
    id: int
    bucket: LeakyBucket
    fulfillment_scopes: bool = True
    next_number: int = 1001
    orders: dict[int, Order] = field(default_factory=dict)
    locations: dict[str, int] = field(default_factory=dict)

    def location_id(self, name: str) -> int:
        return self.locations.setdefault(name, _stable_id("location", self.handle, name))


@dataclass
class FaultRule:
    kind: str
    shop: str | None = None
    method: str | None = None
    path: str | None = None  # a substring of the path after /admin/api/{version}/

    def matches(self, shop: str, method: str, path: str) -> bool:
        return (
            (self.shop is None or self.shop == shop)
            and (self.method is None or self.method == method)
            and (self.path is None or self.path in path)
        )


class ShopifySandbox:
    def __init__(self, options: ShopifySandboxOptions | None = None) -> None:
        self.options = options or ShopifySandboxOptions()
        self.options.validate()
        self._lock = threading.RLock()
        self.reset()

    # -- set-up ---------------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the state right after start: the configured shops, no orders, no faults, zero counters."""
        with self._lock:
            seed = self.options.seed
            self._counters = {
                kind: base + seed * 100_000
                for kind, base in (
                    ("order", 5_100_000_000),
                    ("line", 13_100_000_000),
                    ("fo", 6_100_000_000),
                    ("fo_line", 15_100_000_000),
                    ("fulfillment", 4_100_000_000),
                )
            }
            self._tick = 0
            self.shops: dict[str, Shop] = {}
            self.faults: list[FaultRule] = []
            self.requests: dict[str, int] = {}
            self.by_shop: dict[str, int] = {}
            self.throttled = 0
            self.faults_served: dict[str, int] = {}
            self.unauthorised = 0
            for handle, token in self.options.shops.items():
                self.add_shop(handle, token)

    def add_shop(self, handle: str, token: str, *, fulfillment_scopes: bool = True) -> Shop:
        """A shop (replaced if it exists). `fulfillment_scopes=False` emulates an app installed without the
        fulfillment-order scopes: those endpoints answer 404, as Shopify does."""
        _check_handle(handle)
        if not token:
            raise ValueError(f"shop {handle!r}: empty access token")
        with self._lock:
            shop = Shop(
                handle,
                token,
                _stable_id("shop", handle),
                LeakyBucket(self.options.bucket_size, self.options.leak_per_second),
                fulfillment_scopes,
            )
            self.shops[handle] = shop
            return shop

    def _next(self, kind: str) -> int:
        self._counters[kind] += 1
        return self._counters[kind]

    def _now(self) -> datetime:
        self._tick += 1
        return _EPOCH + timedelta(minutes=self._tick)

    def shop(self, handle: str) -> Shop:
        try:
            return self.shops[handle]
        except KeyError:
            raise not_found() from None

    def create_order(
        self,
        shop: str,
        line_items: list[Mapping[str, Any]],
        *,
        name: str | None = None,
        email: str | None = None,
        currency: str = "USD",
        closed: bool = False,
    ) -> dict:
        """An order with one fulfillment order per location its lines sit at (`location`, default the shop's
        main warehouse). Lines: `{sku, quantity, title?, price?, location?}`. Returns the order as the API shows
        it plus `fulfillment_order_ids`. ValueError names the bad field."""
        with self._lock:
            if shop not in self.shops:
                raise ValueError(f"no sandbox shop {shop!r}; shops: {sorted(self.shops)}")
            state = self.shops[shop]
            if not isinstance(line_items, list) or not line_items:
                raise ValueError("line_items: give at least one {sku, quantity}")
            number = state.next_number
            name = (name or f"#{number}").strip()
            if any(order.name == name for order in state.orders.values()):
                raise ValueError(f"name: an order named {name!r} exists already in {shop!r}")
            created = self._now()
            order = Order(
                self._next("order"),
                number,
                name,
                email or f"customer{number}@example.com",
                currency,
                created,
                created,
                created if closed else None,
                [],
            )
            for index, raw in enumerate(line_items):
                order.line_items.append(self._line_item(state, raw, f"line_items[{index}]"))
            state.next_number += 1
            by_location: dict[int, list[LineItem]] = {}
            for line in order.line_items:
                by_location.setdefault(line.location_id, []).append(line)
            names = {location_id: location for location, location_id in state.locations.items()}
            for location_id, lines in by_location.items():
                fo_lines = [
                    FulfillmentOrderLine(self._next("fo_line"), line, line.quantity, line.quantity) for line in lines
                ]
                order.fulfillment_orders.append(
                    FulfillmentOrder(
                        self._next("fo"), order.id, location_id, names[location_id], fo_lines, created, created
                    )
                )
            state.orders[order.id] = order
            return {**render_order(order), "fulfillment_order_ids": [fo.id for fo in order.fulfillment_orders]}

    def _line_item(self, shop: Shop, raw: Any, where: str) -> LineItem:
        if not isinstance(raw, Mapping):
            raise ValueError(f"{where}: expected an object with sku and quantity")
        sku = raw.get("sku")
        if not isinstance(sku, str) or not sku.strip():
            raise ValueError(f"{where}.sku: a non-empty string is required")
        quantity = raw.get("quantity")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise ValueError(f"{where}.quantity: a whole number ≥ 1 is required, not {quantity!r}")
        location = str(raw.get("location") or DEFAULT_LOCATION)
        return LineItem(
            self._next("line"),
            sku.strip(),
            str(raw.get("title") or f"Product {sku.strip()}"),
            quantity,
            str(raw.get("price") or "10.00"),
            _stable_id("variant", shop.handle, sku.strip()),
            _stable_id("product", shop.handle, sku.strip()),
            shop.location_id(location),
        )

    # -- faults and counters --------------------------------------------------------------------------------

    def inject(
        self, kind: str, count: int = 1, *, shop: str | None = None, method: str | None = None, path: str | None = None
    ) -> None:
        """The next `count` API requests that match (shop, method, path substring) meet fault `kind`."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; known: {FAULTS}")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(f"count must be a whole number ≥ 1, not {count!r}")
        with self._lock:
            self.faults.extend(FaultRule(kind, shop, method.upper() if method else None, path) for _ in range(count))

    def take_fault(self, shop: str, method: str, path: str) -> str | None:
        with self._lock:
            for index, rule in enumerate(self.faults):
                if rule.matches(shop, method, path):
                    del self.faults[index]
                    self.faults_served[rule.kind] = self.faults_served.get(rule.kind, 0) + 1
                    return rule.kind
            return None

    def count(self, shop: str, endpoint: str) -> None:
        with self._lock:
            self.requests[endpoint] = self.requests.get(endpoint, 0) + 1
            self.by_shop[shop] = self.by_shop.get(shop, 0) + 1

    def note_unauthorised(self) -> None:
        with self._lock:
            self.unauthorised += 1

    def take_slot(self, shop: Shop) -> tuple[bool, int, float]:
        """(accepted, slots used after this request, Retry-After seconds when refused)."""
        with self._lock:
            accepted, wait = shop.bucket.take()
            if not accepted:
                self.throttled += 1
                configured = self.options.retry_after_seconds
                wait = configured if configured is not None else math.ceil(wait * 10) / 10
            return accepted, shop.bucket.used(), wait

    def fill_bucket(self, shop: str, level: float) -> int:
        with self._lock:
            bucket = self.shops[shop].bucket
            bucket.fill(level)
            return bucket.used()

    def stats(self) -> dict:
        with self._lock:
            return {
                "requests": dict(sorted(self.requests.items())),
                "total": sum(self.requests.values()),
                "by_shop": dict(sorted(self.by_shop.items())),
                "throttled": self.throttled,
                "unauthorised": self.unauthorised,
                "faults_served": dict(sorted(self.faults_served.items())),
                "faults_pending": [rule.__dict__ for rule in self.faults],
                "buckets": {handle: f"{shop.bucket.used()}/{shop.bucket.size}" for handle, shop in self.shops.items()},
            }

    # -- the Admin API --------------------------------------------------------------------------------------

    def order(self, shop: str, order_id: int) -> Order:
        order = self.shop(shop).orders.get(order_id)
        if order is None:
            raise not_found()
        return order

    def list_orders(self, shop: str, params: Mapping[str, str]) -> list[dict]:
        """`GET orders.json`: `name` (exact, any case), `ids`, `status` (open default, closed, cancelled, any),
        `limit` (50 default, at most 250), oldest first."""
        with self._lock:
            status = params.get("status", "open")
            if status not in ("open", "closed", "cancelled", "any"):
                raise SandboxHttpError(400, {"status": f"is not one of open, closed, cancelled, any: {status!r}"})
            try:
                limit = int(params.get("limit", "50"))
            except ValueError:
                raise SandboxHttpError(400, {"limit": "must be a number"}) from None
            if not 1 <= limit <= 250:
                raise SandboxHttpError(400, {"limit": "must be between 1 and 250"})
            ids = None
            if "ids" in params:
                ids = {int(part) for part in params["ids"].split(",") if part.strip().isdigit()}
            name = params.get("name")
            found = []
            for order in self.shop(shop).orders.values():
                if status == "open" and order.closed_at is not None:
                    continue
                if status in ("closed", "cancelled") and order.closed_at is None:
                    continue
                if name is not None and order.name.casefold() != name.strip().casefold():
                    continue
                if ids is not None and order.id not in ids:
                    continue
                found.append(render_order(order))
            return found[:limit]

    def get_order(self, shop: str, order_id: int) -> dict:
        with self._lock:
            return render_order(self.order(shop, order_id))

    def fulfillment_orders(self, shop: str, order_id: int) -> list[dict]:
        with self._lock:
            order = self.order(shop, order_id)
            return [render_fulfillment_order(self.shops[shop], fo) for fo in order.fulfillment_orders]

    def fulfillments(self, shop: str, order_id: int) -> list[dict]:
        with self._lock:
            order = self.order(shop, order_id)
            return [render_fulfillment(order, fulfillment) for fulfillment in order.fulfillments]

    def create_fulfillment(self, shop: str, body: Any) -> dict:
        """`POST fulfillments.json`, validated like Shopify: every check runs before anything changes."""
        with self._lock:
            state = self.shop(shop)
            spec = body.get("fulfillment") if isinstance(body, dict) else None
            if not isinstance(spec, dict):
                raise _missing("fulfillment")
            groups = spec.get("line_items_by_fulfillment_order")
            if not isinstance(groups, list) or not groups or not all(isinstance(g, dict) for g in groups):
                raise _missing("line_items_by_fulfillment_order")
            tracking = _tracking(spec)

            targets: list[tuple[Order, FulfillmentOrder, dict[int, int]]] = []
            for group in groups:
                order, fo = self._find_fulfillment_order(state, group.get("fulfillment_order_id"))
                if fo.status not in ("open", "in_progress"):
                    raise _unprocessable(f"Fulfillment order {fo.id} has an unfulfillable status= {fo.status}.")
                targets.append((order, fo, _requested_units(fo, group.get("fulfillment_order_line_items"))))
            order_ids = sorted({order.id for order, _, _ in targets})
            if len(order_ids) > 1:
                raise _unprocessable(
                    f"All fulfillment orders must belong to the same order. Multiple orders with "
                    f"IDs {order_ids} were found."
                )
            location_ids = sorted({fo.location_id for _, fo, _ in targets})
            if len(location_ids) > 1:
                raise _unprocessable(
                    f"All fulfillment orders must be assigned to a single location. Multiple "
                    f"locations with IDs {location_ids} were found."
                )
            seen: set[int] = set()
            for _, fo, _ in targets:
                if fo.id in seen:
                    raise _unprocessable(f"Fulfillment order {fo.id} is listed more than once.")
                seen.add(fo.id)
            if not any(units for _, _, units in targets):
                raise _unprocessable(OVER_FULFILMENT)

            order = targets[0][0]
            now = self._now()
            fulfilled: dict[int, int] = {}
            for _, fo, units in targets:
                for fo_line in fo.lines:
                    take = units.get(fo_line.id, 0)
                    fo_line.remaining -= take
                    if take:
                        fulfilled[fo_line.line_item.id] = fulfilled.get(fo_line.line_item.id, 0) + take
                fo.status = "closed" if all(line.remaining == 0 for line in fo.lines) else "in_progress"
                fo.updated_at = now
            lines_by_id = {line.id: line for line in order.line_items}
            fulfillment = Fulfillment(
                self._next("fulfillment"),
                order.id,
                f"{order.name}.{len(order.fulfillments) + 1}",
                targets[0][1].location_id,
                [(lines_by_id[line_id], units) for line_id, units in fulfilled.items()],
                tracking.get("number"),
                tracking.get("company"),
                tracking.get("url"),
                bool(spec.get("notify_customer", False)),
                now,
                [fo.id for _, fo, _ in targets],
            )
            order.fulfillments.append(fulfillment)
            order.updated_at = now
            return render_fulfillment(order, fulfillment)

    def _find_fulfillment_order(self, shop: Shop, raw_id: Any) -> tuple[Order, FulfillmentOrder]:
        try:
            wanted = int(raw_id)
        except (TypeError, ValueError):
            raise _missing("fulfillment_order_id") from None
        for order in shop.orders.values():
            for fo in order.fulfillment_orders:
                if fo.id == wanted:
                    return order, fo
        raise not_found()

    # -- inspection ------------------------------------------------------------------------------------------

    def snapshot(self, shop: str | None = None) -> list[dict]:
        """Every order (of one shop, or all) with its fulfillment orders and fulfillments, for tests and demos."""
        with self._lock:
            out = []
            for handle, state in self.shops.items():
                if shop is not None and handle != shop:
                    continue
                for order in state.orders.values():
                    out.append(
                        {
                            "shop": handle,
                            **render_order(order),
                            "fulfillment_orders": [
                                render_fulfillment_order(state, fo) for fo in order.fulfillment_orders
                            ],
                        }
                    )
            return out


def _tracking(spec: Mapping[str, Any]) -> dict[str, str]:
    """The one tracking number of a fulfillment (`tracking_info`); a second number is refused, as Shopify does."""
    info = spec.get("tracking_info") or {}
    if not isinstance(info, dict):
        raise _missing("tracking_info")
    number = info.get("number")
    extra = info.get("numbers") or spec.get("tracking_numbers") or []
    if isinstance(number, list) or (isinstance(extra, list) and len(extra) > 1):
        raise _unprocessable("A fulfillment supports one tracking number; create one fulfillment per number.")
    if number is None and isinstance(extra, list) and extra:
        number = extra[0]
    tracking = {"number": number, "url": info.get("url"), "company": info.get("company")}
    for key, value in tracking.items():
        if value is not None and not isinstance(value, (str, int)):
            raise SandboxHttpError(400, {f"tracking_info.{key}": "must be a string"})
    return {key: str(value) for key, value in tracking.items() if value not in (None, "")}


def _requested_units(fo: FulfillmentOrder, items: Any) -> dict[int, int]:
    """FO line id → units for one group; all that remains when the line items are left out."""
    if items is None or items == []:
        return {line.id: line.remaining for line in fo.lines if line.remaining > 0}
    if not isinstance(items, list):
        raise _missing("fulfillment_order_line_items")
    lines = {line.id: line for line in fo.lines}
    units: dict[int, int] = {}
    for item in items:
        try:
            line_id, quantity = int(item["id"]), item.get("quantity")
        except (TypeError, ValueError, KeyError):
            raise _missing("fulfillment_order_line_items") from None
        if line_id not in lines:
            raise _unprocessable(f"Fulfillment order line item {line_id} is not in fulfillment order {fo.id}.")
        try:
            quantity = lines[line_id].remaining if quantity is None else int(quantity)
        except (TypeError, ValueError):
            raise _unprocessable(OVER_FULFILMENT) from None
        units[line_id] = units.get(line_id, 0) + quantity
    for line_id, quantity in units.items():
        if quantity < 1 or quantity > lines[line_id].remaining:
            raise _unprocessable(OVER_FULFILMENT)
    return units


# -- JSON shapes (the REST Admin API's) ------------------------------------------------------------------


def _stamp(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def _gid(kind: str, number: int) -> str:
    return f"gid://shopify/{kind}/{number}"


def render_line_item(order: Order, line: LineItem, quantity: int | None = None) -> dict:
    fulfillable = order.fulfillable(line)
    status = None if fulfillable == line.quantity else ("fulfilled" if fulfillable == 0 else "partial")
    return {
        "id": line.id,
        "admin_graphql_api_id": _gid("LineItem", line.id),
        "sku": line.sku,
        "title": line.title,
        "name": line.title,
        "quantity": line.quantity if quantity is None else quantity,
        "fulfillable_quantity": fulfillable,
        "fulfillment_status": status,
        "fulfillment_service": "manual",
        "requires_shipping": True,
        "price": line.price,
        "variant_id": line.variant_id,
        "product_id": line.product_id,
    }


def render_order(order: Order) -> dict:
    return {
        "id": order.id,
        "admin_graphql_api_id": _gid("Order", order.id),
        "name": order.name,
        "order_number": order.number,
        "number": order.number - 1000,
        "email": order.email,
        "currency": order.currency,
        "financial_status": "paid",
        "fulfillment_status": order.fulfillment_status(),
        "created_at": _stamp(order.created_at),
        "updated_at": _stamp(order.updated_at),
        "closed_at": _stamp(order.closed_at),
        "cancelled_at": None,
        "line_items": [render_line_item(order, line) for line in order.line_items],
        "fulfillments": [render_fulfillment(order, fulfillment) for fulfillment in order.fulfillments],
    }


def render_fulfillment_order(shop: Shop, fo: FulfillmentOrder) -> dict:
    open_ = fo.status in ("open", "in_progress")
    return {
        "id": fo.id,
        "admin_graphql_api_id": _gid("FulfillmentOrder", fo.id),
        "shop_id": shop.id,
        "order_id": fo.order_id,
        "assigned_location_id": fo.location_id,
        "request_status": "unsubmitted",
        "status": fo.status,
        "supported_actions": ["create_fulfillment", "move", "hold"] if open_ else [],
        "fulfill_at": None,
        "fulfill_by": None,
        "fulfillment_holds": [],
        "delivery_method": {"method_type": "shipping"},
        "created_at": _stamp(fo.created_at),
        "updated_at": _stamp(fo.updated_at),
        "assigned_location": {"location_id": fo.location_id, "name": fo.location_name},
        "merchant_requests": [],
        "line_items": [
            {
                "id": line.id,
                "shop_id": shop.id,
                "fulfillment_order_id": fo.id,
                "quantity": line.quantity,
                "line_item_id": line.line_item.id,
                "inventory_item_id": _stable_id("inventory", line.line_item.variant_id),
                "fulfillable_quantity": line.remaining if open_ else 0,
                "variant_id": line.line_item.variant_id,
            }
            for line in fo.lines
        ],
    }


def render_fulfillment(order: Order, fulfillment: Fulfillment) -> dict:
    number = fulfillment.tracking_number
    return {
        "id": fulfillment.id,
        "admin_graphql_api_id": _gid("Fulfillment", fulfillment.id),
        "order_id": order.id,
        "name": fulfillment.name,
        "status": "success",
        "service": "manual",
        "shipment_status": None,
        "location_id": fulfillment.location_id,
        "created_at": _stamp(fulfillment.created_at),
        "updated_at": _stamp(fulfillment.created_at),
        "tracking_company": fulfillment.tracking_company,
        "tracking_number": number,
        "tracking_numbers": [number] if number else [],
        "tracking_url": fulfillment.tracking_url,
        "tracking_urls": [fulfillment.tracking_url] if fulfillment.tracking_url else [],
        "line_items": [render_line_item(order, line, units) for line, units in fulfillment.lines],
    }
