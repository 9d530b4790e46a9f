"""One cache asset and one completeness check per Cin7 Core entity, built from the entity registry.

The assets are thin: each opens the instance's client and calls the sync engine (`gp_pipelines.cin7.sync`),
then reports the engine's figures as metadata. Partitioned by instance, so the UI can refresh or backfill
one account at a time.
"""

import dagster as dg
import psycopg

from gp_pipelines.cin7.entities import ENTITIES, Entity
from gp_pipelines.cin7.store import CACHE_SCHEMA
from gp_pipelines.cin7.sync import api_total, cache_count, sync_entity
from gp_pipelines.config import PlatformConfig
from gp_pipelines.resources.cin7 import Cin7Resource
from gp_pipelines.resources.database import PostgresResource

GROUP = "erp_cache"


class CacheSyncConfig(dg.Config):
    """How a run syncs: `incremental` follows the change feed; `full` re-reads everything and reconciles
    deletions (the nightly job)."""

    mode: str = "incremental"
    sweep: int | None = None


def cache_asset_key(entity: Entity) -> dg.AssetKey:
    return dg.AssetKey([GROUP, entity.name])


def _build_cache_asset(entity: Entity, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
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
        with cin7.client(instance) as client:
            result = sync_entity(
                gp_database.database_url(), client, instance, entity, mode=config.mode, sweep=config.sweep
            )
        if result.skipped_locked:
            context.log.warning(f"another sync of {instance}/{entity.name} holds the lock; nothing done")
        metadata = result.as_metadata()
        metadata["dagster/table_name"] = f"{CACHE_SCHEMA}.{entity.name}"
        return dg.MaterializeResult(metadata=metadata)

    return cache_entity


def _build_completeness_check(entity: Entity) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=cache_asset_key(entity),
        name="matches_api_total",
        blocking=True,
        description="The cache holds as many live records as the API's own Total says exist.",
    )
    def completeness(
        context: dg.AssetCheckExecutionContext, cin7: Cin7Resource, gp_database: PostgresResource
    ) -> dg.AssetCheckResult:
        # A check on a partitioned asset runs in that partition's run: compare that instance only.
        instances = (
            [context.partition_key] if context.has_partition_key else [key.instance for key in cin7.application_keys]
        )
        rows, passed = [], True
        for instance in dict.fromkeys(instances):
            with cin7.client(instance) as client:
                expected = api_total(client, entity)
            cached = cache_count(gp_database.database_url(), instance, entity)
            ok = expected is None or expected == cached
            passed &= ok
            rows.append(
                f"| {instance} | {cached} | {'n/a' if expected is None else expected} | {'yes' if ok else 'NO'} |"
            )
        table = "| instance | cache | API Total | equal |\n|---|---|---|---|\n" + "\n".join(rows)
        return dg.AssetCheckResult(passed=passed, metadata={"counts": dg.MetadataValue.md(table)})

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
    assets = [_build_cache_asset(entity, partitions) for entity in ENTITIES.values()]
    checks = [_build_completeness_check(entity) for entity in ENTITIES.values()]
    checks.append(_build_currency_check(config))
    return assets, checks
