"""Zoho Analytics exports: one asset per analytics view, each with a blocking check that reads the table back.

Thin: the asset calls `warehouse.zoho_export.export_view` (upload to the standby copy, verify it, swap) and
reports what it sent and what it cost; the check calls `verify_live_table` and shows the warehouse and Zoho side
by side per instance and month. Not partitioned: every table holds all instances.

Before sending anything each export evaluates its gate (`warehouse.gates.export_gate`: every configured
instance present, every cache entity proven complete, no unknown members over the allowed share and the
reconciliation with the cache for the view's table) and reports it as its blocking check `integrity_gate`; a
failed gate fails the step before any call to Zoho, whether the export runs in a job or on its own. The gate
always judges every configured instance: an export holds them all.
"""

import dagster as dg

from gp_pipelines.assets.warehouse import ANALYTICS_KEY, check_result
from gp_pipelines.config import ConfigError, PlatformConfig
from gp_pipelines.resources.database import PostgresResource
from gp_pipelines.resources.zoho import ZohoAnalyticsResource
from gp_pipelines.warehouse import gates
from gp_pipelines.warehouse.analytics import ANALYTICS_VIEWS
from gp_pipelines.warehouse.checks import scope_from_config
from gp_pipelines.warehouse.zoho_export import (
    EXPORT_SPECS,
    ZohoBudgetExceeded,
    ZohoVerificationError,
    export_view,
    verify_live_table,
)

EXPORTS_GROUP = "exports"
ZOHO_PREFIX = "zoho_analytics"
CHECK_NAME = "matches_warehouse"
GATE_CHECK = "integrity_gate"


class ZohoExportConfig(dg.Config):
    """`force` uploads even when the view is unchanged; `full` reloads the whole table instead of the rows that
    changed."""

    force: bool = False
    full: bool = False


def zoho_export_key(view: str) -> dg.AssetKey:
    return dg.AssetKey([ZOHO_PREFIX, view])


def _build_export_asset(platform: PlatformConfig, view: str, cron: str | None) -> dg.AssetsDefinition:
    spec = EXPORT_SPECS[view]
    key = zoho_export_key(view)
    how = ("changed rows by key (updateadd), or a full reload when cheaper" if spec.incremental
           else "a full reload (truncateadd)")

    @dg.asset(
        key=key,
        group_name=EXPORTS_GROUP,
        deps=[ANALYTICS_KEY],
        kinds={"zoho", "csv"},
        owners=["team:analytics"],
        description=f"`analytics.{view}` in Zoho Analytics: loaded into a standby copy by {how}, read back and "
        "compared with the warehouse, then swapped in. Skipped when unchanged.",
        automation_condition=dg.AutomationCondition.on_cron(cron) if cron else None,
        pool="zoho_analytics",
        tags={"export": "zoho_analytics"},
        check_specs=[dg.AssetCheckSpec(
            GATE_CHECK, asset=key, blocking=True,
            description="Evaluated before anything is sent: " + " ".join(
                gates.GATE_DESCRIPTIONS[name] for name in gates.EXPORT_GATES))],
    )
    def zoho_export(
        context: dg.AssetExecutionContext,
        config: ZohoExportConfig,
        zoho_analytics: ZohoAnalyticsResource,
        gp_database: PostgresResource,
    ):
        gate = gates.export_gate(gp_database.database_url(), scope_from_config(platform), [spec.warehouse_table])
        outcome = gates.combined(gate, f"{view} export gate")
        yield check_result(GATE_CHECK, outcome, asset_key=key)
        refused = gates.refusal(gate, f"Zoho export of {view!r}")
        if refused:
            raise dg.Failure(description=refused, allow_retries=False,
                             metadata={"gates_failed": sum(not o.passed for o in gate.values()),
                                       "problems": len(outcome.failures)})
        with zoho_analytics.client() as client:
            try:
                result = export_view(gp_database.database_url(), client, view, zoho_analytics.settings(),
                                     force=config.force, full=config.full, say=context.log.info)
            except ZohoBudgetExceeded as exc:
                raise dg.Failure(
                    description=str(exc), allow_retries=False,
                    metadata={"units_needed": exc.needed, "units_left_today": exc.left,
                              "daily_unit_budget": exc.budget},
                ) from None
            except ZohoVerificationError as exc:
                raise dg.Failure(
                    description=str(exc), allow_retries=False,
                    metadata={"verification": dg.MetadataValue.md(exc.verification.markdown()),
                              **exc.verification.as_metadata()},
                ) from None
        metadata = result.as_metadata()
        if result.verification is not None:
            metadata["verification"] = dg.MetadataValue.md(result.verification.markdown())
        yield dg.MaterializeResult(metadata=metadata)

    return zoho_export


def _build_export_check(platform: PlatformConfig, view: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=zoho_export_key(view),
        name=CHECK_NAME,
        blocking=True,
        description="Row counts and sums of the amount columns per instance and month, read back from Zoho "
        "through the SQL export, equal the warehouse's (sums to the cent); an instance or a month missing on either "
        "side fails, and so does a configured instance on neither.",
    )
    def zoho_matches_warehouse(
        zoho_analytics: ZohoAnalyticsResource, gp_database: PostgresResource
    ) -> dg.AssetCheckResult:
        with zoho_analytics.client() as client:
            verification = verify_live_table(gp_database.database_url(), client, view, zoho_analytics.settings(),
                                             scope_from_config(platform))
        return dg.AssetCheckResult(
            passed=verification.passed,
            description=verification.description,
            metadata={"result": dg.MetadataValue.md(verification.markdown()), **verification.as_metadata()},
            severity=dg.AssetCheckSeverity.ERROR,
        )

    return zoho_matches_warehouse


def exported_views(config: PlatformConfig) -> list[str]:
    """The views the config exports (all by default); an unknown name is a config error naming the field."""
    zoho = config.zoho_analytics
    if zoho is None:
        return []
    views = zoho.views or list(ANALYTICS_VIEWS)
    unknown = [view for view in views if view not in EXPORT_SPECS]
    if unknown:
        raise ConfigError(f"{config.source}: zoho_analytics.views: unknown view(s) {unknown}; known: "
                          f"{', '.join(EXPORT_SPECS)}")
    return views


def build_export_definitions(
    config: PlatformConfig,
) -> tuple[list[dg.AssetsDefinition], list[dg.AssetChecksDefinition]]:
    views = exported_views(config)
    cron = config.zoho_analytics.export_cron if config.zoho_analytics else None
    return ([_build_export_asset(config, view, cron) for view in views],
            [_build_export_check(config, view) for view in views])
