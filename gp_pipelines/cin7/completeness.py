"""Durable completeness results: per (instance, entity), the API's own `Total` against the cache's live rows.

The cache's `matches_api_total` check records each result here as well as in Dagster, so the gates in front
of the warehouse and the exports (`warehouse/gates.py`) read the proof from PostgreSQL: which instance and
entity was checked, when, with which numbers, and whether the last sync left a problem behind (a reconcile
refused, records stamped ahead of the API's clock).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from gp_pipelines.cin7 import store
from gp_pipelines.cin7.client import Cin7Client
from gp_pipelines.cin7.entities import Entity
from gp_pipelines.cin7.store import COMPLETENESS
from gp_pipelines.cin7.sync import api_total


@dataclass(frozen=True)
class Completeness:
    instance: str
    entity: str
    checked_at: datetime
    api_total: int | None
    cache_count: int
    passed: bool
    problems: list[str] = field(default_factory=list)

    @property
    def difference(self) -> int | None:
        return None if self.api_total is None else self.cache_count - self.api_total


def record_completeness(conn: psycopg.Connection, instance: str, entity: str, *, api_total: int | None,
                        cache_count: int, passed: bool, problems: list[str] | None = None) -> Completeness:
    """Store one check's result (the latest per instance and entity wins); the cache schema must exist."""
    row = conn.execute(
        f"""INSERT INTO {COMPLETENESS} (instance, entity, checked_at, api_total, cache_count, passed, problems)
            VALUES (%s, %s, now(), %s, %s, %s, %s)
            ON CONFLICT (instance, entity) DO UPDATE SET checked_at = EXCLUDED.checked_at,
                api_total = EXCLUDED.api_total, cache_count = EXCLUDED.cache_count, passed = EXCLUDED.passed,
                problems = EXCLUDED.problems
            RETURNING checked_at""",
        (instance, entity, api_total, cache_count, passed, json.dumps(problems or [])),
    ).fetchone()
    return Completeness(instance, entity, row[0], api_total, cache_count, passed, list(problems or []))


def completeness_results(conn: psycopg.Connection) -> dict[tuple[str, str], Completeness]:
    """Every stored result, by (instance, entity); the cache schema must exist."""
    rows = conn.execute(
        f"SELECT instance, entity, checked_at, api_total, cache_count, passed, problems FROM {COMPLETENESS}"
    ).fetchall()
    return {(r[0], r[1]): Completeness(r[0], r[1], r[2], r[3], r[4], r[5], list(r[6] or [])) for r in rows}


def as_row(result: Completeness) -> dict[str, Any]:
    return {"instance": result.instance, "entity": result.entity, "checked_at": result.checked_at.isoformat(),
            "api_total": result.api_total, "cache_count": result.cache_count, "passed": result.passed,
            "problems": result.problems}


def sync_problems(last_result: dict[str, Any]) -> list[str]:
    """What the entity's last sync left for a person to look at (kept in `sync_state.last_result`)."""
    problems = []
    refused = last_result.get("refused_reconcile")
    if refused:
        problems.append(f"reconcile refused: it would have marked {refused['would_delete']} of {refused['live']} "
                        f"live rows deleted (more than {refused['max_share']:.0%}); rows kept")
    if last_result.get("future_stamped"):
        problems.append(f"{last_result['future_stamped']} record(s) stamped ahead of the API's clock "
                        f"(newest {last_result.get('future_newest')}); not used as the watermark")
    return problems


def check_entity(database_url: str, client: Cin7Client, instance: str, entity: Entity) -> Completeness:
    """One cheap call for the API's `Total`, the cache's live count, the last sync's problems; stored.

    Passes when the counts are equal (or the endpoint reports no Total) and the last sync refused nothing."""
    expected = api_total(client, entity)
    with psycopg.connect(database_url, autocommit=True) as conn:
        store.create_cache_schema(conn)
        cached = store.live_count(conn, instance, entity)
        last_result = store.load_state(conn, instance, entity).last_result
        problems = sync_problems(last_result)
        passed = (expected is None or expected == cached) and not last_result.get("refused_reconcile")
        return record_completeness(conn, instance, entity.name, api_total=expected, cache_count=cached,
                                   passed=passed, problems=problems)
