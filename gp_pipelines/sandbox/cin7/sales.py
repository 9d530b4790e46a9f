"""The sale state machine (§5–6 of the API notes): pure functions over a sale document dict.

Every function takes an `env` that supplies the outside world (the clock, new ids and numbers, products,
stock), mutates the document in place, bumps `LastModifiedOn` and recomputes `Status` and the `Combined*`
fields. An illegal transition raises `SaleError`, which the app serves as a 400 Error Model. The generator
drives the same functions to build its historical sales, so generated and API-made documents agree.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any, Protocol

from .model import add_days_date, fmt_business_date, fmt_stamp

AUTHORISED_LIKE = ("AUTHORISED", "PAID")
EDITABLE_STAGE = ("DRAFT", "NOT AVAILABLE")

Doc = dict[str, Any]


class SaleError(ValueError):
    """A request the real API would refuse; the message becomes the Error Model's `Exception`."""


class SaleEnv(Protocol):
    base_currency: str
    timezone: str
    tax_rate: float
    tax_rule: str

    def now_ms(self) -> int: ...
    def new_id(self) -> str: ...
    def next_number(self, kind: str) -> str: ...
    def product(self, product_id: str | None, sku: str | None) -> dict[str, Any] | None: ...
    def location_id(self, name: str) -> str: ...
    def location(self, key: str) -> dict[str, Any] | None: ...
    def allocate(self, sale_id: str, location_id: str, product_id: str, quantity: float) -> float: ...
    def held(self, sale_id: str, product_id: str) -> dict[str, float]: ...
    def available(self, location_id: str, product_id: str) -> float: ...
    def deallocate(self, sale_id: str, location_id: str, product_id: str, quantity: float) -> None: ...
    def release(self, sale_id: str) -> None: ...
    def consume(self, sale_id: str, location_id: str, product_id: str, quantity: float) -> None: ...
    def restock(self, location_id: str, product_id: str, quantity: float) -> None: ...


def money(x: float) -> float:
    return round(x + 0.0, 2)


def business_date(value: Any, field: str) -> str:
    """A business date as the API emits it (`yyyy-MM-ddT00:00:00`, no zone) from what a client sent."""
    text = str(value or "").strip()
    try:
        day = datetime.strptime(text[:10], "%Y-%m-%d")
    except ValueError:
        raise SaleError(f"{field} '{text}' is not a valid date. Expected yyyy-MM-dd.") from None
    return f"{day:%Y-%m-%d}T00:00:00"


def _number(raw: dict[str, Any], field: str, default: float = 0.0) -> float:
    try:
        return float(raw.get(field, default))
    except (TypeError, ValueError):
        raise SaleError(f"{field} must be a number, not {raw.get(field)!r}") from None


# ---------------------------------------------------------------- creation and header edits


def create_sale(env: SaleEnv, sale_id: str, customer: dict[str, Any], location: dict[str, Any],
                body: dict[str, Any], rate: float) -> Doc:
    """A new DRAFT sale (nothing entered yet); `rate` is base units per 1 customer-currency unit."""
    now = env.now_ms()
    contact = (customer.get("Contacts") or [{}])[0]
    address = (customer.get("Addresses") or [{}])[0]
    order_date = body.get("SaleOrderDate") or fmt_business_date(now, env.timezone)
    doc: Doc = {
        "ID": sale_id,
        "Customer": customer["Name"],
        "CustomerID": customer["ID"],
        "Contact": body.get("Contact", contact.get("Name", "")),
        "Phone": body.get("Phone", contact.get("Phone", "")),
        "Email": body.get("Email", contact.get("Email", "")),
        "DefaultAccount": "4000",
        "SkipQuote": True,
        "BillingAddress": dict(address),
        "ShippingAddress": body.get("ShippingAddress") or dict(address),
        "ShippingNotes": body.get("ShippingNotes", ""),
        "BaseCurrency": env.base_currency,
        "CustomerCurrency": customer["Currency"],
        "CurrencyRate": rate,
        "TaxRule": body.get("TaxRule", env.tax_rule),
        "TaxCalculation": "Exclusive",
        "Terms": customer.get("PaymentTerm", "30 days"),
        "PriceTier": customer.get("PriceTier", "Tier 1"),
        "ShipBy": body.get("ShipBy") or add_days_date(order_date, 7),
        "Location": location["Name"],
        "SaleOrderDate": order_date,
        "LastModifiedOn": fmt_stamp(now),
        "Note": body.get("Note", ""),
        "CustomerReference": body.get("CustomerReference", ""),
        "COGSAmount": 0.0,
        "Status": "DRAFT",
        "CombinedPickingStatus": "NOT AVAILABLE",
        "CombinedPackingStatus": "NOT AVAILABLE",
        "CombinedShippingStatus": "NOT AVAILABLE",
        "CombinedInvoiceStatus": "NOT AVAILABLE",
        "CombinedPaymentStatus": "UNPAID",
        "CombinedTrackingNumbers": "",
        "FulFilmentStatus": "NOT AVAILABLE",
        "Carrier": body.get("Carrier", customer.get("Carrier", "")),
        "ExternalID": body.get("ExternalID", ""),
        "SalesRepresentative": body.get("SalesRepresentative", customer.get("SalesRepresentative", "")),
        "ServiceOnly": False,
        "SourceChannel": body.get("SourceChannel", ""),
        "Type": "Simple Sale",
        "AdditionalAttributes": {},
        "Attachments": [],
        "Quote": {"Status": "NOT AVAILABLE", "Memo": "", "Lines": [], "AdditionalCharges": [],
                  "TotalBeforeTax": 0.0, "Tax": 0.0, "Total": 0.0},
        "Order": {"SaleOrderNumber": env.next_number("SO"), "Memo": "", "Status": "NOT AVAILABLE",
                  "Lines": [], "AdditionalCharges": [], "TotalBeforeTax": 0.0, "Tax": 0.0, "Total": 0.0},
        "Fulfilments": [],
        "Invoices": [],
        "CreditNotes": [],
        "ManualJournals": {"Status": "NOT AVAILABLE", "Lines": []},
        "InventoryMovements": [],
    }
    recompute(doc)
    return doc


_EDITABLE_HEADER = ("CustomerReference", "Note", "ShipBy", "ShippingNotes", "ShippingAddress", "ExternalID",
                    "Carrier", "SalesRepresentative", "SourceChannel", "Contact", "Phone", "Email")


def update_sale(env: SaleEnv, doc: Doc, body: dict[str, Any]) -> Doc:
    """PUT sale: header fields only (stages have their own endpoints).

    `Location`/`LocationID` may change only while the Order is not authorised (DRAFT or NOT AVAILABLE): an
    authorised order holds stock at its location, so the sale must be undone first.
    """
    _require_not_voided(doc)
    wanted = body.get("LocationID") or body.get("Location")
    if wanted:
        location = env.location(str(wanted))
        if location is None:
            raise SaleError(f"Location not found: {wanted!r}")
        if location.get("IsDeprecated"):
            raise SaleError(f"Location {location['Name']} is deprecated")
        if location["Name"] != doc["Location"]:
            if doc["Order"]["Status"] not in EDITABLE_STAGE:
                raise SaleError(f"Location cannot be changed while the Order is {doc['Order']['Status']}. "
                                "Undo the sale before changing its location.")
            doc["Location"] = location["Name"]
    for key in _EDITABLE_HEADER:
        if key in body:
            doc[key] = body[key]
    return touch(env, doc)


# ---------------------------------------------------------------- order


def _make_line(env: SaleEnv, raw: dict[str, Any], tax_rate: float) -> dict[str, Any]:
    product = env.product(raw.get("ProductID"), raw.get("SKU"))
    if product is None:
        raise SaleError(f"Product not found: {raw.get('ProductID') or raw.get('SKU')!r}")
    try:
        quantity = float(raw.get("Quantity", 0))
        price = float(raw.get("Price", product.get("PriceTier1", 0.0)))
        discount = float(raw.get("Discount", 0.0))
    except (TypeError, ValueError):
        raise SaleError("Quantity, Price and Discount must be numbers") from None
    if quantity <= 0:
        raise SaleError(f"Quantity must be greater than zero for product {product['SKU']}")
    total = money(quantity * price * (1 - discount / 100))
    return {
        "ProductID": product["ID"], "SKU": product["SKU"], "Name": product["Name"],
        "Quantity": quantity, "Price": price, "Discount": discount,
        "Tax": money(total * tax_rate), "TaxRule": env.tax_rule, "Total": total,
        "AverageCost": product.get("AverageCost", 0.0), "Comment": raw.get("Comment", ""),
        "DropShip": False, "BackorderQuantity": 0.0,
    }


def _totals(block: dict[str, Any]) -> None:
    block["TotalBeforeTax"] = money(sum(line["Total"] for line in block["Lines"]))
    block["Tax"] = money(sum(line["Tax"] for line in block["Lines"]))
    block["Total"] = money(block["TotalBeforeTax"] + block["Tax"])


def set_order(env: SaleEnv, doc: Doc, body: dict[str, Any]) -> Doc:
    """POST sale/order: save the order as DRAFT or AUTHORISE it (allocating stock at the sale's location)."""
    _require_not_voided(doc)
    order = doc["Order"]
    if order["Status"] in AUTHORISED_LIKE:
        raise SaleError("Order is already AUTHORISED. Undo the sale before changing the order.")
    status = str(body.get("Status", "DRAFT")).upper()
    if status not in ("DRAFT", "AUTHORISED"):
        raise SaleError(f"Order Status must be DRAFT or AUTHORISED, not {status!r}")
    if "Lines" in body:
        if not isinstance(body["Lines"], list):
            raise SaleError("Lines must be a list")
        order["Lines"] = [_make_line(env, raw, env.tax_rate) for raw in body["Lines"]]
    if "Memo" in body:
        order["Memo"] = body["Memo"]
    if not order["Lines"]:
        raise SaleError("Order has no lines")
    _totals(order)
    order["Status"] = status
    if status == "AUTHORISED":
        location_id = env.location_id(doc["Location"])
        for line in order["Lines"]:
            allocated = env.allocate(doc["ID"], location_id, line["ProductID"], line["Quantity"])
            line["BackorderQuantity"] = round(line["Quantity"] - allocated, 4)
    return touch(env, doc)


# ---------------------------------------------------------------- fulfilment


def _ordered(doc: Doc) -> Counter[str]:
    c: Counter[str] = Counter()
    for line in doc["Order"]["Lines"]:
        c[line["ProductID"]] += line["Quantity"]
    return c


def _stage_quantities(doc: Doc, stage: str, statuses: tuple[str, ...] = AUTHORISED_LIKE,
                      lines_from: str | None = None) -> Counter[str]:
    """Quantity per product over live tasks whose `stage` is in `statuses` (lines read from `lines_from`)."""
    c: Counter[str] = Counter()
    for task in doc["Fulfilments"]:
        if task["FulFilmentStatus"] == "VOIDED" or task[stage]["Status"] not in statuses:
            continue
        for line in task[lines_from or stage]["Lines"]:
            c[line["ProductID"]] += line["Quantity"]
    return c


def _find_task(doc: Doc, task_id: str) -> dict[str, Any]:
    for task in doc["Fulfilments"]:
        if task["TaskID"].lower() == str(task_id).lower():
            return task
    raise SaleError(f"Fulfilment task {task_id} not found")


def _require_order_authorised(doc: Doc) -> None:
    _require_not_voided(doc)
    if doc["Order"]["Status"] not in AUTHORISED_LIKE:
        raise SaleError("Sale Order should be AUTHORISED")


def _require_not_voided(doc: Doc) -> None:
    if doc["Status"] == "VOIDED":
        raise SaleError("Sale is VOIDED")


def _new_task(env: SaleEnv, doc: Doc, task_id: str) -> dict[str, Any]:
    task = {
        "TaskID": task_id,
        "FulfillmentNumber": len(doc["Fulfilments"]) + 1,
        "FulFilmentStatus": "NOT FULFILLED",
        "LinkedInvoiceNumber": "",
        "Pick": {"Status": "DRAFT", "Lines": []},
        "Pack": {"Status": "NOT AVAILABLE", "Lines": []},
        "Ship": {"Status": "NOT AVAILABLE", "RequireBy": doc["ShipBy"],
                 "ShippingAddress": doc["ShippingAddress"], "ShippingNotes": doc["ShippingNotes"], "Lines": []},
    }
    doc["Fulfilments"].append(task)
    return task


def add_fulfilment(env: SaleEnv, doc: Doc) -> dict[str, Any]:
    """POST sale/fulfilment: a new task. Converts a Simple Sale into an Advanced Sale (the real quirk)."""
    _require_order_authorised(doc)
    for task in doc["Fulfilments"]:
        if task["FulFilmentStatus"] != "VOIDED" and task["Pick"]["Status"] not in AUTHORISED_LIKE:
            raise SaleError(f"Fulfilment {task['FulfillmentNumber']} Pick is not AUTHORISED. "
                            "A new fulfilment can be created only when every Pick is AUTHORISED.")
    doc["Type"] = "Advanced Sale"
    task = _new_task(env, doc, env.new_id())
    touch(env, doc)
    return task


def task_for_stage(env: SaleEnv, doc: Doc, task_id: str) -> dict[str, Any]:
    """A Simple Sale has one implicit task whose TaskID is the SaleID; it appears with the first pick."""
    if doc["Type"] == "Simple Sale" and not doc["Fulfilments"] and task_id.lower() == doc["ID"].lower():
        _require_order_authorised(doc)
        return _new_task(env, doc, doc["ID"])
    return _find_task(doc, task_id)


def _remaining_to_pick(doc: Doc) -> Counter[str]:
    picked = _stage_quantities(doc, "Pick", (*AUTHORISED_LIKE, "DRAFT"))
    return _ordered(doc) - picked


def _product_line(doc: Doc, product_id: str, quantity: float) -> dict[str, Any]:
    for line in doc["Order"]["Lines"]:
        if line["ProductID"] == product_id:
            return {"ProductID": product_id, "SKU": line["SKU"], "Name": line["Name"], "Quantity": quantity}
    raise SaleError(f"Product {product_id} is not on the order")


def _status_of(body: dict[str, Any], allowed: tuple[str, ...]) -> str:
    status = str(body.get("Status", "DRAFT")).upper()
    if status not in allowed:
        raise SaleError(f"Status must be one of {', '.join(allowed)}, not {status!r}")
    return status


def _location_of(env: SaleEnv, key: str) -> tuple[str, str]:
    location = env.location(key)
    if location is None:
        raise SaleError(f"Location not found: {key!r}")
    return location["Name"], location["ID"]


def set_pick(env: SaleEnv, doc: Doc, task: dict[str, Any], body: dict[str, Any]) -> Doc:
    """POST/PUT sale/fulfilment/pick. `AutoPickMode: AUTOPICK` picks every remaining unit and authorises.

    Each line may name its own `Location`/`LocationID` (a fulfilment may pick from any location); lines
    without one pick from the sale's location. Authorising takes the stock at each line's location.
    """
    _require_order_authorised(doc)
    pick = task["Pick"]
    if pick["Status"] not in EDITABLE_STAGE:
        raise SaleError(f"Pick is {pick['Status']}; it can be changed only while DRAFT or NOT AVAILABLE")
    autopick = str(body.get("AutoPickMode", "")).upper() == "AUTOPICK"
    status = "AUTHORISED" if autopick else _status_of(body, ("DRAFT", "AUTHORISED"))
    header = _location_of(env, doc["Location"])
    pick["Lines"] = []  # this task's own draft lines do not count against what remains
    wanted: dict[tuple[str, str, str], float] = {}  # (product id, location name, location id) -> quantity
    if body.get("Lines") and not autopick:
        for raw in body["Lines"]:
            product = env.product(raw.get("ProductID"), raw.get("SKU"))
            if product is None:
                raise SaleError(f"Product not found: {raw.get('ProductID') or raw.get('SKU')!r}")
            where = raw.get("LocationID") or raw.get("Location")
            key = (product["ID"], *(_location_of(env, str(where)) if where else header))
            wanted[key] = wanted.get(key, 0.0) + _number(raw, "Quantity")
    else:
        wanted = {(pid, *header): qty for pid, qty in _remaining_to_pick(doc).items()}
    per_product: Counter[str] = Counter()
    for (pid, _, _), qty in wanted.items():
        per_product[pid] += qty
    remaining = _remaining_to_pick(doc)
    for product_id, qty in per_product.items():
        if qty > remaining.get(product_id, 0) + 1e-9:
            raise SaleError(f"Cannot pick {qty:g} of {product_id}: only {remaining.get(product_id, 0):g} left")
    if not +per_product:
        raise SaleError("Nothing left to pick on this sale")
    lines = [
        {**_product_line(doc, pid, qty), "Location": name, "LocationID": location_id,
         "BatchSN": "", "ExpiryDate": None}
        for (pid, name, location_id), qty in wanted.items() if qty > 0
    ]
    if status == "AUTHORISED":
        _hold_pick_stock(env, doc, task, lines)
    pick["Lines"] = lines
    pick["Status"] = status
    return touch(env, doc)


def _pick_claims(doc: Doc, exclude: dict[str, Any]) -> Counter[tuple[str, str]]:
    """(product, location id) -> quantity authorised picks of other live tasks hold but have not shipped."""
    claims: Counter[tuple[str, str]] = Counter()
    for task in doc["Fulfilments"]:
        if task is exclude or task["FulFilmentStatus"] == "VOIDED" or task["Pick"]["Status"] not in AUTHORISED_LIKE:
            continue
        if task["Ship"]["Status"] == "AUTHORISED":
            continue  # shipped: its stock is consumed, nothing is held for it any more
        for line in task["Pick"]["Lines"]:
            claims[(line["ProductID"], line["LocationID"])] += line["Quantity"]
    return claims


def _hold_pick_stock(env: SaleEnv, doc: Doc, task: dict[str, Any], lines: list[dict[str, Any]]) -> None:
    """An authorised pick takes its stock at each line's location.

    The sale must hold the quantity there: what it already holds counts, the rest comes from free stock, and
    the same quantity is freed from what the order held elsewhere (usually its header location), so the sale
    never holds more than it ordered. A location without enough free stock refuses the pick: Cin7 Core does
    not pick into negative stock (the stage shows NOT AVAILABLE instead). Everything is checked before any
    stock moves, so a refused pick leaves the ledger as it was.
    """
    sale_id = doc["ID"]
    claims = _pick_claims(doc, exclude=task)
    for line in lines:
        claims[(line["ProductID"], line["LocationID"])] += line["Quantity"]
    needs: list[tuple[str, str, float]] = []
    for line in {(line["ProductID"], line["LocationID"]): line for line in lines}.values():
        pid, location_id = line["ProductID"], line["LocationID"]
        need = claims[(pid, location_id)] - env.held(sale_id, pid).get(location_id, 0.0)
        if need <= 1e-9:
            continue
        if env.available(location_id, pid) < need - 1e-9:
            raise SaleError(f"Not enough stock at location {line['Location']} for SKU {line['SKU']}")
        needs.append((pid, location_id, need))
    for pid, location_id, need in needs:
        env.allocate(sale_id, location_id, pid, need)
        surplus = need
        for other, quantity in env.held(sale_id, pid).items():
            spare = min(quantity - claims.get((pid, other), 0.0), surplus)
            if other != location_id and spare > 1e-9:
                env.deallocate(sale_id, other, pid, spare)
                surplus -= spare


def set_pack(env: SaleEnv, doc: Doc, task: dict[str, Any], body: dict[str, Any]) -> Doc:
    """POST/PUT sale/fulfilment/pack: packs what the task picked, one box unless lines say otherwise."""
    _require_order_authorised(doc)
    if task["Pick"]["Status"] not in AUTHORISED_LIKE:
        raise SaleError("Pick should be AUTHORISED before packing")
    pack = task["Pack"]
    if pack["Status"] not in EDITABLE_STAGE:
        raise SaleError(f"Pack is {pack['Status']}; it can be changed only while DRAFT or NOT AVAILABLE")
    status = _status_of(body, ("DRAFT", "AUTHORISED"))
    boxes = {str(r.get("ProductID")): r.get("Box", "Box 1") for r in body.get("Lines") or []}
    pack["Lines"] = [{**line, "Box": boxes.get(line["ProductID"], "Box 1")} for line in task["Pick"]["Lines"]]
    pack["Status"] = status
    return touch(env, doc)


def set_ship(env: SaleEnv, doc: Doc, task: dict[str, Any], body: dict[str, Any]) -> Doc:
    """POST/PUT sale/fulfilment/ship. Request lines carry `Box`; the stored (response) lines carry `Boxes`."""
    _require_order_authorised(doc)
    if task["Pack"]["Status"] not in AUTHORISED_LIKE:
        raise SaleError("Pack should be AUTHORISED before shipping")
    ship = task["Ship"]
    # The reference refuses a ship write once the stage is AUTHORISED or PARTIALLY AUTHORISED; a partial shipment
    # could then never be completed, so (a documented assumption) a PARTIALLY AUTHORISED stage still takes an
    # update that repeats its shipped lines and adds the next shipment, moving on to AUTHORISED.
    if ship["Status"] == "AUTHORISED":
        raise SaleError(f"Ship is already {ship['Status']}")
    status = _status_of(body, ("DRAFT", "PARTIALLY AUTHORISED", "AUTHORISED"))
    if ship["Status"] == "PARTIALLY AUTHORISED":
        if status == "DRAFT":
            raise SaleError("Ship is PARTIALLY AUTHORISED; it cannot go back to DRAFT (undo the fulfilment)")
        shipped = {line["TrackingNumber"] for line in ship["Lines"] if line.get("IsShipped")}
        sent = {raw.get("TrackingNumber", "") for raw in body.get("Lines") or []}
        if not shipped <= sent:
            raise SaleError("Ship lines already shipped must be kept when the shipment is updated")
    now = env.now_ms()
    today = fmt_business_date(now, env.timezone)
    lines = body.get("Lines") or [{}]
    ship["Lines"] = [
        {
            "ID": env.new_id(),
            "ShipmentDate": raw.get("ShipmentDate") or today,
            "Carrier": raw.get("Carrier") or doc.get("Carrier", ""),
            "Boxes": raw.get("Box") or raw.get("Boxes") or "Box 1",
            "TrackingNumber": raw.get("TrackingNumber", ""),
            "TrackingURL": raw.get("TrackingURL", ""),
            "IsShipped": bool(raw.get("IsShipped", status != "DRAFT")),
        }
        for raw in lines
    ]
    for key in ("RequireBy", "ShippingAddress", "ShippingNotes"):
        if key in body:
            ship[key] = body[key]
    ship["Status"] = status
    if status == "AUTHORISED":
        costs = {line["ProductID"]: line["AverageCost"] for line in doc["Order"]["Lines"]}
        for line in task["Pick"]["Lines"]:
            env.consume(doc["ID"], _line_location_id(env, doc, line), line["ProductID"], line["Quantity"])
            cogs = money(line["Quantity"] * costs.get(line["ProductID"], 0.0))
            doc["COGSAmount"] = money(doc["COGSAmount"] + cogs)
            doc["InventoryMovements"].append({"TaskID": task["TaskID"], "ProductID": line["ProductID"],
                                              "Date": fmt_business_date(now, env.timezone), "COGS": cogs})
    return touch(env, doc)


def void_fulfilment(env: SaleEnv, doc: Doc, task_id: str, void: bool) -> Doc:
    """DELETE sale/fulfilment?TaskID=&Void=: Advanced Sales only; Void voids the task, otherwise Undo."""
    _require_not_voided(doc)
    if doc["Type"] != "Advanced Sale":
        raise SaleError("Fulfilment can be deleted only for an Advanced Sale")
    task = _find_task(doc, task_id)
    if task["FulFilmentStatus"] == "VOIDED":
        raise SaleError("Fulfilment is already VOIDED")
    _return_shipped_stock(env, doc, task)
    if void:
        for stage in ("Pick", "Pack", "Ship"):
            task[stage]["Status"] = "VOIDED"
        task["FulFilmentStatus"] = "VOIDED"
    else:
        _undo_task(task)
    return touch(env, doc)


def _line_location_id(env: SaleEnv, doc: Doc, line: dict[str, Any]) -> str:
    return line.get("LocationID") or env.location_id(doc["Location"])


def _return_shipped_stock(env: SaleEnv, doc: Doc, task: dict[str, Any]) -> None:
    """Shipped stock goes back to the location each line was picked from."""
    if task["Ship"]["Status"] == "AUTHORISED":
        for line in task["Pick"]["Lines"]:
            env.restock(_line_location_id(env, doc, line), line["ProductID"], line["Quantity"])
        reversed_cogs = sum(m["COGS"] for m in doc["InventoryMovements"] if m["TaskID"] == task["TaskID"])
        doc["InventoryMovements"] = [m for m in doc["InventoryMovements"] if m["TaskID"] != task["TaskID"]]
        doc["COGSAmount"] = money(doc["COGSAmount"] - reversed_cogs)


def _undo_task(task: dict[str, Any]) -> None:
    task["Pick"]["Status"] = "DRAFT"
    for stage in ("Pack", "Ship"):
        task[stage]["Status"] = "DRAFT" if task[stage]["Status"] != "NOT AVAILABLE" else "NOT AVAILABLE"


# ---------------------------------------------------------------- invoices, payments, credit notes


def _invoiced(doc: Doc, exclude: dict[str, Any] | None = None) -> Counter[str]:
    c: Counter[str] = Counter()
    for invoice in doc["Invoices"]:
        if invoice["Status"] != "VOIDED" and invoice is not exclude:
            for line in invoice["Lines"]:
                c[line["ProductID"]] += line["Quantity"]
    return c


def find_invoice(doc: Doc, task_id: str) -> dict[str, Any]:
    for invoice in doc["Invoices"]:
        if invoice["TaskID"].lower() == str(task_id).lower():
            return invoice
    raise SaleError(f"Invoice with TaskID = {task_id} not found")


def _invoice_lines(env: SaleEnv, doc: Doc, raw_lines: list[Any] | None,
                   exclude: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Invoice lines priced from the order lines (tax and total pro rata), so re-invoicing the same quantities
    gives the same amounts to the cent. Without `raw_lines`, everything not yet invoiced elsewhere."""
    remaining = _ordered(doc) - _invoiced(doc, exclude)
    if raw_lines is None:
        wanted = Counter(remaining)
    else:
        if not isinstance(raw_lines, list):
            raise SaleError("Lines must be a list")
        wanted = Counter()
        for raw in raw_lines:
            product = env.product(raw.get("ProductID"), raw.get("SKU"))
            if product is None or product["ID"] not in _ordered(doc):
                raise SaleError(f"Product {raw.get('ProductID') or raw.get('SKU')!r} is not on the order")
            quantity = _number(raw, "Quantity")
            if quantity <= 0:
                raise SaleError(f"Quantity must be greater than zero for product {product['SKU']}")
            wanted[product["ID"]] += quantity
        for product_id, quantity in wanted.items():
            if quantity > remaining.get(product_id, 0) + 1e-9:
                raise SaleError(f"Cannot invoice {quantity:g} of {product_id}: only "
                                f"{remaining.get(product_id, 0):g} left to invoice")
    lines = []
    for order_line in doc["Order"]["Lines"]:
        qty = min(order_line["Quantity"], wanted.get(order_line["ProductID"], 0))
        if qty <= 0:
            continue
        wanted[order_line["ProductID"]] -= qty
        share = qty / order_line["Quantity"]
        lines.append({
            "ProductID": order_line["ProductID"], "SKU": order_line["SKU"], "Name": order_line["Name"],
            "Quantity": qty, "Price": order_line["Price"], "Discount": order_line["Discount"],
            "Tax": money(order_line["Tax"] * share), "TaxRule": order_line["TaxRule"],
            "Total": money(order_line["Total"] * share), "Account": "4000", "Comment": "",
        })
    return lines


def add_invoice(env: SaleEnv, doc: Doc, body: dict[str, Any], rate: float | None = None) -> dict[str, Any]:
    """POST sale/invoice (DRAFT or AUTHORISED): the body's `Lines`, else whatever of the order is not invoiced."""
    _require_order_authorised(doc)
    status = _status_of(body, ("DRAFT", "AUTHORISED"))
    lines = _invoice_lines(env, doc, body.get("Lines") if "Lines" in body else None)
    if not lines:
        raise SaleError("Everything on this order is already invoiced")
    now = env.now_ms()
    invoice_date = (business_date(body["InvoiceDate"], "InvoiceDate") if body.get("InvoiceDate")
                    else fmt_business_date(now, env.timezone))
    if rate is None:
        rate = _number(body, "CurrencyConversionRate") if body.get("CurrencyConversionRate") else doc["CurrencyRate"]
    first = not doc["Invoices"] and doc["Type"] == "Simple Sale"
    invoice = {
        "TaskID": doc["ID"] if first else env.new_id(),
        "InvoiceNumber": env.next_number("INV"),
        "InvoiceDate": invoice_date,
        "InvoiceDueDate": (business_date(body["InvoiceDueDate"], "InvoiceDueDate") if body.get("InvoiceDueDate")
                           else add_days_date(invoice_date, 30)),
        "CurrencyConversionRate": rate,
        "Status": status,
        "Lines": lines,
        "AdditionalCharges": [],
        "Payments": [],
        "Paid": 0.0,
        "LinkedFulfillmentNumber": "",
        "Memo": body.get("Memo", ""),
    }
    _totals(invoice)
    if doc["Fulfilments"]:
        invoice["LinkedFulfillmentNumber"] = str(doc["Fulfilments"][-1]["FulfillmentNumber"])
        doc["Fulfilments"][-1]["LinkedInvoiceNumber"] = invoice["InvoiceNumber"]
    doc["Invoices"].append(invoice)
    touch(env, doc)
    return invoice


def update_invoice(env: SaleEnv, doc: Doc, invoice: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """POST (with the invoice's `TaskID`) or PUT sale/invoice: edit a DRAFT invoice and optionally authorise it.

    Only a DRAFT invoice can change (an authorised one is undone first with DELETE sale/invoice). `Lines`, when
    sent, replace the lines (an empty list empties the invoice, the API's empty-collection rule); dates, memo
    and rate keep their values unless sent. The invoice keeps its TaskID and InvoiceNumber.
    """
    _require_order_authorised(doc)
    if invoice["Status"] != "DRAFT":
        raise SaleError(f"Invoice {invoice['InvoiceNumber']} is {invoice['Status']}; it can be changed only "
                        "while DRAFT")
    status = _status_of(body, ("DRAFT", "AUTHORISED"))
    if "Lines" in body:
        invoice["Lines"] = _invoice_lines(env, doc, body["Lines"] or [], exclude=invoice)
    if body.get("InvoiceDate"):
        invoice["InvoiceDate"] = business_date(body["InvoiceDate"], "InvoiceDate")
    if body.get("InvoiceDueDate"):
        invoice["InvoiceDueDate"] = business_date(body["InvoiceDueDate"], "InvoiceDueDate")
    if body.get("CurrencyConversionRate"):
        invoice["CurrencyConversionRate"] = _number(body, "CurrencyConversionRate")
    if "Memo" in body:
        invoice["Memo"] = body["Memo"]
    if status == "AUTHORISED" and not invoice["Lines"]:
        raise SaleError(f"Invoice {invoice['InvoiceNumber']} has no lines")
    _totals(invoice)
    invoice["Status"] = status
    touch(env, doc)
    return invoice


def void_invoice(env: SaleEnv, doc: Doc, task_id: str, void: bool) -> Doc:
    """DELETE sale/invoice?TaskID=&Void=: Void voids the invoice; otherwise Undo returns it to DRAFT.

    Both are refused while the invoice has payments (delete them first) or a credit note against it.
    """
    _require_not_voided(doc)
    invoice = find_invoice(doc, task_id)
    number = invoice["InvoiceNumber"]
    if invoice["Status"] == "VOIDED":
        raise SaleError(f"Invoice {number} is already VOIDED")
    if invoice["Payments"]:
        raise SaleError(f"Invoice {number} has payments; delete the payments before Void or Undo")
    if any(c["Status"] != "VOIDED" and c["CreditNoteInvoiceNumber"] == number for c in doc["CreditNotes"]):
        raise SaleError(f"Invoice {number} has a credit note; void the credit note first")
    if void:
        invoice["Status"] = "VOIDED"
    elif invoice["Status"] == "DRAFT":
        raise SaleError(f"Nothing to undo: invoice {number} is DRAFT")
    else:
        invoice["Status"] = "DRAFT"
    return touch(env, doc)


def _refresh_paid(invoice: dict[str, Any]) -> None:
    invoice["Paid"] = money(sum(p["Amount"] for p in invoice["Payments"]))
    if invoice["Status"] in AUTHORISED_LIKE:
        invoice["Status"] = "PAID" if invoice["Paid"] >= invoice["Total"] - 0.005 else "AUTHORISED"


def add_payment(env: SaleEnv, doc: Doc, invoice: dict[str, Any], amount: float, rate: float, *,
                reference: str | None = None, date_paid: str | None = None,
                account: str = "1100") -> dict[str, Any]:
    """A payment against an AUTHORISED invoice (amount in the customer currency); PAID once fully paid."""
    if invoice["Status"] != "AUTHORISED":
        raise SaleError(f"Payments can be added only to an AUTHORISED invoice; invoice "
                        f"{invoice['InvoiceNumber']} is {invoice['Status']}")
    amount = money(amount)
    balance = money(invoice["Total"] - invoice["Paid"])
    if amount <= 0:
        raise SaleError("Payment Amount must be greater than zero")
    if amount > balance + 0.005:
        raise SaleError(f"Payment of {amount:.2f} exceeds the balance {balance:.2f} of invoice "
                        f"{invoice['InvoiceNumber']}")
    payment = {
        "ID": env.new_id(), "Reference": f"PMT {invoice['InvoiceNumber']}" if reference is None else reference,
        "Amount": amount,
        "DatePaid": business_date(date_paid, "DatePaid") if date_paid else fmt_business_date(env.now_ms(),
                                                                                             env.timezone),
        "Account": account, "CurrencyRate": rate,
    }
    invoice["Payments"].append(payment)
    _refresh_paid(invoice)
    touch(env, doc)
    return payment


def _find_payment(doc: Doc, payment_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    for invoice in doc["Invoices"]:
        for payment in invoice["Payments"]:
            if payment["ID"].lower() == str(payment_id).lower():
                return invoice, payment
    raise SaleError(f"Payment with ID = {payment_id} not found")


def delete_payment(env: SaleEnv, doc: Doc, payment_id: str) -> Doc:
    """DELETE sale/payment?ID=: the payment goes; a PAID invoice is AUTHORISED again."""
    _require_not_voided(doc)
    invoice, payment = _find_payment(doc, payment_id)
    invoice["Payments"].remove(payment)
    _refresh_paid(invoice)
    return touch(env, doc)


def update_payment(env: SaleEnv, doc: Doc, payment_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """PUT sale/payment (`ID`): Reference, Amount, DatePaid, Account and CurrencyRate may change."""
    _require_not_voided(doc)
    invoice, payment = _find_payment(doc, payment_id)
    if "Amount" in body:
        amount = money(_number(body, "Amount"))
        balance = money(invoice["Total"] - invoice["Paid"] + payment["Amount"])
        if amount <= 0 or amount > balance + 0.005:
            raise SaleError(f"Payment Amount must be within 0.01..{balance:.2f} for invoice "
                            f"{invoice['InvoiceNumber']}")
        payment["Amount"] = amount
    if body.get("DatePaid"):
        payment["DatePaid"] = business_date(body["DatePaid"], "DatePaid")
    if "CurrencyRate" in body:
        payment["CurrencyRate"] = _number(body, "CurrencyRate")
    for key in ("Reference", "Account"):
        if key in body:
            payment[key] = str(body[key])
    _refresh_paid(invoice)
    touch(env, doc)
    return payment


def payment_rows(doc: Doc) -> list[dict[str, Any]]:
    """GET sale/payment?SaleID=: every invoice payment of the sale as a flat (bare) array."""
    return [
        {"SaleID": doc["ID"], "TaskID": invoice["TaskID"], "SaleOrderNumber": doc["Order"]["SaleOrderNumber"],
         "InvoiceNumber": invoice["InvoiceNumber"], "CreditNoteNumber": "", "Type": "PAYMENT", **payment}
        for invoice in doc["Invoices"] for payment in invoice["Payments"]
    ]


def add_credit_note(env: SaleEnv, doc: Doc, rate: float) -> dict[str, Any]:
    invoices = [i for i in doc["Invoices"] if i["Status"] in AUTHORISED_LIKE]
    if not invoices:
        raise SaleError("A credit note needs an AUTHORISED invoice")
    invoice = invoices[-1]
    note = {
        "TaskID": env.new_id(),
        "CreditNoteNumber": env.next_number("CR"),
        "CreditNoteDate": fmt_business_date(env.now_ms(), env.timezone),
        "CreditNoteInvoiceNumber": invoice["InvoiceNumber"],
        "CreditNoteConversionRate": rate,
        "Status": "AUTHORISED",
        "Lines": [dict(line) for line in invoice["Lines"]],
        "Restock": [],
        "Refunds": [{"ID": env.new_id(), "Amount": invoice["Total"], "CurrencyRate": rate,
                     "DatePaid": fmt_business_date(env.now_ms(), env.timezone)}],
    }
    _totals(note)
    doc["CreditNotes"].append(note)
    touch(env, doc)
    return note


# ---------------------------------------------------------------- void and undo


def void_sale(env: SaleEnv, doc: Doc) -> Doc:
    """DELETE sale?Void=true: VOIDED, allocations released; the sale stays listed."""
    _require_not_voided(doc)
    if any(i["Status"] in AUTHORISED_LIKE for i in doc["Invoices"]):
        raise SaleError("Sale has an AUTHORISED invoice. Void the invoice before voiding the sale.")
    env.release(doc["ID"])
    for task in doc["Fulfilments"]:
        _return_shipped_stock(env, doc, task)
    for block in (doc["Quote"], doc["Order"]):
        if block["Status"] != "NOT AVAILABLE":
            block["Status"] = "VOIDED"
    for task in doc["Fulfilments"]:
        for stage in ("Pick", "Pack", "Ship"):
            task[stage]["Status"] = "VOIDED"
        task["FulFilmentStatus"] = "VOIDED"
    for invoice in doc["Invoices"]:
        invoice["Status"] = "VOIDED"
    doc["Status"] = "VOIDED"
    return touch(env, doc)


def undo_sale(env: SaleEnv, doc: Doc) -> Doc:
    """DELETE sale?Void=false: revert every authorised stage to DRAFT (stock goes back, allocations freed)."""
    _require_not_voided(doc)
    if any(i["Payments"] for i in doc["Invoices"]) or doc["CreditNotes"]:
        raise SaleError("Sale has payments or credit notes; remove them before Undo")
    if doc["Order"]["Status"] not in AUTHORISED_LIKE:
        raise SaleError("Nothing to undo: the order is not AUTHORISED")
    for invoice in doc["Invoices"]:
        if invoice["Status"] == "AUTHORISED":
            invoice["Status"] = "DRAFT"
    for task in doc["Fulfilments"]:
        _return_shipped_stock(env, doc, task)
        if task["FulFilmentStatus"] != "VOIDED":
            _undo_task(task)
    env.release(doc["ID"])
    doc["Order"]["Status"] = "DRAFT"
    for line in doc["Order"]["Lines"]:
        line["BackorderQuantity"] = 0.0
    return touch(env, doc)


# ---------------------------------------------------------------- derived fields


def touch(env: SaleEnv, doc: Doc) -> Doc:
    doc["LastModifiedOn"] = fmt_stamp(env.now_ms())
    recompute(doc)
    return doc


def _progress(done: float, total: float, none: str, part: str, full: str) -> str:
    if done <= 1e-9:
        return none
    return full if done >= total - 1e-9 else part


def recompute(doc: Doc) -> None:
    """Status, Combined* and FulFilmentStatus from the stages (the status tables of §6)."""
    if doc["Status"] == "VOIDED":
        for key in ("CombinedPickingStatus", "CombinedPackingStatus", "CombinedShippingStatus",
                    "CombinedInvoiceStatus"):
            doc[key] = "NOT AVAILABLE"
        doc["FulFilmentStatus"] = "VOIDED"
        return
    order = doc["Order"]
    ordered = sum(_ordered(doc).values())
    live_invoices = [i for i in doc["Invoices"] if i["Status"] != "VOIDED"]
    paid = sum(i["Paid"] for i in live_invoices)
    invoiced_total = sum(i["Total"] for i in live_invoices if i["Status"] in AUTHORISED_LIKE)
    credited = any(c["Status"] == "AUTHORISED" for c in doc["CreditNotes"])
    tracking = [line["TrackingNumber"] for t in doc["Fulfilments"] if t["FulFilmentStatus"] != "VOIDED"
                for line in t["Ship"]["Lines"] if line.get("TrackingNumber")]
    doc["CombinedTrackingNumbers"] = ", ".join(tracking)
    doc["CombinedPaymentStatus"] = _progress(paid, invoiced_total, "UNPAID", "PARTIALLY PAID", "PAID")

    for task in doc["Fulfilments"]:
        if task["FulFilmentStatus"] != "VOIDED":
            task["FulFilmentStatus"] = "FULFILLED" if task["Ship"]["Status"] == "AUTHORISED" else "NOT FULFILLED"

    if order["Status"] not in AUTHORISED_LIKE:
        for key in ("CombinedPickingStatus", "CombinedPackingStatus", "CombinedShippingStatus",
                    "CombinedInvoiceStatus"):
            doc[key] = "NOT AVAILABLE"
        doc["FulFilmentStatus"] = "NOT AVAILABLE"
        doc["Status"] = "ORDERING" if order["Status"] == "DRAFT" else "DRAFT"
        return

    picked = sum(_stage_quantities(doc, "Pick").values())
    packed = sum(_stage_quantities(doc, "Pack", lines_from="Pick").values())
    shipped = sum(_stage_quantities(doc, "Ship", lines_from="Pick").values())
    shipping = _stage_quantities(doc, "Ship", ("DRAFT", "PARTIALLY AUTHORISED"), lines_from="Pick")
    invoiced = sum(_invoiced(doc).values()) if live_invoices else 0.0
    invoiced_auth = sum(line["Quantity"] for i in live_invoices if i["Status"] in AUTHORISED_LIKE
                        for line in i["Lines"])

    doc["CombinedPickingStatus"] = _progress(picked, ordered, "NOT PICKED", "PARTIALLY PICKED", "PICKED")
    doc["CombinedPackingStatus"] = _progress(packed, ordered, "NOT PACKED", "PARTIALLY PACKED", "PACKED")
    ship_status = _progress(shipped, ordered, "NOT SHIPPED", "PARTIALLY SHIPPED", "SHIPPED")
    if ship_status == "NOT SHIPPED" and +shipping:
        ship_status = "SHIPPING"
    doc["CombinedShippingStatus"] = ship_status
    invoice_status = _progress(invoiced_auth, ordered, "NOT INVOICED", "PARTIALLY INVOICED", "INVOICED")
    doc["CombinedInvoiceStatus"] = "INVOICED / CREDITED" if credited else invoice_status
    doc["FulFilmentStatus"] = _progress(shipped, ordered, "NOT FULFILLED", "PARTIALLY FULFILLED", "FULFILLED")

    fully_shipped = shipped >= ordered - 1e-9
    fully_invoiced = invoiced_auth >= ordered - 1e-9
    if credited:
        status = "CREDITED"
    elif fully_invoiced and fully_shipped and paid >= invoiced_total - 0.005:
        status = "COMPLETED"
    elif fully_invoiced:
        status = "INVOICED"
    elif invoiced > invoiced_auth:
        status = "INVOICING"
    elif fully_shipped:
        status = "SHIPPED"
    elif doc["Type"] == "Simple Sale" and doc["Fulfilments"]:
        status = _simple_stage_status(doc["Fulfilments"][0])
    else:
        status = "BACKORDERED" if any(line["BackorderQuantity"] > 0 for line in order["Lines"]) else "ORDERED"
    doc["Status"] = status


def _simple_stage_status(task: dict[str, Any]) -> str:
    pick, pack, ship = (task[s]["Status"] for s in ("Pick", "Pack", "Ship"))
    if ship == "AUTHORISED":
        return "SHIPPED"
    if ship in ("DRAFT", "PARTIALLY AUTHORISED"):
        return "SHIPPING"
    if pack == "AUTHORISED":
        return "PACKED"
    if pack == "DRAFT":
        return "PACKING"
    return "PICKED" if pick == "AUTHORISED" else "PICKING"


def ready_for_shipping(doc: Doc) -> bool:
    return any(t["FulFilmentStatus"] != "VOIDED" and t["Pack"]["Status"] == "AUTHORISED"
               and t["Ship"]["Status"] != "AUTHORISED" for t in doc["Fulfilments"])


def sale_header(doc: Doc, location_id: str, order_date: str) -> dict[str, Any]:
    """The saleList row of a sale document (note the list says `OrderNumber`, the detail `SaleOrderNumber`)."""
    live_invoices = [i for i in doc["Invoices"] if i["Status"] != "VOIDED"]
    first_invoice = live_invoices[0] if live_invoices else None
    credit = doc["CreditNotes"][-1] if doc["CreditNotes"] else None
    return {
        "SaleID": doc["ID"],
        "OrderNumber": doc["Order"]["SaleOrderNumber"],
        "Status": doc["Status"],
        "OrderDate": order_date,
        "InvoiceDate": first_invoice["InvoiceDate"] if first_invoice else None,
        "InvoiceDueDate": first_invoice["InvoiceDueDate"] if first_invoice else None,
        "Customer": doc["Customer"],
        "CustomerID": doc["CustomerID"],
        "CustomerReference": doc["CustomerReference"],
        "InvoiceNumber": first_invoice["InvoiceNumber"] if first_invoice else "",
        "InvoiceAmount": money(sum(i["Total"] for i in live_invoices)),
        "PaidAmount": money(sum(i["Paid"] for i in live_invoices)),
        "BaseCurrency": doc["BaseCurrency"],
        "CustomerCurrency": doc["CustomerCurrency"],
        "OrderLocationID": location_id,
        "Updated": doc["LastModifiedOn"],
        "QuoteStatus": doc["Quote"]["Status"],
        "OrderStatus": doc["Order"]["Status"],
        "CombinedPickingStatus": doc["CombinedPickingStatus"],
        "CombinedPackingStatus": doc["CombinedPackingStatus"],
        "CombinedShippingStatus": doc["CombinedShippingStatus"],
        "CombinedInvoiceStatus": doc["CombinedInvoiceStatus"],
        "CombinedPaymentStatus": doc["CombinedPaymentStatus"],
        "CombinedTrackingNumbers": doc["CombinedTrackingNumbers"],
        "FulFilmentStatus": doc["FulFilmentStatus"],
        "CreditNoteNumber": credit["CreditNoteNumber"] if credit else "",
        "CreditNoteStatus": credit["Status"] if credit else "NOT AVAILABLE",
        "Type": doc["Type"],
        "ExternalID": doc["ExternalID"],
        "SourceChannel": doc["SourceChannel"],
        "ShipBy": doc["ShipBy"],
    }
