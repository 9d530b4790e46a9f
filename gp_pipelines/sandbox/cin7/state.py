"""The whole sandbox behind one server: three instance stores, the clock, the limiter, faults and counters."""

from __future__ import annotations

from collections import Counter
from typing import Any

from . import trading
from .faults import FaultSchedule
from .generator import SIZE_TABLE, build_catalogue, build_instance
from .limiter import RollingWindowLimiter
from .model import DAY_MS, SandboxOptions, VirtualClock, fmt_stamp, parse_stamp, sandbox_instances, seeded_rng
from .store import InstanceStore, Record, RowRecord


class Sandbox:
    def __init__(self, options: SandboxOptions) -> None:
        options.validate()
        self.options = options
        self.clock = VirtualClock(parse_stamp(options.clock_start) if options.clock_start else None)
        self.instances = sandbox_instances(options.seed)
        catalogue = build_catalogue(options.seed, int(SIZE_TABLE[options.size]["products"] * 0.8))
        self.stores: dict[str, InstanceStore] = {
            inst.key: build_instance(inst, options.seed, options.size, self.clock, catalogue)
            for inst in self.instances
        }
        self.credentials: dict[tuple[str, str], str] = {
            (inst.account_id.lower(), key.lower()): inst.key for inst in self.instances for key in inst.application_keys
        }
        self.limiter = RollingWindowLimiter(options.rate_limit, options.rate_window_seconds)
        self.faults = FaultSchedule(options.faults, options.seed)
        self.calls: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()
        self.faults_served: Counter[str] = Counter()
        self.control_rng = seeded_rng(options.seed, "control")

    def instance_for(self, account_id: str | None, app_key: str | None) -> InstanceStore | None:
        if not account_id or not app_key:
            return None
        key = self.credentials.get((account_id.strip().lower(), app_key.strip().lower()))
        return self.stores[key] if key else None

    def records(self, store: InstanceStore, collection: str) -> list[Record]:
        """Documents and master data live as records; small reference books are wrapped per request."""
        if collection in store.collections:
            return store.collections[collection]
        if collection == "availability":
            return [RowRecord(availability_row(store, cell), 0, 0) for cell in store.stock]
        rows = {"locations": store.locations, "carriers": store.carriers, "price_tiers": store.price_tiers,
                "webhooks": store.webhooks, "customer_credits": []}[collection]
        id_field = {"carriers": "CarrierID", "price_tiers": "Code"}.get(collection, "ID")
        return [RowRecord(row, 0, 0, id_field) for row in rows]

    # ------------------------------------------------------------ control operations

    def advance(self, days: float) -> dict[str, Any]:
        if not 0 < days <= 366:
            raise ValueError("days must be within (0, 366]")
        start = self.clock.now_ms()
        result = {key: trading.advance(store, days, start) for key, store in self.stores.items()}
        self.clock.advance(int(days * DAY_MS))
        return {"from": fmt_stamp(start), "clock": fmt_stamp(self.clock.now_ms()), "instances": result}

    def hard_delete(self, instance: str, count: int) -> list[str]:
        if instance not in self.stores:
            raise ValueError(f"unknown instance {instance!r}; known: {', '.join(self.stores)}")
        return trading.hard_delete_drafts(self.stores[instance], count, self.control_rng)

    def stats(self) -> dict[str, Any]:
        return {
            "clock": fmt_stamp(self.clock.now_ms()),
            "calls": dict(self.calls),
            "throttled": dict(self.throttled),
            "faults": dict(self.faults_served),
            "fault_spec": self.faults.spec,
        }


def availability_row(store: InstanceStore, cell: Any) -> dict[str, Any]:
    record = store.get("products", cell.product_id)
    product = record.row() if record else {"SKU": "", "Name": "", "Barcode": "", "AverageCost": 0.0}
    location = next((loc["Name"] for loc in store.locations if loc["ID"] == cell.location_id), "")
    return {
        "ID": cell.product_id, "SKU": product["SKU"], "Name": product["Name"], "Barcode": product["Barcode"],
        "Location": location, "Bin": cell.bin, "Batch": cell.batch, "ExpiryDate": cell.expiry,
        "OnHand": cell.on_hand, "StockOnHand": round(cell.on_hand * product["AverageCost"], 4),
        "Allocated": cell.allocated, "Available": cell.on_hand - cell.allocated, "OnOrder": cell.on_order,
        "InTransit": cell.in_transit,
    }
