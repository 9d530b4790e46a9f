"""`gp-pipelines status`: the platform on one screen.

Freshness of every cache entity per instance and of every warehouse table, the completeness gates in front of
the warehouse and the exports (`warehouse.gates`: every instance in the cache, every entity proven complete
against the API's Total), the latest asset check results (one per instance partition for partitioned checks),
the outbox backlog with what is stuck or given up, and EDI interchanges waiting for (or refused by) a 997.
Everything comes from the platform database; check results come from Dagster's instance when one is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from gp_pipelines.automation.attention import age_text
from gp_pipelines.cin7.entities import ENTITIES
from gp_pipelines.warehouse import gates
from gp_pipelines.warehouse.checks import Scope

# How old a sync may be before it is called stale: the documents schedule runs every 15 minutes, master data
# hourly (DESIGN §4); twice the cadence plus slack.
DOCUMENT_ENTITIES = {name for name, entity in ENTITIES.items() if entity.has_detail and entity.incremental}
STALE_AFTER = {"document": timedelta(hours=1), "master": timedelta(hours=3), "warehouse": timedelta(hours=3)}


@dataclass
class StatusReport:
    generated_at: datetime
    cache: list[dict[str, Any]] = field(default_factory=list)
    warehouse: list[dict[str, Any]] = field(default_factory=list)
    gates: list[dict[str, Any]] = field(default_factory=list)  # name, passed, description, figures, failures
    checks: list[dict[str, Any]] = field(default_factory=list)
    outbox_backlog: dict[str, int] = field(default_factory=dict)
    automation_counts: dict[str, int] = field(default_factory=dict)
    attention: list[dict[str, Any]] = field(default_factory=list)  # automation.attention items
    interchanges: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {key: _plain(value) for key, value in self.__dict__.items()} | {"healthy": self.healthy}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _exists(conn: psycopg.Connection, relation: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (relation,)).fetchone()[0]


def _freshness(last: datetime | None, now: datetime, kind: str) -> str:
    if last is None:
        return "never"
    return "stale" if now - last > STALE_AFTER[kind] else "fresh"


def collect_status(conn: psycopg.Connection, instances: Iterable[str],
                   check_results: Callable[[], list[dict[str, Any]]] | None = None,
                   now: datetime | None = None, waiting_after: timedelta = timedelta(hours=24),
                   scope: Scope | None = None) -> StatusReport:
    """Read everything the report shows; a part whose tables do not exist yet reports as never run. Every
    automation item that needs a person (failed, given up, quarantined, waiting longer than `waiting_after`)
    is a problem of its own, named. The gates judge `scope` (the config's thresholds; default: `instances`
    with the default thresholds)."""
    now = now or datetime.now(UTC)
    report = StatusReport(generated_at=now)
    instances = list(instances)
    synced: dict[tuple[str, str], dict[str, Any]] = {}
    if _exists(conn, "erp_cache.sync_state"):
        with conn.cursor(row_factory=dict_row) as cur:
            for row in cur.execute("SELECT instance, entity, last_sync_at, last_full_at, watermark, last_mode "
                                   "FROM erp_cache.sync_state").fetchall():
                synced[(row["instance"], row["entity"])] = row
    for instance in instances:
        for name in ENTITIES:
            row = synced.get((instance, name), {})
            kind = "document" if name in DOCUMENT_ENTITIES else "master"
            state = _freshness(row.get("last_sync_at"), now, kind)
            report.cache.append({"instance": instance, "entity": name, "last_sync_at": row.get("last_sync_at"),
                                 "last_full_at": row.get("last_full_at"), "state": state})
            if state != "fresh":
                report.problems.append(f"cache {instance}/{name} is {state}")
    if _exists(conn, "warehouse.build_state"):
        with conn.cursor(row_factory=dict_row) as cur:
            for row in cur.execute("SELECT table_name, last_built_at, last_mode FROM warehouse.build_state "
                                   "ORDER BY table_name").fetchall():
                state = _freshness(row["last_built_at"], now, "warehouse")
                report.warehouse.append({**row, "state": state})
                if state != "fresh":
                    report.problems.append(f"warehouse {row['table_name']} is {state}")
    else:
        report.problems.append("the warehouse has never been built")
    if synced or _exists(conn, "erp_cache.sync_state"):
        for name, outcome in gates.warehouse_gate_in(conn, scope or Scope(instances=tuple(instances))).items():
            report.gates.append({"name": name, "passed": outcome.passed, "description": outcome.description,
                                 "figures": outcome.figures, "failures": outcome.failures})
            if not outcome.passed:
                report.problems.append(f"gate {name} failed: {outcome.description}")
    else:  # nothing to judge yet (and a status probe does not create the cache's tables)
        report.gates.append({"name": gates.INSTANCES_PRESENT, "passed": False, "figures": {},
                             "description": "the cache has never been synced", "failures": []})
        report.problems.append(f"gate {gates.INSTANCES_PRESENT} failed: the cache has never been synced")
    if check_results is not None:
        try:
            report.checks = check_results()
        except Exception as exc:  # the rest of the report is still worth showing
            report.problems.append(f"check results unavailable: {type(exc).__name__}: {str(exc)[:200]}")
        report.problems += [f"check {_check_name(c)} {c['status']}" for c in report.checks
                            if c["status"] not in ("SUCCEEDED", "SKIPPED", "PLANNED", "IN_PROGRESS")]
    if _exists(conn, "automation.outbox"):
        from gp_pipelines.automation import attention, outbox

        report.outbox_backlog = outbox.backlog(conn)
        report.automation_counts = attention.automation_counts(conn)
        items = attention.attention_items(conn, waiting_after=waiting_after, now=now)
        report.attention = [item.as_dict() for item in items]
        report.problems += [item.line(now) for item in items]
    if _exists(conn, "automation.interchange_status"):
        with conn.cursor(row_factory=dict_row) as cur:
            report.interchanges = cur.execute(
                "SELECT partner, direction, file_name, functional_id, group_control, state, created_at "
                "FROM automation.interchange_status WHERE state IN ('ack_overdue', 'rejected', "
                "'partially_accepted', 'awaiting_ack') ORDER BY created_at").fetchall()
        for row in report.interchanges:
            if row["state"] != "awaiting_ack":
                report.problems.append(f"EDI {row['partner']} group {row['group_control']}: {row['state']}")
    return report


def _check_name(check: dict[str, Any]) -> str:
    partition = check.get("partition")
    return f"{check['asset']}:{check['check']}" + (f"[{partition}]" if partition else "")


def _age(moment: datetime | None, now: datetime) -> str:
    return "never" if moment is None else f"{age_text(now - moment)} ago"


def format_status(report: StatusReport) -> str:
    """The one-screen text: a grid of cache ages (entities × instances), then the other sections."""
    now = report.generated_at
    lines = [f"gp-pipelines status at {now:%Y-%m-%d %H:%M:%S} UTC: "
             + ("healthy" if report.healthy else f"{len(report.problems)} problem(s)"), ""]
    instances = sorted({row["instance"] for row in report.cache})
    marks = {"fresh": " ", "stale": "!", "never": "-"}
    lines.append("ERP cache (last sync; ! stale, - never)")
    lines.append("  " + "entity".ljust(22) + "".join(key.ljust(13) for key in instances))
    by_key = {(row["instance"], row["entity"]): row for row in report.cache}
    for name in ENTITIES:
        cells = []
        for instance in instances:
            row = by_key[(instance, name)]
            cells.append((marks[row["state"]] + _age(row["last_sync_at"], now)).ljust(13))
        lines.append("  " + name.ljust(22) + "".join(cells))
    lines += ["", "Warehouse tables"]
    lines += [f"  {marks[row['state']]}{row['table_name']:<24} built {_age(row['last_built_at'], now)} "
              f"({row['last_mode']})" for row in report.warehouse] or ["  never built"]
    lines += ["", "Gates in front of the warehouse and the exports"]
    for gate in report.gates:
        lines.append(f"  {' ' if gate['passed'] else '!'}{gate['name']}: {gate['description']}")
        shown = gate["failures"][:8]
        lines += [f"      {line}" for line in shown]
        if len(gate["failures"]) > len(shown):
            lines.append(f"      ... and {len(gate['failures']) - len(shown)} more")
    lines += ["", "Latest checks (per instance partition where the check is partitioned)"]
    failing = [c for c in report.checks if c["status"] != "SUCCEEDED"]
    lines.append(f"  {len(report.checks) - len(failing)} of {len(report.checks)} passed"
                 if report.checks else "  no check results (run a job, or point DAGSTER_HOME at the instance)")
    lines += [f"  ! {_check_name(c)} {c['status']} ({_age(c.get('at'), now)})" for c in failing]
    lines += ["", "Automation"]
    if report.outbox_backlog:
        counts = report.automation_counts
        for kind in ("sale", "fulfilment", "file"):
            present = [f"{name.removeprefix(kind + '_')} {count}" for name, count in counts.items()
                       if name.startswith(kind + "_") and count]
            lines.append(f"  {kind}s: " + (", ".join(present) or "none"))
        lines.append("  outbox: " + ", ".join(f"{state} {count}" for state, count in report.outbox_backlog.items()))
        lines += [f"  ! {item['kind']} {item['reason']}: {item['instance'] + '/' if item['instance'] else ''}"
                  f"{item['subject']}: {item['detail'][:90]}" for item in report.attention]
    else:
        lines.append("  no automation has run")
    lines += ["", "EDI acknowledgements"]
    lines += [f"  {'!' if row['state'] != 'awaiting_ack' else ' '}{row['partner']} {row['functional_id']} "
              f"group {row['group_control']} ({row['file_name']}): {row['state']}"
              for row in report.interchanges] or ["  nothing outstanding"]
    if report.problems:
        lines += ["", "Problems"] + [f"  - {problem}" for problem in report.problems]
    return "\n".join(lines)


def dagster_check_results(dagster_home: str | None = None, defs: Any = None) -> list[dict[str, Any]]:
    """The latest result of every asset check the definitions declare, from the Dagster instance's event log
    (DAGSTER_HOME, or the given folder): one per partition for a partitioned check (each instance's own state,
    as the UI shows it), one otherwise."""
    import os

    import dagster as dg
    from dagster._core.event_api import PartitionKeyFilter

    if defs is None:
        from gp_pipelines.definitions import defs
    graph = defs.resolve_asset_graph()
    keys = sorted(graph.asset_check_keys, key=lambda key: key.to_user_string())
    home = dagster_home or os.environ.get("DAGSTER_HOME")
    if not home or not os.path.isdir(home):
        return []
    results = []
    with dg.DagsterInstance.from_config(home) as instance:
        storage = instance.event_log_storage
        partitioned = {key: graph.get(key).partitions_def for key in keys}
        summaries = storage.get_asset_check_summary_records([k for k in keys if partitioned[k] is None])
        for key in keys:
            partitions_def = partitioned[key]
            if partitions_def is None:
                record = summaries[key].last_check_execution_record if key in summaries else None
                if record is not None:
                    results.append(_check_row(key, record, None))
                continue
            for partition in partitions_def.get_partition_keys():
                history = storage.get_asset_check_execution_history(
                    key, limit=1, partition_filter=PartitionKeyFilter(key=partition))
                if history:
                    results.append(_check_row(key, history[0], _record_partition(history[0]) or partition))
    return results


def _record_partition(record: Any) -> str | None:
    if getattr(record, "partition", None):
        return record.partition
    event = record.event.dagster_event if record.event is not None else None
    return getattr(event.event_specific_data, "partition", None) if event is not None else None


def _check_row(key: Any, record: Any, partition: str | None) -> dict[str, Any]:
    return {"asset": key.asset_key.to_user_string(), "check": key.name, "partition": partition,
            "status": record.status.value, "at": datetime.fromtimestamp(record.create_timestamp, UTC),
            "run_id": record.run_id}
