"""Order automation end to end over real HTTP, SFTP and PostgreSQL: authorised sales routed to locations and a
3PL, 940s delivered, 945s back, shipped in Cin7 with tracking, tracking on the Shopify order — each once."""

from __future__ import annotations

import json
import threading
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from gp_pipelines.automation import outbox
from gp_pipelines.automation.inbound import SHIP_IN_CIN7, InboundContext, process_partner_file
from gp_pipelines.automation.orders import ensure_order_tables, route_sale, unrouted_sales
from gp_pipelines.cin7.entities import ENTITIES
from gp_pipelines.cin7.store import ensure_cache_schema
from gp_pipelines.cin7.sync import sync_entity
from gp_pipelines.config import parse_config
from gp_pipelines.connectors.shopify import ShopifyClient
from gp_pipelines.connectors.transport import transport_for
from gp_pipelines.sandbox.automation import AutomationSandbox, mirror_shopify_orders
from gp_pipelines.sandbox.cin7 import SandboxServer
from gp_pipelines.sandbox.threepl import ThreePLOptions
from tests.cache.helpers import client_for, options

INSTANCE = "au"
GUID = "00000000-0000-4000-8000-000000000001"


@pytest.fixture(scope="module")
def world(module_database_url, tmp_path_factory):
    """Cin7 sandbox with its au cache synced, plus the automation sandbox (SFTP, 3PL, Shopify, mail, webhook)."""
    with ExitStack() as stack:
        cin7 = stack.enter_context(SandboxServer(options(seed=11)))
        sandbox = stack.enter_context(AutomationSandbox(
            tmp_path_factory.mktemp("automation"), instances=(INSTANCE,),
            threepl=ThreePLOptions(seed=3, ship_delay_seconds=60)))  # fmt: skip
        ensure_cache_schema(module_database_url)
        with client_for(cin7, INSTANCE) as client:
            for name in ("locations", "products", "product_availability", "sales"):
                sync_entity(module_database_url, client, INSTANCE, ENTITIES[name])
        sections = sandbox.config_sections()
        config = parse_config({"reporting_currency": "USD", "instances": [{
            "key": INSTANCE, "name": "AU", "account_id": GUID, "application_key_env": ["UNUSED_KEY"]}],
            **sections}, "<test>")  # fmt: skip
        yield cin7, sandbox, config, module_database_url


@pytest.fixture
def context(world):
    cin7, sandbox, config, database_url = world
    environ = sandbox.environment()
    with ExitStack() as stack:
        clients: dict = {}

        def cin7_client(instance):
            if instance not in clients:
                clients[instance] = stack.enter_context(client_for(cin7, instance))
            return clients[instance]

        def transport(key):
            partner = config.partner(key)
            return stack.enter_context(transport_for(partner.transport, environ, partner=key))

        def shopify(store_key):
            store = next(s for s in config.automation.shopify if s.key == store_key)
            return stack.enter_context(ShopifyClient(store.shop_url, environ[store.access_token_env]))

        policy = outbox.RetryPolicy(base_seconds=0.01, max_seconds=0.05, give_up_after=timedelta(minutes=5))
        from gp_pipelines.connectors.notify import Notifier

        yield InboundContext(config=config, database_url=database_url, cin7=cin7_client, transport=transport,
                             policy=policy, notifier=Notifier.from_config(config.notifications, environ),
                             actor="test", shopify=shopify)


@pytest.fixture
def conn(world):
    with psycopg.connect(world[3], autocommit=True) as connection:
        ensure_order_tables(connection)
        yield connection


def _fulfilments(cin7, sale_id):
    with client_for(cin7, INSTANCE) as client:
        return client.get("sale/fulfilment", {"SaleID": sale_id})["Fulfilments"]


def _process_inbox(conn, context, partner_key):
    transport = context.transport(partner_key)
    return [process_partner_file(conn, context, context.config.partner(partner_key), remote.name)
            for remote in transport.list_inbound()]


def _new_authorised_sale(world, *, stocked_at="Melbourne 3PL", state="VIC", external_id=""):
    """A fresh authorised sale for one unit of a product the given location has, shipped to `state`; the cache
    syncs it, so it waits to be routed."""
    cin7, _sandbox, _config, database_url = world
    with psycopg.connect(database_url, autocommit=True) as own:
        product_id, sku = own.execute(
            "SELECT payload->>'ID', payload->>'SKU' FROM erp_cache.product_availability WHERE instance = %s "
            "AND payload->>'Location' = %s AND (payload->>'Available')::numeric >= 3 ORDER BY id LIMIT 1 OFFSET %s",
            (INSTANCE, stocked_at, _new_authorised_sale.count),
        ).fetchone()
    _new_authorised_sale.count += 1
    with client_for(cin7, INSTANCE) as client:
        customer = client.get("customer", {"Page": 1, "Limit": 1})["CustomerList"][0]
        sale = client.post("sale", {
            "CustomerID": customer["ID"], "Location": "Main Warehouse", "ExternalID": external_id,
            "SourceChannel": "Shopify" if external_id else "",
            "ShippingAddress": {"Line1": "1 Test St", "City": "Town", "State": state, "Postcode": "3000",
                                "Country": "Australia"},
        })  # fmt: skip
        client.post("sale/order", {"SaleID": sale["ID"], "Status": "AUTHORISED",
                                   "Lines": [{"ProductID": product_id, "SKU": sku, "Quantity": 1}]})
        sync_entity(database_url, client, INSTANCE, ENTITIES["sales"])
        return client.get("sale", {"ID": sale["ID"]})


_new_authorised_sale.count = 0


def test_a_cycle_routes_ships_and_posts_tracking(world, context, conn):
    cin7, sandbox, _config, _ = world
    web_sale = _new_authorised_sale(world, external_id="#9001")  # a web order the 3PL can ship
    waiting = unrouted_sales(conn, [INSTANCE], prefer_channel="Shopify")[:12]
    assert web_sale["ID"] in [sale.sale_id for sale in waiting], "web orders come first when asked"
    with client_for(cin7, INSTANCE) as client:
        documents = [client.get("sale", {"ID": sale.sale_id}) for sale in waiting]
    assert "#9001" in mirror_shopify_orders(sandbox.shopify, documents, sandbox.shop(INSTANCE))

    outcomes = [route_sale(conn, context, INSTANCE, sale.sale_id) for sale in waiting]
    routed = [o for o in outcomes if o.state == "routed"]
    assert routed, [o.reason for o in outcomes]
    for outcome in routed:
        tasks = _fulfilments(cin7, outcome.sale_id)
        assert len(tasks) == len(outcome.fulfilments)
        for row in outcome.fulfilments:
            task = next(t for t in tasks if t["TaskID"] == row["task_id"])
            assert task["Pick"]["Status"] == "AUTHORISED"
            assert {line["Location"] for line in task["Pick"]["Lines"]} == {row["location"]}
    # Running a routed sale again changes nothing.
    assert route_sale(conn, context, INSTANCE, routed[0].sale_id).state == "already_routed"

    threepl = [(o, row) for o in routed for row in o.fulfilments if row["partner"]]
    assert threepl, "some fulfilment went to the 3PL"
    sandbox.process_warehouses()  # 940s read, 997s back
    sandbox.process_warehouses(advance_seconds=600)  # 945s back (and second halves of partial shipments)
    sandbox.process_warehouses(advance_seconds=600)
    results = _process_inbox(conn, context, sandbox.partner_key(INSTANCE))
    assert all(r.state == "processed" for r in results), [r.reason for r in results]

    shipped_tracking = {}
    for outcome, row in threepl:
        task = next(t for t in _fulfilments(cin7, outcome.sale_id) if t["TaskID"] == row["task_id"])
        assert task["Ship"]["Status"] in ("AUTHORISED", "PARTIALLY AUTHORISED")
        numbers = [line["TrackingNumber"] for line in task["Ship"]["Lines"]]
        assert all(numbers) and len(set(numbers)) == len(numbers)
        shipped_tracking[outcome.sale_id] = numbers
    # The outbox shows every 940 and 997 delivered and every shipment done.
    assert outbox.backlog(conn)["failed"] == 0 and outbox.backlog(conn)["given_up"] == 0

    # Tracking reached the Shopify orders of web sales among them.
    orders = {order["name"]: order for order in sandbox.shopify.orders()}
    web = [d for d in documents if d["ID"] in shipped_tracking and d.get("ExternalID") in orders]
    assert web_sale["ID"] in [d["ID"] for d in web]
    for document in web:
        order = orders[document["ExternalID"]]
        posted = {f["tracking_number"] for f in order.get("fulfillments", [])}
        assert set(shipped_tracking[document["ID"]]) <= posted


def test_the_same_945_delivered_three_times_ships_once(world, context, conn):
    cin7, sandbox, config, _ = world
    partner_key = sandbox.partner_key(INSTANCE)
    sale = _new_authorised_sale(world)
    outcome = route_sale(conn, context, INSTANCE, sale["ID"])
    [row] = [r for r in outcome.fulfilments if r["partner"]]
    sandbox.process_warehouses()
    sandbox.process_warehouses(advance_seconds=10_000)
    inbox = context.transport(partner_key)
    advices = [(r.name, inbox.fetch(r.name)) for r in inbox.list_inbound()]
    advices = [(name, content) for name, content in advices if row["depositor_order"].encode() in content
               and b"W06" in content]
    assert advices
    name, content = advices[0]
    first = process_partner_file(conn, context, config.partner(partner_key), name, content)
    again = process_partner_file(conn, context, config.partner(partner_key), name, content)
    # The 3PL sends the same advice again under another name.
    (sandbox.root / "sftp" / partner_key / "out" / ("resent_" + name)).write_bytes(content)
    renamed = process_partner_file(conn, context, config.partner(partner_key), "resent_" + name)
    assert (first.state, again.state, renamed.state) == ("processed", "already_processed", "processed")
    task = next(t for t in _fulfilments(cin7, sale["ID"]) if t["TaskID"] == row["task_id"])
    numbers = [line["TrackingNumber"] for line in task["Ship"]["Lines"]]
    assert len(numbers) == 1 and task["Ship"]["Status"] == "AUTHORISED"
    performed = conn.execute(
        "SELECT count(*) FROM automation.audit_log WHERE outbox_key LIKE %s AND action = 'outbox.done'",
        (f"cin7.ship:{INSTANCE}:{row['task_id']}:%",)).fetchone()[0]
    assert performed == 1


def test_a_crash_after_shipping_in_cin7_repeats_nothing(world, context, conn):
    cin7, _sandbox, _config, _ = world
    outcome = route_sale(conn, context, INSTANCE, _new_authorised_sale(world)["ID"])
    row = next(r for r in outcome.fulfilments if r["partner"])
    key = f"cin7.ship:{INSTANCE}:{row['task_id']}:CRASHTEST"
    payload = {"instance": INSTANCE, "sale_id": outcome.sale_id, "seq": row["seq"], "task_id": row["task_id"],
               "status": "AUTHORISED", "short": False, "tracking_number": "1ZCRASH0001", "tracking_url": "",
               "carrier": "UPSN", "ship_date": "20261122", "shipped": {}, "shipped_total": {}, "ordered": {},
               "depositor_order": row["depositor_order"]}  # fmt: skip
    outbox.enqueue(conn, key, SHIP_IN_CIN7, payload, instance=INSTANCE, subject=outcome.sale_id)
    real = context.handlers()[SHIP_IN_CIN7]

    class DiesAfterShipping:
        def find_existing(self, item):
            return real.find_existing(item)

        def perform(self, item):
            real.perform(item)
            raise SystemExit("killed between the Cin7 shipment and the outbox update")

    with pytest.raises(SystemExit):
        outbox.run_item(conn, key, DiesAfterShipping(), context.policy, lease_seconds=0.5)
    assert outbox.get_item(conn, key).state == "running"
    later = datetime.now(UTC) + timedelta(seconds=5)
    [item] = [i for i in outbox.run_due(conn, {SHIP_IN_CIN7: real}, context.policy, now=later) if i.key == key]
    assert item.outcome == outbox.FOUND_EXISTING and item.state == "done"
    task = next(t for t in _fulfilments(cin7, outcome.sale_id) if t["TaskID"] == row["task_id"])
    assert [line["TrackingNumber"] for line in task["Ship"]["Lines"]].count("1ZCRASH0001") == 1


def test_two_routing_runs_for_one_sale_route_it_once(world, context, conn):
    cin7, _sandbox, _config, database_url = world
    sale_id = _new_authorised_sale(world)["ID"]
    results = []

    def run():
        with psycopg.connect(database_url, autocommit=True) as own:
            results.append(route_sale(own, context, INSTANCE, sale_id))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.state for r in results) == ["already_routed", "routed"]
    planned = next(r for r in results if r.state == "routed").fulfilments
    assert len(_fulfilments(cin7, sale_id)) == len(planned) == 1


def test_an_invalid_945_is_quarantined_answered_and_changes_nothing(world, context, conn):
    cin7, sandbox, config, _ = world
    partner_key = sandbox.partner_key(INSTANCE)
    before = {s: _fulfilments(cin7, s) for (s,) in conn.execute(
        "SELECT sale_id FROM automation.fulfilments WHERE partner IS NOT NULL LIMIT 3").fetchall()}
    broken = (b"ISA*00*          *00*          *ZZ*ACME3PL        *ZZ*GPPIPELINES    *261122*1200*U*00401*"
              b"000000777*0*T*>~GS*SW*ACME3PL*GPPIPELINES*20261122*1200*777*X*004010~ST*945*0001~"
              b"W06*F*NOSUCH-1*20261122*1ZBAD~SE*9*0001~GE*1*777~IEA*1*000000777~")
    sent_before = len(list((sandbox.root / "sftp" / partner_key / "in").glob("997_*")))
    result = process_partner_file(conn, context, config.partner(partner_key), "945_broken.x12", broken)
    assert result.state == "quarantined" and "SE" in result.reason, result.reason
    state, reason = conn.execute("SELECT state, reason FROM automation.edi_files WHERE file_name = '945_broken.x12'"
                                 ).fetchone()
    assert state == "quarantined" and reason
    answers = sorted((sandbox.root / "sftp" / partner_key / "in").glob("997_*"))
    assert len(answers) == sent_before + 1
    assert b"AK9*R" in answers[-1].read_bytes() or b"AK5*R" in answers[-1].read_bytes()
    assert any("quarantined" in m.subject for m in sandbox.smtp.messages)
    assert {s: _fulfilments(cin7, s) for s in before} == before


def test_a_945_for_an_unknown_order_is_quarantined(world, context, conn):
    _cin7, sandbox, config, _ = world
    partner_key = sandbox.partner_key(INSTANCE)
    from gp_pipelines.automation import exchange
    from gp_pipelines.edi.models import WarehouseAdviceLine, WarehouseShippingAdvice

    advice = WarehouseShippingAdvice(order_number="SO-NOPE-9", ship_date="20261122", references={"2I": "1Z9"},
                                     carrier_scac="UPSN",
                                     lines=[WarehouseAdviceLine("1", "CC", Decimal(1), Decimal(1), "EA",
                                                                product_ids={"VN": "X"})])
    content = exchange.write_for_partner(conn, config.partner(partner_key), [advice]).encode()
    result = process_partner_file(conn, context, config.partner(partner_key), "945_unknown.x12", content)
    assert result.state == "quarantined" and "SO-NOPE-9" in result.reason


def test_a_transport_outage_is_retried_then_given_up_and_notified(world, context, conn):
    _cin7, sandbox, _config, _ = world
    sale_id = _new_authorised_sale(world)["ID"]
    sandbox.sftp.stop()
    try:
        outcome = route_sale(conn, context, INSTANCE, sale_id)
        assert outcome.state == "planned", "routing waits at the 940 delivery"
        item = outbox.get_item(conn, conn.execute(
            "SELECT key FROM automation.outbox WHERE kind = 'edi_send' AND subject = %s", (outcome.sale_id,)
        ).fetchone()[0])
        assert item.state == "failed" and "sftp" in item.last_error.lower()
        # Still down after the give-up window: given up once, notified by email and webhook.
        late = datetime.now(UTC) + timedelta(minutes=10)
        outbox.run_due(conn, context.handlers(), context.policy, notifier=context.notifier, now=late)
        assert outbox.get_item(conn, item.key).state == "given_up"
        assert any(item.key in m.body for m in sandbox.smtp.messages)
        assert any(item.key in str(r.body) for r in sandbox.webhook.delivered)
    finally:
        sandbox.sftp.start()
    # Back up: an operator requeues it and the next run delivers it; routing then completes.
    outbox.requeue(conn, item.key)
    assert route_sale(conn, context, INSTANCE, outcome.sale_id).state == "routed"


def test_the_sensors_and_jobs_drive_the_same_cycle(world, conn, monkeypatch):
    """The Dagster layer: the new-order sensor asks for one run per sale version, the route_order job routes it,
    the partner inbox sensor asks for one run per file (keyed by its content), the file job ships it."""
    import dagster as dg

    from gp_pipelines.jobs.automation import partner_file_job, route_order_job
    from gp_pipelines.resources.automation import automation_resource_from_config
    from gp_pipelines.resources.cin7 import Cin7ApplicationKey, Cin7Resource
    from gp_pipelines.resources.database import PostgresResource
    from gp_pipelines.resources.shopify import shopify_resource_from_config
    from gp_pipelines.sensors.automation import new_orders_sensor, partner_inbox_sensor

    cin7, sandbox, config, database_url = world
    for name, value in sandbox.environment().items():
        monkeypatch.setenv(name, value)
    au = next(i for i in cin7.instances if i.key == INSTANCE)
    monkeypatch.setenv("TEST_CIN7_KEY", au.application_keys[0])
    database = PostgresResource(url=database_url)
    cin7_resource = Cin7Resource(database=database, application_keys=[Cin7ApplicationKey(
        instance=INSTANCE, account_id=au.account_id, base_url=cin7.base_url,
        application_key=dg.EnvVar("TEST_CIN7_KEY"), calls_per_minute=100_000)])  # fmt: skip
    shopify = shopify_resource_from_config(config)
    resources = {"automation": automation_resource_from_config(config, database, cin7_resource, shopify)}

    sale = _new_authorised_sale(world)
    with dg.build_sensor_context(resources=resources) as context:
        result = new_orders_sensor(context)
    [request] = [r for r in result.run_requests if sale["ID"] in r.run_key]
    assert request.run_key == f"{INSTANCE}:{sale['ID']}:{sale['LastModifiedOn']}"
    assert json.loads(result.cursor)["last_tick_sales"] == len(result.run_requests)

    run = route_order_job.execute_in_process(run_config=request.run_config, resources=resources)
    assert run.success and run.output_for_node("route_authorised_sale") == "routed"
    with dg.build_sensor_context(resources=resources) as context:
        again = new_orders_sensor(context)
    assert all(sale["ID"] not in r.run_key for r in again.run_requests or [])

    sandbox.process_warehouses()
    sandbox.process_warehouses(advance_seconds=10_000)
    sensor = partner_inbox_sensor(sandbox.partner_key(INSTANCE))
    with dg.build_sensor_context(resources=resources) as context:
        files = sensor(context)
    assert files.run_requests and all(len(r.run_key.rsplit(":", 1)[1]) == 64 for r in files.run_requests)
    for file_request in files.run_requests:
        ran = partner_file_job.execute_in_process(run_config=file_request.run_config, resources=resources)
        assert ran.success and ran.output_for_node("process_inbound_file") in ("processed", "quarantined")
    [(state,)] = conn.execute("SELECT state FROM automation.fulfilments WHERE sale_id = %s",
                              (sale["ID"],)).fetchall()
    assert state in ("shipped", "partially_shipped")
