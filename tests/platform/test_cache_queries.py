"""Cache queries answer exactly what a brute-force walk of the sandbox's documents answers, using the indexes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date

import psycopg
import pytest

from gp_pipelines.cin7 import queries
from gp_pipelines.cin7.client import Cin7Client
from gp_pipelines.cin7.entities import ENTITIES
from gp_pipelines.cin7.limiter import LocalRateLimiter
from gp_pipelines.cin7.store import ensure_cache_schema
from gp_pipelines.cin7.sync import sync_entity
from gp_pipelines.sandbox.cin7 import SandboxOptions, SandboxServer

SHIPPED = ("AUTHORISED", "PARTIALLY AUTHORISED")


@pytest.fixture(scope="module")
def cache(module_database_url):
    """The sales and stock of every sandbox instance synced into the module's database; plus the truth."""
    ensure_cache_schema(module_database_url)
    truth = {"sales": [], "availability": []}
    with SandboxServer(SandboxOptions(seed=11, rate_limit=10**9)) as server:
        for inst in server.instances:
            client = Cin7Client(
                server.base_url,
                inst.account_id,
                list(inst.application_keys),
                instance=inst.key,
                limiter=LocalRateLimiter(calls=10**9),
            )
            with client:
                for name in ("sales", "product_availability"):
                    sync_entity(module_database_url, client, inst.key, ENTITIES[name])
                for page in client.paginate("saleList", "SaleList"):
                    for row in page:
                        document = client.get("sale", {"ID": row["SaleID"]})
                        truth["sales"].append((inst.key, document))
                for page in client.paginate("ref/productavailability", "ProductAvailabilityList"):
                    truth["availability"].extend((inst.key, row) for row in page)
    with psycopg.connect(module_database_url, autocommit=True) as conn:
        yield conn, truth


def _shipped_from(document: dict, sku: str, location: str) -> bool:
    return any(
        fulfilment["Ship"]["Status"] in SHIPPED
        and any(line["SKU"] == sku and line["Location"] == location for line in fulfilment["Pick"]["Lines"])
        for fulfilment in document.get("Fulfilments", [])
    )


def _busiest_shipped_sku(truth) -> tuple[str, str, str]:
    """A (sku, location, customer) triple that the data really has, so the query has something to find."""
    counts: dict[tuple[str, str, str], int] = {}
    for _, document in truth["sales"]:
        for fulfilment in document.get("Fulfilments", []):
            if fulfilment["Ship"]["Status"] in SHIPPED:
                for line in fulfilment["Pick"]["Lines"]:
                    key = (line["SKU"], line["Location"], document["Customer"])
                    counts[key] = counts.get(key, 0) + 1
    return max(counts, key=counts.get)


def test_sales_with_sku_location_and_customer_equal_brute_force(cache):
    conn, truth = cache
    sku, location, customer = _busiest_shipped_sku(truth)
    since, until = date(2000, 1, 1), date(2100, 1, 1)
    found = queries.sales_with_sku(conn, sku, since=since, until=until, location=location, customer=customer)
    expected = {
        (instance, document["ID"])
        for instance, document in truth["sales"]
        if any(line["SKU"] == sku for line in document["Order"]["Lines"])
        and _shipped_from(document, sku, location)
        and document["Customer"] == customer
    }
    assert expected, "the sandbox data should contain such a sale"
    assert {(row.instance, row.sale_id) for row in found} == expected
    for row in found:
        document = next(d for i, d in truth["sales"] if d["ID"] == row.sale_id)
        ordered = sum(line["Quantity"] for line in document["Order"]["Lines"] if line["SKU"] == sku)
        assert row.quantity == pytest.approx(ordered)


def test_sales_with_sku_date_window_and_sku_only(cache):
    conn, truth = cache
    sku, _, _ = _busiest_shipped_sku(truth)
    dates = sorted(d["SaleOrderDate"][:10] for _, d in truth["sales"])
    since, until = date.fromisoformat(dates[len(dates) // 3]), date.fromisoformat(dates[2 * len(dates) // 3])
    found = queries.sales_with_sku(conn, sku, since=since, until=until)
    expected = {
        (instance, d["ID"])
        for instance, d in truth["sales"]
        if any(line["SKU"] == sku for line in d["Order"]["Lines"])
        and since.isoformat() <= d["SaleOrderDate"][:10] < until.isoformat()
    }
    assert {(row.instance, row.sale_id) for row in found} == expected


def test_sku_lookup_uses_the_gin_index(cache):
    conn, truth = cache
    sku, _, _ = _busiest_shipped_sku(truth)
    conn.execute("SET enable_seqscan = off")  # tiny tables: make the planner show it *can* use the index
    try:
        plan = queries.explain(
            conn,
            "SELECT id FROM erp_cache.sales WHERE payload @> %(c)s::jsonb",
            {"c": json.dumps({"Order": {"Lines": [{"SKU": sku}]}})},
        )
    finally:
        conn.execute("RESET enable_seqscan")
    assert "sales_payload_path_ops" in plan


def test_stock_of_sku_across_instances(cache):
    conn, truth = cache
    sku, _, _ = _busiest_shipped_sku(truth)
    found = queries.stock_of_sku(conn, sku)
    expected = sorted(
        (instance, row["Location"], row.get("Bin") or "", row.get("Batch") or "", row["Available"])
        for instance, row in truth["availability"]
        if row["SKU"] == sku
    )
    assert sorted((r.instance, r.location, r.bin, r.batch, r.available) for r in found) == expected
    assert len({r.instance for r in found}) >= 1


def test_authorised_unshipped_orders(cache):
    conn, truth = cache
    found = queries.authorised_unshipped_orders(conn)
    expected = {
        (instance, d["ID"])
        for instance, d in truth["sales"]
        if d["Order"]["Status"] == "AUTHORISED" and d["CombinedShippingStatus"] != "SHIPPED" and d["Status"] != "VOIDED"
    }
    assert expected
    assert {(row.instance, row.sale_id) for row in found} == expected
    only_au = queries.authorised_unshipped_orders(conn, ["au"])
    assert {row.instance for row in only_au} == {"au"}


def test_cache_query_command_prints_the_same_rows(cache, module_database_url):
    conn, truth = cache
    sku, location, customer = _busiest_shipped_sku(truth)
    env = {**os.environ, "GP_DATABASE_URL": module_database_url}
    command = [sys.executable, "-m", "gp_pipelines.cli", "cache", "query"]
    out = subprocess.run(
        [
            *command,
            "sales",
            "--sku",
            sku,
            "--location",
            location,
            "--customer",
            customer,
            "--since",
            "2000-01-01",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    printed = {(row["instance"], row["sale_id"]) for row in map(json.loads, out.stdout.splitlines())}
    expected = queries.sales_with_sku(conn, sku, since=date(2000, 1, 1), location=location, customer=customer)
    assert printed == {(row.instance, row.sale_id) for row in expected} and printed
    out = subprocess.run(
        [*command, "unshipped", "--instance", "nz"], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0
    assert f"{len(queries.authorised_unshipped_orders(conn, ['nz']))} row(s)" in out.stderr
