"""Warehouse, exchange-rate and analytics assets with their integrity checks, built from the table specs.

Thin: each asset calls `gp_pipelines.warehouse` (set-based SQL in PostgreSQL) and reports its figures; each
check calls a function of `warehouse.checks` and shows its side-by-side table with its numbers beside it. The
warehouse merges every instance, so these assets are not partitioned; they follow the cache through their
dependencies and an eager automation condition that also waits for the upstream blocking checks.

`warehouse/completeness_gate` stands between the cache and every table built from it: its blocking checks
`instances_present` and `cache_complete` (`warehouse.gates`) fail when an instance or an entity's completeness
proof is missing, and a failed gate stops every table downstream in the same run. A run tagged
`gp/instance=KEY` (`gp-pipelines warehouse build --instance KEY`) gates and judges that instance only; the
tables are still built from every instance's cache.
"""

import dagster as dg

from gp_pipelines.assets.cache import cache_asset_key
from gp_pipelines.assets.freshness import FX_CRON
from gp_pipelines.cin7.entities import ENTITIES
from gp_pipelines.config import PlatformConfig
from gp_pipelines.connectors.ecb import FxSource
from gp_pipelines.resources.database import PostgresResource
from gp_pipelines.warehouse import checks, gates
from gp_pipelines.warehouse.analytics import (
    ANALYTICS_VIEWS,
    ensure_analytics_views,
    relation_columns,
    relation_row_counts,
)
from gp_pipelines.warehouse.build import WAREHOUSE_TABLES, TableSpec, build_table
from gp_pipelines.warehouse.fx import load_fx_rates
from gp_pipelines.warehouse.schema import ANALYTICS_SCHEMA, WAREHOUSE_SCHEMA

WAREHOUSE_GROUP = "warehouse"
ANALYTICS_GROUP = "analytics"
ANALYTICS_KEY = dg.AssetKey([ANALYTICS_GROUP, "views"])
GATE_KEY = dg.AssetKey([WAREHOUSE_GROUP, "completeness_gate"])
INSTANCE_TAG = "gp/instance"  # a run about one instance: gates and checks judge that instance only
# Eager, but never over a failed blocking check upstream (the gate, or a dimension's own checks).
BUILD_CONDITION = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()


def run_scope(config: PlatformConfig, tags: dict[str, str]) -> checks.Scope:
    """The scope of a run: every configured instance, or the one its `gp/instance` tag names."""
    return checks.scope_from_config(config, tags.get(INSTANCE_TAG) or None)


def check_metadata(outcome: checks.CheckOutcome) -> dict:
    """The markdown table as markdown, the figures as numbers the UI can plot, the failures as text."""
    return {key: dg.MetadataValue.md(value) if key == "result" else value
            for key, value in outcome.as_metadata().items()}


def check_result(name: str, outcome: checks.CheckOutcome, *, blocking: bool = True,
                 asset_key: dg.AssetKey | None = None) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=name, asset_key=asset_key, passed=outcome.passed, description=outcome.description,
        metadata=check_metadata(outcome),
        severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
    )


def column_schema(columns: list[tuple[str, str, bool, str | None]], prefix: str = "") -> dg.TableSchema:
    return dg.TableSchema(columns=[
        dg.TableColumn(prefix + name, kind, description=comment,
                       constraints=dg.TableColumnConstraints(nullable=nullable))
        for name, kind, nullable, comment in columns])


class WarehouseBuildConfig(dg.Config):
    """`full` rebuilds from scratch instead of from what changed since the last build."""

    full: bool = False


def warehouse_asset_key(name: str) -> dg.AssetKey:
    return dg.AssetKey([WAREHOUSE_GROUP, name])


def _deps(spec: TableSpec) -> list[dg.AssetKey]:
    gate = [GATE_KEY] if spec.inputs else []  # only what reads the cache waits for its completeness proof
    return [cache_asset_key(ENTITIES[name]) for name in spec.inputs] + gate + [
        warehouse_asset_key(name) for name in spec.depends_on
    ]


def _build_gate_asset(platform: PlatformConfig) -> dg.AssetsDefinition:
    specs = [dg.AssetCheckSpec(name, asset=GATE_KEY, blocking=True, description=gates.GATE_DESCRIPTIONS[name])
             for name in gates.WAREHOUSE_GATES]

    @dg.asset(
        key=GATE_KEY,
        group_name=WAREHOUSE_GROUP,
        deps=[cache_asset_key(entity) for entity in ENTITIES.values()],
        check_specs=specs,
        kinds={"postgres"},
        owners=["team:analytics"],
        description="The completeness gate in front of the warehouse: every configured instance in the cache, "
        "every cache entity of every instance proven complete against the API's Total within "
        "`integrity.completeness_max_age_minutes`. Its blocking checks stop every table built from the cache.",
        automation_condition=dg.AutomationCondition.eager(),
    )
    def completeness_gate(context: dg.AssetExecutionContext, gp_database: PostgresResource) -> dg.MaterializeResult:
        scope = run_scope(platform, context.run.tags)
        outcomes = gates.warehouse_gate(gp_database.database_url(), scope)
        for name, outcome in outcomes.items():
            for line in outcome.failures[:20]:
                context.log.error(f"{name}: {line}")
        metadata = {"instances": ", ".join(scope.instances), "passed": all(o.passed for o in outcomes.values())}
        for outcome in outcomes.values():
            metadata.update({k: v for k, v in outcome.figures.items() if v is not None})
        return dg.MaterializeResult(metadata=metadata,
                                    check_results=[check_result(n, o) for n, o in outcomes.items()])

    return completeness_gate


def _table_metadata(database_url: str, schema: str, name: str) -> dict:
    columns = relation_columns(database_url, schema, [name])[name]
    return {"dagster/column_schema": column_schema(columns), "dagster/table_name": f"{schema}.{name}"}


def _build_fx_asset(platform: PlatformConfig, source: FxSource) -> dg.AssetsDefinition:
    @dg.asset(
        key=warehouse_asset_key("fx_rate"),
        group_name=WAREHOUSE_GROUP,
        kinds={"postgres", "ecb" if source.kind == "ecb" else "csv"},
        owners=["team:analytics"],
        description=f"Reference rates ({source.name}), triangulated through {source.anchor} into "
        f"{platform.reporting_currency} for every day, the last published rate carried over days without one.",
        automation_condition=dg.AutomationCondition.on_cron(FX_CRON),  # after the ECB's 16:00 CET fixing
    )
    def fx_rate(context: dg.AssetExecutionContext, config: WarehouseBuildConfig, gp_database: PostgresResource):
        url = gp_database.database_url()
        result = load_fx_rates(url, source, reporting_currency=platform.reporting_currency, full=config.full)
        metadata = result.as_metadata()
        metadata.update(_table_metadata(url, WAREHOUSE_SCHEMA, "fx_rate"))
        metadata["dagster/row_count"] = relation_row_counts(url, WAREHOUSE_SCHEMA, ["fx_rate"])["fx_rate"]
        return dg.MaterializeResult(metadata=metadata)

    return fx_rate


def _build_table_asset(platform: PlatformConfig, spec: TableSpec) -> dg.AssetsDefinition:
    @dg.asset(
        key=warehouse_asset_key(spec.name),
        group_name=WAREHOUSE_GROUP,
        deps=_deps(spec),
        kinds={"postgres", "sql"},
        owners=["team:analytics"],
        description=f"{spec.title} (`warehouse.{spec.name}`), built set-based in SQL from the cache.",
        automation_condition=BUILD_CONDITION,
    )
    def warehouse_table(context: dg.AssetExecutionContext, config: WarehouseBuildConfig, gp_database: PostgresResource):
        url = gp_database.database_url()
        result = build_table(url, spec.name, reporting_currency=platform.reporting_currency, full=config.full)
        metadata = result.as_metadata()
        metadata.update(_table_metadata(url, WAREHOUSE_SCHEMA, spec.name))
        metadata["dagster/row_count"] = result.rows_total
        return dg.MaterializeResult(metadata=metadata)

    return warehouse_table


def _check(platform: PlatformConfig, spec: TableSpec, name: str, run, *, blocking: bool,
           description: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=warehouse_asset_key(spec.name), name=name, blocking=blocking, description=description)
    def _warehouse_check(context: dg.AssetCheckExecutionContext, gp_database: PostgresResource) -> dg.AssetCheckResult:
        outcome: checks.CheckOutcome = run(gp_database.database_url(), run_scope(platform, context.run.tags))
        return check_result(name, outcome, blocking=blocking)

    return _warehouse_check


def _checks_for(platform: PlatformConfig, spec: TableSpec) -> list[dg.AssetChecksDefinition]:
    return [_check(platform, spec, check.name, check.run, blocking=check.blocking, description=check.description)
            for check in checks.table_checks(spec.name)]


def _build_analytics_asset() -> dg.AssetsDefinition:
    @dg.asset(
        key=ANALYTICS_KEY,
        group_name=ANALYTICS_GROUP,
        deps=[warehouse_asset_key(spec.name) for spec in WAREHOUSE_TABLES],
        kinds={"postgres", "powerbi"},
        owners=["team:analytics"],
        description="Views for BI tools in schema `analytics` (stable readable names, Power BI friendly types): "
        + ", ".join(ANALYTICS_VIEWS)
        + ". `analytics/gp_pipelines.pbids` opens them in Power BI Desktop. Its metadata has each view's "
        "columns and rows (`<view>/columns`, `<view>/row_count`); `dagster/column_schema` lists every view's "
        "columns as `view.column`, `dagster/row_count` the rows of all views together.",
        automation_condition=BUILD_CONDITION,
    )
    def analytics_views(gp_database: PostgresResource) -> dg.MaterializeResult:
        url = gp_database.database_url()
        ensure_analytics_views(url)
        views = list(ANALYTICS_VIEWS)
        columns = relation_columns(url, ANALYTICS_SCHEMA, views)
        counts = relation_row_counts(url, ANALYTICS_SCHEMA, views)
        metadata: dict = {"views": ", ".join(views), "dagster/row_count": sum(counts.values()),
                          "dagster/column_schema": dg.TableSchema(columns=[
                              column for view in views for column in column_schema(columns[view], f"{view}.").columns])}
        for view in views:
            metadata[f"{view}/columns"] = dg.MetadataValue.table_schema(column_schema(columns[view]))
            metadata[f"{view}/row_count"] = counts[view]
        return dg.MaterializeResult(metadata=metadata)

    return analytics_views


def fx_source_from_config(config: PlatformConfig) -> FxSource:
    return FxSource.from_mapping(config.fx.model_dump(exclude_none=True))


def build_warehouse_definitions(
    config: PlatformConfig,
) -> tuple[list[dg.AssetsDefinition], list[dg.AssetChecksDefinition]]:
    assets = [_build_gate_asset(config), _build_fx_asset(config, fx_source_from_config(config))]
    assets += [_build_table_asset(config, spec) for spec in WAREHOUSE_TABLES if spec.kind != "fx"]
    assets.append(_build_analytics_asset())
    asset_checks = [check for spec in WAREHOUSE_TABLES for check in _checks_for(config, spec)]
    return assets, asset_checks
