"""In a Dagster run, the first line of a failure names the instance, the outside system, its URL and the
variable holding the key (never the key); retries and long rate-limit waits show in the run's log."""

from __future__ import annotations

import logging

import dagster as dg
import pytest

from gp_pipelines.assets.cache import build_cache_definitions, cache_asset_key
from gp_pipelines.cin7.entities import ENTITIES
from gp_pipelines.cin7.limiter import PostgresRateLimiter
from gp_pipelines.config import builtin_sandbox_config
from gp_pipelines.resources.cin7 import Cin7ApplicationKey, Cin7Resource
from gp_pipelines.resources.database import PostgresResource
from gp_pipelines.sandbox.cin7 import SandboxOptions, SandboxServer

KEY_VARIABLE = "GP_TEST_RUN_FAILURE_AU_KEY"
SECRET = "the-wrong-key-3f9a"


@pytest.fixture(scope="module")
def sandbox():
    with SandboxServer(SandboxOptions(seed=42, rate_limit=100_000, size="small")) as server:
        yield server


def _me_asset(port: int) -> dg.AssetsDefinition:
    config = builtin_sandbox_config(port=port)
    assets, _ = build_cache_definitions(config, dg.StaticPartitionsDefinition(config.instance_keys))
    return next(a for a in assets if a.key == cache_asset_key(ENTITIES["me"]))


def _materialize(base_url: str, account_id: str, database_url: str, instance: dg.DagsterInstance,
                 port: int) -> dg.ExecuteInProcessResult:
    database = PostgresResource(url=database_url)
    cin7 = Cin7Resource(
        database=database,
        application_keys=[Cin7ApplicationKey(instance="au", account_id=account_id, base_url=base_url,
                                             application_key=dg.EnvVar(KEY_VARIABLE), calls_per_minute=100_000,
                                             application_key_env=KEY_VARIABLE)],
        max_attempts=3, backoff_base_seconds=0.01,  # a sandbox that is down fails in well under a second
    )
    return dg.materialize([_me_asset(port)], partition_key="au", instance=instance, raise_on_error=False,
                          resources={"cin7": cin7, "gp_database": database})


def _failure(result: dg.ExecuteInProcessResult) -> tuple[str, dict]:
    [event] = [e for e in result.all_events if e.is_step_failure]
    data = event.step_failure_data.user_failure_data
    assert data is not None, event.step_failure_data.error
    return data.description, {key: value.value for key, value in data.metadata.items()}


def test_a_wrong_key_names_instance_url_and_variable(sandbox, module_database_url, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, SECRET)
    au = next(i for i in sandbox.instances if i.key == "au")
    with dg.instance_for_test() as instance:
        result = _materialize(sandbox.base_url, au.account_id, module_database_url, instance, sandbox.port)
        assert not result.success
        description, metadata = _failure(result)
        logs = "\n".join(entry.user_message for entry in instance.all_logs(result.run_id))
    first = description.splitlines()[0]
    assert "Cin7 Core rejected the credentials" in first
    assert "instance au" in first and sandbox.base_url in first and KEY_VARIABLE in first
    assert metadata == {"system": "Cin7 Core", "instance": "au", "url": sandbox.base_url,
                        "key_variable": KEY_VARIABLE, "error": "Cin7AuthError"}
    assert SECRET not in description + str(metadata) + logs


def test_a_stopped_sandbox_names_the_url_and_every_retry_is_logged(module_database_url, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, SECRET)
    stopped = SandboxServer(SandboxOptions(seed=42, size="small")).start()
    url, account_id, port = stopped.base_url, stopped.instances[0].account_id, stopped.port
    stopped.stop()
    with dg.instance_for_test() as instance:
        result = _materialize(url, account_id, module_database_url, instance, port)
        assert not result.success
        description, metadata = _failure(result)
        logs = [entry.user_message for entry in instance.all_logs(result.run_id)]
    first = description.splitlines()[0]
    assert "Cin7 Core did not answer" in first and url in first and "instance au" in first
    assert f"cannot connect to {url}me" in first
    assert metadata["url"] == url and metadata["key_variable"] == KEY_VARIABLE
    retries = [line for line in logs if "failed (attempt" in line]
    assert len(retries) == 2 and all(f"GET {url}me" in line for line in retries)  # attempts 1 and 2 of 3
    assert "attempt 1 of 3" in retries[0] and "attempt 2 of 3" in retries[1]


def test_a_throttled_limiter_logs_its_wait(module_database_url, caplog):
    limiter = PostgresRateLimiter(module_database_url, calls=1, window_seconds=2.5, label="au")
    try:
        with caplog.at_level(logging.INFO, logger="gp_pipelines.cin7.limiter"):
            limiter.acquire("test-key-throttled")
            waited = limiter.acquire("test-key-throttled")
    finally:
        limiter.close()
    assert waited >= 2.0
    [line] = [r.getMessage() for r in caplog.records if "rate limit" in r.getMessage()]
    assert line.startswith("waiting 2 s for the au rate limit (1 calls per 2.5 s)")
