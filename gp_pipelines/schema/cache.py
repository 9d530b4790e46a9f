"""Schema `erp_cache` (DESIGN.md §3, §4): one table per Cin7 Core entity, the sync state, pending details,
completeness results and the shared rate limiter's call log."""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, PrimaryKeyConstraint, Table, text

from gp_pipelines.cin7.entities import ENTITIES
from gp_pipelines.schema.model import (
    CACHE_SCHEMA,
    EMPTY_ARRAY,
    bool_col,
    int_col,
    json_col,
    metadata,
    stamp_col,
    text_col,
    ts_col,
)


def _entity_table(name: str) -> Table:
    return Table(
        name, metadata,
        text_col("instance", null=False),
        text_col("id", null=False),
        ts_col("modified_at"),
        json_col("payload", null=False),
        text_col("payload_hash", null=False),
        text_col("list_hash"),
        stamp_col("synced_at"),
        stamp_col("verified_at"),
        ts_col("deleted_at"),
        PrimaryKeyConstraint("instance", "id"),
        Index(f"{name}_modified", "instance", "modified_at"),
        Index(f"{name}_verified", "instance", "verified_at", postgresql_where=text("deleted_at IS NULL")),
        # The warehouse finds what changed since its last build by the cache's write stamp.
        Index(f"{name}_synced", "synced_at"),
        schema=CACHE_SCHEMA,
    )


ENTITY_TABLES: dict[str, Table] = {e.table: _entity_table(e.table) for e in ENTITIES.values()}

# Indexes the cache queries (`cin7/queries.py`, DESIGN.md §1) rely on: a GIN `jsonb_path_ops` index answers
# "sales containing SKU X" by containment, the others serve the date range, open orders and stock by SKU.
Index("sales_payload_path_ops", ENTITY_TABLES["sales"].c.payload, postgresql_using="gin",
      postgresql_ops={"payload": "jsonb_path_ops"})
Index("sales_order_date", ENTITY_TABLES["sales"].c.payload["SaleOrderDate"].astext)
Index("sales_open_orders", ENTITY_TABLES["sales"].c.instance, postgresql_where=text(
    "deleted_at IS NULL AND (payload -> 'Order' ->> 'Status') = 'AUTHORISED' "
    "AND (payload ->> 'CombinedShippingStatus') IS DISTINCT FROM 'SHIPPED' "
    "AND (payload ->> 'Status') IS DISTINCT FROM 'VOIDED'"))
Index("product_availability_sku", ENTITY_TABLES["product_availability"].c.payload["SKU"].astext)

sync_state = Table(
    "sync_state", metadata,
    text_col("instance", null=False),
    text_col("entity", null=False),
    ts_col("watermark"),
    int_col("sweep_position", null=False, default=0),
    ts_col("last_sync_at"),
    text_col("last_mode"),
    ts_col("last_full_at"),
    json_col("last_result"),
    PrimaryKeyConstraint("instance", "entity"),
    schema=CACHE_SCHEMA,
)

# The documents a list walk found changed whose detail is still to be read (see cin7/store.py).
sync_pending = Table(
    "sync_pending", metadata,
    text_col("instance", null=False),
    text_col("entity", null=False),
    text_col("id", null=False),
    ts_col("list_modified"),
    text_col("list_hash"),
    PrimaryKeyConstraint("instance", "entity", "id"),
    schema=CACHE_SCHEMA,
)

completeness = Table(
    "completeness", metadata,
    text_col("instance", null=False),
    text_col("entity", null=False),
    stamp_col("checked_at"),
    Column("api_total", Integer),
    int_col("cache_count", null=False),
    bool_col("passed", null=False),
    json_col("problems", null=False, default=EMPTY_ARRAY),
    PrimaryKeyConstraint("instance", "entity"),
    schema=CACHE_SCHEMA,
)

# One row per API call in the window, shared by every process (cin7/limiter.py); no key: rows are only counted.
api_call_log = Table(
    "api_call_log", metadata,
    text_col("key_id", null=False),
    ts_col("called_at", null=False),
    Index("api_call_log_key_time", "key_id", "called_at"),
    schema=CACHE_SCHEMA,
)
