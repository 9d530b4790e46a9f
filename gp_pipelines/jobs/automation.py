"""Order automation jobs: route one sale, process one partner file. Thin: the work is in `automation/`.

Sensors launch them with run keys that encode the content (sale id + its `Updated`; partner + file name +
content hash), and each job is idempotent on top of that, so a repeated launch changes nothing twice."""

import dagster as dg
import psycopg

from gp_pipelines.assets.automation import OUTBOX_ASSET
from gp_pipelines.automation.inbound import process_partner_file
from gp_pipelines.automation.orders import route_sale
from gp_pipelines.resources.automation import AutomationResource

ROUTE_ORDER_JOB = "route_order"
PARTNER_FILE_JOB = "process_partner_file"
OUTBOX_RETRY_JOB = "outbox_retry"


class RouteOrderConfig(dg.Config):
    instance: str
    sale_id: str


@dg.op(tags={"gp/kind": "routing"}, pool="cin7_api")
def route_authorised_sale(context: dg.OpExecutionContext, config: RouteOrderConfig,
                          automation: AutomationResource) -> dg.Output[str]:
    """Plan the sale's fulfilments, create them in Cin7 Core and send each 3PL its 940 (all through the outbox)."""
    with automation.context(actor=context.run_id) as domain, \
            psycopg.connect(domain.database_url, autocommit=True) as conn:
        outcome = route_sale(conn, domain, config.instance, config.sale_id)
    if outcome.state == "locked":
        # Another run works on this order right now: try again shortly rather than fail.
        raise dg.RetryRequested(max_retries=3, seconds_to_wait=15)
    context.log.info(f"sale {outcome.order_number or config.sale_id}: {outcome.state} {outcome.reason}")
    return dg.Output(outcome.state, metadata=outcome.as_metadata())


class PartnerFileConfig(dg.Config):
    partner: str
    file_name: str
    content_hash: str = ""  # what the sensor saw; the job processes the file as it is now


@dg.op(tags={"gp/kind": "edi"}, pool="cin7_api")
def process_inbound_file(context: dg.OpExecutionContext, config: PartnerFileConfig,
                         automation: AutomationResource) -> dg.Output[str]:
    """Validate, acknowledge and act on one file from a partner's inbox; quarantine it when it is bad."""
    with automation.context(actor=context.run_id) as domain, \
            psycopg.connect(domain.database_url, autocommit=True) as conn:
        partner = domain.config.partner(config.partner)
        result = process_partner_file(conn, domain, partner, config.file_name)
    if result.state == "busy":
        raise dg.RetryRequested(max_retries=3, seconds_to_wait=15)
    context.log.info(f"{config.partner}/{config.file_name}: {result.state} {result.reason}")
    return dg.Output(result.state, metadata=result.as_metadata())


@dg.job(name=ROUTE_ORDER_JOB, description="Route one authorised sale to locations and 3PLs (launched by a sensor).",
        tags={"gp/automation": "routing"})
def route_order_job() -> None:
    route_authorised_sale()


@dg.job(name=PARTNER_FILE_JOB, description="Process one file from a partner's inbox (launched by a sensor).",
        tags={"gp/automation": "edi"})
def partner_file_job() -> None:
    process_inbound_file()


outbox_retry_job = dg.define_asset_job(
    OUTBOX_RETRY_JOB, selection=dg.AssetSelection.assets(OUTBOX_ASSET),
    description="Retry due outside actions, report overdue 997s and refresh the outbox's status in the UI.",
    tags={"gp/automation": "outbox"},
)

AUTOMATION_JOBS = [route_order_job, partner_file_job, outbox_retry_job]
