"""Completeness gates: what must hold before the warehouse is built and before anything is exported.

A number travels to a BI tool only when the cache it came from is proven complete and the warehouse equals it
(DESIGN §6a). The gates are plain functions returning `checks.CheckOutcome`, one line per problem naming the
instance, the entity and the numbers; the Dagster layer makes them blocking checks.

- `instances_present`: every instance in the scope (every configured one) has live rows in the cache.
- `cache_complete`: every cache entity of every instance in the scope has a passing completeness check (the
  API's own `Total` against the cache's live rows, `erp_cache.completeness`, written by
  `cin7.completeness.check_entity`) younger than `config.integrity.completeness_max_age_minutes`. An entity
  whose endpoint reports no Total passes on its check alone (there is nothing else to compare).
- `warehouse_gate`: the two above, in front of the warehouse.
- `export_gate`: the two above plus, for the warehouse tables behind the exported views, `unknown_members`
  (`checks.check_dimension_joins`: orphans and unknown members over the allowed share) and
  `reconciles_with_cache` (`checks.reconcile_lines`: every instance and month on both sides, equal to the cent),
  evaluated again at export time so an export run on its own refuses before sending.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import psycopg

from gp_pipelines.cin7.completeness import Completeness
from gp_pipelines.cin7.entities import ENTITIES
from gp_pipelines.cin7.store import create_cache_schema
from gp_pipelines.warehouse import checks
from gp_pipelines.warehouse.build import table_spec
from gp_pipelines.warehouse.checks import CheckOutcome, Scope, markdown_table

C = "erp_cache"
INSTANCES_PRESENT = "instances_present"
CACHE_COMPLETE = "cache_complete"
UNKNOWN_MEMBERS = "unknown_members"
RECONCILES_WITH_CACHE = "reconciles_with_cache"
WAREHOUSE_GATES = (INSTANCES_PRESENT, CACHE_COMPLETE)
EXPORT_GATES = (INSTANCES_PRESENT, CACHE_COMPLETE, UNKNOWN_MEMBERS, RECONCILES_WITH_CACHE)
GATE_DESCRIPTIONS = {
    INSTANCES_PRESENT: "Every configured instance has data in the cache.",
    CACHE_COMPLETE: "Every cache entity of every instance passed its completeness check (the API's Total against "
    "the cache) recently enough.",
    UNKNOWN_MEMBERS: "No orphan keys; lines on an unknown product, customer or location within the allowed share "
    "(0 where the instance's master data is proven complete).",
    RECONCILES_WITH_CACHE: "Line counts and sums per instance and month equal the cache's; no instance or month "
    "missing on either side.",
}


def _scope_instances(scope: Scope) -> list[str]:
    return list(dict.fromkeys(scope.instances))


def _connect(database_url: str) -> psycopg.Connection:
    conn = psycopg.connect(database_url, autocommit=True)
    create_cache_schema(conn)  # a fresh database has no cache yet: the gates then fail, they do not crash
    return conn


def instances_present(database_url: str, scope: Scope) -> CheckOutcome:
    """Every instance of the scope has live rows in at least one cache entity."""
    with _connect(database_url) as conn:
        return instances_present_in(conn, scope)


def instances_present_in(conn: psycopg.Connection, scope: Scope) -> CheckOutcome:
    """`instances_present` on an open connection (the cache schema must exist)."""
    instances = _scope_instances(scope)
    parts = " UNION ALL ".join(
        f"SELECT instance, '{name}' AS entity, count(*) AS n FROM {C}.{entity.table} "
        "WHERE deleted_at IS NULL GROUP BY instance" for name, entity in ENTITIES.items())
    held = conn.execute(f"SELECT instance, sum(n), count(*) FILTER (WHERE n > 0) FROM ({parts}) s GROUP BY 1"
                        ).fetchall()
    by_instance = {inst: (int(rows), int(entities)) for inst, rows, entities in held}
    rows_md, failures = [], []
    for inst in instances:
        rows, entities = by_instance.get(inst, (0, 0))
        rows_md.append([inst, rows, f"{entities} of {len(ENTITIES)}", "ok" if rows else "MISSING"])
        if not rows:
            failures.append(f"instance {inst}: nothing in the cache (0 live rows in all {len(ENTITIES)} entities); "
                            f"sync it first (gp-pipelines sync --instance {inst})")
    if not instances:
        failures.append("no instance is configured")
    missing = sum(1 for r in rows_md if r[-1] != "ok")
    figures = {"instances_required": len(instances), "instances_present": len(instances) - missing,
               "instances_missing": missing}
    for inst in instances:
        figures[f"cache_rows[{inst}]"] = by_instance.get(inst, (0, 0))[0]
    passed = not failures
    description = (f"every instance has data in the cache ({', '.join(instances)})" if passed
                   else f"{figures['instances_missing']} of {len(instances)} instances have nothing in the cache: "
                   + ", ".join(r[0] for r in rows_md if r[-1] != "ok"))
    markdown = markdown_table(["instance", "live rows in the cache", "entities with rows", "status"], rows_md)
    return CheckOutcome(passed, description, markdown, failures, figures)


def cache_complete(database_url: str, scope: Scope, entities: Sequence[str] | None = None) -> CheckOutcome:
    """Every (instance, entity) of the scope has a passing completeness check younger than the allowed age."""
    with _connect(database_url) as conn:
        return cache_complete_in(conn, scope, entities)


def cache_complete_in(conn: psycopg.Connection, scope: Scope, entities: Sequence[str] | None = None) -> CheckOutcome:
    """`cache_complete` on an open connection."""
    instances = _scope_instances(scope)
    names = list(entities or ENTITIES)
    results, now = checks.load_completeness(conn)
    rows_md, failures = [], []
    counts = {"passing": 0, "failed": 0, "unchecked": 0, "stale": 0}
    oldest: float | None = None
    difference_total = 0
    failing_by_instance = dict.fromkeys(instances, 0)
    for inst in instances:
        for name in names:
            result = results.get((inst, name))
            status = _status(result, scope, now)
            counts[status] += 1
            age = None if result is None else (now - result.checked_at).total_seconds() / 60
            if age is not None:
                oldest = age if oldest is None else max(oldest, age)
            if result is not None and result.difference:
                difference_total += abs(result.difference)
            rows_md.append([inst, name, result.checked_at if result else None,
                            None if age is None else f"{age:.0f} min", result.cache_count if result else None,
                            result.api_total if result else None, result.difference if result else None,
                            "ok" if status == "passing" else status.upper()])
            if status != "passing":
                failing_by_instance[inst] += 1
                failures.append(f"instance {inst}, entity {name}: {checks.completeness_text(result, scope, now)}")
    rows_md.sort(key=lambda r: (r[-1] == "ok", r[0], names.index(r[1])))
    figures: dict[str, object] = {
        "entities_required": len(instances) * len(names), "entities_passing": counts["passing"],
        "entities_failed": counts["failed"], "entities_unchecked": counts["unchecked"],
        "entities_stale": counts["stale"], "count_difference_total": difference_total,
        "oldest_check_minutes": round(oldest, 1) if oldest is not None else None,
        "max_age_minutes": scope.completeness_max_age.total_seconds() / 60,
    }
    for inst, failing in failing_by_instance.items():
        figures[f"entities_not_proven[{inst}]"] = failing
    passed = not failures and bool(instances)
    if not instances:
        failures.append("no instance is configured")
    description = (f"{counts['passing']} cache entities of {', '.join(instances)} proven complete against the "
                   "API's Total" if passed
                   else f"{len(failures)} of {len(instances) * len(names)} cache entities not proven complete "
                   f"({counts['unchecked']} never checked, {counts['failed']} failed, {counts['stale']} too old)")
    markdown = markdown_table(["instance", "entity", "checked at", "age", "cache", "API Total", "difference",
                               "status"], rows_md)
    return CheckOutcome(passed, description, markdown, failures, figures)


def _status(result: Completeness | None, scope: Scope, now: datetime) -> str:
    if result is None:
        return "unchecked"
    if not result.passed:
        return "failed"
    return "stale" if now - result.checked_at > scope.completeness_max_age else "passing"


def warehouse_gate(database_url: str, scope: Scope) -> dict[str, CheckOutcome]:
    """The gates in front of the warehouse, by name."""
    with _connect(database_url) as conn:
        return warehouse_gate_in(conn, scope)


def warehouse_gate_in(conn: psycopg.Connection, scope: Scope) -> dict[str, CheckOutcome]:
    """`warehouse_gate` on an open connection (the cache schema must exist)."""
    return {INSTANCES_PRESENT: instances_present_in(conn, scope), CACHE_COMPLETE: cache_complete_in(conn, scope)}


def merge(title: str, outcomes: Sequence[CheckOutcome]) -> CheckOutcome:
    """Several tables' outcomes as one: passed when all passed; failures and figures of each, tables side by side.
    Figures that are numbers are summed (or the maximum, for shares); the others are kept per outcome."""
    failures = [line for outcome in outcomes for line in outcome.failures]
    figures: dict[str, object] = {}
    for outcome in outcomes:
        for key, value in outcome.figures.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if "share" in key:
                figures[key] = max(figures.get(key, 0.0), value)  # type: ignore[call-overload]
            else:
                figures[key] = figures.get(key, 0) + value  # type: ignore[operator]
    markdown = "\n\n".join(f"**{outcome.description}**\n\n{outcome.markdown}" for outcome in outcomes)
    passed = all(outcome.passed for outcome in outcomes)
    failing = [o.description for o in outcomes if not o.passed]
    description = (f"{title}: " + ("; ".join(o.description for o in outcomes) if passed else "; ".join(failing)))
    return CheckOutcome(passed, description, markdown, failures, figures)


def export_tables(tables: Iterable[str | None]) -> list[str]:
    """The warehouse facts behind a set of exports (dimensions and reference tables carry no lines to judge)."""
    return [t for t in dict.fromkeys(tables) if t is not None and table_spec(t).kind == "fact"]


def export_gate(database_url: str, scope: Scope, tables: Iterable[str | None]) -> dict[str, CheckOutcome]:
    """The gates in front of an export of the views built from `tables` (warehouse table names), by name."""
    facts = export_tables(tables)
    gate = warehouse_gate(database_url, scope)
    joins = [checks.check_dimension_joins(database_url, table, scope) for table in facts]
    gate[UNKNOWN_MEMBERS] = (merge("unknown members", joins) if joins
                             else CheckOutcome(True, "no fact table exported: no unknown members to count", ""))
    reconciled = [checks.reconcile_lines(database_url, table, scope) for table in facts
                  if table in checks.RECONCILED_TABLES]
    gate[RECONCILES_WITH_CACHE] = (merge("reconciliation", reconciled) if reconciled
                                   else CheckOutcome(True, "no reconciled fact exported", ""))
    return gate


def combined(gate: dict[str, CheckOutcome], title: str) -> CheckOutcome:
    """A whole gate as one outcome (one blocking check): each failure line prefixed with its gate's name."""
    outcome = merge(title, list(gate.values()))
    outcome.failures = failed(gate)
    return outcome


def failed(gate: dict[str, CheckOutcome]) -> list[str]:
    """Every failure line of a gate, prefixed with the gate's name."""
    return [f"{name}: {line}" for name, outcome in gate.items() for line in outcome.failures]


def refusal(gate: dict[str, CheckOutcome], what: str) -> str | None:
    """The message an export refuses with (None when every gate passed): what was refused, then one line per
    problem."""
    lines = failed(gate)
    if not lines:
        return None
    names = ", ".join(name for name, outcome in gate.items() if not outcome.passed)
    shown = lines[:40] + ([f"... and {len(lines) - 40} more"] if len(lines) > 40 else [])
    return f"{what} refused: the gate(s) {names} failed; nothing was sent.\n" + "\n".join(shown)
