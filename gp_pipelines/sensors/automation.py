"""Automation sensors: light listers that hand the work to runs (DESIGN.md §6).

- `new_orders_sensor`: authorised, unrouted sales in the cache → one `route_order` run per sale version
  (`run_key` = instance + sale id + its `LastModifiedOn`).
- `partner_inbox_<key>`: one per partner → one `process_partner_file` run per file
  (`run_key` = partner + file name + content hash; a re-delivery with the same bytes launches nothing).
- `outbox_retry_sensor`: materialises the outbox asset when items are due or a 997 is overdue.
- `notify_on_run_failure`: any failed run notifies the configured channels.

All start STOPPED (turn them on under Automation once partners and rules are configured); the demo runs the
same jobs directly. Cursors record progress for the UI: the last tick's counts and newest `LastModifiedOn`.
"""

import json

import dagster as dg
import psycopg

from gp_pipelines.automation import exchange, outbox
from gp_pipelines.automation.orders import ensure_order_tables, unrouted_sales
from gp_pipelines.config import PlatformConfig
from gp_pipelines.jobs.automation import OUTBOX_RETRY_JOB, PARTNER_FILE_JOB, ROUTE_ORDER_JOB
from gp_pipelines.resources.automation import AutomationResource

MAX_RUNS_PER_TICK = 50
_STOPPED = dg.DefaultSensorStatus.STOPPED


@dg.sensor(name="new_orders_sensor", job_name=ROUTE_ORDER_JOB, minimum_interval_seconds=60, default_status=_STOPPED,
           description="Authorised sales nobody has started fulfilling → one routing run per sale version.")
def new_orders_sensor(context: dg.SensorEvaluationContext, automation: AutomationResource) -> dg.SensorResult:
    config = automation.config()
    instances = sorted({rule.instance for rule in config.automation.locations})
    with psycopg.connect(automation.database.database_url(), autocommit=True) as conn:
        ensure_order_tables(conn)
        waiting = unrouted_sales(conn, instances, limit=MAX_RUNS_PER_TICK)
    requests = [
        dg.RunRequest(
            run_key=f"{sale.instance}:{sale.sale_id}:{sale.updated}",
            run_config={"ops": {"route_authorised_sale": {"config": {"instance": sale.instance,
                                                                      "sale_id": sale.sale_id}}}},
            tags={"gp/order_instance": sale.instance, "gp/sale": sale.order_number or sale.sale_id},
        )
        for sale in waiting
    ]  # fmt: skip
    newest = max((sale.updated for sale in waiting), default=json.loads(context.cursor or "{}").get("newest", ""))
    cursor = json.dumps({"newest": newest, "last_tick_sales": len(waiting)})
    if not requests:
        return dg.SensorResult(skip_reason=dg.SkipReason("no authorised, unrouted sales"), cursor=cursor)
    return dg.SensorResult(run_requests=requests, cursor=cursor)


def partner_inbox_sensor(partner_key: str) -> dg.SensorDefinition:
    @dg.sensor(name=f"partner_inbox_{partner_key}", job_name=PARTNER_FILE_JOB, minimum_interval_seconds=60,
               default_status=_STOPPED,
               description=f"Files in partner {partner_key!r}'s outbox for us → one processing run per file.")
    def _sensor(context: dg.SensorEvaluationContext, automation: AutomationResource) -> dg.SensorResult:
        with automation.context(actor=f"sensor:partner_inbox_{partner_key}") as domain:
            transport = domain.transport(partner_key)
            files = transport.list_inbound()[:MAX_RUNS_PER_TICK]
            requests = []
            for remote in files:
                digest = exchange.content_hash(transport.fetch(remote.name))
                requests.append(dg.RunRequest(
                    run_key=f"{partner_key}:{remote.name}:{digest}",
                    run_config={"ops": {"process_inbound_file": {"config": {
                        "partner": partner_key, "file_name": remote.name, "content_hash": digest}}}},
                    tags={"gp/partner": partner_key, "gp/file": remote.name},
                ))  # fmt: skip
        cursor = json.dumps({"last_tick_files": len(files), "newest": files[-1].name if files else ""})
        if not requests:
            return dg.SensorResult(skip_reason=dg.SkipReason("the inbox is empty"), cursor=cursor)
        return dg.SensorResult(run_requests=requests, cursor=cursor)

    return _sensor


@dg.sensor(name="outbox_retry_sensor", job_name=OUTBOX_RETRY_JOB, minimum_interval_seconds=60,
           default_status=_STOPPED, description="Retries due outbox items and reports overdue 997s.")
def outbox_retry_sensor(context: dg.SensorEvaluationContext, automation: AutomationResource) -> dg.SensorResult:
    with psycopg.connect(automation.database.database_url(), autocommit=True) as conn:
        ensure_order_tables(conn)
        due = conn.execute(f"SELECT count(*), min(next_attempt_at) FROM {outbox.OUTBOX_TABLE} "
                           "WHERE state IN ('pending', 'failed') AND next_attempt_at <= now() "
                           "OR (state = 'running' AND lease_until < now())").fetchone()
        late = len(exchange.overdue_acks(conn))
    if not due[0] and not late:
        return dg.SensorResult(skip_reason=dg.SkipReason("nothing due"))
    # One run per minute at most: the key is the tick's minute.
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=f"outbox:{context.cursor or ''}:{due[1]}")],
                           cursor=str(due[1]))


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
