"""Automation sensors: light listers that hand the work to runs (DESIGN.md §6).

- `new_orders_sensor`: routing offers (`automation.orders.routing_offers`) → one `route_order` run each, keyed
  by sale and attempt: new authorised sales ordered on or after the start line, sales whose routing run failed
  or died (after the back-off), sales waiting for stock whose stock changed, held sales that changed. Its first
  tick stores the start line (`automation.route_orders_since`, default: that moment), so switching it on never
  routes history.
- `partner_inbox_<key>`: one per partner → one `process_partner_file` run per complete inbox entry, keyed by
  name, size, time and attempt. It lists names, sizes and times only (no downloads); the cursor keeps the last
  listing, so an entry is taken once unchanged across two ticks (or at once with `inbound_ready: on_arrival`).
- `outbox_retry_sensor`: materialises the outbox and orders assets when items are due, a 997 is overdue, or
  open orders have not been looked at for `RECONCILE_EVERY`.
- `notify_on_run_failure`: any failed run notifies the configured channels.

All start STOPPED (turn them on under Automation once partners and rules are configured); the demo runs the
same jobs directly.
"""

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import dagster as dg
import psycopg

from gp_pipelines.automation import exchange, outbox
from gp_pipelines.automation.inbound import inbox_offers
from gp_pipelines.automation.orders import ensure_order_tables, routing_offers
from gp_pipelines.automation.state import start_line
from gp_pipelines.config import PlatformConfig
from gp_pipelines.connectors.transport import TransportError, transport_for
from gp_pipelines.jobs.automation import OUTBOX_RETRY_JOB, PARTNER_FILE_JOB, ROUTE_ORDER_JOB
from gp_pipelines.resources.automation import AutomationResource

MAX_RUNS_PER_TICK = 50
RECONCILE_EVERY = timedelta(minutes=10)
_STOPPED = dg.DefaultSensorStatus.STOPPED


@dg.sensor(name="new_orders_sensor", job_name=ROUTE_ORDER_JOB, minimum_interval_seconds=60, default_status=_STOPPED,
           description="Authorised sales after the start line, failed routings, sales whose stock arrived → one "
                       "routing run per offer.")
def new_orders_sensor(context: dg.SensorEvaluationContext, automation: AutomationResource) -> dg.SensorResult:
    config = automation.config()
    with psycopg.connect(automation.database.database_url(), autocommit=True) as conn:
        ensure_order_tables(conn)
        start = start_line(conn, config.automation.route_orders_since, actor="sensor:new_orders_sensor")
        offers = routing_offers(conn, config, start, limit=MAX_RUNS_PER_TICK)
    requests = [
        dg.RunRequest(
            run_key=offer.run_key,
            run_config={"ops": {"route_authorised_sale": {"config": {
                "instance": offer.instance, "sale_id": offer.sale_id, "attempt": offer.attempt,
                "admitted_by": "start_line", "why": offer.why}}}},
            tags={"gp/order_instance": offer.instance, "gp/sale": offer.order_number or offer.sale_id,
                  "gp/offer": offer.why},
        )
        for offer in offers
    ]  # fmt: skip
    cursor = json.dumps({"start_line": start.isoformat(), "last_tick_offers": len(offers),
                         **{f"last_tick_{why}": count for why, count in Counter(o.why for o in offers).items()}})
    if not requests:
        return dg.SensorResult(skip_reason=dg.SkipReason(f"no sales to route (start line {start:%Y-%m-%d})"),
                               cursor=cursor)
    return dg.SensorResult(run_requests=requests, cursor=cursor)


def partner_inbox_sensor(partner_key: str) -> dg.SensorDefinition:
    @dg.sensor(name=f"partner_inbox_{partner_key}", job_name=PARTNER_FILE_JOB, minimum_interval_seconds=60,
               default_status=_STOPPED,
               description=f"Complete files in partner {partner_key!r}'s outbox for us → one run per file.")
    def _sensor(context: dg.SensorEvaluationContext, automation: AutomationResource) -> dg.SensorResult:
        config = automation.config()
        partner = config.partner(partner_key)
        previous = json.loads(context.cursor or "{}")
        try:
            with transport_for(partner.transport, automation.environment(), partner=partner_key) as transport:
                listing = transport.list_inbound()
        except TransportError as exc:  # the inbox is unreachable: say so on the tick, keep the cursor
            return dg.SensorResult(skip_reason=dg.SkipReason(f"cannot list the inbox: {exc}"),
                                   cursor=context.cursor)
        with psycopg.connect(automation.database.database_url(), autocommit=True) as conn:
            ensure_order_tables(conn)
            offers, seen, settling = inbox_offers(conn, partner, listing, previous.get("seen") or {},
                                                  limit=MAX_RUNS_PER_TICK)
        requests = [dg.RunRequest(
            run_key=entry.run_key,
            run_config={"ops": {"process_inbound_file": {"config": {
                "partner": partner_key, "name": entry.name, "size": entry.size,
                "modified": entry.modified.isoformat(), "attempt": entry.attempt}}}},
            tags={"gp/partner": partner_key, "gp/file": entry.display_name[:200]},
        ) for entry in offers]  # fmt: skip
        cursor = json.dumps({"seen": seen, "last_tick_files": len(listing), "last_tick_offers": len(offers),
                             "still_being_written": settling})
        if not requests:
            reason = f"{settling} file(s) still changing" if settling else "nothing new in the inbox"
            return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=cursor)
        return dg.SensorResult(run_requests=requests, cursor=cursor)

    return _sensor


@dg.sensor(name="outbox_retry_sensor", job_name=OUTBOX_RETRY_JOB, minimum_interval_seconds=60,
           default_status=_STOPPED, description="Retries due outbox items, advances open orders, reports overdue "
                                                "997s and long waits.")
def outbox_retry_sensor(context: dg.SensorEvaluationContext, automation: AutomationResource) -> dg.SensorResult:
    now = datetime.now(UTC)
    last = json.loads(context.cursor or "{}")
    with psycopg.connect(automation.database.database_url(), autocommit=True) as conn:
        ensure_order_tables(conn)
        due = conn.execute(f"SELECT count(*) FROM {outbox.OUTBOX_TABLE} "
                           "WHERE (state IN ('pending', 'failed') AND next_attempt_at <= now()) "
                           "OR (state = 'running' AND lease_until < now())").fetchone()[0]
        late = len(exchange.overdue_acks(conn))
        open_orders = conn.execute("SELECT count(*) FROM automation.sales WHERE state NOT IN ('done', 'cancelled')"
                                   ).fetchone()[0]  # fmt: skip
    last_run = datetime.fromisoformat(last["run_at"]) if last.get("run_at") else None
    sweep_due = open_orders and (last_run is None or now - last_run >= RECONCILE_EVERY)
    if not (due or late or sweep_due):
        return dg.SensorResult(skip_reason=dg.SkipReason("nothing due"), cursor=context.cursor)
    # At most one run per minute: the key is the tick's minute.
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=f"outbox:{now:%Y%m%dT%H%M}")],
                           cursor=json.dumps({"run_at": now.isoformat(), "due": due, "late_acks": late,
                                              "open_orders": open_orders}))


@dg.run_failure_sensor(name="notify_on_run_failure", default_status=_STOPPED,
                       description="Any failed run notifies by the configured email and webhook.")
def notify_on_run_failure(context: dg.RunFailureSensorContext, automation: AutomationResource) -> None:
    run = context.dagster_run
    message = context.failure_event.message or "the run failed"
    with psycopg.connect(automation.database.database_url(), autocommit=True) as conn:
        ensure_order_tables(conn)
        automation.notifier().notify(
            f"Dagster run failed: {run.job_name}",
            f"Run {run.run_id} of job {run.job_name} failed.\n{message}\nTags: {dict(run.tags)}",
            key=f"run.failed:{run.run_id}", conn=conn)


def build_automation_sensors(config: PlatformConfig) -> list[dg.SensorDefinition]:
    return [new_orders_sensor, outbox_retry_sensor, notify_on_run_failure,
            *(partner_inbox_sensor(partner.key) for partner in config.partners)]
