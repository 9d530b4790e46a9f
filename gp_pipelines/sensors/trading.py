"""`partner_documents_sensor`: a light lister (DESIGN.md §6). When a trading partner's 855, 856 or 810 is
waiting (`pending_partner_documents`: a shipped fulfilment or authorised invoice in the cache not yet sent) or
a sale creation is due for a retry, it launches one `partner_documents` run.

The `run_key` encodes what is waiting (a hash of the documents and due items) plus a ten-minute bucket: the same
work is not launched again while a run does it, and work a run could not finish (Cin7 Core unreachable) is
launched again ten minutes later. Starts STOPPED."""

import hashlib
import json
import time

import dagster as dg
import psycopg

from gp_pipelines.automation import outbox
from gp_pipelines.automation.partner_flows import CREATE_SALE, ensure_partner_tables, pending_partner_documents
from gp_pipelines.jobs.trading import PARTNER_DOCUMENTS_JOB
from gp_pipelines.resources.automation import AutomationResource

RELAUNCH_BUCKET_SECONDS = 600


@dg.sensor(
    name="partner_documents_sensor",
    job_name=PARTNER_DOCUMENTS_JOB,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Pending 855/856/810s for trading partners (from the cache) → one partner_documents run.",
)
def partner_documents_sensor(context: dg.SensorEvaluationContext, automation: AutomationResource) -> dg.SensorResult:
    config = automation.config()
    with psycopg.connect(automation.database.database_url(), autocommit=True) as conn:
        ensure_partner_tables(conn)
        pending = pending_partner_documents(conn, config)
        due = [row[0] for row in conn.execute(
            f"SELECT key FROM {outbox.OUTBOX_TABLE} WHERE kind = %s AND ((state IN ('pending', 'failed') "
            "AND next_attempt_at <= now()) OR (state = 'running' AND lease_until < now())) ORDER BY key",
            (CREATE_SALE,)).fetchall()]  # fmt: skip
    cursor = json.dumps({"last_tick_documents": len(pending), "last_tick_sales_due": len(due)})
    if not pending and not due:
        return dg.SensorResult(skip_reason=dg.SkipReason("no partner document is waiting"), cursor=cursor)
    work = sorted(f"{d.partner}:{d.set_id}:{d.reference}:{d.retry_of}" for d in pending) + due
    digest = hashlib.sha256("\n".join(work).encode()).hexdigest()[:16]
    bucket = int(time.time()) // RELAUNCH_BUCKET_SECONDS
    sets = sorted({d.set_id for d in pending})
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"partner_documents:{digest}:{bucket}",
                                    tags={"gp/documents": str(len(pending)), "gp/sets": ",".join(sets)})],
        cursor=cursor,
    )  # fmt: skip
