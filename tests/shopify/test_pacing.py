"""The call-limit header paces the client: a small fast bucket (10 slots leaking 20/s) keeps these quick."""

from __future__ import annotations

import pytest

from gp_pipelines.connectors.shopify import ShopifyClient
from gp_pipelines.sandbox.shopify import ShopifySandboxOptions, ShopifySandboxServer

TOKEN = "shpat_pacing"


@pytest.fixture(scope="module")
def fast_bucket():
    options = ShopifySandboxOptions(shops={"pace-store": TOKEN}, bucket_size=10, leak_per_second=20.0)
    with ShopifySandboxServer(options) as server:
        yield server


@pytest.fixture
def sandbox(fast_bucket):
    fast_bucket.reset()
    fast_bucket.create_order([{"sku": "A", "quantity": 1}])
    return fast_bucket


def _client(sandbox, **options) -> ShopifyClient:
    return ShopifyClient(sandbox.shop_url(), TOKEN, leak_per_second=20.0, bucket_reserve=2, **options)


def test_a_nearly_full_bucket_makes_the_client_wait(sandbox):
    sandbox.control("POST", "bucket", {"level": 9})
    with _client(sandbox) as client:
        client.find_order("#1001")  # the reply says 10/10
        assert client.stats.paced == 0
        client.find_order("#1001")
        assert client.stats.paced == 1
        assert 0.04 < client.stats.seconds_waited <= (10 + 1 - 8) / 20 + 0.01  # minus what leaked meanwhile
        assert client.stats.throttled == 0


def test_a_burst_is_paced_below_the_limit(sandbox):
    with _client(sandbox) as client:
        for _ in range(15):
            client.find_order("#1001")
        assert client.stats.throttled == 0 and client.stats.paced > 0
    assert sandbox.stats()["throttled"] == 0


def test_without_pacing_the_burst_meets_429s_and_still_succeeds(sandbox):
    with _client(sandbox, pace=False) as client:
        for _ in range(15):
            assert client.find_order("#1001") is not None
        assert client.stats.throttled > 0
    stats = sandbox.stats()
    assert stats["throttled"] == client.stats.throttled
