"""The running webserver's GraphQL API, as the UI uses it: what it lists, and runs it launches that the
daemon then dequeues and finishes (a materialisation of one instance, and a backfill of one instance)."""

from __future__ import annotations

import time

import pytest

from gp_pipelines.cin7.entities import ENTITIES
from tests.ui.conftest import BACKFILL_ASSET, BACKFILL_PARTITION, RUN_ASSET, RUN_PARTITION, UiSession
from tests.ui.stack import LOCATION, REPOSITORY

pytestmark = pytest.mark.slow

INSTANCES = ["au", "nz", "us"]

ASSET_NODES = """
{ assetNodes {
    assetKey { path } groupName isPartitioned
    partitionKeysByDimension { partitionKeys }
    assetChecksOrError { __typename ... on AssetChecks { checks { name blocking } } }
} }
"""

REPOSITORY_CONTENTS = """
query Repository($selector: RepositorySelector!) {
  repositoryOrError(repositorySelector: $selector) {
    __typename
    ... on Repository {
      assetGroups { groupName }
      schedules { name cronSchedule executionTimezone scheduleState { status } }
      sensors { name sensorType sensorState { status } }
    }
    ... on PythonError { message }
  }
}
"""

RUN = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { status tags { key value } assetSelection { path } }
  }
}
"""

RUN_FAILURES = """
query RunFailures($runId: ID!) {
  logsForRun(runId: $runId) {
    ... on EventConnection { events { __typename ... on MessageEvent { message } } }
  }
}
"""

BACKFILL = """
query Backfill($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill {
      status numPartitions partitionNames assetSelection { path }
      runs(limit: 10) { runId status tags { key value } }
    }
  }
}
"""

ASSET_PARTITIONS = """
query AssetPartitions($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode {
      assetPartitionStatuses {
        __typename
        ... on DefaultPartitionStatuses { materializedPartitions failedPartitions materializingPartitions }
      }
    }
  }
  assetOrError(assetKey: $assetKey) {
    ... on Asset { assetMaterializations { partition runId } }
  }
}
"""

CHECK_EXECUTIONS = """
query CheckExecutions($assetKey: AssetKeyInput!, $checkName: String!) {
  assetCheckExecutions(assetKey: $assetKey, checkName: $checkName, limit: 10) {
    runId status evaluation { success }
  }
}
"""

TERMINAL_RUN = {"SUCCESS", "FAILURE", "CANCELED"}
# Loose enough for a loaded 2-core machine; a healthy stack needs about 20 s for the run, 40 s for the backfill.
WAIT_SECONDS = 150


def _key(path) -> str:
    return "/".join(path)


@pytest.fixture(scope="module")
def asset_nodes(ui: UiSession) -> dict[str, dict]:
    nodes = ui.stack.graphql(ASSET_NODES)["assetNodes"]
    return {_key(node["assetKey"]["path"]): node for node in nodes}


@pytest.fixture(scope="module")
def repository(ui: UiSession) -> dict:
    selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}
    found = ui.stack.graphql(REPOSITORY_CONTENTS, {"selector": selector})["repositoryOrError"]
    assert found["__typename"] == "Repository", found
    return found


def test_every_asset_is_listed_in_its_group(ui: UiSession, asset_nodes):
    expected = {key.to_user_string(): ui.expected.asset_graph.get(key).group_name
                for key in ui.expected.asset_graph.get_all_asset_keys()}  # fmt: skip
    assert {key: node["groupName"] for key, node in asset_nodes.items()} == expected
    for name in ENTITIES:
        node = asset_nodes[f"erp_cache/{name}"]
        assert node["groupName"] == "erp_cache"
        assert node["isPartitioned"]
        assert [sorted(d["partitionKeys"]) for d in node["partitionKeysByDimension"]] == [INSTANCES]
    groups = {node["groupName"] for node in asset_nodes.values()}
    assert {"erp_cache", "warehouse", "analytics"} <= groups
    assert "warehouse/fact_sale_line" in asset_nodes and "analytics/views" in asset_nodes


def test_asset_groups_are_listed(repository):
    assert {"erp_cache", "warehouse", "analytics"} <= {group["groupName"] for group in repository["assetGroups"]}


def test_asset_checks_are_listed(ui: UiSession, asset_nodes):
    listed = set()
    for key, node in asset_nodes.items():
        checks = node["assetChecksOrError"]
        assert checks["__typename"] == "AssetChecks", (key, checks)
        listed |= {(key, check["name"], check["blocking"]) for check in checks["checks"]}
    expected = {(check.asset_key.to_user_string(), check.name) for check in ui.expected.asset_graph.asset_check_keys}
    assert {(key, name) for key, name, _ in listed} == expected
    for name in ENTITIES:
        assert (f"erp_cache/{name}", "matches_api_total", True) in listed  # blocking: bad data stops there
    assert ("erp_cache/me", "base_currency_matches_config", True) in listed
    assert {"unique_keys", "reconciles_with_cache"} <= {
        name for key, name, _ in listed if key == "warehouse/fact_sale_line"
    }


def test_schedules_and_sensors_are_listed_and_start_stopped(ui: UiSession, repository):
    schedules = {s["name"]: s for s in repository["schedules"]}
    sensors = {s["name"]: s for s in repository["sensors"]}
    assert set(schedules) == {s.name for s in ui.expected.schedule_defs}
    assert set(sensors) == {s.name for s in ui.expected.sensor_defs}
    assert {"cache_documents_schedule", "cache_master_data_schedule", "cache_full_reconcile_schedule"} <= set(schedules)
    assert schedules["cache_documents_schedule"]["cronSchedule"] == "*/15 * * * *"
    assert schedules["cache_documents_schedule"]["executionTimezone"] == "UTC"
    assert {"new_orders_sensor", "outbox_retry_sensor", "notify_on_run_failure"} <= set(sensors)
    # Documented: everything starts STOPPED and is turned on under Automation once the config is right.
    assert {name: s["scheduleState"]["status"] for name, s in schedules.items()} == dict.fromkeys(schedules, "STOPPED")
    assert {name: s["sensorState"]["status"] for name, s in sensors.items()} == dict.fromkeys(sensors, "STOPPED")


def _wait_for_run(ui: UiSession, run_id: str) -> dict:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        run = ui.stack.graphql(RUN, {"runId": run_id})["runOrError"]
        assert run["__typename"] == "Run", run
        if run["status"] in TERMINAL_RUN:
            break
        ui.stack.check_alive()
        assert time.monotonic() < deadline, f"run {run_id} still {run['status']}\n{ui.stack.logs()}"
        time.sleep(1)
    if run["status"] != "SUCCESS":
        events = ui.stack.graphql(RUN_FAILURES, {"runId": run_id})["logsForRun"].get("events", [])
        messages = [e.get("message") for e in events if "Failure" in e["__typename"] or "Error" in e["__typename"]]
        pytest.fail(f"run {run_id} ended {run['status']}: {messages}\n{ui.stack.logs()}")
    return run


def _materialized(ui: UiSession, path) -> tuple[list[str], list[dict]]:
    found = ui.stack.graphql(ASSET_PARTITIONS, {"assetKey": {"path": list(path)}})
    statuses = found["assetNodeOrError"]["assetPartitionStatuses"]
    assert statuses["__typename"] == "DefaultPartitionStatuses", statuses
    assert statuses["failedPartitions"] == [] and statuses["materializingPartitions"] == []
    return statuses["materializedPartitions"], found["assetOrError"]["assetMaterializations"]


def test_materialising_one_instance_waits_for_the_daemon_then_succeeds(ui: UiSession):
    assert ui.run_launch["__typename"] == "LaunchRunSuccess", ui.run_launch
    # The queued run coordinator holds the run until the daemon dequeues it: without the daemon it stays put.
    assert ui.run_status_before_daemon == "QUEUED"
    run = _wait_for_run(ui, ui.run_id)
    assert {"key": "dagster/partition", "value": RUN_PARTITION} in run["tags"]
    assert [asset["path"] for asset in run["assetSelection"]] == [list(RUN_ASSET)]
    partitions, materializations = _materialized(ui, RUN_ASSET)
    assert partitions == [RUN_PARTITION]  # that instance only
    assert [(m["partition"], m["runId"]) for m in materializations] == [(RUN_PARTITION, ui.run_id)]
    checks = ui.stack.graphql(
        CHECK_EXECUTIONS, {"assetKey": {"path": list(RUN_ASSET)}, "checkName": "matches_api_total"}
    )["assetCheckExecutions"]
    assert [(c["runId"], c["status"], c["evaluation"]["success"]) for c in checks] == [(ui.run_id, "SUCCEEDED", True)]


def test_backfilling_one_instance_completes(ui: UiSession):
    assert ui.backfill_launch["__typename"] == "LaunchBackfillSuccess", ui.backfill_launch
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        backfill = ui.stack.graphql(BACKFILL, {"backfillId": ui.backfill_id})["partitionBackfillOrError"]
        assert backfill["__typename"] == "PartitionBackfill", backfill
        if backfill["status"] not in ("REQUESTED", "CANCELING", "FAILING"):
            break
        ui.stack.check_alive()
        assert time.monotonic() < deadline, f"backfill still {backfill['status']}: {backfill}\n{ui.stack.logs()}"
        time.sleep(1)
    assert backfill["status"] == "COMPLETED_SUCCESS", f"{backfill}\n{ui.stack.logs()}"
    assert backfill["numPartitions"] == 1 and backfill["partitionNames"] == [BACKFILL_PARTITION]
    assert [asset["path"] for asset in backfill["assetSelection"]] == [list(BACKFILL_ASSET)]
    assert [run["status"] for run in backfill["runs"]] == ["SUCCESS"]
    tags = {tag["key"]: tag["value"] for tag in backfill["runs"][0]["tags"]}
    assert tags["dagster/backfill"] == ui.backfill_id
    assert tags["dagster/partition"] == BACKFILL_PARTITION
    partitions, materializations = _materialized(ui, BACKFILL_ASSET)
    assert partitions == [BACKFILL_PARTITION]
    assert [m["partition"] for m in materializations] == [BACKFILL_PARTITION]
