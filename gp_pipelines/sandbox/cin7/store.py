"""One instance's data: collections of records, the stock ledger, and the `SaleEnv` the state machine uses.

Records keep their cursor stamps as integer milliseconds so since-filters never parse strings. Sales and
purchases are built lazily from a per-document seed (see generator.py) and cached; a mutation pins
("materialises") the document so it is never rebuilt from its seed again.
"""

from __future__ import annotations

import copy
import random
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from . import sales
from .model import SandboxInstance, VirtualClock, fmt_stamp, fx_rate, new_guid, parse_stamp

Row = dict[str, Any]
_DOC_CACHE_SIZE = 4000


class Record(ABC):
    """A list row plus its cursor stamps; `row()` is what the list endpoint emits."""

    __slots__ = ("created_ms", "deprecated", "id", "modified_ms")

    def __init__(self, id: str, created_ms: int, modified_ms: int, deprecated: bool = False) -> None:
        self.id = id
        self.created_ms = created_ms
        self.modified_ms = modified_ms
        self.deprecated = deprecated

    @abstractmethod
    def row(self) -> Row: ...


class RowRecord(Record):
    """Master data and small documents held whole: `data` is the list row, `detail` the single-document read."""

    __slots__ = ("data", "detail")

    def __init__(self, data: Row, created_ms: int, modified_ms: int, id_field: str = "ID",
                 detail: Row | None = None, deprecated: bool = False) -> None:
        super().__init__(data[id_field], created_ms, modified_ms, deprecated)
        self.data = data
        self.detail = detail

    def row(self) -> Row:
        return self.data


class DocRecord(Record):
    """A sale or purchase whose full document is built on demand from `plan` (a generator-defined tuple)."""

    __slots__ = ("doc", "extra", "header", "kind", "plan", "status", "store")

    def __init__(self, store: InstanceStore, kind: str, id: str, created_ms: int, modified_ms: int,
                 plan: Any, status: str, extra: dict[str, Any]) -> None:
        super().__init__(id, created_ms, modified_ms)
        self.store = store
        self.kind = kind
        self.plan = plan
        self.status = status
        self.extra = extra  # location id, order date: header facts that are not in the document
        self.doc: Row | None = None  # pinned document (mutated at least once)
        self.header: Row | None = None

    def document(self) -> Row:
        return self.doc if self.doc is not None else self.store.cached_document(self)

    def row(self) -> Row:
        if self.header is None:
            self.header = self.store.header_builders[self.kind](self, self.document())
        return self.header


@dataclass
class StockCell:
    product_id: str
    location_id: str
    bin: str
    batch: str
    expiry: str | None
    on_hand: float
    allocated: float
    on_order: float
    in_transit: float


@dataclass
class InstanceStore:
    """Everything one Cin7 account holds. Implements `sales.SaleEnv`."""

    instance: SandboxInstance
    seed: int
    clock: VirtualClock
    tax_rate: float
    tax_rule: str
    anchor_ms: int
    collections: dict[str, list[Record]] = field(default_factory=dict)
    index: dict[str, dict[str, Record]] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    locations: list[Row] = field(default_factory=list)
    price_tiers: list[Row] = field(default_factory=list)
    carriers: list[Row] = field(default_factory=list)
    webhooks: list[Row] = field(default_factory=list)
    stock: list[StockCell] = field(default_factory=list)
    # Pristine generated master data: lazily built documents read these, never the live (edited) rows,
    # so a document built late is byte-identical to one built early.
    origin_products: dict[str, Row] = field(default_factory=dict)
    origin_customers: list[Row] = field(default_factory=list)
    origin_suppliers: list[Row] = field(default_factory=list)
    doc_builders: dict[str, Callable[[DocRecord], Row]] = field(default_factory=dict)
    header_builders: dict[str, Callable[[DocRecord, Row], Row]] = field(default_factory=dict)
    task_index: dict[str, str] = field(default_factory=dict)  # fulfilment/invoice TaskID (lower) -> SaleID
    payment_index: dict[str, str] = field(default_factory=dict)  # payment ID (lower) -> SaleID
    advances: int = 0
    generator: Any = None  # the generator that built this store; simulated trading reuses its recipes

    def __post_init__(self) -> None:
        self.base_currency = self.instance.currency
        self.timezone = self.instance.timezone
        self._cache: OrderedDict[str, Row] = OrderedDict()
        self._cells: dict[tuple[str, str], list[StockCell]] = {}
        self._allocations: dict[str, list[tuple[StockCell, float]]] = {}
        self._frozen_now: int | None = None
        self._id_rng = random.Random(f"{self.seed}:{self.instance.key}:runtime-ids")

    # ------------------------------------------------------------ collections

    def add(self, collection: str, record: Record) -> None:
        self.collections.setdefault(collection, []).append(record)
        self.index.setdefault(collection, {})[record.id.lower()] = record

    def get(self, collection: str, record_id: str) -> Record | None:
        return self.index.get(collection, {}).get(str(record_id).strip().lower())

    def remove(self, collection: str, record: Record) -> None:
        self.collections[collection].remove(record)
        del self.index[collection][record.id.lower()]
        self._cache.pop(record.id, None)

    def cached_document(self, record: DocRecord) -> Row:
        doc = self._cache.get(record.id)
        if doc is None:
            doc = self.doc_builders[record.kind](record)
            self._register_tasks(record.id, doc)
            self._cache[record.id] = doc
            if len(self._cache) > _DOC_CACHE_SIZE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(record.id)
        return doc

    def materialise(self, record: DocRecord) -> Row:
        if record.doc is None:
            record.doc = self.cached_document(record)
            self._cache.pop(record.id, None)
        return record.doc

    def _register_tasks(self, sale_id: str, doc: Row) -> None:
        for task in doc.get("Fulfilments") or ():
            self.task_index[task["TaskID"].lower()] = sale_id
        if "Fulfilments" not in doc:
            return  # a purchase: its invoice is not a task of its own
        for invoice in doc.get("Invoices") or ():
            self.task_index[invoice["TaskID"].lower()] = sale_id
            for payment in invoice["Payments"]:
                self.payment_index[payment["ID"].lower()] = sale_id

    def document_changed(self, record: DocRecord) -> None:
        """Refresh what the list knows after the pinned document changed."""
        doc = record.doc
        assert doc is not None
        self._register_tasks(record.id, doc)
        stamp = doc.get("LastModifiedOn") or doc.get("LastUpdatedDate")
        record.modified_ms = parse_stamp(stamp)
        record.status = doc["Status"]
        record.header = None
        if record.kind == "sale" and doc["Location"] != record.extra.get("location"):
            # The list row's OrderLocationID follows a changed header location.
            record.extra["location"] = doc["Location"]
            record.extra["location_id"] = self.location_id(doc["Location"])

    def mutate_sale(self, record: DocRecord, change: Callable[[Row], Any]) -> Any:
        """Apply a state-machine step to a copy, so a refused transition leaves the sale untouched."""
        draft = copy.deepcopy(self.materialise(record))
        result = change(draft)
        record.doc = draft
        self.document_changed(record)
        return result

    def create_sale(self, body: Row) -> DocRecord:
        """POST sale: resolve customer and location, then a new DRAFT sale stamped now."""
        customer = None
        if body.get("CustomerID"):
            found = self.get("customers", body["CustomerID"])
            customer = found.row() if found else None
        elif body.get("Customer"):
            name = str(body["Customer"]).lower()
            customer = next((r.row() for r in self.collections["customers"] if r.row()["Name"].lower() == name),
                            None)
        if customer is None:
            raise sales.SaleError(f"Customer not found: {body.get('CustomerID') or body.get('Customer')!r}")
        location = self.location(body["Location"]) if body.get("Location") else next(
            loc for loc in self.locations if not loc["IsDeprecated"])
        if location is None:
            raise sales.SaleError(f"Location not found: {body.get('Location')!r}")
        now = self.now_ms()
        rate = fx_rate(self.base_currency, customer["Currency"], now)
        sale_id = self.new_id()
        with self.frozen_time(now):
            doc = sales.create_sale(self, sale_id, customer, location, body, rate)
        record = DocRecord(self, "sale", sale_id, now, now, None, doc["Status"],
                           {"location_id": location["ID"], "location": location["Name"],
                            "order_date": doc["SaleOrderDate"]})
        record.doc = doc
        self.add("sales", record)
        return record

    def touch_master(self, record: RowRecord, ms: int) -> None:
        record.modified_ms = ms
        record.data["LastModifiedOn"] = fmt_stamp(ms)

    # ------------------------------------------------------------ SaleEnv

    def now_ms(self) -> int:
        return self._frozen_now if self._frozen_now is not None else self.clock.now_ms()

    @contextmanager
    def frozen_time(self, ms: int) -> Iterator[None]:
        """Simulated trading stamps each mutation at its own instant inside the advanced period."""
        previous, self._frozen_now = self._frozen_now, ms
        try:
            yield
        finally:
            self._frozen_now = previous

    def new_id(self) -> str:
        return new_guid(self._id_rng)

    def next_number(self, kind: str) -> str:
        self.counters[kind] = self.counters.get(kind, 0) + 1
        return f"{kind}-{self.counters[kind]:05d}"

    def product(self, product_id: str | None, sku: str | None) -> Row | None:
        if product_id:
            record = self.get("products", product_id)
            return record.row() if record else None
        if sku:
            for record in self.collections.get("products", ()):
                if record.row()["SKU"].lower() == str(sku).lower():
                    return record.row()
        return None

    def location_id(self, name: str) -> str:
        for location in self.locations:
            if location["Name"] == name or location["ID"] == name:
                return location["ID"]
        raise sales.SaleError(f"Location not found: {name!r}")

    def location(self, key: str) -> Row | None:
        key = str(key).lower()
        return next((loc for loc in self.locations if key in (loc["ID"].lower(), loc["Name"].lower())), None)

    # ------------------------------------------------------------ stock ledger

    def add_cell(self, cell: StockCell) -> None:
        self.stock.append(cell)
        self._cells.setdefault((cell.product_id, cell.location_id), []).append(cell)

    def cells(self, location_id: str, product_id: str) -> list[StockCell]:
        return self._cells.get((product_id, location_id), [])

    def allocate(self, sale_id: str, location_id: str, product_id: str, quantity: float) -> float:
        allocated = 0.0
        for cell in self.cells(location_id, product_id):
            take = min(quantity - allocated, max(0.0, cell.on_hand - cell.allocated))
            if take > 0:
                cell.allocated += take
                allocated += take
                self._allocations.setdefault(sale_id, []).append((cell, take))
        return allocated

    def release(self, sale_id: str) -> None:
        for cell, qty in self._allocations.pop(sale_id, []):
            cell.allocated = max(0.0, cell.allocated - qty)

    def held(self, sale_id: str, product_id: str) -> dict[str, float]:
        """What `sale_id` holds of a product, per location id."""
        out: dict[str, float] = {}
        for cell, qty in self._allocations.get(sale_id, ()):
            if cell.product_id == product_id and qty > 0:
                out[cell.location_id] = out.get(cell.location_id, 0.0) + qty
        return out

    def available(self, location_id: str, product_id: str) -> float:
        return sum(max(0.0, cell.on_hand - cell.allocated) for cell in self.cells(location_id, product_id))

    def deallocate(self, sale_id: str, location_id: str, product_id: str, quantity: float) -> None:
        """Free part of what a sale holds of a product at one location."""
        remaining = quantity
        held = self._allocations.get(sale_id, [])
        for i, (cell, qty) in enumerate(held):
            if remaining <= 0:
                break
            if cell.product_id == product_id and cell.location_id == location_id and qty > 0:
                freed = min(qty, remaining)
                cell.allocated = max(0.0, cell.allocated - freed)
                held[i] = (cell, qty - freed)
                remaining -= freed

    def consume(self, sale_id: str, location_id: str, product_id: str, quantity: float) -> None:
        """Shipping: the stock leaves the location it was picked from, and the sale stops holding it there."""
        self.deallocate(sale_id, location_id, product_id, quantity)
        remaining = quantity
        for cell in self.cells(location_id, product_id):
            if remaining <= 0:
                break
            used = min(remaining, cell.on_hand)
            cell.on_hand -= used
            remaining -= used
            cell.allocated = min(cell.allocated, cell.on_hand)

    def restock(self, location_id: str, product_id: str, quantity: float) -> None:
        cells = self.cells(location_id, product_id)
        if not cells:
            self.add_cell(StockCell(product_id, location_id, "", "", None, 0.0, 0.0, 0.0, 0.0))
            cells = self.cells(location_id, product_id)
        cells[0].on_hand += quantity
