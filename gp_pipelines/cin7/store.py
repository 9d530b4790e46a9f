"""The ERP cache in PostgreSQL: one table per entity in schema `erp_cache`, the sync state, batched writes.

Every entity table has the same shape (DESIGN.md §3):

    instance, id            primary key
    modified_at             the record's own cursor stamp (`Updated`/`LastModifiedOn`/`LastUpdatedDate`), UTC
    payload                 jsonb, the record as the API returned it (for documents: the detail read)
    payload_hash            md5 of the payload's canonical JSON (sorted keys, no spaces): equal hash = no write
    list_hash               documents without a since filter: md5 of the list row, to see which changed
    synced_at               when the payload was last written
    verified_at             when the payload was last confirmed by a read of the record itself (a detail
                            call); the sweep re-reads the least recently verified documents
    deleted_at              set when a complete read no longer lists the record (hard delete); cleared when
                            it comes back. Deprecated and voided records are live rows with their status.

Writes are set-based: a batch is COPYed into a temporary table, then one `INSERT ... ON CONFLICT DO UPDATE
... WHERE payload_hash differs` moves only what changed, so an unchanged record costs no write; the counts
come back from `RETURNING` exactly (inserted = the key was new; updated = existed and changed or came back).

`sync_pending` holds the documents a list walk found changed whose detail is still to be read: it keeps
the sync's memory flat (a walk over 200,000 sales never holds their ids in Python) and lets a rerun after a
crash pick up where the last one stopped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg

from gp_pipelines.cin7.entities import ENTITIES, Entity
from gp_pipelines.schema import ensure_schema
from gp_pipelines.schema.model import CACHE_SCHEMA

SYNC_STATE = f"{CACHE_SCHEMA}.sync_state"
SYNC_PENDING = f"{CACHE_SCHEMA}.sync_pending"
COMPLETENESS = f"{CACHE_SCHEMA}.completeness"  # per (instance, entity): the API's Total against the cache


def table(entity: Entity) -> str:
    return f"{CACHE_SCHEMA}.{entity.table}"


# Indexes the cache queries (`queries.py`, DESIGN.md §1) rely on, by name; described in gp_pipelines/schema/cache.py.
QUERY_INDEXES: tuple[str, ...] = ("sales_payload_path_ops", "sales_order_date", "sales_open_orders",
                                  "product_availability_sku")


def create_cache_schema(conn: psycopg.Connection) -> None:
    """The platform's schema is at this release's revision (created whole on an empty database); see
    `gp_pipelines.schema.ensure_schema`. Cheap: one look per process and database."""
    ensure_schema(conn)


def ensure_cache_schema(database_url: str) -> None:
    """As `create_cache_schema`, from a URL."""
    ensure_schema(database_url)


def connect(database_url: str) -> psycopg.Connection:
    """A session for the sync: autocommit (transactions are explicit), UTC, temp tables of its own."""
    conn = psycopg.connect(database_url, autocommit=True)
    conn.execute("SET TIME ZONE 'UTC'")
    conn.execute(
        """CREATE TEMP TABLE IF NOT EXISTS _gp_stage (
               id text PRIMARY KEY, modified_at timestamptz, payload jsonb NOT NULL,
               payload_hash text NOT NULL, list_hash text
           ) ON COMMIT DELETE ROWS"""
    )
    conn.execute(
        """CREATE TEMP TABLE IF NOT EXISTS _gp_walk (
               id text PRIMARY KEY, list_modified timestamptz, list_hash text
           ) ON COMMIT DELETE ROWS"""
    )
    # Ids listed by the current walk (for the deletion reconcile) and seen by the whole sync (for counts).
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS _gp_seen_walk (id text PRIMARY KEY)")
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS _gp_seen_sync (id text PRIMARY KEY, written boolean NOT NULL)")
    return conn


# -- payloads -----------------------------------------------------------------------------------------


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def text_hash(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class StagedRecord:
    id: str
    modified_at: str | None  # as the API gives it; PostgreSQL parses it (session time zone UTC)
    payload: str  # canonical JSON
    payload_hash: str
    list_hash: str | None = None

    @classmethod
    def of(cls, record_id: str, payload: Any, modified_at: str | None, list_hash: str | None = None):
        text = canonical_json(payload)
        return cls(record_id, modified_at, text, text_hash(text), list_hash)


@dataclass
class WriteCounts:
    inserted: int = 0
    updated: int = 0

    def add(self, other: WriteCounts) -> None:
        self.inserted += other.inserted
        self.updated += other.updated


def _dedupe(records: Iterable[StagedRecord]) -> list[StagedRecord]:
    # A record read twice in one batch (pages shifting under a walk) keeps its last version: ON CONFLICT
    # may not touch a row twice in one statement.
    return list({r.id: r for r in records}.values())


# -- batched writes (call inside a transaction) ----------------------------------------------------------


def upsert_records(
    conn: psycopg.Connection, instance: str, entity: Entity, records: Sequence[StagedRecord], *, verified: bool
) -> WriteCounts:
    """COPY the batch into a temp table, then write only the rows whose hash differs (or that come back
    from deletion). With `verified`, unchanged rows get `verified_at = now()` (they were read one by one)."""
    batch = _dedupe(records)
    if not batch:
        return WriteCounts()
    with conn.cursor() as cur:
        with cur.copy("COPY _gp_stage (id, modified_at, payload, payload_hash, list_hash) FROM STDIN") as copy:
            for r in batch:
                copy.write_row((r.id, r.modified_at, r.payload, r.payload_hash, r.list_hash))
        cur.execute("INSERT INTO _gp_seen_walk (id) SELECT id FROM _gp_stage ON CONFLICT DO NOTHING")
        cur.execute("INSERT INTO _gp_seen_sync (id, written) SELECT id, false FROM _gp_stage ON CONFLICT DO NOTHING")
        inserted, updated = cur.execute(
            f"""WITH written AS (
                    INSERT INTO {table(entity)} AS t
                        (instance, id, modified_at, payload, payload_hash, list_hash, synced_at, verified_at,
                         deleted_at)
                    SELECT %(instance)s, s.id, s.modified_at, s.payload, s.payload_hash, s.list_hash, now(), now(),
                           NULL
                      FROM _gp_stage s
                    ON CONFLICT (instance, id) DO UPDATE SET
                        modified_at = EXCLUDED.modified_at, payload = EXCLUDED.payload,
                        payload_hash = EXCLUDED.payload_hash, list_hash = EXCLUDED.list_hash,
                        synced_at = EXCLUDED.synced_at, verified_at = EXCLUDED.verified_at, deleted_at = NULL
                    WHERE t.payload_hash <> EXCLUDED.payload_hash OR t.deleted_at IS NOT NULL
                       OR t.list_hash IS DISTINCT FROM EXCLUDED.list_hash
                    RETURNING t.id, (t.xmax = 0) AS inserted
                ), marked AS (
                    UPDATE _gp_seen_sync seen SET written = true FROM written w WHERE seen.id = w.id
                )
                SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written""",
            {"instance": instance},
        ).fetchone()
        if verified:
            cur.execute(
                f"""UPDATE {table(entity)} t SET verified_at = now() FROM _gp_stage s
                    WHERE t.instance = %s AND t.id = s.id AND t.verified_at < now()""",
                (instance,),
            )
        cur.execute("DELETE FROM _gp_stage")  # the next batch in the same transaction starts empty
    return WriteCounts(int(inserted), int(updated))


def stage_walk_page(
    conn: psycopg.Connection,
    instance: str,
    entity: Entity,
    rows: Sequence[tuple[str, str | None, str | None]],
) -> int:
    """A document list page: remember what was listed, and queue for a detail read every document that is
    new, came back, or changed since its cached detail (by `Updated` for since-filtered lists, by list-row
    hash for the others). Returns how many were queued."""
    batch = list({r[0]: r for r in rows}.values())
    if not batch:
        return 0
    by_stamp = entity.incremental
    with conn.cursor() as cur:
        with cur.copy("COPY _gp_walk (id, list_modified, list_hash) FROM STDIN") as copy:
            for row in batch:
                copy.write_row(row)
        cur.execute("INSERT INTO _gp_seen_walk (id) SELECT id FROM _gp_walk ON CONFLICT DO NOTHING")
        cur.execute("INSERT INTO _gp_seen_sync (id, written) SELECT id, false FROM _gp_walk ON CONFLICT DO NOTHING")
        changed = (
            "w.list_modified IS NULL OR c.modified_at IS NULL OR w.list_modified > c.modified_at"
            if by_stamp
            else "c.list_hash IS DISTINCT FROM w.list_hash"
        )
        queued = cur.execute(
            f"""WITH queued AS (
                    INSERT INTO {SYNC_PENDING} (instance, entity, id, list_modified, list_hash)
                    SELECT %(instance)s, %(entity)s, w.id, w.list_modified, w.list_hash
                      FROM _gp_walk w
                      LEFT JOIN {table(entity)} c ON c.instance = %(instance)s AND c.id = w.id
                     WHERE c.id IS NULL OR c.deleted_at IS NOT NULL OR {changed}
                    ON CONFLICT (instance, entity, id) DO UPDATE
                        SET list_modified = EXCLUDED.list_modified, list_hash = EXCLUDED.list_hash
                    RETURNING 1
                )
                SELECT count(*) FROM queued""",
            {"instance": instance, "entity": entity.name},
        ).fetchone()[0]
        cur.execute("DELETE FROM _gp_walk")
    return int(queued)


def start_walk(conn: psycopg.Connection) -> None:
    conn.execute("TRUNCATE _gp_seen_walk")


def start_sync(conn: psycopg.Connection) -> None:
    conn.execute("TRUNCATE _gp_seen_walk, _gp_seen_sync")


def unchanged_count(conn: psycopg.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM _gp_seen_sync WHERE NOT written").fetchone()[0])


def count_unlisted(conn: psycopg.Connection, instance: str, entity: Entity) -> int:
    """Live rows the current walk did not list: what a reconcile would mark deleted."""
    return int(conn.execute(
        f"""SELECT count(*) FROM {table(entity)} t WHERE t.instance = %s AND t.deleted_at IS NULL
              AND NOT EXISTS (SELECT 1 FROM _gp_seen_walk w WHERE w.id = t.id)""",
        (instance,),
    ).fetchone()[0])


def mark_unlisted_deleted(conn: psycopg.Connection, instance: str, entity: Entity) -> int:
    """After a complete, stable walk of the whole list: rows it did not list are gone (hard deletes)."""
    deleted = conn.execute(
        f"""WITH gone AS (
                UPDATE {table(entity)} t SET deleted_at = now()
                 WHERE t.instance = %s AND t.deleted_at IS NULL
                   AND NOT EXISTS (SELECT 1 FROM _gp_seen_walk w WHERE w.id = t.id)
                RETURNING 1
            )
            SELECT count(*) FROM gone""",
        (instance,),
    ).fetchone()[0]
    conn.execute(
        f"""DELETE FROM {SYNC_PENDING} p WHERE p.instance = %s AND p.entity = %s
              AND NOT EXISTS (SELECT 1 FROM _gp_seen_walk w WHERE w.id = p.id)""",
        (instance, entity.name),
    )
    return int(deleted)


# -- pending detail reads ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PendingDetail:
    id: str
    list_modified: datetime | None
    list_hash: str | None


def next_pending(conn: psycopg.Connection, instance: str, entity: Entity, limit: int, *, after: str = "",
                 skip: Sequence[str] = ()) -> list[PendingDetail]:
    """The next queued detail reads in id order, after `after`, leaving out `skip` (reads that failed this run)."""
    rows = conn.execute(
        f"""SELECT id, list_modified, list_hash FROM {SYNC_PENDING}
            WHERE instance = %s AND entity = %s AND id > %s AND NOT (id = ANY(%s)) ORDER BY id LIMIT %s""",
        (instance, entity.name, after, list(skip), limit),
    ).fetchall()
    return [PendingDetail(r[0], r[1], r[2]) for r in rows]


def clear_pending(conn: psycopg.Connection, instance: str, entity: Entity, ids: Sequence[str]) -> None:
    conn.execute(
        f"DELETE FROM {SYNC_PENDING} WHERE instance = %s AND entity = %s AND id = ANY(%s)",
        (instance, entity.name, list(ids)),
    )


def pending_count(conn: psycopg.Connection, instance: str, entity: Entity) -> int:
    return int(
        conn.execute(
            f"SELECT count(*) FROM {SYNC_PENDING} WHERE instance = %s AND entity = %s", (instance, entity.name)
        ).fetchone()[0]
    )


def queue_least_recently_verified(
    conn: psycopg.Connection, instance: str, entity: Entity, count: int, verified_before: datetime
) -> int:
    """The sweep: queue the `count` live documents read longest ago (and not by this sync) for a fresh read."""
    if count <= 0:
        return 0
    return conn.execute(
        f"""INSERT INTO {SYNC_PENDING} (instance, entity, id, list_modified, list_hash)
            SELECT c.instance, %(entity)s, c.id, c.modified_at, c.list_hash FROM {table(entity)} c
             WHERE c.instance = %(instance)s AND c.deleted_at IS NULL AND c.verified_at < %(before)s
             ORDER BY c.verified_at, c.id LIMIT %(count)s
            ON CONFLICT (instance, entity, id) DO NOTHING""",
        {"instance": instance, "entity": entity.name, "count": count, "before": verified_before},
    ).rowcount


def queue_everything_listed(conn: psycopg.Connection, instance: str, entity: Entity) -> int:
    """The full mode: every document the walk listed is read again (its hash compared, drift repaired)."""
    return conn.execute(
        f"""INSERT INTO {SYNC_PENDING} (instance, entity, id, list_modified, list_hash)
            SELECT %(instance)s, %(entity)s, w.id, c.modified_at, c.list_hash
              FROM _gp_seen_walk w
              LEFT JOIN {table(entity)} c ON c.instance = %(instance)s AND c.id = w.id
            ON CONFLICT (instance, entity, id) DO NOTHING""",
        {"instance": instance, "entity": entity.name},
    ).rowcount


@dataclass(frozen=True)
class Coverage:
    """How recently the live rows were confirmed by a read of their own."""

    live: int
    verified_within: int  # live rows verified within the period
    oldest_verified_age: timedelta | None

    @property
    def share(self) -> float:
        return 1.0 if self.live == 0 else self.verified_within / self.live


def verification_coverage(conn: psycopg.Connection, instance: str, entity: Entity, period: timedelta) -> Coverage:
    row = conn.execute(
        f"""SELECT count(*), count(*) FILTER (WHERE verified_at >= now() - %s), now() - min(verified_at)
              FROM {table(entity)} WHERE instance = %s AND deleted_at IS NULL""",
        (period, instance),
    ).fetchone()
    return Coverage(int(row[0]), int(row[1]), row[2])


def stamped_after(conn: psycopg.Connection, instance: str, entity: Entity,
                  bound: datetime) -> tuple[int, datetime | None]:
    """Live rows stamped after `bound` (the API's clock plus the allowed skew), and the newest such stamp."""
    row = conn.execute(
        f"""SELECT count(*), max(modified_at) FROM {table(entity)}
             WHERE instance = %s AND modified_at > %s AND deleted_at IS NULL""",
        (instance, bound),
    ).fetchone()
    return int(row[0]), row[1]


# -- sync state ----------------------------------------------------------------------------------------------


@dataclass
class SyncState:
    instance: str
    entity: str
    watermark: datetime | None = None
    sweep_position: int = 0
    last_sync_at: datetime | None = None
    last_mode: str | None = None
    last_full_at: datetime | None = None
    last_result: dict[str, Any] = field(default_factory=dict)


def load_state(conn: psycopg.Connection, instance: str, entity: Entity) -> SyncState:
    row = conn.execute(
        f"""SELECT watermark, sweep_position, last_sync_at, last_mode, last_full_at, last_result
            FROM {SYNC_STATE} WHERE instance = %s AND entity = %s""",
        (instance, entity.name),
    ).fetchone()
    if row is None:
        return SyncState(instance, entity.name)
    return SyncState(instance, entity.name, row[0], row[1], row[2], row[3], row[4], row[5] or {})


def max_modified(conn: psycopg.Connection, instance: str, entity: Entity,
                 upto: datetime | None = None) -> datetime | None:
    """The newest stored stamp, not counting stamps after `upto` (ahead of the API's clock)."""
    return conn.execute(
        f"SELECT max(modified_at) FROM {table(entity)} WHERE instance = %s "
        "AND (%s::timestamptz IS NULL OR modified_at <= %s::timestamptz)", (instance, upto, upto)
    ).fetchone()[0]


def save_state(
    conn: psycopg.Connection,
    state: SyncState,
    *,
    advance_watermark: bool,
    full_reconcile: bool,
    mode: str,
    result: dict[str, Any],
    bound: datetime,
) -> SyncState:
    """Record a finished sync. The watermark moves only to the highest modified stamp actually stored that is
    not after `bound` (the API's own clock plus the allowed skew), and only after a complete, stable walk whose
    documents are all stored (the caller decides). A stored watermark beyond `bound` (set by a record stamped
    ahead, or before the API's clock stepped back) falls back to the newest stamp within it."""
    entity = ENTITIES[state.entity]
    row = conn.execute(
        f"""WITH bounded AS (
                SELECT max(modified_at) AS stamp FROM {table(entity)}
                 WHERE instance = %(instance)s AND modified_at <= %(bound)s
            )
            INSERT INTO {SYNC_STATE} AS s
                (instance, entity, watermark, sweep_position, last_sync_at, last_mode, last_full_at, last_result)
            VALUES (%(instance)s, %(entity)s,
                    CASE WHEN %(advance)s THEN (SELECT stamp FROM bounded) END,
                    %(sweep)s, now(), %(mode)s, CASE WHEN %(full)s THEN now() END, %(result)s)
            ON CONFLICT (instance, entity) DO UPDATE SET
                watermark = CASE WHEN s.watermark > %(bound)s THEN (SELECT stamp FROM bounded)
                                 WHEN %(advance)s THEN GREATEST(s.watermark, EXCLUDED.watermark)
                                 ELSE s.watermark END,
                sweep_position = EXCLUDED.sweep_position,
                last_sync_at = EXCLUDED.last_sync_at, last_mode = EXCLUDED.last_mode,
                last_full_at = COALESCE(EXCLUDED.last_full_at, s.last_full_at),
                last_result = EXCLUDED.last_result
            RETURNING watermark, last_full_at""",
        {
            "instance": state.instance,
            "entity": state.entity,
            "advance": advance_watermark,
            "sweep": state.sweep_position,
            "mode": mode,
            "full": full_reconcile,
            "result": json.dumps(result, default=str),
            "bound": bound,
        },
    ).fetchone()
    state.watermark, state.last_full_at = row[0], row[1]
    return state


def live_count(conn: psycopg.Connection, instance: str, entity: Entity) -> int:
    return int(
        conn.execute(
            f"SELECT count(*) FROM {table(entity)} WHERE instance = %s AND deleted_at IS NULL", (instance,)
        ).fetchone()[0]
    )
