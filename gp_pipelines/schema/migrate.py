"""Bringing a database to the schema this release needs: Alembic migrations, and a fast guard for run time.

- `upgrade(url)` runs every migration the database lacks (under one advisory lock, in one transaction), then
  recreates the derived objects (`derived.py`); a database made before migrations is adopted by the baseline,
  keeping every row. `gp-pipelines db upgrade`, `dev`, `demo` and the deploy's init step call it.
- `ensure_schema(url_or_conn)` is what the code calls before it touches the tables: a database at head costs
  one look (then nothing, per process); an empty one is created at head in one statement batch and stamped
  (faster than replaying history: the test suite makes a hundred databases); one behind head, or made before
  migrations, raises `SchemaOutOfDateError` saying to run `gp-pipelines db upgrade`. Never migrates by itself:
  an upgrade is a deliberate step, not a side effect of the first sensor tick after a deploy.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path

import psycopg
from sqlalchemy import NullPool, create_engine, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateSchema, CreateTable

from gp_pipelines.database import DatabaseError, driver_url, libpq_url
from gp_pipelines.schema.derived import DERIVED_SQL, unknown_members_sql
from gp_pipelines.schema.model import TABLE_SCHEMAS, metadata

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
VERSION_TABLE = "public.alembic_version"
# One lock for every schema change, shared by upgrade and the guard: two processes never create or migrate at once.
SCHEMA_LOCK = "gp.ddl.schema"
_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended('gp.ddl.schema', 0))"

_ready_urls: set[str] = set()
_ready_keys: set[tuple[str, str, str]] = set()
_ready_lock = threading.Lock()


class SchemaOutOfDateError(DatabaseError):
    """The database's schema is not the one this release needs; the message says what to run."""

    def __init__(self, database: str, current: str | None, head: str, known: bool = True) -> None:
        self.database, self.current, self.head = database, current, head
        at = f"revision {current}" if current else "no revision (its tables were made before migrations)"
        if known:
            advice = "run `gp-pipelines db upgrade`"
        else:
            advice = "it was upgraded by a newer release: run that release (or newer)"
        super().__init__(f"the database {database} is at {at}, this release needs {head}: {advice}")


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's filter: only the platform's schemas (the sandbox, Dagster or a user's own tables elsewhere are
    none of ours)."""
    return name in TABLE_SCHEMAS if type_ == "schema" else True


def compare_options() -> dict:
    """How autogenerate and the tests compare a database with the metadata."""
    return {"include_schemas": True, "include_name": include_name, "compare_server_default": True,
            "compare_type": True, "version_table_schema": "public"}


def alembic_config(connection=None):
    """Alembic's config built in code (no alembic.ini needed at run time), migrations inside the package."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


@functools.cache
def _script():
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The revision this release's code needs (the one head of the migrations)."""
    heads = _script().get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"the migrations have {len(heads)} heads {heads}: merge them (alembic merge)")
    return heads[0]


def _known(revision: str) -> bool:
    try:
        return _script().get_revision(revision) is not None
    except Exception:  # alembic raises its own ResolutionError/CommandError for an unknown id
        return False


def _version(conn: psycopg.Connection) -> tuple[str | None, bool]:
    """(the stamped revision or None, whether any platform table exists)."""
    stamped, has_tables = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL, EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n "
        "ON n.oid = c.relnamespace WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p'))",
        (VERSION_TABLE, list(TABLE_SCHEMAS)),
    ).fetchone()
    if not stamped:
        return None, has_tables
    row = conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()
    return (row[0] if row else None), has_tables


def current_revision(database_url: str) -> str | None:
    """The revision the database is stamped at; None for an empty database or one made before migrations."""
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        return _version(conn)[0]


def metadata_ddl(*, if_not_exists: bool = False) -> list[str]:
    """Every schema, table and index of the metadata as DDL, in dependency order."""
    dialect = postgresql.dialect()
    statements = [str(CreateSchema(s, if_not_exists=True).compile(dialect=dialect)) for s in TABLE_SCHEMAS]
    for table in metadata.sorted_tables:
        statements.append(str(CreateTable(table, if_not_exists=if_not_exists).compile(dialect=dialect)).strip())
    for table in metadata.sorted_tables:
        for index in sorted(table.indexes, key=lambda i: i.name):
            statements.append(str(CreateIndex(index, if_not_exists=if_not_exists).compile(dialect=dialect)))
    return statements


def index_ddl(table_name: str, schema: str) -> list[str]:
    """CREATE INDEX for each index of one table (the warehouse build drops and restores them around a load)."""
    table = metadata.tables[f"{schema}.{table_name}"]
    dialect = postgresql.dialect()
    return [str(CreateIndex(i).compile(dialect=dialect)) for i in sorted(table.indexes, key=lambda i: i.name)]


@functools.cache
def _fresh_sql() -> str:
    head = head_revision()
    statements = [*metadata_ddl(), *unknown_members_sql(), *DERIVED_SQL,
                  f"CREATE TABLE {VERSION_TABLE} (version_num varchar(32) NOT NULL, "
                  "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))",
                  f"INSERT INTO {VERSION_TABLE} (version_num) VALUES ('{head}')"]
    return ";\n".join(statements)


def _key(conn: psycopg.Connection) -> tuple[str, str, str]:
    return (conn.info.host, str(conn.info.port), conn.info.dbname)


def _ensure_on(conn: psycopg.Connection) -> None:
    key = _key(conn)
    if key in _ready_keys:
        return
    head = head_revision()
    idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    version, has_tables = _version(conn)
    if version != head:
        with conn.transaction():
            conn.execute(_LOCK_SQL)
            version, has_tables = _version(conn)  # another process may have created it while we waited
            if version is None and not has_tables:
                conn.execute(_fresh_sql())
                version = head
    if version != head:
        raise SchemaOutOfDateError(conn.info.dbname, version, head, known=version is None or _known(version))
    if idle:  # a caller's open transaction could still roll the creation back: remember only what is committed
        with _ready_lock:
            _ready_keys.add(key)


def ensure_schema(target: str | psycopg.Connection) -> None:
    """Make sure the database has this release's schema: at head → return (cached per process); empty → create
    everything at head; behind head or made before migrations → raise `SchemaOutOfDateError`."""
    if isinstance(target, str):
        if target in _ready_urls:
            return
        with psycopg.connect(libpq_url(target), autocommit=True) as conn:
            _ensure_on(conn)
        with _ready_lock:
            _ready_urls.add(target)
        return
    _ensure_on(target)


def forget(database_url: str | None = None) -> None:
    """Drop the guard's memory (of one URL, or all): for a database dropped and made again in this process."""
    with _ready_lock:
        if database_url is None:
            _ready_urls.clear()
            _ready_keys.clear()
        else:
            _ready_urls.discard(database_url)
            _ready_keys.clear()


def upgrade(database_url: str, revision: str = "head") -> tuple[str | None, str]:
    """Run the migrations the database lacks and refresh the derived objects; returns (from, to) revisions.
    Safe to run concurrently (the second waits, then finds nothing to do) and on every start."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    engine = create_engine(driver_url(database_url, "psycopg"), poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:lock, 0))"), {"lock": SCHEMA_LOCK})
            before = MigrationContext.configure(conn).get_current_revision()
            if before is not None and not _known(before):
                raise SchemaOutOfDateError(conn.engine.url.database or "?", before, head_revision(), known=False)
            command.upgrade(alembic_config(conn), revision)
            raw = conn.connection.driver_connection
            raw.execute(";\n".join(DERIVED_SQL))
            after = MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
    forget(database_url)
    return before, after or ""
