"""Thin Dagster resource: builds a `Cin7Client` per instance from the config, keys read through EnvVar."""

import contextlib
from collections.abc import Iterator
from typing import Any

import dagster as dg

from gp_pipelines.cin7.client import Cin7Client, RetryPolicy
from gp_pipelines.cin7.limiter import PostgresRateLimiter
from gp_pipelines.config import PlatformConfig
from gp_pipelines.problems import OutsideSystem
from gp_pipelines.resources.database import PostgresResource
from gp_pipelines.resources.failures import domain_logs_to, failures_named


class Cin7ApplicationKey(dg.Config):
    """One application key of one instance; `application_key` is always given as an `EnvVar`."""

    instance: str
    account_id: str
    base_url: str
    application_key: str
    calls_per_minute: int
    application_key_env: str = ""  # the variable's name, for error messages; never the key


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

    def target(self, instance: str) -> OutsideSystem:
        """Where `instance`'s calls go, as a failure names it: URL and key variables, never a key."""
        mine = [key for key in self.application_keys if key.instance == instance]
        variables = tuple(key.application_key_env for key in mine if key.application_key_env)
        return OutsideSystem("Cin7 Core", instance, mine[0].base_url if mine else "", variables)

    @contextlib.contextmanager
    def client(self, instance: str, log: Any | None = None) -> Iterator[Cin7Client]:
        """A client for `instance`. A Cin7 or connection error leaving the block becomes a `dg.Failure` naming
        the instance, URL and key variable; with `log` (a step's `context.log`), rate-limit waits, retries and
        sync progress show in the run's log."""
        mine = [key for key in self.application_keys if key.instance == instance]
        if not mine:
            known = sorted({key.instance for key in self.application_keys})
            raise dg.DagsterInvariantViolationError(f"no Cin7 instance {instance!r}; configured: {known}")
        with domain_logs_to(log), failures_named(self.target(instance)):
            limiter = PostgresRateLimiter(self.database.database_url(), calls=mine[0].calls_per_minute,
                                          label=instance)
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
                application_key_env=variable,
            )
            for instance in config.instances
            for variable in instance.application_key_env
        ],
    )
