"""One cache asset and one completeness check per Cin7 Core entity, built from the entity registry.

The assets are thin: each opens the instance's client and calls the sync engine (`gp_pipelines.cin7.sync`),
then reports the engine's figures as metadata. Partitioned by instance, so the UI can refresh or backfill
one account at a time.
"""

import warnings
from typing import Any

import dagster as dg
import psycopg

from gp_pipelines.cin7.completeness import check_entity
from gp_pipelines.cin7.entities import ENTITIES, Entity
from gp_pipelines.cin7.store import CACHE_SCHEMA
from gp_pipelines.cin7.sync import SyncRules, estimate_full_read, sync_entity
from gp_pipelines.config import PlatformConfig
from gp_pipelines.resources.cin7 import Cin7Resource
from gp_pipelines.resources.database import PostgresResource

GROUP = "erp_cache"
# Partitioned asset checks are "preview" in Dagster 1.13, and the one way to keep a check's state per instance
# in the UI; they work on this release (tests/platform/test_cache_checks.py).
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec",
                        category=dg.PreviewWarning)


class CacheSyncConfig(dg.Config):
    """How a run syncs: `incremental` follows the change feed; `reconcile` walks every list whole and marks
    deletions (the nightly job); `full` also re-reads every document, repairing drift (costly: one call each)."""

    mode: str = "incremental"
    sweep: int | None = None
    accept_deletions: bool = False  # an operator confirmed that a mass deletion the reconcile refused is real


def cache_asset_key(entity: Entity) -> dg.AssetKey:
    return dg.AssetKey([GROUP, entity.name])


def _build_cache_asset(entity: Entity, partitions: dg.PartitionsDefinition,
                       platform: PlatformConfig) -> dg.AssetsDefinition:
    @dg.asset(
        key=cache_asset_key(entity),
        group_name=GROUP,
        partitions_def=partitions,
        kinds={"cin7", "postgres"},
        owners=["team:integrations"],
        description=f"{entity.title}: the Cin7 Core records as the API returns them, in "
        f"`{CACHE_SCHEMA}.{entity.name}` (JSONB), kept in step incrementally.",
        tags={"entity": entity.name},
        pool="cin7_api",
    )
    def cache_entity(
        context: dg.AssetExecutionContext,
        config: CacheSyncConfig,
        cin7: Cin7Resource,
        gp_database: PostgresResource,
    ) -> dg.MaterializeResult:
        instance = context.partition_key
        rules = SyncRules.from_config(platform.cache, accept_deletions=config.accept_deletions)
        with cin7.client(instance, log=context.log) as client:
            estimate = None
            if config.mode == "full":
                estimate = estimate_full_read(client, entity)
                context.log.info(f"{instance}/{entity.name}: full read, {estimate.describe()}")
            result = sync_entity(
                gp_database.database_url(), client, instance, entity, mode=config.mode, sweep=config.sweep,
                rules=rules, max_calls=platform.cache.full_read_max_calls, estimate=estimate,
            )
        if result.refused_reconcile:
            refused = result.refused_reconcile
            context.log.error(f"{instance}/{entity.name}: reconcile refused, it would have marked "
                              f"{refused['would_delete']} of {refused['live']} rows deleted; rows kept. If the "
                              "deletion is real, run once with accept_deletions: true")
        if result.skipped_locked:
            context.log.warning(f"another sync of {instance}/{entity.name} holds the lock; nothing done")
        metadata = result.as_metadata()
        metadata["dagster/table_name"] = f"{CACHE_SCHEMA}.{entity.name}"
        if not result.skipped_locked:
            # This partition's live rows: the count the completeness check compares with the API's Total.
            metadata["dagster/partition_row_count"] = result.live_rows
        if result.refused_reconcile is not None:
            metadata["refused_reconcile"] = dg.MetadataValue.json(result.refused_reconcile)
        return dg.MaterializeResult(metadata=metadata)

    return cache_entity


def _build_completeness_check(entity: Entity, partitions: dg.PartitionsDefinition) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=cache_asset_key(entity),
        name="matches_api_total",
        blocking=True,
        partitions_def=partitions,  # one result per instance: the UI shows each partition's own state
        description="The cache holds as many live records as the API's own Total says exist, and the last sync "
        "refused no reconcile. Kept in erp_cache.completeness for the warehouse and export gates.",
    )
    def completeness(
        context: dg.AssetCheckExecutionContext, cin7: Cin7Resource, gp_database: PostgresResource
    ) -> dg.AssetCheckResult:
        instance = context.partition_key
        with cin7.client(instance, log=context.log) as client:
            result = check_entity(gp_database.database_url(), client, instance, entity)
        expected = "n/a" if result.api_total is None else str(result.api_total)
        table = ("| instance | cache | API Total | difference | equal |\n|---|---|---|---|---|\n"
                 f"| {instance} | {result.cache_count} | {expected} | "
                 f"{'n/a' if result.difference is None else result.difference} | "
                 f"{'yes' if result.api_total is None or result.difference == 0 else 'NO'} |")
        metadata: dict[str, Any] = {"counts": dg.MetadataValue.md(table), "cache_count": result.cache_count,
                                    "difference": result.difference or 0, "problems": len(result.problems)}
        if result.api_total is not None:
            metadata["api_total"] = result.api_total
        if result.problems:
            metadata["problem_list"] = dg.MetadataValue.md("\n".join(f"- {p}" for p in result.problems))
        description = (f"{instance}/{entity.name}: cache {result.cache_count}, API Total {expected}"
                       + "".join(f"; {p}" for p in result.problems))
        return dg.AssetCheckResult(passed=result.passed, metadata=metadata, description=description)

    return completeness


def _build_currency_check(config: PlatformConfig) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=cache_asset_key(ENTITIES["me"]),
        name="base_currency_matches_config",
        blocking=True,
        description="Each account's base currency (GET me) is the one the config names: amounts must never be "
        "converted from a wrong currency.",
    )
    def currency(context: dg.AssetCheckExecutionContext, gp_database: PostgresResource) -> dg.AssetCheckResult:
        instances = [context.partition_key] if context.has_partition_key else config.instance_keys
        rows, passed = [], True
        with psycopg.connect(gp_database.database_url()) as conn:
            for key in instances:
                expected = config.instance(key).base_currency
                row = conn.execute(
                    f"SELECT payload->>'Currency', payload->>'Company' FROM {CACHE_SCHEMA}.me "
                    "WHERE instance = %s AND deleted_at IS NULL",
                    (key,),
                ).fetchone()
                actual, company = row if row else (None, None)
                ok = actual is not None and (expected is None or expected == actual)
                passed &= ok
                rows.append(f"| {key} | {company or '?'} | {actual or 'not cached'} | {expected or '(any)'} |")
        table = "| instance | company | account currency | config |\n|---|---|---|---|\n" + "\n".join(rows)
        return dg.AssetCheckResult(passed=passed, metadata={"accounts": dg.MetadataValue.md(table)})

    return currency


def build_cache_definitions(
    config: PlatformConfig, partitions: dg.PartitionsDefinition
) -> tuple[list[dg.AssetsDefinition], list[dg.AssetChecksDefinition]]:
    assets = [_build_cache_asset(entity, partitions, config) for entity in ENTITIES.values()]
    checks = [_build_completeness_check(entity, partitions) for entity in ENTITIES.values()]
    checks.append(_build_currency_check(config))
    return assets, checks
