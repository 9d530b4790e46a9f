"""Zoho Analytics exports: one asset per analytics view, each with a blocking check that reads the table back.

Thin: the asset calls `warehouse.zoho_export.export_view` (upload to the standby copy, verify it, swap) and
reports what it sent and what it cost; the check calls `verify_live_table` and shows the warehouse and Zoho side
by side per instance and month. Not partitioned: every table holds all instances.
"""

import dagster as dg

from gp_pipelines.assets.warehouse import ANALYTICS_KEY
from gp_pipelines.config import ConfigError, PlatformConfig
from gp_pipelines.resources.database import PostgresResource
from gp_pipelines.resources.zoho import ZohoAnalyticsResource
from gp_pipelines.warehouse.analytics import ANALYTICS_VIEWS
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


class ZohoExportConfig(dg.Config):
    """`force` uploads even when the view is unchanged; `full` reloads the whole table instead of the rows that
    changed."""

    force: bool = False
    full: bool = False


def zoho_export_key(view: str) -> dg.AssetKey:
    return dg.AssetKey([ZOHO_PREFIX, view])


def _build_export_asset(view: str, cron: str | None) -> dg.AssetsDefinition:
    spec = EXPORT_SPECS[view]
    how = ("changed rows by key (updateadd), or a full reload when cheaper" if spec.incremental
           else "a full reload (truncateadd)")

    @dg.asset(
        key=zoho_export_key(view),
        group_name=EXPORTS_GROUP,
        deps=[ANALYTICS_KEY],
        kinds={"zoho", "csv"},
        owners=["team:analytics"],
        description=f"`analytics.{view}` in Zoho Analytics: loaded into a standby copy by {how}, read back and "
        "compared with the warehouse, then swapped in. Skipped when unchanged.",
        automation_condition=dg.AutomationCondition.on_cron(cron) if cron else None,
        pool="zoho_analytics",
        tags={"export": "zoho_analytics"},
    )
    def zoho_export(
        context: dg.AssetExecutionContext,
        config: ZohoExportConfig,
        zoho_analytics: ZohoAnalyticsResource,
        gp_database: PostgresResource,
    ) -> dg.MaterializeResult:
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
        return dg.MaterializeResult(metadata=metadata)

    return zoho_export


def _build_export_check(view: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=zoho_export_key(view),
        name=CHECK_NAME,
        blocking=True,
        description="Row counts and sums of the amount columns per instance and month, read back from Zoho "
        "through the SQL export, equal the warehouse's (sums to the cent).",
    )
    def zoho_matches_warehouse(
        zoho_analytics: ZohoAnalyticsResource, gp_database: PostgresResource
    ) -> dg.AssetCheckResult:
        with zoho_analytics.client() as client:
            verification = verify_live_table(gp_database.database_url(), client, view, zoho_analytics.settings())
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
    return [_build_export_asset(view, cron) for view in views], [_build_export_check(view) for view in views]
