"""The warehouse's schema names and table helpers (DESIGN.md §3, §5); the tables themselves are described as
data in `gp_pipelines/schema/warehouse.py` and migrated with the rest of the platform's schema.

Conventions every table follows:
- Money is `numeric(18,4)` (Power BI's fixed decimal holds 4 places; never float), rates `numeric(24,10)`.
- Dimensions have an integer surrogate key (`*_key`, identity) that stays stable across rebuilds: rows are
  upserted on their natural key (instance, Cin7 id), never dropped (a record deleted in Cin7 keeps its row with
  `is_deleted`), so fact rows never point at a vanished key.
- **Unknown member**: every dimension has a row with key 0 ("(unknown)"). A fact line whose product, customer
  or location is not (yet) in the cache gets key 0, is counted by `check_dimension_joins`, and is re-resolved
  by the next incremental build of the fact. `dim_date` key 0 is "no date" (its `date` is NULL); dates that
  are optional (ship date) are NULL instead.
- `warehouse.build_state` keeps per table the cache change stamp it has consumed; `warehouse.built_document`
  keeps per document fact the payload hash of every document it holds lines for (see `build.py`).
"""

from __future__ import annotations

import psycopg

from gp_pipelines.schema import ensure_schema, index_ddl
from gp_pipelines.schema.model import ANALYTICS_SCHEMA, WAREHOUSE_SCHEMA
from gp_pipelines.schema.warehouse import MONEY, QUANTITY, RATE, REVISIT_PREDICATE, WAREHOUSE_SPECS

__all__ = ["ANALYTICS_SCHEMA", "MONEY", "QUANTITY", "RATE", "REVISIT_PREDICATE", "WAREHOUSE_SCHEMA",
           "WAREHOUSE_SPECS", "create_warehouse_schema", "ensure_warehouse_schema", "table_index_ddl"]


def table_index_ddl(name: str) -> list[str]:
    """CREATE INDEX for each of a warehouse table's indexes, compiled from the metadata (the build drops them
    around a bulk load and restores them with exactly these)."""
    return index_ddl(name, WAREHOUSE_SCHEMA)


def create_warehouse_schema(conn: psycopg.Connection) -> None:
    """The platform's schema (warehouse tables, unknown members, helper functions) is current; see `ensure_schema`."""
    ensure_schema(conn)


def ensure_warehouse_schema(database_url: str) -> None:
    ensure_schema(database_url)
