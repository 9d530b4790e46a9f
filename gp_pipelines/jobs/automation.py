"""Order automation jobs: take one routing offer, process one partner inbox entry. Thin: the work is in
`automation/`.

Sensors launch them with run keys that carry the attempt (`route:<instance>:<sale>:<attempt>`,
`<partner>:<name>:<size>:<time>:<attempt>`): a run that fails on an outside system records it on the sale or
the file, and the sensor offers it again after the back-off under a new key. Each run holds its item with a
lease a little longer than the job's `dagster/max_runtime`, so a run that dies lets the item go."""

from datetime import datetime

import dagster as dg
import psycopg

from gp_pipelines.assets.automation import ORDERS_ASSET, OUTBOX_ASSET
from gp_pipelines.automation.inbound import InboxEntry, process_inbox_entry
from gp_pipelines.automation.outbox import describe_error
from gp_pipelines.automation.reconcile import take_routing_offer
from gp_pipelines.resources.automation import AutomationResource

ROUTE_ORDER_JOB = "route_order"
PARTNER_FILE_JOB = "process_partner_file"
OUTBOX_RETRY_JOB = "outbox_retry"
# Dagster's run monitoring ends a run past this (deploy/dagster.yaml turns monitoring on); the leases
# (`automation.run_lease_minutes`, 20 by default) are longer, so a run is never offered twice while alive.
MAX_RUNTIME_SECONDS = 900


class RouteOrderConfig(dg.Config):
    instance: str
    sale_id: str
    attempt: int = -1  # the sale's offer count when offered (the sensor sets it); -1 for a run launched by hand
    admitted_by: str = "operator:dagster-ui"  # who takes a sale on that the automation does not know yet
    why: str = "new"


@dg.op(tags={"gp/kind": "routing"}, pool="cin7_api")
def route_authorised_sale(context: dg.OpExecutionContext, config: RouteOrderConfig,
                          automation: AutomationResource) -> dg.Output[str]:
    """Plan the sale's fulfilments, create them in Cin7 Core and send each 3PL its 940 (all through the outbox)."""
    with automation.context(actor=context.run_id) as domain, \
            psycopg.connect(domain.database_url, autocommit=True) as conn:
        try:
            progress = take_routing_offer(conn, domain, config.instance, config.sale_id, config.attempt,
                                          admitted_by=config.admitted_by, why=config.why)
        except Exception as exc:  # recorded on the sale: the sensor offers it again after the back-off
            raise dg.Failure(description=f"routing sale {config.sale_id} of {config.instance} failed and will be "
                                         f"offered again: {describe_error(exc)}", allow_retries=False) from None
    context.log.info(f"sale {progress.order_number or config.sale_id}: {progress.state} {progress.reason}")
    return dg.Output(progress.state, metadata={**progress.as_metadata(), "steps_taken": "\n".join(progress.steps)})


class PartnerFileConfig(dg.Config):
    partner: str
    name: str  # the name as a token (`connectors.transport.name_to_token`)
    size: int
    modified: str  # ISO 8601, as listed
    attempt: int = -1  # the entry's run count when offered (the sensor sets it); -1 for a run launched by hand


@dg.op(tags={"gp/kind": "edi"}, pool="cin7_api")
def process_inbound_file(context: dg.OpExecutionContext, config: PartnerFileConfig,
                         automation: AutomationResource) -> dg.Output[str]:
    """Validate, acknowledge and act on one file from a partner's inbox; quarantine it when it is bad."""
    entry = InboxEntry(config.partner, config.name, config.size, datetime.fromisoformat(config.modified),
                       config.attempt)
    with automation.context(actor=context.run_id) as domain, \
            psycopg.connect(domain.database_url, autocommit=True) as conn:
        try:
            result = process_inbox_entry(conn, domain, domain.config.partner(config.partner), entry)
        except Exception as exc:  # recorded on the file: offered again after the back-off
            raise dg.Failure(description=f"{config.partner} file {entry.display_name} failed and will be offered "
                                         f"again: {describe_error(exc)}", allow_retries=False) from None
    context.log.info(f"{config.partner}/{result.file_name}: {result.state} {result.reason}")
    return dg.Output(result.state, metadata=result.as_metadata())


_RUN_TAGS = {"dagster/max_runtime": str(MAX_RUNTIME_SECONDS)}


@dg.job(name=ROUTE_ORDER_JOB, description="Route one authorised sale to locations and 3PLs (launched by a sensor).",
        tags={"gp/automation": "routing", **_RUN_TAGS})
def route_order_job() -> None:
    route_authorised_sale()


@dg.job(name=PARTNER_FILE_JOB, description="Process one file from a partner's inbox (launched by a sensor).",
        tags={"gp/automation": "edi", **_RUN_TAGS})
def partner_file_job() -> None:
    process_inbound_file()


outbox_retry_job = dg.define_asset_job(
    OUTBOX_RETRY_JOB, selection=dg.AssetSelection.assets(OUTBOX_ASSET, ORDERS_ASSET),
    description="Retry due outside actions, advance every open order from its state, notify about late 997s and "
    "long waits, and show what needs attention.",
    tags={"gp/automation": "outbox", **_RUN_TAGS},
)

AUTOMATION_JOBS = [route_order_job, partner_file_job, outbox_retry_job]
