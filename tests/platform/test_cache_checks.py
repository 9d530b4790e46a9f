"""The cache's completeness check in Dagster: one result per instance partition, with numbers the UI can plot,
and a refused reconcile failing only its own instance's result."""

from __future__ import annotations

import dagster as dg
import httpx
import pytest

from gp_pipelines.cin7.completeness import COMPLETENESS
from gp_pipelines.config import builtin_sandbox_config
from gp_pipelines.definitions import build_definitions
from gp_pipelines.sandbox.cin7 import SandboxOptions, SandboxServer
from gp_pipelines.sandbox.local import sandbox_environment

STOCK = dg.AssetKey(["erp_cache", "product_availability"])
CHECK = dg.AssetCheckKey(STOCK, "matches_api_total")


@pytest.fixture
def sandbox_env(monkeypatch, module_database_url):
    monkeypatch.setenv("GP_DATABASE_URL", module_database_url)
    with SandboxServer(SandboxOptions(seed=42, rate_limit=100_000, size="small")) as server:
        for name, value in sandbox_environment(server.instances, server.port, 42, rate_limit=100_000).items():
            monkeypatch.setenv(name, value)
        yield server


def _run(defs: dg.Definitions, instance: dg.DagsterInstance, partition: str) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def("stock_only").execute_in_process(
        partition_key=partition, instance=instance, raise_on_error=False)


def test_completeness_is_kept_per_instance_partition(sandbox_env, db):
    job = dg.define_asset_job("stock_only", selection=dg.AssetSelection.assets(STOCK))
    defs = dg.Definitions.merge(build_definitions(builtin_sandbox_config(port=sandbox_env.port)),
                                dg.Definitions(jobs=[job]))
    with dg.instance_for_test() as instance:
        for partition in ("au", "nz"):
            assert _run(defs, instance, partition).success
        # nz's stock list answers one well-formed empty page: the reconcile refuses, nz's check fails, au's stays.
        httpx.post(f"{sandbox_env.root_url}/sandbox/faults/next", json={"fault": "empty_page"}, timeout=10)
        result = _run(defs, instance, "nz")
        [evaluation] = result.get_asset_check_evaluations()
        assert not evaluation.passed
        figures = {key: value.value for key, value in evaluation.metadata.items()}
        assert figures["cache_count"] == figures["api_total"] > 0 and figures["difference"] == 0
        assert figures["problems"] == 1 and "reconcile refused" in figures["problem_list"]
        [materialization] = [e.materialization for e in result.get_asset_materialization_events()]
        assert materialization.metadata["dagster/partition_row_count"].value == figures["cache_count"]
        assert materialization.metadata["refused_reconcile"].value["would_delete"] == figures["cache_count"]
        history = instance.event_log_storage.get_asset_check_execution_history(CHECK, limit=10)
        latest = {}
        for record in reversed(history):  # oldest first: the last one written per partition wins
            latest[record.event.dagster_event.event_specific_data.partition] = record.status.value
        assert latest == {"au": "SUCCEEDED", "nz": "FAILED"}
    stored = {row[0]: row[1] for row in db.execute(
        f"SELECT instance, passed FROM {COMPLETENESS} WHERE entity = 'product_availability'")}
    assert stored == {"au": True, "nz": False}
