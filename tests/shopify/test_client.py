"""ShopifyClient against the sandbox over real HTTP: lookups, posting tracking, idempotency, limits, faults."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gp_pipelines.connectors.shopify import (
    ShopifyAlreadyFulfilled,
    ShopifyAuthError,
    ShopifyClient,
    ShopifyFulfillmentError,
    ShopifyNotFound,
    ShopifyServerError,
    ShopifyThrottledError,
    ShopifyValidationError,
    normalise_shop_url,
    parse_call_limit,
)

from .conftest import MAIN_SHOP


def _lines(fulfillment: dict) -> dict[str, int]:
    return {line["sku"]: line["quantity"] for line in fulfillment["line_items"]}


def _sandbox_order(sandbox, order_id: int) -> dict:
    return next(order for order in sandbox.orders() if order["id"] == order_id)


def test_find_order_by_name_by_id_and_by_bare_number(sandbox, client):
    first = sandbox.create_order([{"sku": "A", "quantity": 1}])
    second = sandbox.create_order([{"sku": "B", "quantity": 2}], closed=True)  # archived: needs status=any

    assert client.find_order("#1001")["id"] == first["id"]
    assert client.find_order(" #1002 ")["id"] == second["id"]
    assert client.find_order(str(first["id"]))["name"] == "#1001"
    assert client.find_order(second["id"])["name"] == "#1002"
    assert client.find_order("1002")["id"] == second["id"]  # an order number, not an id: tried as "#1002"
    assert client.find_order("#9999") is None
    assert client.find_order("123456") is None
    with pytest.raises(ValueError, match="ExternalID is empty"):
        client.find_order("  ")


def test_find_order_by_custom_name(sandbox, client):
    order = sandbox.create_order([{"sku": "A", "quantity": 1}], name="WEB-77")
    assert client.find_order("web-77")["id"] == order["id"]


def test_post_tracking_fulfils_the_named_skus_and_quantities(sandbox, client):
    order = sandbox.create_order(
        [{"sku": "A", "quantity": 3}, {"sku": "B", "quantity": 2}, {"sku": "C", "quantity": 1}]
    )

    fulfillment = client.post_tracking(
        "#1001", {"A": Decimal("2.0000"), "C": Decimal("1")}, "1Z999", "https://track.example/1Z999", "UPS"
    )

    assert _lines(fulfillment) == {"A": 2, "C": 1}
    assert (fulfillment["tracking_number"], fulfillment["tracking_company"]) == ("1Z999", "UPS")
    assert fulfillment["tracking_url"] == "https://track.example/1Z999"
    state = _sandbox_order(sandbox, order["id"])
    assert {line["sku"]: line["fulfillable_quantity"] for line in state["line_items"]} == {"A": 1, "B": 2, "C": 0}
    assert state["fulfillment_status"] == "partial"
    assert state["fulfillment_orders"][0]["status"] == "in_progress"
    assert client.stats.fulfillments_created == 1


def test_post_tracking_twice_creates_one_fulfillment(sandbox, client):
    order = sandbox.create_order([{"sku": "A", "quantity": 3}])

    first = client.post_tracking("#1001", {"A": 1}, "TRACK-1")
    again = client.post_tracking(str(order["id"]), {"A": 1}, "track-1 ")  # same number, other spelling

    assert again["id"] == first["id"]
    assert len(client.fulfillments(order["id"])) == 1
    assert client.stats.fulfillments_created == 1 and client.stats.fulfillments_reused == 1
    assert sandbox.stats()["requests"]["POST fulfillments.json"] == 1


def test_partial_fulfilment_then_the_rest(sandbox, client):
    order = sandbox.create_order([{"sku": "A", "quantity": 3}, {"sku": "B", "quantity": 1}])

    partial = client.post_tracking("#1001", {"A": 1}, "TRACK-1")
    rest = client.post_tracking("#1001", None, "TRACK-2", company="DHL")

    assert _lines(partial) == {"A": 1}
    assert _lines(rest) == {"A": 2, "B": 1}
    assert [f["name"] for f in client.fulfillments(order["id"])] == ["#1001.1", "#1001.2"]
    state = _sandbox_order(sandbox, order["id"])
    assert state["fulfillment_status"] == "fulfilled"
    assert [fo["status"] for fo in state["fulfillment_orders"]] == ["closed"]
    with pytest.raises(ShopifyAlreadyFulfilled, match="no open fulfillment order"):
        client.post_tracking("#1001", None, "TRACK-3")
    assert client.post_tracking("#1001", None, "TRACK-2")["id"] == rest["id"]  # a repeat is still answered


def test_units_at_two_locations_become_one_fulfillment_per_location(sandbox, client):
    order = sandbox.create_order(
        [{"sku": "A", "quantity": 1, "location": "East"}, {"sku": "B", "quantity": 2, "location": "West"}]
    )
    assert len(order["fulfillment_order_ids"]) == 2

    posted = client.post_tracking_fulfillments("#1001", {"A": 1, "B": 2}, "MULTI-1")
    repeated = client.post_tracking_fulfillments("#1001", {"A": 1, "B": 2}, "MULTI-1")

    assert [_lines(f) for f in posted] == [{"A": 1}, {"B": 2}]
    assert len({f["location_id"] for f in posted}) == 2
    assert [f["id"] for f in repeated] == [f["id"] for f in posted]
    assert sandbox.stats()["requests"]["POST fulfillments.json"] == 2


def test_more_than_remains_is_refused_before_posting(sandbox, client):
    sandbox.create_order([{"sku": "A", "quantity": 3}, {"sku": "B", "quantity": 1}])

    with pytest.raises(ShopifyFulfillmentError, match=r"A: asked 5, open 3"):
        client.post_tracking("#1001", {"A": 5}, "OVER-1")
    with pytest.raises(ShopifyFulfillmentError, match=r"SKU ZZZ not on the order \(its SKUs: \['A', 'B'\]\)"):
        client.post_tracking("#1001", {"ZZZ": 1}, "OVER-2")
    with pytest.raises(ShopifyFulfillmentError, match="whole number"):
        client.post_tracking("#1001", {"A": Decimal("1.5")}, "OVER-3")
    assert "POST fulfillments.json" not in sandbox.stats()["requests"]


def test_shopify_refuses_over_fulfilment_with_its_error(sandbox, client):
    order = sandbox.create_order([{"sku": "A", "quantity": 3}])
    fo = client.fulfillment_orders(order["id"])[0]
    line = fo["line_items"][0]

    with pytest.raises(ShopifyValidationError) as refused:
        client.create_fulfillment(
            [{"fulfillment_order_id": fo["id"], "fulfillment_order_line_items": [{"id": line["id"], "quantity": 4}]}],
            "X-1",
        )

    assert refused.value.status == 422
    assert refused.value.errors == {"errors": ["Invalid fulfillment order line item quantity requested."]}
    assert "Invalid fulfillment order line item quantity requested." in str(refused.value)
    assert client.fulfillments(order["id"]) == []


def test_post_tracking_for_an_unknown_order(sandbox, client):
    with pytest.raises(ShopifyNotFound, match="no order '#4242'"):
        client.post_tracking("#4242", None, "T-1")


def test_429_is_waited_out_for_retry_after(sandbox, client):
    sandbox.create_order([{"sku": "A", "quantity": 1}])
    sandbox.inject("429", 2)

    assert client.find_order("#1001")["name"] == "#1001"

    assert client.stats.throttled == 2 and client.stats.retries == 2
    assert client.stats.seconds_waited == pytest.approx(0.1, abs=0.01)  # Retry-After: 0.05, twice
    assert sandbox.stats()["faults_served"] == {"429": 2}


def test_retry_after_is_capped_and_attempts_are_bounded(sandbox, make_client):
    client = make_client(max_attempts=3, max_wait=0.01)
    sandbox.inject("429", 5)

    with pytest.raises(ShopifyThrottledError, match="gave up after 3 attempts"):
        client.find_order("#1001")
    assert client.stats.requests == 3
    assert client.stats.seconds_waited == pytest.approx(0.03)


def test_5xx_on_a_read_is_retried(sandbox, client):
    sandbox.create_order([{"sku": "A", "quantity": 1}])
    sandbox.inject("500")
    sandbox.inject("503")

    assert client.find_order("#1001") is not None
    assert client.stats.retries == 2


def test_5xx_that_never_ends_names_the_status(sandbox, make_client):
    client = make_client(max_attempts=2)
    sandbox.inject("502", 2)
    with pytest.raises(ShopifyServerError, match=r"HTTP 502 .*gave up after 2 attempts"):
        client.find_order("#1001")


def test_5xx_on_the_post_reads_the_order_before_trying_again(sandbox, client):
    order = sandbox.create_order([{"sku": "A", "quantity": 2}])
    sandbox.inject("500", method="POST")

    fulfillment = client.post_tracking("#1001", {"A": 2}, "T-500")

    assert _lines(fulfillment) == {"A": 2}
    assert len(client.fulfillments(order["id"])) == 1
    assert sandbox.stats()["requests"]["POST fulfillments.json"] == 2


def test_a_reply_lost_after_the_post_is_not_posted_twice(sandbox, client):
    order = sandbox.create_order([{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 1}])
    sandbox.inject("drop", method="POST")  # Shopify creates the fulfillment, the reply never arrives

    fulfillment = client.post_tracking("#1001", {"A": 1}, "T-DROP")

    assert _lines(fulfillment) == {"A": 1}
    assert len(client.fulfillments(order["id"])) == 1
    assert client.stats.fulfillments_reused == 1
    assert sandbox.stats()["requests"]["POST fulfillments.json"] == 1


def test_a_post_that_times_out_is_read_back_not_repeated(sandbox, make_client):
    client = make_client(timeout=0.3)
    order = sandbox.create_order([{"sku": "A", "quantity": 3}])
    sandbox.inject("slow", method="POST")  # Shopify answers after 0.5 s, when the client has given up

    fulfillment = client.post_tracking("#1001", {"A": 1}, "T-SLOW")

    assert _lines(fulfillment) == {"A": 1}
    assert len(client.fulfillments(order["id"])) == 1
    assert sandbox.stats()["requests"]["POST fulfillments.json"] == 1


def test_a_create_fulfillment_with_a_lost_reply_is_ambiguous(sandbox, client):
    order = sandbox.create_order([{"sku": "A", "quantity": 2}])
    fo = client.fulfillment_orders(order["id"])[0]
    sandbox.inject("drop", method="POST")
    with pytest.raises(ShopifyServerError) as lost:
        client.create_fulfillment([{"fulfillment_order_id": fo["id"]}], "T-AMB")
    assert lost.value.ambiguous
    assert sandbox.stats()["requests"]["POST fulfillments.json"] == 1  # never repeated blind


def test_dropped_connection_and_timeout_on_reads_are_retried(sandbox, make_client):
    client = make_client(timeout=0.2)
    sandbox.create_order([{"sku": "A", "quantity": 1}])
    sandbox.inject("drop", method="GET")
    sandbox.inject("slow", method="GET")  # held 0.5 s: longer than the 0.2 s timeout

    assert client.find_order("#1001") is not None
    assert client.stats.retries == 2


def test_bad_token_names_the_shop_and_the_variable_never_the_token(sandbox, make_client):
    secret = "shpat_wrong_secret_value_42"
    client = make_client(token=secret, name="main", token_source="environment variable SHOPIFY_TOKEN_MAIN")

    with pytest.raises(ShopifyAuthError) as rejected:
        client.find_order("#1001")

    message = str(rejected.value)
    assert rejected.value.status == 401
    assert "main" in message and MAIN_SHOP in message and "SHOPIFY_TOKEN_MAIN" in message
    assert "Invalid API key or access token" in message
    assert secret not in message and secret not in repr(client)
    assert client.stats.requests == 1  # not retried


def test_missing_fulfillment_scope_404_says_so(sandbox):
    sandbox.control("POST", "shops", {"shop": "no-scope", "access_token": "shpat_ns", "fulfillment_scopes": False})
    order = sandbox.create_order([{"sku": "A", "quantity": 1}], shop="no-scope")
    with ShopifyClient(sandbox.shop_url("no-scope"), "shpat_ns", backoff_base=0.01) as client:
        assert client.find_order("#1001")["id"] == order["id"]
        with pytest.raises(ShopifyNotFound, match="access scopes"):
            client.fulfillment_orders(order["id"])


def test_shops_are_separate(sandbox, make_client):
    sandbox.create_order([{"sku": "A", "quantity": 1}], shop="other-store")
    assert make_client("demo-store").find_order("#1001") is None
    assert make_client("other-store").find_order("#1001") is not None
    with pytest.raises(ShopifyAuthError):
        make_client("other-store", token="shpat_test_demo_0123456789").find_order("#1001")


def test_shop_url_and_version_are_checked():
    assert normalise_shop_url("acme.myshopify.com/") == "https://acme.myshopify.com"
    with pytest.raises(ValueError, match="not an http"):
        normalise_shop_url("ftp://acme")
    with pytest.raises(ValueError, match="api_version '2025-1'"):
        ShopifyClient("acme.myshopify.com", "tok", "2025-1")
    with pytest.raises(ShopifyAuthError, match="no access token"):
        ShopifyClient("acme.myshopify.com", " ")
    assert parse_call_limit("32/40") == (32, 40) and parse_call_limit("garbage") is None
