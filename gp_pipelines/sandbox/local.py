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
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from gp_pipelines import database, local_state
from gp_pipelines.config import (
    AUTOMATION_SANDBOX_ENV,
    ECB_SANDBOX_URL_ENV,
    SANDBOX_PORT_ENV,
    SANDBOX_RATE_LIMIT_ENV,
    SANDBOX_SEED_ENV,
    ConfigError,
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
from gp_pipelines.schema import migrate as schema

DAGSTER_STORAGE_ENV = "GP_DAGSTER_STORAGE_URL"


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
    # What this stack exported (sandbox ports, keys, DAGSTER_HOME ...): `dev` writes it to .gp/dev.env.
    environment: dict[str, str] = dataclasses.field(default_factory=dict)


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


class StackError(ConfigError):
    """The local stack cannot start as asked (a port taken, a stack already running); one line says why."""


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def reset_sandbox_state(state: local_state.LocalState, server_url: str, *, everything: bool = False) -> list[str]:
    """Drop the sandbox mode's databases and Dagster home together (never one without the other); with
    `everything`, also the partner files kept from earlier sessions. Returns what was cleared."""
    cleared = []
    for name in (state.database, state.dagster_database):
        if database.database_exists(server_url, name):
            database.drop_database(server_url, name)
            cleared.append(f"database {name}")
    schema.forget()  # this process may have met the dropped database: its schema guard must look again
    if state.dagster_home.exists():
        shutil.rmtree(state.dagster_home)
        cleared.append(f"Dagster home {state.dagster_home}")
    kept_files = state.root / "sandbox-automation"
    if everything and kept_files.exists():
        shutil.rmtree(kept_files, ignore_errors=True)
        cleared.append(f"partner files {kept_files}")
    state.session_file.unlink(missing_ok=True)
    return cleared


def _upgrade(database_url: str, say) -> None:
    """`gp-pipelines db upgrade` as every start runs it: a kept (config-mode) database is migrated, keeping its
    data; a new one is created at the current revision."""
    before, after = schema.upgrade(database_url)
    if before != after:
        name = urlsplit(database_url).path.lstrip("/")
        say(f"database {name}: " + (f"upgraded from revision {before} to {after}" if before
                                     else f"brought to revision {after} (it had none: new, or made before migrations)"))


@contextlib.contextmanager
def local_stack(
    *,
    command: str = "stack",
    sandbox_port: int = 0,
    seed: int = 42,
    size: str = "small",
    rate_limit: int = 60,
    sandbox_options: SandboxOptions | None = None,
    zoho_options: ZohoSandboxOptions | None = None,
    dagster_home: Path | None = None,
    reserve_ports: tuple[tuple[int, str], ...] = (),
    reset_everything: bool = False,
    say=print,
) -> Iterator[LocalStack]:
    """Start (or reuse) embedded PostgreSQL; start the Cin7, ECB and Zoho Analytics sandboxes unless GP_CONFIG
    names real accounts.

    In sandbox mode on the embedded server this stack owns the sandbox state (local_state.py): it takes the
    stack lock (StackRunning when another stack holds it), binds every port (the sandboxes', and those in
    `reserve_ports` are checked free) and only then resets the sandbox database and Dagster home together:
    the sandbox world is new at every start, so its state is too. With GP_DATABASE_URL set (tests, production
    databases) nothing is dropped. Exports the environment for this process and its children, restores it on
    exit, and stops what it started.
    """
    state = local_state.current()
    owns_state = not os.environ.get(database.DATABASE_URL_ENV)
    with contextlib.ExitStack() as held:
        if owns_state:
            held.enter_context(local_state.hold_stack_lock(state, command))
        yield held.enter_context(_started_stack(
            state, owns_state, command=command, sandbox_port=sandbox_port, seed=seed, size=size,
            rate_limit=rate_limit, sandbox_options=sandbox_options, zoho_options=zoho_options,
            dagster_home=dagster_home, reserve_ports=reserve_ports, reset_everything=reset_everything, say=say))


@contextlib.contextmanager
def _started_stack(state: local_state.LocalState, owns_state: bool, *, command: str, sandbox_port: int, seed: int,
                   size: str, rate_limit: int, sandbox_options: SandboxOptions | None,
                   zoho_options: ZohoSandboxOptions | None, dagster_home: Path | None,
                   reserve_ports: tuple[tuple[int, str], ...], reset_everything: bool, say) -> Iterator[LocalStack]:
    previous = dict(os.environ)
    started_database = False
    server: SandboxServer | None = None
    ecb: EcbSandboxServer | None = None
    zoho: ZohoSandboxServer | None = None
    automation: AutomationSandbox | None = None
    use_sandbox = state.mode == local_state.SANDBOX_MODE
    try:
        if not os.environ.get(database.DATABASE_URL_ENV):
            started_database = database.ensure_embedded_server().started_here
        if use_sandbox:
            options = sandbox_options or SandboxOptions(seed=seed, size=size, rate_limit=rate_limit)
            server = SandboxServer(options, port=sandbox_port).start()
            ecb = EcbSandboxServer(EcbSandboxOptions(seed=options.seed)).start()
            # Same seed as the Cin7 sandbox: the built-in config derives the Zoho org and workspace ids from it.
            zoho_settings = dataclasses.replace(zoho_options or ZohoSandboxOptions(), seed=options.seed)
            zoho = ZohoSandboxServer(zoho_settings).start()
        for port, what in reserve_ports:
            if not port_is_free(port):
                raise StackError(f"port {port} for the {what} on 127.0.0.1 is taken (another gp-pipelines dev?): "
                                 "stop what uses it or choose another port; nothing was reset")
        if use_sandbox and owns_state:
            # Every port is ours now: only here may the previous session's state go.
            kept = state.kept_session()
            cleared = reset_sandbox_state(state, database.server_url(), everything=reset_everything)
            origin = (f" of the previous session ({kept.get('command', '?')}, {kept.get('started_at', '?')})"
                      if kept else "")
            say(f"Fresh start (sandbox mode): a new sandbox world, so database {state.database} and Dagster home "
                f"{state.dagster_home} start empty too"
                + (f"; cleared the state{origin}: {', '.join(cleared)}" if cleared else ""))
            local_state.write_session_file(state, command, seed=options.seed, size=options.size)
        database_url = database.database_url()
        os.environ[database.DATABASE_URL_ENV] = database_url
        _upgrade(database_url, say)
        os.environ[DAGSTER_STORAGE_ENV] = database.dagster_storage_url()
        home = write_dagster_home(dagster_home or state.dagster_home)
        os.environ["DAGSTER_HOME"] = str(home)

        if use_sandbox:
            os.environ.update(sandbox_environment(server.instances, server.port, options.seed, options.rate_limit))
            os.environ[ECB_SANDBOX_URL_ENV] = ecb.base_url
            os.environ[ZOHO_SANDBOX_URL_ENV] = zoho.root_url
            os.environ.update(zoho.secret_environment())
            # The 3PL warehouses (behind an SFTP server), the Shopify store and the mail/webhook receivers.
            automation_root = state.root / "sandbox-automation"
            _remove_stale_sandbox_folders(automation_root)
            automation = AutomationSandbox(automation_root / str(os.getpid()), seed=options.seed,
                                           retailer=_sandbox_retailer(server)).start()
            os.environ.update(automation.environment())
            os.environ[AUTOMATION_SANDBOX_ENV] = json.dumps(automation.config_sections())
        config = load_config()
        missing = config.missing_key_variables()
        if missing:
            raise StackError(
                f"{config.source}: these environment variables name application keys but are not set: "
                + ", ".join(missing) + "; set them (or unset GP_CONFIG for the sandbox)"
            )
        exported = {name: value for name, value in os.environ.items() if previous.get(name) != value}
        yield LocalStack(config, database_url, server, ecb, home, started_database, zoho, automation, exported)
    finally:
        for stand_in in (server, ecb, zoho, automation):
            if stand_in is not None:
                stand_in.stop()
        os.environ.clear()
        os.environ.update(previous)
        if started_database:
            database.stop_embedded_server()
