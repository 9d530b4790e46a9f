"""Order automation over real HTTP: the lifecycle, its refusals, void/undo, and the PUT-creates quirk."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gp_pipelines.sandbox.cin7 import SandboxServer

from .conftest import api_client


@pytest.fixture
def client(fresh_server) -> httpx.Client:  # type: ignore[no-untyped-def]
    server: SandboxServer = fresh_server()
    with api_client(server) as c:
        yield c


def in_stock_line(client: httpx.Client, location: str, quantity: float = 2) -> dict[str, Any]:
    rows = client.get("ref/productavailability", params={"Location": location, "Limit": 1000}).json()[
        "ProductAvailabilityList"]
    active = {p["ID"] for p in client.get("product", params={"Limit": 1000}).json()["Products"]}
    row = next(r for r in rows if r["Available"] >= quantity + 5 and r["ID"] in active)
    return {"ProductID": row["ID"], "Quantity": quantity, "Price": 12.5}


def new_sale(client: httpx.Client, **extra: Any) -> dict[str, Any]:
    customer = client.get("customer").json()["CustomerList"][0]
    r = client.post("sale", json={"CustomerID": customer["ID"], **extra})
    assert r.status_code == 200, r.text
    return r.json()


def authorised_sale(client: httpx.Client, quantity: float = 2) -> dict[str, Any]:
    sale = new_sale(client)
    line = in_stock_line(client, sale["Location"], quantity)
    r = client.post("sale/order", json={"SaleID": sale["ID"], "Status": "AUTHORISED", "Lines": [line]})
    assert r.status_code == 200, r.text
    return client.get("sale", params={"ID": sale["ID"]}).json()


def error(r: httpx.Response) -> str:
    assert r.status_code == 400, r.text
    [body] = r.json()
    assert body["ErrorCode"] == 400
    return body["Exception"]


def test_create_keeps_external_id_and_lists_it(client: httpx.Client) -> None:
    sale = new_sale(client, ExternalID="shopify-1001", CustomerReference="REF-9")
    assert sale["Status"] == "DRAFT" and sale["ExternalID"] == "shopify-1001"
    rows = client.get("saleList", params={"ExternalID": "shopify-1001"}).json()["SaleList"]
    assert [r["SaleID"] for r in rows] == [sale["ID"]]
    assert rows[0]["Updated"] == sale["LastModifiedOn"]
    newest = client.get("saleList", params={"Limit": 1000}).json()["SaleList"][-1]
    assert newest["SaleID"] == sale["ID"]  # ordered by creation


def test_put_with_id_updates_and_without_id_creates(client: httpx.Client) -> None:
    sale = new_sale(client)
    total = client.get("saleList").json()["Total"]
    updated = client.put("sale", json={"ID": sale["ID"], "Note": "leave at door"}).json()
    assert updated["Note"] == "leave at door" and updated["LastModifiedOn"] > sale["LastModifiedOn"]
    customer_id = sale["CustomerID"]
    created = client.put("sale", json={"CustomerID": customer_id}).json()
    assert created["ID"] != sale["ID"]
    assert client.get("saleList").json()["Total"] == total + 1
    assert "not found" in error(client.put("sale", json={"ID": "nope"}))
    assert "Customer not found" in error(client.post("sale", json={"CustomerID": "nope"}))


def test_full_lifecycle_over_http(client: httpx.Client) -> None:
    sale = authorised_sale(client)
    sale_id = sale["ID"]
    assert sale["Status"] == "ORDERED" and sale["Order"]["Status"] == "AUTHORISED"
    before = client.get("ref/productavailability", params={"ID": sale["Order"]["Lines"][0]["ProductID"],
                                                           "Location": sale["Location"]}).json()
    allocated_before = sum(r["Allocated"] for r in before["ProductAvailabilityList"])
    assert allocated_before >= 2
    pick = client.post("sale/fulfilment/pick", json={"TaskID": sale_id, "AutoPickMode": "AUTOPICK"})
    assert pick.status_code == 200 and pick.json()["Status"] == "AUTHORISED"
    assert client.post("sale/fulfilment/pack", json={"TaskID": sale_id, "Status": "AUTHORISED"}).status_code == 200
    shipped = client.post("sale/fulfilment/ship", json={"TaskID": sale_id, "Status": "AUTHORISED", "Lines": [
        {"Box": "Box 1", "Carrier": "StarTrack", "TrackingNumber": "ST123", "TrackingURL": "https://t/ST123",
         "IsShipped": True}]}).json()
    assert shipped["Lines"][0]["Boxes"] == "Box 1" and shipped["Lines"][0]["TrackingNumber"] == "ST123"
    assert "already AUTHORISED" in error(client.post("sale/fulfilment/ship", json={"TaskID": sale_id,
                                                                                  "Status": "AUTHORISED"}))
    invoices = client.post("sale/invoice", json={"SaleID": sale_id, "Status": "AUTHORISED"}).json()
    assert invoices["Invoices"][0]["Status"] == "AUTHORISED"
    row = client.get("saleList", params={"Search": sale["Order"]["SaleOrderNumber"]}).json()["SaleList"][0]
    assert row["Status"] == "INVOICED" and row["CombinedShippingStatus"] == "SHIPPED"
    assert row["CombinedTrackingNumbers"] == "ST123" and row["InvoiceAmount"] > 0
    after = client.get("ref/productavailability", params={"ID": sale["Order"]["Lines"][0]["ProductID"],
                                                          "Location": sale["Location"]}).json()
    on_hand = [sum(r["OnHand"] for r in b["ProductAvailabilityList"]) for b in (before, after)]
    assert on_hand[1] == on_hand[0] - 2


def test_refusals(client: httpx.Client) -> None:
    draft = new_sale(client)
    line = in_stock_line(client, draft["Location"])
    client.post("sale/order", json={"SaleID": draft["ID"], "Status": "DRAFT", "Lines": [line]})
    assert "AUTHORISED" in error(client.post("sale/fulfilment/pick", json={"TaskID": draft["ID"],
                                                                          "AutoPickMode": "AUTOPICK"}))
    assert "AUTHORISED" in error(client.post("sale/fulfilment", json={"SaleID": draft["ID"]}))
    sale = authorised_sale(client)
    client.post("sale/fulfilment/pick", json={"TaskID": sale["ID"], "Status": "DRAFT"})
    assert "Pick should be AUTHORISED" in error(client.post("sale/fulfilment/pack",
                                                            json={"TaskID": sale["ID"], "Status": "AUTHORISED"}))
    assert "Pack should be AUTHORISED" in error(client.post("sale/fulfilment/ship",
                                                            json={"TaskID": sale["ID"], "Status": "AUTHORISED"}))
    assert "not found" in error(client.post("sale/fulfilment/pick", json={"TaskID": "nope"}))
    assert "DRAFT or AUTHORISED" in error(client.post("sale/order", json={"SaleID": draft["ID"], "Status": "X"}))


def test_refused_transition_leaves_the_sale_unchanged(client: httpx.Client) -> None:
    sale = authorised_sale(client)
    client.post("sale/fulfilment/pick", json={"TaskID": sale["ID"], "Status": "DRAFT"})
    before = client.get("sale", params={"ID": sale["ID"]}).json()
    bad = {"TaskID": sale["ID"], "Status": "AUTHORISED", "Lines": [{"ProductID": before["Order"]["Lines"][0][
        "ProductID"], "Quantity": 999}]}
    assert "left" in error(client.post("sale/fulfilment/pick", json=bad))
    assert client.get("sale", params={"ID": sale["ID"]}).json() == before


def test_fulfilment_converts_to_advanced_and_delete_task(client: httpx.Client) -> None:
    sale = authorised_sale(client, quantity=4)
    task = client.post("sale/fulfilment", json={"SaleID": sale["ID"]}).json()
    assert task["SaleID"] == sale["ID"] and task["Pick"]["Status"] == "DRAFT"
    assert client.get("sale", params={"ID": sale["ID"]}).json()["Type"] == "Advanced Sale"
    assert "Pick is not AUTHORISED" in error(client.post("sale/fulfilment", json={"SaleID": sale["ID"]}))
    product = sale["Order"]["Lines"][0]["ProductID"]
    client.post("sale/fulfilment/pick", json={"TaskID": task["TaskID"], "Status": "AUTHORISED",
                                              "Lines": [{"ProductID": product, "Quantity": 1}]})
    second = client.post("sale/fulfilment", json={"SaleID": sale["ID"]}).json()
    assert second["FulfillmentNumber"] == 2
    r = client.delete("sale/fulfilment", params={"TaskID": second["TaskID"], "Void": "true"})
    assert r.status_code == 200
    statuses = [t["FulFilmentStatus"] for t in r.json()["Fulfilments"]]
    assert statuses == ["NOT FULFILLED", "VOIDED"]


def test_void_then_fulfil_is_refused_and_voided_sale_stays_listed(client: httpx.Client) -> None:
    sale = authorised_sale(client)
    product = sale["Order"]["Lines"][0]["ProductID"]

    def allocated() -> float:
        rows = client.get("ref/productavailability", params={"ID": product, "Location": sale["Location"]}).json()
        return sum(r["Allocated"] for r in rows["ProductAvailabilityList"])

    held = allocated()
    voided = client.delete("sale", params={"ID": sale["ID"], "Void": "true"}).json()
    assert voided["Status"] == "VOIDED" and allocated() == held - 2
    assert "VOIDED" in error(client.post("sale/fulfilment", json={"SaleID": sale["ID"]}))
    assert "VOIDED" in error(client.delete("sale", params={"ID": sale["ID"], "Void": "true"}))
    rows = client.get("saleList", params={"Status": "VOIDED", "Limit": 1000}).json()["SaleList"]
    assert sale["ID"] in {r["SaleID"] for r in rows}


def test_undo(client: httpx.Client) -> None:
    sale = authorised_sale(client)
    client.post("sale/fulfilment/pick", json={"TaskID": sale["ID"], "AutoPickMode": "AUTOPICK"})
    undone = client.delete("sale", params={"ID": sale["ID"]}).json()  # Void defaults to false: Undo
    assert undone["Order"]["Status"] == "DRAFT" and undone["Status"] == "ORDERING"
    assert undone["Fulfilments"][0]["Pick"]["Status"] == "DRAFT"
    assert "Nothing to undo" in error(client.delete("sale", params={"ID": sale["ID"], "Void": "false"}))
