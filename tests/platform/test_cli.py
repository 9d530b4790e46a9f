"""The `gp-pipelines` command as a user runs it: separate processes, real sandbox, real database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from gp_pipelines.cin7.client import Cin7Client
from gp_pipelines.config import load_config_file

CLI = [sys.executable, "-m", "gp_pipelines.cli"]


def test_db_url_prints_a_url_psql_tools_can_use(pg_server_url, tmp_path):
    """`db url` names the current mode's database: the sandbox's without GP_CONFIG, `gp` with it."""
    import os

    from gp_pipelines import database

    if os.environ.get(database.DATABASE_URL_ENV):
        pytest.skip("GP_DATABASE_URL is set: db url prints it as given")
    config = tmp_path / "real.yaml"
    config.write_text("reporting_currency: USD\ninstances: []\n")
    for extra, expected in (({}, "gp_sandbox"), ({"GP_CONFIG": str(config)}, "gp")):
        env = {name: value for name, value in os.environ.items() if name != "GP_CONFIG"} | extra
        out = subprocess.run([*CLI, "db", "url"], capture_output=True, text=True, timeout=120, check=True, env=env)
        url = out.stdout.strip()
        assert url.startswith("postgresql://")
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT current_database()").fetchone()[0] == expected


def test_sandbox_serve_prints_instances_and_writes_a_working_config(tmp_path):
    config_path = tmp_path / "sandbox.yaml"
    proc = subprocess.Popen(
        [*CLI, "sandbox", "serve", "--port", "0", "--ecb-port", "0", "--seed", "5", "--write-config", str(config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [json.loads(proc.stdout.readline()) for _ in range(3)]
        assert [line["instance"] for line in lines] == ["au", "nz", "us"]
        assert all(set(line) == {"instance", "base_url", "account_id", "application_key"} for line in lines)
        # The config file holds variable names only; the env file beside it holds the keys.
        for _ in range(100):
            if Path(str(config_path) + ".env").exists():
                break
            proc.poll()
            import time

            time.sleep(0.1)
        env_lines = Path(str(config_path) + ".env").read_text().splitlines()
        env = dict(line.split("=", 1) for line in env_lines)
        assert lines[0]["application_key"] not in config_path.read_text()
        config = load_config_file(config_path)
        assert config.fx.base_url.startswith("http://127.0.0.1:")  # the ECB sandbox served beside it
        au = config.instance("au")
        keys = [env[name] for name in au.application_key_env]
        assert keys[0] == lines[0]["application_key"]
        with Cin7Client(au.base_url, au.account_id, keys, instance="au") as client:
            assert client.get("me")["Currency"] == "AUD"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode == 0


def test_config_command_names_missing_variables(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "reporting_currency: USD\ninstances:\n  - key: au\n    name: A\n"
        "    account_id: 3f2504e0-4f89-11d3-9a0c-0305e82c3301\n    application_key_env: [NOT_SET_ANYWHERE_X]\n"
    )
    env = {**os.environ, "GP_CONFIG": str(path)}
    env.pop("NOT_SET_ANYWHERE_X", None)
    out = subprocess.run([*CLI, "config"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 1
    assert "NOT_SET_ANYWHERE_X" in out.stderr


def test_bad_config_exits_with_the_message(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("reporting_currency: dollars\ninstances: []\n")
    env = {**os.environ, "GP_CONFIG": str(path)}
    out = subprocess.run([*CLI, "config"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 2
    assert f"{path}: invalid config" in out.stderr
    assert "reporting_currency: must be a three-letter" in out.stderr


@pytest.mark.slow
def test_demo_runs_end_to_end_and_stops_what_it_started(isolated_home):
    """The demo in a home of its own: its own embedded server, started and stopped by the demo itself."""
    env = {**os.environ, "GP_HOME": str(isolated_home)}
    env.pop("GP_CONFIG", None)
    env.pop("GP_DATABASE_URL", None)
    out = subprocess.run([*CLI, "demo"], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "FAILED" not in out.stdout, out.stdout
    initial, _, incremental = out.stdout.partition("Incremental sync after a day of trading")
    assert "Initial load" in initial and incremental, out.stdout
    for section in (initial, incremental):
        rows = [line.split() for line in section.splitlines()]
        entities = {(row[0], row[1]) for row in rows if len(row) == 7 and row[0] in ("au", "nz", "us")}
        assert {("au", "sales"), ("nz", "sales"), ("us", "sales"), ("us", "product_availability")} <= entities
        assert len(entities) == 3 * 13
    # The warehouse was built twice and reconciles with the cache, to the cent, for every instance.
    assert out.stdout.count("Reconciliation of the warehouse against the cache") == 2
    assert "MISMATCH" not in out.stdout
    assert "| fact_sale_line | au |" in out.stdout
    # The incremental pass costs far fewer calls than the initial load.
    calls = [int(line.split()[-3]) for line in out.stdout.splitlines() if line.startswith("total:")]
    assert len(calls) == 2 and calls[1] < calls[0] / 2, calls
    pid_file = isolated_home / "pgdata" / "postmaster.pid"
    assert not pid_file.exists(), "the demo left the embedded server it started running"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_dev_serves_the_ui_and_ctrl_c_stops_everything(isolated_home):
    import signal
    import time

    import httpx

    env = {**os.environ, "GP_HOME": str(isolated_home)}
    env.pop("GP_CONFIG", None)
    env.pop("GP_DATABASE_URL", None)
    port, sandbox_port = _free_port(), _free_port()
    proc = subprocess.Popen(
        [*CLI, "dev", "--port", str(port), "--sandbox-port", str(sandbox_port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        info = None
        while time.monotonic() < deadline and info is None:
            try:
                info = httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).json()
            except httpx.HTTPError:
                time.sleep(1)
        assert info and info["dagster_version"].startswith("1.13.")
        query = {"query": "{ assetNodes { assetKey { path } isPartitioned } }"}
        nodes = httpx.post(f"http://127.0.0.1:{port}/graphql", json=query, timeout=30).json()["data"]["assetNodes"]
        assert {"path": ["erp_cache", "me"]} in [node["assetKey"] for node in nodes]
        assert httpx.get(f"http://127.0.0.1:{sandbox_port}/sandbox/stats", timeout=5).status_code == 200
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
        proc.wait(timeout=90)
    pid_file = isolated_home / "pgdata" / "postmaster.pid"
    assert not pid_file.exists(), "dev left the embedded server it started running"
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2)


@pytest.mark.parametrize(("args", "message"), [
    (["warehouse", "build", "--instance", "xx"], "error: unknown instance 'xx'; the config has au, nz, us"),
    (["export", "zoho"], "error: <built-in sandbox config>: no zoho_analytics section; there is nothing to export "
                         "to Zoho"),
])
def test_warehouse_and_export_commands_name_a_usage_error_in_one_line(args, message):
    env = {k: v for k, v in os.environ.items() if k not in ("GP_CONFIG", "GP_ZOHO_SANDBOX_URL")}
    out = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 2
    assert out.stderr.strip() == message and out.stdout == ""
