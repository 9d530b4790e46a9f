"""The local stack used by `demo`, `dev` and the tests: embedded PostgreSQL, the sandboxes, a Dagster home.

One place starts them, exports the environment the platform reads (sandbox port, application keys,
DAGSTER_HOME) and stops exactly what it started.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from gp_pipelines import database
from gp_pipelines.config import (
    AUTOMATION_SANDBOX_ENV,
    CONFIG_ENV,
    ECB_SANDBOX_URL_ENV,
    SANDBOX_PORT_ENV,
    SANDBOX_RATE_LIMIT_ENV,
    SANDBOX_SEED_ENV,
    PlatformConfig,
    builtin_sandbox_config,
    load_config,
    sandbox_key_variable,
)
from gp_pipelines.sandbox.automation import AutomationSandbox
from gp_pipelines.sandbox.cin7 import SandboxInstance, SandboxOptions, SandboxServer
from gp_pipelines.sandbox.ecb.app import EcbSandboxOptions
from gp_pipelines.sandbox.ecb.server import EcbSandboxServer
from gp_pipelines.sandbox.zoho import (
    ZOHO_SANDBOX_URL_ENV,
    ZohoSandboxOptions,
    ZohoSandboxServer,
    sandbox_zoho_section,
)

DAGSTER_STORAGE_ENV = "GP_DAGSTER_STORAGE_URL"
SANDBOX_DATABASE = "gp_sandbox"


def sandbox_environment(instances: list[SandboxInstance], port: int, seed: int, rate_limit: int = 60) -> dict[str, str]:
    """The variables that point the built-in config at a running sandbox (its port, limit and keys)."""
    env = {SANDBOX_PORT_ENV: str(port), SANDBOX_SEED_ENV: str(seed), SANDBOX_RATE_LIMIT_ENV: str(rate_limit)}
    return env | sandbox_key_environment(instances)


def sandbox_key_environment(instances: list[SandboxInstance]) -> dict[str, str]:
    """The application-key variables the built-in config names, with the sandbox's keys."""
    return {
        sandbox_key_variable(instance.key, index): key
        for instance in instances
        for index, key in enumerate(instance.application_keys, start=1)
    }


def write_sandbox_config(path: Path, server: SandboxServer, seed: int, ecb: EcbSandboxServer | None = None,
                         zoho: ZohoSandboxServer | None = None) -> Path:
    """Write a platform config for the served instances (and the ECB sandbox's feeds and the Zoho Analytics
    sandbox, when given) and `PATH.env` with the keys and secrets it names."""
    config = builtin_sandbox_config(port=server.port, seed=seed, rate_limit=server.options.rate_limit)
    document = {
        "reporting_currency": config.reporting_currency,
        "instances": [instance.model_dump(exclude_none=True) for instance in config.instances],
    }
    if ecb is not None:
        document["fx"] = {"kind": "ecb", "base_url": ecb.base_url}
    if zoho is not None:
        document["zoho_analytics"] = sandbox_zoho_section(zoho.root_url, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# Written by `gp-pipelines sandbox serve --write-config`: the sandbox's instances.\n"
        + yaml.safe_dump(document, sort_keys=False),
        encoding="utf-8",
    )
    env_path = path.with_name(path.name + ".env")
    keys = sandbox_key_environment(server.instances)
    if zoho is not None:
        keys |= zoho.secret_environment()
    env_path.write_text("".join(f"{name}={value}\n" for name, value in keys.items()), encoding="utf-8")
    env_path.chmod(0o600)
    return env_path


def write_dagster_home(home: Path) -> Path:
    """A DAGSTER_HOME whose storage is dagster-postgres on the database named by GP_DAGSTER_STORAGE_URL."""
    home.mkdir(parents=True, exist_ok=True)
    settings = {
        # The URL comes from the environment so the file never pins a socket path or a password.
        "storage": {"postgres": {"postgres_url": {"env": DAGSTER_STORAGE_ENV}}},
        "telemetry": {"enabled": False},
        "run_monitoring": {"enabled": True},
    }
    (home / "dagster.yaml").write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    return home


@dataclass
class LocalStack:
    """What `start_local_stack` brought up; `config` is the platform config now in force."""

    config: PlatformConfig
    database_url: str
    sandbox: SandboxServer | None
    ecb_sandbox: EcbSandboxServer | None
    dagster_home: Path
    started_database: bool
    zoho_sandbox: ZohoSandboxServer | None = None
    automation_sandbox: AutomationSandbox | None = None


def _remove_stale_sandbox_folders(root: Path) -> None:
    """Each stack keeps its partners' files under a folder named by its process id (left for inspection after
    it stops); those of processes that are gone go when the next stack starts."""
    for folder in root.glob("*") if root.is_dir() else []:
        if folder.name.isdigit() and not Path(f"/proc/{folder.name}").exists():
            shutil.rmtree(folder, ignore_errors=True)


def _sandbox_retailer(server: SandboxServer) -> dict[str, str]:
    """The trading settings of the sandbox retailer: it buys as the first instance's first active customer."""
    instance = server.instances[0].key
    customers = sorted(record.row()["Name"] for record in server.sandbox.records(server.sandbox.stores[instance],
                                                                                 "customers")
                       if record.row().get("Status") == "Active")
    carriers = {"Australia Post": "AUPT", "StarTrack": "STRK", "Couriers Please": "CPLE", "Sendle": "SNDL",
                "DHL Express": "DHLC", "NZ Post": "NZPT", "UPS": "UPSN", "FedEx": "FDEG", "USPS": "USPS"}
    return {"instance": instance, "customer": customers[0], "price_tier": "Wholesale", "carrier_scac": carriers}


@contextlib.contextmanager
def local_stack(
    *,
    sandbox_port: int = 0,
    seed: int = 42,
    size: str = "small",
    rate_limit: int = 60,
    sandbox_options: SandboxOptions | None = None,
    zoho_options: ZohoSandboxOptions | None = None,
) -> Iterator[LocalStack]:
    """Start (or reuse) embedded PostgreSQL; start the Cin7, ECB and Zoho Analytics sandboxes unless GP_CONFIG
    names real accounts.

    Exports the environment for this process and its children, restores it on exit, and stops what it
    started: the sandbox always, the embedded server only if this call started it and nobody else uses it.
    """
    previous = dict(os.environ)
    started_database = False
    server: SandboxServer | None = None
    ecb: EcbSandboxServer | None = None
    zoho: ZohoSandboxServer | None = None
    automation: AutomationSandbox | None = None
    try:
        if not os.environ.get(database.DATABASE_URL_ENV):
            started_database = database.ensure_embedded_server().started_here
        use_sandbox = not os.environ.get(CONFIG_ENV)
        if use_sandbox and not os.environ.get(database.DATABASE_URL_ENV):
            # The sandbox world is generated anew at every start, so its cache starts anew too: a cache that
            # remembered yesterday's simulated trading would disagree with today's sandbox.
            server_url = database.server_url()
            database.drop_database(server_url, SANDBOX_DATABASE)
            os.environ[database.DATABASE_URL_ENV] = database.ensure_database(server_url, SANDBOX_DATABASE)
        database_url = database.database_url()
        os.environ[DAGSTER_STORAGE_ENV] = database.dagster_storage_url()
        home = write_dagster_home(database.project_home() / "dagster_home")
        os.environ["DAGSTER_HOME"] = str(home)

        if use_sandbox:
            options = sandbox_options or SandboxOptions(seed=seed, size=size, rate_limit=rate_limit)
            server = SandboxServer(options, port=sandbox_port).start()
            os.environ.update(sandbox_environment(server.instances, server.port, options.seed, options.rate_limit))
            ecb = EcbSandboxServer(EcbSandboxOptions(seed=options.seed)).start()
            os.environ[ECB_SANDBOX_URL_ENV] = ecb.base_url
            # Same seed as the Cin7 sandbox: the built-in config derives the Zoho org and workspace ids from it.
            zoho_settings = dataclasses.replace(zoho_options or ZohoSandboxOptions(), seed=options.seed)
            zoho = ZohoSandboxServer(zoho_settings).start()
            os.environ[ZOHO_SANDBOX_URL_ENV] = zoho.root_url
            os.environ.update(zoho.secret_environment())
            # The 3PL warehouses (behind an SFTP server), the Shopify store and the mail/webhook receivers.
            automation_root = database.project_home() / "sandbox-automation"
            _remove_stale_sandbox_folders(automation_root)
            automation = AutomationSandbox(automation_root / str(os.getpid()), seed=options.seed,
                                           retailer=_sandbox_retailer(server)).start()
            os.environ.update(automation.environment())
            os.environ[AUTOMATION_SANDBOX_ENV] = json.dumps(automation.config_sections())
        config = load_config()
        missing = config.missing_key_variables()
        if missing:
            raise SystemExit(
                f"{config.source}: these environment variables name application keys but are not set: "
                + ", ".join(missing)
            )
        yield LocalStack(config, database_url, server, ecb, home, started_database, zoho, automation)
    finally:
        for stand_in in (server, ecb, zoho, automation):
            if stand_in is not None:
                stand_in.stop()
        os.environ.clear()
        os.environ.update(previous)
        if started_database:
            database.stop_embedded_server()
