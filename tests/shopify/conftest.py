"""A Shopify sandbox on a real port for the whole package, reset before each test, and clients pointed at it."""

from __future__ import annotations

import pytest

from gp_pipelines.connectors.shopify import ShopifyClient
from gp_pipelines.sandbox.shopify import ShopifySandboxOptions, ShopifySandboxServer

MAIN_SHOP = "demo-store"
MAIN_TOKEN = "shpat_test_demo_0123456789"
OTHER_SHOP = "other-store"
OTHER_TOKEN = "shpat_test_other_9876543210"


@pytest.fixture(scope="session")
def sandbox_server():
    # Short waits so throttling and faults cost milliseconds: Retry-After 0.05 s, `slow` holds 0.5 s.
    options = ShopifySandboxOptions(
        shops={MAIN_SHOP: MAIN_TOKEN, OTHER_SHOP: OTHER_TOKEN}, retry_after_seconds=0.05, slow_seconds=0.5
    )
    with ShopifySandboxServer(options) as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: ShopifySandboxServer) -> ShopifySandboxServer:
    sandbox_server.reset()
    return sandbox_server


@pytest.fixture
def make_client(sandbox: ShopifySandboxServer):
    clients: list[ShopifyClient] = []

    def make(shop: str = MAIN_SHOP, token: str | None = None, **options) -> ShopifyClient:
        token = token or {MAIN_SHOP: MAIN_TOKEN, OTHER_SHOP: OTHER_TOKEN}[shop]
        settings = {"backoff_base": 0.01, "timeout": 5.0, **options}
        client = ShopifyClient(sandbox.shop_url(shop), token, **settings)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client) -> ShopifyClient:
    return make_client()
