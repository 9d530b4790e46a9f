"""Schema `exports`: what the Zoho Analytics export remembers (warehouse/zoho_export.py): each published table's
content and per-row hashes (so an unchanged export sends nothing), and the import units spent per day."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Date, Index, Integer, PrimaryKeyConstraint, Table

from gp_pipelines.schema.model import (
    EXPORTS_SCHEMA,
    bigint_col,
    bool_col,
    json_col,
    metadata,
    serial_pk,
    stamp_col,
    text_col,
    ts_col,
)

zoho_table = Table(
    "zoho_table", metadata,
    text_col("workspace_id", null=False),
    text_col("view_id", null=False),  # Zoho's id: stays the same when the table is renamed
    text_col("export_name", null=False),  # the analytics view it holds
    text_col("zoho_name", null=False),  # its name in Zoho as we last left it
    text_col("content_hash"),  # NULL: content unknown (a load started and did not verify)
    json_col("columns"),  # [[name, Zoho type], ...]
    bigint_col("row_count"),
    ts_col("loaded_at"),
    ts_col("verified_at"),
    bool_col("verified_ok"),  # the last read-back of this table agreed with the warehouse
    PrimaryKeyConstraint("workspace_id", "view_id"),
    schema=EXPORTS_SCHEMA,
)

zoho_row = Table(
    "zoho_row", metadata,
    text_col("workspace_id", null=False),
    text_col("view_id", null=False),
    text_col("row_key", null=False),
    Column("row_hash", BigInteger, nullable=False),
    PrimaryKeyConstraint("workspace_id", "view_id", "row_key"),
    schema=EXPORTS_SCHEMA,
)

zoho_units = Table(
    "zoho_units", metadata,
    serial_pk(),
    text_col("org_id", null=False),
    Column("spent_on", Date, nullable=False),  # UTC day
    stamp_col("recorded_at"),
    text_col("export_name", null=False),
    text_col("import_type"),
    bigint_col("rows", null=False),
    Column("units", Integer, nullable=False),
    text_col("status", null=False),  # spent (booked before the import is sent), released
    Index("zoho_units_by_day", "org_id", "spent_on"),
    schema=EXPORTS_SCHEMA,
)
