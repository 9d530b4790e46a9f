"""Issue 14's scenario, end to end over real HTTP and PostgreSQL: with `au` sales only, all of `nz` and nothing
of `us` in the cache, the warehouse gate fails and builds nothing, an export of a warehouse built anyway
refuses before sending (the Zoho sandbox receives not one request), and once the missing syncs and their
completeness checks are done the gate passes and the export goes through. Run through the Dagster jobs and
through `gp-pipelines warehouse build` / `export zoho`, as an operator would."""

from __future__ import annotations

import dagster as dg
import psycopg
import pytest

from gp_pipelines.cin7.entities import ENTITIES
from gp_pipelines.cli import main
from gp_pipelines.config import ECB_SANDBOX_URL_ENV, builtin_sandbox_config
from gp_pipelines.definitions import ZOHO_EXPORT_JOB, build_definitions
from gp_pipelines.sandbox.cin7 import SandboxOptions, SandboxServer
from gp_pipelines.sandbox.ecb import EcbSandboxOptions, EcbSandboxServer
from gp_pipelines.sandbox.local import sandbox_environment
from gp_pipelines.sandbox.zoho import ZOHO_SANDBOX_URL_ENV, ZohoSandboxOptions, ZohoSandboxServer
from gp_pipelines.warehouse.analytics import ensure_analytics_views
from gp_pipelines.warehouse.zoho_export import EXPORT_SPECS
from tests.warehouse.conftest import sync_and_check
from tests.zoho.conftest import FAST_LIMITS

SEED = 4711  # Cin7 and Zoho sandboxes alike: the built-in config derives account and workspace ids from it
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
ALL = list(ENTITIES)


@pytest.fixture
def world(module_database_url, monkeypatch):
    with SandboxServer(SandboxOptions(seed=SEED, rate_limit=10**6)) as cin7, \
            EcbSandboxServer(EcbSandboxOptions(seed=SEED)) as ecb, \
            ZohoSandboxServer(ZohoSandboxOptions(seed=SEED, per_minute=dict(FAST_LIMITS))) as zoho:
        monkeypatch.delenv("GP_CONFIG", raising=False)
        monkeypatch.delenv("DAGSTER_HOME", raising=False)  # the commands then use an ephemeral instance
        monkeypatch.setenv("GP_DATABASE_URL", module_database_url)
        for name, value in sandbox_environment(cin7.instances, cin7.port, SEED, 6000).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv(ECB_SANDBOX_URL_ENV, ecb.base_url)
        monkeypatch.setenv(ZOHO_SANDBOX_URL_ENV, zoho.root_url)
        for name, value in zoho.secret_environment().items():
            monkeypatch.setenv(name, value)
        yield module_database_url, cin7, zoho


def run_cli(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out + err


def received_nothing(zoho: ZohoSandboxServer) -> None:
    state = zoho.state()
    assert state["tables"] == {} and state["units_used"] == 0 and state["import_requests"] == 0
    assert state["token_grants"] == 0 and not any(state["requests"].values()), state


def scalar(url: str, sql: str):
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchone()[0]


@pytest.mark.slow
def test_partial_sync_fails_the_gates_and_sends_nothing_until_the_cache_is_complete(world, capsys):
    url, cin7, zoho = world
    sync_and_check(url, cin7, {"au": ["sales"], "nz": ALL})

    # The warehouse job: the gate fails, naming the missing instance and every unproven entity; no table built.
    code, out = run_cli(capsys, "warehouse", "build")
    assert code == 1, out
    assert ("FAILED  warehouse/completeness_gate:instances_present  1 of 3 instances have nothing in the cache: "
            "us") in out
    assert "instance us: nothing in the cache (0 live rows in all 13 entities)" in out
    assert "instance au, entity customers: no completeness check recorded (not synced and checked yet)" in out
    assert "instance us, entity sales: no completeness check recorded" in out
    assert "instance nz," not in out  # nz is complete
    not_built = out.split("not materialised", 1)[1].splitlines()[0]
    assert "warehouse/fact_sale_line" in not_built and "analytics/views" in not_built
    assert scalar(url, "SELECT to_regclass('warehouse.fact_sale_line') IS NULL "
                       "OR NOT EXISTS (SELECT FROM warehouse.fact_sale_line)")

    # One instance at a time: nz alone is proven, so its rows pass; the tables merge whatever the cache holds.
    code, out = run_cli(capsys, "warehouse", "build", "--instance", "nz")
    assert code == 0, out
    assert "PASSED  warehouse/completeness_gate:cache_complete" in out and "instance au" not in out
    au_lines = scalar(url, "SELECT count(*) FROM warehouse.fact_sale_line f JOIN warehouse.dim_instance i "
                           "USING (instance_key) WHERE i.instance = 'au'")
    assert au_lines > 0 and au_lines == scalar(url, "SELECT count(*) FROM warehouse.fact_sale_line "
                                                    "WHERE location_key = 0")  # au's locations never synced
    ensure_analytics_views(url)

    # Exporting that warehouse (as happened before the gates): every export refuses before any call to Zoho.
    defs = build_definitions(builtin_sandbox_config())
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(ZOHO_EXPORT_JOB).execute_in_process(instance=instance, raise_on_error=False,
                                                                          run_config=QUIET)
    assert not result.success and result.get_asset_materialization_events() == []
    gates_by_view = {c.asset_key.path[-1]: c for c in result.get_asset_check_evaluations()}
    assert set(gates_by_view) == set(EXPORT_SPECS) and not any(c.passed for c in gates_by_view.values())
    assert {c.check_name for c in gates_by_view.values()} == {"integrity_gate"}
    sales_gate = gates_by_view["sales"]
    problems = sales_gate.metadata["failures"].value
    assert (f"unknown_members: fact_sale_line: instance au, dimension dim_location (location_key): {au_lines} of "
            f"{au_lines} lines on the unknown member (100.00%; allowed 0.10% of lines)") in problems
    assert ("reconciles_with_cache: fact_sale_line: instance us: absent from both the cache and the "
            "warehouse") in problems
    assert sales_gate.metadata["instances_missing"].value >= 1  # numbers beside the table
    assert sales_gate.metadata["unknown_share_max"].value == 1.0
    refusals = [e.event_specific_data.error.message for e in result.all_events if e.is_step_failure]
    assert len(refusals) == len(EXPORT_SPECS)
    assert all("refused: the gate(s) instances_present, cache_complete" in m and "nothing was sent" in m
               for m in refusals)
    code, out = run_cli(capsys, "export", "zoho", "--dry-run")
    assert code == 1 and "result: the gates failed; an export would send nothing" in out
    code, out = run_cli(capsys, "export", "zoho")
    assert code == 1 and "STEP FAILED zoho_analytics__sales: Zoho export of 'sales' refused" in out
    received_nothing(zoho)

    # The missing syncs and their completeness checks: every gate passes, and the export goes through.
    sync_and_check(url, cin7, {"au": [name for name in ALL if name != "sales"], "us": ALL})
    code, out = run_cli(capsys, "warehouse", "build")
    assert code == 0, out
    assert ("PASSED  warehouse/completeness_gate:instances_present  every instance has data in the cache (au, nz, "
            "us)") in out
    assert "PASSED  warehouse/fact_sale_line:dimension_joins" in out and "FAILED" not in out
    assert "result: every blocking check passed" in out
    assert scalar(url, "SELECT count(*) FROM warehouse.fact_sale_line WHERE location_key = 0 "
                       "OR customer_key = 0 OR product_key = 0") == 0
    code, out = run_cli(capsys, "export", "zoho", "--dry-run")
    assert code == 0, out
    sales_rows = scalar(url, "SELECT count(*) FROM analytics.sales")
    assert f"sales: would send {sales_rows} of {sales_rows} rows to 'sales' by truncateadd" in out
    received_nothing(zoho)
    code, out = run_cli(capsys, "export", "zoho")
    assert code == 0, out
    assert "PASSED  zoho_analytics/sales:integrity_gate" in out
    assert "PASSED  zoho_analytics/sales:matches_warehouse" in out
    tables = zoho.state()["tables"]
    assert set(tables) >= set(EXPORT_SPECS) and tables["sales"]["rows"] == sales_rows
