"""ShopifyResource: stores from the platform config, tokens through EnvVar, the store a sale came from."""

from __future__ import annotations

import dagster as dg
import pytest

from gp_pipelines.config import PlatformConfig
from gp_pipelines.resources.shopify import ShopifyResource, shopify_resource_from_config

from .conftest import MAIN_TOKEN


def _config(shop_url: str) -> PlatformConfig:
    instance = {"name": "X", "application_key_env": ["CIN7_KEY"], "account_id": "12345678-1234-1234-1234-123456789abc"}
    return PlatformConfig.model_validate(
        {
            "reporting_currency": "USD",
            "instances": [{"key": "au", **instance}, {"key": "nz", **instance}],
            "automation": {
                "shopify": [
                    {"key": "au_web", "shop_url": shop_url, "access_token_env": "GP_TEST_SHOPIFY_AU", "instance": "au"},
                    {
                        "key": "nz_web",
                        "shop_url": "nz-shop.myshopify.com",
                        "access_token_env": "GP_TEST_SHOPIFY_NZ",
                        "instance": "nz",
                        "source_channel": "Shopify NZ",
                    },
                ]
            },
        }
    )


def test_resource_builds_a_client_from_the_environment(sandbox, monkeypatch):
    monkeypatch.setenv("GP_TEST_SHOPIFY_AU", MAIN_TOKEN)
    monkeypatch.setenv("GP_TEST_SHOPIFY_NZ", "shpat_unused")
    sandbox.create_order([{"sku": "A", "quantity": 1}])
    resource = shopify_resource_from_config(_config(sandbox.shop_url()))

    for ready in (resource.process_config_and_initialize(), resource):  # resolved by Dagster, or read on the spot
        with ready.client("au_web") as client:
            assert client.find_order("#1001")["name"] == "#1001"
            assert client.shop.startswith("au_web (")
            assert MAIN_TOKEN not in repr(client)


def test_resource_in_a_dagster_run(sandbox, monkeypatch):
    monkeypatch.setenv("GP_TEST_SHOPIFY_AU", MAIN_TOKEN)
    monkeypatch.setenv("GP_TEST_SHOPIFY_NZ", "shpat_unused")
    sandbox.create_order([{"sku": "A", "quantity": 2}])

    @dg.asset
    def shopify_tracking(shopify: ShopifyResource) -> str:
        with shopify.client("au_web") as client:
            return client.post_tracking("#1001", None, "RUN-1")["name"]

    result = dg.materialize(
        [shopify_tracking], resources={"shopify": shopify_resource_from_config(_config(sandbox.shop_url()))}
    )
    assert result.output_for_node("shopify_tracking") == "#1001.1"


def test_an_unset_token_variable_is_named(sandbox, monkeypatch):
    monkeypatch.delenv("GP_TEST_SHOPIFY_AU", raising=False)
    resource = shopify_resource_from_config(_config(sandbox.shop_url()))
    with pytest.raises(dg.DagsterInvariantViolationError, match="environment variable GP_TEST_SHOPIFY_AU is not set"):
        resource.client("au_web")
    with pytest.raises(dg.DagsterInvariantViolationError, match=r"no Shopify store 'uk_web'; configured: \['au_web'"):
        resource.client("uk_web")


def test_store_for_sale_matches_instance_and_channel():
    resource = shopify_resource_from_config(_config("au-shop.myshopify.com"))
    assert resource.store_for_sale("au", "Shopify").key == "au_web"
    assert resource.store_for_sale("au", " shopify ").key == "au_web"
    assert resource.store_for_sale("nz", "Shopify NZ").key == "nz_web"
    assert resource.store_for_sale("nz", "Shopify") is None
    assert resource.store_for_sale("au", "B2B Portal") is None
    assert resource.store_for_sale("au", "") is None
    assert resource.store_for_sale("au", None) is None
