"""Trading-partner jobs. Thin: the work is in `automation.partner_flows`.

- `partner_documents`: retries sale creations that are due, then writes and sends every pending 855, 856 (a
  shipped fulfilment of a partner's sale) and 810 (its authorised invoice); launched by `partner_documents_sensor`.
- `inventory_feed`: materialises `automation/inventory_feed` (every trading partner's 846 for the hour), on the
  `inventory_feed_schedule`.

Both are idempotent: each document has one outbox key (partner, set, task id; partner, 846, hour), so a repeated
run sends nothing twice."""

import dagster as dg
import psycopg

from gp_pipelines.assets.automation import markdown_table
from gp_pipelines.automation.partner_flows import send_pending_documents
from gp_pipelines.resources.automation import AutomationResource

PARTNER_DOCUMENTS_JOB = "partner_documents"
INVENTORY_FEED_JOB = "inventory_feed"
INVENTORY_FEED_SCHEDULE = "inventory_feed_schedule"
INVENTORY_FEED_ASSET = dg.AssetKey(["automation", "inventory_feed"])
# Every four hours by default: often enough for a retailer's replenishment, few enough files to keep.
DEFAULT_FEED_CRON = "0 */4 * * *"


@dg.op(tags={"gp/kind": "edi"}, pool="cin7_api")
def send_partner_documents(context: dg.OpExecutionContext, automation: AutomationResource) -> dg.Output[int]:
    """Write each pending 855, 856 and 810 once (file, row, outbox item together) and send it."""
    with (
        automation.context(actor=context.run_id) as domain,
        psycopg.connect(domain.database_url, autocommit=True) as conn,
    ):
        outcomes = send_pending_documents(conn, domain)
    for outcome in outcomes:
        context.log.info(f"{outcome.partner} {outcome.set_id} {outcome.reference}: {outcome.state} {outcome.reason}")
    states = [outcome.state for outcome in outcomes]
    return dg.Output(len(outcomes), metadata={
        "documents": len(outcomes),
        "queued": states.count("queued"),
        "failed": states.count("failed"),
        "waiting": states.count("retry") + states.count("locked") + states.count("skipped"),
        "outcomes": dg.MetadataValue.md(markdown_table(
            [outcome.as_metadata() for outcome in outcomes],
            ["partner", "set", "reference", "state", "outcome", "file", "reason"])),
    })  # fmt: skip


@dg.job(
    name=PARTNER_DOCUMENTS_JOB,
    tags={"gp/automation": "edi"},
    description="Send trading partners their pending 855s, 856s and 810s (launched by a sensor).",
)
def partner_documents_job() -> None:
    send_partner_documents()


inventory_feed_job = dg.define_asset_job(
    INVENTORY_FEED_JOB,
    selection=dg.AssetSelection.assets(INVENTORY_FEED_ASSET),
    description="Every trading partner's 846 for this hour, from the cache.",
    tags={"gp/automation": "edi"},
)


def inventory_feed_schedule(cron: str = DEFAULT_FEED_CRON) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name=INVENTORY_FEED_SCHEDULE, job=inventory_feed_job, cron_schedule=cron, execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Send the 846 inventory feed to every trading partner (the same hour twice sends once).",
    )  # fmt: skip
