"""Trading-partner assets (group `automation`), thin over `automation.partner_flows`:

- `automation/inventory_feed`: each materialisation sends every trading partner its 846 for the hour, from the
  cache (available less the safety buffer), once per partner and hour; metadata says what each was offered.
- `automation/partner_interchanges`: the state of every interchange with partners (`automation.interchange_status`)
  as a table, with the check `acknowledgements_in_order` that warns on an overdue or rejected 997.

`build_trading_definitions(config)` returns everything trading adds to the code location."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import psycopg
from psycopg.rows import dict_row
from pydantic import Field

from gp_pipelines.assets.automation import AUTOMATION_GROUP, markdown_table
from gp_pipelines.assets.cache import cache_asset_key
from gp_pipelines.automation.partner_flows import ensure_partner_tables, send_inventory_feed, trading_partners
from gp_pipelines.cin7.entities import ENTITIES
from gp_pipelines.config import PlatformConfig
from gp_pipelines.jobs.trading import (
    DEFAULT_FEED_CRON,
    INVENTORY_FEED_ASSET,
    inventory_feed_job,
    inventory_feed_schedule,
    partner_documents_job,
)
from gp_pipelines.resources.automation import AutomationResource
from gp_pipelines.sensors.trading import partner_documents_sensor

PARTNER_INTERCHANGES_ASSET = dg.AssetKey(["automation", "partner_interchanges"])
SCHEDULED_TIME_TAG = ".dagster/scheduled_execution_time"  # set by Dagster on every scheduled run
# A 997 problem older than this has been notified and is history; the check looks at recent traffic.
CHECK_WINDOW = timedelta(days=7)
SHOWN_INTERCHANGES = 100
_PROBLEM_STATES = ("ack_overdue", "rejected", "partially_accepted")


class InventoryFeedConfig(dg.Config):
    """Which partners get an 846 now; empty means every trading partner that takes 846s."""

    partners: list[str] = Field(default_factory=list, description="Partner keys; empty = all")


def _tick(context: dg.AssetExecutionContext) -> datetime:
    # The schedule's tick, not the run's start: a retried or delayed run of the same tick sends the same hour.
    scheduled = context.run.tags.get(SCHEDULED_TIME_TAG)
    return datetime.fromisoformat(scheduled) if scheduled else datetime.now(UTC)


@dg.asset(
    key=INVENTORY_FEED_ASSET,
    group_name=AUTOMATION_GROUP,
    kinds={"postgres"},
    owners=["team:integrations"],
    deps=[cache_asset_key(ENTITIES["products"]), cache_asset_key(ENTITIES["product_availability"])],
    description="The 846 inventory feed: per trading partner, every item of its assortment with Cin7 Available "
    "(from the cache, optionally per location) less its safety buffer; one file per partner and hour.",
    check_specs=[
        dg.AssetCheckSpec(
            "every_feed_sent", asset=INVENTORY_FEED_ASSET, description="Every partner's 846 was written and sent"
        )
    ],
)
def inventory_feed(context: dg.AssetExecutionContext, config: InventoryFeedConfig, automation: AutomationResource):
    now = _tick(context)
    with (
        automation.context(actor=context.run.run_id) as domain,
        psycopg.connect(domain.database_url, autocommit=True) as conn,
    ):
        partners = trading_partners(domain.config, "846")
        unknown = sorted(set(config.partners) - {partner.key for partner in partners})
        if unknown:
            raise dg.Failure(
                f"no trading partner taking 846s has the key(s) {unknown}; known: {sorted(p.key for p in partners)}"
            )
        chosen = [partner for partner in partners if not config.partners or partner.key in config.partners]
        outcomes = [send_inventory_feed(conn, domain, partner, now) for partner in chosen]
    for outcome in outcomes:
        context.log.info(
            f"846 {outcome.partner} {outcome.reference}: {outcome.state} {outcome.outcome or ''} {outcome.reason}"
        )
    not_sent = [outcome for outcome in outcomes if outcome.state != "queued" or outcome.outcome not in (
        "performed", "found_existing", "already_done")]  # fmt: skip
    yield dg.MaterializeResult(metadata={
        "hour": now.astimezone(UTC).strftime("%Y-%m-%d %H:00 UTC"),
        "partners": len(outcomes),
        "items": sum(outcome.items for outcome in outcomes),
        "quantity": float(sum(outcome.total_quantity for outcome in outcomes)),
        **{f"items_{o.partner}": o.items for o in outcomes},
        **{f"quantity_{o.partner}": float(o.total_quantity) for o in outcomes},
        "feeds": dg.MetadataValue.md(markdown_table([o.as_metadata() for o in outcomes],
                                                    ["partner", "hour", "state", "items", "quantity", "outcome",
                                                     "file", "reason"])),
        "offered": dg.MetadataValue.json({o.partner: o.quantities for o in outcomes}),
    })  # fmt: skip
    yield dg.AssetCheckResult(
        check_name="every_feed_sent", passed=not not_sent, severity=dg.AssetCheckSeverity.WARN,
        metadata={"not_sent": ", ".join(f"{o.partner}: {o.reason or o.outcome}" for o in not_sent) or "none"},
    )  # fmt: skip


def _interchanges(conn: psycopg.Connection, where: str = "", params: tuple = ()) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT partner, direction, file_name, interchange_control, group_control, functional_id, sets, "
            "state, created_at, ack_due_at, acked_at, ack_detail FROM automation.interchange_status "
            f"{where} ORDER BY created_at DESC", params,
        ).fetchall()  # fmt: skip


@dg.asset(
    key=PARTNER_INTERCHANGES_ASSET,
    group_name=AUTOMATION_GROUP,
    kinds={"postgres"},
    owners=["team:integrations"],
    description="Every interchange with partners, sent and received, with its 997 state (awaiting_ack, "
    "ack_overdue, accepted, rejected ...), from the view automation.interchange_status.",
)
def partner_interchanges(context: dg.AssetExecutionContext, automation: AutomationResource) -> dg.MaterializeResult:
    with psycopg.connect(automation.database.database_url(), autocommit=True) as conn:
        ensure_partner_tables(conn)
        counts = conn.execute("SELECT state, count(*) FROM automation.interchange_status GROUP BY state "
                              "ORDER BY state").fetchall()  # fmt: skip
        recent = _interchanges(conn)[:SHOWN_INTERCHANGES]
    for row in recent:
        row["created_at"] = f"{row['created_at']:%Y-%m-%d %H:%M}"
    return dg.MaterializeResult(metadata={
        "interchanges": sum(count for _state, count in counts),
        **{f"state_{state}": count for state, count in counts},
        "recent": dg.MetadataValue.md(markdown_table(recent, ["created_at", "partner", "direction", "sets",
                                                              "group_control", "state", "file_name"])),
    })  # fmt: skip


@dg.asset_check(
    asset=PARTNER_INTERCHANGES_ASSET,
    name="acknowledgements_in_order",
    description="No group we sent in the last 7 days has an overdue, rejected or partly rejected 997",
)
def acknowledgements_in_order(automation: AutomationResource) -> dg.AssetCheckResult:
    with psycopg.connect(automation.database.database_url(), autocommit=True) as conn:
        ensure_partner_tables(conn)
        problems = _interchanges(conn, "WHERE direction = 'out' AND state = ANY(%s) AND created_at > now() - %s",
                                 (list(_PROBLEM_STATES), CHECK_WINDOW))  # fmt: skip
    for row in problems:
        detail = row.get("ack_detail") or {}
        row["why"] = (
            ", ".join(
                f"{s['set_id']} {s['control_number']}: {s['status']} {','.join(s['codes'])}"
                for s in detail.get("sets", [])
                if s.get("status") != "A"
            )
            or row["state"]
        )
    return dg.AssetCheckResult(
        passed=not problems, severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "problems": len(problems),
            "overdue": sum(1 for row in problems if row["state"] == "ack_overdue"),
            "rejected": sum(1 for row in problems if row["state"] != "ack_overdue"),
            "details": dg.MetadataValue.md(markdown_table(problems, ["partner", "sets", "group_control", "state",
                                                                     "file_name", "why"])),
        },
    )  # fmt: skip


def build_trading_definitions(
    config: PlatformConfig, feed_cron: str = DEFAULT_FEED_CRON
) -> tuple[list, list, list, list, list]:
    """(assets, asset checks, jobs, sensors, schedules) for trading partners. The interchange view comes with any
    partner; the feed, the documents job, its sensor and the feed schedule only with a trading partner."""
    if not config.partners:
        return [], [], [], [], []
    assets: list = [partner_interchanges]
    checks: list = [acknowledgements_in_order]
    if not trading_partners(config):
        return assets, checks, [], [], []
    return ([*assets, inventory_feed], checks, [partner_documents_job, inventory_feed_job], [partner_documents_sensor],
            [inventory_feed_schedule(feed_cron)])  # fmt: skip
