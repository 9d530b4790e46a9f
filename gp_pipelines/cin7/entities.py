"""The Cin7 Core entities the cache keeps, described once each (DESIGN.md §2 "Describe, don't repeat").

Entities differ only in data: the list path, the envelope key, the id field, the cursor (modified) field,
the since-parameter, the detail endpoint and the page size. One sync engine (`sync.py`), one cache store
(`store.py`) and one asset factory serve them all; adding an entity is adding a row to `ENTITIES`.

Kinds:
- `account`: `GET me`, one object, stored as a single row with id `"me"` (the API returns no account id
  in the body, and the instance column already says which account it is).
- `reference`: small books without a since filter (`ref/location`, `ref/priceTier`, `ref/carrier`), re-read
  whole on every sync, diffed by hash.
- `master`: products, customers, suppliers: incremental by `ModifiedSince` on `LastModifiedOn`, read with
  `IncludeDeprecated=true` so deprecated records are kept (with their `Status`), never dropped.
- `stock`: product availability, no since filter and no natural id (see `availability_id`).
- `document`: sales and purchases (incremental, list + one detail call per changed document); stock
  transfers, adjustments and finished goods (no since filter: the list is re-read whole and the detail is
  fetched only for documents whose list row changed, compared by hash).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

Row = Mapping[str, Any]


def availability_id(row: Row) -> str:
    """The id of a product-availability row: md5 of `ProductID|Location|Bin|Batch`.

    `ref/productavailability` has one row per product × location × bin × batch and no key of its own (its
    `ID` is the product's). Those four parts are what make a row unique; `ExpiryDate` is left out because it
    belongs to the batch and may be corrected without the row becoming a different row. The parts are
    hashed rather than joined because location names, bins and batch numbers are free text of any length
    (and may hold the separator): the hash gives a fixed-width, collision-safe key like every other table's
    `id`, while the parts stay queryable in `payload`. Renaming a location changes the ids of its rows: the
    old rows are marked deleted by the next full read and the new ones inserted, which is what the API shows.
    """
    parts = (row.get("ID"), row.get("Location"), row.get("Bin"), row.get("Batch"))
    key = "|".join("" if part is None else str(part) for part in parts)
    return hashlib.md5(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Entity:
    name: str  # registry key == table name in erp_cache
    title: str  # human description for the UI
    kind: str  # account | reference | master | stock | document
    path: str  # list endpoint (or the single-object endpoint for `me`)
    list_key: str | None  # envelope key; None for `me`
    id_field: str | None = "ID"  # None when the id is derived (`id_from`) or fixed (`me`)
    modified_field: str | None = None  # the list row's cursor field (UTC stamp with Z)
    since_param: str | None = None  # the list's "changed since" filter; None = re-read in full
    page_size: int = 1000  # the largest page the endpoint tolerates (the API maximum)
    paged: bool = True
    # Always sent on list calls (read-only; left out of the hash so an Entity can key a dict).
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    detail_path: str | None = None  # single-document read, e.g. `sale`
    detail_id_param: str = "ID"
    detail_modified_field: str | None = None  # the detail's own cursor field
    id_from: Callable[[Row], str] | None = None

    @property
    def incremental(self) -> bool:
        """Has a since-filter: synced from a watermark instead of re-read whole."""
        return self.since_param is not None

    @property
    def has_detail(self) -> bool:
        """The payload is the single-document read, fetched only for documents that changed."""
        return self.detail_path is not None

    @property
    def table(self) -> str:
        return self.name

    def record_id(self, row: Row) -> str:
        if self.id_from is not None:
            return self.id_from(row)
        if self.id_field is None:
            return "me"
        return str(row[self.id_field])

    def list_modified(self, row: Row) -> str | None:
        return row.get(self.modified_field) if self.modified_field else None

    def payload_modified(self, payload: Row) -> str | None:
        """The stamp stored as `modified_at`: the detail's own cursor for documents, else the list's."""
        field_name = self.detail_modified_field if self.has_detail else self.modified_field
        return payload.get(field_name) if field_name else None


def _params(**values: Any) -> Mapping[str, Any]:
    return MappingProxyType(values)


_DECLARED: tuple[Entity, ...] = (
    Entity("me", "Account profile (GET me): company, base currency, time zone", "account", "me", None,
           id_field=None, paged=False),
    Entity("locations", "Locations and their bins (deprecated ones kept)", "reference", "ref/location",
           "LocationList"),
    Entity("price_tiers", "Price tier names (PriceTier1..10)", "reference", "ref/priceTier", "PriceTiers",
           id_field="Code", paged=False),
    Entity("carriers", "Carriers", "reference", "ref/carrier", "CarrierList", id_field="CarrierID"),
    Entity("products", "Products (deprecated kept with their Status)", "master", "product", "Products",
           modified_field="LastModifiedOn", since_param="ModifiedSince",
           params=_params(IncludeDeprecated=True)),
    Entity("product_availability", "Stock per product, location, bin and batch", "stock",
           "ref/productavailability", "ProductAvailabilityList", id_field=None, id_from=availability_id),
    Entity("customers", "Customers (deprecated kept with their Status)", "master", "customer", "CustomerList",
           modified_field="LastModifiedOn", since_param="ModifiedSince",
           params=_params(IncludeDeprecated=True)),
    Entity("suppliers", "Suppliers (deprecated kept with their Status)", "master", "supplier", "SupplierList",
           modified_field="LastModifiedOn", since_param="ModifiedSince",
           params=_params(IncludeDeprecated=True)),
    Entity("sales", "Sales: the full sale?ID= document (lines, fulfilments, invoices, credit notes)",
           "document", "saleList", "SaleList", id_field="SaleID", modified_field="Updated",
           since_param="UpdatedSince", detail_path="sale", detail_modified_field="LastModifiedOn"),
    Entity("purchases", "Purchases: the full advanced-purchase?ID= document", "document", "purchaseList",
           "PurchaseList", modified_field="LastUpdatedDate", since_param="UpdatedSince",
           detail_path="advanced-purchase", detail_modified_field="LastUpdatedDate"),
    Entity("stock_transfers", "Stock transfers with their lines", "document", "stockTransferList",
           "StockTransferList", id_field="TaskID", detail_path="stockTransfer", detail_id_param="TaskID"),
    Entity("stock_adjustments", "Stock adjustments with their lines", "document", "stockadjustmentList",
           "StockAdjustmentList", id_field="TaskID", detail_path="stockadjustment", detail_id_param="TaskID"),
    Entity("finished_goods", "Finished goods (assemblies) with their lines", "document", "finishedGoodsList",
           "FinishedGoods", id_field="TaskID", detail_path="finishedGoods", detail_id_param="TaskID"),
)

ENTITIES: dict[str, Entity] = {e.name: e for e in _DECLARED}  # in sync order: reference data before documents


def entity(name: str) -> Entity:
    try:
        return ENTITIES[name]
    except KeyError:
        raise KeyError(f"unknown entity {name!r}; known: {', '.join(ENTITIES)}") from None
