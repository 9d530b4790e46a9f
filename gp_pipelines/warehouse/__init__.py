"""The merged multi-currency warehouse (DESIGN.md §3, §5), plain Python + SQL, no Dagster.

- `schema`: the `warehouse`/`analytics` schema names and table helpers (the tables are described in
  `gp_pipelines/schema/warehouse.py` and migrated with the platform's schema);
- `fx`: reference rates (`fx_rate`, `fx_rate_daily`), loading, triangulation and carry-over, `rate()`;
- `build`: the tables as data (`WAREHOUSE_TABLES`) and `build_table` (full or incremental, set-based SQL);
- `analytics`: the BI views (`ANALYTICS_VIEWS`, `ensure_analytics_views`);
- `checks`: integrity checks returning `CheckOutcome` (uniqueness, joins, FX coverage, reconciliation,
  freshness).
The analysts' guide with example queries is the README section "For analysts".
"""
