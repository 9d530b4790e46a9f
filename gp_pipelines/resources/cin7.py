"""Thin Dagster resource: builds a `Cin7Client` per instance from the config, keys read through EnvVar."""

from __future__ import annotations

import dagster as dg

from gp_pipelines.cin7.client import Cin7Client
from gp_pipelines.config import PlatformConfig


class Cin7ApplicationKey(dg.Config):
    """One application key of one instance; `application_key` is always given as an `EnvVar`."""

    instance: str
    account_id: str
    base_url: str
    application_key: str


class Cin7Resource(dg.ConfigurableResource):
    """Cin7 Core API access for every configured instance."""

    application_keys: list[Cin7ApplicationKey]
    timeout_seconds: float = 30.0

    def client(self, instance: str) -> Cin7Client:
        mine = [key for key in self.application_keys if key.instance == instance]
        if not mine:
            known = sorted({key.instance for key in self.application_keys})
            raise dg.DagsterInvariantViolationError(f"no Cin7 instance {instance!r}; configured: {known}")
        return Cin7Client(
            mine[0].base_url,
            mine[0].account_id,
            [key.application_key for key in mine],
            instance=instance,
            timeout=self.timeout_seconds,
        )


def cin7_resource_from_config(config: PlatformConfig) -> Cin7Resource:
    return Cin7Resource(
        application_keys=[
            Cin7ApplicationKey(
                instance=instance.key,
                account_id=instance.account_id,
                base_url=instance.base_url,
                application_key=dg.EnvVar(variable),
            )
            for instance in config.instances
            for variable in instance.application_key_env
        ]
    )
