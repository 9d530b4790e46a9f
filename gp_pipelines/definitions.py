"""The one Definitions object of the code location."""

from __future__ import annotations

import dagster as dg

from gp_pipelines.assets.account import build_account_asset
from gp_pipelines.assets.partitions import instance_partitions
from gp_pipelines.config import PlatformConfig, load_config
from gp_pipelines.resources.cin7 import cin7_resource_from_config

MAIN_JOB = "main"


def build_definitions(config: PlatformConfig) -> dg.Definitions:
    partitions = instance_partitions(config)
    assets = [build_account_asset(config, partitions)]
    main_job = dg.define_asset_job(
        MAIN_JOB,
        selection=dg.AssetSelection.assets(*assets),
        description="Everything for one instance: run it per instance partition (the demo runs all).",
    )
    return dg.Definitions(
        assets=assets,
        jobs=[main_job],
        resources={"cin7": cin7_resource_from_config(config)},
    )


defs = build_definitions(load_config())
