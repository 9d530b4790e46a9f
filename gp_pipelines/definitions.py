"""The one Definitions object of the code location.

Every asset carries a link to its source (`with_source_code_references`: file and line, shown in the UI); with
`GP_SOURCE_GIT_URL` set (e.g. https://github.com/org/gp_pipelines) the links point at that repository at
`GP_SOURCE_GIT_REF` (a branch, tag or commit; default `main`) instead of the local file.
"""

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from gp_pipelines.assets.automation import automation_orders, automation_outbox
from gp_pipelines.assets.cache import build_cache_definitions
from gp_pipelines.assets.exports import EXPORTS_GROUP, build_export_definitions
from gp_pipelines.assets.freshness import with_freshness_policies
from gp_pipelines.assets.partitions import instance_partitions
from gp_pipelines.assets.trading import build_trading_definitions
from gp_pipelines.assets.warehouse import ANALYTICS_GROUP, WAREHOUSE_GROUP, build_warehouse_definitions
from gp_pipelines.config import PlatformConfig, load_config
from gp_pipelines.jobs.automation import AUTOMATION_JOBS
from gp_pipelines.jobs.cache import build_cache_jobs
from gp_pipelines.jobs.executor import run_executor
from gp_pipelines.jobs.relocate import relocate_order
from gp_pipelines.resources.automation import automation_resource_from_config
from gp_pipelines.resources.cin7 import cin7_resource_from_config
from gp_pipelines.resources.database import postgres_resource_from_environment
from gp_pipelines.resources.shopify import shopify_resource_from_config
from gp_pipelines.resources.zoho import zoho_resource_from_config
from gp_pipelines.sensors.automation import build_automation_sensors

MAIN_JOB = "main"
WAREHOUSE_JOB = "warehouse"
ZOHO_EXPORT_JOB = "zoho_export"
SOURCE_GIT_URL_ENV = "GP_SOURCE_GIT_URL"
SOURCE_GIT_REF_ENV = "GP_SOURCE_GIT_REF"
PACKAGE_ROOT = Path(__file__).parent


def with_source_links(assets: Sequence[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """Each asset's file and line; a link into the git repository when GP_SOURCE_GIT_URL names one."""
    # Code references are beta in Dagster 1.13 (a warning per asset on every load); chosen knowingly.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return _linked(assets)


def _linked(assets: Sequence[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    linked = dg.with_source_code_references(assets)
    git_url = os.environ.get(SOURCE_GIT_URL_ENV)
    if git_url:
        linked = dg.link_code_references_to_git(
            linked,
            git_url=git_url.rstrip("/"),
            git_branch=os.environ.get(SOURCE_GIT_REF_ENV) or "main",
            # The package sits at the repository's root: gp_pipelines/definitions.py is this file.
            file_path_mapping=dg.AnchorBasedFilePathMapping(
                local_file_anchor=PACKAGE_ROOT / "definitions.py",
                file_anchor_path_in_repository="gp_pipelines/definitions.py",
            ),
        )
    return list(linked)  # type: ignore[arg-type]  # AssetsDefinition in, AssetsDefinition out


def build_definitions(config: PlatformConfig) -> dg.Definitions:
    partitions = instance_partitions(config)
    cache_assets, cache_checks = build_cache_definitions(config, partitions)
    warehouse_assets, warehouse_checks = build_warehouse_definitions(config)
    jobs, schedules = build_cache_jobs(config)
    main_job = dg.define_asset_job(
        MAIN_JOB,
        selection=dg.AssetSelection.assets(*cache_assets),
        description="The whole cache of one instance: run it per instance partition (the demo runs all).",
    )
    # The warehouse merges every instance, so it is a job of its own (a job has one partitioning).
    warehouse_job = dg.define_asset_job(
        WAREHOUSE_JOB,
        selection=dg.AssetSelection.groups(WAREHOUSE_GROUP, ANALYTICS_GROUP),
        description="Exchange rates, the merged warehouse and the analytics views, with their checks.",
    )
    database = postgres_resource_from_environment()
    cin7 = cin7_resource_from_config(config, database)
    shopify = shopify_resource_from_config(config)
    resources = {
        "cin7": cin7,
        "gp_database": database,
        "shopify": shopify,
        "automation": automation_resource_from_config(config, database, cin7, shopify),
    }
    # Zoho Analytics exports exist only when the config has a zoho_analytics section.
    export_assets, export_checks = build_export_definitions(config)
    if export_assets:
        jobs.append(dg.define_asset_job(
            ZOHO_EXPORT_JOB,
            selection=dg.AssetSelection.groups(EXPORTS_GROUP),
            description="Every analytics view to Zoho Analytics, each read back and compared with the warehouse.",
        ))
        resources["zoho_analytics"] = zoho_resource_from_config(config)
    trading_assets, trading_checks, trading_jobs, trading_sensors, trading_schedules = build_trading_definitions(
        config)
    assets = [*cache_assets, *warehouse_assets, *export_assets, automation_outbox, automation_orders, *trading_assets]
    return dg.Definitions(
        assets=with_source_links(with_freshness_policies(assets, config)),
        asset_checks=[*cache_checks, *warehouse_checks, *export_checks, *trading_checks],
        jobs=[main_job, warehouse_job, *jobs, *AUTOMATION_JOBS, relocate_order, *trading_jobs],
        schedules=[*schedules, *trading_schedules],
        sensors=[*build_automation_sensors(config), *trading_sensors],
        resources=resources,
        executor=run_executor,  # jobs/executor.py: in process unless a run asks for a process per step
    )


defs = build_definitions(load_config())
