"""Integrity checks on the warehouse, as plain functions returning `CheckOutcome` (the Dagster layer wraps each
in an asset check; `blocking` says which ones must stop downstream assets).

Every outcome carries the compared figures side by side as a markdown table (`markdown`), the numbers as
`figures`, and on failure `failures`: one line per problem naming the instance, the month and the difference.

- `check_unique_keys`: no two rows share the table's natural key (nor its surrogate key).
- `check_dimension_joins`: every foreign key of every row finds its dimension row. Orphans (a key with no
  dimension row, or NULL where required) fail. Rows on the unknown member (key 0) fail above a share of the
  instance's lines (`Scope.max_unknown_share`, `config.integrity.max_unknown_share`, default 0.1 %), per instance
  and foreign key. For a product, customer or location key none at all is allowed on a document synced before
  that instance's master data was last proven *complete* (its products, customers or locations passed a
  completeness check against an API Total, younger than `Scope.completeness_max_age`): the record the document
  names existed when the cache was proven to hold every record, so the cache has it. Only lines of documents
  synced since the proof (which may name a record created after it) are allowed the share.
- `check_fx_coverage`: every row has a reporting amount and (when currencies differ) a base amount; the oldest
  rate age (transaction day − publication day of the rate used) is reported.
- `reconcile_sale_lines` / `reconcile_invoice_lines` (and credit-note / purchase lines): per instance, month and
  document currency, the line count and the sum of line `Total` read straight from the JSONB cache against the
  fact table, exact to the cent. A group on one side only fails (a month or an instance missing), and so does
  an instance the scope requires (every configured one) that is on neither side, unless the cache is proven to
  hold everything of it (`proven_empty_instances`: a passing, recent completeness check of the source
  documents, and no lines of this kind in them).
- `check_freshness`: the cache's newest change per instance (and its sync watermark) against what the table's
  last build consumed.

Every check takes a `Scope`: the instances it must find (the configured ones) and, for a run limited to one
instance (`gp-pipelines warehouse build --instance KEY`), the only instance whose rows it judges.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import psycopg

from gp_pipelines.cin7.completeness import Completeness, completeness_results
from gp_pipelines.cin7.store import create_cache_schema
from gp_pipelines.warehouse.build import TableSpec, table_spec
from gp_pipelines.warehouse.schema import WAREHOUSE_SCHEMA

if TYPE_CHECKING:
    from gp_pipelines.config import PlatformConfig

W = WAREHOUSE_SCHEMA
C = "erp_cache"
MAX_MARKDOWN_ROWS = 200


@dataclass
class CheckOutcome:
    passed: bool
    description: str
    markdown: str
    failures: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def as_metadata(self) -> dict[str, Any]:
        return {"result": self.markdown, **self.figures,
                **({"failures": "\n".join(self.failures[:50])} if self.failures else {})}


@dataclass(frozen=True)
class Scope:
    """Which instances a check answers for, and the integrity thresholds (`config.integrity`).

    `instances` must all be there (the configured ones); empty means nothing is required. `limited` judges only
    those instances' rows (a run for one instance); otherwise every instance in the data is judged."""

    instances: tuple[str, ...] = ()
    limited: bool = False
    max_unknown_share: float = 0.001
    completeness_max_age: timedelta = timedelta(hours=26)

    def covers(self, instance: str | None) -> bool:
        # "(all)": a table without an instance column (dates, rates) is shared by every instance.
        return not self.limited or instance in self.instances or instance == "(all)"


def scope_from_config(config: PlatformConfig, instance: str | None = None) -> Scope:
    """The configured instances and thresholds; with `instance`, only that one (a KeyError names an unknown
    key)."""
    if instance is not None:
        config.instance(instance)
    return Scope(
        instances=(instance,) if instance else tuple(config.instance_keys),
        limited=instance is not None,
        max_unknown_share=config.integrity.max_unknown_share,
        completeness_max_age=timedelta(minutes=config.integrity.completeness_max_age_minutes),
    )


def load_completeness(conn: psycopg.Connection) -> tuple[dict[tuple[str, str], Completeness], datetime]:
    """The stored completeness results by (instance, entity), and the database's clock to age them by."""
    create_cache_schema(conn)
    return completeness_results(conn), conn.execute("SELECT now()").fetchone()[0]


def proven_complete(result: Completeness | None, scope: Scope, now: datetime) -> bool:
    """A passing completeness check that compared against an API Total, no older than the scope allows."""
    return (result is not None and result.passed and result.api_total is not None
            and now - result.checked_at <= scope.completeness_max_age)


def completeness_text(result: Completeness | None, scope: Scope, now: datetime) -> str:
    """Why an (instance, entity) is or is not proven complete, with its numbers."""
    if result is None:
        return "no completeness check recorded (not synced and checked yet)"
    age = (now - result.checked_at).total_seconds() / 3600
    counts = (f"cache {result.cache_count}, API Total "
              f"{'not reported' if result.api_total is None else result.api_total}"
              + (f" (difference {result.difference:+d})" if result.difference else ""))
    if not result.passed:
        return f"completeness check failed {age:.1f} h ago: {counts}" + "".join(f"; {p}" for p in result.problems)
    if age * 3600 > scope.completeness_max_age.total_seconds():
        return (f"last passing completeness check {age:.1f} h old ({counts}), older than the allowed "
                f"{scope.completeness_max_age.total_seconds() / 3600:.1f} h")
    if result.api_total is None:
        return f"completeness check passed {age:.1f} h ago without an API Total to compare ({counts})"
    return f"completeness check passed {age:.1f} h ago ({counts})"


def _connect(database_url: str) -> psycopg.Connection:
    conn = psycopg.connect(database_url, autocommit=True)
    conn.execute("SET TIME ZONE 'UTC'")
    return conn


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def markdown_table(headers: list[str], rows: list[list[Any]], *, limit: int = MAX_MARKDOWN_ROWS) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows[:limit]]
    if len(rows) > limit:
        lines.append(f"| … {len(rows) - limit} more rows | " + " | ".join("" for _ in headers[1:]) + " |")
    return "\n".join(lines)


def _month_expr(spec) -> str:
    return f"coalesce(to_char(f.{spec.date_column}, 'YYYY-MM'), '(no date)')" if spec.date_column else "'(all)'"


# -- uniqueness ----------------------------------------------------------------------------------------------


def check_unique_keys(database_url: str, table: str, scope: Scope | None = None) -> CheckOutcome:
    scope = scope or Scope()
    spec = table_spec(table)
    if table == "fx_rate":
        spec_table, keys = f"{W}.fx_rate_daily", list(spec.key_columns)
    else:
        spec_table, keys = spec.qualified, list(spec.key_columns)
    key_sets = [keys] + ([[spec.surrogate_key]] if spec.surrogate_key else [])
    has_instance = "instance_key" in keys
    rows_md, failures, figures = [], [], {"rows": 0}
    with _connect(database_url) as conn:
        figures["rows"] = conn.execute(f"SELECT count(*) FROM {spec_table}").fetchone()[0]
        for key_set in key_sets:
            label = ", ".join(key_set)
            month = _month_expr(spec) if spec.kind == "fact" else "'(all)'"
            instance = "coalesce(di.instance, '(none)')" if has_instance else "'(all)'"
            join = f"LEFT JOIN {W}.dim_instance di ON di.instance_key = f.instance_key" if has_instance else ""
            dupes = conn.execute(
                f"""SELECT {instance}, {month}, {', '.join('f.' + k + '::text' for k in key_set)}, count(*)
                      FROM {spec_table} f {join}
                     GROUP BY {', '.join(str(i) for i in range(1, len(key_set) + 3))}
                    HAVING count(*) > 1 ORDER BY 1, 2"""
            ).fetchall()
            dupes = [r for r in dupes if scope.covers(r[0])]
            distinct_keys = conn.execute(
                f"SELECT count(*) FROM (SELECT DISTINCT {', '.join(key_set)} FROM {spec_table}) d"
            ).fetchone()[0]
            extra = sum(r[-1] - 1 for r in dupes)
            rows_md.append([label, figures["rows"], distinct_keys, len(dupes), extra])
            figures[f"duplicate_keys[{label}]"] = len(dupes)
            for r in dupes[:50]:
                key_text = ", ".join(f"{k}={v}" for k, v in zip(key_set, r[2:-1], strict=True))
                failures.append(f"{table}: instance {r[0]} month {r[1]}: key ({key_text}) appears {r[-1]} times "
                                f"(difference +{r[-1] - 1} rows)")
    markdown = markdown_table(["key", "rows", "distinct keys", "duplicated keys", "extra rows"], rows_md)
    passed = not failures
    description = (f"{table}: every key unique ({figures['rows']} rows)" if passed
                   else f"{table}: {len(failures)} duplicated keys")
    return CheckOutcome(passed, description, markdown, failures, figures)


# -- referential integrity -------------------------------------------------------------------------------------


def master_data_entity(dimension: str) -> str | None:
    """The one cache entity a dimension is read from (products, customers, locations), else None."""
    spec = table_spec(dimension)
    return spec.inputs[0] if spec.kind == "dimension" and len(spec.inputs) == 1 else None


def _unknown_before(conn: psycopg.Connection, spec: TableSpec, instance: str, fk_column: str,
                    proven_at: datetime) -> int:
    """Lines on the unknown member whose cache document was synced no later than `proven_at`."""
    if spec.document_entity and spec.document_column:
        return conn.execute(
            f"""SELECT count(*) FROM {spec.qualified} f JOIN {W}.dim_instance di ON di.instance_key = f.instance_key
                  JOIN {C}.{spec.document_entity} c ON c.instance = di.instance AND c.id = f.{spec.document_column}
                 WHERE di.instance = %s AND f.{fk_column} = 0 AND c.synced_at <= %s""",
            (instance, proven_at)).fetchone()[0]
    # No document per line (stock): the instance's newest input sync stands for every line.
    parts = " UNION ALL ".join(f"SELECT max(synced_at) AS s FROM {C}.{e} WHERE instance = %(i)s" for e in spec.inputs)
    newest = conn.execute(f"SELECT max(s) FROM ({parts}) x", {"i": instance}).fetchone()[0]
    if newest is None or newest > proven_at:
        return 0
    return conn.execute(
        f"""SELECT count(*) FROM {spec.qualified} f JOIN {W}.dim_instance di ON di.instance_key = f.instance_key
             WHERE di.instance = %s AND f.{fk_column} = 0""", (instance,)).fetchone()[0]


def _instance_filter(scope: Scope, alias: str = "di") -> tuple[str, tuple[Any, ...]]:
    return (f"AND {alias}.instance = ANY(%s)", (list(scope.instances),)) if scope.limited else ("", ())


def check_dimension_joins(database_url: str, table: str, scope: Scope | None = None) -> CheckOutcome:
    """Orphan keys fail; rows on the unknown member fail above the allowed share per instance and foreign key
    (see the module docstring for when the allowed share is 0)."""
    scope = scope or Scope()
    spec = table_spec(table)
    month = _month_expr(spec)
    has_instance = "instance_key" in spec.key_columns
    instance_join = f"LEFT JOIN {W}.dim_instance di ON di.instance_key = f.instance_key" if has_instance else ""
    instance = "coalesce(di.instance, '(none)')" if has_instance else "'(all)'"
    where, params = _instance_filter(scope) if has_instance else ("", ())
    rows_md, failures = [], []
    figures: dict[str, Any] = {"unknown_member_rows": 0, "orphan_rows": 0, "unknown_share_max": 0.0,
                               "unknown_over_allowed": 0}
    with _connect(database_url) as conn:
        create_cache_schema(conn)  # the completeness results and the document stamps live there
        total = conn.execute(f"SELECT count(*) FROM {spec.qualified} f {instance_join} WHERE true {where}",
                             params).fetchone()[0]
        figures["rows"] = total
        for fk in spec.foreign_keys:
            dim = f"{W}.{fk.dimension}"
            missing_null = f"f.{fk.column} IS NULL" if fk.required else "false"
            orphan = f"({missing_null} OR (f.{fk.column} IS NOT NULL AND d.{fk.dimension_key} IS NULL))"
            joined, unknown, orphans = conn.execute(
                f"""SELECT count(*) FILTER (WHERE d.{fk.dimension_key} IS NOT NULL AND f.{fk.column} <> 0),
                           count(*) FILTER (WHERE f.{fk.column} = 0 AND d.{fk.dimension_key} IS NOT NULL),
                           count(*) FILTER (WHERE {orphan})
                      FROM {spec.qualified} f LEFT JOIN {dim} d ON d.{fk.dimension_key} = f.{fk.column}
                      {instance_join} WHERE true {where}""", params
            ).fetchone()
            nulls = total - joined - unknown - orphans
            rows_md.append([fk.column, fk.dimension, total, joined, unknown, nulls, orphans])
            figures["unknown_member_rows"] += unknown
            figures["orphan_rows"] += orphans
            figures[f"unknown[{fk.column}]"] = unknown
            if orphans:
                for inst, mon, count, example in conn.execute(
                    f"""SELECT {instance}, {month}, count(*), min(f.{fk.column}::text)
                          FROM {spec.qualified} f LEFT JOIN {dim} d ON d.{fk.dimension_key} = f.{fk.column}
                          {instance_join}
                         WHERE {orphan} {where} GROUP BY 1, 2 ORDER BY 1, 2""", params
                ).fetchall():
                    failures.append(f"{table}: instance {inst} month {mon}: {count} rows with {fk.column} "
                                    f"not in {fk.dimension} (e.g. {example or 'NULL'}; difference {count} rows)")
        share_md = _unknown_shares(conn, spec, scope, instance, instance_join, where, params, failures, figures)
    markdown = markdown_table(
        ["foreign key", "dimension", "rows", "joined", "unknown member (0)", "null (optional)", "orphans"], rows_md
    ) + "\n\n**Unknown members per instance**\n\n" + share_md
    passed = not failures
    if passed:
        description = (f"{table}: every row joins its dimensions ({figures['unknown_member_rows']} on unknown "
                       "members, within the allowed share)")
    else:
        description = (f"{table}: {figures['orphan_rows']} orphan foreign keys, {figures['unknown_over_allowed']} "
                       "instance/dimension pairs with more unknown members than allowed")
    return CheckOutcome(passed, description, markdown, failures, figures)


def _unknown_shares(conn: psycopg.Connection, spec: TableSpec, scope: Scope, instance: str, instance_join: str,
                    where: str, params: tuple[Any, ...], failures: list[str], figures: dict[str, Any]) -> str:
    """Per instance and foreign key: lines on the unknown member against the allowed share; appends failures
    and figures, returns the markdown table."""
    fks = list(spec.foreign_keys)
    if spec.kind != "fact" or not fks:
        return "(judged on facts only: a dimension's own key-0 row is its unknown member)"
    counts = conn.execute(
        f"""SELECT {instance}, count(*), {', '.join(f'count(*) FILTER (WHERE f.{fk.column} = 0)' for fk in fks)}
              FROM {spec.qualified} f {instance_join} WHERE true {where} GROUP BY 1 ORDER BY 1""", params
    ).fetchall()
    results, now = load_completeness(conn)
    rows_md = []
    share_text = f"{scope.max_unknown_share:.2%} of lines"
    for inst, lines, *unknowns in counts:
        worst = 0.0
        for fk, unknown in zip(fks, unknowns, strict=True):
            share = unknown / lines if lines else 0.0
            worst = max(worst, share)
            entity = master_data_entity(fk.dimension)
            master = results.get((inst, entity)) if entity else None
            proven = entity is not None and proven_complete(master, scope, now)
            before = _unknown_before(conn, spec, inst, fk.column, master.checked_at) if proven and unknown else 0
            allowed_text = (f"0 on documents synced before {inst}'s {entity} were proven complete, else "
                            f"{share_text}" if proven else share_text)
            ok = before == 0 and share <= scope.max_unknown_share
            rows_md.append([inst, fk.column, fk.dimension, lines, unknown, f"{share:.2%}", allowed_text,
                            "ok" if ok else "TOO MANY"])
            if ok:
                continue
            figures["unknown_over_allowed"] += 1
            line = (f"{spec.name}: instance {inst}, dimension {fk.dimension} ({fk.column}): {unknown} of {lines} "
                    f"lines on the unknown member ({share:.2%}")
            if before:
                line += (f"); {before} of them on documents synced before {inst}'s {entity} were proven complete "
                         "(allowed 0)")
            else:
                line += f"; allowed {share_text})"
            failures.append(line)
        figures[f"lines[{inst}]"] = lines
        figures[f"unknown_rows[{inst}]"] = sum(unknowns)
        figures[f"unknown_share[{inst}]"] = round(worst, 6)
        figures["unknown_share_max"] = max(figures["unknown_share_max"], round(worst, 6))
    rows_md.sort(key=lambda r: (r[-1] == "ok", r[0], r[1]))
    return markdown_table(["instance", "foreign key", "dimension", "lines", "unknown member (0)", "share",
                           "allowed", "status"], rows_md)


# -- FX coverage -----------------------------------------------------------------------------------------------


def check_fx_coverage(database_url: str, table: str, scope: Scope | None = None) -> CheckOutcome:
    scope = scope or Scope()
    spec = table_spec(table)
    if not spec.has_money:
        raise ValueError(f"{table} has no money columns")
    month = _month_expr(spec)
    with _connect(database_url) as conn:
        rows = conn.execute(
            f"""SELECT di.instance, {month}, count(*),
                       count(*) FILTER (WHERE f.amount_reporting IS NOT NULL),
                       count(*) FILTER (WHERE f.amount_reporting IS NULL),
                       count(*) FILTER (WHERE f.base_rate_missing OR f.amount_base IS NULL),
                       max(f.{spec.date_column} - f.reporting_rate_date),
                       min(f.reporting_rate_date)
                  FROM {spec.qualified} f JOIN {W}.dim_instance di ON di.instance_key = f.instance_key
                 GROUP BY 1, 2 ORDER BY 1, 2"""
        ).fetchall()
        reporting_currency = conn.execute(
            f"SELECT min(reporting_currency) FROM {spec.qualified}"
        ).fetchone()[0]
    rows = [r for r in rows if scope.covers(r[0])]
    failures = []
    for inst, mon, lines, _covered, missing, no_base, _age, _oldest in rows:
        if missing:
            failures.append(f"{table}: instance {inst} month {mon}: {missing} of {lines} lines have no reporting "
                            f"amount (no {reporting_currency} rate on or before their date; difference {missing})")
        if no_base:
            failures.append(f"{table}: instance {inst} month {mon}: {no_base} of {lines} lines have no base amount "
                            f"(document rate missing or zero; difference {no_base})")
    ages = [r[6] for r in rows if r[6] is not None]
    figures = {
        "rows": sum(r[2] for r in rows),
        "rows_without_reporting_amount": sum(r[4] for r in rows),
        "rows_without_base_amount": sum(r[5] for r in rows),
        "oldest_rate_age_days": max(ages) if ages else None,
        "reporting_currency": reporting_currency,
    }
    md_rows = [[r[0], r[1], r[2], r[3], r[4], r[5], r[6]] for r in rows]
    md_rows.sort(key=lambda r: (-(r[4] + r[5]), r[0], r[1]))  # problems first
    markdown = markdown_table(["instance", "month", "lines", "with reporting amount", "missing reporting",
                               "missing base", "oldest rate age (days)"], md_rows)
    passed = not failures
    description = (f"{table}: every line has base and reporting amounts; oldest rate "
                   f"{figures['oldest_rate_age_days']} days" if passed
                   else f"{table}: {figures['rows_without_reporting_amount']} lines without a reporting amount, "
                        f"{figures['rows_without_base_amount']} without a base amount")
    return CheckOutcome(passed, description, markdown, failures, figures)


# -- reconciliation --------------------------------------------------------------------------------------------


def _lines(expr: str) -> str:
    return f"jsonb_array_elements(CASE WHEN jsonb_typeof({expr}) = 'array' THEN {expr} ELSE '[]'::jsonb END)"


# The cache side, written straight against the JSONB (not through the build's SQL): instance, month, document
# currency, line count, sum of line Total.
_CACHE_SIDE: dict[str, str] = {
    "fact_sale_line": f"""
        SELECT c.instance, coalesce(left(c.payload->>'SaleOrderDate', 7), '(no date)') AS month,
               upper(coalesce(nullif(c.payload->>'CustomerCurrency', ''), c.payload->>'BaseCurrency')) AS currency,
               count(l.line) AS lines, coalesce(sum((l.line->>'Total')::numeric), 0) AS amount
          FROM {C}.sales c CROSS JOIN LATERAL {_lines("c.payload->'Order'->'Lines'")} AS l(line)
         WHERE c.deleted_at IS NULL GROUP BY 1, 2, 3""",
    "fact_invoice_line": f"""
        SELECT c.instance, coalesce(left(t.task->>'InvoiceDate', 7), '(no date)') AS month,
               upper(coalesce(nullif(c.payload->>'CustomerCurrency', ''), c.payload->>'BaseCurrency')) AS currency,
               count(l.line) AS lines, coalesce(sum((l.line->>'Total')::numeric), 0) AS amount
          FROM {C}.sales c CROSS JOIN LATERAL {_lines("c.payload->'Invoices'")} AS t(task)
         CROSS JOIN LATERAL {_lines("t.task->'Lines'")} AS l(line)
         WHERE c.deleted_at IS NULL GROUP BY 1, 2, 3""",
    "fact_credit_note_line": f"""
        SELECT c.instance, coalesce(left(t.task->>'CreditNoteDate', 7), '(no date)') AS month,
               upper(coalesce(nullif(c.payload->>'CustomerCurrency', ''), c.payload->>'BaseCurrency')) AS currency,
               count(l.line) AS lines, coalesce(sum((l.line->>'Total')::numeric), 0) AS amount
          FROM {C}.sales c CROSS JOIN LATERAL {_lines("c.payload->'CreditNotes'")} AS t(task)
         CROSS JOIN LATERAL {_lines("t.task->'Lines'")} AS l(line)
         WHERE c.deleted_at IS NULL GROUP BY 1, 2, 3""",
    "fact_purchase_line": f"""
        SELECT c.instance, coalesce(left(c.payload->>'OrderDate', 7), '(no date)') AS month,
               upper(coalesce(nullif(c.payload->>'SupplierCurrency', ''), c.payload->>'BaseCurrency')) AS currency,
               count(l.line) AS lines, coalesce(sum((l.line->>'Total')::numeric), 0) AS amount
          FROM {C}.purchases c CROSS JOIN LATERAL {_lines("c.payload->'Order'->'Lines'")} AS l(line)
         WHERE c.deleted_at IS NULL GROUP BY 1, 2, 3""",
}


def _reconciled_groups(database_url: str, table: str) -> list[tuple]:
    """(instance, month, currency, cache lines, warehouse lines, cache amount, warehouse amount, in the cache,
    in the warehouse) per group."""
    spec = table_spec(table)
    month = _month_expr(spec)
    with _connect(database_url) as conn:
        return conn.execute(
            f"""WITH cache AS ({_CACHE_SIDE[table]}),
                warehouse AS (
                    SELECT di.instance, {month} AS month, f.currency, count(*) AS lines, sum(f.amount) AS amount
                      FROM {spec.qualified} f LEFT JOIN {W}.dim_instance di ON di.instance_key = f.instance_key
                     GROUP BY 1, 2, 3
                )
                SELECT coalesce(c.instance, w.instance), coalesce(c.month, w.month),
                       coalesce(c.currency, w.currency),
                       coalesce(c.lines, 0), coalesce(w.lines, 0),
                       round(coalesce(c.amount, 0), 2), round(coalesce(w.amount, 0), 2),
                       c.instance IS NOT NULL, w.instance IS NOT NULL
                  FROM cache c FULL JOIN warehouse w
                    ON w.instance = c.instance AND w.month = c.month AND w.currency IS NOT DISTINCT FROM c.currency
                 ORDER BY 1, 2, 3"""
        ).fetchall()


def _rows_of_kind(conn: psycopg.Connection, spec: TableSpec) -> dict[str, int]:
    """Per instance, how many rows of this table's kind the cache holds: lines for the reconciled facts, live
    records of the input entities otherwise."""
    if spec.name in _CACHE_SIDE:
        return dict(conn.execute(f"SELECT instance, sum(lines) FROM ({_CACHE_SIDE[spec.name]}) c GROUP BY 1"
                                 ).fetchall())
    if not spec.inputs:
        return {}
    parts = " UNION ALL ".join(f"SELECT instance, count(*) AS n FROM {C}.{e} WHERE deleted_at IS NULL "
                               "GROUP BY instance" for e in spec.inputs)
    return dict(conn.execute(f"SELECT instance, sum(n) FROM ({parts}) s GROUP BY 1").fetchall())


def source_entities(spec: TableSpec) -> tuple[str, ...]:
    return (spec.document_entity,) if spec.document_entity else spec.inputs


def absent_instance_reasons(database_url: str, table: str, instances: Iterable[str],
                            scope: Scope) -> dict[str, str | None]:
    """For instances that have no rows of `table`'s kind on either side of a comparison: None when the cache
    proves that is the truth (no such rows in the cache, and every source entity of the instance proven complete
    by a recent completeness check), else the reason it is a failure, with the numbers."""
    spec = table_spec(table)
    reasons: dict[str, str | None] = {}
    with _connect(database_url) as conn:
        create_cache_schema(conn)
        held = _rows_of_kind(conn, spec)
        results, now = load_completeness(conn)
    for inst in instances:
        if held.get(inst):
            reasons[inst] = f"the cache holds {held[inst]} rows of it"
        elif not spec.inputs:
            reasons[inst] = "nothing in the cache proves it empty"
        else:
            unproven = [f"{entity}: {completeness_text(results.get((inst, entity)), scope, now)}"
                        for entity in source_entities(spec)
                        if not proven_complete(results.get((inst, entity)), scope, now)]
            reasons[inst] = "; ".join(unproven) or None
    return reasons


def proven_empty_instances(database_url: str, table: str, instances: Iterable[str], scope: Scope) -> set[str]:
    return {inst for inst, reason in absent_instance_reasons(database_url, table, instances, scope).items()
            if reason is None}


def reconcile_lines(database_url: str, table: str, scope: Scope | None = None) -> CheckOutcome:
    """Line counts and amounts per instance, month and document currency: JSONB cache vs fact, to the cent. A
    group present on one side only fails; so does a required instance on neither side, unless proven empty."""
    scope = scope or Scope()
    rows = [r for r in _reconciled_groups(database_url, table) if scope.covers(r[0])]
    md_rows, failures = [], []
    differing = missing = 0
    for inst, mon, ccy, c_lines, w_lines, c_amount, w_amount, in_cache, in_warehouse in rows:
        line_diff, amount_diff = w_lines - c_lines, w_amount - c_amount
        ok = line_diff == 0 and amount_diff == 0
        status = ("ok" if ok else "MISSING IN WAREHOUSE" if not in_warehouse
                  else "MISSING IN CACHE" if not in_cache else "MISMATCH")
        md_rows.append([inst, mon, ccy, c_lines, w_lines, c_amount, w_amount, amount_diff, status])
        if ok:
            continue
        if in_cache and in_warehouse:
            differing += 1
        else:
            missing += 1
        where = "" if in_cache and in_warehouse else (" — missing in the warehouse" if not in_warehouse
                                                         else " — not in the cache")
        failures.append(f"{table}: instance {inst} month {mon} currency {ccy}: cache {c_lines} lines / "
                        f"{c_amount:,.2f}, warehouse {w_lines} lines / {w_amount:,.2f} (difference "
                        f"{line_diff:+d} lines / {amount_diff:+,.2f}){where}")
    seen = {r[0] for r in rows}
    absent = [inst for inst in scope.instances if inst not in seen]
    instances_missing = 0
    for inst, reason in absent_instance_reasons(database_url, table, absent, scope).items():
        if reason is None:
            md_rows.append([inst, "(all)", "", 0, 0, Decimal(0), Decimal(0), Decimal(0), "none (proven empty)"])
            continue
        instances_missing += 1
        md_rows.append([inst, "(all)", "", 0, 0, Decimal(0), Decimal(0), Decimal(0), "INSTANCE MISSING"])
        failures.append(f"{table}: instance {inst}: absent from both the cache and the warehouse (0 lines); the "
                        f"cache must have it: {reason}")
    md_rows.sort(key=lambda r: (r[-1] == "ok" or r[-1].startswith("none"), r[0] or "", r[1] or "", r[2] or ""))
    markdown = markdown_table(["instance", "month", "currency", "cache lines", "warehouse lines", "cache amount",
                               "warehouse amount", "difference", "status"], md_rows)
    figures = {
        "groups": len(rows), "groups_mismatched": differing + missing, "groups_differing": differing,
        "groups_missing": missing, "instances_missing": instances_missing,
        "cache_lines": sum(r[3] for r in rows), "warehouse_lines": sum(r[4] for r in rows),
    }
    for inst in sorted({r[0] for r in rows if r[0]}):
        figures[f"cache_lines[{inst}]"] = sum(r[3] for r in rows if r[0] == inst)
        figures[f"warehouse_lines[{inst}]"] = sum(r[4] for r in rows if r[0] == inst)
    passed = not failures
    if passed:
        description = (f"{table}: {figures['cache_lines']} lines in {len(rows)} instance/month/currency groups "
                       "agree with the cache to the cent")
    else:
        description = (f"{table}: {differing} instance/month/currency groups differ from the cache, {missing} "
                       f"are on one side only, {instances_missing} instances are missing")
    return CheckOutcome(passed, description, markdown, failures, figures)


def reconcile_sale_lines(database_url: str, scope: Scope | None = None) -> CheckOutcome:
    return reconcile_lines(database_url, "fact_sale_line", scope)


def reconcile_invoice_lines(database_url: str, scope: Scope | None = None) -> CheckOutcome:
    return reconcile_lines(database_url, "fact_invoice_line", scope)


def reconcile_credit_note_lines(database_url: str, scope: Scope | None = None) -> CheckOutcome:
    return reconcile_lines(database_url, "fact_credit_note_line", scope)


def reconcile_purchase_lines(database_url: str, scope: Scope | None = None) -> CheckOutcome:
    return reconcile_lines(database_url, "fact_purchase_line", scope)


# -- freshness -------------------------------------------------------------------------------------------------


def check_freshness(database_url: str, table: str, scope: Scope | None = None, *,
                    max_lag: timedelta = timedelta(0)) -> CheckOutcome:
    """Fresh when, for every instance, the newest change in the table's cache inputs (`synced_at`/`deleted_at`)
    is no later than what the table's last build consumed plus `max_lag`. The cache's own sync watermark (the
    newest Cin7 modified stamp stored) is shown beside it."""
    spec = table_spec(table)
    if not spec.inputs:
        raise ValueError(f"{table} reads no cache table")
    changes = " UNION ALL ".join(
        f"SELECT instance, max(greatest(synced_at, deleted_at)) AS changed FROM {C}.{e} GROUP BY instance"
        for e in spec.inputs
    )
    with _connect(database_url) as conn:
        built = conn.execute(
            f"SELECT input_stamp, last_built_at, last_mode FROM {W}.build_state WHERE table_name = %s", (table,)
        ).fetchone()
        rows = conn.execute(
            f"""SELECT ch.instance, max(ch.changed) AS changed,
                       (SELECT max(watermark) FROM {C}.sync_state s
                         WHERE s.instance = ch.instance AND s.entity = ANY(%s)) AS watermark
                  FROM ({changes}) ch GROUP BY ch.instance ORDER BY ch.instance""",
            (list(spec.inputs),),
        ).fetchall()
    rows = [r for r in rows if (scope or Scope()).covers(r[0])]
    consumed = built[0] if built else None
    md_rows, failures, lags = [], [], []
    for inst, changed, watermark in rows:
        lag = (changed - consumed) if (changed and consumed) else None
        stale = consumed is None or (changed is not None and changed > consumed + max_lag)
        if lag is not None:
            lags.append(max(lag, timedelta(0)).total_seconds())
        md_rows.append([inst, watermark, changed, consumed,
                        f"{max(lag, timedelta(0)).total_seconds():.0f} s" if lag is not None else "never built",
                        "STALE" if stale else "ok"])
        if stale:
            month = changed.strftime("%Y-%m") if changed else "(none)"
            failures.append(
                f"{table}: instance {inst} month {month}: cache changed at {_fmt(changed)} but the table was "
                + (f"built through {_fmt(consumed)} (difference {lag.total_seconds():.0f} s)" if consumed
                   else "never built")
            )
    markdown = markdown_table(["instance", "cache sync watermark", "cache last change", "warehouse built through",
                               "lag", "status"], md_rows)
    figures = {"built_through": consumed.isoformat() if consumed else None,
               "last_built_at": built[1].isoformat() if built and built[1] else None,
               "max_lag_seconds": max(lags) if lags else None}
    passed = not failures
    description = f"{table}: up to date with the cache" if passed else f"{table}: behind the cache"
    return CheckOutcome(passed, description, markdown, failures, figures)


def reconciliation_summary(database_url: str, tables: tuple[str, ...] = ("fact_sale_line", "fact_invoice_line",
                                                                        "fact_credit_note_line",
                                                                        "fact_purchase_line")) -> CheckOutcome:
    """One compact table for the demo and the run log: per fact and instance, the instance/month/currency
    groups compared, how many differ, and the line counts on both sides."""
    rows = []
    failures = 0
    for table in tables:
        per_instance: dict[str, list[int]] = {}
        for inst, _month, _ccy, c_lines, w_lines, c_amount, w_amount, *_ in _reconciled_groups(database_url,
                                                                                                  table):
            entry = per_instance.setdefault(inst, [0, 0, 0, 0])
            bad = c_lines != w_lines or c_amount != w_amount
            entry[0] += 1
            entry[1] += bad
            entry[2] += c_lines
            entry[3] += w_lines
            failures += bad
        for instance, (groups, bad, cache_lines, warehouse_lines) in sorted(per_instance.items()):
            rows.append([table, instance, groups, bad, cache_lines, warehouse_lines, "ok" if not bad else "MISMATCH"])
    markdown = markdown_table(["table", "instance", "instance/month/currency groups", "groups differing",
                               "cache lines", "warehouse lines", "status"], rows)
    passed = not failures
    return CheckOutcome(passed, "reconciliation " + ("passed" if passed else f"failed: {failures} groups differ"),
                        markdown, [], {"tables": len(tables), "groups_differing": failures})


# -- which checks apply to which table, as data (the Dagster layer builds one asset check per entry) -----------


@dataclass(frozen=True)
class TableCheck:
    name: str  # e.g. "unique_keys"; the asset check's name
    table: str
    blocking: bool  # a failure must stop downstream assets (exports)
    description: str
    run: Any  # Callable[[str, Scope | None], CheckOutcome]: takes the database URL and the scope

    def __call__(self, database_url: str, scope: Scope | None = None) -> CheckOutcome:
        return self.run(database_url, scope)


RECONCILED_TABLES = frozenset({"fact_sale_line", "fact_invoice_line", "fact_credit_note_line", "fact_purchase_line"})


def table_checks(table: str) -> list[TableCheck]:
    """The checks that apply to one warehouse table, named as the Dagster asset checks are. Uniqueness, joins,
    FX coverage and reconciliation block; freshness warns (a stale table is still right, only late). The rate
    table has its own asset and no table checks."""
    spec = table_spec(table)
    if spec.kind == "fx":
        return []
    found = [TableCheck("unique_keys", table, True, "No two rows share the table's key.",
                        lambda url, scope=None: check_unique_keys(url, table, scope))]
    if spec.kind != "fact":
        return found
    found.append(TableCheck(
        "dimension_joins", table, True,
        "Every row joins its dimensions; lines on an unknown member stay within the allowed share per instance "
        "(integrity.max_unknown_share; 0 where the instance's master data is proven complete).",
        lambda url, scope=None: check_dimension_joins(url, table, scope)))
    if spec.has_money:
        found.append(TableCheck("fx_coverage", table, True,
                                "Every line has its base and reporting amounts; the oldest rate age is shown.",
                                lambda url, scope=None: check_fx_coverage(url, table, scope)))
    if table in RECONCILED_TABLES:
        found.append(TableCheck(
            "reconciles_with_cache", table, True,
            "Line counts and document-currency sums per instance and month equal the cache's, to the cent; an "
            "instance or a month missing on either side fails.",
            lambda url, scope=None: reconcile_lines(url, table, scope)))
    found.append(TableCheck("fresh", table, False, "Built from the cache's latest sync of its inputs.",
                            lambda url, scope=None: check_freshness(url, table, scope)))
    return found
