"""Control endpoints: simulated trading, hard delete, stats; and byte-identical responses per seed."""

from __future__ import annotations

import httpx

from gp_pipelines.sandbox.cin7 import SandboxServer

from .conftest import api_client, make_options

PATHS = ["me", "product?Limit=1000&IncludeDeprecated=true", "customer?Limit=1000", "supplier",
         "ref/productavailability?Limit=1000", "ref/location", "ref/carrier", "ref/priceTier",
         "saleList?Limit=1000", "purchaseList?Limit=1000", "stockTransferList", "stockadjustmentList",
         "finishedGoodsList"]


def snapshot(server: SandboxServer, key: str = "nz") -> list[bytes]:
    with api_client(server, key) as client:
        out = [client.get(path).content for path in PATHS]
        rows = client.get("saleList", params={"Limit": 1000}).json()["SaleList"]
        out += [client.get("sale", params={"ID": r["SaleID"]}).content for r in rows[::10]]
        return out


def test_same_seed_serves_identical_bytes(fresh_server) -> None:  # type: ignore[no-untyped-def]
    first, second = fresh_server(), fresh_server()
    assert snapshot(first) == snapshot(second)
    assert snapshot(fresh_server(seed=43)) != snapshot(first)


def test_advance_produces_changes_that_since_filters_find(fresh_server) -> None:  # type: ignore[no-untyped-def]
    server = fresh_server()
    with api_client(server) as client:
        before = client.get("saleList", params={"Limit": 1000}).json()
        mark = max(r["Updated"] for r in before["SaleList"])
        products_mark = max(p["LastModifiedOn"] for p in client.get(
            "product", params={"Limit": 1000, "IncludeDeprecated": "true"}).json()["Products"])
        r = httpx.post(server.root_url + "/sandbox/advance", json={"days": 2})
        assert r.status_code == 200
        summary = r.json()
        au = summary["instances"]["au"]
        assert au["counts"]["new_sales"] >= 2 and set(summary["instances"]) == {"au", "nz", "us"}
        assert summary["clock"] > summary["from"]
        changed = client.get("saleList", params={"UpdatedSince": mark, "Limit": 1000}).json()["SaleList"]
        changed_ids = {row["SaleID"] for row in changed if row["Updated"] > mark}
        assert changed_ids == set(au["changed_sale_ids"])
        stamps = sorted(row["Updated"] for row in changed if row["Updated"] > mark)
        assert summary["from"] < stamps[0] and stamps[-1] < summary["clock"]
        after = client.get("saleList", params={"Limit": 1000}).json()
        assert after["Total"] == before["Total"] + au["counts"]["new_sales"]
        master = client.get("product", params={"ModifiedSince": products_mark, "IncludeDeprecated": "true",
                                               "Limit": 1000}).json()["Products"]
        assert any(p["LastModifiedOn"] > products_mark for p in master) == bool(
            au["counts"].get("edited_products") or au["counts"].get("new_products")
            or au["counts"].get("deprecated_products"))
        # New documents read back completely.
        for sale_id in list(changed_ids)[:5]:
            doc = client.get("sale", params={"ID": sale_id}).json()
            assert doc["LastModifiedOn"] == next(r["Updated"] for r in changed if r["SaleID"] == sale_id)


def test_advance_is_deterministic(fresh_server) -> None:  # type: ignore[no-untyped-def]
    results = []
    for _ in range(2):
        server = fresh_server()
        summaries = [httpx.post(server.root_url + "/sandbox/advance", json={"days": 1}).json() for _ in range(2)]
        results.append([{k: v["counts"] for k, v in s["instances"].items()} for s in summaries])
        results[-1].append(len(summaries[1]["instances"]["us"]["changed_sale_ids"]))
    assert results[0] == results[1]


def test_hard_delete_makes_drafts_vanish(fresh_server) -> None:  # type: ignore[no-untyped-def]
    server = fresh_server()
    with api_client(server) as client:
        total = client.get("saleList").json()["Total"]
        r = httpx.post(server.root_url + "/sandbox/hard-delete", json={"instance": "au", "count": 1})
        [deleted] = r.json()["deleted"]
        assert client.get("saleList").json()["Total"] == total - 1
        assert deleted not in {row["SaleID"] for row in client.get("saleList", params={"Limit": 1000}).json()[
            "SaleList"]}
        gone = client.get("sale", params={"ID": deleted})
        assert gone.status_code == 400 and "not found" in gone.json()[0]["Exception"]
    bad = httpx.post(server.root_url + "/sandbox/hard-delete", json={"instance": "xx"})
    assert bad.status_code == 400


def test_instances_endpoint_matches_server(fresh_server) -> None:  # type: ignore[no-untyped-def]
    server = fresh_server()
    listed = httpx.get(server.root_url + "/sandbox/instances").json()
    assert [i["account_id"] for i in listed] == [i.account_id for i in server.instances]


def test_server_lifecycle_and_free_ports() -> None:
    with SandboxServer(make_options()) as a, SandboxServer(make_options()) as b:
        assert a.port != b.port and a.base_url.endswith("/ExternalApi/v2/")
        assert httpx.get(a.root_url + "/sandbox/stats").status_code == 200
    try:
        httpx.get(a.root_url + "/sandbox/stats", timeout=1)
    except httpx.TransportError:
        pass
    else:
        raise AssertionError("server still answering after stop()")


def test_stock_stays_consistent_through_trading(fresh_server) -> None:  # type: ignore[no-untyped-def]
    server = fresh_server()
    with api_client(server, "us") as client:
        purchase_mark = max(p["LastUpdatedDate"] for p in client.get(
            "purchaseList", params={"Limit": 1000}).json()["PurchaseList"])
        counts = {}
        for _ in range(3):
            counts = httpx.post(server.root_url + "/sandbox/advance", json={"days": 3}).json()["instances"]["us"][
                "counts"]
        rows = client.get("ref/productavailability", params={"Limit": 1000}).json()["ProductAvailabilityList"]
        assert all(r["Available"] == r["OnHand"] - r["Allocated"] and r["OnHand"] >= 0 for r in rows)
        received = client.get("purchaseList", params={"UpdatedSince": purchase_mark, "Limit": 1000}).json()
        newer = [p for p in received["PurchaseList"] if p["LastUpdatedDate"] > purchase_mark]
        assert newer
        assert {p["Status"] for p in newer} <= {"ORDERED", "RECEIVED"} and counts
