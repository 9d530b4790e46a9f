"""Order automation end to end over real HTTP, SFTP and PostgreSQL: authorised sales routed to locations and a
3PL, 940s delivered, 945s back, shipped in Cin7 with tracking, tracking on the Shopify order — each once, each
step derived from the durable state; and the Dagster layer, the CLI and the status report on top of it."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from gp_pipelines.automation import exchange, outbox
from gp_pipelines.automation.inbound import InboxEntry, process_inbox_entry, process_partner_file
from gp_pipelines.automation.reconcile import notify_long_waiting, take_routing_offer
from gp_pipelines.automation.state import INBOUND_FILE, SALE, states_path
from gp_pipelines.config import config_to_yaml
from gp_pipelines.connectors.transport import RemoteFile, name_from_token
from gp_pipelines.edi.models import WarehouseAdviceLine, WarehouseShippingAdvice
from gp_pipelines.sandbox.scenarios import INSTANCE, ScenarioWorld, outbox_retry, route, ship_all

ROUTED = ["new", "planned", "fulfilments_created", "sent_to_3pl"]


@pytest.fixture(scope="module")
def world(module_database_url, tmp_path_factory):
    with ScenarioWorld(tmp_path_factory.mktemp("cycle"), module_database_url) as started:
        yield started


@pytest.fixture
def context(world):
    with world.context(actor="test") as built:
        yield built


@pytest.fixture
def conn(world):
    with world.connect() as connection:
        yield connection


def test_a_cycle_routes_ships_and_posts_tracking(world, context, conn):
    web = world.new_sale(external_id="#9001")
    others = [world.new_sale(), world.new_sale(state="NSW")]
    for sale in (web, *others):
        progress = route(world, context, sale["ID"])
        assert progress is not None and progress.state in ("sent_to_3pl", "done"), progress
    results = ship_all(world, context)
    assert results and all(r.state in ("processed", "duplicate") for r in results), [r.reason for r in results]
    outbox_retry(world, context)
    for sale in (web, *others):
        tasks = [t for t in world.cin7_tasks(sale["ID"]) if t["Pick"]["Lines"]]
        assert tasks, sale["ID"]
        for task in tasks:
            assert task["Pick"]["Status"] == "AUTHORISED"
    seen = world.observe(web["ID"], "#9001")
    assert seen["cin7_shipments_per_fulfilment"] == [1] and seen["shopify_fulfillments_with_tracking"] == 1
    path = states_path(conn, SALE, (INSTANCE, web["ID"]))
    # The 997 for its 940 moves it to acknowledged when it is read before the 945 (files come oldest first).
    assert path in ([*ROUTED, "acknowledged", "shipped", "done"], [*ROUTED, "shipped", "done"]), path
    # The NSW order ships from the in-house warehouse: handed over, done from the automation's side.
    assert conn.execute("SELECT state FROM automation.sales WHERE sale_id = %s", (others[1]["ID"],)).fetchone()[0] \
        == "done"
    backlog = outbox.backlog(conn)
    assert backlog["failed"] == 0 and backlog["given_up"] == 0
    # Running the routing of a routed sale again changes nothing: it is not offered, and a forced offer is taken
    # by the one whose attempt matches, which finds nothing to do.
    assert route(world, context, web["ID"]) is None
    before = len(world.cin7_tasks(web["ID"]))
    attempts = conn.execute("SELECT attempts FROM automation.sales WHERE sale_id = %s", (web["ID"],)).fetchone()[0]
    take_routing_offer(conn, context, INSTANCE, web["ID"], attempts)
    assert len(world.cin7_tasks(web["ID"])) == before


def test_two_routing_runs_for_one_sale_route_it_once(world, context):
    sale_id = world.new_sale()["ID"]
    states = []

    def run():
        with world.connect() as own:
            states.append(take_routing_offer(own, context, INSTANCE, sale_id, 0).state)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(states) == ["sent_to_3pl", "taken_elsewhere"]
    assert len([t for t in world.cin7_tasks(sale_id) if t["Pick"]["Lines"]]) == 1


def test_an_invalid_945_is_quarantined_answered_and_changes_nothing(world, context, conn):
    before = {s: world.cin7_tasks(s) for (s,) in conn.execute(
        "SELECT sale_id FROM automation.fulfilments WHERE partner IS NOT NULL LIMIT 3").fetchall()}
    broken = (b"ISA*00*          *00*          *ZZ*ACME3PL        *ZZ*GPPIPELINES    *261122*1200*U*00401*"
              b"000000777*0*T*>~GS*SW*ACME3PL*GPPIPELINES*20261122*1200*777*X*004010~ST*945*0001~"
              b"W06*F*NOSUCH-1*20261122*1ZBAD~SE*9*0001~GE*1*777~IEA*1*000000777~")
    answers = world.automation.root / "sftp" / world.partner / "in"
    sent_before = len(list(answers.rglob("997_*")))
    world.drop_file("945_broken.x12", broken)
    result = process_partner_file(conn, context, context.config.partner(world.partner), "945_broken.x12")
    assert result.state == "quarantined" and "SE" in result.reason, result.reason
    state, reason = conn.execute("SELECT state, reason FROM automation.edi_files WHERE file_name = '945_broken.x12'"
                                 ).fetchone()
    assert state == "quarantined" and reason
    replies = sorted(answers.rglob("997_*"), key=lambda path: path.stat().st_mtime)
    assert len(replies) == sent_before + 1
    assert b"AK9*R" in replies[-1].read_bytes() or b"AK5*R" in replies[-1].read_bytes()
    assert any("quarantined" in m.subject for m in world.automation.smtp.messages)
    assert {s: world.cin7_tasks(s) for s in before} == before
    assert b"945_broken.x12" not in world.files_in_inbox()  # moved to quarantine/, kept there and in the database
    assert (world.inbox / "quarantine" / "945_broken.x12").read_bytes() == broken


def test_a_945_for_an_unknown_order_is_quarantined(world, context, conn):
    advice = WarehouseShippingAdvice(order_number="SO-NOPE-9", ship_date="20261122", references={"2I": "1Z9"},
                                     carrier_scac="UPSN",
                                     lines=[WarehouseAdviceLine("1", "CC", Decimal(1), Decimal(1), "EA",
                                                                product_ids={"VN": "X"})])
    content = exchange.write_for_partner(conn, context.config.partner(world.partner), [advice]).encode()
    world.drop_file("945_unknown.x12", content)
    result = process_partner_file(conn, context, context.config.partner(world.partner), "945_unknown.x12")
    assert result.state == "quarantined" and "SO-NOPE-9" in result.reason


def test_a_transport_outage_is_retried_then_given_up_and_notified(world, context, conn):
    sale_id = world.new_sale()["ID"]
    world.automation.sftp.stop()
    try:
        progress = take_routing_offer(conn, context, INSTANCE, sale_id, 0)
        assert progress.state == "fulfilments_created" and "sftp" in progress.reason.lower(), progress
        key = conn.execute("SELECT key FROM automation.outbox WHERE kind = 'edi_send' AND subject = %s",
                           (sale_id,)).fetchone()[0]
        assert outbox.get_item(conn, key).state == "failed"
        # Still down after the give-up window: given up once, notified by email and webhook.
        context.retry_due(conn, now=datetime.now(UTC) + timedelta(hours=1))
        assert outbox.get_item(conn, key).state == "given_up"
        assert any(key in m.body for m in world.automation.smtp.messages)
        assert any(key in str(r.body) for r in world.automation.webhook.delivered)
        outbox_retry(world, context)
        assert conn.execute("SELECT state FROM automation.sales WHERE sale_id = %s", (sale_id,)).fetchone()[0] \
            == "given_up"
    finally:
        world.automation.sftp.start()
    # Back up: an operator requeues it and the next outbox retry delivers it; the sale carries on from its state.
    outbox.requeue(conn, key)
    outbox_retry(world, context)
    assert states_path(conn, SALE, (INSTANCE, sale_id))[-2:] == ["given_up", "sent_to_3pl"]


def test_a_file_that_changes_while_it_is_read_is_left_for_a_later_listing(world, context, conn):
    partner = context.config.partner(world.partner)
    world.drop_file("997_growing.x12", b"ISA*00*")
    listed = context.transport(partner.key).stat("997_growing.x12")
    world.drop_file("997_growing.x12", b"ISA*00*          *00*more", modified=listed.modified.timestamp() + 3)
    result = process_inbox_entry(conn, context, partner, InboxEntry.of(partner.key, listed))
    assert result.state == "incomplete" and "changed while being read" in result.reason
    (file_id,) = conn.execute("SELECT id FROM automation.inbound_files WHERE display_name = '997_growing.x12'"
                              ).fetchone()
    assert states_path(conn, INBOUND_FILE, (file_id,)) == ["taken", "incomplete"]
    assert b"997_growing.x12" in world.files_in_inbox()  # nothing was stored, moved or quarantined
    (world.inbox / "997_growing.x12").unlink()


def test_a_sale_waiting_too_long_is_notified_once_and_named_by_status(world, context, conn):
    product = world.stocked_product()
    for rule in world.config.automation.locations:
        world.set_stock(product[0], rule.location, 0)
    world.sync("product_availability")
    sale = world.new_sale(product=product)
    assert route(world, context, sale["ID"]).state == "waiting_for_stock"
    later = datetime.now(UTC) + timedelta(hours=2)
    first = notify_long_waiting(conn, context, now=later)
    again = notify_long_waiting(conn, context, now=later + timedelta(hours=1))
    assert [s["sale_id"] for s in first] == [sale["ID"]] and again == []
    assert sum(sale["Order"]["SaleOrderNumber"] in m.subject for m in world.automation.smtp.messages) == 1
    from gp_pipelines.status import collect_status

    report = collect_status(conn, [INSTANCE], now=later, waiting_after=timedelta(hours=1))
    assert any("sale waiting" in p and sale["Order"]["SaleOrderNumber"] in p for p in report.problems)


def test_orders_route_since_lists_then_routes_sales_before_the_start_line(world, conn, tmp_path, monkeypatch,
                                                                          capsys):
    from gp_pipelines.cli import main

    old = world.new_sale(order_date="2026-11-01T00:00:00")  # ordered before the start line (2026-11-22)
    config = tmp_path / "config.yaml"
    config.write_text(config_to_yaml(world.config))
    monkeypatch.setenv("GP_CONFIG", str(config))
    monkeypatch.setenv("GP_DATABASE_URL", world.database_url)
    for name, value in world.environment().items():
        monkeypatch.setenv(name, value)
    assert main(["orders", "route", "--since", "2026-11-01", "--dry-run"]) == 0
    listed = capsys.readouterr().out
    assert "dry run" in listed and old["Order"]["SaleOrderNumber"] in listed
    assert conn.execute("SELECT count(*) FROM automation.sales WHERE sale_id = %s", (old["ID"],)).fetchone()[0] == 0
    assert main(["orders", "route", "--since", "2026-11-01", "--instance", INSTANCE]) == 0
    assert f"{old['Order']['SaleOrderNumber']}: sent_to_3pl" in capsys.readouterr().out
    admitted = conn.execute("SELECT admitted_by FROM automation.sales WHERE sale_id = %s", (old["ID"],)).fetchone()[0]
    assert admitted.startswith("operator:")
    assert main(["orders", "show", old["Order"]["SaleOrderNumber"]]) == 0
    shown = capsys.readouterr().out
    assert "· → new: admitted by operator:" in shown and "→ sent_to_3pl" in shown and "fulfilment 1" in shown
    assert main(["outbox", "requeue", "nope:key"]) == 2  # an unknown key: one line, exit 2
    assert "no outbox item has the key 'nope:key'" in capsys.readouterr().err


def _dagster_resources(world, monkeypatch) -> dict:
    """The automation resource as the code location builds it, pointed at the world's stand-ins."""
    import dagster as dg

    from gp_pipelines.resources.automation import automation_resource_from_config
    from gp_pipelines.resources.cin7 import Cin7ApplicationKey, Cin7Resource
    from gp_pipelines.resources.database import PostgresResource
    from gp_pipelines.resources.shopify import shopify_resource_from_config

    for name, value in world.environment().items():
        monkeypatch.setenv(name, value)
    au = next(i for i in world.cin7.instances if i.key == INSTANCE)
    database = PostgresResource(url=world.database_url)
    cin7_resource = Cin7Resource(database=database, application_keys=[Cin7ApplicationKey(
        instance=INSTANCE, account_id=au.account_id, base_url=world.cin7.base_url,
        application_key=dg.EnvVar("GP_SCENARIO_AU_KEY"), calls_per_minute=100_000)],
        max_attempts=2, backoff_base_seconds=0.01)  # fmt: skip
    return {"automation": automation_resource_from_config(world.config, database, cin7_resource,
                                                          shopify_resource_from_config(world.config))}


def test_the_sensors_and_jobs_drive_the_same_cycle(world, conn, monkeypatch):
    """The Dagster layer: the new-order sensor offers one run per sale and attempt, a failed run (Cin7 down) is
    offered again under a new key, the partner inbox sensor takes a file once it stopped changing."""
    import dagster as dg

    from gp_pipelines.jobs.automation import partner_file_job, route_order_job
    from gp_pipelines.sensors.automation import new_orders_sensor, partner_inbox_sensor

    resources = _dagster_resources(world, monkeypatch)

    def offers():
        with dg.build_sensor_context(resources=resources) as sensor_context:
            return new_orders_sensor(sensor_context)

    sale = world.new_sale()
    [request] = [r for r in offers().run_requests if sale["ID"] in r.run_key]
    assert request.run_key == f"route:{INSTANCE}:{sale['ID']}:0"
    world.cin7_down()
    try:
        failed = route_order_job.execute_in_process(run_config=request.run_config, resources=resources,
                                                    raise_on_error=False)
    finally:
        world.cin7_up()
    assert not failed.success
    assert conn.execute("SELECT last_error FROM automation.sales WHERE sale_id = %s", (sale["ID"],)).fetchone()[0]
    conn.execute("UPDATE automation.sales SET next_attempt_at = now() WHERE sale_id = %s", (sale["ID"],))
    [retry] = [r for r in offers().run_requests if sale["ID"] in r.run_key]
    assert retry.run_key == f"route:{INSTANCE}:{sale['ID']}:1"
    run = route_order_job.execute_in_process(run_config=retry.run_config, resources=resources)
    assert run.success and run.output_for_node("route_authorised_sale") == "sent_to_3pl"
    assert all(sale["ID"] not in r.run_key for r in offers().run_requests or [])

    world.warehouse_pass()
    world.warehouse_pass(advance_seconds=10_000)
    sensor = partner_inbox_sensor(world.partner)
    with dg.build_sensor_context(resources=resources) as sensor_context:
        first = sensor(sensor_context)
    assert not first.run_requests and json.loads(first.cursor)["still_being_written"] > 0
    with dg.build_sensor_context(resources=resources, cursor=first.cursor) as sensor_context:
        second = sensor(sensor_context)
    assert second.run_requests and all(r.run_key.endswith(":0") for r in second.run_requests)
    for file_request in second.run_requests:
        ran = partner_file_job.execute_in_process(run_config=file_request.run_config, resources=resources)
        assert ran.success and ran.output_for_node("process_inbound_file") in ("processed", "duplicate")
    with dg.build_sensor_context(resources=resources, cursor=second.cursor) as sensor_context:
        assert not sensor(sensor_context).run_requests  # processed and moved: nothing is offered again
    [(state,)] = conn.execute("SELECT state FROM automation.fulfilments WHERE sale_id = %s", (sale["ID"],)).fetchall()
    assert state in ("shipped", "partially_shipped", "done")


def test_the_outbox_retry_job_shows_what_needs_attention(world, conn, monkeypatch):
    import dagster as dg

    from gp_pipelines.assets.automation import automation_orders, automation_outbox

    resources = _dagster_resources(world, monkeypatch)
    result = dg.materialize([automation_outbox, automation_orders], resources=resources)
    assert result.success
    [orders] = [m for m in result.get_asset_materialization_events()
                if m.asset_key == dg.AssetKey(["automation", "orders"])]
    metadata = orders.materialization.metadata
    quarantined = conn.execute("SELECT count(*) FROM automation.inbound_files WHERE state = 'quarantined'"
                               ).fetchone()[0]
    assert metadata["attention_file_quarantined"].value == quarantined > 0
    assert metadata["file_quarantined"].value == quarantined
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["no_quarantined_files"] is False
    assert "945_unknown.x12" in metadata["attention"].value


def test_a_name_that_is_not_utf8_travels_through_run_config(world):
    remote = RemoteFile(os.fsdecode(b"945_\xff.x12"), 10, datetime(2026, 11, 22, tzinfo=UTC))
    entry = InboxEntry.of(world.partner, remote)
    # Run config travels as UTF-8 JSON: the token must encode (a surrogate-escaped name would not) and decode back.
    assert json.loads(json.dumps({"name": entry.name}, ensure_ascii=False).encode("utf-8"))["name"] == entry.name
    assert name_from_token(entry.name) == remote.name and os.fsencode(remote.name) == b"945_\xff.x12"
    assert "\\xff" in entry.display_name


def test_a_listed_file_that_cannot_be_read_is_reported_without_blocking_the_others(world, context, conn, capsys):
    partner = context.config.partner(world.partner)
    world.drop_file("945_gone_bad.x12", b"ISA*00*")
    listed = context.transport(partner.key).stat("945_gone_bad.x12")
    # Between the listing and the run, the partner swaps the file for a link out of its folder.
    (world.inbox / "945_gone_bad.x12").unlink()
    (world.inbox / "945_gone_bad.x12").symlink_to("/etc/hostname")
    result = process_inbox_entry(conn, context, partner, InboxEntry.of(partner.key, listed))
    assert result.state == "unreadable" and "symlink" in result.reason, result.reason
    assert any("unreadable" in m.subject and "945_gone_bad.x12" in m.subject for m in world.automation.smtp.messages)
    (file_id,) = conn.execute("SELECT id FROM automation.inbound_files WHERE display_name = '945_gone_bad.x12'"
                              ).fetchone()
    from gp_pipelines.status import collect_status

    assert any("file unreadable" in p and "945_gone_bad.x12" in p for p in collect_status(conn, [INSTANCE]).problems)
    # Someone deals with it and sets it aside: status stops naming it.
    from gp_pipelines.automation.cli import _inbox

    class Args:
        inbox_command, ids, note = "dismiss", [file_id], "partner told"

    assert _inbox(Args, conn) == 0 and "unreadable → dismissed" in capsys.readouterr().out
    assert states_path(conn, INBOUND_FILE, (file_id,)) == ["taken", "unreadable", "dismissed"]
    assert not any("945_gone_bad.x12" in p for p in collect_status(conn, [INSTANCE]).problems)
    (world.inbox / "945_gone_bad.x12").unlink()
