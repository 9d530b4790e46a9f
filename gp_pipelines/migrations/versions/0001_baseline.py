"""Baseline: the schema as it was when migrations were introduced, for empty databases and adopted ones.

Databases made before migrations have no alembic_version; their tables were created on first use by the
code of the time. `0001_baseline.sql` creates what is missing (IF NOT EXISTS), repairs what older releases
left different and carries old rows over, so upgrading such a database keeps every row.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    sql = (Path(__file__).with_suffix(".sql")).read_text()
    # On psycopg's own connection: a script of many statements (and a DO block) runs as one simple query.
    op.get_bind().connection.driver_connection.execute(sql)


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported")
