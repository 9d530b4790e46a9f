"""The `analytics` views published to Zoho Analytics, proven equal to the warehouse by reading them back.

One Zoho table per view (`<prefix><view>`), kept as two copies: the **live** table readers use and a
**standby** (`<prefix><view>__standby`) holding the previous version. An export never writes to the live
table. It loads the standby, reads the standby back through the SQL export (row counts and sums of the amount
columns per instance and month, the same SQL text run on PostgreSQL), and only when every group agrees swaps
the two by renaming. A failed upload or a failed comparison leaves the live table as it was.

How the standby is loaded (the import type), per table (`ExportSpec.incremental`):

- the small dimensions (products, customers, locations, instances): always a full `truncateadd` (a few units,
  and a full load needs no row bookkeeping);
- facts (sales, invoices, credit notes, purchases, stock) and the large, append-mostly reference tables (dates,
  FX rates): `updateadd` on the table's key of only the rows that differ from what the standby holds (per-row
  hashes kept in PostgreSQL), which costs 15 units per 1,000 rows against a full reload's 10 for every row. A
  full `truncateadd` is chosen instead when it is cheaper, when the standby's content is unknown (the first two
  exports, as the standby is the previous version, or after a failed one), or when rows were deleted (an
  import cannot delete rows). Months are not used as the unit of change: a per-row hash sends fewer rows and
  needs no delete either.

`truncateadd` also suits a retry: Zoho commits it only after the last batch, so a job that fails part-way
leaves nothing half-loaded, and the whole job can simply be sent again.

Nothing is uploaded when the view's content hash equals the live table's and the live table's last read-back
agreed. API units are budgeted in a ledger (`exports.zoho_units`): an export that would take the day's spend
(UTC) past `daily_unit_budget` stops before any call that changes anything, naming the table, the units it
needs and the units left. State lives in schema `exports`; Zoho view ids (stable across renames) key it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import psycopg

from gp_pipelines.connectors.zoho import (
    SYNC_IMPORT_MAX_BYTES,
    ZohoAnalyticsClient,
    ZohoJobError,
    import_units,
)
from gp_pipelines.schema import ensure_schema
from gp_pipelines.schema.model import EXPORTS_SCHEMA
from gp_pipelines.warehouse.analytics import ANALYTICS_VIEWS
from gp_pipelines.warehouse.checks import Scope, absent_instance_reasons, markdown_table
from gp_pipelines.warehouse.schema import ANALYTICS_SCHEMA

if TYPE_CHECKING:  # pandas and numpy are imported where a frame is made: the code location loads without them
    import numpy as np
    import pandas as pd

X = EXPORTS_SCHEMA
STANDBY_SUFFIX = "__standby"
SWAP_SUFFIX = "__old"  # the live table's name for the moment of a swap
DATE_FORMAT = "yyyy-MM-dd"
DEFAULT_TOLERANCE = Decimal("0.005")  # sums must agree to the cent
_KEY_SEPARATOR = "\x1f"
_NO_GROUP = "(all)"
_NO_VALUE = "(none)"

log = logging.getLogger(__name__)


class ZohoExportError(RuntimeError):
    """An export could not be completed; the live table was left as it was."""


class ZohoBudgetExceeded(ZohoExportError):
    """The export would take the day's API units past the budget; nothing was sent."""

    def __init__(self, view: str, needed: int, left: int, budget: int, spent: int, detail: str) -> None:
        self.view, self.needed, self.left, self.budget, self.spent = view, needed, left, budget, spent
        super().__init__(
            f"Zoho export of table {view!r} stopped before starting: it needs {needed} API units ({detail}) but "
            f"only {left} of today's budget of {budget} are left ({spent} spent today, UTC). Raise "
            "zoho_analytics.daily_unit_budget or wait for tomorrow's units."
        )


class ZohoVerificationError(ZohoExportError):
    """The table read back from Zoho differs from the warehouse."""

    def __init__(self, verification: Verification, message: str) -> None:
        self.verification = verification
        super().__init__(message)


# -- what is exported ----------------------------------------------------------------------------------------

_MONEY_SUMS = ("quantity", "amount_document", "tax_document", "amount_base", "amount_reporting")


@dataclass(frozen=True)
class ExportSpec:
    """How one analytics view is exported and verified. `month_column` is the date the read-back groups by
    (per month); `sum_columns` are summed per group on both sides, the last one shown in the summaries."""

    view: str
    kind: str  # "fact", "dimension" or "reference"
    key_columns: tuple[str, ...]
    instance_column: str | None = "instance_code"
    month_column: str | None = None
    sum_columns: tuple[str, ...] = ()
    incremental: bool = False  # changed rows by key (updateadd); False: always a full reload
    warehouse_table: str | None = None  # the warehouse table the view reads (the gates judge it)

    @property
    def primary_sum(self) -> str | None:
        return self.sum_columns[-1] if self.sum_columns else None


EXPORT_SPECS: dict[str, ExportSpec] = {
    spec.view: spec
    for spec in (
        ExportSpec("sales", "fact", ("instance_key", "sale_id", "line_number"), month_column="order_date",
                   sum_columns=_MONEY_SUMS, incremental=True, warehouse_table="fact_sale_line"),
        ExportSpec("invoices", "fact", ("instance_key", "sale_id", "invoice_task_id", "line_number"),
                   month_column="invoice_date", sum_columns=_MONEY_SUMS, incremental=True,
                   warehouse_table="fact_invoice_line"),
        ExportSpec("credit_notes", "fact", ("instance_key", "sale_id", "credit_note_task_id", "line_number"),
                   month_column="credit_note_date", sum_columns=_MONEY_SUMS, incremental=True,
                   warehouse_table="fact_credit_note_line"),
        ExportSpec("purchases", "fact", ("instance_key", "purchase_id", "line_number"), month_column="order_date",
                   sum_columns=_MONEY_SUMS, incremental=True, warehouse_table="fact_purchase_line"),
        ExportSpec("stock", "fact", ("instance_key", "location_name", "sku"),
                   sum_columns=("quantity_on_hand", "quantity_allocated", "quantity_available", "quantity_on_order",
                                "quantity_in_transit", "stock_value_base"), incremental=True,
                   warehouse_table="fact_stock"),
        # Dimensions have no amounts to speak of: their surrogate keys are summed as a checksum.
        ExportSpec("products", "dimension", ("product_key",), sum_columns=("product_key", "average_cost_base"),
                   warehouse_table="dim_product"),
        ExportSpec("customers", "dimension", ("customer_key",), sum_columns=("customer_key",),
                   warehouse_table="dim_customer"),
        ExportSpec("locations", "dimension", ("location_key",), sum_columns=("location_key",),
                   warehouse_table="dim_location"),
        ExportSpec("dates", "reference", ("date_key",), instance_column=None, sum_columns=("date_key",),
                   incremental=True, warehouse_table="dim_date"),
        ExportSpec("instances", "dimension", ("instance_key",), sum_columns=("instance_key",),
                   warehouse_table="dim_instance"),
        ExportSpec("fx_rates", "reference", ("date", "currency", "reporting_currency"), instance_column=None,
                   month_column="date", sum_columns=("rate",), incremental=True, warehouse_table="fx_rate"),
    )
}


def export_spec(view: str) -> ExportSpec:
    spec = EXPORT_SPECS.get(view)
    if spec is None:
        known = ", ".join(EXPORT_SPECS)
        if view in ANALYTICS_VIEWS:
            raise ZohoExportError(f"analytics view {view!r} has no Zoho export spec in warehouse/zoho_export.py "
                                  f"(EXPORT_SPECS); add one to export it (specs exist for: {known})")
        raise ZohoExportError(f"{view!r} is not an analytics view; known: {known}")
    return spec


@dataclass(frozen=True)
class ExportSettings:
    """Where and how exports go (from `ZohoAnalyticsConfig`; no secrets here)."""

    org_id: str
    workspace_id: str
    daily_unit_budget: int = 10_000
    table_prefix: str = ""
    max_batch_bytes: int = 50_000_000
    sum_tolerance: Decimal = DEFAULT_TOLERANCE
    import_attempts: int = 2  # a job that ends in error is sent again this many times in all

    def live_name(self, view: str) -> str:
        return self.table_prefix + view

    def standby_name(self, view: str) -> str:
        return self.live_name(view) + STANDBY_SUFFIX

    def swap_name(self, view: str) -> str:
        return self.live_name(view) + SWAP_SUFFIX


# -- pure parts: types, CSV, hashes, batches, plans ----------------------------------------------------------

_ZOHO_TYPES = {"smallint": "NUMBER", "integer": "NUMBER", "bigint": "NUMBER", "numeric": "DECIMAL_NUMBER",
               "real": "DECIMAL_NUMBER", "double precision": "DECIMAL_NUMBER", "boolean": "BOOLEAN",
               "date": "DATE"}


def zoho_type(pg_type: str) -> str:
    """The Zoho column type for a PostgreSQL one. Timestamps travel as text (`YYYY-MM-DD HH:MM:SS`, UTC): one
    import has one date format, and the dates use `yyyy-MM-dd`."""
    return _ZOHO_TYPES.get(pg_type, "PLAIN")


def format_cell(pg_type: str, value: Any) -> str:
    """A value as it goes into the CSV: exact decimals (never exponent notation), ISO dates, true/false."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def text_frame(columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """Rows from PostgreSQL as a frame of CSV text, one column per (name, PostgreSQL type)."""
    import pandas as pd

    # Straight from the tuples: a DataFrame built first would turn a nullable integer column into floats.
    data = {name: [format_cell(pg_type, row[i]) for row in rows] for i, (name, pg_type) in enumerate(columns)}
    return pd.DataFrame(data, columns=[name for name, _ in columns], dtype=object)


def frame_csv(frame: pd.DataFrame, *, header: bool = True) -> bytes:
    return frame.to_csv(index=False, header=header, lineterminator="\n").encode("utf-8")


def content_hash(frame: pd.DataFrame, zoho_columns: Sequence[tuple[str, str]]) -> str:
    """sha256 of the column design and the CSV text: any changed value, column or type changes it."""
    digest = hashlib.sha256(json.dumps([list(c) for c in zoho_columns]).encode())
    digest.update(frame_csv(frame))
    return digest.hexdigest()


def row_keys(frame: pd.DataFrame, key_columns: Sequence[str]) -> pd.Series:
    keys = frame[key_columns[0]].astype(object)
    for column in key_columns[1:]:
        keys = keys + _KEY_SEPARATOR + frame[column].astype(object)
    return keys


def row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """A 64-bit hash per row of the text frame (pandas' stable, keyed hash), as int64 for PostgreSQL."""
    import numpy as np
    import pandas as pd

    if frame.empty:
        return np.zeros(0, dtype=np.int64)
    return pd.util.hash_pandas_object(frame, index=False).to_numpy().view(np.int64)


def csv_batches(frame: pd.DataFrame, max_bytes: int, *, label: str = "table") -> list[tuple[bytes, int]]:
    """Split the frame into CSV files of at most `max_bytes` each, every one with the header row, rows in
    order: (bytes, rows) per batch. A row that alone exceeds the limit is an error naming it."""
    header = frame_csv(frame.iloc[0:0])
    if len(header) >= max_bytes:
        raise ZohoExportError(f"{label}: the header row alone takes {len(header)} bytes; the batch limit is "
                              f"{max_bytes}")
    total = len(frame)
    if total == 0:
        return []
    sample = frame.iloc[: min(total, 1000)]
    average = max(1.0, len(frame_csv(sample, header=False)) / len(sample))
    step = max(1, int((max_bytes - len(header)) / average * 0.95))
    batches: list[tuple[bytes, int]] = []
    start = 0
    while start < total:
        end = min(total, start + step)
        chunk = frame_csv(frame.iloc[start:end])
        if len(chunk) > max_bytes:
            if end - start == 1:
                raise ZohoExportError(f"{label}: row {start + 1} alone takes {len(chunk) - len(header)} bytes, "
                                      f"more than the batch limit of {max_bytes} bytes")
            step = max(1, (end - start) // 2)
            continue
        batches.append((chunk, end - start))
        start = end
    return batches


def batch_units(batches: Sequence[tuple[bytes, int]], import_type: str) -> int:
    return sum(import_units(rows, import_type) for _, rows in batches)


@dataclass(frozen=True)
class ImportPlan:
    """What an export sends to the standby: `import_type` None means nothing (the standby already holds the
    content, or the content is empty and the standby is recreated empty)."""

    import_type: str | None
    rows: int
    full: bool
    reason: str
    why: str = ""  # a short label for summaries: changed rows, new standby, rows deleted, ...

    @property
    def estimated_units(self) -> int:
        return import_units(self.rows, self.import_type) if self.import_type else 0


def choose_import_plan(spec: ExportSpec, total_rows: int, *, standby_known: bool, changed_rows: int = 0,
                       deleted_rows: int = 0, force_full: bool = False) -> ImportPlan:
    """Pick how the standby gets the new content (see the module docstring)."""
    def full(why: str, reason: str) -> ImportPlan:
        if total_rows == 0:
            return ImportPlan(None, 0, True, reason + "; the view is empty, so the standby is recreated empty",
                              "empty")
        return ImportPlan("truncateadd", total_rows, True, reason, why)

    if force_full:
        return full("full reload asked for", "a full reload was asked for")
    if not spec.incremental:
        return full("always in full", f"{spec.view} is a small {spec.kind}: always reloaded in full")
    if not standby_known:
        return full("new standby", "the standby's content is not known (new, or its last load failed)")
    if deleted_rows:
        return full("rows deleted", f"{deleted_rows} rows left the view; an import cannot delete rows")
    if changed_rows == 0:
        return ImportPlan(None, 0, False, "the standby already holds this content", "standby current")
    if import_units(changed_rows, "updateadd") >= import_units(total_rows, "truncateadd"):
        return full("full is cheaper", f"{changed_rows} of {total_rows} rows changed: a full reload costs fewer "
                                       "units")
    return ImportPlan("updateadd", changed_rows, False,
                      f"{changed_rows} of {total_rows} rows changed since the standby was loaded", "changed rows")


# -- verification: the same SQL on both sides ----------------------------------------------------------------


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def verification_sql(spec: ExportSpec, table_sql: str) -> str:
    """Counts and sums per instance and day: plain SQL both PostgreSQL and Zoho run as written (no date
    functions; days are rolled up into months after reading)."""
    groups = [_quote(c) for c in (spec.instance_column, spec.month_column) if c]
    select = [*groups, 'COUNT(*) AS "row_count"'] + [f"SUM({_quote(c)}) AS {_quote('sum_' + c)}"
                                                     for c in spec.sum_columns]
    sql = f"SELECT {', '.join(select)} FROM {table_sql}"
    if groups:
        sql += " GROUP BY " + ", ".join(groups)
    return sql


_ISO_MONTH = re.compile(r"^(\d{4})-(\d{2})")
_DATE_FORMATS = ("%d %b %Y", "%d %b, %Y", "%b %d, %Y", "%d-%b-%Y", "%Y/%m/%d")


def month_of(value: Any) -> str | None:
    """`YYYY-MM` of a date from either side (a date object, ISO text, or a spelled-out month)."""
    if value is None or value == "":
        return None
    if isinstance(value, (date, datetime)):
        return value.strftime("%Y-%m")
    text = str(value).strip()
    match = _ISO_MONTH.match(text)
    if match:
        return f"{match.group(1)}-{match.group(2)}"
    for pattern in _DATE_FORMATS:
        try:
            return datetime.strptime(text, pattern).strftime("%Y-%m")
        except ValueError:
            continue
    raise ValueError(f"cannot read the date {text!r}; expected yyyy-MM-dd (the format the export imports with)")


def _decimal(value: Any, where: str) -> Decimal:
    if value is None or value == "":
        return Decimal(0)
    if isinstance(value, Decimal):
        return value
    try:
        return Decimal(str(value).replace(",", ""))
    except InvalidOperation:
        raise ValueError(f"{where}: {value!r} is not a number") from None


@dataclass(frozen=True)
class GroupFigures:
    rows: int
    sums: tuple[Decimal, ...]


Aggregates = dict[tuple[str, str], GroupFigures]


def aggregate(spec: ExportSpec, records: Iterable[Sequence[Any]], *, side: str) -> Aggregates:
    """Roll the verification query's rows (group values, count, sums — in select order) up to (instance,
    month)."""
    width = len(spec.sum_columns)
    groups = [c for c in (spec.instance_column, spec.month_column) if c]
    totals: dict[tuple[str, str], list[Any]] = {}
    for record in records:
        values = list(record)
        position = 0
        instance = month = _NO_GROUP
        if spec.instance_column:
            raw = values[position]
            instance = _NO_VALUE if raw is None or raw == "" else str(raw)
            position += 1
        if spec.month_column:
            try:
                month = month_of(values[position]) or _NO_VALUE
            except ValueError as exc:
                raise ValueError(f"{side}, {spec.view}.{spec.month_column}: {exc}") from None
            position += 1
        if len(values) != len(groups) + 1 + width:
            raise ValueError(f"{side}: the verification query returned {len(values)} columns, expected "
                             f"{len(groups) + 1 + width}")
        count = int(_decimal(values[position], f"{side} row_count"))
        sums = [_decimal(v, f"{side} sum of {c}") for v, c in zip(values[position + 1:], spec.sum_columns,
                                                                    strict=True)]
        entry = totals.setdefault((instance, month), [0, [Decimal(0)] * width])
        entry[0] += count
        entry[1] = [a + b for a, b in zip(entry[1], sums, strict=True)]
    return {key: GroupFigures(rows, tuple(sums)) for key, (rows, sums) in totals.items()}


@dataclass(frozen=True)
class GroupComparison:
    instance: str
    month: str
    warehouse: GroupFigures | None
    zoho: GroupFigures | None
    differences: tuple[str, ...]

    @property
    def agrees(self) -> bool:
        return not self.differences


@dataclass
class Verification:
    """The warehouse and the Zoho table side by side, per instance and month."""

    view: str
    zoho_table: str
    sum_columns: tuple[str, ...]
    groups: list[GroupComparison]
    problem: str = ""  # set when there was nothing to compare (e.g. the Zoho table is missing)

    @property
    def passed(self) -> bool:
        return not self.problem and all(g.agrees for g in self.groups)

    @property
    def differing(self) -> list[GroupComparison]:
        return [g for g in self.groups if not g.agrees]

    @property
    def missing(self) -> list[GroupComparison]:
        """Groups on one side only, and required instances on neither."""
        return [g for g in self.groups if not g.agrees and (g.warehouse is None or g.zoho is None)]

    @property
    def instances_missing(self) -> list[str]:
        return [g.instance for g in self.groups if g.warehouse is None and g.zoho is None]

    def _total(self, side: str, index: int | None = None) -> Any:
        figures = [getattr(g, side) for g in self.groups if getattr(g, side) is not None]
        if index is None:
            return sum(f.rows for f in figures)
        return sum((f.sums[index] for f in figures), Decimal(0))

    @property
    def rows_warehouse(self) -> int:
        return self._total("warehouse")

    @property
    def rows_zoho(self) -> int:
        return self._total("zoho")

    def totals(self) -> dict[str, tuple[Decimal, Decimal]]:
        return {c: (self._total("warehouse", i), self._total("zoho", i)) for i, c in enumerate(self.sum_columns)}

    @property
    def description(self) -> str:
        if self.problem:
            return f"{self.view}: {self.problem}"
        if self.passed:
            return (f"{self.view}: Zoho table {self.zoho_table!r} equals the warehouse ({self.rows_zoho} rows, "
                    f"{len(self.groups)} instance/month groups)")
        return (f"{self.view}: Zoho table {self.zoho_table!r} differs from the warehouse in "
                f"{len(self.differing)} of {len(self.groups)} instance/month groups")

    def failures(self) -> list[str]:
        if self.problem:
            return [self.description]
        return [f"{self.view}: instance {g.instance}, month {g.month}: " + "; ".join(g.differences)
                for g in self.differing]

    def markdown(self, limit: int = 200) -> str:
        primary = self.sum_columns[-1] if self.sum_columns else None
        headers = ["instance", "month", "rows (warehouse)", "rows (Zoho)"]
        if primary:
            headers += [f"{primary} (warehouse)", f"{primary} (Zoho)"]
        headers.append("status")
        rows = []
        for g in self.groups:
            row: list[Any] = [g.instance, g.month, g.warehouse.rows if g.warehouse else None,
                              g.zoho.rows if g.zoho else None]
            if primary:
                row += [g.warehouse.sums[-1] if g.warehouse else None, g.zoho.sums[-1] if g.zoho else None]
            row.append("ok" if g.agrees else "DIFFERS: " + "; ".join(g.differences))
            rows.append(row)
        # Differing groups first: with many months they must not hide below the cut.
        rows.sort(key=lambda r: (r[-1] == "ok", r[0], r[1]))
        return markdown_table(headers, rows, limit=limit)

    def as_metadata(self) -> dict[str, Any]:
        figures: dict[str, Any] = {
            "zoho_table": self.zoho_table,
            "rows_warehouse": self.rows_warehouse,
            "rows_zoho": self.rows_zoho,
            "groups_compared": len(self.groups),
            "groups_differing": len(self.differing),
            "groups_missing": len(self.missing),
            "instances_missing": len(self.instances_missing),
        }
        for column, (left, right) in self.totals().items():
            figures[f"sum_{column}_warehouse"] = float(left)
            figures[f"sum_{column}_zoho"] = float(right)
        if self.problem:
            figures["problem"] = self.problem
        if not self.passed:
            figures["failures"] = "\n".join(self.failures()[:50])
        return figures


def compare_aggregates(spec: ExportSpec, warehouse: Aggregates, zoho: Aggregates, *, zoho_table: str = "",
                       tolerance: Decimal = DEFAULT_TOLERANCE,
                       absent_instances: Mapping[str, str | None] | None = None) -> Verification:
    """Every (instance, month) on either side: counts must be equal, sums within `tolerance`. A group on one
    side only differs. `absent_instances` names the required instances found on neither side, each with the
    reason that is a failure (None: proven empty, it is not)."""
    groups = []
    for instance, reason in sorted((absent_instances or {}).items()):
        if reason is not None and spec.instance_column:
            groups.append(GroupComparison(instance, _NO_GROUP, None, None, (
                f"absent from both the warehouse and Zoho; the cache must have it: {reason}",)))
    for key in sorted(set(warehouse) | set(zoho)):
        left, right = warehouse.get(key), zoho.get(key)
        differences: list[str] = []
        if left is None:
            differences.append(f"only in Zoho ({right.rows} rows)")
        elif right is None:
            differences.append(f"missing in Zoho ({left.rows} rows in the warehouse)")
        else:
            if left.rows != right.rows:
                differences.append(f"rows {left.rows} in the warehouse, {right.rows} in Zoho "
                                   f"({right.rows - left.rows:+d})")
            for column, a, b in zip(spec.sum_columns, left.sums, right.sums, strict=True):
                if abs(a - b) > tolerance:
                    differences.append(f"{column} {a:,.2f} in the warehouse, {b:,.2f} in Zoho ({b - a:+,.2f})")
        groups.append(GroupComparison(key[0], key[1], left, right, tuple(differences)))
    return Verification(spec.view, zoho_table, spec.sum_columns, groups)


def zoho_aggregates(client: ZohoAnalyticsClient, spec: ExportSpec, zoho_table: str) -> Aggregates:
    records = client.export_sql(verification_sql(spec, _quote(zoho_table)))
    return aggregate(spec, (list(r.values()) for r in records), side=f"Zoho table {zoho_table!r}")


def warehouse_aggregates(conn: psycopg.Connection, spec: ExportSpec) -> Aggregates:
    sql = verification_sql(spec, f"{ANALYTICS_SCHEMA}.{_quote(spec.view)}")
    return aggregate(spec, conn.execute(sql).fetchall(), side=f"warehouse view {ANALYTICS_SCHEMA}.{spec.view}")


# -- reading the warehouse -------------------------------------------------------------------------------------


def _empty_keys() -> pd.Series:
    import pandas as pd

    return pd.Series(dtype=object)


def _empty_hashes() -> np.ndarray:
    import numpy as np

    return np.zeros(0, dtype=np.int64)


@dataclass
class Snapshot:
    """One consistent read of a view: its rows as CSV text, hashes, and the verification figures."""

    spec: ExportSpec
    pg_columns: list[tuple[str, str]]
    frame: pd.DataFrame
    expected: Aggregates
    content_hash: str = ""
    keys: pd.Series = field(default_factory=_empty_keys)
    hashes: np.ndarray = field(default_factory=_empty_hashes)

    @property
    def zoho_columns(self) -> list[tuple[str, str]]:
        return [(name, zoho_type(pg_type)) for name, pg_type in self.pg_columns]

    @property
    def rows(self) -> int:
        return len(self.frame)


def read_snapshot(database_url: str, spec: ExportSpec) -> Snapshot:
    """Read the view and its verification figures in one REPEATABLE READ transaction, so the figures the
    upload is checked against describe exactly the rows uploaded."""
    with psycopg.connect(database_url, autocommit=True) as conn, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        conn.execute("SET LOCAL TIME ZONE 'UTC'")
        pg_columns = [(name, kind) for name, kind in conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s "
            "AND table_name = %s ORDER BY ordinal_position", (ANALYTICS_SCHEMA, spec.view)).fetchall()]
        if not pg_columns:
            raise ZohoExportError(f"view {ANALYTICS_SCHEMA}.{spec.view} does not exist; build the analytics views "
                                  "first (asset analytics/views)")
        names = {name for name, _ in pg_columns}
        needed = set(spec.key_columns) | set(spec.sum_columns) | {c for c in (spec.instance_column,
                                                                              spec.month_column) if c}
        missing = sorted(needed - names)
        if missing:
            raise ZohoExportError(f"{ANALYTICS_SCHEMA}.{spec.view} has no column(s) {missing} named by its export "
                                  "spec in warehouse/zoho_export.py")
        order = ", ".join(_quote(k) for k in spec.key_columns)
        rows = conn.execute(f"SELECT * FROM {ANALYTICS_SCHEMA}.{_quote(spec.view)} ORDER BY {order}").fetchall()
        expected = warehouse_aggregates(conn, spec)
    frame = text_frame(pg_columns, rows)
    snapshot = Snapshot(spec, pg_columns, frame, expected)
    snapshot.content_hash = content_hash(frame, snapshot.zoho_columns)
    snapshot.keys = row_keys(frame, spec.key_columns)
    duplicated = snapshot.keys[snapshot.keys.duplicated()]
    if len(duplicated):
        first = duplicated.iloc[0].replace(_KEY_SEPARATOR, ", ")
        raise ZohoExportError(f"{ANALYTICS_SCHEMA}.{spec.view}: key ({', '.join(spec.key_columns)}) = ({first}) "
                              f"appears more than once ({len(duplicated)} duplicates); fix the warehouse first")
    snapshot.hashes = row_hashes(frame)
    return snapshot


# -- state in PostgreSQL ----------------------------------------------------------------------------------------

def ensure_export_schema(database_url: str) -> None:
    """The export's state tables are part of the platform's schema (gp_pipelines/schema/exports.py)."""
    ensure_schema(database_url)


@dataclass
class TableState:
    view_id: str
    export_name: str
    zoho_name: str
    content_hash: str | None
    columns: list[tuple[str, str]] | None
    row_count: int | None
    verified_ok: bool | None


def _table_states(conn: psycopg.Connection, workspace_id: str, view: str) -> dict[str, TableState]:
    rows = conn.execute(
        f"SELECT view_id, export_name, zoho_name, content_hash, columns, row_count, verified_ok FROM {X}.zoho_table "
        "WHERE workspace_id = %s AND export_name = %s", (workspace_id, view)).fetchall()
    return {r[0]: TableState(r[0], r[1], r[2], r[3], [tuple(c) for c in r[4]] if r[4] else None, r[5], r[6])
            for r in rows}


def _save_table_state(conn: psycopg.Connection, workspace_id: str, state: TableState, *,
                      loaded: bool = False, verified: bool = False) -> None:
    conn.execute(
        f"""INSERT INTO {X}.zoho_table AS t (workspace_id, view_id, export_name, zoho_name, content_hash, columns,
                                             row_count, loaded_at, verified_at, verified_ok)
            VALUES (%s, %s, %s, %s, %s, %s, %s, CASE WHEN %s THEN now() END, CASE WHEN %s THEN now() END, %s)
            ON CONFLICT (workspace_id, view_id) DO UPDATE SET
                export_name = EXCLUDED.export_name, zoho_name = EXCLUDED.zoho_name,
                content_hash = EXCLUDED.content_hash, columns = EXCLUDED.columns, row_count = EXCLUDED.row_count,
                loaded_at = coalesce(EXCLUDED.loaded_at, t.loaded_at),
                verified_at = coalesce(EXCLUDED.verified_at, t.verified_at), verified_ok = EXCLUDED.verified_ok""",
        (workspace_id, state.view_id, state.export_name, state.zoho_name, state.content_hash,
         json.dumps(state.columns) if state.columns is not None else None, state.row_count, loaded, verified,
         state.verified_ok))


def _forget_table(conn: psycopg.Connection, workspace_id: str, view_id: str) -> None:
    conn.execute(f"DELETE FROM {X}.zoho_row WHERE workspace_id = %s AND view_id = %s", (workspace_id, view_id))
    conn.execute(f"DELETE FROM {X}.zoho_table WHERE workspace_id = %s AND view_id = %s", (workspace_id, view_id))


def _row_state(conn: psycopg.Connection, workspace_id: str, view_id: str) -> dict[str, int]:
    rows = conn.execute(f"SELECT row_key, row_hash FROM {X}.zoho_row WHERE workspace_id = %s AND view_id = %s",
                        (workspace_id, view_id)).fetchall()
    return dict(rows)


def _replace_row_state(conn: psycopg.Connection, workspace_id: str, view_id: str, snapshot: Snapshot) -> None:
    conn.execute(f"DELETE FROM {X}.zoho_row WHERE workspace_id = %s AND view_id = %s", (workspace_id, view_id))
    with conn.cursor().copy(f"COPY {X}.zoho_row (workspace_id, view_id, row_key, row_hash) FROM STDIN") as copy:
        for key, value in zip(snapshot.keys.tolist(), snapshot.hashes.tolist(), strict=True):
            copy.write_row((workspace_id, view_id, key, value))


# -- the unit ledger ----------------------------------------------------------------------------------------------


def _utc_today() -> date:
    return datetime.now(UTC).date()


def units_spent_today(database_url: str, org_id: str, day: date | None = None) -> int:
    ensure_export_schema(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        return _spent(conn, org_id, day or _utc_today())


def _spent(conn: psycopg.Connection, org_id: str, day: date) -> int:
    return int(conn.execute(
        f"SELECT coalesce(sum(units), 0) FROM {X}.zoho_units WHERE org_id = %s AND spent_on = %s "
        "AND status <> 'released'", (org_id, day)).fetchone()[0])


def book_units(database_url: str, settings: ExportSettings, view: str, import_type: str, rows: int,
               units: int) -> None:
    """Check the budget and book `units` as spent in one step, under a lock so parallel exports cannot both
    squeeze under it; raise ZohoBudgetExceeded instead when they do not fit. Units are booked before the import
    is sent and kept even when it then fails: Zoho counts what reached it, so the ledger errs high, never low."""
    if units <= 0:
        return
    day = _utc_today()
    with psycopg.connect(database_url, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"gp.zoho.units.{settings.org_id}",))
        spent = _spent(conn, settings.org_id, day)
        left = max(0, settings.daily_unit_budget - spent)
        if units > left:
            raise ZohoBudgetExceeded(view, units, left, settings.daily_unit_budget, spent,
                                     f"{rows} rows by {import_type}")
        conn.execute(
            f"INSERT INTO {X}.zoho_units (org_id, spent_on, export_name, import_type, rows, units, status) "
            "VALUES (%s, %s, %s, %s, %s, %s, 'spent')", (settings.org_id, day, view, import_type, rows, units))


# -- the export --------------------------------------------------------------------------------------------------


@dataclass
class ExportResult:
    view: str
    zoho_table: str
    view_id: str | None
    uploaded: bool
    reason: str
    why: str = ""
    import_type: str | None = None
    rows: int = 0
    rows_sent: int = 0
    batches: int = 0
    units: int = 0
    units_spent_today: int = 0
    daily_budget: int = 0
    content_hash: str = ""
    verification: Verification | None = None
    seconds: float = 0.0
    client: dict[str, Any] = field(default_factory=dict)

    @property
    def units_left(self) -> int:
        return max(0, self.daily_budget - self.units_spent_today)

    def as_metadata(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "zoho_table": self.zoho_table,
            "zoho_view_id": self.view_id or "",
            "uploaded": self.uploaded,
            "reason": self.reason,
            "plan": self.why,
            "import_type": self.import_type or "none",
            "rows": self.rows,
            "rows_sent": self.rows_sent,
            "batches": self.batches,
            "units_spent": self.units,
            "units_spent_today": self.units_spent_today,
            "units_left_today": self.units_left,
            "daily_unit_budget": self.daily_budget,
            "content_hash": self.content_hash[:16],
            "seconds": round(self.seconds, 2),
            **self.client,
        }
        if self.verification is not None:
            metadata["groups_compared"] = len(self.verification.groups)
            metadata["groups_differing"] = len(self.verification.differing)
        return metadata


def _recover_interrupted_swap(client: ZohoAnalyticsClient, conn: psycopg.Connection, settings: ExportSettings,
                              view: str, views: dict[str, Any], say: Callable[[str], None]) -> bool:
    """A `__old` table means a swap stopped half-way: put the tables back in a consistent state."""
    old = views.get(settings.swap_name(view).lower())
    if old is None:
        return False
    live, standby = settings.live_name(view), settings.standby_name(view)
    if live.lower() not in views:
        say(f"{view}: an interrupted swap left no live table; restoring the previous one ({old.name} -> {live})")
        client.rename_view(old.view_id, live)
        new_name = live
    elif standby.lower() not in views:
        client.rename_view(old.view_id, standby)
        new_name = standby
    else:
        client.delete_view(old.view_id)
        _forget_table(conn, settings.workspace_id, old.view_id)
        return True
    conn.execute(f"UPDATE {X}.zoho_table SET zoho_name = %s WHERE workspace_id = %s AND view_id = %s",
                 (new_name, settings.workspace_id, old.view_id))
    return True


def export_view(database_url: str, client: ZohoAnalyticsClient, view: str, settings: ExportSettings, *,
                force: bool = False, full: bool = False, say: Callable[[str], None] | None = None) -> ExportResult:
    """Publish one analytics view to Zoho (see the module docstring). `force` uploads even when unchanged and
    may replace a live-named table these exports did not create; `full` reloads instead of sending changed rows.
    Raises ZohoBudgetExceeded before any change when the units would run out, ZohoVerificationError when the
    read-back differs (the live table untouched), and the client's errors when Zoho fails."""
    say = say or log.info
    started = time.monotonic()
    spec = export_spec(view)
    live_name, standby_name = settings.live_name(view), settings.standby_name(view)
    ensure_export_schema(database_url)
    snapshot = read_snapshot(database_url, spec)
    result = ExportResult(view, live_name, None, False, "", rows=snapshot.rows, daily_budget=settings.daily_unit_budget,
                          content_hash=snapshot.content_hash)

    def finish() -> ExportResult:
        result.units_spent_today = units_spent_today(database_url, settings.org_id)
        result.seconds = time.monotonic() - started
        result.client = client.stats.as_metadata()
        return result

    with psycopg.connect(database_url, autocommit=True) as conn:
        # One export per table at a time, across processes: the lock lives as long as this connection.
        conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))",
                     (f"gp.zoho.export.{settings.workspace_id}.{view}",))
        views = {v.name.lower(): v for v in client.list_views()}
        if _recover_interrupted_swap(client, conn, settings, view, views, say):
            views = {v.name.lower(): v for v in client.list_views()}
        states = _table_states(conn, settings.workspace_id, view)
        live = views.get(live_name.lower())
        standby = views.get(standby_name.lower())
        live_state = states.get(live.view_id) if live else None
        result.view_id = live.view_id if live else None

        if live is not None and live_state is None and not force:
            # Never rename (and later replace) a table someone else made just because it has our name.
            raise ZohoExportError(
                f"Zoho export of {view!r}: the workspace already has a table {live_name!r} (view id {live.view_id}) "
                "that these exports did not create; rename or delete it, set zoho_analytics.table_prefix, or run "
                "the export with force to replace it")
        if (not force and live_state is not None and live_state.content_hash == snapshot.content_hash
                and live_state.verified_ok):
            result.reason, result.why = "unchanged since the last verified export: nothing sent", "unchanged"
            return finish()

        # Decide on the standby and the plan before anything changes in Zoho, so the budget can refuse cleanly.
        standby_state = states.get(standby.view_id) if standby else None
        reuse_standby = (standby is not None and standby_state is not None and standby_state.content_hash is not None
                         and standby_state.columns == snapshot.zoho_columns)
        changed = deleted = 0
        if reuse_standby and spec.incremental and not full:
            old = _row_state(conn, settings.workspace_id, standby.view_id)
            current = dict(zip(snapshot.keys.tolist(), snapshot.hashes.tolist(), strict=True))
            changed_mask = [old.get(k) != h for k, h in current.items()]
            changed = sum(changed_mask)
            deleted = sum(1 for k in old if k not in current)
        plan = choose_import_plan(spec, snapshot.rows, standby_known=reuse_standby, changed_rows=changed,
                                  deleted_rows=deleted, force_full=full)
        if plan.import_type is None and plan.full and not (reuse_standby and not standby_state.row_count):
            reuse_standby = False  # the view is empty: start from a fresh, empty standby
        frame = snapshot.frame
        if plan.import_type == "updateadd":
            import numpy as np

            frame = snapshot.frame[np.array(changed_mask, dtype=bool)]
        batches = csv_batches(frame, settings.max_batch_bytes, label=view) if plan.import_type else []
        units = batch_units(batches, plan.import_type) if plan.import_type else 0
        result.import_type, result.rows_sent, result.batches = plan.import_type, plan.rows, len(batches)
        say(f"{view}: {plan.reason}; {plan.rows} rows in {len(batches)} batches, {units} API units")

        def book() -> None:
            book_units(database_url, settings, view, plan.import_type or "", plan.rows, units)
            result.units += units

        book()
        # The standby: reuse it, or (re)create it empty with the view's columns.
        if not reuse_standby:
            if standby is not None:
                client.delete_view(standby.view_id)
                _forget_table(conn, settings.workspace_id, standby.view_id)
            standby_id = client.create_table(standby_name, snapshot.zoho_columns,
                                             f"gp_pipelines export of analytics.{view} (standby copy)")
        else:
            standby_id = standby.view_id
        # From here until it verifies, the standby's content is unknown.
        _save_table_state(conn, settings.workspace_id, TableState(
            standby_id, view, standby_name, None, snapshot.zoho_columns, None, None))
        if plan.import_type:
            _upload(client, standby_id, batches, plan, spec, settings, say, book)

        verification = compare_aggregates(spec, snapshot.expected, zoho_aggregates(client, spec, standby_name),
                                          zoho_table=standby_name, tolerance=settings.sum_tolerance)
        result.verification = verification
        if not verification.passed:
            raise ZohoVerificationError(
                verification,
                f"Zoho export of {view!r}: the uploaded copy {standby_name!r} differs from the warehouse in "
                f"{len(verification.differing)} of {len(verification.groups)} instance/month groups; the live "
                f"table {live_name!r} was left as it was.\n" + "\n".join(verification.failures()[:20]))

        # Swap: the verified standby becomes live, the old live becomes the standby.
        if live is not None:
            client.rename_view(live.view_id, settings.swap_name(view))
        client.rename_view(standby_id, live_name)
        if live is not None:
            client.rename_view(live.view_id, standby_name)
        with conn.transaction():
            _save_table_state(conn, settings.workspace_id, TableState(
                standby_id, view, live_name, snapshot.content_hash, snapshot.zoho_columns, snapshot.rows, True),
                loaded=True, verified=True)
            _replace_row_state(conn, settings.workspace_id, standby_id, snapshot)
            if live is not None:
                if live_state is None:
                    _forget_table(conn, settings.workspace_id, live.view_id)
                else:
                    conn.execute(f"UPDATE {X}.zoho_table SET zoho_name = %s WHERE workspace_id = %s "
                                 "AND view_id = %s", (standby_name, settings.workspace_id, live.view_id))
        result.view_id, result.uploaded = standby_id, True
        result.reason, result.why = plan.reason, plan.why
        return finish()


@dataclass(frozen=True)
class ExportPreview:
    """What `export_view` would send for one view, judged from the warehouse and the export state kept in
    PostgreSQL alone (no call to Zoho): for `gp-pipelines export zoho --dry-run`."""

    view: str
    zoho_table: str
    rows: int
    import_type: str | None
    rows_to_send: int
    units: int
    reason: str

    def line(self) -> str:
        if self.import_type is None:
            return f"{self.view}: would send nothing ({self.reason}); {self.rows} rows in the view"
        return (f"{self.view}: would send {self.rows_to_send} of {self.rows} rows to {self.zoho_table!r} by "
                f"{self.import_type}, about {self.units} API units ({self.reason})")


def preview_export(database_url: str, view: str, settings: ExportSettings, *, force: bool = False,
                   full: bool = False) -> ExportPreview:
    """The plan `export_view` would follow, from the last export's state as recorded here. Zoho may know
    better (a table renamed or deleted there since); the real export asks it first."""
    spec = export_spec(view)
    live_name, standby_name = settings.live_name(view), settings.standby_name(view)
    ensure_export_schema(database_url)
    snapshot = read_snapshot(database_url, spec)
    with psycopg.connect(database_url, autocommit=True) as conn:
        states = {state.zoho_name.lower(): state
                  for state in _table_states(conn, settings.workspace_id, view).values()}
        live, standby = states.get(live_name.lower()), states.get(standby_name.lower())
        if not force and live is not None and live.content_hash == snapshot.content_hash and live.verified_ok:
            return ExportPreview(view, live_name, snapshot.rows, None, 0, 0, "unchanged since the last verified "
                                 "export")
        reuse = (standby is not None and standby.content_hash is not None
                 and standby.columns == snapshot.zoho_columns)
        changed = deleted = 0
        if reuse and spec.incremental and not full:
            old = _row_state(conn, settings.workspace_id, standby.view_id)
            current = dict(zip(snapshot.keys.tolist(), snapshot.hashes.tolist(), strict=True))
            changed = sum(1 for key, value in current.items() if old.get(key) != value)
            deleted = sum(1 for key in old if key not in current)
    plan = choose_import_plan(spec, snapshot.rows, standby_known=reuse, changed_rows=changed,
                              deleted_rows=deleted, force_full=full)
    return ExportPreview(view, live_name, snapshot.rows, plan.import_type, plan.rows, plan.estimated_units,
                         plan.reason)


def _upload(client: ZohoAnalyticsClient, view_id: str, batches: list[tuple[bytes, int]], plan: ImportPlan,
            spec: ExportSpec, settings: ExportSettings, say: Callable[[str], None],
            book_retry: Callable[[], None]) -> None:
    """Send the batches (one sync import when a single batch fits, else a batch-import job); a job that ends in
    error is sent again whole (its units booked again first). The summary must account for every row."""
    options = {"import_type": plan.import_type, "on_error": "abort", "date_format": DATE_FORMAT,
               "matching_columns": list(spec.key_columns) if plan.import_type == "updateadd" else None}
    files = [data for data, _ in batches]
    for attempt in range(1, settings.import_attempts + 1):
        try:
            if len(files) == 1 and len(files[0]) <= SYNC_IMPORT_MAX_BYTES:
                summary = client.import_sync(view_id, files[0], **options)
            else:
                summary = client.wait_for_import(client.import_batches(view_id, files, **options))
            break
        except ZohoJobError as exc:
            if attempt == settings.import_attempts:
                raise ZohoExportError(f"Zoho export of {spec.view!r}: the import job failed {attempt} times "
                                      f"({exc}); the live table was left as it was") from exc
            say(f"{spec.view}: {exc}; sending the import again (attempt {attempt + 1})")
            book_retry()
    if summary.success_rows != plan.rows or summary.total_rows != plan.rows:
        raise ZohoExportError(
            f"Zoho export of {spec.view!r}: Zoho imported {summary.success_rows} of {summary.total_rows} rows, but "
            f"{plan.rows} were sent; the live table was left as it was")


def absent_instances(database_url: str, spec: ExportSpec, warehouse: Aggregates, zoho: Aggregates,
                     scope: Scope | None) -> dict[str, str | None]:
    """The scope's instances on neither side of a read-back, each with why that fails (None: proven empty)."""
    if scope is None or not spec.instance_column:
        return {}
    seen = {key[0] for key in warehouse} | {key[0] for key in zoho}
    absent = [instance for instance in scope.instances if instance not in seen]
    if not absent:
        return {}
    if spec.warehouse_table is None:
        return dict.fromkeys(absent, "nothing proves it empty")
    return absent_instance_reasons(database_url, spec.warehouse_table, absent, scope)


def verify_live_table(database_url: str, client: ZohoAnalyticsClient, view: str,
                      settings: ExportSettings, scope: Scope | None = None) -> Verification:
    """Read the live Zoho table back and compare it with the warehouse as it is now; record the outcome (an
    export does not skip a table whose last read-back disagreed). With a `scope`, each of its instances must be
    on both sides (unless the cache proves it has nothing of this kind)."""
    spec = export_spec(view)
    live_name = settings.live_name(view)
    ensure_export_schema(database_url)
    live = client.find_view(live_name)
    if live is None:
        return Verification(view, live_name, spec.sum_columns, [],
                            problem=f"there is no table {live_name!r} in the Zoho workspace (not exported yet?)")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        expected = warehouse_aggregates(conn, spec)
        read_back = zoho_aggregates(client, spec, live_name)
        verification = compare_aggregates(
            spec, expected, read_back, zoho_table=live_name, tolerance=settings.sum_tolerance,
            absent_instances=absent_instances(database_url, spec, expected, read_back, scope))
        conn.execute(f"UPDATE {X}.zoho_table SET verified_ok = %s, verified_at = now() WHERE workspace_id = %s "
                     "AND view_id = %s", (verification.passed, settings.workspace_id, live.view_id))
    return verification
