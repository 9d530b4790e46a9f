"""The deployed shape on one machine, for the UI tests: `dagster-webserver` and `dagster-daemon run` as real
processes, on the embedded PostgreSQL and the sandboxes that `local_stack()` starts.

Each stack gets databases of its own on the (shared) embedded server and a DAGSTER_HOME of its own under
`.gp/ui-tests/`, so it never touches the developer's `gp-pipelines dev` state or another test session's.
Both processes run in process groups of their own: stopping a group also stops the code servers and run
workers they spawned, and a last sweep ends anything still carrying this stack's DAGSTER_HOME.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from gp_pipelines import database
from gp_pipelines.sandbox.local import LocalStack, local_stack

LOCATION = "gp_pipelines"
REPOSITORY = "__repository__"  # the name Dagster gives the one repository of a Definitions object


class StackError(RuntimeError):
    """The webserver or daemon did not come up (or GraphQL answered an error); the message carries log tails."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log_tail(path: Path, lines: int = 25) -> str:
    if not path.exists():
        return f"({path} not written)"
    return f"--- last lines of {path}:\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class DagsterProcess:
    name: str
    process: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, grace: float = 20) -> None:
        """SIGTERM to the whole group (the process, its code server, its run workers), then SIGKILL."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=grace)
        # The leader may be gone while children of the group linger: the group is ended either way.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


@dataclass
class UiStack:
    """A running webserver (and daemon): its URL, its Dagster home, the local stack under it."""

    port: int
    home: Path
    local: LocalStack
    environment: dict[str, str]
    processes: list[DagsterProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def graphql(self, query: str, variables: dict[str, Any] | None = None, timeout: float = 60) -> dict[str, Any]:
        """POST one query; its `data`, or StackError with the GraphQL errors."""
        response = httpx.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=timeout
        )
        body = response.json()
        if response.status_code != 200 or body.get("errors"):
            raise StackError(f"GraphQL answered {response.status_code}: {body.get('errors') or body}")
        return body["data"]

    def logs(self) -> str:
        return "\n".join(_log_tail(process.log) for process in self.processes)

    def check_alive(self) -> None:
        dead = [p for p in self.processes if not p.alive()]
        if dead:
            raise StackError(
                ", ".join(f"{p.name} exited with {p.process.returncode}" for p in dead) + "\n" + self.logs()
            )


def _executable(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def _start(name: str, command: list[str], stack: UiStack, cwd: Path) -> DagsterProcess:
    log = stack.home / f"{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=stack.environment,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a group of its own, so stop() reaches every process it spawns
        )
    started = DagsterProcess(name, process, log)
    stack.processes.append(started)
    return started


LOCATION_STATUS = """
{ workspaceOrError { __typename ... on Workspace { locationEntries {
    name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


def wait_until_loaded(stack: UiStack, timeout: float = 150) -> None:
    """Wait for `/server_info` and for the code location to finish loading (its load error, if any, raised)."""
    deadline = time.monotonic() + timeout
    while True:
        stack.check_alive()
        try:
            httpx.get(f"{stack.url}/server_info", timeout=2).raise_for_status()
            entries = stack.graphql(LOCATION_STATUS, timeout=10)["workspaceOrError"]["locationEntries"]
            entry = next((e for e in entries if e["name"] == LOCATION), None)
            if entry and entry["loadStatus"] == "LOADED":
                error = entry["locationOrLoadError"]
                if error and error["__typename"] == "PythonError":
                    raise StackError(f"code location {LOCATION} failed to load: {error['message']}")
                return
        except (httpx.HTTPError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise StackError(f"the webserver did not serve {LOCATION} within {timeout:.0f} s\n{stack.logs()}")
        time.sleep(0.5)


def _processes_with_home(home: Path) -> list[int]:
    """Processes (other than this one) whose environment names this stack's DAGSTER_HOME."""
    marker = f"DAGSTER_HOME={home}".encode() + b"\0"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def stop_processes(stack: UiStack) -> list[int]:
    """Stop the daemon first (it launches runs), then the webserver; return the pids a last sweep had to kill."""
    for process in reversed(stack.processes):
        process.stop()
    leftovers = _processes_with_home(stack.home)
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return leftovers


@contextlib.contextmanager
def ui_stack(*, seed: int = 42, daemon: bool = True, keep_home: bool = False) -> Iterator[UiStack]:
    """Embedded PostgreSQL (fresh databases), the sandboxes, then the webserver and (unless `daemon=False`;
    start it later with `start_daemon`) the daemon. Everything is stopped on exit, whatever happened."""
    project_root = database.project_home().parent
    token = uuid.uuid4().hex[:10]
    home = database.project_home() / "ui-tests" / token
    previous = dict(os.environ)
    server_url = database.server_url()  # the embedded server (attached or started), or GP_DATABASE_URL's
    names = (f"ui_{token}", f"ui_{token}_dagster")
    try:
        # Our own databases: local_stack then neither drops the shared sandbox database nor uses `dagster`.
        os.environ[database.DATABASE_URL_ENV] = database.ensure_database(server_url, names[0])
        os.environ[database.DAGSTER_DATABASE_URL_ENV] = database.ensure_database(server_url, names[1])
        # The same dagster.yaml `dev` writes (postgres storage from GP_DAGSTER_STORAGE_URL), in a home of this
        # stack's own: compute logs and the instance's local files stay apart too.
        with local_stack(seed=seed, dagster_home=home / "dagster_home") as local:
            environment = dict(os.environ)
            environment.pop("DAGSTER_IS_DEV_CLI", None)
            stack = UiStack(port=free_port(), home=home, local=local, environment=environment)
            workspace = str(project_root / "workspace.yaml")
            try:
                _start(
                    "webserver",
                    [_executable("dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", str(stack.port)],
                    stack,
                    project_root,
                )
                if daemon:
                    start_daemon(stack)
                wait_until_loaded(stack)
                yield stack
            finally:
                leftovers = stop_processes(stack)
                if leftovers:
                    print(f"ui_stack: killed processes left behind: {leftovers}", file=sys.stderr)
    finally:
        os.environ.clear()
        os.environ.update(previous)
        for name in names:
            with contextlib.suppress(Exception):
                database.drop_database(server_url, name)
        if not keep_home:
            shutil.rmtree(home, ignore_errors=True)


def start_daemon(stack: UiStack) -> DagsterProcess:
    project_root = database.project_home().parent
    workspace = str(project_root / "workspace.yaml")
    return _start("daemon", [_executable("dagster-daemon"), "run", "-w", workspace], stack, project_root)
