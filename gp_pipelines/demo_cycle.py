"""The demo's order-automation cycle, played through the Dagster jobs a sensor would launch:

authorised sales in the cache ordered on or after the start line (older ones are left alone) → `route_order`
runs (some split across locations) → 940s over SFTP to the 3PL sandboxes → 997s and 945s back →
`process_partner_file` runs record the shipments and ship in Cin7 Core with tracking → the tracking lands on the
Shopify sandbox's orders → the `outbox_retry` run advances whatever is left from its state. It prints the
journey of three orders, a split one first."""

from datetime import UTC, datetime
from typing import Any

import dagster as dg
import psycopg

from gp_pipelines.automation.inbound import InboxEntry
from gp_pipelines.automation.journey import format_journey, order_journey
from gp_pipelines.automation.orders import ensure_order_tables, routing_offers, sales_before_start_line
from gp_pipelines.automation.state import start_line
from gp_pipelines.cin7.client import client_from_environment
from gp_pipelines.cin7.limiter import LocalRateLimiter
from gp_pipelines.connectors.transport import transport_for
from gp_pipelines.jobs.automation import OUTBOX_RETRY_JOB, PARTNER_FILE_JOB, ROUTE_ORDER_JOB
from gp_pipelines.sandbox.automation import AutomationSandbox, mirror_shopify_orders

QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
SALES_PER_INSTANCE = 4


def play_order_cycle(defs: dg.Definitions, instance: dg.DagsterInstance, config: Any, database_url: str,
                     sandbox: AutomationSandbox) -> int:
    """Returns the number of failed runs."""
    route = defs.resolve_job_def(ROUTE_ORDER_JOB)
    process = defs.resolve_job_def(PARTNER_FILE_JOB)
    failures = 0
    with psycopg.connect(database_url, autocommit=True) as conn:
        ensure_order_tables(conn)
        start = start_line(conn, config.automation.route_orders_since, actor="demo")
        history = sales_before_start_line(conn, config, datetime(2000, 1, 1, tzinfo=UTC), start)
        offers = routing_offers(conn, config, start, limit=1000, prefer_channel="Shopify")
        waiting = []
        for key in sandbox.instances:
            # Web orders first, so the cycle shows tracking reaching the Shopify store.
            waiting += [offer for offer in offers if offer.instance == key][:SALES_PER_INSTANCE]
        for key in sandbox.instances:
            instance_config = config.instance(key)
            limiter = LocalRateLimiter(calls=instance_config.calls_per_minute)
            with client_from_environment(instance_config, limiter) as client:
                documents = [client.get("sale", {"ID": s.sale_id}) for s in waiting if s.instance == key]
            mirror_shopify_orders(sandbox.shopify, documents, sandbox.shop(key))
        print(f"\nOrder automation (start line {start:%Y-%m-%d %H:%M} UTC): {len(offers)} authorised sales to route, "
              f"{len(history)} ordered before the start line left alone (`gp-pipelines orders route --since` "
              f"admits them); routing {len(waiting)}")
        states: dict[str, int] = {}
        for sale in waiting:
            result = route.execute_in_process(
                run_config={**QUIET_LOGS, "ops": {"route_authorised_sale": {"config": {
                    "instance": sale.instance, "sale_id": sale.sale_id, "attempt": sale.attempt,
                    "admitted_by": "start_line", "why": sale.why}}}},
                instance=instance, raise_on_error=False, tags={"gp/order_instance": sale.instance})  # fmt: skip
            failures += not result.success
            state = result.output_for_node("route_authorised_sale") if result.success else "failed"
            states[state] = states.get(state, 0) + 1
        print("  routing runs: " + ", ".join(f"{count} {state}" for state, count in sorted(states.items())))

        # The 3PLs read their 940s and answer 997s; a simulated hour later they ship (partial shipments send
        # their second half later still).
        sandbox.process_warehouses()
        shipped = sandbox.process_warehouses(advance_seconds=3600) + sandbox.process_warehouses(advance_seconds=3600)
        print(f"  3PLs sent {shipped} shipping advice(s)")
        environ = sandbox.environment()
        processed: dict[str, int] = {}
        for partner in config.partners:
            with transport_for(partner.transport, environ, partner=partner.key) as transport:
                entries = [InboxEntry.of(partner.key, remote) for remote in transport.list_inbound()]
            for entry in entries:  # the 3PL sandboxes write each file whole: complete when listed
                result = process.execute_in_process(
                    run_config={**QUIET_LOGS, "ops": {"process_inbound_file": {"config": {
                        "partner": partner.key, "name": entry.name, "size": entry.size,
                        "modified": entry.modified.isoformat(), "attempt": 0}}}},
                    instance=instance, raise_on_error=False, tags={"gp/partner": partner.key})  # fmt: skip
                failures += not result.success
                state = result.output_for_node("process_inbound_file") if result.success else "failed"
                processed[state] = processed.get(state, 0) + 1
        print("  partner files: " + ", ".join(f"{count} {state}" for state, count in sorted(processed.items())))
        outbox_run = defs.resolve_job_def(OUTBOX_RETRY_JOB).execute_in_process(
            instance=instance, raise_on_error=False, run_config=QUIET_LOGS)
        failures += not outbox_run.success
        journeys = [order_journey(conn, s.instance, s.sale_id) for s in waiting]
        routed = [j for j in journeys if j["fulfilments"]]
        split = [j for j in routed if len(j["fulfilments"]) > 1]
        via_3pl = [j for j in routed if any(f["partner"] for f in j["fulfilments"]) and j not in split]
        others = [j for j in routed if j not in split and j not in via_3pl]
        shown = (split[:1] + via_3pl + others + split[1:])[:3]
        print("\nThe journey of three orders:")
        for journey in shown:
            print(format_journey(journey))
        shopify_posted = sum(len(order.get("fulfillments", [])) for order in sandbox.shopify.orders())
        print(f"Shopify sandbox: {shopify_posted} fulfillment(s) with tracking posted")
    return failures
