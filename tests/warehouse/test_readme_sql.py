"""Every SQL block in the README runs against the demo's data (the demo's seed, its entities, the warehouse and
the analytics views built): a query the README shows must not fail, and shows rows, on the database `db url`
names."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import psycopg
import pytest

from gp_pipelines.cin7.entities import ENTITIES
from gp_pipelines.sandbox.ecb import EcbSandboxOptions, EcbSandboxServer
from gp_pipelines.warehouse.analytics import ensure_analytics_views
from gp_pipelines.warehouse.build import build_all
from gp_pipelines.warehouse.fx import load_fx_rates
from tests.warehouse.conftest import fill_cache

README = Path(__file__).resolve().parents[2] / "README.md"
DEMO_SEED = 42  # `make demo`'s seed: the README's example SKUs are the demo's


def readme_sql_blocks() -> list[tuple[int, str]]:
    text = README.read_text(encoding="utf-8")
    blocks = []
    for match in re.finditer(r"^```sql\n(.*?)^```", text, flags=re.S | re.M):
        blocks.append((text.count("\n", 0, match.start()) + 1, match.group(1)))
    return blocks


def test_the_readme_has_sql_to_check():
    assert len(readme_sql_blocks()) >= 5


@pytest.fixture(scope="module")
def demo_database(module_database_url):
    fill_cache(module_database_url, seed=DEMO_SEED, entities=list(ENTITIES))
    today = date.today()
    with EcbSandboxServer(EcbSandboxOptions(seed=DEMO_SEED, today=today)) as ecb:
        load_fx_rates(module_database_url, ecb.source(), reporting_currency="USD", today=today)
    build_all(module_database_url, reporting_currency="USD", full=True)
    ensure_analytics_views(module_database_url)
    return module_database_url


@pytest.mark.parametrize(("line", "block"), readme_sql_blocks(), ids=lambda v: f"line{v}" if isinstance(v, int)
                         else "")
def test_readme_sql_block_runs_on_the_demo_database(demo_database, line, block):
    with psycopg.connect(demo_database) as conn:
        try:
            for statement in (part for part in block.split(";") if part.strip(" \n")
                              and not all(row.strip().startswith("--") or not row.strip()
                                          for row in part.splitlines())):
                cursor = conn.execute(statement)
            # The examples are there to show something: on the demo's data each query answers rows.
            assert cursor.description is None or cursor.fetchall(), f"README.md line {line}: no rows on the demo data"
        except psycopg.Error as exc:
            pytest.fail(f"README.md line {line}: {type(exc).__name__}: {exc}")
        finally:
            conn.rollback()
