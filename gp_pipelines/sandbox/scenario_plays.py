"""The scenarios (`sandbox/scenarios.py` has the world they play in). Each takes a started `ScenarioWorld` and
returns what the stand-ins show beside what should be there. `SCENARIOS` lists them by name."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from gp_pipelines.automation.orders import routing_offers
from gp_pipelines.automation.reconcile import take_routing_offer
from gp_pipelines.automation.state import start_line
from gp_pipelines.cin7.client import RetryPolicy
from gp_pipelines.sandbox.scenarios import (
    INSTANCE,
    CallHook,
    ProcessDied,
    ScenarioResult,
    ScenarioWorld,
    inbox_tick,
    outbox_retry,
    process_listed,
    route,
    ship_all,
)

_ONE_ATTEMPT = RetryPolicy(max_attempts=1, backoff_base=0.01, backoff_cap=0.01)
RETRY_WAIT = 0.3  # longer than the scenario retry back-off (0.05 s doubling, at most 0.2 s)
LEASE_WAIT = 3.2  # longer than the scenario leases (outbox 1 s, runs 3 s)


def _result(world: ScenarioWorld, sale_ids: list[str], expected: dict, external_id: str = "",
            extra: dict | None = None) -> ScenarioResult:
    observed: dict = {}
    for sale_id in sale_ids:
        seen = world.observe(sale_id, external_id)
        for key, value in seen.items():
            observed[key] = value if len(sale_ids) == 1 else [*observed.get(key, []), value]
    observed.update(extra or {})
    histories = {}
    for sale_id in sale_ids:
        histories.update(world.histories(sale_id))
    histories.update(world.file_histories())
    return ScenarioResult("", expected, {key: observed.get(key) for key in expected}, histories)


def _depositor_and_sku(world: ScenarioWorld, sale_id: str) -> tuple[str, str]:
    with world.connect() as conn:
        order, lines = conn.execute("SELECT depositor_order, lines FROM automation.fulfilments WHERE sale_id = %s "
                                    "AND partner IS NOT NULL ORDER BY seq LIMIT 1", (sale_id,)).fetchone()
    return order, lines[0]["sku"]


def cin7_down_creating_the_fulfilment(world: ScenarioWorld) -> ScenarioResult:
    """Cin7 goes down as the fulfilment is created and comes back: the outbox retry creates it, the 940 follows
    from the state and is sent once."""
    sale = world.new_sale()
    with world.context() as context:
        world.hooks.append(CallHook("GET", "sale/fulfilment", "before", world.cin7_down))
        route(world, context, sale["ID"])
        world.cin7_up()
        time.sleep(RETRY_WAIT)
        outbox_retry(world, context)
        outbox_retry(world, context)
    world.warehouse_pass()
    return _result(world, [sale["ID"]], {"cin7_fulfilments": 1, "940s_received_by_3pl": 1})


def routing_run_dies_after_the_pick(world: ScenarioWorld) -> ScenarioResult:
    """The routing run is killed right after Cin7 authorised the pick: the retry finds the task in Cin7 (makes
    no second one), and the 940 follows once."""
    sale = world.new_sale()
    with world.context() as context:
        world.hooks.append(CallHook("POST", "sale/fulfilment/pick", "after", _die))
        with contextlib.suppress(ProcessDied):  # the run is killed here
            route(world, context, sale["ID"])
        time.sleep(LEASE_WAIT)
        outbox_retry(world, context)
    world.warehouse_pass()
    return _result(world, [sale["ID"]], {"cin7_fulfilments": 1, "940s_received_by_3pl": 1})


def crash_between_the_shipment_and_the_outbox(world: ScenarioWorld) -> ScenarioResult:
    """A web order ships; the process dies after Cin7 booked the shipment, before the outbox knew. The re-run
    finds the shipment in Cin7 (books nothing twice) and the Shopify tracking still follows, once."""
    sale = world.new_sale(external_id="#S-CRASH")
    with world.context() as context:
        route(world, context, sale["ID"])
        world.hooks.append(CallHook("POST", "sale/fulfilment/ship", "after", _die))
        with contextlib.suppress(ProcessDied):  # the partner-file run is killed here
            ship_all(world, context)
        time.sleep(LEASE_WAIT)
        outbox_retry(world, context)
        cursor: dict = {}
        for _ in range(2):  # the sensor offers the file again once its run's lease expired
            inbox_tick(world, context, cursor)
        outbox_retry(world, context)
    return _result(world, [sale["ID"]], {"cin7_shipments_per_fulfilment": [1], "shopify_fulfillments_with_tracking": 1,
                                         "files_left_in_inbox": 0}, external_id="#S-CRASH")


def the_same_945_under_two_names(world: ScenarioWorld) -> ScenarioResult:
    """A partial 945 (1 of 2 units) without W0604 and without N9 references arrives twice, same bytes, two
    names: one shipment of 1 unit, the second file a duplicate that changes nothing."""
    sale = world.new_sale(quantity=2)
    with world.context() as context:
        route(world, context, sale["ID"])
        world.warehouse_pass()  # the 940 is read (its 997 comes back); the 3PL's own shipment is not due yet
        order, sku = _depositor_and_sku(world, sale["ID"])
        content = world.shipping_advice(order, sku, ordered=2, shipped=1, status="PR")
        world.drop_file("945_first.x12", content)
        world.drop_file("945_again.x12", content)
        results = process_listed(world, context)
    states = sorted(r.state for r in results if r.file_name.startswith("945"))
    with world.connect() as conn:
        units = conn.execute("SELECT coalesce(sum((value)::numeric), 0) FROM automation.shipments, "
                             "jsonb_each_text(lines) WHERE sale_id = %s", (sale["ID"],)).fetchone()[0]
    return _result(world, [sale["ID"]], {
        "cin7_shipments_per_fulfilment": [1], "cin7_ship_status": ["PARTIALLY AUTHORISED"], "units_booked": 1,
        "945_files": ["duplicate", "processed"], "files_left_in_inbox": 0,
    }, extra={"units_booked": int(units), "945_files": states})


def stock_arrives_later(world: ScenarioWorld) -> ScenarioResult:
    """No location has the product: the sale waits; when the cache shows stock it is offered again and
    routed; the 940 goes out once."""
    product_id, sku = world.stocked_product()
    for rule in world.config.automation.locations:
        world.set_stock(product_id, rule.location, 0)
    world.sync("product_availability")
    sale = world.new_sale(product=(product_id, sku))
    with world.context() as context:
        first = route(world, context, sale["ID"])
        unchanged = route(world, context, sale["ID"])  # nothing changed: not offered
        world.set_stock(product_id, "Melbourne 3PL", 5)
        world.sync("product_availability")
        arrived = route(world, context, sale["ID"])
    world.warehouse_pass()
    return _result(world, [sale["ID"]], {
        "first_routing": "waiting_for_stock", "offered_without_news": False, "after_stock_arrived": "sent_to_3pl",
        "cin7_fulfilments": 1, "940s_received_by_3pl": 1,
    }, extra={"first_routing": first.state, "offered_without_news": unchanged is not None,
              "after_stock_arrived": arrived.state if arrived else None})


def a_945_uploaded_in_two_slow_halves(world: ScenarioWorld) -> ScenarioResult:
    """The 3PL uploads a 945 in two halves with a pause longer than a sensor tick: the first half is never taken
    for a whole (bad) file; once complete it is booked once."""
    sale = world.new_sale()
    with world.context() as context:
        route(world, context, sale["ID"])
        world.warehouse_pass()
        order, sku = _depositor_and_sku(world, sale["ID"])
        content = world.shipping_advice(order, sku, ordered=1, shipped=1, references={"2I": "1ZSLOWHALVES"})
        half = len(content) // 2
        world.drop_file("945_slow.x12", content[:half])
        cursor: dict = {}
        early = [r for tick in range(3) for r in inbox_tick(world, context, cursor)]
        world.drop_file("945_slow.x12", content, modified=time.time() + 5)  # the rest arrives
        late = [r for tick in range(2) for r in inbox_tick(world, context, cursor)]
        outbox_retry(world, context)
    runs = [r.state for r in [*early, *late] if getattr(r, "file_name", "") == "945_slow.x12"]
    slow = [state for i, state in enumerate(runs) if i == 0 or runs[i - 1] != state]  # a retry may look twice
    return _result(world, [sale["ID"]], {
        "cin7_shipments_per_fulfilment": [1], "files_left_in_inbox": 0, "slow_file_runs": ["incomplete", "processed"],
    }, extra={"slow_file_runs": slow})


def one_bad_name_among_good_files(world: ScenarioWorld) -> ScenarioResult:
    """A 945 whose name is not UTF-8 sits among good files: every file is processed, none blocks another."""
    first, second = world.new_sale(), world.new_sale()
    with world.context() as context:
        route(world, context, first["ID"])
        world.warehouse_pass()
        world.warehouse_pass(advance_seconds=10_000)  # the 3PL ships the first one itself, with good names
        route(world, context, second["ID"])
        world.warehouse_pass()  # it reads the second 940; that shipment is reported under an odd name
        order, sku = _depositor_and_sku(world, second["ID"])
        world.drop_file(b"945_\xff\xfe_odd name.x12", world.shipping_advice(order, sku, 1, 1,
                                                                             references={"2I": "1ZODDNAME"}))
        cursor: dict = {}
        results = [r for _ in range(2) for r in inbox_tick(world, context, cursor)]
        outbox_retry(world, context)
    return _result(world, [first["ID"], second["ID"]], {
        "cin7_shipments_per_fulfilment": [[1], [1]], "files_left_in_inbox": [0, 0], "failed_runs": 0,
    }, extra={"failed_runs": sum(isinstance(r, Exception) for r in results)})


NOT_X12 = {
    "notes.txt": b"Hi team, shipment went out today. Cheers\n",
    "error.html": b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
    "945_utf16.x12": "ISA*00*          *00*          *ZZ*ACME3PL        *ZZ*GPPIPELINES    *".encode("utf-16"),
    "945.bin": bytes(range(256)) * 8,
}


def files_that_are_not_x12(world: ScenarioWorld) -> ScenarioResult:
    """Text, HTML, UTF-16, binary and an X12 file with a NUL byte: each quarantined with its reason and
    notified, the X12 one answered with a rejecting 997; the inbox ends empty."""
    sale = world.new_sale()
    with world.context() as context:
        route(world, context, sale["ID"])
        world.warehouse_pass()
        order, sku = _depositor_and_sku(world, sale["ID"])
        with_nul = world.shipping_advice(order, sku, 1, 1, references={"2I": "1ZNUL"}).replace(b"W12*", b"W12*\x00", 1)
        for name, content in {**NOT_X12, "945_nul.x12": with_nul}.items():
            world.drop_file(name, content)
        cursor: dict = {}
        results = [r for _ in range(2) for r in inbox_tick(world, context, cursor)]
    quarantined = sorted(r.file_name for r in results if getattr(r, "state", "") == "quarantined")
    notified = sum(1 for m in world.automation.smtp.messages if "quarantined" in m.subject)
    answers = world.automation.root / "sftp" / world.partner / "in"
    rejecting = sum(1 for path in answers.rglob("997_*") if b"AK9*R" in path.read_bytes())
    return _result(world, [sale["ID"]], {
        "quarantined": sorted([*NOT_X12, "945_nul.x12"]), "notified": 5, "rejecting_997s": 1,
        "files_left_in_inbox": 0, "cin7_shipments_per_fulfilment": [0],
    }, extra={"quarantined": quarantined, "notified": notified, "rejecting_997s": rejecting})


def first_switch_on_with_history(world: ScenarioWorld) -> ScenarioResult:
    """The new-orders sensor is switched on over an account with old authorised, unshipped sales: its first tick
    stores the start line and offers nothing older; a sale ordered after it is routed."""
    with world.connect() as conn:
        history = conn.execute(
            "SELECT count(*) FROM erp_cache.sales WHERE instance = %s AND payload->'Order'->>'Status' = 'AUTHORISED' "
            "AND coalesce(payload->>'CombinedShippingStatus', '') NOT IN ('SHIPPED', 'SHIPPING')",
            (INSTANCE,)).fetchone()[0]  # fmt: skip
        start = start_line(conn, None, actor="sensor:new_orders_sensor")  # the first tick
        before = routing_offers(conn, world.config, start)
    today = datetime.now(UTC).strftime("%Y-%m-%dT00:00:00")
    sale = world.new_sale(order_date=today)
    with world.connect() as conn, world.context() as context:
        offers = routing_offers(conn, world.config, start)
        routed = [take_routing_offer(conn, context, o.instance, o.sale_id, o.attempt).state for o in offers]
        routed_old = conn.execute("SELECT count(*) FROM automation.sales WHERE sale_id <> %s",
                                  (sale["ID"],)).fetchone()[0]
    return _result(world, [sale["ID"]], {
        "old_authorised_sales_exist": True, "offered_at_switch_on": 0, "old_sales_routed": 0,
        "new_sale_routed": ["sent_to_3pl"],
    }, extra={"old_authorised_sales_exist": history > 0, "offered_at_switch_on": len(before),
              "old_sales_routed": routed_old, "new_sale_routed": routed})


def cin7_down_at_the_routing_runs_first_call(world: ScenarioWorld) -> ScenarioResult:
    """Cin7 is down when the routing run starts: the run fails and says so, the sale is offered again after
    the back-off under a new run key, and is routed once Cin7 is back."""
    sale = world.new_sale()
    keys = []
    with world.context() as context:
        world.cin7_down()
        failed = False
        try:
            route(world, context, sale["ID"])
        except Exception:
            failed = True
        with world.connect() as conn:
            start = datetime.fromisoformat(world.start_line).replace(tzinfo=UTC)
            # Asked at fixed moments around the stored retry time, so a slow machine cannot outwait the back-off.
            due = conn.execute("SELECT next_attempt_at FROM automation.sales WHERE instance = %s AND sale_id = %s",
                               (INSTANCE, sale["ID"])).fetchone()[0]
            for at in (due - timedelta(milliseconds=1), due):
                keys.append([o.run_key for o in routing_offers(conn, world.config, start, now=at)
                             if o.sale_id == sale["ID"]])
            time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 0.01)
        world.cin7_up()
        progress = route(world, context, sale["ID"])
    world.warehouse_pass()
    return _result(world, [sale["ID"]], {
        "first_run_failed": True, "offered_during_back_off": [], "offered_after": [f"route:{INSTANCE}:{sale['ID']}:1"],
        "routed": "sent_to_3pl", "940s_received_by_3pl": 1,
    }, extra={"first_run_failed": failed, "offered_during_back_off": keys[0], "offered_after": keys[1],
              "routed": progress.state})


def a_cin7_answer_dripping_one_byte_every_10_seconds(world: ScenarioWorld) -> ScenarioResult:
    """Cin7 answers, but one byte every 10 s: the call gives up at its overall deadline (3 s here) instead of
    hanging for as long as the server keeps dripping."""
    import httpx

    deadline = 3.0
    httpx.post(f"{world.cin7.root_url}/sandbox/faults/next", json={"fault": "drip", "gap": 10}, timeout=10)
    started = time.monotonic()
    error = ""
    with world.client(hooks=[], deadline=deadline, retry=_ONE_ATTEMPT) as client:
        try:
            client.get("me")
        except Exception as exc:  # the deadline
            error = type(exc).__name__
    took = time.monotonic() - started
    return ScenarioResult("", {"gave_up": "Cin7ServerError", "within_a_second_of_the_deadline": True},
                          {"gave_up": error, "within_a_second_of_the_deadline": deadline <= took < deadline + 1},
                          notes=[f"gave up after {took:.2f} s (deadline {deadline:g} s, one byte every 10 s)"])


def _die() -> None:
    raise ProcessDied("killed here")


SCENARIOS: dict[str, Callable[[ScenarioWorld], ScenarioResult]] = {
    "cin7_down_creating_the_fulfilment": cin7_down_creating_the_fulfilment,
    "routing_run_dies_after_the_pick": routing_run_dies_after_the_pick,
    "crash_between_the_shipment_and_the_outbox": crash_between_the_shipment_and_the_outbox,
    "the_same_945_under_two_names": the_same_945_under_two_names,
    "stock_arrives_later": stock_arrives_later,
    "a_945_uploaded_in_two_slow_halves": a_945_uploaded_in_two_slow_halves,
    "one_bad_name_among_good_files": one_bad_name_among_good_files,
    "files_that_are_not_x12": files_that_are_not_x12,
    "first_switch_on_with_history": first_switch_on_with_history,
    "cin7_down_at_the_routing_runs_first_call": cin7_down_at_the_routing_runs_first_call,
    "a_cin7_answer_dripping_one_byte_every_10_seconds": a_cin7_answer_dripping_one_byte_every_10_seconds,
}
# The switch-on scenario needs a world without a configured start line.
WORLD_OPTIONS: dict[str, dict] = {"first_switch_on_with_history": {"start_line": None}}


def play(name: str, world: ScenarioWorld) -> ScenarioResult:
    started = time.monotonic()
    result = SCENARIOS[name](world)
    result.name, result.seconds = name, time.monotonic() - started
    return result
