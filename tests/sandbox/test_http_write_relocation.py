"""The writes order automation needs, over real HTTP: per-line pick locations, payments, invoice undo and
re-authorisation, and a header location change (the steps a relocation is made of)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gp_pipelines.sandbox.cin7 import SandboxServer

from .conftest import api_client
from .test_http_write import error, new_sale


@pytest.fixture
def client(fresh_server) -> httpx.Client:  # type: ignore[no-untyped-def]
    server: SandboxServer = fresh_server()
    with api_client(server) as c:
        yield c


def locations(client: httpx.Client) -> list[str]:
    return [loc["Name"] for loc in client.get("ref/location").json()["LocationList"] if not loc["IsDeprecated"]]


def stock(client: httpx.Client, product_id: str, location: str) -> tuple[float, float, float]:
    """(OnHand, Allocated, Available) of a product at a location."""
    rows = client.get("ref/productavailability", params={"ID": product_id, "Location": location}).json()[
        "ProductAvailabilityList"]
    return tuple(sum(r[k] for r in rows) for k in ("OnHand", "Allocated", "Available"))  # type: ignore[return-value]


def product_in_both(client: httpx.Client, first: str, second: str, quantity: float) -> str:
    """An active product with at least `quantity + 5` available at both locations."""
    active = {p["ID"] for p in client.get("product", params={"Limit": 1000}).json()["Products"]}
    free = {}
    for location in (first, second):
        rows = client.get("ref/productavailability", params={"Location": location, "Limit": 1000}).json()[
            "ProductAvailabilityList"]
        free[location] = {r["ID"] for r in rows if r["Available"] >= quantity + 5 and r["ID"] in active}
    return sorted(free[first] & free[second])[0]


def authorised_at(client: httpx.Client, location: str, product_id: str, quantity: float = 4) -> dict[str, Any]:
    sale = new_sale(client, Location=location)
    r = client.post("sale/order", json={"SaleID": sale["ID"], "Status": "AUTHORISED",
                                        "Lines": [{"ProductID": product_id, "Quantity": quantity, "Price": 10}]})
    assert r.status_code == 200, r.text
    return client.get("sale", params={"ID": sale["ID"]}).json()


def invoiced(client: httpx.Client, sale_id: str) -> dict[str, Any]:
    r = client.post("sale/invoice", json={"SaleID": sale_id, "Status": "AUTHORISED", "InvoiceDate": "2026-11-20"})
    assert r.status_code == 200, r.text
    return r.json()["Invoices"][-1]


def test_pick_lines_take_stock_at_their_own_location(client: httpx.Client) -> None:
    main, other = locations(client)[:2]
    product = product_in_both(client, main, other, 4)
    sale = authorised_at(client, main, product)
    main_before, other_before = stock(client, product, main), stock(client, product, other)
    pick = client.post("sale/fulfilment/pick", json={"TaskID": sale["ID"], "Status": "AUTHORISED", "Lines": [
        {"ProductID": product, "Quantity": 3, "Location": other}, {"ProductID": product, "Quantity": 1}]})
    assert pick.status_code == 200, pick.text
    assert [(line["Location"], line["Quantity"]) for line in pick.json()["Lines"]] == [(other, 3), (main, 1)]
    # The order's hold at the header location moved to where the units are picked.
    assert stock(client, product, main)[1] == main_before[1] - 3
    assert stock(client, product, other)[1] == other_before[1] + 3
    client.post("sale/fulfilment/pack", json={"TaskID": sale["ID"], "Status": "AUTHORISED"})
    client.post("sale/fulfilment/ship", json={"TaskID": sale["ID"], "Status": "AUTHORISED"})
    assert stock(client, product, main)[0] == main_before[0] - 1
    assert stock(client, product, other)[0] == other_before[0] - 3
    undone = client.delete("sale", params={"ID": sale["ID"], "Void": "false"})
    assert undone.status_code == 200, undone.text
    # Undo returns each line's stock to its own location and frees every hold.
    assert stock(client, product, main)[:2] == (main_before[0], main_before[1] - 4)
    assert stock(client, product, other)[:2] == other_before[:2]


def test_pick_refused_where_the_location_lacks_stock(client: httpx.Client) -> None:
    main, other = locations(client)[:2]
    product = product_in_both(client, main, other, 4)
    available_there = stock(client, product, other)[2]
    sale = authorised_at(client, main, product, quantity=available_there + 1)
    before = client.get("sale", params={"ID": sale["ID"]}).json()
    ledger = stock(client, product, main), stock(client, product, other)
    sku = sale["Order"]["Lines"][0]["SKU"]
    message = error(client.post("sale/fulfilment/pick", json={"TaskID": sale["ID"], "Status": "AUTHORISED", "Lines": [
        {"ProductID": product, "Quantity": available_there + 1, "Location": other}]}))
    assert message == f"Not enough stock at location {other} for SKU {sku}"
    assert client.get("sale", params={"ID": sale["ID"]}).json() == before
    assert (stock(client, product, main), stock(client, product, other)) == ledger
    assert "Location not found" in error(client.post("sale/fulfilment/pick", json={
        "TaskID": sale["ID"], "Status": "AUTHORISED", "Lines": [{"ProductID": product, "Quantity": 1,
                                                                 "LocationID": "nope"}]}))


def test_payments_get_post_put_delete_and_paid_status(client: httpx.Client) -> None:
    main = locations(client)[0]
    product = product_in_both(client, *locations(client)[:2], 4)
    sale = authorised_at(client, main, product)
    invoice = invoiced(client, sale["ID"])
    assert client.get("sale/payment", params={"SaleID": sale["ID"]}).json() == []
    body = {"SaleID": sale["ID"], "TaskID": invoice["TaskID"], "Amount": 10, "DatePaid": "2026-11-21",
            "Account": "1110", "Reference": "EFT 1", "CurrencyRate": 1.0}
    first = client.post("sale/payment", json=body)
    assert first.status_code == 200, first.text
    payment = first.json()
    assert (payment["Amount"], payment["DatePaid"], payment["Account"], payment["Reference"]) == (
        10.0, "2026-11-21T00:00:00", "1110", "EFT 1")
    assert payment["InvoiceNumber"] == invoice["InvoiceNumber"] and payment["Type"] == "PAYMENT"
    rows = client.get("sale/payment", params={"SaleID": sale["ID"]}).json()
    assert isinstance(rows, list) and [r["ID"] for r in rows] == [payment["ID"]]  # a bare array
    doc = client.get("sale", params={"ID": sale["ID"]}).json()
    assert doc["Invoices"][0]["Status"] == "AUTHORISED" and doc["CombinedPaymentStatus"] == "PARTIALLY PAID"
    # Any payment blocks Undo of the sale and of the invoice.
    assert "payments" in error(client.delete("sale", params={"ID": sale["ID"], "Void": "false"}))
    assert "has payments" in error(client.delete("sale/invoice", params={"TaskID": invoice["TaskID"]}))
    rest = round(invoice["Total"] - 10, 2)
    assert "exceeds the balance" in error(client.post("sale/payment", json={**body, "Amount": rest + 1}))
    client.post("sale/payment", json={**body, "Amount": rest, "Reference": "EFT 2"}).raise_for_status()
    doc = client.get("sale", params={"ID": sale["ID"]}).json()
    assert doc["Invoices"][0]["Status"] == "PAID" and doc["CombinedPaymentStatus"] == "PAID"
    assert "AUTHORISED invoice" in error(client.post("sale/payment", json={**body, "Amount": 1}))
    changed = client.put("sale/payment", json={"ID": payment["ID"], "Reference": "EFT 1b"}).json()
    assert changed["Reference"] == "EFT 1b" and changed["Amount"] == 10.0
    left = client.delete("sale/payment", params={"ID": payment["ID"]}).json()
    assert [r["Reference"] for r in left] == ["EFT 2"]
    assert client.get("sale", params={"ID": sale["ID"]}).json()["Invoices"][0]["Status"] == "AUTHORISED"
    assert "not found" in error(client.delete("sale/payment", params={"ID": payment["ID"]}))
    assert "TaskID" in error(client.post("sale/payment", json={"SaleID": sale["ID"], "Amount": 1}))


def test_invoice_undo_void_and_reauthorise(client: httpx.Client) -> None:
    main = locations(client)[0]
    product = product_in_both(client, *locations(client)[:2], 4)
    sale = authorised_at(client, main, product)
    invoice = invoiced(client, sale["ID"])
    undone = client.delete("sale/invoice", params={"TaskID": invoice["TaskID"], "Void": "false"})
    assert undone.status_code == 200 and undone.json()["Invoices"][0]["Status"] == "DRAFT"
    assert "Nothing to undo" in error(client.delete("sale/invoice", params={"TaskID": invoice["TaskID"]}))
    # POST with the invoice's TaskID re-authorises that invoice: same number, lines, dates and total.
    again = client.post("sale/invoice", json={
        "SaleID": sale["ID"], "TaskID": invoice["TaskID"], "Status": "AUTHORISED",
        "InvoiceDate": invoice["InvoiceDate"], "InvoiceDueDate": invoice["InvoiceDueDate"],
        "Lines": [{"ProductID": line["ProductID"], "Quantity": line["Quantity"]} for line in invoice["Lines"]]})
    assert again.status_code == 200, again.text
    [after] = again.json()["Invoices"]
    for key in ("TaskID", "InvoiceNumber", "InvoiceDate", "InvoiceDueDate", "Total", "Tax", "Lines"):
        assert after[key] == invoice[key], key
    assert after["Status"] == "AUTHORISED"
    assert "only while DRAFT" in error(client.put("sale/invoice", json={"TaskID": invoice["TaskID"],
                                                                        "Status": "AUTHORISED"}))
    client.delete("sale/invoice", params={"TaskID": invoice["TaskID"]}).raise_for_status()
    put = client.put("sale/invoice", json={"TaskID": invoice["TaskID"], "Status": "AUTHORISED", "Memo": "PUT"})
    assert put.status_code == 200 and put.json()["Invoices"][0]["Memo"] == "PUT"
    voided = client.delete("sale/invoice", params={"TaskID": invoice["TaskID"], "Void": "true"}).json()
    assert voided["Invoices"][0]["Status"] == "VOIDED"
    assert "not found" in error(client.post("sale/invoice", json={"SaleID": sale["ID"], "TaskID": "nope"}))
    assert "not found" in error(client.delete("sale/invoice", params={"TaskID": "nope"}))


def test_header_location_change_and_reauthorisation(client: httpx.Client) -> None:
    main, other = locations(client)[:2]
    product = product_in_both(client, main, other, 4)
    sale = authorised_at(client, main, product)
    held = stock(client, product, main)[1], stock(client, product, other)[1]
    message = error(client.put("sale", json={"ID": sale["ID"], "Location": other}))
    assert "Location cannot be changed while the Order is AUTHORISED" in message
    assert client.delete("sale", params={"ID": sale["ID"], "Void": "false"}).status_code == 200
    assert "Location not found" in error(client.put("sale", json={"ID": sale["ID"], "Location": "Atlantis"}))
    moved = client.put("sale", json={"ID": sale["ID"], "Location": other})
    assert moved.status_code == 200 and moved.json()["Location"] == other
    r = client.post("sale/order", json={"SaleID": sale["ID"], "Status": "AUTHORISED",
                                        "Lines": [{"ProductID": product, "Quantity": 4, "Price": 10}]})
    assert r.status_code == 200, r.text
    # Authorising allocates at the new header location, and the list row follows the location.
    assert (stock(client, product, main)[1], stock(client, product, other)[1]) == (held[0] - 4, held[1] + 4)
    other_id = next(loc["ID"] for loc in client.get("ref/location").json()["LocationList"] if loc["Name"] == other)
    rows = client.get("saleList", params={"OrderLocationID": other_id, "Limit": 1000}).json()["SaleList"]
    assert sale["ID"] in {row["SaleID"] for row in rows}
