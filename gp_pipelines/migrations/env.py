"""Alembic's environment, configured in code: `gp_pipelines.schema.upgrade` passes its connection (holding the
schema lock); the `alembic` command run by a developer (alembic.ini at the repository root) connects to the
platform database (GP_DATABASE_URL, else the embedded server)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import NullPool, create_engine

from gp_pipelines.schema import metadata
from gp_pipelines.schema.migrate import compare_options


def _configure(connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, **compare_options())


def run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    from gp_pipelines.database import database_url, driver_url

    engine = create_engine(driver_url(database_url(), "psycopg"), poolclass=NullPool)
    with engine.connect() as connection:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: the baseline inspects the database")
run()
