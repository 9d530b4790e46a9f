"""Thin Dagster resource for order automation and partner exchange: it builds the domain context
(`automation.context.AutomationContext`) with Cin7 clients, partner transports, Shopify clients and the notifier.

Secrets the config names by environment variable (SFTP credentials, SMTP login, webhook URL or token) are
passed as `dg.EnvVar`s, so Dagster resolves them at run time and never shows or stores their values."""

import contextlib
from collections.abc import Iterator

import dagster as dg
import yaml

from gp_pipelines.automation.context import AutomationContext, open_context
from gp_pipelines.config import PlatformConfig, config_to_yaml, parse_config
from gp_pipelines.connectors.notify import Notifier
from gp_pipelines.resources.cin7 import Cin7Resource
from gp_pipelines.resources.database import PostgresResource
from gp_pipelines.resources.shopify import ShopifyResource


class NamedSecret(dg.Config):
    """One environment variable the config names; `value` is always given as an `EnvVar`."""

    name: str
    value: str


class AutomationResource(dg.ConfigurableResource):
    """Everything an automation run talks to, built per run and closed after it."""

    platform_config: str  # the platform config as YAML: it never holds secrets, only variable names
    database: PostgresResource
    cin7: Cin7Resource
    shopify: ShopifyResource
    secrets: list[NamedSecret]

    def config(self) -> PlatformConfig:
        return parse_config(yaml.safe_load(self.platform_config), "<automation resource>")

    def environment(self) -> dict[str, str]:
        return {secret.name: secret.value for secret in self.secrets}

    def notifier(self) -> Notifier:
        return Notifier.from_config(self.config().notifications, self.environment())

    @contextlib.contextmanager
    def context(self, actor: str) -> Iterator[AutomationContext]:
        """A domain context whose clients and transports open on first use and close when the block ends."""
        config = self.config()
        with open_context(config, self.database.database_url(), actor=actor, cin7=self.cin7.client,
                          shopify=self.shopify.client if config.automation.shopify else None,
                          environ=self.environment()) as context:
            yield context


def secret_variables(config: PlatformConfig) -> list[str]:
    """Every environment variable the partner and notification config names (never their values)."""
    names: list[str] = []
    for partner in config.partners:
        names += [partner.transport.username_env, partner.transport.password_env]
    if config.notifications and config.notifications.email:
        names += [config.notifications.email.username_env, config.notifications.email.password_env]
    if config.notifications and config.notifications.webhook:
        names += [config.notifications.webhook.url_env, config.notifications.webhook.bearer_token_env]
    return sorted({name for name in names if name})


def automation_resource_from_config(config: PlatformConfig, database: PostgresResource, cin7: Cin7Resource,
                                    shopify: ShopifyResource) -> AutomationResource:
    return AutomationResource(
        platform_config=config_to_yaml(config),
        database=database,
        cin7=cin7,
        shopify=shopify,
        secrets=[NamedSecret(name=name, value=dg.EnvVar(name)) for name in secret_variables(config)],
    )
