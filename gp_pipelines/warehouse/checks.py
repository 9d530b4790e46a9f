"""Integrity checks on the warehouse, as plain functions returning `CheckOutcome` (the Dagster layer wraps each
in an asset check; `blocking` says which ones must stop downstream assets).

Every outcome carries the compared figures side by side as a markdown table (`markdown`), the numbers as
`figures`, and on failure `failures`: one line per problem naming the instance, the month and the difference.

- `check_unique_keys`: no two rows share the table's natural key (nor its surrogate key).
- `check_dimension_joins`: every foreign key of every row finds its dimension row; rows on the unknown member
  (key 0) pass but are counted. Orphans (a key with no dimension row, or NULL where required) fail.
- `check_fx_coverage`: every row has a reporting amount and (when currencies differ) a base amount; the oldest
  rate age (transaction day − publication day of the rate used) is reported.
- `reconcile_sale_lines` / `reconcile_invoice_lines` (and credit-note / purchase lines): per instance, month and
  document currency, the line count and the sum of line `Total` read straight from the JSONB cache against the
  fact table, exact to the cent.
- `check_freshness`: the cache's newest change per instance (and its sync watermark) against what the table's
  last build consumed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from gp_pipelines.warehouse.build import table_spec
from gp_pipelines.warehouse.schema import WAREHOUSE_SCHEMA

W = WAREHOUSE_SCHEMA
C = "erp_cache"
MAX_MARKDOWN_ROWS = 200
BLOCKING_CHECKS = ("unique_keys", "dimension_joins", "fx_coverage", "reconcile")  # freshness only warns


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


def check_unique_keys(database_url: str, table: str) -> CheckOutcome:
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


def check_dimension_joins(database_url: str, table: str) -> CheckOutcome:
    spec = table_spec(table)
    month = _month_expr(spec)
    rows_md, failures = [], []
    figures: dict[str, Any] = {"unknown_member_rows": 0, "orphan_rows": 0}
    with _connect(database_url) as conn:
        total = conn.execute(f"SELECT count(*) FROM {spec.qualified}").fetchone()[0]
        figures["rows"] = total
        for fk in spec.foreign_keys:
            dim = f"{W}.{fk.dimension}"
            missing_null = f"f.{fk.column} IS NULL" if fk.required else "false"
            orphan = f"({missing_null} OR (f.{fk.column} IS NOT NULL AND d.{fk.dimension_key} IS NULL))"
            instance_join = (f"LEFT JOIN {W}.dim_instance di ON di.instance_key = f.instance_key"
                             if "instance_key" in spec.key_columns else "")
            instance = "coalesce(di.instance, '(none)')" if instance_join else "'(all)'"
            joined, unknown, orphans = conn.execute(
                f"""SELECT count(*) FILTER (WHERE d.{fk.dimension_key} IS NOT NULL AND f.{fk.column} <> 0),
                           count(*) FILTER (WHERE f.{fk.column} = 0 AND d.{fk.dimension_key} IS NOT NULL),
                           count(*) FILTER (WHERE {orphan})
                      FROM {spec.qualified} f LEFT JOIN {dim} d ON d.{fk.dimension_key} = f.{fk.column}"""
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
                         WHERE {orphan} GROUP BY 1, 2 ORDER BY 1, 2"""
                ).fetchall():
                    failures.append(f"{table}: instance {inst} month {mon}: {count} rows with {fk.column} "
                                    f"not in {fk.dimension} (e.g. {example or 'NULL'}; difference {count} rows)")
    markdown = markdown_table(
        ["foreign key", "dimension", "rows", "joined", "unknown member (0)", "null (optional)", "orphans"], rows_md
    )
    passed = not failures
    description = (f"{table}: every row joins its dimensions ({figures['unknown_member_rows']} on unknown members)"
                   if passed else f"{table}: {figures['orphan_rows']} orphan foreign keys")
    return CheckOutcome(passed, description, markdown, failures, figures)


# -- FX coverage -----------------------------------------------------------------------------------------------


def check_fx_coverage(database_url: str, table: str) -> CheckOutcome:
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
    """(instance, month, currency, cache lines, warehouse lines, cache amount, warehouse amount) per group."""
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
                       round(coalesce(c.amount, 0), 2), round(coalesce(w.amount, 0), 2)
                  FROM cache c FULL JOIN warehouse w
                    ON w.instance = c.instance AND w.month = c.month AND w.currency IS NOT DISTINCT FROM c.currency
                 ORDER BY 1, 2, 3"""
        ).fetchall()


def reconcile_lines(database_url: str, table: str) -> CheckOutcome:
    """Line counts and amounts per instance, month and document currency: JSONB cache vs fact, to the cent."""
    rows = _reconciled_groups(database_url, table)
    md_rows, failures = [], []
    for inst, mon, ccy, c_lines, w_lines, c_amount, w_amount in rows:
        line_diff, amount_diff = w_lines - c_lines, w_amount - c_amount
        ok = line_diff == 0 and amount_diff == 0
        md_rows.append([inst, mon, ccy, c_lines, w_lines, c_amount, w_amount, amount_diff, "ok" if ok else "MISMATCH"])
        if not ok:
            failures.append(f"{table}: instance {inst} month {mon} currency {ccy}: cache {c_lines} lines / "
                            f"{c_amount:,.2f}, warehouse {w_lines} lines / {w_amount:,.2f} (difference "
                            f"{line_diff:+d} lines / {amount_diff:+,.2f})")
    md_rows.sort(key=lambda r: (r[-1] == "ok", r[0] or "", r[1] or "", r[2] or ""))
    markdown = markdown_table(["instance", "month", "currency", "cache lines", "warehouse lines", "cache amount",
                               "warehouse amount", "difference", "status"], md_rows)
    figures = {
        "groups": len(rows), "groups_mismatched": len(failures),
        "cache_lines": sum(r[3] for r in rows), "warehouse_lines": sum(r[4] for r in rows),
    }
    passed = not failures
    description = (f"{table}: {figures['cache_lines']} lines in {len(rows)} instance/month/currency groups agree "
                   "with the cache to the cent" if passed
                   else f"{table}: {len(failures)} instance/month/currency groups differ from the cache")
    return CheckOutcome(passed, description, markdown, failures, figures)


def reconcile_sale_lines(database_url: str) -> CheckOutcome:
    return reconcile_lines(database_url, "fact_sale_line")


def reconcile_invoice_lines(database_url: str) -> CheckOutcome:
    return reconcile_lines(database_url, "fact_invoice_line")


def reconcile_credit_note_lines(database_url: str) -> CheckOutcome:
    return reconcile_lines(database_url, "fact_credit_note_line")


def reconcile_purchase_lines(database_url: str) -> CheckOutcome:
    return reconcile_lines(database_url, "fact_purchase_line")


# -- freshness -------------------------------------------------------------------------------------------------


def check_freshness(database_url: str, table: str, *, max_lag: timedelta = timedelta(0)) -> CheckOutcome:
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
        for inst, _month, _ccy, c_lines, w_lines, c_amount, w_amount in _reconciled_groups(database_url, table):
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
    run: Any  # Callable[[str], CheckOutcome]: takes the database URL

    def __call__(self, database_url: str) -> CheckOutcome:
        return self.run(database_url)


_RECONCILED = {"fact_sale_line", "fact_invoice_line", "fact_credit_note_line", "fact_purchase_line"}


def table_checks(table: str) -> list[TableCheck]:
    """The checks that apply to one warehouse table. Uniqueness, joins, FX coverage and reconciliation block;
    freshness warns (a stale table is still right, only late)."""
    spec = table_spec(table)
    found = [TableCheck("unique_keys", table, True, "no two rows share a key",
                        lambda url: check_unique_keys(url, table))]
    if spec.foreign_keys:
        found.append(TableCheck("dimension_joins", table, True, "every row joins its dimensions (unknowns counted)",
                                lambda url: check_dimension_joins(url, table)))
    if spec.has_money:
        found.append(TableCheck("fx_coverage", table, True, "every line has base and reporting amounts",
                                lambda url: check_fx_coverage(url, table)))
    if table in _RECONCILED:
        found.append(TableCheck("reconcile", table, True,
                                "line counts and sums per instance, month and currency equal the cache",
                                lambda url: reconcile_lines(url, table)))
    if spec.kind == "fact":
        found.append(TableCheck("freshness", table, False, "built through the cache's latest change",
                                lambda url: check_freshness(url, table)))
    return found
