"""`gp-pipelines sync`: the same sync outside Dagster, for the configured instances, printing what it did."""

from __future__ import annotations

import argparse
import json

import pytest

from gp_pipelines.cin7 import sync_cli
from gp_pipelines.sandbox.cin7 import SandboxServer
from gp_pipelines.sandbox.local import sandbox_environment

from .helpers import options


@pytest.fixture
def sandbox_env(monkeypatch, module_database_url):
    with SandboxServer(options(seed=5)) as server:
        monkeypatch.delenv("GP_CONFIG", raising=False)
        for name, value in sandbox_environment(server.instances, server.port, 5).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("GP_DATABASE_URL", module_database_url)
        yield server


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gp-pipelines")
    sync_cli.register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_sync_command_runs_the_engine_and_prints_what_it_did(sandbox_env, capsys, db):
    args = _parser().parse_args(["sync", "--instance", "nz", "--entity", "me", "--entity", "products",
                                 "--calls-per-minute", "100000"])
    assert args.func(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("nz/me [full]: +1 ")
    assert out[1].startswith("nz/products [initial]: +")
    count = db.execute("SELECT count(*) FROM erp_cache.products WHERE instance = 'nz'").fetchone()[0]
    assert f"+{count} " in out[1]

    assert sync_cli.main(["--instance", "nz", "--entity", "products", "--json", "--calls-per-minute", "100000"]) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert result["mode"] == "incremental" and result["inserted"] == 0 and result["instance"] == "nz"


def test_sync_command_rejects_unknown_names_and_missing_keys(sandbox_env, capsys, monkeypatch):
    assert sync_cli.main(["--entity", "invoices"]) == 2
    assert "unknown entity 'invoices'" in capsys.readouterr().err
    assert sync_cli.main(["--instance", "xx"]) == 2
    assert "no instance with key 'xx'" in capsys.readouterr().err
    monkeypatch.delenv("GP_SANDBOX_AU_KEY_1")
    assert sync_cli.main(["--instance", "au"]) == 2
    assert "GP_SANDBOX_AU_KEY_1" in capsys.readouterr().err


def test_full_mode_prints_its_cost_and_a_refused_reconcile_is_named(sandbox_env, capsys, db):
    import httpx

    fast = ["--calls-per-minute", "0"]
    assert sync_cli.main(["--instance", "nz", "--entity", "product_availability", *fast]) == 0
    capsys.readouterr()
    live = db.execute("SELECT count(*) FROM erp_cache.product_availability WHERE instance = 'nz'").fetchone()[0]
    assert sync_cli.main(["--instance", "nz", "--entity", "sales", "--mode", "full", *fast]) == 0
    lines = capsys.readouterr().out.splitlines()
    sales = db.execute("SELECT count(*) FROM erp_cache.sales WHERE instance = 'nz'").fetchone()[0]
    assert lines[0].startswith(f"nz/sales: full read, about {sales + 2} calls (2 list, {sales} detail)")
    # One empty page: nothing deleted, the command says so and what to do, and exits 1.
    httpx.post(f"{sandbox_env.root_url}/sandbox/faults/next", json={"fault": "empty_page"}, timeout=10)
    assert sync_cli.main(["--instance", "nz", "--entity", "product_availability", *fast]) == 1
    err = capsys.readouterr().err
    assert f"reconcile refused: it would mark {live} of {live} rows deleted" in err and "--accept-deletions" in err
    kept = db.execute("SELECT count(*) FROM erp_cache.product_availability WHERE instance = 'nz' "
                      "AND deleted_at IS NULL").fetchone()[0]
    assert kept == live
