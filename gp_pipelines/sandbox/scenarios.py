"""Real-world faults played against the order automation, each read back from the stand-ins themselves.

A `ScenarioWorld` is a fresh Cin7 Core sandbox (instance `au`), the automation stand-ins (SFTP server with the
3PL warehouse behind it, a Shopify store, mail and webhook receivers) and a database with the cache synced. Each
scenario function plays one fault (Cin7 down, a process killed at the worst moment, a file re-delivered under
another name, stock arriving later, a file uploaded slowly, odd names, files that are not X12, a first
switch-on with history) through the same domain steps the Dagster runs take, then `observe`s what an outsider
sees: shipments per fulfilment in Cin7, fulfillments with tracking on the Shopify order, 940s the 3PL received,
files left in the inbox. It returns that beside what should be there, with the state history of its orders.

The tests (`tests/automation/test_exactly_once.py`) assert each one; `gp-pipelines bench automation` prints
them all. The stand-ins are real servers on 127.0.0.1; the only thing a scenario does "by hand" is the fault.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Self

import psycopg

from gp_pipelines.automation.context import AutomationContext, context_from_environment
from gp_pipelines.automation.inbound import inbox_offers, process_inbox_entry, process_partner_file
from gp_pipelines.automation.orders import ensure_order_tables, routing_offers
from gp_pipelines.automation.reconcile import retry_pass, take_routing_offer
from gp_pipelines.automation.state import FULFILMENT, INBOUND_FILE, SALE, SHIPMENT, states_path
from gp_pipelines.cin7.client import Cin7Client, RetryPolicy
from gp_pipelines.cin7.entities import ENTITIES
from gp_pipelines.cin7.limiter import LocalRateLimiter
from gp_pipelines.cin7.store import ensure_cache_schema
from gp_pipelines.cin7.sync import sync_entity
from gp_pipelines.config import PlatformConfig, parse_config
from gp_pipelines.edi.models import WarehouseAdviceLine, WarehouseShippingAdvice
from gp_pipelines.edi.validator import TransactionSet, iter_events
from gp_pipelines.edi.writer import CountingControlNumbers, write_interchange
from gp_pipelines.sandbox.automation import AutomationSandbox, mirror_shopify_orders
from gp_pipelines.sandbox.cin7 import SandboxOptions, SandboxServer
from gp_pipelines.sandbox.threaded import StartStop
from gp_pipelines.sandbox.threepl import ThreePLOptions

INSTANCE = "au"
CLOCK_START = "2026-11-22T00:00:00Z"  # the Cin7 sandbox's day; its history is ordered before it
KEY_ENV = "GP_SCENARIO_AU_KEY"
QUICK_RETRIES = RetryPolicy(max_attempts=3, backoff_base=0.005, backoff_cap=0.02, throttle_wait_cap=0.05)


class ProcessDied(BaseException):
    """Stands for the process being killed at a chosen moment (not an `Exception`: nothing may catch it)."""


@dataclass
class CallHook:
    """Before or after the first Cin7 call matching `method` and `endpoint`, do `action` (once)."""

    method: str
    endpoint: str
    when: str  # before | after
    action: Callable[[], None]
    fired: bool = False


class HookedCin7Client(Cin7Client):
    """A real Cin7 client whose calls can trigger a fault at an exact moment (stop the server, kill the
    process): the way a scenario places an outage or a crash between two outside calls."""

    def __init__(self, *args: Any, hooks: list[CallHook], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hooks = hooks

    def _fire(self, when: str, method: str, endpoint: str) -> None:
        for hook in self.hooks:
            if not hook.fired and hook.when == when and hook.method == method and hook.endpoint == endpoint:
                hook.fired = True
                hook.action()

    def request(self, method: str, endpoint: str, **kwargs: Any) -> Any:
        self._fire("before", method, endpoint)
        result = super().request(method, endpoint, **kwargs)
        self._fire("after", method, endpoint)
        return result


@dataclass
class ScenarioResult:
    name: str
    expected: dict[str, Any]
    observed: dict[str, Any]
    histories: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.expected == self.observed

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "expected": self.expected, "observed": self.observed,
                "seconds": round(self.seconds, 2), "histories": self.histories, "notes": self.notes}


class ScenarioWorld(StartStop):
    """Fresh stand-ins and a synced cache for one scenario (see the module docstring)."""

    def __init__(self, root: str | Path, database_url: str, *, seed: int = 11,
                 threepl: ThreePLOptions | None = None, start_line: str | None = CLOCK_START[:10]) -> None:
        self.root = Path(root)
        self.database_url = database_url
        self.cin7 = SandboxServer(SandboxOptions(clock_start=CLOCK_START, rate_limit=1_000_000, size="small",
                                                 seed=seed))
        self.automation = AutomationSandbox(self.root / "automation", instances=(INSTANCE,),
                                            threepl=threepl or ThreePLOptions(seed=3, ship_delay_seconds=60))
        self.start_line = start_line
        self.hooks: list[CallHook] = []
        self.config: PlatformConfig | None = None
        self._sales = 0

    def start(self) -> Self:
        self.cin7.start()
        self.automation.start()
        ensure_cache_schema(self.database_url)
        sections = self.automation.config_sections()
        # Quick retries and short leases: a scenario waits seconds, not the production minutes.
        sections["automation"].update(retry_base_seconds=0.05, retry_max_seconds=0.2, give_up_after_minutes=30,
                                      run_lease_minutes=0.05, notify_waiting_after_minutes=60)
        if self.start_line:
            sections["automation"]["route_orders_since"] = self.start_line
        instance = next(i for i in self.cin7.instances if i.key == INSTANCE)
        self.config = parse_config({"reporting_currency": "USD", "instances": [{
            "key": INSTANCE, "name": "AU", "account_id": instance.account_id, "base_url": self.cin7.base_url,
            "application_key_env": [KEY_ENV]}], **sections}, "<scenario>")  # fmt: skip
        self.sync("locations", "products", "product_availability", "customers", "sales")
        with self.connect() as conn:
            ensure_order_tables(conn)
        return self

    def stop(self) -> None:
        self.automation.stop()
        self.cin7.stop()

    # -- the pieces ------------------------------------------------------------------------------------------
    def environment(self) -> dict[str, str]:
        """Every secret the config names (SFTP, Shopify, the Cin7 application key), for CLIs and runs."""
        instance = next(i for i in self.cin7.instances if i.key == INSTANCE)
        return {**self.automation.environment(), KEY_ENV: instance.application_keys[0]}

    @property
    def partner(self) -> str:
        return self.automation.partner_key(INSTANCE)

    @property
    def inbox(self) -> Path:
        return self.automation.root / "sftp" / self.partner / "out"

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.database_url, autocommit=True)

    def client(self, *, hooks: list[CallHook] | None = None, **options: Any) -> Cin7Client:
        instance = next(i for i in self.cin7.instances if i.key == INSTANCE)
        options.setdefault("retry", QUICK_RETRIES)
        return HookedCin7Client(self.cin7.base_url, instance.account_id, list(instance.application_keys[:1]),
                                instance=INSTANCE, limiter=LocalRateLimiter(1_000_000, 1.0),
                                hooks=self.hooks if hooks is None else hooks, **options)

    @contextlib.contextmanager
    def context(self, actor: str = "scenario") -> Iterator[AutomationContext]:
        """The automation's context against the stand-ins; Cin7 calls go through `self.hooks`."""
        with context_from_environment(self.config, self.database_url, actor=actor, environ=self.environment(),
                                      cin7=lambda _key: self.client()) as context:
            context.lock_wait_seconds = 5
            context.outbox_lease_seconds = 1.0
            yield context

    def sync(self, *entities: str) -> None:
        with self.client(hooks=[]) as client:
            for name in entities:
                sync_entity(self.database_url, client, INSTANCE, ENTITIES[name])

    def cin7_down(self) -> None:
        self.cin7.stop()

    def cin7_up(self) -> None:
        self.cin7.start()

    # -- making orders -----------------------------------------------------------------------------------------
    def stocked_product(self, location: str = "Melbourne 3PL", minimum: int = 3) -> tuple[str, str]:
        """A product with stock at `location` no earlier scenario sale used."""
        with self.connect() as conn:
            product_id, sku = conn.execute(
                "SELECT payload->>'ID', payload->>'SKU' FROM erp_cache.product_availability WHERE instance = %s "
                "AND payload->>'Location' = %s AND (payload->>'Available')::numeric >= %s ORDER BY id "
                "LIMIT 1 OFFSET %s", (INSTANCE, location, minimum, self._sales)).fetchone()  # fmt: skip
        self._sales += 1
        return product_id, sku

    def new_sale(self, *, quantity: int = 1, product: tuple[str, str] | None = None, state: str = "VIC",
                 external_id: str = "", order_date: str | None = None) -> dict[str, Any]:
        """An authorised sale the cache has seen (a web order when `external_id` is given, its Shopify order
        made too)."""
        product_id, sku = product or self.stocked_product()
        with self.client(hooks=[]) as client:
            customer = client.get("customer", {"Page": 1, "Limit": 1})["CustomerList"][0]
            body = {"CustomerID": customer["ID"], "Location": "Main Warehouse", "ExternalID": external_id,
                    "SourceChannel": "Shopify" if external_id else "",
                    "ShippingAddress": {"Line1": "1 Test St", "City": "Town", "State": state, "Postcode": "3000",
                                        "Country": "Australia"}}  # fmt: skip
            if order_date:
                body["SaleOrderDate"] = order_date
            sale = client.post("sale", body)
            client.post("sale/order", {"SaleID": sale["ID"], "Status": "AUTHORISED",
                                       "Lines": [{"ProductID": product_id, "SKU": sku, "Quantity": quantity}]})
            document = client.get("sale", {"ID": sale["ID"]})
        if external_id:
            mirror_shopify_orders(self.automation.shopify, [document], self.automation.shop(INSTANCE))
        self.sync("sales")
        return document

    def set_stock(self, product_id: str, location: str, quantity: float) -> None:
        """The warehouse's stock of a product changes in Cin7 Core (a receipt, a count)."""
        store = self.cin7.sandbox.stores[INSTANCE]
        if store.location(location) is None:
            return  # a rule for a location this account does not have: nothing is stocked there
        location_id = store.location_id(location)
        cells = store.cells(location_id, product_id)
        if not cells:
            store.restock(location_id, product_id, 0)
            cells = store.cells(location_id, product_id)
        for cell in cells:
            cell.on_hand = cell.allocated
        cells[0].on_hand += quantity
        store.touch_master(store.get("products", product_id), store.now_ms())

    # -- the 3PL's side ----------------------------------------------------------------------------------------
    def warehouse_pass(self, advance_seconds: float = 0.0) -> int:
        return self.automation.process_warehouses(advance_seconds)

    def shipping_advice(self, depositor_order: str, sku: str, ordered: int, shipped: int, *, status: str = "CC",
                        references: dict[str, str] | None = None, shipment_id: str = "") -> bytes:
        """A 945 as the 3PL writes it (its own envelope), for one line."""
        advice = WarehouseShippingAdvice(
            order_number=depositor_order, ship_date="20261122", shipment_id=shipment_id,
            references=dict(references or {}), carrier_scac="UPSN",
            lines=[WarehouseAdviceLine("1", status, Decimal(ordered), Decimal(shipped), "EA", product_ids={"VN": sku})])
        settings = self.automation.warehouses[self.partner].settings
        return write_interchange([advice], settings, CountingControlNumbers(7000 + int(time.time()) % 1000)).encode()

    def drop_file(self, name: str | bytes, content: bytes, *, modified: float | None = None) -> None:
        """The 3PL leaves a file in our inbox (raw bytes names allowed)."""
        folder = os.fsencode(self.inbox)
        path = os.path.join(folder, name if isinstance(name, bytes) else os.fsencode(name))
        with open(path, "wb") as handle:
            handle.write(content)
        if modified is not None:
            os.utime(path, (modified, modified))

    # -- what an outsider sees ---------------------------------------------------------------------------------
    def cin7_tasks(self, sale_id: str) -> list[dict[str, Any]]:
        with self.client(hooks=[]) as client:
            return client.get("sale/fulfilment", {"SaleID": sale_id}).get("Fulfilments") or []

    def observe(self, sale_id: str, external_id: str = "") -> dict[str, Any]:
        tasks = [task for task in self.cin7_tasks(sale_id) if (task.get("Pick") or {}).get("Lines")]
        seen: dict[str, Any] = {
            "cin7_fulfilments": len(tasks),
            "cin7_shipments_per_fulfilment": sorted(
                sum(1 for line in (task.get("Ship") or {}).get("Lines") or [] if line.get("IsShipped"))
                for task in tasks),
            "cin7_ship_status": sorted(str((task.get("Ship") or {}).get("Status") or "") for task in tasks),
            "940s_received_by_3pl": self.received_940s(sale_id),
            "files_left_in_inbox": len(self.files_in_inbox()),
        }
        if external_id:
            order = next((o for o in self.automation.shopify.orders() if o["name"] == external_id), {})
            seen["shopify_fulfillments_with_tracking"] = sum(
                1 for f in order.get("fulfillments", []) if f.get("tracking_number"))
        return seen

    def received_940s(self, sale_id: str) -> int:
        """940 sets for this sale's depositor orders in every file the 3PL was given (read or not yet)."""
        with self.connect() as conn:
            orders = {row[0] for row in conn.execute(
                "SELECT depositor_order FROM automation.fulfilments WHERE instance = %s AND sale_id = %s",
                (INSTANCE, sale_id))}  # fmt: skip
        folder = self.automation.root / "sftp" / self.partner / "in"
        count = 0
        for path in [*folder.glob("*.x12"), *folder.glob("*/*.x12")]:
            for event in iter_events(io.BytesIO(path.read_bytes()), validate_sets=False):
                if isinstance(event, TransactionSet) and event.set_id == "940":
                    w05 = next((s for s in event.segments if s.tag == "W05"), None)
                    count += w05 is not None and w05[2] in orders
        return count

    def files_in_inbox(self) -> list[bytes]:
        folder = os.fsencode(self.inbox)
        return [name for name in os.listdir(folder) if os.path.isfile(os.path.join(folder, name))]

    def histories(self, sale_id: str) -> dict[str, list[str]]:
        with self.connect() as conn:
            found = {f"sale {sale_id[:8]}": states_path(conn, SALE, (INSTANCE, sale_id))}
            for (seq,) in conn.execute("SELECT seq FROM automation.fulfilments WHERE instance = %s AND sale_id = %s "
                                       "ORDER BY seq", (INSTANCE, sale_id)).fetchall():  # fmt: skip
                found[f"fulfilment {seq}"] = states_path(conn, FULFILMENT, (INSTANCE, sale_id, seq))
            for (shipment_id,) in conn.execute("SELECT id FROM automation.shipments WHERE instance = %s AND "
                                               "sale_id = %s ORDER BY id", (INSTANCE, sale_id)).fetchall():
                found[f"shipment {shipment_id}"] = states_path(conn, SHIPMENT, (shipment_id,))
        return found

    def file_histories(self) -> dict[str, list[str]]:
        """Every inbox entry's states, keyed `file <name> #<id>`."""
        with self.connect() as conn:
            return {f"file {name} #{file_id}": states_path(conn, INBOUND_FILE, (file_id,))
                    for file_id, name in conn.execute("SELECT id, display_name FROM automation.inbound_files "
                                                      "ORDER BY id").fetchall()}  # fmt: skip


# ---------------------------------------------------------------- the steps the Dagster runs take


def route(world: ScenarioWorld, context: AutomationContext, sale_id: str) -> Any:
    """What `new_orders_sensor` + a `route_order` run do for this sale now."""
    with world.connect() as conn:
        start = datetime.fromisoformat(world.start_line).replace(tzinfo=UTC) if world.start_line else None
        offers = [o for o in routing_offers(conn, world.config, start or datetime.now(UTC), limit=1000)
                  if o.sale_id == sale_id]
        if not offers:
            return None
        return take_routing_offer(conn, context, INSTANCE, sale_id, offers[0].attempt, why=offers[0].why)


def outbox_retry(world: ScenarioWorld, context: AutomationContext) -> Any:
    """What an `outbox_retry` run does."""
    with world.connect() as conn:
        return retry_pass(conn, context, cause="scenario outbox retry")


def inbox_tick(world: ScenarioWorld, context: AutomationContext, previous: dict[str, Any]) -> list[Any]:
    """One partner-inbox sensor tick and the runs it starts; `previous` is the sensor's cursor (updated)."""
    partner = world.config.partner(world.partner)
    listing = context.transport(partner.key).list_inbound()
    with world.connect() as conn:
        offers, seen, _ = inbox_offers(conn, partner, listing, previous.get("seen") or {})
        previous["seen"] = seen
        results = []
        for entry in offers:
            try:
                results.append(process_inbox_entry(conn, context, partner, entry))
            except Exception as exc:  # a failed run: recorded on the file, offered again
                results.append(exc)
        return results


def process_listed(world: ScenarioWorld, context: AutomationContext) -> list[Any]:
    """Process every file now in the inbox (for files written whole, as the 3PL stand-in writes them)."""
    partner = world.config.partner(world.partner)
    with world.connect() as conn:
        return [process_partner_file(conn, context, partner, remote.name)
                for remote in context.transport(partner.key).list_inbound()]


def ship_all(world: ScenarioWorld, context: AutomationContext) -> list[Any]:
    """The 3PL reads its 940s and ships; then every file it sent is processed."""
    world.warehouse_pass()
    world.warehouse_pass(advance_seconds=10_000)
    return process_listed(world, context)


