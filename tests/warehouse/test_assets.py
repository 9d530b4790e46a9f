"""The warehouse job through the code location's definitions, against a cache proven complete: the gate asset in
front of every table built from the cache, row counts and column schemas read from PostgreSQL's catalogue, and
check metadata with numbers beside the markdown table."""

from __future__ import annotations

import dagster as dg
import pytest

from gp_pipelines.cin7.entities import ENTITIES
from gp_pipelines.config import ECB_SANDBOX_URL_ENV, builtin_sandbox_config, parse_config
from gp_pipelines.definitions import WAREHOUSE_JOB, build_definitions
from gp_pipelines.warehouse.analytics import ANALYTICS_VIEWS
from gp_pipelines.warehouse.build import WAREHOUSE_TABLES
from tests.warehouse.conftest import fill_cache

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
GATE = dg.AssetKey(["warehouse", "completeness_gate"])


@pytest.fixture(scope="module")
def run(module_database_url, ecb_server):
    fill_cache(module_database_url, entities=list(ENTITIES), check=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GP_DATABASE_URL", module_database_url)
        patch.setenv(ECB_SANDBOX_URL_ENV, ecb_server.base_url)
        data = builtin_sandbox_config(port=1).model_dump()
        data["zoho_analytics"] = None
        defs = build_definitions(parse_config(data, "test config"))
        with dg.instance_for_test() as instance:
            result = defs.resolve_job_def(WAREHOUSE_JOB).execute_in_process(
                instance=instance, raise_on_error=False, run_config=QUIET)
    return module_database_url, defs, result


def _materialised(result) -> dict[str, dict]:
    return {e.materialization.asset_key.to_user_string(): e.materialization.metadata
            for e in result.get_asset_materialization_events()}


def test_every_table_built_from_the_cache_waits_for_the_gate(run):
    _, defs, result = run
    graph = defs.resolve_asset_graph()
    for spec in WAREHOUSE_TABLES:
        parents = graph.get(dg.AssetKey(["warehouse", spec.name])).parent_keys
        assert (GATE in parents) == bool(spec.inputs), spec.name  # the rates read no cache
    assert result.success
    gate = {c.check_name: c for c in result.get_asset_check_evaluations() if c.asset_key == GATE}
    assert set(gate) == {"instances_present", "cache_complete"} and all(c.passed for c in gate.values())
    assert gate["cache_complete"].metadata["entities_passing"].value == 3 * len(ENTITIES)
    assert isinstance(gate["cache_complete"].metadata["result"], dg.MarkdownMetadataValue)


def test_tables_and_views_report_row_counts_and_column_schemas_from_the_catalogue(run, db):
    _, _, result = run
    built = _materialised(result)
    sale_lines = built["warehouse/fact_sale_line"]
    assert sale_lines["dagster/row_count"].value == db.execute(
        "SELECT count(*) FROM warehouse.fact_sale_line").fetchone()[0] > 0
    expected = db.execute("SELECT column_name, is_nullable = 'YES' FROM information_schema.columns WHERE "
                          "table_schema = 'warehouse' AND table_name = 'fact_sale_line' ORDER BY ordinal_position"
                          ).fetchall()
    schema = sale_lines["dagster/column_schema"].value
    assert [(c.name, c.constraints.nullable) for c in schema.columns] == expected
    assert {c.name: c.type for c in schema.columns}["amount_reporting"] == "numeric(18,4)"
    assert built["warehouse/fx_rate"]["dagster/row_count"].value > 0
    views = built["analytics/views"]
    for view in ANALYTICS_VIEWS:
        rows = db.execute(f"SELECT count(*) FROM analytics.{view}").fetchone()[0]
        assert views[f"{view}/row_count"].value == rows
        assert views[f"{view}/columns"].value.columns[0].name in ("instance_key", "product_key", "customer_key",
                                                                   "location_key", "date_key", "date")
    assert views["dagster/row_count"].value == sum(views[f"{v}/row_count"].value for v in ANALYTICS_VIEWS)
    names = [c.name for c in views["dagster/column_schema"].value.columns]
    assert "sales.amount_reporting" in names and "instances.instance_code" in names


def test_check_metadata_carries_numbers_beside_the_table(run):
    _, _, result = run
    evaluations = {(c.asset_key.to_user_string(), c.check_name): c for c in result.get_asset_check_evaluations()}
    failed = [key for key, c in evaluations.items() if not c.passed]
    assert failed == [], failed
    joins = evaluations[("warehouse/fact_sale_line", "dimension_joins")].metadata
    assert isinstance(joins["result"], dg.MarkdownMetadataValue)
    assert isinstance(joins["unknown_share_max"], dg.FloatMetadataValue) and joins["unknown_share_max"].value == 0
    assert joins["lines[au]"].value > 0 and joins["unknown_rows[au]"].value == 0
    reconciled = evaluations[("warehouse/fact_sale_line", "reconciles_with_cache")].metadata
    assert isinstance(reconciled["groups_missing"], dg.IntMetadataValue)
    assert reconciled["groups_missing"].value == reconciled["instances_missing"].value == 0
    assert reconciled["cache_lines"].value == reconciled["warehouse_lines"].value > 0
    assert reconciled["cache_lines[nz]"].value == reconciled["warehouse_lines[nz]"].value > 0
