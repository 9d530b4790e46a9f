"""The automation as assets (group `automation`), both materialised by the `outbox_retry` job:

- `automation/outbox`: retries what is due, then advances every open order from its state (the 940 after a
  Cin7 fulfilment an outage delayed, the tracking after a shipment booked on a retry), reports late 997s;
- `automation/orders`: sales, fulfilments, shipments, partner files and outside actions per state, as numbers
  the UI plots, and everything that needs a person as a table; checks fail while anything does."""

from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import psycopg

from gp_pipelines.automation import attention, exchange, outbox
from gp_pipelines.automation.orders import ensure_order_tables
from gp_pipelines.automation.reconcile import retry_pass
from gp_pipelines.resources.automation import AutomationResource
from gp_pipelines.warehouse import checks

AUTOMATION_GROUP = "automation"
OUTBOX_ASSET = dg.AssetKey(["automation", "outbox"])
ORDERS_ASSET = dg.AssetKey(["automation", "orders"])


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
    "shipments, 940s and 997s to partners, Shopify tracking), advances every open order from its state, "
    "notifies about given-up items, overdue 997s and long waits.",
    check_specs=[dg.AssetCheckSpec("nothing_given_up", asset=OUTBOX_ASSET,
                                   description="No outside action has been given up")],
)
def automation_outbox(context: dg.AssetExecutionContext, automation: AutomationResource):
    with automation.context(actor=context.run.run_id) as domain, \
            psycopg.connect(domain.database_url, autocommit=True) as conn:
        ensure_order_tables(conn)
        done = retry_pass(conn, domain, cause=f"outbox retry run {context.run.run_id[:8]}")
        late = exchange.overdue_acks(conn, datetime.now(UTC))
        for row in late:
            domain.notifier.notify(
                f"997 overdue from {row['partner']}",
                f"No functional acknowledgement for group {row['group_control']} ({row['functional_id']}, file "
                f"{row['file_name']}) sent {row['created_at']:%Y-%m-%d %H:%M} UTC; it was due {row['ack_due_at']}.",
                key=f"edi.overdue:{row['id']}", conn=conn)
        exchange.mark_overdue_notified(conn, [row["id"] for row in late])
        backlog = outbox.backlog(conn)
    given_up = backlog["given_up"]
    yield dg.MaterializeResult(metadata={
        "retried": len(done.retried),
        "retried_done": sum(1 for item in done.retried if item.state == "done"),
        "orders_advanced": sum(1 for progress in done.advanced if progress.steps),
        "orders_with_errors": sum(1 for progress in done.advanced if progress.state == "error"),
        "long_waits_notified": len(done.long_waits),
        "acks_overdue_notified": len(late),
        **{f"backlog_{state}": count for state, count in sorted(backlog.items())},
    })  # fmt: skip
    yield dg.AssetCheckResult(check_name="nothing_given_up", passed=not given_up,
                              severity=dg.AssetCheckSeverity.WARN, metadata={"given_up": given_up})


_CHECKS = {
    "no_failed_actions": (("outbox",), "No outside action is failing, overdue or given up"),
    "no_stuck_orders": (("sale",), "No order is given up, failing to route or waiting longer than allowed"),
    "no_quarantined_files": (("file",), "No partner file is quarantined, unreadable or failing"),
}


@dg.asset(
    key=ORDERS_ASSET,
    deps=[OUTBOX_ASSET],
    group_name=AUTOMATION_GROUP,
    kinds={"postgres"},
    owners=["team:integrations"],
    description="Every sale, fulfilment, shipment, partner file and outside action the automation handles, per "
    "state, and what needs a person (the same list `gp-pipelines status` prints).",
    check_specs=[dg.AssetCheckSpec(name, asset=ORDERS_ASSET, description=text) for name, (_, text) in _CHECKS.items()],
)
def automation_orders(context: dg.AssetExecutionContext, automation: AutomationResource):
    config = automation.config()
    waiting_after = timedelta(minutes=config.automation.notify_waiting_after_minutes)
    with psycopg.connect(automation.database.database_url(), autocommit=True) as conn:
        ensure_order_tables(conn)
        counts = attention.automation_counts(conn)
        items = attention.attention_items(conn, waiting_after=waiting_after)
    summary = attention.summarise(items)
    table = markdown_table([item.as_dict() for item in items], ["kind", "reason", "instance", "subject", "since",
                                                                "detail"])
    yield dg.MaterializeResult(metadata={
        **counts, **{f"attention_{name}": count for name, count in summary.items()},
        "attention": dg.MetadataValue.md(table),
    })  # fmt: skip
    for name, (kinds, _) in _CHECKS.items():
        mine = [item for item in items if item.kind in kinds]
        yield dg.AssetCheckResult(
            check_name=name, passed=not mine, severity=dg.AssetCheckSeverity.WARN,
            metadata={"items": len(mine), "list": dg.MetadataValue.md(markdown_table(
                [item.as_dict() for item in mine], ["reason", "instance", "subject", "detail"]))},
        )
