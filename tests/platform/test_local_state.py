"""One local state story: each mode's databases and Dagster home, the stack lock, the reset that comes only
after every port is bound, the env file other terminals source."""

from __future__ import annotations

import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest

from gp_pipelines import database, local_state
from gp_pipelines.config import CONFIG_ENV


def test_each_mode_has_its_own_databases_and_dagster_home(monkeypatch, tmp_path):
    monkeypatch.setenv(database.HOME_ENV, str(tmp_path))
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    sandbox = local_state.current()
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "config.yaml"))
    real = local_state.current()
    assert (sandbox.mode, real.mode) == (local_state.SANDBOX_MODE, local_state.CONFIG_MODE)
    assert {sandbox.database, sandbox.dagster_database}.isdisjoint({real.database, real.dagster_database})
    assert sandbox.dagster_home != real.dagster_home
    assert sandbox.dagster_home.is_relative_to(tmp_path) and real.dagster_home.is_relative_to(tmp_path)


def test_a_held_stack_lock_is_seen_and_dies_with_its_process(monkeypatch, tmp_path):
    monkeypatch.setenv(database.HOME_ENV, str(tmp_path))
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import sys
            from gp_pipelines import local_state
            state = local_state.current()
            with local_state.hold_stack_lock(state, "dev"):
                local_state.write_stack_file(state, "dev", ui_url="http://127.0.0.1:1")
                print("held", flush=True)
                sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**__import__("os").environ, database.HOME_ENV: str(tmp_path)},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        state = local_state.current()
        assert state.running_stack()["pid"] == holder.pid
        with pytest.raises(local_state.StackRunning) as refused, local_state.hold_stack_lock(state, "demo"):
            pass
        assert f"pid {holder.pid}" in str(refused.value) and refused.value.info["command"] == "dev"
    finally:
        holder.kill()  # as a crash would: no cleanup runs
        holder.wait()
    assert local_state.current().running_stack() is None
    with local_state.hold_stack_lock(local_state.current(), "dev"):
        pass


def test_the_env_file_is_private_and_sources_to_the_same_values(monkeypatch, tmp_path):
    monkeypatch.setenv(database.HOME_ENV, str(tmp_path))
    values = {"GP_SANDBOX_AU_KEY_1": "k-1", "GP_SANDBOX_AUTOMATION": '{"a": "b c", "d": [1]}', "ODD": "it's $HOME"}
    path = local_state.write_env_file(local_state.current(), values)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    script = f"set -a; . {path}; set +a; " + "; ".join(f'printf "%s\\n" "${name}"' for name in values)
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == list(values.values())


def _taken_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@pytest.mark.slow
def test_a_start_resets_the_sandbox_state_only_once_every_port_is_bound(isolated_home, monkeypatch):
    """The kept state survives a start that fails on a taken port; a start that binds everything clears the
    database and the Dagster home together, and a second start while it runs refuses without touching them."""
    from gp_pipelines.sandbox.local import StackError, local_stack

    monkeypatch.setenv(database.HOME_ENV, str(isolated_home))
    monkeypatch.delenv(database.DATABASE_URL_ENV, raising=False)
    monkeypatch.delenv(database.DAGSTER_DATABASE_URL_ENV, raising=False)
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    state = local_state.current()
    server = database.ensure_embedded_server()
    try:
        kept_url = database.ensure_database(server.url(), state.database)
        with psycopg.connect(kept_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (n int)")
        (state.dagster_home / "history").mkdir(parents=True)
        local_state.write_session_file(state, "demo")

        taken = _taken_port()
        try:
            with pytest.raises(StackError, match=f"port {taken.getsockname()[1]} .* nothing was reset"), \
                    local_stack(command="dev", reserve_ports=((taken.getsockname()[1], "Dagster UI"),)):
                pass
        finally:
            taken.close()
        assert _has_table(kept_url, "kept") and (state.dagster_home / "history").exists()
        assert state.running_stack() is None

        said: list[str] = []
        with local_stack(command="dev", say=said.append) as stack:
            assert not _has_table(kept_url, "kept")
            assert not (state.dagster_home / "history").exists() and (state.dagster_home / "dagster.yaml").exists()
            assert "previous session (demo" in said[0] and f"database {state.database}" in said[0]
            assert stack.database_url.split("?")[0].endswith("/" + state.database)
            assert stack.environment["GP_SANDBOX_AU_KEY_1"] == stack.sandbox.instances[0].application_keys[0]
            assert stack.environment["DAGSTER_HOME"] == str(state.dagster_home)
            with psycopg.connect(stack.database_url, autocommit=True) as conn:
                conn.execute("CREATE TABLE mine (n int)")
            local_state.write_stack_file(state, "dev", ui_url="http://127.0.0.1:9")
            second = subprocess.run([sys.executable, "-m", "gp_pipelines.cli", "demo"], capture_output=True,
                                    text=True, env=_env_without_stack(isolated_home), timeout=120)
            assert second.returncode == 2, second.stderr
            assert second.stderr.count("\n") == 1 and "stop it first" in second.stderr
            assert "Traceback" not in second.stderr
            attach = subprocess.run([sys.executable, "-m", "gp_pipelines.cli", "dev"], capture_output=True,
                                    text=True, env=_env_without_stack(isolated_home), timeout=120)
            assert attach.returncode == 0 and "attaching" in attach.stdout and "http://127.0.0.1:9" in attach.stdout
            assert _has_table(stack.database_url, "mine")
        assert state.running_stack() is None
        assert state.kept_session()["command"] == "dev"
    finally:
        database.stop_embedded_server(force=True)


def _has_table(url: str, name: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT to_regclass(%s)", (f"public.{name}",)).fetchone()[0] is not None


def _env_without_stack(home: Path) -> dict[str, str]:
    """A new terminal: none of the variables the stack exported in this process."""
    import os

    keep = ("PATH", "HOME", "LANG", "USER", "TMPDIR")
    return {name: os.environ[name] for name in keep if name in os.environ} | {database.HOME_ENV: str(home)}


def test_db_upgrade_migrates_the_database_in_force_and_says_so(module_database_url, monkeypatch, capsys):
    from gp_pipelines.cli import main
    from gp_pipelines.schema import current_revision, head_revision

    monkeypatch.setenv(database.DATABASE_URL_ENV, module_database_url)
    assert main(["db", "upgrade"]) == 0
    first = capsys.readouterr().out
    assert main(["db", "upgrade"]) == 0
    second = capsys.readouterr().out
    assert current_revision(module_database_url) == head_revision()
    assert "upgraded from no revision" in first and f"to revision {head_revision()}" in first
    assert f"already at revision {head_revision()}" in second
