"""The one `MetaData` every platform table is described on, the schema names, and column shorthands."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Integer, MetaData, Text, text
from sqlalchemy.dialects.postgresql import JSONB

CACHE_SCHEMA = "erp_cache"
AUTOMATION_SCHEMA = "automation"
WAREHOUSE_SCHEMA = "warehouse"
ANALYTICS_SCHEMA = "analytics"  # views only (warehouse/analytics.py): no tables, so not migrated
EXPORTS_SCHEMA = "exports"
# The schemas holding tables: what migrations manage and what tells a fresh database from a used one.
TABLE_SCHEMAS = (CACHE_SCHEMA, AUTOMATION_SCHEMA, WAREHOUSE_SCHEMA, EXPORTS_SCHEMA)

metadata = MetaData()

NOW = text("now()")
EMPTY_ARRAY = text("'[]'::jsonb")
EMPTY_OBJECT = text("'{}'::jsonb")


def text_col(name: str, *args: Any, null: bool = True, **kwargs: Any) -> Column:
    return Column(name, Text, *args, nullable=null, **kwargs)


def ts_col(name: str, *args: Any, null: bool = True, **kwargs: Any) -> Column:
    return Column(name, DateTime(timezone=True), *args, nullable=null, **kwargs)


def stamp_col(name: str = "created_at") -> Column:
    """`timestamptz NOT NULL DEFAULT now()`: when the row was made or last changed."""
    return Column(name, DateTime(timezone=True), nullable=False, server_default=NOW)


def json_col(name: str, *, null: bool = True, default: Any = None) -> Column:
    return Column(name, JSONB, nullable=null, server_default=default)


def int_col(name: str, *, null: bool = True, default: int | None = None) -> Column:
    return Column(name, Integer, nullable=null, server_default=None if default is None else text(str(default)))


def bigint_col(name: str, *args: Any, null: bool = True) -> Column:
    return Column(name, BigInteger, *args, nullable=null)


def bool_col(name: str, *, null: bool = True, default: bool | None = None) -> Column:
    return Column(name, Boolean, nullable=null,
                  server_default=None if default is None else text("true" if default else "false"))


def serial_pk(name: str = "id") -> Column:
    """`bigserial PRIMARY KEY`, as the tables made before migrations have it."""
    return Column(name, BigInteger, primary_key=True, autoincrement=True)


def in_list(column: str, values: tuple[str, ...], *, negate: bool = False) -> str:
    """The text of `column [NOT] IN ('a', 'b')`, for CHECK constraints and partial indexes."""
    return f"{column} {'NOT IN' if negate else 'IN'} ({', '.join(repr(v) for v in values)})"
