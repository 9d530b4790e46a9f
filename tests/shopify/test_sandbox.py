"""The Shopify sandbox itself, over raw HTTP: Shopify's replies, validation, buckets, control endpoints."""

from __future__ import annotations

import httpx
import pytest

from gp_pipelines.sandbox.shopify import ShopifySandboxOptions, ShopifySandboxServer
from gp_pipelines.sandbox.shopify.state import INVALID_TOKEN

from .conftest import MAIN_TOKEN, OTHER_TOKEN

LIMIT = "X-Shopify-Shop-Api-Call-Limit"


@pytest.fixture
def admin(sandbox):
    def call(method: str, path: str, *, shop: str = "demo-store", token: str | None = MAIN_TOKEN, **kwargs):
        headers = {"X-Shopify-Access-Token": token} if token else {}
        url = f"{sandbox.shop_url(shop)}/admin/api/2025-01/{path}"
        return httpx.request(method, url, headers=headers, timeout=5, **kwargs)

    return call


def _fulfil(admin, fo_id: int, items: list[dict] | None = None, **tracking):
    group = {"fulfillment_order_id": fo_id}
    if items is not None:
        group["fulfillment_order_line_items"] = items
    body = {"fulfillment": {"line_items_by_fulfillment_order": [group], "tracking_info": tracking}}
    return admin("POST", "fulfillments.json", json=body)


def test_token_is_checked_like_shopify(sandbox, admin):
    for token in (None, "shpat_nope", OTHER_TOKEN):
        reply = admin("GET", "orders.json", token=token)
        assert reply.status_code == 401
        assert reply.json() == {"errors": INVALID_TOKEN}
        assert INVALID_TOKEN.startswith("[API] Invalid API key or access token")
    assert sandbox.stats()["unauthorised"] == 3


def test_every_reply_reports_the_bucket(sandbox, admin):
    sandbox.create_order([{"sku": "A", "quantity": 1}])
    replies = [admin("GET", "orders.json"), admin("GET", "orders/1.json"), _fulfil(admin, 1)]
    assert [reply.status_code for reply in replies] == [200, 404, 404]
    used = [int(reply.headers[LIMIT].split("/")[0]) for reply in replies]
    assert used == sorted(used) and used[-1] >= 3
    assert {reply.headers[LIMIT].split("/")[1] for reply in replies} == {"40"}


def test_a_full_bucket_answers_429_with_retry_after():
    options = ShopifySandboxOptions(shops={"tiny": "t"}, bucket_size=3, leak_per_second=0.5)
    with ShopifySandboxServer(options) as server:
        url = f"{server.shop_url()}/admin/api/2025-01/orders.json"
        with httpx.Client(headers={"X-Shopify-Access-Token": "t"}) as http:
            replies = [http.get(url) for _ in range(4)]
        assert [reply.status_code for reply in replies] == [200, 200, 200, 429]
        assert [reply.headers[LIMIT] for reply in replies] == ["1/3", "2/3", "3/3", "3/3"]
        assert 0 < float(replies[-1].headers["Retry-After"]) <= 2.0
        assert "Exceeded" in replies[-1].json()["errors"]
        assert server.stats()["throttled"] == 1


def test_fulfillment_orders_come_from_the_order_lines(sandbox, admin):
    order = sandbox.create_order(
        [{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 1, "location": "Annex"}, {"sku": "C", "quantity": 4}]
    )
    fos = admin("GET", f"orders/{order['id']}/fulfillment_orders.json").json()["fulfillment_orders"]
    assert [fo["id"] for fo in fos] == order["fulfillment_order_ids"]
    assert [fo["assigned_location"]["name"] for fo in fos] == ["Main warehouse", "Annex"]
    line_ids = {line["sku"]: line["id"] for line in order["line_items"]}
    assert [
        [(li["line_item_id"], li["quantity"], li["fulfillable_quantity"]) for li in fo["line_items"]] for fo in fos
    ] == [[(line_ids["A"], 2, 2), (line_ids["C"], 4, 4)], [(line_ids["B"], 1, 1)]]
    assert {fo["status"] for fo in fos} == {"open"}


def test_fulfillment_requests_are_validated_like_shopify(sandbox, admin):
    order = sandbox.create_order([{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 1, "location": "Annex"}])
    main_fo, annex_fo = order["fulfillment_order_ids"]
    fo = admin("GET", f"orders/{order['id']}/fulfillment_orders.json").json()["fulfillment_orders"][0]
    line = fo["line_items"][0]["id"]

    missing = admin("POST", "fulfillments.json", json={"nothing": {}})
    assert (missing.status_code, missing.json()) == (
        400,
        {"errors": {"fulfillment": "Required parameter missing or invalid"}},
    )
    assert _fulfil(admin, 999).status_code == 404
    over = _fulfil(admin, main_fo, [{"id": line, "quantity": 3}])
    assert (over.status_code, over.json()) == (
        422,
        {"errors": ["Invalid fulfillment order line item quantity requested."]},
    )
    two_numbers = _fulfil(admin, main_fo, number=["T1", "T2"])
    assert two_numbers.status_code == 422 and "one tracking number" in two_numbers.json()["errors"][0]
    body = {
        "fulfillment": {
            "line_items_by_fulfillment_order": [{"fulfillment_order_id": main_fo}, {"fulfillment_order_id": annex_fo}]
        }
    }
    mixed = admin("POST", "fulfillments.json", json=body)
    assert mixed.status_code == 422 and "single location" in mixed.json()["errors"][0]
    assert admin("GET", f"orders/{order['id']}/fulfillments.json").json() == {"fulfillments": []}

    done = _fulfil(admin, main_fo, number="T1", company="UPS")
    assert done.status_code == 201
    assert done.json()["fulfillment"]["tracking_numbers"] == ["T1"]
    again = _fulfil(admin, main_fo, number="T2")
    assert again.status_code == 422
    assert again.json() == {"errors": [f"Fulfillment order {main_fo} has an unfulfillable status= closed."]}


def test_orders_list_filters(sandbox, admin):
    sandbox.create_order([{"sku": "A", "quantity": 1}])
    sandbox.create_order([{"sku": "A", "quantity": 1}], closed=True)
    names = lambda **params: [o["name"] for o in admin("GET", "orders.json", params=params).json()["orders"]]  # noqa: E731
    assert names() == ["#1001"]
    assert names(status="any") == ["#1001", "#1002"]
    assert names(name="#1002") == []
    assert names(name="#1002", status="any") == ["#1002"]
    assert admin("GET", "orders.json", params={"status": "weird"}).status_code == 400


def test_control_endpoints_validate_and_name_the_field(sandbox):
    http = httpx.Client(base_url=sandbox.root_url)
    bad = http.post("/sandbox/orders", json={"shop": "demo-store", "line_items": [{"sku": "A", "quantity": 0}]})
    assert bad.status_code == 400 and "line_items[0].quantity" in bad.json()["error"]
    assert "name one of" in http.post("/sandbox/orders", json={"line_items": []}).json()["error"]
    assert "unknown fault" in http.post("/sandbox/faults", json={"fault": "explode"}).json()["error"]
    assert http.get("/sandbox/nothing").status_code == 404
    pending = http.post("/sandbox/faults", json={"faults": ["500", {"fault": "429", "count": 2, "method": "POST"}]})
    assert [rule["kind"] for rule in pending.json()["pending"]] == ["500", "429", "429"]
    http.close()


def test_same_calls_give_the_same_ids(sandbox):
    first = sandbox.create_order([{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 2}])
    sandbox.reset()
    second = sandbox.create_order([{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 2}])
    assert first == second


def test_stats_count_requests_per_endpoint_and_shop(sandbox, admin):
    order = sandbox.create_order([{"sku": "A", "quantity": 1}])
    admin("GET", f"orders/{order['id']}.json")
    admin("GET", f"orders/{order['id']}/fulfillments.json")
    admin("GET", "orders.json", shop="other-store", token=OTHER_TOKEN)
    stats = sandbox.stats()
    assert stats["requests"] == {
        "GET orders.json": 1,
        "GET orders/{id}.json": 1,
        "GET orders/{id}/fulfillments.json": 1,
    }
    assert stats["by_shop"] == {"demo-store": 2, "other-store": 1}
