"""The sandbox workspace's tables, held in an in-memory SQLite database.

SQLite and not the platform's PostgreSQL: the stand-in must not share a database with the warehouse it is
compared against (a shared store could make a broken export look verified), it needs nothing running, and its
SQL (SELECT, COUNT, SUM, GROUP BY, WHERE, double-quoted identifiers) is close enough to what Zoho accepts for
the verification queries. Each Zoho table is one SQLite table under the same name, so a rename is an
`ALTER TABLE ... RENAME` and an SQL export runs as written. Queries run under an authorizer that allows
reading only, so an export can never change data.

Values are checked against the column's Zoho data type on import: whole numbers, decimals, dates
(`yyyy-MM-dd`, optionally with a time), booleans (true/false/yes/no/1/0); an empty cell is NULL.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

INTEGER_TYPES = {"NUMBER", "POSITIVE_NUMBER", "AUTO_NUMBER"}
DECIMAL_TYPES = {"DECIMAL_NUMBER", "CURRENCY", "PERCENT"}
TEXT_TYPES = {"PLAIN", "MULTI_LINE", "EMAIL", "URL", "GEO"}
DATA_TYPES = INTEGER_TYPES | DECIMAL_TYPES | TEXT_TYPES | {"DATE", "BOOLEAN"}
_TRUE, _FALSE = {"true", "yes", "1"}, {"false", "no", "0"}
# SQLite authorizer action codes a read-only query needs: SELECT, READ, FUNCTION, RECURSIVE (CTEs).
_READ_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, 33}


class SandboxError(Exception):
    """A Zoho failure reply: error code, message, HTTP status."""

    def __init__(self, code: int, message: str, status: int = 400, summary: str = "") -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status
        self.summary = summary or message.upper().replace(" ", "_")[:60]


@dataclass
class Table:
    view_id: str
    name: str
    columns: list[tuple[str, str]]  # (name, Zoho data type)
    description: str = ""
    indexes: set[tuple[str, ...]] = field(default_factory=set)

    def column_type(self, name: str) -> str | None:
        return next((kind for column, kind in self.columns if column.lower() == name.lower()), None)

    def canonical(self, name: str) -> str | None:
        return next((column for column, _ in self.columns if column.lower() == name.lower()), None)


@dataclass
class ParsedImport:
    columns: list[str]  # table column names, in the file's order
    rows: list[tuple[Any, ...]]
    total_rows: int
    skipped_rows: int
    errors: list[str]


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _sqlite_type(kind: str) -> str:
    if kind in INTEGER_TYPES:
        return "INTEGER"
    if kind in DECIMAL_TYPES:
        return "REAL"
    return "TEXT"


def convert(kind: str, text: str) -> Any:
    """A CSV cell as the column's type; raises ValueError naming what is wrong."""
    if text == "":
        return None
    if kind in INTEGER_TYPES:
        value = int(text)
        if kind == "POSITIVE_NUMBER" and value < 0:
            raise ValueError("must not be negative")
        return value
    if kind in DECIMAL_TYPES:
        return float(text.rstrip("%"))
    if kind == "DATE":
        cleaned = text.strip()
        try:
            if len(cleaned) == 10:
                return date.fromisoformat(cleaned).isoformat()
            return datetime.fromisoformat(cleaned).strftime("%Y-%m-%d %H:%M:%S")
        except ValueError:
            raise ValueError("is not a date in the form yyyy-MM-dd") from None
    if kind == "BOOLEAN":
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return "true"
        if lowered in _FALSE:
            return "false"
        raise ValueError("is not a boolean (true/false)")
    return text


def render(value: Any) -> str:
    """A SQLite value as Zoho writes it in a CSV export."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


class ZohoStore:
    """Tables of one workspace. Thread-safe: the app serialises every operation on one lock."""

    def __init__(self, first_view_id: int) -> None:
        self.db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        self.tables: dict[str, Table] = {}
        self.lock = threading.RLock()
        self._next_id = first_view_id

    # -- metadata --------------------------------------------------------------------------------------------

    def by_id(self, view_id: str) -> Table:
        table = self.tables.get(view_id)
        if table is None:
            raise SandboxError(7138, f"View with id {view_id} not found in the workspace", 404, "VIEW_NOT_FOUND")
        return table

    def by_name(self, name: str) -> Table | None:
        return next((t for t in self.tables.values() if t.name.lower() == name.lower()), None)

    def create_table(self, name: str, columns: list[tuple[str, str]], description: str = "") -> Table:
        with self.lock:
            if not name.strip():
                raise SandboxError(8504, "TABLENAME must not be empty")
            if self.by_name(name) is not None:
                raise SandboxError(7111, f"A view named {name!r} already exists in the workspace")
            if not columns:
                raise SandboxError(8504, "COLUMNS must list at least one column")
            seen: set[str] = set()
            for column, kind in columns:
                if kind not in DATA_TYPES:
                    raise SandboxError(8504, f"column {column!r}: unknown DATATYPE {kind!r}")
                if column.lower() in seen:
                    raise SandboxError(8504, f"column {column!r} is listed twice")
                seen.add(column.lower())
            view_id = str(self._next_id)
            self._next_id += 1
            ddl = ", ".join(f"{quote(c)} {_sqlite_type(k)}" for c, k in columns)
            self.db.execute(f"CREATE TABLE {quote(name)} ({ddl})")
            table = Table(view_id, name, list(columns), description)
            self.tables[view_id] = table
            return table

    def rename(self, view_id: str, new_name: str) -> None:
        with self.lock:
            table = self.by_id(view_id)
            other = self.by_name(new_name)
            if not new_name.strip():
                raise SandboxError(8504, "viewName must not be empty")
            if other is not None and other.view_id != view_id:
                raise SandboxError(7111, f"A view named {new_name!r} already exists in the workspace")
            if table.name != new_name:
                # Two steps so a rename that only changes letter case works in SQLite too.
                temporary = f"__renaming_{view_id}"
                self.db.execute(f"ALTER TABLE {quote(table.name)} RENAME TO {quote(temporary)}")
                self.db.execute(f"ALTER TABLE {quote(temporary)} RENAME TO {quote(new_name)}")
                table.name = new_name

    def delete(self, view_id: str) -> None:
        with self.lock:
            table = self.by_id(view_id)
            self.db.execute(f"DROP TABLE {quote(table.name)}")
            del self.tables[view_id]

    def row_count(self, table: Table) -> int:
        with self.lock:
            return int(self.db.execute(f"SELECT count(*) FROM {quote(table.name)}").fetchone()[0])

    # -- imports ---------------------------------------------------------------------------------------------

    def parse(self, table: Table, payload: bytes, on_error: str) -> ParsedImport:
        """Read a CSV file against the table's columns. Every column of the file must be a column of the table
        (a sandbox strictness: a misspelt column fails loudly instead of being dropped)."""
        try:
            text = payload.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise SandboxError(8504, "the file is not UTF-8 text") from None
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader, None)
        if not header:
            raise SandboxError(8504, "the file is empty: a CSV header row is required")
        columns: list[str] = []
        for name in header:
            canonical = table.canonical(name.strip())
            if canonical is None:
                raise SandboxError(7235, f"column {name!r} of the file is not a column of table {table.name!r}")
            columns.append(canonical)
        kinds = [table.column_type(c) or "PLAIN" for c in columns]
        rows: list[tuple[Any, ...]] = []
        errors: list[str] = []
        total = skipped = 0
        for line_number, record in enumerate(reader, start=2):
            if not record:
                continue
            total += 1
            if len(record) != len(columns):
                problem = f"line {line_number}: {len(record)} values for {len(columns)} columns"
                if on_error == "abort":
                    raise SandboxError(7507, f"import aborted: {problem}")
                errors.append(problem)
                skipped += 1
                continue
            values: list[Any] = []
            bad = False
            for column, kind, text in zip(columns, kinds, record, strict=True):
                try:
                    values.append(convert(kind, text))
                except ValueError as exc:
                    problem = f"line {line_number}, column {column!r}: value {text!r} {exc} ({kind})"
                    if on_error == "abort":
                        raise SandboxError(7507, f"import aborted: {problem}") from None
                    errors.append(problem)
                    if on_error == "skiprow":
                        bad = True
                        break
                    values.append(None)  # setcolumnempty
            if bad:
                skipped += 1
                continue
            rows.append(tuple(values))
        return ParsedImport(columns, rows, total, skipped, errors)

    def apply(self, table: Table, columns: list[str], rows: list[tuple[Any, ...]], import_type: str,
              matching: list[str] | None = None) -> None:
        """Write parsed rows: append adds, truncateadd replaces everything, updateadd updates the rows whose
        matching columns are equal and adds the others. One SQLite transaction: all or nothing."""
        with self.lock:
            name = quote(table.name)
            column_list = ", ".join(quote(c) for c in columns)
            insert = f"INSERT INTO {name} ({column_list}) VALUES ({', '.join('?' for _ in columns)})"
            self.db.execute("BEGIN")
            try:
                if import_type == "truncateadd":
                    self.db.execute(f"DELETE FROM {name}")
                if import_type in ("append", "truncateadd"):
                    self.db.executemany(insert, rows)
                else:
                    keys = tuple(matching or ())
                    positions = [columns.index(k) for k in keys]
                    if keys not in table.indexes:
                        index = f"ix_{table.view_id}_{len(table.indexes)}"
                        self.db.execute(f"CREATE INDEX {quote(index)} ON {name} ({', '.join(quote(k) for k in keys)})")
                        table.indexes.add(keys)
                    others = [c for c in columns if c not in keys]
                    assignments = ", ".join(f"{quote(c)} = ?" for c in others)
                    where = " AND ".join(f"{quote(k)} IS ?" for k in keys)
                    update = f"UPDATE {name} SET {assignments} WHERE {where}" if others else None
                    exists = f"SELECT 1 FROM {name} WHERE {where} LIMIT 1"
                    other_positions = [columns.index(c) for c in others]
                    for row in rows:
                        key_values = [row[p] for p in positions]
                        if update is not None:
                            changed = self.db.execute(update, [row[p] for p in other_positions] + key_values).rowcount
                        else:
                            changed = 1 if self.db.execute(exists, key_values).fetchone() else 0
                        if not changed:
                            self.db.execute(insert, row)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    # -- queries and faults ----------------------------------------------------------------------------------

    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one read-only SELECT; (column names, rows)."""
        if not sql.lstrip().lower().startswith(("select", "with")):
            raise SandboxError(8504, "sqlQuery must be a SELECT statement")

        def read_only(action: int, *args: Any) -> int:
            return sqlite3.SQLITE_OK if action in _READ_ACTIONS else sqlite3.SQLITE_DENY

        with self.lock:
            self.db.set_authorizer(read_only)
            try:
                cursor = self.db.execute(sql)
                rows = cursor.fetchall()
                headers = [d[0] for d in cursor.description or ()]
            except sqlite3.Error as exc:
                raise SandboxError(8504, f"invalid sqlQuery: {exc}") from None
            finally:
                self.db.set_authorizer(None)
        return headers, rows

    def change_number(self, name: str, column: str, delta: float) -> dict[str, Any]:
        """The `corrupt` fault: add `delta` to `column` in the first row where it is not NULL."""
        with self.lock:
            table = self.by_name(name)
            if table is None:
                raise SandboxError(7138, f"no table named {name!r}", 404)
            canonical = table.canonical(column)
            kind = table.column_type(column)
            if canonical is None or kind not in INTEGER_TYPES | DECIMAL_TYPES:
                raise SandboxError(8504, f"table {name!r} has no numeric column {column!r}")
            target = quote(canonical)
            row = self.db.execute(
                f"SELECT rowid, {target} FROM {quote(table.name)} WHERE {target} IS NOT NULL ORDER BY rowid LIMIT 1"
            ).fetchone()
            if row is None:
                raise SandboxError(8504, f"table {name!r} has no value in {column!r} to change")
            self.db.execute(f"UPDATE {quote(table.name)} SET {target} = {target} + ? WHERE rowid = ?", (delta, row[0]))
            return {"table": table.name, "column": canonical, "rowid": row[0], "old": row[1]}
