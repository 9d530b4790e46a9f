"""Simulated trading for /sandbox/advance and the hard-delete hook.

An advance draws a list of business events per instance, gives each a random instant inside the advanced
period, and replays them in time order through the same state machine the API uses, with the store's clock
frozen at the event's instant. The rng is seeded from (seed, instance, advance number), so the same seed and
the same sequence of advances (and API writes in between) produce the same changes.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from typing import Any

from . import sales
from .model import DAY_MS, fmt_business_date, fmt_stamp, fx_rate, new_guid, seeded_rng
from .store import DocRecord, InstanceStore, Row, RowRecord

DRAFT_STATUSES = ("DRAFT", "ORDERING")


def _recent(records: list[Any], rng: random.Random, predicate: Callable[[Any], bool], window: int = 600) -> Any:
    """A random record among the newest `window` that match: recent documents are the ones that get edited."""
    candidates = [r for r in records[-window:] if predicate(r)]
    return rng.choice(candidates) if candidates else None


def _ship_all(store: InstanceStore, doc: Row, rng: random.Random) -> None:
    task = sales.task_for_stage(store, doc, doc["ID"]) if doc["Type"] == "Simple Sale" and not doc[
        "Fulfilments"] else sales.add_fulfilment(store, doc)
    sales.set_pick(store, doc, task, {"AutoPickMode": "AUTOPICK"})
    sales.set_pack(store, doc, task, {"Status": "AUTHORISED"})
    carrier = doc["Carrier"] or store.carriers[0]["Description"]
    tracking = f"{carrier[:2].upper()}{rng.randrange(10**9, 10**10)}"
    sales.set_ship(store, doc, task, {"Status": "AUTHORISED", "Lines": [
        {"Carrier": carrier, "Box": "Box 1", "TrackingNumber": tracking,
         "TrackingURL": f"https://track.example/{tracking}", "IsShipped": True}]})


def _order_lines(store: InstanceStore, rng: random.Random, customer: Row) -> list[Row]:
    products = [r for r in store.collections["products"] if not r.deprecated]
    chosen = rng.sample(products, min(len(products), max(1, min(20, int(rng.expovariate(1 / 3)) + 1))))
    rate = fx_rate(store.base_currency, customer["Currency"], store.now_ms())
    return [{"ProductID": p.id, "Quantity": float(rng.choice([1, 2, 3, 6, 12])),
             "Price": round(p.row()["PriceTier1"] / rate, 2)} for p in chosen]


class _Day:
    """The event handlers; each returns the counter name it bumps, or None when nothing fitted."""

    def __init__(self, store: InstanceStore, rng: random.Random, changed: set[str]) -> None:
        self.store = store
        self.rng = rng
        self.changed = changed
        self.sales: list[DocRecord] = store.collections["sales"]  # type: ignore[assignment]

    def _mutate(self, record: DocRecord | None, change: Callable[[Row], Any]) -> bool:
        if record is None:
            return False
        try:
            self.store.mutate_sale(record, change)
        except sales.SaleError:
            return False  # e.g. nothing left to pick: a real clerk would just move on
        self.changed.add(record.id)
        return True

    def new_sale(self) -> str | None:
        customers = [r for r in self.store.collections["customers"] if not r.deprecated]
        customer = self.rng.choice(customers).row()
        reference = f"PO{self.rng.randint(1000, 99999)}"
        # A third of new sales come in from the web store, carrying its order name.
        web = self.rng.random() < 0.35
        record = self.store.create_sale({
            "CustomerID": customer["ID"], "CustomerReference": reference,
            "SourceChannel": "Shopify" if web else "",
            "ExternalID": f"#{5000 + self.store.counters.get('WEB', 0)}" if web else "",
        })
        if web:
            self.store.counters["WEB"] = self.store.counters.get("WEB", 0) + 1
        self.changed.add(record.id)
        if self.rng.random() < 0.8:
            status = "AUTHORISED" if self.rng.random() < 0.7 else "DRAFT"
            lines = _order_lines(self.store, self.rng, customer)
            self._mutate(record, lambda d: sales.set_order(self.store, d, {"Status": status, "Lines": lines}))
        return "new_sales"

    def edit_draft(self) -> str | None:
        record = _recent(self.sales, self.rng, lambda r: r.status == "ORDERING")
        if record is None:
            return None
        customer = self.store.get("customers", record.document()["CustomerID"])
        if customer is None:
            return None
        lines = _order_lines(self.store, self.rng, customer.row())
        ok = self._mutate(record, lambda d: sales.set_order(self.store, d, {"Status": "DRAFT", "Lines": lines}))
        return "edited_sales" if ok else None

    def edit_header(self) -> str | None:
        record = _recent(self.sales, self.rng, lambda r: r.status in ("DRAFT", "ORDERING", "ORDERED"))
        body = {"CustomerReference": f"PO{self.rng.randint(1000, 99999)}", "Note": "Customer called to amend"}
        ok = self._mutate(record, lambda d: sales.update_sale(self.store, d, body))
        return "edited_sales" if ok else None

    def authorise(self) -> str | None:
        record = _recent(self.sales, self.rng, lambda r: r.status == "ORDERING")
        ok = self._mutate(record, lambda d: sales.set_order(self.store, d, {"Status": "AUTHORISED"}))
        return "authorised_sales" if ok else None

    def ship(self) -> str | None:
        record = _recent(self.sales, self.rng, lambda r: r.status in ("ORDERED", "BACKORDERED"))
        ok = self._mutate(record, lambda d: _ship_all(self.store, d, self.rng))
        return "shipped_sales" if ok else None

    def invoice(self) -> str | None:
        record = _recent(self.sales, self.rng, lambda r: r.status == "SHIPPED")
        pay = self.rng.random() < 0.6

        def change(doc: Row) -> None:
            invoice = sales.add_invoice(self.store, doc, {"Status": "AUTHORISED"})
            if pay:
                sales.add_payment(self.store, doc, invoice, invoice["Total"], invoice["CurrencyConversionRate"])

        return "invoiced_sales" if self._mutate(record, change) else None

    def void(self) -> str | None:
        record = _recent(self.sales, self.rng, lambda r: r.status in ("DRAFT", "ORDERING", "ORDERED"))
        return "voided_sales" if self._mutate(record, lambda d: sales.void_sale(self.store, d)) else None

    def _master(self, collection: str, kind: str) -> str | None:
        records = [r for r in self.store.collections[collection] if not r.deprecated]
        if not records:
            return None
        record: RowRecord = self.rng.choice(records)  # type: ignore[assignment]
        now = self.store.now_ms()
        if kind == "deprecated":
            record.deprecated = True
            record.data["Status"] = "Deprecated"
        elif collection == "products":
            for key, value in list(record.data.items()):
                if key.startswith("PriceTier") and isinstance(value, float):
                    record.data[key] = round(value * 1.03, 2)
            record.data["PriceTiers"] = {k: round(v * 1.03, 2) for k, v in record.data["PriceTiers"].items()}
        else:
            record.data["Contacts"][0]["Phone"] = f"+{self.rng.randint(1, 99)} {self.rng.randrange(10**7, 10**8)}"
        self.store.touch_master(record, now)
        return f"{kind}_{collection}"

    def edit_customer(self) -> str | None:
        return self._master("customers", "edited")

    def deprecate_customer(self) -> str | None:
        return self._master("customers", "deprecated")

    def edit_product(self) -> str | None:
        return self._master("products", "edited")

    def deprecate_product(self) -> str | None:
        return self._master("products", "deprecated")

    def new_customer(self) -> str | None:
        store = self.store
        n = len(store.collections["customers"]) + 1
        _, row, _, _ = store.generator.party(f"New Customer {store.instance.key.upper()} {n}", 0.5)
        template = store.collections["customers"][0].row()
        for key in ("PriceTier", "Location", "Carrier", "SalesRepresentative", "CreditLimit", "IsOnCreditHold",
                    "AccountReceivable", "RevenueAccount", "ProductPrices"):
            row.setdefault(key, template.get(key))
        row["Status"] = "Active"
        now = store.now_ms()
        row["LastModifiedOn"] = fmt_stamp(now)
        store.add("customers", RowRecord(row, now, now))
        return "new_customers"

    def new_product(self) -> str | None:
        store = self.store
        source = self.rng.choice(store.collections["products"]).row()
        n = len(store.collections["products"]) + 1
        now = store.now_ms()
        row = {**source, "ID": new_guid(self.rng), "SKU": f"{source['SKU']}-V{n}",
               "Name": f"{source['Name']} (new)", "Status": "Active", "LastModifiedOn": fmt_stamp(now),
               "PriceTiers": dict(source["PriceTiers"])}
        store.add("products", RowRecord(row, now, now))
        return "new_products"

    def adjust_stock(self) -> str | None:
        store = self.store
        now = store.now_ms()
        cells = self.rng.sample(store.stock, min(3, len(store.stock)))
        lines = []
        for cell in cells:
            delta = float(self.rng.choice([-2, -1, 5, 12, 24]))
            cell.on_hand = max(cell.allocated, cell.on_hand + delta)
            product = store.get("products", cell.product_id)
            lines.append({"ProductID": cell.product_id, "SKU": product.row()["SKU"] if product else "",
                          "Adjustment": delta, "LocationID": cell.location_id, "Bin": cell.bin})
        number = store.next_number("ST")
        header = {"TaskID": store.new_id(), "StocktakeNumber": number, "Status": "COMPLETED",
                  "EffectiveDate": fmt_business_date(now, store.timezone), "Account": "5100",
                  "Reference": "Cycle count"}
        store.add("adjustments", RowRecord(header, now, now, "TaskID",
                                           {**header, "ExistingStockLines": lines, "NewStockLines": [],
                                            "ZeroStockLines": []}))
        return "stock_adjustments"

    def transfer_stock(self) -> str | None:
        store = self.store
        live = [loc for loc in store.locations if not loc["IsDeprecated"]]
        if len(live) < 2:
            return None
        source, target = self.rng.sample(live, 2)
        cells = [c for c in store.stock if c.location_id == source["ID"] and c.on_hand - c.allocated >= 2]
        if not cells:
            return None
        now = store.now_ms()
        lines = []
        for cell in self.rng.sample(cells, min(3, len(cells))):
            qty = float(max(1, int((cell.on_hand - cell.allocated) // 2)))
            cell.on_hand -= qty
            store.restock(target["ID"], cell.product_id, qty)
            product = store.get("products", cell.product_id)
            row = product.row() if product else {"SKU": "", "Name": "", "AverageCost": 0.0}
            lines.append({"ProductID": cell.product_id, "SKU": row["SKU"], "ProductName": row["Name"],
                          "TransferQuantity": qty, "Cost": row["AverageCost"]})
        day = fmt_business_date(now, store.timezone)
        header = {"TaskID": store.new_id(), "Number": store.next_number("TR"), "Status": "COMPLETED",
                  "From": source["ID"], "FromLocation": source["Name"], "To": target["ID"],
                  "ToLocation": target["Name"], "DepartureDate": day, "CompletionDate": day,
                  "CostDistributionType": "Cost", "InTransitAccount": "1450", "Reference": "Rebalance"}
        detail = {**header, "RequiredByDate": day, "SkipOrder": True, "Lines": lines, "Order": None,
                  "ManualJournals": {"Status": "NOT AVAILABLE", "Lines": []}}
        store.add("transfers", RowRecord(header, now, now, "TaskID", detail))
        return "stock_transfers"

    def new_purchase(self) -> str | None:
        store = self.store
        idx = store.counters.get("PO", 0)
        store.counters["PO"] = idx + 1
        location = self.rng.choice([loc for loc in store.locations if not loc["IsDeprecated"]])
        now = store.now_ms()
        # The same recipe as generated history, planned now: the generator builds the document.
        plan = (idx, "ORDERED", self.rng.randrange(len(store.origin_suppliers)), self.rng.randint(1, 8))
        record = DocRecord(store, "purchase", store.new_id(), now, now, plan, "ORDERED",
                           {"location_id": location["ID"], "location": location["Name"]})
        store.add("purchases", record)
        store.materialise(record)
        return "new_purchases"

    def receive_purchase(self) -> str | None:
        store = self.store
        record = _recent(store.collections["purchases"], self.rng, lambda r: r.status == "ORDERED")
        if record is None:
            return None
        doc = store.materialise(record)
        now = store.now_ms()
        doc["Status"] = "RECEIVED"
        doc["CombinedReceivingStatus"] = "FULLY RECEIVED"
        doc["StockReceived"] = {"Status": "AUTHORISED", "Lines": [
            {**{k: line[k] for k in ("ProductID", "SKU", "Name", "Quantity")},
             "Location": record.extra["location"], "LocationID": record.extra["location_id"], "BatchSN": "",
             "ExpiryDate": None, "Date": fmt_business_date(now, store.timezone), "Received": True}
            for line in doc["Order"]["Lines"]]}
        doc["LastUpdatedDate"] = fmt_stamp(now)
        for line in doc["Order"]["Lines"]:
            store.restock(record.extra["location_id"], line["ProductID"], line["Quantity"])
        store.document_changed(record)
        return "received_purchases"


def advance(store: InstanceStore, days: float, start_ms: int) -> dict[str, Any]:
    """Simulate `days` of trading starting at `start_ms`; returns what changed."""
    store.advances += 1
    rng = seeded_rng(store.seed, store.instance.key, "advance", store.advances)
    per_day = max(3, len(store.collections["sales"]) // 240)
    weights = {
        "new_sale": per_day, "edit_draft": per_day / 3, "authorise": per_day / 2, "ship": per_day / 2,
        "invoice": per_day / 2, "void": per_day / 8, "edit_customer": 1, "new_customer": 0.5,
        "deprecate_customer": 0.2, "edit_product": 1.5, "new_product": 0.2, "deprecate_product": 0.2,
        "edit_header": per_day / 4, "adjust_stock": 1, "transfer_stock": 0.5, "new_purchase": 0.7,
        "receive_purchase": 0.7,
    }
    events: list[tuple[int, str]] = []
    for name, rate in weights.items():
        expected = rate * days
        count = int(expected) + (1 if rng.random() < expected - int(expected) else 0)
        events.extend((start_ms + 1 + int(rng.random() * (days * DAY_MS - 2)), name) for _ in range(count))
    events.sort()
    changed: set[str] = set()
    day = _Day(store, rng, changed)
    summary: Counter[str] = Counter()
    for at, name in events:
        with store.frozen_time(at):
            outcome = getattr(day, name)()
        if outcome:
            summary[outcome] += 1
    return {"counts": dict(sorted(summary.items())), "changed_sale_ids": sorted(changed)}


def hard_delete_drafts(store: InstanceStore, count: int, rng: random.Random) -> list[str]:
    """Remove draft sales outright (no VOIDED trace), the way Undo/hard delete can in the real system."""
    drafts = [r for r in store.collections["sales"] if isinstance(r, DocRecord) and r.status in DRAFT_STATUSES]
    chosen = rng.sample(drafts, min(count, len(drafts)))
    for record in chosen:
        store.remove("sales", record)
        for task_id in [t for t, sid in store.task_index.items() if sid == record.id]:
            del store.task_index[task_id]
    return [r.id for r in chosen]

