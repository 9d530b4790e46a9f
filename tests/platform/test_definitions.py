"""The code location loads, and the account asset materialises one instance partition against the sandbox."""

from __future__ import annotations

import dagster as dg
import pytest

from gp_pipelines.config import builtin_sandbox_config
from gp_pipelines.definitions import MAIN_JOB, build_definitions
from gp_pipelines.sandbox.cin7 import SandboxOptions, SandboxServer
from gp_pipelines.sandbox.local import sandbox_environment


def test_code_location_loads():
    import gp_pipelines.definitions as module

    dg.Definitions.validate_loadable(module.defs)
    job = module.defs.resolve_job_def(MAIN_JOB)
    assert job.partitions_def is not None
    assert set(job.partitions_def.get_partition_keys()) == {"au", "nz", "us"}


def test_secrets_are_env_references_not_values(monkeypatch):
    monkeypatch.setenv("GP_SANDBOX_AU_KEY_1", "a-secret-value")
    defs = build_definitions(builtin_sandbox_config(port=1))
    resource = defs.resources["cin7"]
    dumped = str(resource.application_keys[0].model_dump()) + str(resource._get_non_default_public_field_values())
    assert "a-secret-value" not in dumped


@pytest.fixture
def sandbox_env(monkeypatch):
    with SandboxServer(SandboxOptions(seed=42)) as server:
        for name, value in sandbox_environment(server.instances, server.port, 42).items():
            monkeypatch.setenv(name, value)
        yield server


def test_account_asset_materialises_a_partition(sandbox_env):
    defs = build_definitions(builtin_sandbox_config())
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(MAIN_JOB).execute_in_process(partition_key="nz", instance=instance)
        assert result.success
        [event] = result.get_asset_materialization_events()
        meta = event.materialization.metadata
        assert event.materialization.partition == "nz"
        assert meta["base_currency"].value == "NZD"
        assert meta["api_calls"].value == 1


def test_currency_mismatch_fails_the_run(sandbox_env):
    config = builtin_sandbox_config()
    data = config.model_dump()
    data["instances"][0]["base_currency"] = "EUR"
    from gp_pipelines.config import parse_config

    defs = build_definitions(parse_config(data, "inline"))
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(MAIN_JOB).execute_in_process(
            partition_key="au", instance=instance, raise_on_error=False
        )
    assert not result.success
    [failure] = result.get_step_failure_events()
    error, messages = failure.step_failure_data.error, []
    while error is not None:
        messages.append(error.message)
        error = error.cause
    assert any("config says base_currency EUR but the account" in message for message in messages), messages
