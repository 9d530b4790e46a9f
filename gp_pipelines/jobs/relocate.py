"""The `relocate_order` job: move one sale to another location (the logic is gp_pipelines/automation/relocate.py).

Launched from the UI's launchpad with run config, e.g.

    ops:
      relocate_sale_op:
        config: {instance: au, sale_id: 0f3c..., location: Melbourne 3PL, dry_run: true}

A failed run is resumed by launching it again with the same config (the journal in `automation.relocations`
knows what was done).
"""

import dagster as dg
import psycopg

from gp_pipelines.automation.relocate import RelocationError, relocate_sale
from gp_pipelines.cin7.errors import Cin7Error
from gp_pipelines.resources.cin7 import Cin7Resource
from gp_pipelines.resources.database import PostgresResource


class RelocateOrderConfig(dg.Config):
    """Which sale to move where. `location` is the target's name (or ID) in Cin7 Core."""

    instance: str
    sale_id: str
    location: str
    dry_run: bool = False
    require_stock: bool = False
    lock_wait_seconds: float = 0.0


@dg.op(description="Validate, snapshot, unwind, move and restore one sale; resumes an unfinished relocation.")
def relocate_sale_op(
    context: dg.OpExecutionContext, config: RelocateOrderConfig, cin7: Cin7Resource, gp_database: PostgresResource
) -> dg.Output[dict]:
    try:
        with (
            cin7.client(config.instance) as client,
            psycopg.connect(gp_database.database_url(), autocommit=True) as conn,
        ):
            result = relocate_sale(
                client,
                conn,
                config.instance,
                config.sale_id,
                config.location,
                dry_run=config.dry_run,
                require_stock=config.require_stock,
                lock_wait_seconds=config.lock_wait_seconds,
                actor=context.run_id,
            )
    except (RelocationError, Cin7Error) as exc:
        raise dg.Failure(description=str(exc)) from exc
    for line in result.describe():
        context.log.info(line)
    metadata = result.as_metadata()
    report = "```\n" + "\n".join(result.describe()) + "\n```"
    return dg.Output(metadata, metadata={**metadata, "report": dg.MetadataValue.md(report)})


@dg.job(
    name="relocate_order",
    description="Move one sale to another location, keeping its order lines, invoices and payments.",
    tags={"gp/automation": "relocate"},
)
def relocate_order() -> None:
    relocate_sale_op()
