"""Freshness policies (Dagster's current `FreshnessPolicy`) derived from the cadences that keep the assets fresh.

One table of cadences: the cache schedules (jobs/cache.py) and the FX asset read their crons from here, and
`with_freshness_policies` gives each asset the policy derived from the cadence that refreshes it, so a changed
cadence moves its policy with it. An asset warns after two missed refreshes and fails after four.

Dagster judges a partitioned asset by its latest materialisation of any partition: a cache asset stays fresh
while one instance is refreshed. Per instance, the completeness gate in front of the warehouse and every export
(`integrity.completeness_max_age_minutes`) is the guard.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import dagster as dg

from gp_pipelines.cin7.entities import ENTITIES, Entity
from gp_pipelines.config import PlatformConfig

# The first part of each asset key, as assets/cache.py, warehouse.py and exports.py name them (not imported:
# jobs/cache.py imports this module, and assets/cache.py must not depend on the warehouse).
CACHE_PREFIX = "erp_cache"
WAREHOUSE_PREFIXES = ("warehouse", "analytics")
EXPORT_PREFIX = "zoho_analytics"
FX_KEY = dg.AssetKey(["warehouse", "fx_rate"])

WARN_AFTER_MISSED = 2
FAIL_AFTER_MISSED = 4


@dataclass(frozen=True)
class Cadence:
    cron: str  # UTC
    every: timedelta  # the longest gap between two ticks of `cron`

    def freshness_policy(self) -> dg.FreshnessPolicy:
        return dg.FreshnessPolicy.time_window(
            fail_window=self.every * FAIL_AFTER_MISSED, warn_window=self.every * WARN_AFTER_MISSED
        )


# Sales and purchases: the change feed plus one detail call per changed document.
DOCUMENTS = Cadence("*/15 * * * *", timedelta(minutes=15))
# Everything else: master data, stock and reference books.
MASTER_DATA = Cadence("5 * * * *", timedelta(hours=1))
# Every entity's whole list walked with the deletion reconcile (not a freshness source of its own).
FULL_RECONCILE = Cadence("30 2 * * *", timedelta(days=1))
# ECB reference rates, after the 16:00 CET fixing on working days; due an hour later.
FX_CRON = "0 17 * * 1-5"
FX_DEADLINE_CRON = "0 18 * * 1-5"


def is_document(entity: Entity) -> bool:
    return entity.has_detail and entity.incremental


def cache_freshness(entity: Entity) -> dg.FreshnessPolicy:
    return (DOCUMENTS if is_document(entity) else MASTER_DATA).freshness_policy()


def fx_freshness() -> dg.FreshnessPolicy:
    # Cron-based: no rates on weekends, so a time window would fail every Monday morning.
    return dg.FreshnessPolicy.cron(deadline_cron=FX_DEADLINE_CRON, lower_bound_delta=timedelta(hours=1))


def warehouse_freshness(config: PlatformConfig) -> dg.FreshnessPolicy:
    """The warehouse follows the cache (eager): it warns after two missed master-data refreshes and fails once
    it is older than the completeness proof the gate accepts (`integrity.completeness_max_age_minutes`): a build
    that old could not pass the gate again."""
    fail = timedelta(minutes=config.integrity.completeness_max_age_minutes)
    warn = min(MASTER_DATA.every * WARN_AFTER_MISSED, fail / 2)
    return dg.FreshnessPolicy.time_window(fail_window=fail, warn_window=warn)


def export_freshness(export_cron: str | None) -> dg.FreshnessPolicy | None:
    """Each scheduled export (`zoho_analytics.export_cron`, daily by default) must have run in the day before
    the next tick; exports left to manual runs (no cron) have no policy."""
    if not export_cron:
        return None
    return dg.FreshnessPolicy.cron(deadline_cron=export_cron, lower_bound_delta=timedelta(days=1))


def freshness_policy_for(key: dg.AssetKey, config: PlatformConfig) -> dg.FreshnessPolicy | None:
    """The policy of the asset `key` (None for assets refreshed by events, such as the automation state)."""
    prefix, name = key.path[0], key.path[-1]
    if prefix == CACHE_PREFIX and name in ENTITIES:
        return cache_freshness(ENTITIES[name])
    if key == FX_KEY:
        return fx_freshness()
    if prefix in WAREHOUSE_PREFIXES:
        return warehouse_freshness(config)
    if prefix == EXPORT_PREFIX:
        return export_freshness(config.zoho_analytics.export_cron if config.zoho_analytics else None)
    return None


def with_freshness_policies(assets: Sequence[dg.AssetsDefinition], config: PlatformConfig) -> list[dg.AssetsDefinition]:
    """`assets` with their policies set in one place, rather than in each asset factory."""

    def _with_policy(spec: dg.AssetSpec) -> dg.AssetSpec:
        policy = freshness_policy_for(spec.key, config)
        return spec if policy is None else spec.replace_attributes(freshness_policy=policy)

    return [asset.map_asset_specs(_with_policy) for asset in assets]
