"""Warehouse, exchange-rate and analytics assets with their integrity checks, built from the table specs.

Thin: each asset calls `gp_pipelines.warehouse` (set-based SQL in PostgreSQL) and reports its figures; each
check calls a function of `warehouse.checks` and shows its side-by-side table. The warehouse merges every
instance, so these assets are not partitioned; they follow the cache through their dependencies and an
eager automation condition.
"""

import dagster as dg

from gp_pipelines.assets.cache import cache_asset_key
from gp_pipelines.cin7.entities import ENTITIES
from gp_pipelines.config import PlatformConfig
from gp_pipelines.connectors.ecb import FxSource
from gp_pipelines.resources.database import PostgresResource
from gp_pipelines.warehouse import checks
from gp_pipelines.warehouse.analytics import ANALYTICS_VIEWS, ensure_analytics_views
from gp_pipelines.warehouse.build import WAREHOUSE_TABLES, TableSpec, build_table
from gp_pipelines.warehouse.fx import load_fx_rates

WAREHOUSE_GROUP = "warehouse"
ANALYTICS_GROUP = "analytics"
ANALYTICS_KEY = dg.AssetKey([ANALYTICS_GROUP, "views"])


class WarehouseBuildConfig(dg.Config):
    """`full` rebuilds from scratch instead of from what changed since the last build."""

    full: bool = False


def warehouse_asset_key(name: str) -> dg.AssetKey:
    return dg.AssetKey([WAREHOUSE_GROUP, name])


def _deps(spec: TableSpec) -> list[dg.AssetKey]:
    return [cache_asset_key(ENTITIES[name]) for name in spec.inputs] + [
        warehouse_asset_key(name) for name in spec.depends_on
    ]


def _build_fx_asset(platform: PlatformConfig, source: FxSource) -> dg.AssetsDefinition:
    @dg.asset(
        key=warehouse_asset_key("fx_rate"),
        group_name=WAREHOUSE_GROUP,
        kinds={"postgres", "ecb" if source.kind == "ecb" else "csv"},
        owners=["team:analytics"],
        description=f"Reference rates ({source.name}), triangulated through {source.anchor} into "
        f"{platform.reporting_currency} for every day, the last published rate carried over days without one.",
        automation_condition=dg.AutomationCondition.on_cron("0 17 * * 1-5"),  # after the ECB's 16:00 CET fixing
    )
    def fx_rate(context: dg.AssetExecutionContext, config: WarehouseBuildConfig, gp_database: PostgresResource):
        result = load_fx_rates(
            gp_database.database_url(), source, reporting_currency=platform.reporting_currency, full=config.full
        )
        return dg.MaterializeResult(metadata=result.as_metadata())

    return fx_rate


def _build_table_asset(platform: PlatformConfig, spec: TableSpec) -> dg.AssetsDefinition:
    @dg.asset(
        key=warehouse_asset_key(spec.name),
        group_name=WAREHOUSE_GROUP,
        deps=_deps(spec),
        kinds={"postgres", "sql"},
        owners=["team:analytics"],
        description=f"{spec.title} (`warehouse.{spec.name}`), built set-based in SQL from the cache.",
        automation_condition=dg.AutomationCondition.eager(),
    )
    def warehouse_table(context: dg.AssetExecutionContext, config: WarehouseBuildConfig, gp_database: PostgresResource):
        result = build_table(
            gp_database.database_url(), spec.name, reporting_currency=platform.reporting_currency, full=config.full
        )
        metadata = result.as_metadata()
        metadata["dagster/table_name"] = f"warehouse.{spec.name}"
        return dg.MaterializeResult(metadata=metadata)

    return warehouse_table


def _check(spec: TableSpec, name: str, run, *, blocking: bool, description: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=warehouse_asset_key(spec.name), name=name, blocking=blocking, description=description)
    def _warehouse_check(gp_database: PostgresResource) -> dg.AssetCheckResult:
        outcome: checks.CheckOutcome = run(gp_database.database_url())
        metadata = {
            key: dg.MetadataValue.md(value) if key == "result" else value
            for key, value in outcome.as_metadata().items()
        }
        return dg.AssetCheckResult(
            passed=outcome.passed,
            description=outcome.description,
            metadata=metadata,
            severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
        )

    return _warehouse_check


_RECONCILERS = {
    "fact_sale_line": checks.reconcile_sale_lines,
    "fact_invoice_line": checks.reconcile_invoice_lines,
    "fact_credit_note_line": checks.reconcile_credit_note_lines,
    "fact_purchase_line": checks.reconcile_purchase_lines,
}


def _checks_for(spec: TableSpec) -> list[dg.AssetChecksDefinition]:
    found = []
    if spec.kind == "fx":
        return found
    found.append(
        _check(
            spec,
            "unique_keys",
            lambda url: checks.check_unique_keys(url, spec.name),
            blocking=True,
            description="No two rows share the table's key.",
        )
    )
    if spec.kind != "fact":
        return found
    found.append(
        _check(
            spec,
            "dimension_joins",
            lambda url: checks.check_dimension_joins(url, spec.name),
            blocking=True,
            description="Every row joins its dimensions, or the counted unknown member.",
        )
    )
    if spec.has_money:
        found.append(
            _check(
                spec,
                "fx_coverage",
                lambda url: checks.check_fx_coverage(url, spec.name),
                blocking=True,
                description="Every line has its base and reporting amounts; the oldest rate age is shown.",
            )
        )
    if spec.name in _RECONCILERS:
        found.append(
            _check(
                spec,
                "reconciles_with_cache",
                _RECONCILERS[spec.name],
                blocking=True,
                description="Line counts and document-currency sums per instance and month equal the cache's, "
                "to the cent.",
            )
        )
    found.append(
        _check(
            spec,
            "fresh",
            lambda url: checks.check_freshness(url, spec.name),
            blocking=False,
            description="Built from the cache's latest sync of its inputs.",
        )
    )
    return found


def _build_analytics_asset() -> dg.AssetsDefinition:
    @dg.asset(
        key=ANALYTICS_KEY,
        group_name=ANALYTICS_GROUP,
        deps=[warehouse_asset_key(spec.name) for spec in WAREHOUSE_TABLES],
        kinds={"postgres", "powerbi"},
        owners=["team:analytics"],
        description="Views for BI tools in schema `analytics` (stable readable names, Power BI friendly types): "
        + ", ".join(ANALYTICS_VIEWS)
        + ". `analytics/gp_pipelines.pbids` opens them in Power BI Desktop.",
        automation_condition=dg.AutomationCondition.eager(),
    )
    def analytics_views(gp_database: PostgresResource) -> dg.MaterializeResult:
        ensure_analytics_views(gp_database.database_url())
        return dg.MaterializeResult(metadata={"views": ", ".join(ANALYTICS_VIEWS)})

    return analytics_views


def fx_source_from_config(config: PlatformConfig) -> FxSource:
    return FxSource.from_mapping(config.fx.model_dump(exclude_none=True))


def build_warehouse_definitions(
    config: PlatformConfig,
) -> tuple[list[dg.AssetsDefinition], list[dg.AssetChecksDefinition]]:
    assets = [_build_fx_asset(config, fx_source_from_config(config))]
    assets += [_build_table_asset(config, spec) for spec in WAREHOUSE_TABLES if spec.kind != "fx"]
    assets.append(_build_analytics_asset())
    asset_checks = [check for spec in WAREHOUSE_TABLES for check in _checks_for(spec)]
    return assets, asset_checks
