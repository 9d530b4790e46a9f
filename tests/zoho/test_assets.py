"""The export assets and their blocking checks, run through the code location's job and resources against the
Zoho sandbox: metadata with units and the read-back table, a failing check on a changed number, the budget
refusal as a failed step, secrets only as environment references."""

from __future__ import annotations

import dagster as dg
import pytest

from gp_pipelines.config import ConfigError, builtin_sandbox_config, parse_config
from gp_pipelines.definitions import ZOHO_EXPORT_JOB, build_definitions
from gp_pipelines.sandbox.zoho import ZOHO_SANDBOX_URL_ENV

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
VIEWS = ["instances", "sales"]


@pytest.fixture
def zoho_env(monkeypatch, warehouse_url, zoho_server):
    monkeypatch.setenv("GP_DATABASE_URL", warehouse_url)
    monkeypatch.setenv("GP_SANDBOX_SEED", str(zoho_server.options.seed))  # the config derives the ids from it
    monkeypatch.setenv(ZOHO_SANDBOX_URL_ENV, zoho_server.root_url)
    for name, value in zoho_server.secret_environment().items():
        monkeypatch.setenv(name, value)
    return zoho_server


def _definitions(**zoho_settings) -> dg.Definitions:
    data = builtin_sandbox_config(port=1).model_dump()
    data["zoho_analytics"].update({"views": VIEWS, "poll_interval_seconds": 0.01, **zoho_settings})
    return build_definitions(parse_config(data, "test config"))


def _run(defs: dg.Definitions, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def(ZOHO_EXPORT_JOB).execute_in_process(instance=instance, raise_on_error=False,
                                                                      run_config=QUIET)


def test_export_job_materialises_every_view_and_the_checks_read_them_back(zoho_env):
    defs = _definitions()
    graph = defs.resolve_asset_graph()
    node = graph.get(dg.AssetKey(["zoho_analytics", "sales"]))
    assert node.group_name == "exports" and dg.AssetKey(["analytics", "views"]) in node.parent_keys
    with dg.instance_for_test() as instance:
        result = _run(defs, instance)
        assert result.success
        exported = {e.materialization.asset_key.path[-1]: {k: v.value for k, v in e.materialization.metadata.items()}
                    for e in result.get_asset_materialization_events()}
        assert set(exported) == set(VIEWS)
        sales = exported["sales"]
        assert sales["uploaded"] and sales["import_type"] == "truncateadd" and sales["units_spent"] == 13
        assert sales["units_left_today"] == sales["daily_unit_budget"] - sales["units_spent_today"]
        assert sales["units_spent_today"] == zoho_env.state()["units_used"]
        assert "| instance | month |" in sales["verification"]
        evaluations = result.get_asset_check_evaluations()
        assert {(c.asset_key.path[-1], c.check_name) for c in evaluations} == {
            (view, name) for view in VIEWS for name in ("integrity_gate", "matches_warehouse")}
        assert all(c.passed for c in evaluations)
        gate = next(c for c in evaluations if c.asset_key.path[-1] == "sales" and c.check_name == "integrity_gate")
        assert gate.metadata["instances_present"].value == 3 and gate.metadata["unknown_share_max"].value == 0
        assert gate.metadata["groups_missing"].value == 0 and "**" in gate.metadata["result"].value
        checks = {c.asset_key.path[-1]: c for c in evaluations if c.check_name == "matches_warehouse"}
        figures = {k: v.value for k, v in checks["sales"].metadata.items()}
        assert figures["groups_missing"] == figures["instances_missing"] == 0
        assert figures["rows_warehouse"] == figures["rows_zoho"] == sales["rows"]
        assert figures["sum_amount_reporting_warehouse"] == figures["sum_amount_reporting_zoho"]
        assert "| au |" in figures["result"]

        # A number changed in Zoho: nothing is uploaded (the content is unchanged), the blocking check fails.
        zoho_env.inject(corrupt={"table": "sales", "column": "amount_base", "delta": 5})
        second = _run(defs, instance)
        assert not second.success
        again = {e.materialization.asset_key.path[-1]: e.materialization.metadata
                 for e in second.get_asset_materialization_events()}
        assert again["sales"]["uploaded"].value is False
        [failed] = [c for c in second.get_asset_check_evaluations() if not c.passed]
        assert failed.asset_key.path[-1] == "sales" and failed.severity == dg.AssetCheckSeverity.ERROR
        assert "amount_base" in failed.metadata["failures"].value and "(+5.00)" in failed.metadata["failures"].value


def test_budget_refusal_fails_the_step_with_the_table_and_units(zoho_env):
    defs = _definitions(daily_unit_budget=3)
    with dg.instance_for_test() as instance:
        result = _run(defs, instance)
    assert not result.success
    failures = {e.step_key: e.event_specific_data for e in result.all_events if e.is_step_failure}
    [sales] = [data for key, data in failures.items() if "sales" in key]
    assert "table 'sales' stopped before starting: it needs 13 API units" in sales.error.message
    assert sales.user_failure_data.metadata["units_left_today"].value == 2  # instances (1 unit) fitted
    assert zoho_env.state()["tables"].keys() == {"instances"}


def test_secrets_are_environment_references(zoho_env):
    resource = _definitions().resources["zoho_analytics"]
    dumped = str(resource._get_non_default_public_field_values())
    for secret in zoho_env.secret_environment().values():
        assert secret not in dumped
    assert "GP_SANDBOX_ZOHO_REFRESH_TOKEN" in dumped


def test_unknown_view_in_the_config_is_named(zoho_env):
    data = builtin_sandbox_config(port=1).model_dump()
    data["zoho_analytics"]["views"] = ["sales", "salez"]
    with pytest.raises(ConfigError, match=r"zoho_analytics.views: unknown view\(s\) \['salez'\]"):
        build_definitions(parse_config(data, "test config"))
    data["zoho_analytics"]["org_id"] = "my org"
    with pytest.raises(ConfigError, match="org_id: must be the numeric id"):
        parse_config(data, "test config")
