"""Alembic migrations of the platform's tables (described once in `gp_pipelines/schema/`); run them with
`gp-pipelines db upgrade` or `gp_pipelines.schema.upgrade(url)`. A package, so an installed wheel has them."""
