"""The embedded PostgreSQL: shared by several processes, isolated databases per test module, clear errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import psycopg
import pytest

from gp_pipelines import database


def test_module_database_is_isolated_and_writable(db, module_database_url):
    db.execute("CREATE TABLE t (id int primary key)")
    db.execute("INSERT INTO t VALUES (1), (2)")
    assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 2
    assert database.libpq_url(module_database_url).startswith("postgresql://")
    assert "/t_test_database_" in module_database_url


def test_two_processes_share_the_server(pg_server_url, module_database_url, db):
    """Two separate processes attach at once, write, and see each other's rows through one server."""
    db.execute("CREATE TABLE IF NOT EXISTS shared (who text primary key)")
    script = textwrap.dedent(
        """
        import sys, psycopg
        from gp_pipelines import database
        url = database.server_url()  # attaches to the running embedded server (or GP_DATABASE_URL's)
        target = database.with_database(url, sys.argv[1])
        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute("INSERT INTO shared VALUES (%s)", (sys.argv[2],))
            print(conn.execute("SELECT count(*) FROM shared").fetchone()[0])
        """
    )
    name = module_database_url.split("?")[0].rsplit("/", 1)[-1]
    procs = [
        subprocess.Popen([sys.executable, "-c", script, name, who], stdout=subprocess.PIPE, text=True)
        for who in ("first", "second")
    ]
    outputs = [proc.communicate(timeout=60)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0]
    assert all(out.strip() in ("1", "2") for out in outputs)
    rows = {row[0] for row in db.execute("SELECT who FROM shared")}
    assert rows == {"first", "second"}
    # The server is still up for this process after both children exited.
    assert db.execute("SELECT 1").fetchone() == (1,)


def test_ensure_database_is_idempotent(pg_server_url):
    name = "t_idempotent_db"
    try:
        first = database.ensure_database(pg_server_url, name)
        second = database.ensure_database(pg_server_url, name)
        assert first == second
        with psycopg.connect(first) as conn:
            assert conn.execute("SELECT current_database()").fetchone()[0] == name
    finally:
        database.drop_database(pg_server_url, name)


def test_unreachable_server_gives_a_clear_error():
    with pytest.raises(database.DatabaseError, match="cannot connect to PostgreSQL at"):
        database.ensure_database("postgresql://postgres@/x?host=/nonexistent-socket-dir", "x")


def test_url_helpers():
    url = "postgresql://user:s3cret@db.example:5432/gp?sslmode=require"
    assert database.redact(url) == "postgresql://user:***@db.example:5432/gp?sslmode=require"
    assert database.driver_url(url, "psycopg2").startswith("postgresql+psycopg2://")
    assert database.libpq_url("postgresql+psycopg://u@/gp?host=/s") == "postgresql://u@/gp?host=/s"
    assert database.with_database("postgresql://u@/gp?host=/s", "dagster") == "postgresql://u@/dagster?host=/s"


def test_start_failure_names_the_folder(tmp_path, monkeypatch):
    """A pgdata that cannot be a server (a file in its place) fails with the path and the way out."""
    home = tmp_path / "gp-home"
    home.mkdir()
    (home / "pgdata").write_text("not a directory")
    monkeypatch.setenv(database.HOME_ENV, str(home))
    with pytest.raises(database.DatabaseError) as caught:
        database.ensure_embedded_server()
    assert str(home / "pgdata") in str(caught.value)
    assert database.DATABASE_URL_ENV in str(caught.value)


def test_server_is_not_stopped_while_another_process_uses_it(isolated_home, monkeypatch):
    """A process that attached keeps the server alive, even with no session open, until it exits."""
    monkeypatch.setenv(database.HOME_ENV, str(isolated_home))
    monkeypatch.delenv(database.DATABASE_URL_ENV, raising=False)
    user = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from gp_pipelines import database; database.ensure_embedded_server(); "
            "print('attached', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert user.stdout.readline().strip() == "attached"
        assert database.ensure_embedded_server().started_here is False
        assert database.stop_embedded_server() is False  # the other process still uses it
        assert database.embedded_server_running()
    finally:
        user.stdin.close()
        user.wait(timeout=60)
    assert database.stop_embedded_server() is True
    assert not database.embedded_server_running()
