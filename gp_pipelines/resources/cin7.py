"""Thin Dagster resource: builds a `Cin7Client` per instance from the config, keys read through EnvVar."""

import contextlib
from collections.abc import Iterator

import dagster as dg

from gp_pipelines.cin7.client import Cin7Client, RetryPolicy
from gp_pipelines.cin7.limiter import PostgresRateLimiter
from gp_pipelines.config import PlatformConfig
from gp_pipelines.resources.database import PostgresResource


class Cin7ApplicationKey(dg.Config):
    """One application key of one instance; `application_key` is always given as an `EnvVar`."""

    instance: str
    account_id: str
    base_url: str
    application_key: str
    calls_per_minute: int


class Cin7Resource(dg.ConfigurableResource):
    """Cin7 Core API access for every configured instance.

    Calls are budgeted by a limiter whose log lives in the platform database, so every run, sensor and pod
    shares each key's 60 calls a minute.
    """

    application_keys: list[Cin7ApplicationKey]
    database: PostgresResource
    timeout_seconds: float = 30.0
    # How hard one call tries through outages before it fails (the run then records it and is offered again).
    max_attempts: int = RetryPolicy.max_attempts
    backoff_base_seconds: float = RetryPolicy.backoff_base

    @contextlib.contextmanager
    def client(self, instance: str) -> Iterator[Cin7Client]:
        mine = [key for key in self.application_keys if key.instance == instance]
        if not mine:
            known = sorted({key.instance for key in self.application_keys})
            raise dg.DagsterInvariantViolationError(f"no Cin7 instance {instance!r}; configured: {known}")
        limiter = PostgresRateLimiter(self.database.database_url(), calls=mine[0].calls_per_minute)
        client = Cin7Client(
            mine[0].base_url,
            mine[0].account_id,
            [key.application_key for key in mine],
            instance=instance,
            timeout=self.timeout_seconds,
            limiter=limiter,
            retry=RetryPolicy(max_attempts=self.max_attempts, backoff_base=self.backoff_base_seconds),
        )
        try:
            yield client
        finally:
            client.close()
            limiter.close()


def cin7_resource_from_config(config: PlatformConfig, database: PostgresResource) -> Cin7Resource:
    return Cin7Resource(
        database=database,
        application_keys=[
            Cin7ApplicationKey(
                instance=instance.key,
                account_id=instance.account_id,
                base_url=instance.base_url,
                application_key=dg.EnvVar(variable),
                calls_per_minute=instance.calls_per_minute,
            )
            for instance in config.instances
            for variable in instance.application_key_env
        ],
    )
