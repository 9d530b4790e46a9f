"""The platform's tables, described once with SQLAlchemy Core on one `MetaData` (`model.metadata`), and the
migrations that bring any database to them (DESIGN.md §3).

- `cache`, `automation`, `warehouse` (tables generated from specs), `exports`: the tables per schema;
- `derived`: views, SQL functions and unknown-member rows, recreated by every upgrade (not migrated);
- `migrate`: `upgrade`, `current_revision`, `head_revision` and the run-time guard `ensure_schema`.
"""

from gp_pipelines.schema import automation, cache, exports, warehouse  # noqa: F401  (fill the metadata)
from gp_pipelines.schema.migrate import (
    SchemaOutOfDateError,
    current_revision,
    ensure_schema,
    head_revision,
    index_ddl,
    metadata_ddl,
    upgrade,
)
from gp_pipelines.schema.model import metadata

__all__ = ["SchemaOutOfDateError", "current_revision", "ensure_schema", "head_revision", "index_ddl", "metadata",
           "metadata_ddl", "upgrade"]
