"""`gp-pipelines demo`, `dev`, `db` and `sandbox serve`: the local stack and the platform database."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gp_pipelines import database, local_state
from gp_pipelines.cli_support import non_negative_int, port_number, positive_int


def _cmd_db(args: argparse.Namespace) -> int:
    if args.action == "url":
        print(database.libpq_url(database.database_url()))
    elif args.action == "start":
        server = database.ensure_embedded_server()
        database.database_url()
        print(("started" if server.started_here else "already running") + f": {server.pgdata}")
    elif args.action == "upgrade":
        from gp_pipelines.schema import upgrade

        url = database.database_url()
        before, after = upgrade(url)
        where = database.redact(database.libpq_url(url))
        origin = f"revision {before}" if before else "no revision (new, or made before migrations)"
        print(f"{where}: already at revision {after}" if before == after else
              f"{where}: upgraded from {origin} to revision {after}")
    elif args.action == "stop":
        stopped = database.stop_embedded_server(force=args.force)
        print("stopped" if stopped else "not stopped (not running, or in use: --force stops it anyway)")
    return 0


def _sandbox_options(args: argparse.Namespace):
    from gp_pipelines.sandbox.cin7 import SandboxOptions

    return SandboxOptions(
        seed=args.seed,
        size=args.size,
        rate_limit=args.rate_limit,
        throttle_mode=args.throttle_mode,
        faults=args.faults or "",
    )


def _cmd_sandbox_serve(args: argparse.Namespace) -> int:
    from gp_pipelines.sandbox.cin7 import SandboxServer
    from gp_pipelines.sandbox.ecb.app import EcbSandboxOptions
    from gp_pipelines.sandbox.ecb.server import EcbSandboxServer
    from gp_pipelines.sandbox.local import write_sandbox_config
    from gp_pipelines.sandbox.zoho import ZohoSandboxOptions, ZohoSandboxServer

    server = SandboxServer(_sandbox_options(args), port=args.port).start()
    ecb = EcbSandboxServer(EcbSandboxOptions(seed=args.seed), port=args.ecb_port).start()
    zoho = ZohoSandboxServer(ZohoSandboxOptions(seed=args.seed), port=args.zoho_port).start()
    try:
        for instance in server.instances:
            line = {
                "instance": instance.key,
                "base_url": server.base_url,
                "account_id": instance.account_id,
                "application_key": instance.application_keys[0],
            }
            print(json.dumps(line), flush=True)
        if args.write_config:
            env_path = write_sandbox_config(Path(args.write_config), server, args.seed, ecb, zoho)
            print(
                f"# config written to {args.write_config}; keys in {env_path}. Use it with:\n"
                f"#   set -a; . {env_path}; set +a; GP_CONFIG={args.write_config} gp-pipelines ...",
                file=sys.stderr,
                flush=True,
            )
        print(
            f"# Cin7 Core sandbox on {server.root_url}, ECB rates on {ecb.base_url}, Zoho Analytics on "
            f"{zoho.root_url} (Ctrl-C stops)",
            file=sys.stderr,
            flush=True,
        )
        _wait_for_interrupt()
    finally:
        server.stop()
        ecb.stop()
        zoho.stop()
    return 0


def _wait_for_interrupt() -> None:
    _interrupt_on(signal.SIGINT, signal.SIGTERM)
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass


def _cmd_demo(args: argparse.Namespace) -> int:
    from gp_pipelines.demo import run_demo

    return run_demo(size=args.size, seed=args.seed)


def _cmd_dev(args: argparse.Namespace) -> int:
    from gp_pipelines.sandbox.local import StackError, local_stack

    state = local_state.current()
    if args.reset and state.mode != local_state.SANDBOX_MODE:
        raise StackError(f"--reset clears only the sandbox mode's state, and {local_state.CONFIG_ENV} is set: the "
                         f"cache of real accounts in database {state.database} is never reset by a start")
    if args.inspect:
        return _inspect(args, state)
    try:
        with local_stack(command="dev", sandbox_port=args.sandbox_port, seed=args.seed, size=args.size,
                         reserve_ports=((args.port, "Dagster UI"),), reset_everything=args.reset) as stack:
            ui_url = f"http://127.0.0.1:{args.port}"
            if stack.sandbox is not None:
                print(f"Cin7 Core sandbox: {stack.sandbox.base_url}")
            print(f"PostgreSQL: {database.libpq_url(stack.database_url)}  (psql \"$(gp-pipelines db url)\" "
                  "after sourcing the env file)")
            print(f"DAGSTER_HOME: {stack.dagster_home}")
            env_file = local_state.write_env_file(state, stack.environment)
            print(f"Other terminals reach this stack with: set -a; . {env_file}; set +a")
            local_state.write_stack_file(state, "dev", ui_url=ui_url, env_file=str(env_file),
                                         sandbox_url=stack.sandbox.base_url if stack.sandbox else None)
            try:
                return _run_dagster_dev(args.port, ui_url)
            finally:
                env_file.unlink(missing_ok=True)
    except local_state.StackRunning as running:
        info = running.info
        if info.get("command") != "dev":
            raise StackError(f"{running}: wait for it to finish (or stop it), then start dev again") from None
        print(f"{running}: attaching to it, nothing started or reset.\n"
              f"  Dagster UI: {info.get('ui_url', '?')}\n"
              f"  its sandboxes from this terminal: set -a; . {info.get('env_file', state.env_file)}; set +a")
        return 0


def _inspect(args: argparse.Namespace, state: local_state.LocalState) -> int:
    """The Dagster UI over the state a finished session kept (the demo's runs), with no sandbox behind it."""
    from gp_pipelines.sandbox.local import DAGSTER_STORAGE_ENV, StackError, port_is_free, write_dagster_home

    kept = state.kept_session()
    if kept is None and state.mode == local_state.SANDBOX_MODE:
        raise StackError(f"no kept sandbox state to inspect under {state.root}: run `make demo` or "
                         "`gp-pipelines dev` first")
    with local_state.hold_stack_lock(state, "dev --inspect"):
        if not port_is_free(args.port):
            raise StackError(f"port {args.port} for the Dagster UI on 127.0.0.1 is taken: stop what uses it or "
                             "pass --port")
        os.environ[database.DATABASE_URL_ENV] = database.database_url()
        os.environ[DAGSTER_STORAGE_ENV] = database.dagster_storage_url()
        os.environ["DAGSTER_HOME"] = str(write_dagster_home(state.dagster_home))
        ui_url = f"http://127.0.0.1:{args.port}"
        if kept:
            print(f"Inspecting the state kept from {kept.get('command', '?')} ({kept.get('started_at', '?')}); its "
                  "sandbox world is gone, so runs started here fail to reach it.")
        local_state.write_stack_file(state, "dev --inspect", ui_url=ui_url)
        return _run_dagster_dev(args.port, ui_url)


# How long the Dagster UI may take to answer after `dagster dev` starts before dev gives up on it.
UI_START_SECONDS = 180.0


def _run_dagster_dev(port: int, ui_url: str) -> int:
    project_root = database.project_home().parent
    workspace = project_root / "workspace.yaml"
    target = ["-w", str(workspace)] if workspace.exists() else ["-m", "gp_pipelines.definitions"]
    command = ["dagster", "dev", *target, "-h", "127.0.0.1", "-p", str(port)]
    bin_dir = Path(sys.executable).parent
    if (bin_dir / "dagster").exists():
        command[0] = str(bin_dir / "dagster")
    print(f"Dagster UI: {ui_url}  (Ctrl-C stops everything started here)", flush=True)
    # Started from a script or a background shell, SIGINT may arrive ignored; dagster dev maps SIGTERM to
    # the SIGINT handler, so the child gets the default back or it could never be stopped.
    process = subprocess.Popen(
        command,
        cwd=project_root,
        env=dict(os.environ),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    _interrupt_on(signal.SIGINT, signal.SIGTERM)
    try:
        if not _wait_for_ui(process, ui_url):
            _stop_child(process)
            print(f"error: the Dagster UI did not answer on {ui_url} within {UI_START_SECONDS:.0f} s (its output "
                  "is above): stopped dev and the sandboxes", file=sys.stderr)
            return 2
        return process.wait()
    except KeyboardInterrupt:
        print("stopping the Dagster UI, the sandbox and what else dev started ...", flush=True)
        _stop_child(process)
        return 0


def _wait_for_ui(process: subprocess.Popen, ui_url: str) -> bool:
    """True once the webserver answers; False when dagster dev exits or never serves (a port taken in the
    meantime leaves its daemon running forever otherwise)."""
    import httpx

    deadline = time.monotonic() + UI_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return True  # it exited by itself: its exit code is the answer
        try:
            if httpx.get(f"{ui_url}/server_info", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(1)
    return False


def _interrupt_on(*signals: int) -> None:
    def _raise(signum, frame):
        raise KeyboardInterrupt

    for signum in signals:
        signal.signal(signum, _raise)


def _stop_child(process: subprocess.Popen) -> None:
    """Ask politely (SIGINT lets dagster dev stop its webserver, daemon and code servers), then insist."""
    steps = ((lambda: process.send_signal(signal.SIGINT), 30), (process.terminate, 10), (process.kill, 10))
    for send, grace in steps:
        if process.poll() is not None:
            return
        send()
        try:
            process.wait(timeout=grace)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            continue


def register(commands) -> None:
    demo = commands.add_parser("demo", help="run the main job for every instance against the sandbox")
    demo.add_argument("--size", default="small", choices=["small", "medium", "large"])
    demo.add_argument("--seed", type=non_negative_int, default=42)
    demo.set_defaults(func=_cmd_demo)

    dev = commands.add_parser("dev", help="embedded PostgreSQL, the sandbox and the Dagster UI")
    dev.add_argument("--port", type=port_number, default=3000, help="Dagster UI port (default 3000)")
    dev.add_argument("--sandbox-port", type=port_number, default=8765)
    dev.add_argument("--size", default="small", choices=["small", "medium", "large"])
    dev.add_argument("--seed", type=non_negative_int, default=42)
    dev.add_argument("--reset", action="store_true",
                     help="sandbox mode: also clear the partner files kept from earlier sessions (every start "
                     "is a new sandbox world with empty state anyway)")
    dev.add_argument("--inspect", action="store_true",
                     help="only the Dagster UI over the state the last session kept (e.g. the demo's runs)")
    dev.set_defaults(func=_cmd_dev)

    db = commands.add_parser("db", help="the platform database")
    db.add_argument("action", choices=["url", "upgrade", "start", "stop"],
                    help="url: the current mode's database; upgrade: migrate it to this release (keeps the data)")
    db.add_argument("--force", action="store_true", help="stop even while other sessions are connected")
    db.set_defaults(func=_cmd_db)

    sandbox = commands.add_parser("sandbox", help="local stand-ins for the outside systems")
    sandbox_commands = sandbox.add_subparsers(dest="sandbox_command", required=True)
    serve = sandbox_commands.add_parser("serve", help="serve the Cin7 Core sandbox until Ctrl-C")
    serve.add_argument("--port", type=port_number, default=8765)
    serve.add_argument("--ecb-port", type=port_number, default=8766, help="port of the ECB rates sandbox")
    serve.add_argument("--zoho-port", type=port_number, default=0,
                       help="port of the Zoho Analytics sandbox (0: a free one)")
    serve.add_argument("--seed", type=non_negative_int, default=42)
    serve.add_argument("--size", default="small", choices=["small", "medium", "large"])
    serve.add_argument("--rate-limit", type=positive_int, default=60, help="calls per 60 s per application key")
    serve.add_argument("--throttle-mode", default="429", choices=["429", "503", "400"])
    serve.add_argument("--faults", default="", help="seeded fault schedule, e.g. throttle=0.05,error500=0.02")
    serve.add_argument("--write-config", metavar="PATH", help="also write a platform config and PATH.env")
    serve.set_defaults(func=_cmd_sandbox_serve)

