"""Throttling in each form and every forced fault, over real HTTP."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from .conftest import api_client

RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "retry-after")


def burn(client: httpx.Client, n: int) -> list[httpx.Response]:
    return [client.get("me") for _ in range(n)]


def test_429_headers_and_recovery(fresh_server) -> None:  # type: ignore[no-untyped-def]
    server = fresh_server(rate_limit=3, rate_window_seconds=1.0)
    with api_client(server) as client, api_client(server, key_index=1) as other_key:
        ok = burn(client, 3)
        assert all(r.status_code == 200 for r in ok)
        assert not any(h in ok[0].headers for h in RATE_HEADERS)  # no rate-limit headers on 2xx
        r = client.get("saleList")
        assert r.status_code == 429
        assert r.text == "You have reached 3 calls per 1 seconds API limit."
        assert r.headers["x-ratelimit-limit"] == "3"
        assert r.headers["x-ratelimit-remaining"] == "0"
        assert r.headers["x-ratelimit-reset"] == "1"
        assert r.headers["retry-after"] == "1 Seconds"
        assert other_key.get("me").status_code == 200  # the window is per application key
        time.sleep(1.05)
        assert client.get("me").status_code == 200
        stats = httpx.get(server.root_url + "/sandbox/stats").json()
        key = server.instances[0].application_keys[0].lower()
        assert stats["throttled"][key] == 1 and stats["calls"][key] == 5


@pytest.mark.parametrize("mode", ["503", "400"])
def test_other_throttle_forms(fresh_server, mode: str) -> None:  # type: ignore[no-untyped-def]
    server = fresh_server(rate_limit=3, rate_window_seconds=1.0, throttle_mode=mode)
    with api_client(server) as client:
        burn(client, 3)
        r = client.get("me")
        message = "You have reached 3 calls per 1 seconds API limit."
        assert r.status_code == int(mode)
        assert "retry-after" not in r.headers
        if mode == "503":
            assert r.text == message
        else:
            assert r.json() == [{"ErrorCode": 400, "Exception": message}]
        time.sleep(1.05)
        assert client.get("me").status_code == 200


def test_default_limit_is_60_per_60_seconds(fresh_server) -> None:  # type: ignore[no-untyped-def]
    server = fresh_server(rate_limit=60)
    with api_client(server) as client:
        codes = [r.status_code for r in burn(client, 61)]
        assert codes[:60] == [200] * 60 and codes[60] == 429
        r = client.get("me")
        assert r.text == "You have reached 60 calls per 60 seconds API limit."
        assert 58 <= int(r.headers["retry-after"].split()[0]) <= 60


def force(server, fault: str, count: int = 1) -> None:  # type: ignore[no-untyped-def]
    r = httpx.post(server.root_url + "/sandbox/faults/next", json={"fault": fault, "count": count})
    assert r.status_code == 200, r.text


def test_forced_faults(fresh_server) -> None:  # type: ignore[no-untyped-def]
    server = fresh_server(slow_seconds=0.3)
    with api_client(server) as client:
        normal = client.get("saleList", params={"Limit": 5})
        expectations = {
            "throttle": lambda r: r.status_code == 429 and r.headers["retry-after"].endswith(" Seconds"),
            "throttle429": lambda r: r.status_code == 429,
            "throttle503": lambda r: r.status_code == 503 and "API limit" in r.text,
            "throttle400": lambda r: r.status_code == 400 and "API limit" in r.json()[0]["Exception"],
            "error500": lambda r: r.status_code == 500 and r.json()[0]["ErrorCode"] == 500,
            "error503": lambda r: r.status_code == 503 and "API limit" not in r.text,
            "error200": lambda r: r.status_code == 200 and r.json()["ErrorCode"] == 500,
            "html200": lambda r: r.status_code == 200 and r.headers["content-type"].startswith("text/html"),
        }
        for fault, check in expectations.items():
            force(server, fault)
            assert check(client.get("saleList", params={"Limit": 5})), fault
            assert client.get("saleList", params={"Limit": 5}).json() == normal.json()  # only the next one
        force(server, "truncated")
        cut = client.get("saleList", params={"Limit": 5})
        assert cut.status_code == 200 and cut.content == normal.content[: len(normal.content) // 2]
        with pytest.raises(json.JSONDecodeError):
            json.loads(cut.content)
        force(server, "slow")
        started = time.monotonic()
        assert client.get("saleList", params={"Limit": 5}).json() == normal.json()
        assert time.monotonic() - started >= 0.3
        stats = httpx.get(server.root_url + "/sandbox/stats").json()["faults"]
        assert set(stats) == {*expectations, "truncated", "slow"}


def test_forced_modify_during_paging_moves_records_ahead(fresh_server) -> None:  # type: ignore[no-untyped-def]
    server = fresh_server()
    with api_client(server) as client:
        first = client.get("saleList", params={"Limit": 1000}).json()["SaleList"]
        high_water = max(r["Updated"] for r in first)
        force(server, "modify_during_paging")
        page = client.get("saleList", params={"Limit": 10}).json()
        moved = client.get("saleList", params={"UpdatedSince": high_water, "Limit": 1000}).json()["SaleList"]
        moved = [r for r in moved if r["Updated"] > high_water]
        assert len(moved) == 3 and page["Total"] == len(first)
        force(server, "modify_during_paging")
        products = client.get("product", params={"Limit": 1000}).json()["Products"]
        assert sum(p["LastModifiedOn"] > high_water for p in products) == 3


def test_forced_hard_delete(fresh_server) -> None:  # type: ignore[no-untyped-def]
    server = fresh_server()
    with api_client(server) as client:
        total = client.get("saleList").json()["Total"]
        force(server, "hard_delete")
        assert client.get("me").status_code == 200
        assert client.get("saleList").json()["Total"] == total - 1


def test_seeded_schedule_is_reproducible(fresh_server) -> None:  # type: ignore[no-untyped-def]
    def run() -> list[int]:
        server = fresh_server(faults="error500=0.2,throttle503=0.1,error200=0.1")
        with api_client(server) as client:
            return [client.get("me").status_code * 1000 + len(client.get("me").content) for _ in range(30)]

    first, second = run(), run()
    assert first == second and len(set(first)) > 1


def test_fault_spec_endpoint(fresh_server) -> None:  # type: ignore[no-untyped-def]
    server = fresh_server()
    r = httpx.post(server.root_url + "/sandbox/faults", json={"spec": "error500=1"})
    assert r.json() == {"spec": "error500=1"}
    with api_client(server) as client:
        assert client.get("me").status_code == 500
    bad = httpx.post(server.root_url + "/sandbox/faults", json={"spec": "gremlin=0.5"})
    assert bad.status_code == 400 and "gremlin=0.5" in bad.json()["error"]
    httpx.post(server.root_url + "/sandbox/faults", json={"spec": ""})
    with api_client(server) as client:
        assert client.get("me").status_code == 200
    assert httpx.post(server.root_url + "/sandbox/faults/next", json={"fault": "nope"}).status_code == 400
