"""Thin Dagster resource: builds a `ZohoAnalyticsClient` and the export settings from the config; the client
id, secret and refresh token are read through EnvVar, so they never sit in run config, metadata or logs."""

import contextlib
from collections.abc import Iterator
from decimal import Decimal

import dagster as dg

from gp_pipelines.config import PlatformConfig
from gp_pipelines.connectors.zoho import ZohoAnalyticsClient, ZohoCredentials
from gp_pipelines.problems import OutsideSystem
from gp_pipelines.resources.failures import failures_named
from gp_pipelines.warehouse.zoho_export import ExportSettings


class ZohoAnalyticsResource(dg.ConfigurableResource):
    """One Zoho Analytics organisation and workspace, and how exports to it behave."""

    accounts_url: str
    api_url: str
    org_id: str
    workspace_id: str
    client_id: str
    client_secret: str
    refresh_token: str
    daily_unit_budget: int = 10_000
    table_prefix: str = ""
    max_batch_bytes: int = 50_000_000
    poll_interval_seconds: float = 10.0
    job_timeout_seconds: float = 1800.0
    throttle_wait_seconds: float = 60.0
    sum_tolerance: float = 0.005
    request_timeout_seconds: float = 120.0
    credential_variables: str = ""  # comma-separated names, for error messages; never their values

    @contextlib.contextmanager
    def client(self) -> Iterator[ZohoAnalyticsClient]:
        client = ZohoAnalyticsClient(
            api_url=self.api_url,
            accounts_url=self.accounts_url,
            org_id=self.org_id,
            workspace_id=self.workspace_id,
            credentials=ZohoCredentials(self.client_id, self.client_secret, self.refresh_token),
            timeout_seconds=self.request_timeout_seconds,
            poll_interval_seconds=self.poll_interval_seconds,
            job_timeout_seconds=self.job_timeout_seconds,
            throttle_wait_seconds=self.throttle_wait_seconds,
        )
        variables = tuple(name for name in self.credential_variables.split(",") if name)
        target = OutsideSystem("Zoho Analytics", "", self.api_url, variables)
        try:
            with failures_named(target):  # a Zoho error leaving the block: a Failure naming URL and variables
                yield client
        finally:
            client.close()

    def settings(self) -> ExportSettings:
        return ExportSettings(
            org_id=self.org_id,
            workspace_id=self.workspace_id,
            daily_unit_budget=self.daily_unit_budget,
            table_prefix=self.table_prefix,
            max_batch_bytes=self.max_batch_bytes,
            sum_tolerance=Decimal(str(self.sum_tolerance)),
        )


def zoho_resource_from_config(config: PlatformConfig) -> ZohoAnalyticsResource | None:
    """The resource for `config.zoho_analytics`, or None when the config exports nothing to Zoho."""
    zoho = config.zoho_analytics
    if zoho is None:
        return None
    return ZohoAnalyticsResource(
        accounts_url=zoho.accounts_url,
        api_url=zoho.api_url,
        org_id=zoho.org_id,
        workspace_id=zoho.workspace_id,
        client_id=dg.EnvVar(zoho.client_id_env),
        client_secret=dg.EnvVar(zoho.client_secret_env),
        refresh_token=dg.EnvVar(zoho.refresh_token_env),
        credential_variables=",".join((zoho.client_id_env, zoho.client_secret_env, zoho.refresh_token_env)),
        daily_unit_budget=zoho.daily_unit_budget,
        table_prefix=zoho.table_prefix,
        max_batch_bytes=zoho.max_batch_bytes,
        poll_interval_seconds=zoho.poll_interval_seconds,
        job_timeout_seconds=zoho.job_timeout_seconds,
        throttle_wait_seconds=zoho.throttle_wait_seconds,
        sum_tolerance=zoho.sum_tolerance,
    )
