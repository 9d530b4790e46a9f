"""A warehouse built from the Cin7 and ECB sandboxes, once per test module that asks for it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date

import pytest

from gp_pipelines.cin7.client import Cin7Client
from gp_pipelines.cin7.completeness import check_entity
from gp_pipelines.cin7.entities import ENTITIES
from gp_pipelines.cin7.limiter import LocalRateLimiter
from gp_pipelines.cin7.store import ensure_cache_schema
from gp_pipelines.cin7.sync import sync_entity
from gp_pipelines.sandbox.cin7 import SandboxOptions, SandboxServer
from gp_pipelines.sandbox.ecb import EcbSandboxOptions, EcbSandboxServer
from gp_pipelines.warehouse.analytics import ensure_analytics_views
from gp_pipelines.warehouse.build import build_all
from gp_pipelines.warehouse.fx import load_fx_rates

TODAY = date(2026, 11, 22)
CLOCK = "2026-11-22T00:00:00Z"
WAREHOUSE_ENTITIES = ("me", "locations", "products", "customers", "suppliers", "product_availability", "sales",
                      "purchases")


def sync_and_check(database_url: str, server: SandboxServer, plan: Mapping[str, Iterable[str]], *,
                   check: bool = True) -> None:
    """Sync the named entities of each instance from the sandbox and, with `check`, record each one's
    completeness against the API's Total (as the cache asset's check does)."""
    ensure_cache_schema(database_url)
    for inst in server.instances:
        names = list(plan.get(inst.key, ()))
        if not names:
            continue
        client = Cin7Client(server.base_url, inst.account_id, list(inst.application_keys), instance=inst.key,
                            limiter=LocalRateLimiter(calls=10**9))
        with client:
            for name in names:
                sync_entity(database_url, client, inst.key, ENTITIES[name])
                if check:
                    check_entity(database_url, client, inst.key, ENTITIES[name])


def fill_cache(database_url: str, seed: int = 11, *, entities: Iterable[str] = WAREHOUSE_ENTITIES,
               check: bool = False) -> None:
    with SandboxServer(SandboxOptions(seed=seed, rate_limit=10**9, clock_start=CLOCK)) as server:
        sync_and_check(database_url, server, {inst.key: entities for inst in server.instances}, check=check)


@pytest.fixture(scope="module")
def ecb_server():
    with EcbSandboxServer(EcbSandboxOptions(seed=5, today=TODAY, start=date(2024, 1, 1))) as server:
        yield server


@pytest.fixture(scope="module")
def warehouse(module_database_url, ecb_server):
    """(database_url, build results): cache filled, rates loaded, every table built in full, views created."""
    fill_cache(module_database_url)
    load_fx_rates(module_database_url, ecb_server.source(), reporting_currency="USD", today=TODAY)
    results = build_all(module_database_url, reporting_currency="USD", full=True)
    ensure_analytics_views(module_database_url)
    return module_database_url, results
