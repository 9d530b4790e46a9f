"""The sync engine: one (instance, entity) brought up to date in the cache, spending as few calls as possible.

`sync_entity` does, for any entity in the registry (DESIGN.md §4):

1. **Lock.** A session advisory lock on (instance, entity): a second sync of the same pair waits
   (`wait_for_lock=True`) or returns at once with `skipped_locked=True`; it never interleaves. A killed
   process loses its session and with it the lock.
2. **Walk.** Incremental entities list what changed since `watermark - OVERLAP` (5 minutes: absorbs clock
   skew and records modified while pages are walked; filters are UTC); the first sync, `mode="full"` and
   entities without a since filter walk the whole list. Pages are the largest the endpoint takes (1000).
   A walk is *stable* when every page reported the same `Total` and the distinct ids listed equal it; an
   unstable walk (records deleted or entering the filter while pages were walked shift records between
   pages, so one could be skipped) is walked again, up to `MAX_WALKS` times.
3. **Details.** For documents, the list page is compared in SQL with the cache and only documents that are
   new, came back, or whose list `Updated` is newer than the cached detail's (since-less lists: whose list
   row hash changed) are queued in `erp_cache.sync_pending`; one detail call each is the floor. The queue
   lives in PostgreSQL, so memory stays flat and a rerun after a crash resumes it. A detail that answers
   "not found" means the document was hard-deleted after it was listed: its row is marked deleted.
4. **Write.** Batches go through `store.upsert_records` (COPY → temp table → INSERT ... ON CONFLICT where the
   hash differs): an unchanged record costs no write; counts are exact.
5. **Watermark.** A list is ordered by creation, not by modification, so no watermark is safe until a walk
   is complete: rows are committed page by page (a rerun re-spends only list calls, never detail calls, for
   them), and the watermark moves once, after a complete stable walk whose documents are all stored, to the
   highest `modified_at` actually stored. A crash never skips data; a rerun never duplicates it (primary key
   + hash). If a walk that changed something spanned several pages, or a detail turned out newer than its
   list row (someone edited it meanwhile), a *confirming pass* lists what was edited since the pass began
   (stamps above the highest stored before it), until a pass changes nothing.
6. **Sweep.** Each incremental run re-reads the least recently verified records, to catch "ghosts" the
   change feed missed: documents by `verified_at` (set whenever a detail read confirms a row; only rows
   this run did not read), at most `SWEEP_SHARE` (3%) of the calls the run spent and at least one; master
   data by rotating through the whole list one page per run (`sync_state.sweep_position`), a page verifying
   1000 records for one call (read before the walk, so the walk sees anything edited meanwhile).
7. **Reconcile.** Whole-list walks that are complete and stable mark rows they did not list `deleted_at`
   (never after a failed or unstable walk). `mode="full"` ends by checking the API's own `Total` against the
   live row count and walks again while they differ, so deletions during the sync are caught too. Hard
   deletes leave no trace in a change feed: the incremental mode cannot see them, the full mode (run on a
   slower cadence) does. A row that reappears is undeleted. Deprecated master data and voided documents are
   listed, so they stay live rows with their status.

The guarantee: after a sync, the cache holds every record as it was at the sync's last request, for every
change made before it (tests/cache/test_reliability.py checks this under fault schedules).

Counts: `inserted` (new key), `updated` (payload changed, or came back from deletion), `unchanged` (distinct
records the run saw that needed no write), `deleted` (marked deleted this run). `api_calls` counts HTTP
requests including retries; `list_calls` and `detail_calls` the logical calls the engine made.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from gp_pipelines.cin7 import store
from gp_pipelines.cin7.client import Cin7Client, Page
from gp_pipelines.cin7.entities import Entity
from gp_pipelines.cin7.errors import Cin7RequestError, Cin7ResponseError
from gp_pipelines.cin7.store import StagedRecord

OVERLAP = timedelta(minutes=5)
SWEEP_SHARE = 0.03  # of the run's calls, spent re-verifying the least recently verified documents
DETAIL_BATCH = 100  # detail reads per write transaction (what a crash can cost to re-read)
MAX_WALKS = 4  # attempts at a stable walk
MAX_PASSES = 6  # walks, counting confirming passes and re-walks
MAX_RECONCILES = 3  # full mode: re-walks while the API's Total and the live row count differ
MODES = ("incremental", "full")
_NOT_FOUND = re.compile(r"not found", re.IGNORECASE)


@dataclass
class SyncResult:
    instance: str
    entity: str
    mode: str  # what was done: "incremental", "full" (whole list + reconcile) or "initial"
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    api_calls: int = 0
    list_calls: int = 0
    detail_calls: int = 0
    retries: int = 0
    throttled: int = 0
    seconds_waited: float = 0.0
    seconds: float = 0.0
    watermark: datetime | None = None
    skipped_locked: bool = False
    swept: int = 0  # records re-verified by the sweep
    passes: int = 0  # list passes (walks plus confirming passes)
    stable: bool = True  # every walk was stable (else the watermark did not move)
    reconciled: bool = False  # a complete walk marked unlisted rows deleted

    @property
    def changed(self) -> int:
        return self.inserted + self.updated + self.deleted

    def as_metadata(self) -> dict[str, Any]:
        data = asdict(self)
        data["watermark"] = self.watermark.isoformat() if self.watermark else None
        data["seconds_waited"] = round(self.seconds_waited, 2)
        data["seconds"] = round(self.seconds, 2)
        data["changed"] = self.changed
        return data

    def summary(self) -> str:
        if self.skipped_locked:
            return f"{self.instance}/{self.entity}: skipped (another sync holds the lock)"
        return (
            f"{self.instance}/{self.entity} [{self.mode}]: +{self.inserted} ~{self.updated} ={self.unchanged} "
            f"-{self.deleted}; {self.api_calls} calls ({self.list_calls} list, {self.detail_calls} detail, "
            f"{self.retries} retries, {self.throttled} throttled), waited {self.seconds_waited:.1f}s, "
            f"{self.seconds:.1f}s, watermark {self.watermark.isoformat() if self.watermark else '-'}"
        )


def since_text(moment: datetime) -> str:
    """The API's documented filter form: `yyyy-MM-ddTHH:mm:ss.fff`, UTC."""
    moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}"


def _parse_stamp(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _lock_key(instance: str, entity: Entity) -> str:
    return f"gp.sync:{instance}:{entity.name}"


class _EntitySync:
    def __init__(self, conn: psycopg.Connection, client: Cin7Client, instance: str, entity: Entity,
                 mode: str, sweep: int | None):
        self.conn = conn
        self.client = client
        self.instance = instance
        self.entity = entity
        self.mode = mode
        self.sweep = sweep
        self.result = SyncResult(instance, entity.name, mode)
        self.needs_confirm = False
        self._changes_seen = 0  # rows written or documents queued: what makes a confirming pass worth it
        self._calls_before = client.stats.calls

    # -- the run -------------------------------------------------------------------------------------

    def run(self) -> SyncResult:
        entity, conn = self.entity, self.conn
        state = store.load_state(conn, self.instance, entity)
        store.start_sync(conn)
        started_at = conn.execute("SELECT now()").fetchone()[0]
        advance, reconciled = False, False
        if entity.kind == "account":
            self._sync_single_object()
            reconciled = True
            self.result.mode = "full"
        elif not entity.incremental:
            self.result.mode = "full"
            stable = self._walk(since=None, reconcile=True)
            self._read_details()
            reconciled = stable
            if entity.has_detail:
                self._sweep_documents(started_at)
        else:
            whole = self.mode == "full" or state.watermark is None
            self.result.mode = "full" if self.mode == "full" else ("initial" if whole else "incremental")
            # Anything edited while a pass walks gets a stamp above every stamp stored before the pass began
            # (the server's clock only moves forward), so a confirming pass lists from there.
            mark = store.max_modified(conn, self.instance, entity)
            if not whole and not entity.has_detail:
                self._sweep_pages(state)  # first: whatever changes meanwhile, the walk below still sees
            stable = self._walk(since=None if whole else state.watermark - OVERLAP, reconcile=whole)
            self._read_details()
            reconciled = whole and stable
            mark, stable = self._confirm(mark, stable)
            if not whole and entity.has_detail:
                self._sweep_documents(started_at)
            if self.mode == "full":
                # Last: the API's own Total against the live rows; a mismatch (a record deleted or created
                # after the reconciling walk) means walking the whole list again.
                for _ in range(MAX_RECONCILES):
                    total = api_total(self.client, entity)
                    self.result.list_calls += 1
                    if total is None or total == store.live_count(conn, self.instance, entity):
                        break
                    reconciled = self._walk(since=None, reconcile=True)
                    stable = reconciled and stable
                    self._read_details()
                    mark, stable = self._confirm(mark, stable)
                else:
                    reconciled = False
            advance = stable and store.pending_count(conn, self.instance, entity) == 0
        self.result.unchanged = store.unchanged_count(conn)
        self.result.reconciled = reconciled
        self._take_client_stats()
        with conn.transaction():
            state = store.save_state(
                conn, state, advance_watermark=advance, full_reconcile=reconciled, mode=self.result.mode,
                result=self._result_counts(),
            )
        self.result.watermark = state.watermark
        return self.result

    def _confirm(self, mark: datetime | None, stable: bool) -> tuple[datetime | None, bool]:
        """Confirming passes while the last pass suggests records moved under it."""
        while self.needs_confirm and self.result.passes < MAX_PASSES:
            self.needs_confirm = False
            if mark is None:  # nothing was stored before the first pass: fall back to the overlap
                latest = store.max_modified(self.conn, self.instance, self.entity)
                mark = latest - OVERLAP if latest else None
            since, mark = mark, store.max_modified(self.conn, self.instance, self.entity)
            stable = self._walk(since=since, reconcile=since is None) and stable
            self._read_details()
        return mark, stable

    def _result_counts(self) -> dict[str, Any]:
        r = self.result
        return {"inserted": r.inserted, "updated": r.updated, "unchanged": r.unchanged, "deleted": r.deleted,
                "api_calls": self.client.stats.calls - self._calls_before, "detail_calls": r.detail_calls,
                "list_calls": r.list_calls, "stable": r.stable}

    def _take_client_stats(self) -> None:
        self.result.api_calls = self.client.stats.calls - self._calls_before

    # -- walking lists -------------------------------------------------------------------------------

    def _list_params(self, since: datetime | None) -> dict[str, Any]:
        params = dict(self.entity.params)
        if since is not None and self.entity.since_param:
            params[self.entity.since_param] = since_text(since)
        return params

    def _walk(self, since: datetime | None, reconcile: bool) -> bool:
        """Walk the list (whole, or changed since `since`) until stable; True when it was."""
        entity, conn = self.entity, self.conn
        stable = False
        for _attempt in range(MAX_WALKS):
            self.result.passes += 1
            store.start_walk(conn)
            if not entity.paged:
                body = self.client.get(entity.path, self._list_params(since))
                self.result.list_calls += 1
                rows = body.get(entity.list_key) if isinstance(body, dict) else None
                if not isinstance(rows, list):
                    raise Cin7ResponseError(f"expected an object with a '{entity.list_key}' list",
                                            instance=self.instance, endpoint=entity.path)
                self._take_page(rows)
                stable = True
                break
            first_total: int | None = None
            changes_before = self._changes_seen
            last: Page | None = None
            stable = True
            pages = 0
            for page in self.client.walk_pages(entity.path, entity.list_key, self._list_params(since),
                                               page_size=entity.page_size):
                self.result.list_calls += 1
                pages += 1
                if first_total is None:
                    first_total = page.total
                elif page.total != first_total:
                    stable = False
                self._take_page(page.records)
                last = page
            if pages > 1 and self._changes_seen > changes_before:
                self.needs_confirm = True  # a later page may have moved records already read
            if stable and last is not None and last.total is not None:
                listed = conn.execute("SELECT count(*) FROM _gp_seen_walk").fetchone()[0]
                stable = listed == last.total
            if stable:
                break
            self.needs_confirm = True
        if not stable:
            self.result.stable = False
        elif reconcile:
            with conn.transaction():
                self.result.deleted += store.mark_unlisted_deleted(conn, self.instance, entity)
        return stable

    def _take_page(self, rows: list[dict[str, Any]]) -> None:
        entity, conn = self.entity, self.conn
        if entity.has_detail:
            listed = []
            for row in rows:
                list_hash = None if entity.incremental else store.text_hash(store.canonical_json(row))
                listed.append((entity.record_id(row), entity.list_modified(row), list_hash))
            with conn.transaction():
                self._changes_seen += store.stage_walk_page(conn, self.instance, entity, listed)
            return
        staged = [StagedRecord.of(entity.record_id(row), row, entity.payload_modified(row)) for row in rows]
        with conn.transaction():
            self._count(store.upsert_records(conn, self.instance, entity, staged, verified=False))

    def _count(self, counts: store.WriteCounts) -> None:
        self._changes_seen += counts.inserted + counts.updated
        self.result.inserted += counts.inserted
        self.result.updated += counts.updated

    def _sync_single_object(self) -> None:
        body = self.client.get(self.entity.path)
        self.result.list_calls += 1
        if not isinstance(body, dict):
            raise Cin7ResponseError("expected an object", instance=self.instance, endpoint=self.entity.path)
        store.start_walk(self.conn)
        with self.conn.transaction():
            record = StagedRecord.of(self.entity.record_id(body), body, None)
            self._count(store.upsert_records(self.conn, self.instance, self.entity, [record], verified=True))
            self.result.deleted += store.mark_unlisted_deleted(self.conn, self.instance, self.entity)

    # -- details -------------------------------------------------------------------------------------

    def _read_details(self) -> None:
        entity, conn = self.entity, self.conn
        if not entity.has_detail:
            return
        while True:
            batch = store.next_pending(conn, self.instance, entity, DETAIL_BATCH)
            if not batch:
                return
            staged: list[StagedRecord] = []
            gone: list[str] = []
            for pending in batch:
                try:
                    doc = self.client.get(entity.detail_path, {entity.detail_id_param: pending.id})
                except Cin7RequestError as exc:
                    self.result.detail_calls += 1
                    if _NOT_FOUND.search(str(exc)):
                        gone.append(pending.id)
                        continue
                    raise
                self.result.detail_calls += 1
                if not isinstance(doc, dict):
                    raise Cin7ResponseError("expected a document object", instance=self.instance,
                                            endpoint=entity.detail_path)
                modified = entity.payload_modified(doc)
                stamp = _parse_stamp(modified)
                if pending.list_modified and stamp and stamp > pending.list_modified:
                    self.needs_confirm = True  # edited since it was listed: others may have been too
                staged.append(StagedRecord.of(pending.id, doc, modified, pending.list_hash))
            with conn.transaction():
                self._count(store.upsert_records(conn, self.instance, entity, staged, verified=True))
                self.result.deleted += store.mark_deleted(conn, self.instance, entity, gone)
                store.clear_pending(conn, self.instance, entity, [p.id for p in batch])

    # -- sweep and reconcile ---------------------------------------------------------------------------

    def _sweep_documents(self, started_at: datetime) -> None:
        spent = self.client.stats.calls - self._calls_before
        count = self.sweep if self.sweep is not None else max(1, math.ceil(SWEEP_SHARE * spent))
        with self.conn.transaction():
            queued = store.queue_least_recently_verified(self.conn, self.instance, self.entity, count, started_at)
        self.result.swept += queued
        self._read_details()

    def _sweep_pages(self, state: store.SyncState) -> None:
        """Master data: verify the next page(s) of the whole list, round-robin over runs."""
        entity = self.entity
        count = self.sweep if self.sweep is not None else entity.page_size
        if count <= 0 or not entity.paged:
            return
        for _ in range(math.ceil(count / entity.page_size)):
            number = state.sweep_position + 1
            page = self.client.get_page(entity.path, entity.list_key, self._list_params(None), page=number,
                                        page_size=entity.page_size)
            self.result.list_calls += 1
            self._take_page(page.records)
            self.result.swept += len(page.records)
            last_page = math.ceil((page.total or 0) / entity.page_size)
            state.sweep_position = number if number < last_page else 0

def sync_entity(
    database_url: str,
    client: Cin7Client,
    instance: str,
    entity: Entity,
    *,
    mode: str = "incremental",
    sweep: int | None = None,
    wait_for_lock: bool = True,
) -> SyncResult:
    """Bring one (instance, entity) up to date in `erp_cache` (see the module docstring)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    started = time.perf_counter()
    stats = client.stats
    before = (stats.retries, stats.throttled, stats.seconds_waited)
    conn = store.connect(database_url)
    try:
        store.create_cache_schema(conn)
        key = _lock_key(instance, entity)
        if wait_for_lock:
            conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (key,))
        elif not conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (key,)).fetchone()[0]:
            state = store.load_state(conn, instance, entity)
            return SyncResult(instance, entity.name, mode, watermark=state.watermark, skipped_locked=True,
                              seconds=time.perf_counter() - started)
        try:
            result = _EntitySync(conn, client, instance, entity, mode, sweep).run()
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))
    finally:
        conn.close()
    result.retries = stats.retries - before[0]
    result.throttled = stats.throttled - before[1]
    result.seconds_waited = stats.seconds_waited - before[2]
    result.seconds = time.perf_counter() - started
    return result


def api_total(client: Cin7Client, entity: Entity) -> int | None:
    """How many records the API itself says the entity has (one cheap call), for the completeness check."""
    if entity.kind == "account":
        return 1
    params = dict(entity.params)
    if not entity.paged:
        body = client.get(entity.path, params)
        rows = body.get(entity.list_key) if isinstance(body, dict) else None
        return len(rows) if isinstance(rows, list) else None
    page = client.get_page(entity.path, entity.list_key, params, page=1, page_size=1)
    return page.total


def cache_count(database_url: str, instance: str, entity: Entity) -> int:
    """Live (not deleted) rows of the entity for the instance."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        store.create_cache_schema(conn)
        return store.live_count(conn, instance, entity)
