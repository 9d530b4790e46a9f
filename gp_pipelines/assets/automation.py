"""The outbox as an asset (group `automation`): each materialisation retries what is due, reports late 997s,
and records the backlog and everything stuck or given up as a table in the UI."""

from datetime import UTC, datetime
from typing import Any

import dagster as dg
import psycopg

from gp_pipelines.automation import exchange, outbox
from gp_pipelines.automation.orders import ensure_order_tables
from gp_pipelines.automation.partner_flows import partner_outbox_handlers
from gp_pipelines.resources.automation import AutomationResource
from gp_pipelines.warehouse import checks

AUTOMATION_GROUP = "automation"
OUTBOX_ASSET = dg.AssetKey(["automation", "outbox"])


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Records as the shared markdown table, cells cut short (error texts can be long) and kept off the `|`."""
    if not rows:
        return "_none_"
    cells = [[str(row.get(column, "")).replace("|", "/")[:80] for column in columns] for row in rows]
    return checks.markdown_table(columns, cells)


@dg.asset(
    key=OUTBOX_ASSET,
    group_name=AUTOMATION_GROUP,
    kinds={"postgres"},
    owners=["team:integrations"],
    description="Outside actions waiting, done, failed or given up. Materialising retries what is due (Cin7 "
    "shipments, 940s and 997s to partners, Shopify tracking), notifies about given-up items and overdue 997s, "
    "and shows what needs attention.",
    check_specs=[dg.AssetCheckSpec("nothing_given_up", asset=OUTBOX_ASSET,
                                   description="No outside action has been given up")],
)
def automation_outbox(context: dg.AssetExecutionContext, automation: AutomationResource):
    with automation.context(actor=context.run_id) as domain, \
            psycopg.connect(domain.database_url, autocommit=True) as conn:
        ensure_order_tables(conn)
        handlers = {**domain.handlers(), **partner_outbox_handlers(domain)}
        retried = outbox.run_due(conn, handlers, domain.policy, notifier=domain.notifier, actor=context.run_id)
        late = exchange.overdue_acks(conn, datetime.now(UTC))
        for row in late:
            domain.notifier.notify(
                f"997 overdue from {row['partner']}",
                f"No functional acknowledgement for group {row['group_control']} ({row['functional_id']}, file "
                f"{row['file_name']}) sent {row['created_at']:%Y-%m-%d %H:%M} UTC; it was due {row['ack_due_at']}.",
                key=f"edi.overdue:{row['id']}", conn=conn)
        exchange.mark_overdue_notified(conn, [row["id"] for row in late])
        backlog = outbox.backlog(conn)
        attention = outbox.attention(conn)
    given_up = [row for row in attention if row.get("state") == "given_up"]
    yield dg.MaterializeResult(metadata={
        "retried": len(retried),
        "retried_done": sum(1 for item in retried if item.state == "done"),
        "acks_overdue_notified": len(late),
        **{f"backlog_{state}": count for state, count in sorted(backlog.items())},
        "attention": dg.MetadataValue.md(markdown_table(
            attention, ["reason", "kind", "key", "attempts", "age", "last_error"])),
    })  # fmt: skip
    yield dg.AssetCheckResult(
        check_name="nothing_given_up", passed=not given_up, severity=dg.AssetCheckSeverity.WARN,
        metadata={"given_up": len(given_up)},
    )
