"""What in the automation needs a person, in one list, and how many of each thing are in each state.

`gp-pipelines status`, `gp-pipelines outbox list`, the `automation/orders` asset and its checks all read these
two functions, so they always show the same numbers:

- outside actions that failed (and will be retried), were given up, are overdue, or whose worker died;
- sales given up, whose routing run failed, or that have waited (for stock or a person) longer than
  `automation.notify_waiting_after_minutes`;
- partner files quarantined or unreadable (until an operator dismisses them), or whose run keeps failing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from gp_pipelines.automation import outbox
from gp_pipelines.automation.state import FULFILMENT, INBOUND_FILE, SALE, SHIPMENT, counts_by_state, rows

DEFAULT_WAITING_AFTER = timedelta(hours=24)


@dataclass(frozen=True)
class AttentionItem:
    kind: str  # outbox | sale | file
    reason: str  # failed | given_up | overdue | lease_expired | routing_failed | waiting | quarantined | ...
    subject: str  # the outbox key, the sale (order number), the file name
    instance: str
    since: datetime
    detail: str
    key: str  # what a command takes: the outbox key, the sale id, the inbound file id

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "since": self.since.isoformat()}

    def line(self, now: datetime) -> str:
        where = f"{self.instance}/" if self.instance else ""
        since = age_text(now - self.since)
        return f"{self.kind} {self.reason}: {where}{self.subject} since {since}: {self.detail[:160]}"


def attention_items(conn: psycopg.Connection, *, waiting_after: timedelta = DEFAULT_WAITING_AFTER,
                    now: datetime | None = None, kinds: tuple[str, ...] = ("outbox", "sale", "file")
                    ) -> list[AttentionItem]:
    """Everything of `kinds` that needs a person now (see the module docstring), given-up and failed first."""
    at = now or datetime.now(UTC)
    if conn.execute("SELECT to_regclass('automation.outbox') IS NULL").fetchone()[0]:
        return []
    items = [
        AttentionItem("outbox", row["reason"], row["key"], row["instance"] or "", row["since"],
                      f"{row['kind']} after {row['attempts']} attempt(s): {row['last_error'] or 'no error recorded'}",
                      row["key"])
        for row in (outbox.attention(conn) if "outbox" in kinds else [])
    ]
    if conn.execute("SELECT to_regclass('automation.sales') IS NULL").fetchone()[0]:
        return items
    items += [] if "sale" not in kinds else [
        AttentionItem("sale", row["reason"], row["order_number"] or row["sale_id"], row["instance"], row["since"],
                      row["detail"] or "", row["sale_id"])
        for row in rows(conn, """
            SELECT instance, sale_id, order_number,
                   CASE WHEN state = 'given_up' THEN 'given_up' WHEN last_error IS NOT NULL THEN 'routing_failed'
                        ELSE 'waiting' END AS reason,
                   CASE WHEN state = 'given_up' OR last_error IS NOT NULL THEN updated_at
                        ELSE waiting_since END AS since,
                   CASE WHEN last_error IS NOT NULL THEN last_error ELSE state || ': ' || coalesce(reason, '') END
                       AS detail
              FROM automation.sales
             WHERE state = 'given_up' OR last_error IS NOT NULL OR waiting_since < %s
             ORDER BY state = 'given_up' DESC, last_error IS NULL, since""", (at - waiting_after,))
    ]  # fmt: skip
    items += [] if "file" not in kinds else [
        AttentionItem("file", row["reason"], row["display_name"], row["partner"], row["updated_at"],
                      row["detail"] or "", str(row["id"]))
        for row in rows(conn, """
            SELECT id, partner, display_name, updated_at,
                   CASE WHEN state IN ('quarantined', 'unreadable') THEN state ELSE 'failing' END AS reason,
                   coalesce(reason, last_error) AS detail
              FROM automation.inbound_files
             WHERE state IN ('quarantined', 'unreadable')
                OR (state IN ('failed', 'taken', 'incomplete') AND attempts >= 3 AND updated_at < %s)
             ORDER BY id""", (at - timedelta(minutes=15),))
    ]  # fmt: skip
    return items


def automation_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Rows per state of sales, fulfilments, shipments, partner files and outbox items (`sale_done`, ...)."""
    if conn.execute("SELECT to_regclass('automation.sales') IS NULL").fetchone()[0]:
        return {}
    counts: dict[str, int] = {}
    for kind in (SALE, FULFILMENT, SHIPMENT, INBOUND_FILE):
        counts.update({f"{kind.name}_{state}": count for state, count in counts_by_state(conn, kind).items()})
    for state, count in conn.execute("SELECT state, count(*) FROM automation.outbox GROUP BY state").fetchall():
        counts[f"outbox_{state}"] = int(count)
    return counts


def summarise(items: list[AttentionItem]) -> dict[str, int]:
    """How many items of each kind and reason (`outbox_failed`, `file_quarantined`, ...), every one present."""
    reasons = {"outbox": ("failed", "given_up", "overdue", "lease_expired"),
               "sale": ("given_up", "routing_failed", "waiting"),
               "file": ("quarantined", "unreadable", "failing")}  # fmt: skip
    summary = {f"{kind}_{reason}": 0 for kind, names in reasons.items() for reason in names}
    for item in items:
        summary[f"{item.kind}_{item.reason}"] = summary.get(f"{item.kind}_{item.reason}", 0) + 1
    return summary


def age_text(delta: timedelta) -> str:
    """A duration the way a person reads it at a glance: 45s, 12m, 5h, 3d."""
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"
