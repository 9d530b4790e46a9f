"""The production deployment files in deploy/, checked offline: no network, no Docker, no cluster.

`deploy/dagster.yaml` goes through Dagster's own instance loader (`dagster_instance_config`, the function
`DagsterInstance` uses, with `dagster_instance_config_schema()`), then through the schemas of the classes it
names (the queued run coordinator, dagster-postgres storage). The official chart's JSON schema is not available
offline, so the Helm values are checked structurally, and the instance sections the chart renders from them are
rebuilt here and validated with Dagster's schema as well. The Dockerfile is checked line by line.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster
import pytest
import yaml
from dagster._config import process_config, resolve_to_config_type
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import ConcurrencyConfig, PoolGranularity, dagster_instance_config
from dagster._core.instance.ref import InstanceRef
from dagster._core.launcher import DefaultRunLauncher
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._core.storage.dagster_run import DagsterRun
from dagster._utils.tags import TagConcurrencyLimitsCounter
from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.utils import pg_url_from_config
from sqlalchemy.engine import make_url

from gp_pipelines import database
from gp_pipelines.cin7.limiter import PostgresRateLimiter
from gp_pipelines.config import CONFIG_ENV

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DAGSTER_YAML = DEPLOY / "dagster.yaml"
VALUES_YAML = DEPLOY / "helm" / "values.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
DEPLOY_README = DEPLOY / "README.md"
DOCKERIGNORE = ROOT / ".dockerignore"

PER_INSTANCE_LIMIT = {"key": "gp/instance", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
# The chart's default `dagsterHome`, which it sets as DAGSTER_HOME in every pod it starts.
CHART_DAGSTER_HOME = "/opt/dagster/dagster_home"
PG_ENVIRONMENT = {
    "DAGSTER_PG_HOST": "dagster-db.internal",
    "DAGSTER_PG_PORT": "6432",
    "DAGSTER_PG_DB": "dagster",
    "DAGSTER_PG_USERNAME": "dagster",
    "DAGSTER_PG_PASSWORD": "p@ss:wo%rd",  # characters that must be escaped in a URL
}


def _instance_config(config_dir: Path) -> Mapping[str, Any]:
    """The validated instance config exactly as `DagsterInstance` loads `config_dir/dagster.yaml`."""
    config, custom_class = dagster_instance_config(str(config_dir))
    assert custom_class is None
    return config


def _write_instance(tmp_path: Path, document: Mapping[str, Any]) -> Path:
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(dict(document), sort_keys=False), encoding="utf-8")
    return tmp_path


def _raw_dagster_yaml() -> dict[str, Any]:
    return yaml.safe_load(DAGSTER_YAML.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def instance_config() -> Mapping[str, Any]:
    return _instance_config(DEPLOY)


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return yaml.safe_load(VALUES_YAML.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def instance_ref(tmp_path_factory) -> InstanceRef:
    # base_dir only names defaults (local artifacts); the config is read from deploy/.
    return InstanceRef.from_dir(str(tmp_path_factory.mktemp("dagster_home")), config_dir=str(DEPLOY))


# ------------------------------------------------------------------------------------------- deploy/dagster.yaml


def test_dagster_yaml_validates_against_dagsters_instance_schema(instance_config):
    expected = {"storage", "run_coordinator", "concurrency", "run_monitoring", "retention", "telemetry"}
    assert expected <= set(instance_config)
    assert "postgres" in instance_config["storage"]
    assert instance_config["telemetry"] == {"enabled": False}
    monitoring = instance_config["run_monitoring"]
    assert monitoring["enabled"] is True
    assert monitoring["start_timeout_seconds"] > 0 and monitoring["cancel_timeout_seconds"] > 0
    assert 86400 <= monitoring["max_runtime_seconds"] <= 3 * 86400  # above a day-long first load, yet bounded
    assert set(instance_config["retention"]) == {"schedule", "sensor"}


def test_run_queue_as_the_daemon_computes_it(instance_config, instance_ref):
    # The instance schema only checks run_coordinator's shape; building the coordinator checks its own config.
    coordinator = instance_ref.run_coordinator_data.rehydrate(QueuedRunCoordinator)
    assert coordinator.dequeue_use_threads is True
    effective = ConcurrencyConfig.from_concurrency_settings(
        instance_config["concurrency"], coordinator.get_run_queue_config()
    )
    queue = effective.run_queue_config
    assert queue.max_concurrent_runs == instance_config["concurrency"]["runs"]["max_concurrent_runs"] > 1
    assert PER_INSTANCE_LIMIT in queue.tag_concurrency_limits
    assert {limit["key"] for limit in queue.tag_concurrency_limits} >= {"gp/instance", "gp/automation"}
    assert effective.pool_config.pool_granularity == PoolGranularity.RUN
    assert effective.pool_config.default_pool_limit >= 1


def test_tag_limits_keep_one_run_per_instance_and_cap_automation(instance_config):
    limits = instance_config["concurrency"]["runs"]["tag_concurrency_limits"]

    def run(tags: dict[str, str]) -> DagsterRun:
        return DagsterRun(job_name="any", tags=tags)

    syncing_au = run({"gp/instance": "au"})
    counter = TagConcurrencyLimitsCounter(limits, [syncing_au])
    assert counter.is_blocked(run({"gp/instance": "au"}))
    assert not counter.is_blocked(run({"gp/instance": "nz"}))
    # A UI- or backfill-launched run of the same instance carries it as its partition instead.
    counter = TagConcurrencyLimitsCounter(limits, [run({"dagster/partition": "au"})])
    assert counter.is_blocked(run({"dagster/partition": "au"}))
    assert not counter.is_blocked(run({"dagster/partition": "us"}))

    automation_limit = next(limit["limit"] for limit in limits if limit["key"] == "gp/automation")
    busy = [run({"gp/automation": "routing"}) for _ in range(automation_limit)]
    counter = TagConcurrencyLimitsCounter(limits, busy)
    assert counter.is_blocked(run({"gp/automation": "edi"}))


def test_limited_tags_and_pool_are_the_ones_the_code_uses():
    import dagster as dg

    from gp_pipelines.assets.cache import build_cache_definitions
    from gp_pipelines.assets.partitions import instance_partitions
    from gp_pipelines.config import builtin_sandbox_config
    from gp_pipelines.jobs.automation import AUTOMATION_JOBS
    from gp_pipelines.jobs.cache import build_cache_jobs

    config = builtin_sandbox_config()
    _, schedules = build_cache_jobs(config)
    for schedule in schedules:
        requests = list(schedule(dg.build_schedule_context()))
        assert [request.tags.get("gp/instance") for request in requests] == config.instance_keys
        assert [request.partition_key for request in requests] == config.instance_keys
    assert all("gp/automation" in job.tags for job in AUTOMATION_JOBS)
    # The automation jobs end well before their item's lease runs out, so a live run is never offered twice.
    from gp_pipelines.config import AutomationConfig

    lease_seconds = AutomationConfig().run_lease_minutes * 60
    assert all(0 < int(job.tags["dagster/max_runtime"]) < lease_seconds for job in AUTOMATION_JOBS)
    cache_assets, _ = build_cache_definitions(config, instance_partitions(config))
    assert {asset.op.pool for asset in cache_assets} == {"cin7_api"}


@pytest.mark.parametrize(
    ("path", "wrong"),
    [
        (("concurrency", "runs", "max_concurrent_runs"), "max_concurent_runs"),
        (("run_monitoring",), "run_monitorin"),
        (("storage", "postgres", "postgres_db", "hostname"), "host_name"),
        (("retention", "sensor", "purge_after_days"), "purge_after_day"),
    ],
)
def test_a_misspelt_key_fails_validation_naming_the_key(tmp_path, path, wrong):
    document = _raw_dagster_yaml()
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    parent[wrong] = parent.pop(path[-1])
    with pytest.raises(DagsterInvalidConfigError) as failure:
        _instance_config(_write_instance(tmp_path, document))
    assert f'"{wrong}"' in str(failure.value)


def test_a_misspelt_run_coordinator_option_fails_when_the_coordinator_is_built(tmp_path):
    # run_coordinator.config is free-form in the instance schema: only the coordinator's own schema sees it.
    document = _raw_dagster_yaml()
    document["run_coordinator"]["config"]["dequeue_use_thread"] = True
    home = _write_instance(tmp_path, document)
    _instance_config(home)
    ref = InstanceRef.from_dir(str(tmp_path), config_dir=str(home))
    with pytest.raises(DagsterInvalidConfigError) as failure:
        ref.run_coordinator_data.rehydrate(QueuedRunCoordinator)
    assert '"dequeue_use_thread"' in str(failure.value)


def test_run_limits_cannot_also_be_set_on_the_run_coordinator(tmp_path):
    # Why the limits sit under `concurrency:`: Dagster 1.13 refuses them in both places.
    document = _raw_dagster_yaml()
    document["run_coordinator"]["config"]["max_concurrent_runs"] = 5
    with pytest.raises(DagsterInvalidConfigError, match="incompatible with the `concurrency > runs` config"):
        _instance_config(_write_instance(tmp_path, document))


def test_storage_resolves_from_the_environment_to_a_psycopg2_url(instance_ref, monkeypatch):
    for name, value in PG_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    storage = instance_ref.storage_data
    assert (storage.module_name, storage.class_name) == ("dagster_postgres", "DagsterPostgresStorage")
    # The first step of `storage.rehydrate()`, which would then connect.
    resolved = process_config(resolve_to_config_type(DagsterPostgresStorage.config_type()), storage.config_dict)
    assert resolved.success, resolved.errors
    url = pg_url_from_config(resolved.value)
    assert url.startswith("postgresql+psycopg2://")
    parsed = make_url(url)
    assert parsed.get_driver_name() == "psycopg2"
    assert (parsed.host, parsed.port, parsed.database) == ("dagster-db.internal", 6432, "dagster")
    assert (parsed.username, parsed.password) == ("dagster", PG_ENVIRONMENT["DAGSTER_PG_PASSWORD"])


def test_storage_fails_naming_a_missing_variable(instance_ref, monkeypatch):
    for name, value in PG_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DAGSTER_PG_PASSWORD")
    storage = instance_ref.storage_data
    resolved = process_config(resolve_to_config_type(DagsterPostgresStorage.config_type()), storage.config_dict)
    assert not resolved.success
    assert any('"DAGSTER_PG_PASSWORD"' in error.message for error in resolved.errors)


def test_no_resume_attempts_with_the_default_launcher(instance_config, instance_ref, values):
    # Dagster refuses to start an instance whose launcher cannot resume runs when resume attempts are set.
    assert instance_ref.run_launcher_data.class_name == "DefaultRunLauncher"
    assert DefaultRunLauncher().supports_resume_run is False
    assert instance_config["run_monitoring"]["max_resume_run_attempts"] == 0
    # On Kubernetes the K8sRunLauncher can.
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["dagsterDaemon"]["runMonitoring"]["maxResumeRunAttempts"] > 0


# --------------------------------------------------------------------------------------------- deploy/helm


def test_code_location_is_a_grpc_user_deployment(values):
    user_deployments = values["dagster-user-deployments"]
    assert user_deployments["enabled"] is True and user_deployments["enableSubchart"] is True
    deployment = user_deployments["deployments"][0]
    assert deployment["name"] == "gp-pipelines"
    assert {"repository", "tag", "pullPolicy"} <= set(deployment["image"])
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "gp_pipelines.definitions"]
    assert "codeServerArgs" not in deployment  # the chart takes one or the other
    assert deployment["port"] == 3030
    # Run pods inherit the env, Secrets and config volume only with this on.
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}


def test_secrets_and_config_come_from_kubernetes_objects(values):
    deployment = values["dagster-user-deployments"]["deployments"][0]
    # The chart's SecretEnvSource shape: one entry per Secret, every key of which becomes a variable.
    assert deployment["envSecrets"] and all(set(secret) == {"name"} for secret in deployment["envSecrets"])
    config_path = Path(deployment["env"][CONFIG_ENV])
    config_maps = {v["name"] for v in deployment["volumes"] if "configMap" in v}
    mounts = [m for m in deployment["volumeMounts"] if m["name"] in config_maps]
    assert any(config_path.parent == Path(m["mountPath"]) and m.get("readOnly") for m in mounts)
    # Plain env values are written to a ConfigMap by the chart, so they must never be secrets.
    assert set(deployment["env"]) == {CONFIG_ENV}
    assert deployment["podSecurityContext"]["runAsNonRoot"] is True


def test_external_postgres_with_the_password_from_a_secret(values):
    postgres = values["postgresql"]
    assert postgres["enabled"] is False
    assert postgres["postgresqlHost"]
    assert postgres["postgresqlScheme"] == "postgresql+psycopg2"
    assert "postgresqlPassword" not in postgres
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]


def test_run_queue_is_queued_and_its_limits_are_in_one_place(values):
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["enabled"] is True and coordinator["type"] == "QueuedRunCoordinator"
    # With `concurrency.enabled` the chart fails (and Dagster refuses) limits set here as well.
    queued = coordinator["config"]["queuedRunCoordinator"]
    assert not {"maxConcurrentRuns", "tagConcurrencyLimits"} & set(queued)
    assert values["concurrency"]["enabled"] is True
    assert PER_INSTANCE_LIMIT in values["concurrency"]["runs"]["tagConcurrencyLimits"]


def test_dagster_version_of_chart_and_images_is_the_installed_one(values):
    version = dagster.__version__
    assert values["dagsterWebserver"]["image"]["tag"] == version
    assert values["dagsterDaemon"]["image"]["tag"] == version
    header = VALUES_YAML.read_text(encoding="utf-8")
    readme = DEPLOY_README.read_text(encoding="utf-8")
    for text in (header, readme):
        assert set(re.findall(r"dagster/dagster --version (\S+)", text)) == {version}
    assert f"dagster/dagster {version}" in header
    locked = dict(line.split("==") for line in (ROOT / "requirements.lock").read_text().splitlines() if "==" in line)
    assert locked["dagster"] == version


def _chart_instance_sections(values: Mapping[str, Any]) -> dict[str, Any]:
    """The sections of dagster.yaml the chart renders from our values (a transcription of its
    configmap-instance.yaml and helpers/instance/*.tpl for the keys we set, not the chart itself)."""
    daemon = values["dagsterDaemon"]
    queued = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    monitoring = daemon["runMonitoring"]
    postgres = values["postgresql"]
    runs, pools = values["concurrency"]["runs"], values["concurrency"]["pools"]
    postgres_db = {
        "username": postgres["postgresqlUsername"],
        "password": {"env": "DAGSTER_PG_PASSWORD"},
        "hostname": postgres["postgresqlHost"],
        "db_name": postgres["postgresqlDatabase"],
        "port": postgres["service"]["port"],
        "params": postgres.get("postgresqlParams", {}),
        "scheme": postgres["postgresqlScheme"],
    }
    storages = {
        "run_storage": ("run_storage", "PostgresRunStorage"),
        "event_log_storage": ("event_log", "PostgresEventLogStorage"),
        "schedule_storage": ("schedule_storage", "PostgresScheduleStorage"),
    }
    sections: dict[str, Any] = {
        name: {"module": f"dagster_postgres.{module}", "class": cls, "config": {"postgres_db": postgres_db}}
        for name, (module, cls) in storages.items()
    }
    sections |= {
        "run_launcher": {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": {}},
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {"dequeue_use_threads": queued["dequeueUseThreads"],
                       "dequeue_num_workers": queued["dequeueNumWorkers"]},
        },
        "concurrency": {
            "pools": {"default_limit": pools["defaultLimit"], "granularity": pools["granularity"]},
            "runs": {"max_concurrent_runs": runs["maxConcurrentRuns"],
                     "tag_concurrency_limits": copy.deepcopy(runs["tagConcurrencyLimits"])},
        },
        "run_monitoring": {
            "enabled": monitoring["enabled"],
            "start_timeout_seconds": monitoring["startTimeoutSeconds"],
            "cancel_timeout_seconds": monitoring["cancelTimeoutSeconds"],
            "max_resume_run_attempts": monitoring["maxResumeRunAttempts"],
            "poll_interval_seconds": monitoring["pollIntervalSeconds"],
            "free_slots_after_run_end_seconds": monitoring["freeSlotsAfterRunEndSeconds"],
        },
        "sensors": {"use_threads": daemon["sensors"]["useThreads"], "num_workers": daemon["sensors"]["numWorkers"]},
        "schedules": {"use_threads": daemon["schedules"]["useThreads"],
                      "num_workers": daemon["schedules"]["numWorkers"]},
        "telemetry": {"enabled": values["telemetry"]["enabled"]},
        "retention": {
            kind: {"purge_after_days": values["retention"][kind]["purgeAfterDays"]} for kind in ("schedule", "sensor")
        },
    }  # fmt: skip
    assert values["retention"]["enabled"] is True
    return sections


def test_chart_rendered_instance_validates_and_agrees_with_dagster_yaml(tmp_path, values, instance_config):
    rendered = _instance_config(_write_instance(tmp_path, _chart_instance_sections(values)))
    # Kubernetes and the plain deployment run with the same queue, limits, pools, retention and telemetry.
    for section in ("run_coordinator", "concurrency", "retention", "sensors", "schedules", "telemetry"):
        assert rendered[section] == instance_config[section], section
    # Only the resume attempts differ, on purpose (see test_no_resume_attempts_with_the_default_launcher), and the
    # overall max_runtime_seconds, which the Helm values do not carry: there the jobs' dagster/max_runtime tags bound
    # the automation runs (test_limited_tags_and_pool_are_the_ones_the_code_uses).
    kubernetes_monitoring = dict(rendered["run_monitoring"], max_resume_run_attempts=0)
    plain_monitoring = {k: v for k, v in instance_config["run_monitoring"].items() if k != "max_runtime_seconds"}
    assert kubernetes_monitoring == plain_monitoring
    plain_db = instance_config["storage"]["postgres"]["postgres_db"]
    chart_db = rendered["run_storage"]["config"]["postgres_db"]
    assert chart_db["scheme"] == plain_db["scheme"] == "postgresql+psycopg2"
    assert chart_db["password"] == plain_db["password"] == {"env": "DAGSTER_PG_PASSWORD"}


def test_the_code_location_upgrades_the_schema_before_it_starts(values):
    deployment = values["dagster-user-deployments"]["deployments"][0]
    (init,) = deployment["initContainers"]
    assert init["command"] == ["gp-pipelines", "db", "upgrade"]
    # The same image (the tag is set with the deployment's at install time) and the same Secret (GP_DATABASE_URL).
    assert init["image"].rsplit(":", 1)[0] == deployment["image"]["repository"]
    assert init["envFrom"] == [{"secretRef": {"name": secret["name"]}} for secret in deployment["envSecrets"]]
    assert init["securityContext"]["runAsNonRoot"] is True


def test_helm_values_hold_no_secret(values):
    def walk(node: Any, path: str = "") -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if re.search(r"password|secret|token|apikey|api_key", str(key), re.IGNORECASE):
                    # Only names of Secrets and booleans about them, or Kubernetes' references to one, never a value.
                    reference = key in ("secretRef", "secretKeyRef") and set(value) <= {"name", "key", "optional"}
                    assert reference or key.endswith(("SecretName", "Secret", "Secrets")), f"{path}.{key}"
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, f"{path}[{index}]")

    walk(values)


# ------------------------------------------------------------------------------------------- deploy/Dockerfile


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def _exec_form(arguments: str) -> list[str]:
    assert arguments.startswith("["), f"use the JSON (exec) form, not {arguments!r}"
    return json.loads(arguments)


def test_dockerfile_installs_the_lock_then_the_package_without_deps():
    instructions = _dockerfile_instructions()
    assert [args for keyword, args in instructions if keyword == "FROM"] == ["python:3.11-slim"]
    runs = [shlex.split(args) for keyword, args in instructions if keyword == "RUN"]
    lock_installs = [
        i
        for i, words in enumerate(runs)
        if "-r" in words and words[words.index("-r") + 1].endswith("requirements.lock")
    ]
    package_installs = [i for i, words in enumerate(runs) if "--no-deps" in words and "install" in words]
    assert lock_installs and package_installs and lock_installs[0] < package_installs[0]
    package_words = runs[package_installs[0]]
    assert not any("requirements" in word for word in package_words[package_words.index("--no-deps") :])
    # The copy of the lock comes before the code, so a code change keeps the dependency layer.
    copies = [args for keyword, args in instructions if keyword == "COPY"]
    assert copies[0].split()[0] == "requirements.lock"
    assert any(args.split()[0] == "gp_pipelines" for args in copies)


def test_dockerfile_pins_dagster_k8s_to_the_locked_integration_release():
    locked = dict(line.split("==") for line in (ROOT / "requirements.lock").read_text().splitlines() if "==" in line)
    text = " ".join(args for keyword, args in _dockerfile_instructions() if keyword == "RUN")
    assert re.findall(r"dagster-k8s==(\S+)", text) == [locked["dagster-postgres"]]
    assert "--constraint" in text


def test_dockerfile_runs_the_code_location_as_a_non_root_user():
    instructions = _dockerfile_instructions()
    keywords = [keyword for keyword, _ in instructions]
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users, "no USER: the image would run as root"
    user = users[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0, "a numeric non-root uid lets Kubernetes check runAsNonRoot"
    assert max(i for i, k in enumerate(keywords) if k == "RUN") < max(i for i, k in enumerate(keywords) if k == "USER")
    assert ("EXPOSE", "3030") in instructions
    # The chart passes `dagster api grpc ...` as args: an ENTRYPOINT would swallow them.
    assert "ENTRYPOINT" not in keywords
    command = _exec_form([args for keyword, args in instructions if keyword == "CMD"][-1])
    assert command[:3] == ["dagster", "code-server", "start"] or command[:3] == ["dagster", "api", "grpc"]
    assert command[command.index("-m") + 1] == "gp_pipelines.definitions"
    assert command[command.index("-p") + 1] == "3030"
    assert command[command.index("-h") + 1] == "0.0.0.0"
    env_text = " ".join(args for keyword, args in instructions if keyword == "ENV")
    assert f"DAGSTER_HOME={CHART_DAGSTER_HOME}" in env_text


def test_build_context_holds_only_what_the_image_copies():
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "start from an empty context and re-include what is copied"
    included = {pattern[1:] for pattern in patterns if pattern.startswith("!")}
    copied = set()
    for keyword, args in _dockerfile_instructions():
        if keyword == "COPY":
            copied |= set(args.split()[:-1])
    assert copied <= included
    assert not included & {".venv", ".gp", ".git", "tests", ".env"}


# ------------------------------------------------------------------------------------------- deploy/README.md


def test_readme_names_what_the_files_and_the_code_use(values):
    readme = DEPLOY_README.read_text(encoding="utf-8")
    deployment = values["dagster-user-deployments"]["deployments"][0]
    storage_variables = {
        field["env"] for field in _raw_dagster_yaml()["storage"]["postgres"]["postgres_db"].values()
        if isinstance(field, dict)
    }  # fmt: skip
    names = {
        database.DATABASE_URL_ENV,
        CONFIG_ENV,
        *storage_variables,
        values["global"]["postgresqlSecretName"],
        *(secret["name"] for secret in deployment["envSecrets"]),
        *(volume["configMap"]["name"] for volume in deployment["volumes"] if "configMap" in volume),
        "gp/instance",
        "gp/automation",
        "cin7_api",
        PostgresRateLimiter.TABLE,
    }
    assert {name for name in names if name not in readme} == set()
