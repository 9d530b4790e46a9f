"""The list endpoints as data, and the one generic handler that filters and pages them.

Every list endpoint differs only in its path, envelope key, collection, cursor and filters; adding an
endpoint is adding a row to `LIST_ENDPOINTS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import sales
from .model import parse_stamp
from .store import Record

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class BadRequest(ValueError):
    """Served as a 400 Error Model `[{"ErrorCode":400,"Exception":...}]`."""


@dataclass(frozen=True)
class Filter:
    param: str  # lower-case query parameter name
    fields: tuple[str, ...]  # row fields it looks at (any may match)
    match: str = "eq"  # eq (case-insensitive) | contains | bool | day
    # Optional: read the value from the whole record instead of its row, e.g. a sale's status is known
    # without building its document, and ReadyForShipping is not a list field at all.
    of_record: Callable[[Any], Any] | None = None


def _sale_status(record: Any) -> str:
    return getattr(record, "status", None) or record.row()["Status"]


def _ready_for_shipping(record: Any) -> bool:
    return sales.ready_for_shipping(record.document())


@dataclass(frozen=True)
class ListEndpoint:
    path: str  # lower-case, after /ExternalApi/v2/
    list_key: str
    collection: str
    id_field: str
    cursor_field: str | None = None  # the row's modified stamp, when the endpoint has a since filter
    since: tuple[tuple[str, str], ...] = ()  # (param, "modified" | "created")
    until: str | None = None  # upper bound (inclusive) on the modified stamp
    filters: tuple[Filter, ...] = ()
    deprecatable: bool = False  # hidden unless IncludeDeprecated=true
    paged: bool = True
    with_total: bool = True  # a few real endpoints page without `Total`; a short page ends the walk


_SALE_FILTERS = (
    Filter("status", ("Status",), of_record=_sale_status),
    Filter("readyforshipping", ("ReadyForShipping",), "bool", of_record=_ready_for_shipping),
    Filter("orderstatus", ("OrderStatus",)),
    Filter("quotestatus", ("QuoteStatus",)),
    # The parameter says Pick/Pack, the field says Picking/Packing (a real naming drift).
    Filter("combinedpickstatus", ("CombinedPickingStatus",)),
    Filter("combinedpackstatus", ("CombinedPackingStatus",)),
    Filter("combinedshippingstatus", ("CombinedShippingStatus",)),
    Filter("combinedinvoicestatus", ("CombinedInvoiceStatus",)),
    Filter("creditnotestatus", ("CreditNoteStatus",)),
    Filter("externalid", ("ExternalID",)),
    Filter("orderlocationid", ("OrderLocationID",)),
    Filter("shipby", ("ShipBy",), "day"),
    Filter("search", ("OrderNumber", "Status", "Customer", "InvoiceNumber", "CustomerReference",
                      "CreditNoteNumber"), "contains"),
)

LIST_ENDPOINTS: tuple[ListEndpoint, ...] = (
    ListEndpoint("product", "Products", "products", "ID", "LastModifiedOn", (("modifiedsince", "modified"),),
                 filters=(Filter("id", ("ID",)), Filter("name", ("Name",), "contains"), Filter("sku", ("SKU",))),
                 deprecatable=True),
    ListEndpoint("customer", "CustomerList", "customers", "ID", "LastModifiedOn", (("modifiedsince", "modified"),),
                 filters=(Filter("id", ("ID",)), Filter("name", ("Name",), "contains")), deprecatable=True),
    ListEndpoint("supplier", "SupplierList", "suppliers", "ID", "LastModifiedOn", (("modifiedsince", "modified"),),
                 filters=(Filter("id", ("ID",)), Filter("name", ("Name",), "contains")), deprecatable=True),
    ListEndpoint("ref/productavailability", "ProductAvailabilityList", "availability", "ID",
                 filters=(Filter("id", ("ID",)), Filter("name", ("Name",), "contains"), Filter("sku", ("SKU",)),
                          Filter("location", ("Location",)), Filter("batch", ("Batch",)))),
    ListEndpoint("ref/location", "LocationList", "locations", "ID",
                 filters=(Filter("id", ("ID",)), Filter("name", ("Name",), "contains"),
                          Filter("deprecated", ("IsDeprecated",), "bool"))),
    ListEndpoint("ref/carrier", "CarrierList", "carriers", "CarrierID"),
    ListEndpoint("ref/pricetier", "PriceTiers", "price_tiers", "Code", paged=False),
    ListEndpoint("webhooks", "Webhooks", "webhooks", "ID", paged=False),
    ListEndpoint("ref/customer/credits", "CustomerCredits", "customer_credits", "ID", with_total=False),
    ListEndpoint("salelist", "SaleList", "sales", "SaleID", "Updated",
                 (("createdsince", "created"), ("updatedsince", "modified")), "updateduntil", _SALE_FILTERS),
    ListEndpoint("purchaselist", "PurchaseList", "purchases", "ID", "LastUpdatedDate",
                 (("updatedsince", "modified"),), "updateduntil",
                 (Filter("status", ("Status",), of_record=_sale_status), Filter("orderstatus", ("OrderStatus",)),
                  Filter("invoicestatus", ("InvoiceStatus",)), Filter("requiredby", ("RequiredBy",), "day"),
                  Filter("search", ("OrderNumber", "Supplier", "InvoiceNumber"), "contains"))),
    ListEndpoint("stocktransferlist", "StockTransferList", "transfers", "TaskID",
                 filters=(Filter("status", ("Status",)), Filter("search", ("Number", "Reference"), "contains"))),
    ListEndpoint("stockadjustmentlist", "StockAdjustmentList", "adjustments", "TaskID",
                 filters=(Filter("status", ("Status",)),
                          Filter("search", ("StocktakeNumber", "Reference"), "contains"))),
    ListEndpoint("finishedgoodslist", "FinishedGoods", "finished_goods", "TaskID",
                 filters=(Filter("status", ("Status",)), Filter("search", ("AssemblyNumber",), "contains"))),
)
LIST_BY_PATH = {e.path: e for e in LIST_ENDPOINTS}

# Single-document reads: path -> (collection, id parameter).
DETAIL_ENDPOINTS: dict[str, tuple[str, str]] = {
    "sale": ("sales", "id"),
    "purchase": ("purchases", "id"),
    "advanced-purchase": ("purchases", "id"),
    "stocktransfer": ("transfers", "taskid"),
    "stockadjustment": ("adjustments", "taskid"),
    "finishedgoods": ("finished_goods", "taskid"),
}


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("true", "1", "yes")


def _matcher(f: Filter, value: str) -> Callable[[dict[str, Any]], bool]:
    wanted = value.strip().lower()
    if f.match == "contains":
        return lambda row: any(wanted in str(row.get(field) or "").lower() for field in f.fields)
    if f.match == "bool":
        flag = _truthy(value)
        return lambda row: bool(row.get(f.fields[0])) == flag
    if f.match == "day":
        day = wanted[:10]
        return lambda row: str(row.get(f.fields[0]) or "")[:10] == day
    return lambda row: any(str(row.get(field) or "").lower() == wanted for field in f.fields)


def page_params(params: dict[str, str]) -> tuple[int, int]:
    """Page (default 1) and Limit (default 100, 1..1000); anything else is a 400, as on the real API."""
    try:
        page = int(params.get("page", "1"))
    except ValueError:
        raise BadRequest(f"Page must be a whole number, not '{params['page']}'") from None
    try:
        limit = int(params.get("limit", str(DEFAULT_LIMIT)))
    except ValueError:
        raise BadRequest(f"Limit must be a whole number between 1 and {MAX_LIMIT}, not '{params['limit']}'") \
            from None
    if page < 1:
        raise BadRequest("Page must be 1 or greater")
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"Limit must be between 1 and {MAX_LIMIT}, not {limit}")
    return page, limit


def select(endpoint: ListEndpoint, records: list[Record], params: dict[str, str],
           since_inclusive: bool) -> list[Record]:
    """Every record the request matches, in creation order. Stamp filters run first: they need no rows."""
    result = records
    if endpoint.deprecatable and not _truthy(params.get("includedeprecated", "false")):
        result = [r for r in result if not r.deprecated]
    for param, stamp in endpoint.since:
        if params.get(param):
            try:
                bound = parse_stamp(params[param])
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
            attr = "modified_ms" if stamp == "modified" else "created_ms"
            if since_inclusive:
                result = [r for r in result if getattr(r, attr) >= bound]
            else:
                result = [r for r in result if getattr(r, attr) > bound]
    if endpoint.until and params.get(endpoint.until):
        try:
            bound = parse_stamp(params[endpoint.until])
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        result = [r for r in result if r.modified_ms <= bound]
    for f in endpoint.filters:
        if params.get(f.param):
            match = _matcher(f, params[f.param])
            if f.of_record is not None:
                read = f.of_record
                result = [r for r in result if match({f.fields[0]: read(r)})]
            else:
                result = [r for r in result if match(r.row())]
    return result


def envelope(endpoint: ListEndpoint, matching: list[Record], params: dict[str, str]) -> dict[str, Any]:
    if not endpoint.paged:
        return {endpoint.list_key: [r.row() for r in matching]}
    page, limit = page_params(params)
    rows = [r.row() for r in matching[(page - 1) * limit: page * limit]]
    if not endpoint.with_total:
        return {"Page": page, endpoint.list_key: rows}
    return {"Total": len(matching), "Page": page, endpoint.list_key: rows}
