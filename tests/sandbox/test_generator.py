"""Generated data: determinism, coverage of statuses, consistency of lazily built documents."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from gp_pipelines.sandbox.cin7.generator import SALE_STAGE_STATUS
from gp_pipelines.sandbox.cin7.state import Sandbox, availability_row
from gp_pipelines.sandbox.cin7.store import DocRecord

from .conftest import make_options


def dump(sandbox: Sandbox) -> str:
    """Every list row and every document of every instance, as JSON."""
    out = {}
    for key, store in sandbox.stores.items():
        out[key] = {name: [r.row() for r in records] for name, records in store.collections.items()}
        out[key]["docs"] = [r.document() for r in store.collections["sales"] + store.collections["purchases"]
                            if isinstance(r, DocRecord)]
        out[key]["stock"] = [availability_row(store, c) for c in store.stock]
        out[key]["ref"] = [store.locations, store.carriers, store.price_tiers]
    return json.dumps(out, sort_keys=True)


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(make_options())


def test_same_seed_same_bytes_different_seed_different_data(sandbox: Sandbox) -> None:
    assert dump(sandbox) == dump(Sandbox(make_options()))
    other = Sandbox(make_options(seed=7))
    assert dump(other) != dump(sandbox)
    assert other.stores["au"].collections["sales"][0].id != sandbox.stores["au"].collections["sales"][0].id


def test_documents_built_late_equal_documents_built_early() -> None:
    a, b = Sandbox(make_options()), Sandbox(make_options())
    sales_a = a.stores["nz"].collections["sales"]
    sales_b = b.stores["nz"].collections["sales"]
    early = [r.document() for r in reversed(sales_a)]
    late = [r.document() for r in sales_b][::-1]
    assert early == late


def test_sizes_and_every_status_present(sandbox: Sandbox) -> None:
    total = 0
    for store in sandbox.stores.values():
        records = store.collections["sales"]
        total += len(records)
        statuses = Counter(r.row()["Status"] for r in records)
        assert set(statuses) == set(SALE_STAGE_STATUS.values())
        assert 50 <= len(store.collections["products"]) <= 70
        assert 2 <= len([loc for loc in store.locations if not loc["IsDeprecated"]]) <= 3
    assert total == 300


def test_planned_status_matches_built_document(sandbox: Sandbox) -> None:
    for store in sandbox.stores.values():
        for record in store.collections["sales"]:
            doc = record.document()
            assert doc["Status"] == record.status
            assert doc["LastModifiedOn"] == record.row()["Updated"]
            assert record.created_ms <= record.modified_ms < store.anchor_ms
        assert any(r.document()["Type"] == "Advanced Sale" for r in store.collections["sales"])


def test_documents_are_plausible(sandbox: Sandbox) -> None:
    store = sandbox.stores["au"]
    foreign = 0
    for record in store.collections["sales"]:
        doc = record.document()
        assert doc["BaseCurrency"] == "AUD"
        assert 1 <= len(doc["Order"]["Lines"]) <= 20 or doc["Status"] == "DRAFT"
        if doc["CustomerCurrency"] != "AUD":
            foreign += 1
            assert doc["CurrencyRate"] != 1.0
        for invoice in doc["Invoices"]:
            assert invoice["CurrencyConversionRate"] > 0
    assert foreign >= 10
    purchases = [r.document() for r in store.collections["purchases"]]
    assert {p["SupplierCurrency"] for p in purchases} and all(p["BaseCurrency"] == "AUD" for p in purchases)


def test_catalogue_is_shared_with_instance_only_skus(sandbox: Sandbox) -> None:
    skus = {key: {r.row()["SKU"] for r in s.collections["products"]} for key, s in sandbox.stores.items()}
    shared = skus["au"] & skus["nz"] & skus["us"]
    assert len(shared) >= 30
    assert any(sku.startswith("AU-") for sku in skus["au"] - shared)
    ids = {key: {r.id for r in s.collections["products"]} for key, s in sandbox.stores.items()}
    assert ids["au"].isdisjoint(ids["nz"])


def test_customers_currency_mix_and_contacts(sandbox: Sandbox) -> None:
    for store in sandbox.stores.values():
        rows = [r.row() for r in store.collections["customers"]]
        currencies = Counter(row["Currency"] for row in rows)
        assert len(currencies) >= 3
        assert all("@" in row["Contacts"][0]["Email"] and "Email" not in row for row in rows)


def test_stock_availability_is_consistent(sandbox: Sandbox) -> None:
    for store in sandbox.stores.values():
        rows = [availability_row(store, c) for c in store.stock]
        assert rows and any(row["Batch"] for row in rows) and any(row["Bin"] for row in rows)
        for row in rows:
            assert row["Available"] == row["OnHand"] - row["Allocated"] >= 0
