"""The account asset: proves each instance answers with the right credentials and currency."""


import dagster as dg

from gp_pipelines.cin7.account import fetch_account_profile
from gp_pipelines.config import PlatformConfig
from gp_pipelines.resources.cin7 import Cin7Resource


def build_account_asset(config: PlatformConfig, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=["erp_cache", "me"],
        group_name="erp_cache",
        partitions_def=partitions,
        kinds={"cin7", "postgres"},
        owners=["team:integration"],
        description="The Cin7 Core account behind each instance (GET me): company, base currency, time zone.",
    )
    def cin7_account(context: dg.AssetExecutionContext, cin7: Cin7Resource) -> dg.MaterializeResult:
        instance = config.instance(context.partition_key)
        with cin7.client(instance.key) as client:
            profile = fetch_account_profile(client, instance)
            stats = client.stats
        return dg.MaterializeResult(
            metadata={
                "company": profile.company,
                "base_currency": profile.currency,
                "timezone": profile.timezone,
                **stats.as_metadata(),
            }
        )

    return cin7_account
