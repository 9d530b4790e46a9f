"""The code location loads, and the cache assets materialise one instance partition against the sandbox,
with their blocking checks, through the same resources the UI uses."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest

from gp_pipelines.cin7.entities import ENTITIES
from gp_pipelines.config import builtin_sandbox_config, parse_config
from gp_pipelines.definitions import MAIN_JOB, build_definitions
from gp_pipelines.sandbox.cin7 import SandboxOptions, SandboxServer
from gp_pipelines.sandbox.local import sandbox_environment

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def test_code_location_loads():
    import gp_pipelines.definitions as module

    dg.Definitions.validate_loadable(module.defs)
    graph = module.defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {f"erp_cache/{name}" for name in ENTITIES} <= keys
    for name in ENTITIES:
        node = graph.get(dg.AssetKey(["erp_cache", name]))
        assert node.group_name == "erp_cache"
        assert set(node.partitions_def.get_partition_keys()) == {"au", "nz", "us"}
        assert {"cin7", "postgres"} <= set(node.kinds)
    for name in ("fx_rate", "dim_product", "fact_sale_line", "fact_invoice_line", "fact_stock"):
        node = graph.get(dg.AssetKey(["warehouse", name]))
        assert node.group_name == "warehouse" and node.automation_condition is not None
    assert graph.get(dg.AssetKey(["analytics", "views"])).group_name == "analytics"
    check_names = {key.name for key in graph.asset_check_keys if key.asset_key.path[-1] == "fact_sale_line"}
    assert check_names == {"unique_keys", "dimension_joins", "fx_coverage", "reconciles_with_cache", "fresh"}
    # The sale-line fact follows the cache: its inputs include the sales cache asset.
    assert dg.AssetKey(["erp_cache", "sales"]) in graph.get(dg.AssetKey(["warehouse", "fact_sale_line"])).parent_keys
    schedules = {schedule.name: schedule for schedule in module.defs.schedules}
    assert set(schedules) == {
        "cache_documents_schedule",
        "cache_master_data_schedule",
        "cache_full_reconcile_schedule",
    }
    assert all(s.default_status == dg.DefaultScheduleStatus.STOPPED for s in schedules.values())
    assert schedules["cache_documents_schedule"].cron_schedule == "*/15 * * * *"


def test_secrets_are_env_references_not_values(monkeypatch):
    monkeypatch.setenv("GP_SANDBOX_AU_KEY_1", "a-secret-value")
    defs = build_definitions(builtin_sandbox_config(port=1))
    resource = defs.resources["cin7"]
    dumped = str(resource.application_keys[0].model_dump()) + str(resource._get_non_default_public_field_values())
    assert "a-secret-value" not in dumped


def test_schedule_requests_one_run_per_instance():
    defs = build_definitions(builtin_sandbox_config(port=1))
    schedule = next(s for s in defs.schedules if s.name == "cache_documents_schedule")
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2026, 11, 22, 10, 15, tzinfo=UTC)
        )
        requests = list(schedule(context))
    assert sorted(request.partition_key for request in requests) == ["au", "nz", "us"]
    assert len({request.run_key for request in requests}) == 3


@pytest.fixture
def sandbox_env(monkeypatch, module_database_url):
    monkeypatch.setenv("GP_DATABASE_URL", module_database_url)
    # A raised limit on both sides keeps the test fast; the limiter itself is tested in test_limiter.
    with SandboxServer(SandboxOptions(seed=42, rate_limit=100_000)) as server:
        for name, value in sandbox_environment(server.instances, server.port, 42, rate_limit=100_000).items():
            monkeypatch.setenv(name, value)
        yield server


def test_main_job_fills_the_cache_for_one_partition(sandbox_env, db):
    defs = build_definitions(builtin_sandbox_config())
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(MAIN_JOB).execute_in_process(
            partition_key="nz", instance=instance, run_config=QUIET
        )
        assert result.success
        events = {
            e.materialization.asset_key.path[-1]: e.materialization for e in result.get_asset_materialization_events()
        }
        assert set(events) == set(ENTITIES)
        assert all(e.partition == "nz" for e in events.values())
        sales = {name: value.value for name, value in events["sales"].metadata.items()}
        assert sales["inserted"] > 0 and sales["api_calls"] >= sales["inserted"]  # one detail call per sale
        checks = result.get_asset_check_evaluations()
        assert checks and all(check.passed for check in checks)
    # Only the partition's instance was written.
    assert {row[0] for row in db.execute("SELECT DISTINCT instance FROM erp_cache.sales")} == {"nz"}


def test_wrong_base_currency_fails_the_blocking_check(sandbox_env):
    data = builtin_sandbox_config().model_dump()
    data["instances"][0]["base_currency"] = "EUR"
    defs = build_definitions(parse_config(data, "inline"))
    job = dg.define_asset_job("me_only", selection=dg.AssetSelection.assets(["erp_cache", "me"]))
    defs = dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("me_only").execute_in_process(
            partition_key="au", instance=instance, raise_on_error=False, run_config=QUIET
        )
    [currency] = [c for c in result.get_asset_check_evaluations() if c.check_name == "base_currency_matches_config"]
    assert not currency.passed
    assert "EUR" in currency.metadata["accounts"].value
