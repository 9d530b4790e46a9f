"""Every command answers bad input with ONE line on stderr and exit 2, never a traceback.

The commands are found by walking `build_parser()`, so a command added later is driven too: give it sample
arguments in SAMPLE_ARGS if it needs some, or list it in ARGUMENTS_ONLY if running it starts a server.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Iterator

import pytest

from gp_pipelines import cli
from gp_pipelines.cli_support import DEBUG_ENV

# Commands that start long-running servers or act on the shared embedded server: only their arguments are driven.
ARGUMENTS_ONLY = {"dev", "demo", "sandbox serve", "db", "webhooks", "webhooks serve"}
# Required arguments per command (names and ids nobody has: they must fail as unknown, not crash).
SAMPLE_ARGS: dict[str, list[str]] = {
    "cache query sales": ["--sku", "NO-SUCH-SKU"],
    "cache query stock": ["--sku", "NO-SUCH-SKU"],
    "orders route": ["--since", "2024-01-01"],
    "orders show": ["NO-SUCH-SALE"],
    "inbox dismiss": ["999999"],
    "outbox requeue": ["nope:key"],
    "relocate": ["--instance", "au", "--sale", "NO-SUCH-SALE", "--location", "Nowhere"],
    "edi parse": ["/nonexistent/file.x12"],
    "edi ack": ["/nonexistent/file.x12"],
    "edi write": ["850", "--from", "/nonexistent/doc.json"],
    "bench": ["no-such-benchmark"],
}
# Commands that need neither the database nor the config, so a database that is down is no error for them.
NO_DATABASE = {"config"}


def _leaves(parser: argparse.ArgumentParser,
            path: tuple[str, ...] = ()) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subcommands:
        yield " ".join(path), parser
        return
    for name, sub in subcommands[0].choices.items():
        yield from _leaves(sub, (*path, name))


LEAVES = dict(_leaves(cli.build_parser()))


def _server_command(name: str) -> bool:
    return name in ARGUMENTS_ONLY or name.split(" ")[0] in ARGUMENTS_ONLY


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the block ends: nothing listens there


@pytest.fixture
def run(capsys):
    """main() in this process with `env` applied on top of os.environ, restored afterwards (commands set
    variables of their own)."""

    def invoke(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
        saved = dict(os.environ)
        os.environ.pop(DEBUG_ENV, None)
        os.environ.update(env or {})
        try:
            try:
                code = cli.main(argv)
            except SystemExit as stop:  # argparse
                code = stop.code if isinstance(stop.code, int) else 2
        finally:
            os.environ.clear()
            os.environ.update(saved)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


def _assert_one_line(code: int, out: str, err: str, *needles: str) -> None:
    assert "Traceback" not in out + err, out + err
    assert code == 2, (code, out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def _fake_keys() -> dict[str, str]:
    from gp_pipelines.config import builtin_sandbox_config

    return {name: "not-a-real-key" for inst in builtin_sandbox_config().instances for name in inst.application_key_env}


def _down_database() -> dict[str, str]:
    return {"GP_DATABASE_URL": f"postgresql://gp:hunter2-secret@127.0.0.1:{_closed_port()}/gp_platform",
            "GP_DAGSTER_DATABASE_URL": f"postgresql://gp:hunter2-secret@127.0.0.1:{_closed_port()}/dagster"}


def test_the_walk_finds_the_commands():
    expected = {"sync", "status", "outbox list", "outbox requeue", "cache query sales", "dev", "sandbox serve"}
    assert expected <= set(LEAVES)


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_every_number_is_checked(name, run):
    """No bare int/float survives, and a negative number is one line and exit 2 (before anything starts)."""
    parser = LEAVES[name]
    numeric = [a for a in parser._actions if a.type is not None and "number" in getattr(a.type, "__name__", "")]
    assert not [a.dest for a in parser._actions if a.type in (int, float)], "an unchecked number"
    for action in numeric:
        if action.option_strings:
            argv = [*name.split(), *SAMPLE_ARGS.get(name, []), action.option_strings[0], "-5"]
        else:
            argv = [*name.split(), "-5"]
        code, out, err = run(argv, _down_database())
        _assert_one_line(code, out, err, action.option_strings[0] if action.option_strings else action.metavar or "")
        if "port" in action.dest:
            _assert_one_line(*run([*name.split(), action.option_strings[0], "70000"]), "0 to 65535")


@pytest.mark.parametrize("name", sorted(n for n in LEAVES if not _server_command(n)))
@pytest.mark.parametrize("scenario", ["database down", "config missing", "config malformed"])
def test_every_command_fails_in_one_line(name, scenario, run, tmp_path):
    env = {**_fake_keys(), **_down_database()}
    if scenario == "database down" and name in NO_DATABASE:
        pytest.skip(f"{name} uses no database")
    if scenario == "config missing":
        env["GP_CONFIG"] = str(tmp_path / "missing.yaml")
    elif scenario == "config malformed":
        (tmp_path / "bad.yaml").write_text("instances: [\n  - key: au\n   name: broken\n")
        env["GP_CONFIG"] = str(tmp_path / "bad.yaml")
    code, out, err = run([*name.split(), *SAMPLE_ARGS.get(name, [])], env)
    _assert_one_line(code, out, err)
    assert "hunter2-secret" not in out + err  # the password never shows


@pytest.mark.parametrize("name", sorted(n for n in LEAVES if _server_command(n)))
def test_server_commands_refuse_bad_arguments(name, run):
    _assert_one_line(*run([*name.split(), "--no-such-option"]))
    for action in LEAVES[name]._actions:  # a value outside the choices: one line naming the option
        if action.choices and action.option_strings:
            _assert_one_line(*run([*name.split(), action.option_strings[0], "no-such-choice"]),
                             action.option_strings[0], "no-such-choice")


def test_database_down_names_the_variable_and_host_not_the_password(run):
    env = {**_fake_keys(), **_down_database()}
    for argv in (["sync"], ["outbox", "list"], ["status"]):
        code, out, err = run(argv, env)
        _assert_one_line(code, out, err, "GP_DATABASE_URL", "host 127.0.0.1", "database gp_platform")
        assert "hunter2" not in err


def test_malformed_database_url_is_named(run):
    _assert_one_line(*run(["outbox", "list"], {"GP_DATABASE_URL": "postgresql://[broken"}), "GP_DATABASE_URL")


def test_config_problems_name_the_file(run, tmp_path):
    _assert_one_line(*run(["status"], {"GP_CONFIG": str(tmp_path / "nope.yaml")}), "nope.yaml", "not found")
    (tmp_path / "bad.yaml").write_text("instances: [\n")
    _assert_one_line(*run(["sync"], {"GP_CONFIG": str(tmp_path / "bad.yaml")}), "bad.yaml", "not valid YAML")


def test_bad_numbers_and_unknown_names(run):
    _assert_one_line(*run(["sync", "--calls-per-minute", "-5"]), "--calls-per-minute", "0 or more")
    _assert_one_line(*run(["sync", "--calls-per-minute", "lots"]), "'lots' is not a whole number")
    _assert_one_line(*run(["sync", "--entity", "nope"], _fake_keys()), "unknown entity 'nope'", "sales")
    _assert_one_line(*run(["sync", "--instance", "zz"]), "'zz'", "au, nz, us")
    _assert_one_line(*run(["bench", "nope"]), "unknown benchmark 'nope'")


def test_debug_shows_the_traceback_as_well(run):
    code, _, err = run(["--debug", "outbox", "list"], _down_database())
    assert code == 2 and "Traceback" in err and err.strip().splitlines()[-1].startswith("error: cannot reach")
    code, _, err = run(["outbox", "list", "--debug"], _down_database())
    assert code == 2 and "Traceback" in err
    code, _, err = run(["outbox", "list"], {**_down_database(), DEBUG_ENV: "1"})
    assert code == 2 and "Traceback" in err


def test_an_unexpected_error_is_one_line_exit_1(run, monkeypatch):
    def broken(args):
        raise ZeroDivisionError("the impossible happened")

    monkeypatch.setattr(cli, "_cmd_config", broken)
    code, _, err = run(["config"])
    assert code == 1 and "Traceback" not in err
    assert err.strip() == "error: unexpected ZeroDivisionError: the impossible happened: rerun with --debug for " \
                          "the traceback"


# -- unknown keys and ids, against a real (empty) platform database -----------------------------------------


@pytest.fixture
def platform_env(module_database_url):
    from gp_pipelines.cin7.store import ensure_cache_schema

    ensure_cache_schema(module_database_url)
    return {"GP_DATABASE_URL": module_database_url, **_fake_keys()}


def test_unknown_outbox_key(run, platform_env):
    _assert_one_line(*run(["outbox", "requeue", "nope:key"], platform_env),
                     "no outbox item has the key 'nope:key'", "outbox list")


def test_unknown_sale_and_inbox_file(run, platform_env):
    _assert_one_line(*run(["orders", "show", "SO-NOPE"], platform_env), "unknown sale 'SO-NOPE'")
    _assert_one_line(*run(["inbox", "dismiss", "424242"], platform_env), "unknown inbox file id 424242")


def test_cache_query_says_what_is_unknown(run, platform_env, db):
    _assert_one_line(*run(["cache", "query", "stock", "--sku", "NOPE"], platform_env), "unknown SKU 'NOPE'",
                     "sync")
    db.execute("INSERT INTO erp_cache.products (instance, id, payload, payload_hash) "
               "VALUES ('au', 'p1', '{\"SKU\": \"KNOWN-1\"}', 'h')")
    _assert_one_line(*run(["cache", "query", "sales", "--sku", "NOPE"], platform_env), "unknown SKU 'NOPE'",
                     "KNOWN-1")
    _assert_one_line(*run(["cache", "query", "unshipped", "--instance", "zz"], platform_env),
                     "unknown instance 'zz'", "au, nz, us")
