"""A warehouse built once for the package (as tests/warehouse builds it) and cloned per module; a Zoho sandbox
per test (its own org and workspace) with the per-minute limits raised; clients that wait milliseconds."""

from __future__ import annotations

import itertools
import uuid
from datetime import date

import psycopg
import pytest

from gp_pipelines import database
from gp_pipelines.cin7.entities import ENTITIES
from gp_pipelines.connectors.zoho import ZohoAnalyticsClient, ZohoCredentials, forget_cached_tokens
from gp_pipelines.sandbox.ecb import EcbSandboxOptions, EcbSandboxServer
from gp_pipelines.sandbox.zoho import ZohoSandboxOptions, ZohoSandboxServer
from gp_pipelines.warehouse.analytics import ensure_analytics_views
from gp_pipelines.warehouse.build import build_all
from gp_pipelines.warehouse.fx import load_fx_rates
from gp_pipelines.warehouse.zoho_export import ExportSettings
from tests.warehouse.conftest import TODAY, fill_cache

FAST_LIMITS = {"overall": 100_000, "bulk": 100_000, "metadata": 100_000, "dml": 100_000}


@pytest.fixture(scope="session")
def warehouse_template(pg_server_url: str) -> str:
    """A database holding a built warehouse and its analytics views; modules clone it (CREATE ... TEMPLATE). Every
    entity of every instance is synced and checked against the API's Total, so the export gates pass."""
    name = f"t_zoho_template_{uuid.uuid4().hex[:8]}"
    url = database.ensure_database(pg_server_url, name)
    fill_cache(url, entities=list(ENTITIES), check=True)
    with EcbSandboxServer(EcbSandboxOptions(seed=5, today=TODAY, start=date(2024, 1, 1))) as ecb:
        load_fx_rates(url, ecb.source(), reporting_currency="USD", today=TODAY)
    build_all(url, reporting_currency="USD", full=True)
    ensure_analytics_views(url)
    yield name
    database.drop_database(pg_server_url, name)


@pytest.fixture(scope="module")
def warehouse_url(request, pg_server_url: str, warehouse_template: str) -> str:
    stem = request.module.__name__.rsplit(".", 1)[-1].lower()[:30]
    name = f"t_{stem}_{uuid.uuid4().hex[:8]}"
    url = database.ensure_database(pg_server_url, name, template=warehouse_template)
    yield url
    database.drop_database(pg_server_url, name)


@pytest.fixture(autouse=True)
def _no_token_carried_over():
    forget_cached_tokens()
    yield
    forget_cached_tokens()


_SEEDS = itertools.count(1000)


@pytest.fixture
def zoho_server():
    """A sandbox of its own per test. Its seed, hence its org and workspace ids, differ from every other test's,
    so export state and unit ledgers in a shared database never mix."""
    with ZohoSandboxServer(ZohoSandboxOptions(seed=next(_SEEDS), per_minute=dict(FAST_LIMITS))) as server:
        yield server


def make_client(server: ZohoSandboxServer, **options) -> ZohoAnalyticsClient:
    identity = server.identity
    settings = {"poll_interval_seconds": 0.005, "throttle_wait_seconds": 0.01, "backoff_seconds": 0.01,
                "timeout_seconds": 30.0, **options}
    return ZohoAnalyticsClient(
        api_url=server.root_url, accounts_url=server.root_url, org_id=identity.org_id,
        workspace_id=identity.workspace_id,
        credentials=ZohoCredentials(identity.client_id, identity.client_secret, identity.refresh_token), **settings)


def export_settings(server: ZohoSandboxServer, **options) -> ExportSettings:
    return ExportSettings(org_id=server.identity.org_id, workspace_id=server.identity.workspace_id, **options)


@pytest.fixture
def client(zoho_server):
    with make_client(zoho_server) as client:
        yield client


def execute(url: str, sql: str, params: tuple = ()) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql, params)
