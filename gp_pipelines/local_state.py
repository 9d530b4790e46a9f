"""Where local state lives, per mode, and the lock that tells a running local stack from a kept one.

Two modes, never mixed:
- sandbox mode (no `GP_CONFIG`): the sandbox world lives in memory as long as its stack, so its state lives
  apart and is created and reset with it: database `gp_sandbox`, Dagster storage `dagster_sandbox`, Dagster
  home `.gp/sandbox/dagster_home`;
- config mode (`GP_CONFIG` names real accounts): database `gp`, Dagster storage `dagster`, home
  `.gp/dagster_home`; nothing here is ever dropped by a start.

A stack (`dev`, `demo`) holds an flock on `<root>/stack.lock` for as long as it runs, and describes itself in
`<root>/stack.json`; the lock dies with the process, so a crash never leaves a stack that seems to run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SANDBOX_MODE = "sandbox"
CONFIG_MODE = "config"
CONFIG_ENV = "GP_CONFIG"  # the same name config.py reads; repeated so database.py needs no config import


def _project_home() -> Path:
    from gp_pipelines.database import project_home

    return project_home()


@dataclass(frozen=True)
class LocalState:
    """The databases and folders of one mode."""

    mode: str
    database: str
    dagster_database: str
    root: Path

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def lock_file(self) -> Path:
        return self.root / "stack.lock"

    @property
    def stack_file(self) -> Path:
        return self.root / "stack.json"

    @property
    def session_file(self) -> Path:
        """What the kept state came from (written when a stack resets it), shown when it is found later."""
        return self.root / "session.json"

    @property
    def env_file(self) -> Path:
        """Variables another terminal sources to reach the running stack's sandboxes."""
        return _project_home() / "dev.env"

    def kept_session(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.session_file.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def running_stack(self) -> dict[str, Any] | None:
        """The running stack's description, or None when no process holds the lock."""
        if not self.lock_file.exists():
            return None
        with open(self.lock_file, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                try:
                    return json.loads(self.stack_file.read_text())
                except (FileNotFoundError, ValueError):
                    return {"pid": "?", "command": "?"}
            fcntl.flock(handle, fcntl.LOCK_UN)
        return None


def current() -> LocalState:
    """The state of the mode in force: config mode when GP_CONFIG is set, else sandbox mode."""
    home = _project_home()
    if os.environ.get(CONFIG_ENV):
        return LocalState(CONFIG_MODE, "gp", "dagster", home)
    return LocalState(SANDBOX_MODE, "gp_sandbox", "dagster_sandbox", home / "sandbox")


class StackRunning(Exception):
    """Another process runs a stack on this state; `info` is its stack.json."""

    def __init__(self, state: LocalState, info: dict[str, Any]) -> None:
        self.state = state
        self.info = info
        super().__init__(f"a {info.get('command', 'gp-pipelines')} stack already runs on the {state.mode} state "
                         f"(pid {info.get('pid', '?')}, {describe_started(info)})")


def describe_started(info: dict[str, Any]) -> str:
    started = info.get("started_at")
    return f"started {started}" if started else "start time unknown"


@contextlib.contextmanager
def hold_stack_lock(state: LocalState, command: str) -> Iterator[None]:
    """Hold the state's stack lock for the body; raise StackRunning at once if another process holds it."""
    state.root.mkdir(parents=True, exist_ok=True)
    with open(state.lock_file, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = state.running_stack() or {}
            raise StackRunning(state, info) from None
        try:
            yield
        finally:
            state.stack_file.unlink(missing_ok=True)
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_stack_file(state: LocalState, command: str, **details: Any) -> None:
    """Describe the running stack for a second start (which attaches or refuses) and for `status`."""
    info = {"pid": os.getpid(), "command": command, "started_at": now_text(), **details}
    _write_private(state.stack_file, json.dumps(info, indent=2))


def write_session_file(state: LocalState, command: str, **details: Any) -> None:
    _write_private(state.session_file, json.dumps({"command": command, "started_at": now_text(), **details},
                                                  indent=2))


def write_env_file(state: LocalState, variables: dict[str, str]) -> Path:
    """`.gp/dev.env`: the running stack's variables, shell-quoted, readable by the owner only (keys inside)."""
    import shlex

    lines = ["# Written by `gp-pipelines dev` while it runs (removed when it stops). In another terminal:",
             f"#   set -a; . {state.env_file}; set +a"]
    lines += [f"{name}={shlex.quote(value)}" for name, value in sorted(variables.items())]
    _write_private(state.env_file, "\n".join(lines) + "\n")
    return state.env_file


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(temporary, path)  # whole or not at all: a reader never sources half a file
