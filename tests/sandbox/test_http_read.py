"""Read side over real HTTP: auth, case-insensitivity, paging, envelopes, filters, unknown paths and IDs."""

from __future__ import annotations

import math

import httpx
import pytest

from gp_pipelines.sandbox.cin7 import SandboxServer

from .conftest import CLOCK_START, api_client

ENVELOPES = {
    "product": "Products", "customer": "CustomerList", "supplier": "SupplierList",
    "ref/productavailability": "ProductAvailabilityList", "ref/location": "LocationList",
    "ref/carrier": "CarrierList", "saleList": "SaleList", "purchaseList": "PurchaseList",
    "stockTransferList": "StockTransferList", "stockadjustmentList": "StockAdjustmentList",
    "finishedGoodsList": "FinishedGoods",
}


def test_missing_or_wrong_credentials_get_403_text(shared_server: SandboxServer) -> None:
    inst = shared_server.instances[0]
    for headers in ({}, {"api-auth-accountid": inst.account_id},
                    {"api-auth-accountid": inst.account_id, "api-auth-applicationkey": "nope"},
                    # a key of another instance does not pair with this account
                    {"api-auth-accountid": inst.account_id,
                     "api-auth-applicationkey": shared_server.instances[1].application_keys[0]}):
        r = httpx.get(shared_server.base_url + "me", headers=headers)
        assert r.status_code == 403 and r.text == "Incorrect credentials!"
        assert r.headers["content-type"].startswith("text/plain")


def test_each_key_sees_its_own_instance(shared_server: SandboxServer) -> None:
    seen = {}
    for inst in shared_server.instances:
        for index in (0, 1):
            with api_client(shared_server, inst.key, index) as client:
                me = client.get("me").json()
                assert (me["Currency"], me["TimeZone"]) == (inst.currency, inst.timezone)
                ids = {row["SaleID"] for row in client.get("saleList", params={"Limit": 1000}).json()["SaleList"]}
                seen.setdefault(inst.key, ids)
                assert ids == seen[inst.key]
    assert seen["au"].isdisjoint(seen["nz"]) and seen["nz"].isdisjoint(seen["us"])


def test_paths_and_parameter_names_are_case_insensitive(shared_server: SandboxServer, au: httpx.Client) -> None:
    base = shared_server.root_url
    expected = au.get("saleList", params={"Page": 2, "Limit": 7}).json()
    for url in ("/ExternalApi/v2/saleList?Page=2&Limit=7", "/externalapi/v2/SALELIST?page=2&limit=7",
                "/EXTERNALAPI/V2/salelist?PAGE=2&LiMiT=7&UnknownParam=1"):
        assert au.get(base + url).json() == expected
    assert len(expected["SaleList"]) == 7 and expected["Page"] == 2


@pytest.mark.parametrize("path,key", sorted(ENVELOPES.items()))
def test_envelope_keys(au: httpx.Client, path: str, key: str) -> None:
    body = au.get(path).json()
    assert list(body) == ["Total", "Page", key]
    assert body["Page"] == 1 and body["Total"] >= len(body[key]) >= 1


def test_unpaged_endpoints(au: httpx.Client) -> None:
    assert list(au.get("ref/priceTier").json()) == ["PriceTiers"]
    assert len(au.get("ref/priceTier").json()["PriceTiers"]) == 10
    assert au.get("webhooks").json() == {"Webhooks": []}
    assert au.get("ref/customer/credits").json() == {"Page": 1, "CustomerCredits": []}  # no Total here
    me = au.get("me").json()
    assert me["Company"] and me["Currency"] == "AUD"


def test_paging_covers_every_record_exactly_once(au: httpx.Client) -> None:
    total = au.get("saleList").json()["Total"]
    assert len(au.get("saleList").json()["SaleList"]) == min(100, total)  # default Limit is 100
    limit = 7
    ids: list[str] = []
    for page in range(1, math.ceil(total / limit) + 1):
        body = au.get("saleList", params={"Page": page, "Limit": limit}).json()
        assert body["Total"] == total and body["Page"] == page
        ids += [row["SaleID"] for row in body["SaleList"]]
    assert len(ids) == len(set(ids)) == total
    beyond = au.get("saleList", params={"Page": math.ceil(total / limit) + 1, "Limit": limit}).json()
    assert beyond["SaleList"] == [] and beyond["Total"] == total


@pytest.mark.parametrize("params", [{"Limit": 0}, {"Limit": 1001}, {"Limit": "ten"}, {"Page": 0},
                                    {"Page": "x"}])
def test_limit_and_page_bounds(au: httpx.Client, params: dict[str, object]) -> None:
    r = au.get("product", params=params)
    assert r.status_code == 400
    [error] = r.json()
    assert error["ErrorCode"] == 400 and error["Exception"]


def test_limit_bounds_accepted(au: httpx.Client) -> None:
    assert au.get("product", params={"Limit": 1}).status_code == 200
    assert au.get("product", params={"Limit": 1000}).status_code == 200


def test_updated_since_and_until(au: httpx.Client) -> None:
    rows = au.get("saleList", params={"Limit": 1000}).json()["SaleList"]
    stamps = sorted(row["Updated"] for row in rows)
    pivot = stamps[len(stamps) // 2]
    since = au.get("saleList", params={"UpdatedSince": pivot, "Limit": 1000}).json()["SaleList"]
    assert {r["Updated"] for r in since} == {s for s in stamps if s >= pivot}
    until = au.get("saleList", params={"UpdatedUntil": pivot, "Limit": 1000}).json()["SaleList"]
    assert {r["Updated"] for r in until} == {s for s in stamps if s <= pivot}
    naive = pivot.rstrip("Z")  # no offset means UTC
    assert au.get("saleList", params={"UpdatedSince": naive, "Limit": 1000}).json()["Total"] == len(since)
    assert au.get("saleList", params={"UpdatedSince": CLOCK_START}).json()["Total"] == 0
    bad = au.get("saleList", params={"UpdatedSince": "last tuesday"})
    assert bad.status_code == 400 and "not a valid date" in bad.json()[0]["Exception"]


def test_since_exclusive_option(fresh_server) -> None:  # type: ignore[no-untyped-def]
    server = fresh_server(since_inclusive=False)
    with api_client(server) as client:
        rows = client.get("product", params={"Limit": 1000}).json()["Products"]
        pivot = rows[0]["LastModifiedOn"]
        after = client.get("product", params={"ModifiedSince": pivot, "Limit": 1000}).json()["Products"]
        assert pivot not in {r["LastModifiedOn"] for r in after}
        assert all(r["LastModifiedOn"] > pivot for r in after)


def test_created_since(au: httpx.Client) -> None:
    rows = au.get("saleList", params={"Limit": 1000}).json()["SaleList"]
    recent = au.get("saleList", params={"CreatedSince": "2026-10-01T00:00:00", "Limit": 1000}).json()
    assert 0 < recent["Total"] < len(rows)
    assert all(r["OrderDate"] >= "2026-09-30" for r in recent["SaleList"])


def test_master_data_filters_and_deprecation(au: httpx.Client) -> None:
    active = au.get("product", params={"Limit": 1000}).json()
    every = au.get("product", params={"Limit": 1000, "IncludeDeprecated": "true"}).json()
    assert {p["Status"] for p in active["Products"]} == {"Active"}
    assert "Deprecated" in {p["Status"] for p in every["Products"]}
    product = active["Products"][3]
    assert product["PriceTiers"]["Retail"] == product["PriceTier1"]
    assert {f"PriceTier{i}" for i in range(1, 11)} <= set(product)
    by_sku = au.get("product", params={"Sku": product["SKU"].lower()}).json()
    assert [p["ID"] for p in by_sku["Products"]] == [product["ID"]]
    cutoff = sorted(p["LastModifiedOn"] for p in active["Products"])[-5]
    changed = au.get("product", params={"ModifiedSince": cutoff, "Limit": 1000}).json()
    assert changed["Total"] == 5
    customers = au.get("customer", params={"Limit": 1000}).json()["CustomerList"]
    assert len({c["Currency"] for c in customers}) >= 3
    name = customers[0]["Name"]
    assert au.get("customer", params={"Name": name}).json()["CustomerList"][0]["Name"] == name


def test_sale_list_filters(au: httpx.Client) -> None:
    rows = au.get("saleList", params={"Limit": 1000}).json()["SaleList"]
    voided = au.get("saleList", params={"Status": "voided", "Limit": 1000}).json()
    assert voided["Total"] == sum(r["Status"] == "VOIDED" for r in rows) > 0
    shipped = au.get("saleList", params={"CombinedShippingStatus": "SHIPPED", "Limit": 1000}).json()
    assert all(r["CombinedShippingStatus"] == "SHIPPED" for r in shipped["SaleList"])
    number = rows[5]["OrderNumber"]
    assert [r["OrderNumber"] for r in au.get("saleList", params={"Search": number}).json()["SaleList"]] == [
        number]
    with_external = next(r for r in rows if r["ExternalID"])
    by_external = au.get("saleList", params={"ExternalID": with_external["ExternalID"]}).json()["SaleList"]
    assert [r["SaleID"] for r in by_external] == [with_external["SaleID"]]
    ready = au.get("saleList", params={"ReadyForShipping": "true", "Limit": 1000}).json()["SaleList"]
    assert ready and {r["Status"] for r in ready} <= {"PACKED", "SHIPPING", "ORDERED", "BACKORDERED"}
    assert all(r["CombinedPackingStatus"] != "NOT PACKED" for r in ready)
    location = rows[0]["OrderLocationID"]
    assert all(r["OrderLocationID"] == location for r in au.get(
        "saleList", params={"OrderLocationID": location, "Limit": 1000}).json()["SaleList"])


def test_sale_document_shape(au: httpx.Client) -> None:
    rows = au.get("saleList", params={"Status": "CREDITED"}).json()["SaleList"]
    doc = au.get("sale", params={"ID": rows[0]["SaleID"]}).json()
    assert "OrderNumber" not in doc and doc["Order"]["SaleOrderNumber"] == rows[0]["OrderNumber"]
    assert doc["LastModifiedOn"] == rows[0]["Updated"] and doc["LastModifiedOn"].endswith("Z")
    assert doc["SaleOrderDate"].endswith("T00:00:00")
    for key in ("CurrencyRate", "BaseCurrency", "CustomerCurrency", "Location", "Fulfilments", "Invoices",
                "CreditNotes", "CombinedPickingStatus", "CombinedInvoiceStatus", "Status"):
        assert key in doc
    ship = doc["Fulfilments"][0]["Ship"]
    assert ship["Status"] == "AUTHORISED" and "Boxes" in ship["Lines"][0]
    assert doc["Invoices"][0]["CurrencyConversionRate"] > 0 and doc["Invoices"][0]["Lines"]
    assert doc["CreditNotes"][0]["Status"] == "AUTHORISED"
    fulfilments = au.get("sale/fulfilment", params={"SaleID": doc["ID"]}).json()
    assert fulfilments == {"SaleID": doc["ID"], "Fulfilments": doc["Fulfilments"]}
    task_id = doc["Fulfilments"][0]["TaskID"]
    for stage in ("pick", "pack", "ship"):
        body = au.get(f"sale/fulfilment/{stage}", params={"TaskID": task_id}).json()
        assert body["TaskID"] == task_id and body["Status"] == "AUTHORISED"
    assert au.get("sale/invoice", params={"SaleID": doc["ID"]}).json()["Invoices"] == doc["Invoices"]


def test_other_documents(au: httpx.Client) -> None:
    purchase = au.get("purchaseList").json()["PurchaseList"][0]
    assert purchase["LastUpdatedDate"].endswith("Z")
    for path in ("purchase", "advanced-purchase"):
        doc = au.get(path, params={"ID": purchase["ID"]}).json()
        assert {"Order", "StockReceived", "Invoice", "CurrencyRate", "BaseCurrency", "SupplierCurrency"} <= set(doc)
    for list_path, key, detail, extra in [("stockTransferList", "StockTransferList", "stockTransfer", "Lines"),
                                          ("stockadjustmentList", "StockAdjustmentList", "stockadjustment",
                                           "ExistingStockLines"),
                                          ("finishedGoodsList", "FinishedGoods", "finishedGoods", "OrderLines")]:
        row = au.get(list_path).json()[key][0]
        doc = au.get(detail, params={"TaskID": row["TaskID"]}).json()
        assert doc[extra] and {k: doc[k] for k in row} == row


def test_availability_rows(au: httpx.Client) -> None:
    rows = au.get("ref/productavailability", params={"Limit": 1000}).json()["ProductAvailabilityList"]
    products = {p["ID"] for p in au.get("product", params={"Limit": 1000, "IncludeDeprecated": "true"}).json()[
        "Products"]}
    assert {r["ID"] for r in rows} <= products
    assert all(r["Available"] == r["OnHand"] - r["Allocated"] for r in rows)
    location = rows[0]["Location"]
    assert all(r["Location"] == location for r in au.get(
        "ref/productavailability", params={"Location": location, "Limit": 1000}).json()["ProductAvailabilityList"])


def test_unknown_ids_are_400_error_models(au: httpx.Client) -> None:
    for path, params in [("sale", {"ID": "00000000-0000-0000-0000-000000000000"}), ("sale", {}),
                         ("purchase", {"ID": "x"}), ("stockTransfer", {"TaskID": "x"}),
                         ("sale/fulfilment/pick", {"TaskID": "x"}), ("sale/fulfilment", {"SaleID": "x"})]:
        r = au.get(path, params=params)
        assert r.status_code == 400, path
        assert r.json()[0]["ErrorCode"] == 400


def test_unknown_path_html_by_default(shared_server: SandboxServer, au: httpx.Client) -> None:
    r = au.get("noSuchEndpoint")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert httpx.get(shared_server.root_url + "/whatever").status_code == 200


def test_unknown_path_404_option(fresh_server) -> None:  # type: ignore[no-untyped-def]
    server = fresh_server(unknown_path="404")
    with api_client(server) as client:
        assert client.get("noSuchEndpoint").status_code == 404
        assert client.get("me").status_code == 200


def test_wrong_method_is_405(au: httpx.Client) -> None:
    assert au.post("saleList", json={}).status_code == 405
