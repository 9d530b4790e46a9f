"""Thin Dagster resource: builds a `ShopifyClient` per configured store, access tokens read through EnvVar."""

from __future__ import annotations

import dagster as dg

from gp_pipelines.config import PlatformConfig
from gp_pipelines.connectors.shopify import DEFAULT_API_VERSION, STANDARD_LEAK_PER_SECOND, ShopifyClient


class ShopifyStore(dg.Config):
    """One Shopify store; `access_token` is always given as an `EnvVar` (named by `access_token_env`)."""

    key: str
    shop_url: str
    access_token: str
    access_token_env: str = ""  # the variable's name, for error messages; never the token
    api_version: str = DEFAULT_API_VERSION
    instance: str
    source_channel: str = "Shopify"
    leak_per_second: float = STANDARD_LEAK_PER_SECOND  # 2 Standard, 4 Advanced, 20 Plus


class ShopifyResource(dg.ConfigurableResource):
    """Shopify Admin API access for every store in `automation.shopify`.

    `client(key)` returns a `ShopifyClient` (use it in a `with` block so its connections close);
    `store_for_sale(instance, source_channel)` says which store, if any, a Cin7 Core sale came from.
    """

    stores: list[ShopifyStore]
    timeout_seconds: float = 30.0
    max_attempts: int = 6
    max_wait_seconds: float = 60.0

    def store(self, store_key: str) -> ShopifyStore:
        for store in self.stores:
            if store.key == store_key:
                return store
        known = sorted(store.key for store in self.stores)
        raise dg.DagsterInvariantViolationError(f"no Shopify store {store_key!r}; configured: {known}")

    def store_for_sale(self, instance: str, source_channel: str | None) -> ShopifyStore | None:
        """The store whose orders arrive in `instance` with this `SourceChannel` (compared without case or
        surrounding spaces); None when the sale did not come from a configured store (B2B, POS, manual)."""
        channel = (source_channel or "").strip().casefold()
        if not channel:
            return None
        matches = [
            store
            for store in self.stores
            if store.instance == instance and store.source_channel.strip().casefold() == channel
        ]
        if len(matches) > 1:
            keys = [store.key for store in matches]
            raise dg.DagsterInvariantViolationError(
                f"Shopify stores {keys} all claim instance {instance!r} channel {source_channel!r}; give each "
                "store its own source_channel in automation.shopify"
            )
        return matches[0] if matches else None

    def client(self, store_key: str) -> ShopifyClient:
        store = self.store(store_key)
        token = store.access_token
        variable = store.access_token_env
        if isinstance(token, dg.EnvVar):
            # Not initialised by Dagster (e.g. built by hand in a script): read the variable here.
            variable = variable or token.env_var_name
            token = token.get_value() or ""
        source = f"environment variable {variable}" if variable else "the store's access_token"
        if not token.strip():
            raise dg.DagsterInvariantViolationError(f"Shopify store {store.key!r}: {source} is not set or empty")
        return ShopifyClient(
            store.shop_url,
            token,
            store.api_version,
            name=store.key,
            token_source=source,
            timeout=self.timeout_seconds,
            max_attempts=self.max_attempts,
            max_wait=self.max_wait_seconds,
            leak_per_second=store.leak_per_second,
        )


def shopify_resource_from_config(config: PlatformConfig) -> ShopifyResource:
    return ShopifyResource(
        stores=[
            ShopifyStore(
                key=store.key,
                shop_url=store.shop_url,
                access_token=dg.EnvVar(store.access_token_env),
                access_token_env=store.access_token_env,
                api_version=store.api_version,
                instance=store.instance,
                source_channel=store.source_channel,
            )
            for store in config.automation.shopify
        ],
    )
