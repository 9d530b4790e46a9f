"""One webserver + daemon stack for the whole UI package (GraphQL and browser tests share it).

The fixture starts the webserver alone, launches the workload the way the UI does (a materialisation of
one cache asset for instance `au`, and a backfill of another for instance `nz`), records that the run waits
in the queue, and only then starts the daemon: the queued run coordinator and the backfill daemon must do
the rest. Starting the daemon last also means the backfill daemon's first pass sees the backfill at once,
instead of up to 30 s later (its loop interval), which keeps the suite well under two minutes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dagster as dg
import pytest

from tests.ui.stack import LOCATION, REPOSITORY, UiStack, start_daemon, ui_stack

RUN_ASSET = ("erp_cache", "locations")
RUN_PARTITION = "au"
BACKFILL_ASSET = ("erp_cache", "carriers")
BACKFILL_PARTITION = "nz"

LAUNCH_RUN = """
mutation LaunchRun($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status tags { key value } } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""

LAUNCH_BACKFILL = """
mutation LaunchBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on PartitionSetNotFoundError { message }
    ... on UnauthorizedError { message }
  }
}
"""

RUN_STATUS = "query RunStatus($runId: ID!) { runOrError(runId: $runId) { __typename ... on Run { status } } }"


@dataclass
class UiSession:
    stack: UiStack
    expected: dg.RepositoryDefinition  # what the code location should show, built in this process
    run_launch: dict[str, Any]
    run_status_before_daemon: str | None
    backfill_launch: dict[str, Any]

    @property
    def run_id(self) -> str:
        assert self.run_launch["__typename"] == "LaunchRunSuccess", self.run_launch
        return self.run_launch["run"]["runId"]

    @property
    def backfill_id(self) -> str:
        assert self.backfill_launch["__typename"] == "LaunchBackfillSuccess", self.backfill_launch
        return self.backfill_launch["backfillId"]


def _launch_workload(stack: UiStack) -> tuple[dict, str | None, dict]:
    """What the UI sends for 'Materialize' on one partition (the implicit asset job, the asset's checks, the
    partition tag) and for 'Launch backfill' of one partition."""
    run = stack.graphql(LAUNCH_RUN, {"executionParams": {
        "selector": {
            "repositoryLocationName": LOCATION,
            "repositoryName": REPOSITORY,
            "jobName": "__ASSET_JOB",
            "assetSelection": [{"path": list(RUN_ASSET)}],
            "assetCheckSelection": [{"assetKey": {"path": list(RUN_ASSET)}, "name": "matches_api_total"}],
        },
        "runConfigData": {},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": RUN_PARTITION}]},
    }})["launchRun"]  # fmt: skip
    status = None
    if run["__typename"] == "LaunchRunSuccess":
        status = stack.graphql(RUN_STATUS, {"runId": run["run"]["runId"]})["runOrError"]["status"]
    backfill = stack.graphql(LAUNCH_BACKFILL, {"backfillParams": {
        "partitionNames": [BACKFILL_PARTITION],
        "assetSelection": [{"path": list(BACKFILL_ASSET)}],
        "fromFailure": False,
        "tags": [],
        "title": "UI test: one instance",
    }})["launchPartitionBackfill"]  # fmt: skip
    return run, status, backfill


# Package scope: the stack stops once the last test under tests/ui has run, not at the end of the whole
# session, so the rest of the suite never shares the two cores with an idle webserver and daemon.
@pytest.fixture(scope="package")
def ui(pg_server_url) -> Iterator[UiSession]:
    from gp_pipelines.definitions import build_definitions

    with ui_stack(daemon=False) as stack:
        expected = build_definitions(stack.local.config).get_repository_def()
        run, status, backfill = _launch_workload(stack)
        start_daemon(stack)
        yield UiSession(stack, expected, run, status, backfill)
