"""Thin Dagster resource for the platform database (GP_DATABASE_URL through EnvVar, else embedded)."""

import os

import dagster as dg

from gp_pipelines import database


class PostgresResource(dg.ConfigurableResource):
    """Where the platform's tables live. `url` unset means the embedded server under `.gp/`."""

    url: str | None = None

    def database_url(self) -> str:
        return self.url or database.database_url()


def postgres_resource_from_environment() -> PostgresResource:
    # The URL may carry a password, so it is only ever passed as an environment reference.
    if os.environ.get(database.DATABASE_URL_ENV):
        return PostgresResource(url=dg.EnvVar(database.DATABASE_URL_ENV))
    return PostgresResource()
