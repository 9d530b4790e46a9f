"""The demo's order-automation cycle, played through the Dagster jobs a sensor would launch:

authorised sales in the cache → `route_order` runs (some split across locations) → 940s over SFTP to the
3PL sandboxes → 997s and 945s back → `process_partner_file` runs ship in Cin7 Core with tracking → the
tracking lands on the Shopify sandbox's orders. It prints the journey of three orders, a split one first."""

from typing import Any

import dagster as dg
import psycopg

from gp_pipelines.automation.journey import format_journey, order_journey
from gp_pipelines.automation.orders import ensure_order_tables, unrouted_sales
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
        waiting = []
        for key in sandbox.instances:
            # Web orders first, so the cycle shows tracking reaching the Shopify store.
            waiting += unrouted_sales(conn, [key], limit=SALES_PER_INSTANCE, prefer_channel="Shopify")
        for key in sandbox.instances:
            instance_config = config.instance(key)
            limiter = LocalRateLimiter(calls=instance_config.calls_per_minute)
            with client_from_environment(instance_config, limiter) as client:
                documents = [client.get("sale", {"ID": s.sale_id}) for s in waiting if s.instance == key]
            mirror_shopify_orders(sandbox.shopify, documents, sandbox.shop(key))
        print(f"\nOrder automation: {len(waiting)} authorised sales waiting to be routed")
        states: dict[str, int] = {}
        for sale in waiting:
            result = route.execute_in_process(
                run_config={**QUIET_LOGS, "ops": {"route_authorised_sale": {"config": {
                    "instance": sale.instance, "sale_id": sale.sale_id}}}},
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
                names = [remote.name for remote in transport.list_inbound()]
            for name in names:
                result = process.execute_in_process(
                    run_config={**QUIET_LOGS, "ops": {"process_inbound_file": {"config": {
                        "partner": partner.key, "file_name": name}}}},
                    instance=instance, raise_on_error=False, tags={"gp/partner": partner.key})  # fmt: skip
                failures += not result.success
                state = result.output_for_node("process_inbound_file") if result.success else "failed"
                processed[state] = processed.get(state, 0) + 1
        print("  partner files: " + ", ".join(f"{count} {state}" for state, count in sorted(processed.items())))
        outbox_run = defs.resolve_job_def(OUTBOX_RETRY_JOB).execute_in_process(
            instance=instance, raise_on_error=False, run_config=QUIET_LOGS)
        failures += not outbox_run.success
        journeys = [order_journey(conn, s.instance, s.sale_id) for s in waiting]
        routed = [j for j in journeys if j["state"] == "routed"]
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
