"""The sync engine: one (instance, entity) brought up to date in the cache, spending as few calls as possible.

`sync_entity` does, for any entity in the registry (DESIGN.md §4):

1. **Lock.** A session advisory lock on (instance, entity): a second sync of the same pair waits
   (`wait_for_lock=True`) or returns at once with `skipped_locked=True`; it never interleaves. A killed
   process loses its session and with it the lock.
2. **Walk.** Incremental entities list what changed since `watermark - OVERLAP` (5 minutes: absorbs clock
   skew and records modified while pages are walked; filters are UTC); the first sync, `mode="reconcile"`,
   `mode="full"` and entities without a since filter walk the whole list. Pages are the largest the endpoint
   takes (1000). A walk is *stable* when every page reported the same `Total` and the distinct ids listed equal it; an
   unstable walk (records deleted or entering the filter while pages were walked shift records between
   pages, so one could be skipped) is walked again, up to `MAX_WALKS` times.
3. **Details.** For documents, the list page is compared in SQL with the cache and only documents that are
   new, came back, or whose list `Updated` is newer than the cached detail's (since-less lists: whose list
   row hash changed) are queued in `erp_cache.sync_pending`; one detail call each is the floor. The queue
   lives in PostgreSQL, so memory stays flat and a rerun after a crash resumes it. Reads are committed in
   batches of `DETAIL_BATCH`, and a batch is stored before any failure propagates, so an error never undoes
   a read. A read that fails after its retries stays queued and the run goes on (the watermark then waits);
   `MAX_FAILED_IN_A_ROW` failures in a row mean the API is down and end the run. A detail answering "not
   found" is never taken as a deletion (a gateway's bare 404 is retried as transient by the client anyway):
   the cached row stays until a full reconcile no longer lists it.
4. **Write.** Batches go through `store.upsert_records` (COPY → temp table → INSERT ... ON CONFLICT where the
   hash differs): an unchanged record costs no write; counts are exact.
5. **Watermark.** A list is ordered by creation, not by modification, so no watermark is safe until a walk
   is complete: rows are committed page by page (a rerun re-spends only list calls, never detail calls, for
   them), and the watermark moves once, after a complete stable walk whose documents are all stored, to the
   highest `modified_at` actually stored **that is not ahead of the API's own clock** (the `Date` header of
   its latest answer, plus `clock_skew`). A record stamped further ahead is stored and counted
   (`future_stamped`), never trusted as the cursor; a stored watermark beyond the clock falls back to the
   newest stamp within it. When the API's clock, measured against ours, stepped back since the last sync,
   the walk is repeated from `watermark - OVERLAP - step`. A crash never skips data; a rerun never
   duplicates it (primary key + hash). If a walk that changed something spanned several pages, or a detail
   turned out newer than its list row (someone edited it meanwhile), a *confirming pass* lists what was
   edited since the pass began (stamps above the highest stored before it), until a pass changes nothing.
6. **Sweep (rolling verification).** Each incremental run re-reads the least recently verified records, to
   catch "ghosts" the change feed missed, sized so that every record is re-read within `verify_period`
   (7 days): the share of the live rows that the time since the last sync is of the period, plus 10 %
   (and at least `SWEEP_SHARE` of the run's calls). Documents by `verified_at` (set whenever a detail read
   confirms a row; only rows this run did not read); master data by rotating through the whole list
   (`sync_state.sweep_position`), a page verifying 1000 records for one call (read before the walk, so the
   walk sees anything edited meanwhile). The share verified within the period is in the result.
7. **Reconcile.** Whole-list walks that are complete and stable mark rows they did not list `deleted_at`
   (never after a failed or unstable walk), unless that would be more than `max_delete_share` (20 %) of the
   live rows: then nothing is marked, the refusal is kept in `sync_state.last_result` (the completeness check
   fails on it) until a reconcile succeeds or an operator accepts the deletions. `mode="reconcile"` (the nightly
   job) walks every list whole; `mode="full"` also re-reads every
   listed document (drift without a list-stamp change is repaired; `repaired` counts it; `estimate_full_read`
   gives its cost first and `max_calls` refuses it over budget) and ends by checking the API's own `Total`
   against the live row count, walking again while they differ, so deletions during the sync are caught too.
   Hard deletes leave no trace in a change feed: the incremental mode cannot see them, the full mode (run on
   a slower cadence) does. A row that reappears is undeleted. Deprecated master data and voided documents
   are listed, so they stay live rows with their status.

A lost database connection (a server restart) is reconnected once by `sync_entity`; the queue resumes.

The guarantee: after a sync, the cache holds every record as it was at the sync's last request, for every
change made before it (tests/cache/test_reliability.py checks this under fault schedules).

Counts: `inserted` (new key), `updated` (payload changed, or came back from deletion), `unchanged` (distinct
records the run saw that needed no write), `deleted` (marked deleted this run). `api_calls` counts HTTP
requests including retries; `list_calls` and `detail_calls` the logical calls the engine made.
"""

from __future__ import annotations

import logging
import math
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from gp_pipelines.cin7 import store
from gp_pipelines.cin7.client import Cin7Client, Page
from gp_pipelines.cin7.entities import Entity
from gp_pipelines.cin7.errors import (
    Cin7BudgetError,
    Cin7Error,
    Cin7RequestError,
    Cin7ResponseError,
    Cin7ServerError,
    Cin7ThrottledError,
)
from gp_pipelines.cin7.store import StagedRecord
from gp_pipelines.cin7.sync_model import FullReadEstimate, SyncResult, SyncRules

__all__ = ["MODES", "FullReadEstimate", "SyncResult", "SyncRules", "api_total", "estimate_full_read", "sync_entity"]

OVERLAP = timedelta(minutes=5)
SWEEP_SHARE = 0.03  # of the run's calls, spent re-verifying the least recently verified documents
SWEEP_MARGIN = 1.1  # the rolling verification reads 10 % more than its period needs, to finish within it
DETAIL_BATCH = 20  # detail reads per write transaction (what a crash can cost to re-read)
MAX_WALKS = 4  # attempts at a stable walk
MAX_PASSES = 6  # walks, counting confirming passes and re-walks
MAX_RECONCILES = 3  # full mode: re-walks while the API's Total and the live row count differ
MAX_FAILED_IN_A_ROW = 3  # detail reads failing one after another (after their retries): the API is down, stop
CLOCK_STEP_TOLERANCE = timedelta(seconds=60)  # the API's clock against ours moved back more than this: a step
MODES = ("incremental", "reconcile", "full")  # full = reconcile + every document read again
_NOT_FOUND = re.compile(r"not found", re.IGNORECASE)
PROGRESS_SECONDS = 10.0  # a long walk or detail read logs how far it got at most this often
_log = logging.getLogger(__name__)


class _Progress:
    """Logs (INFO) how far a long step got, with an estimate of the time left from the pace so far: a run that
    reads 3,000 documents at 58 calls a minute says so, instead of an hour of silence."""

    def __init__(self, what: str, unit: str, total: int | None):
        self.what, self.unit, self.total = what, unit, total
        self.started = self.last = time.monotonic()

    def done(self, count: int) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_SECONDS:
            return
        self.last = now
        if self.total:
            left = (now - self.started) / max(count, 1) * max(self.total - count, 0)
            _log.info("%s: %s %d of %d, about %s left", self.what, self.unit, count, self.total, _duration(left))
        else:
            _log.info("%s: %s %d so far", self.what, self.unit, count)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


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
                 mode: str, sweep: int | None, rules: SyncRules):
        self.conn = conn
        self.client = client
        self.instance = instance
        self.entity = entity
        self.mode = mode
        self.sweep = sweep
        self.rules = rules
        self.result = SyncResult(instance, entity.name, mode)
        self.needs_confirm = False
        self._changes_seen = 0  # rows written or documents queued: what makes a confirming pass worth it
        self._calls_before = client.stats.calls
        self._failed: list[str] = []  # detail reads that failed this run (left queued)
        self._last_error: Cin7Error | None = None
        self._previous_offset: timedelta | None = None
        self._db_now: datetime | None = None
        self._repairing = False  # full mode: every document is being re-read

    # -- the API's clock -------------------------------------------------------------------------------

    def _bound(self) -> datetime:
        """The latest stamp a record may carry: the API's clock (its `Date` header) plus the allowed skew.
        Before the first answer, our clock corrected by the offset the last sync saw."""
        skew = self.rules.clock_skew
        if self.client.server_time is not None:
            return self.client.server_time + skew
        if self._db_now is None:
            self._db_now = self.conn.execute("SELECT now()").fetchone()[0]
        return self._db_now + (self._previous_offset or timedelta(0)) + skew

    def _clock_step(self) -> timedelta:
        """How far the API's clock stepped back against ours since the last sync (zero when it did not)."""
        if self._previous_offset is None or self.client.server_offset is None:
            return timedelta(0)
        step = self._previous_offset - self.client.server_offset
        return step if step > CLOCK_STEP_TOLERANCE else timedelta(0)

    # -- the run -------------------------------------------------------------------------------------

    def run(self) -> SyncResult:
        entity, conn = self.entity, self.conn
        state = store.load_state(conn, self.instance, entity)
        offset = state.last_result.get("api_clock_offset_seconds")
        self._previous_offset = timedelta(seconds=offset) if isinstance(offset, int | float) else None
        store.start_sync(conn)
        started_at = conn.execute("SELECT now()").fetchone()[0]
        advance, reconciled = False, False
        if entity.kind == "account":
            self._sync_single_object()
            reconciled = True
            self.result.mode = "full"
        elif not entity.incremental:
            self.result.mode = self.mode if self.mode != "incremental" else "full"
            stable = self._walk(since=None, reconcile=True)
            if stable and self.mode == "full" and entity.has_detail:
                self._queue_full_read()
            self._read_details()
            reconciled = stable and self.result.refused_reconcile is None
            if entity.has_detail and self.mode == "incremental":
                self._sweep_documents(started_at, state)
        else:
            watermark = state.watermark
            if watermark is not None and watermark > self._bound():
                # Set by a record stamped ahead, or before the API's clock stepped back: not a safe cursor.
                watermark = store.max_modified(conn, self.instance, entity, upto=self._bound())
            whole = self.mode != "incremental" or watermark is None
            self.result.mode = self.mode if self.mode != "incremental" else ("initial" if whole else "incremental")
            # Anything edited while a pass walks gets a stamp above every stamp stored before the pass began
            # (as long as the server's clock moves forward; a step back is caught below), so a confirming pass
            # lists from there.
            mark = store.max_modified(conn, self.instance, entity, upto=self._bound())
            if not whole and not entity.has_detail:
                self._sweep_pages(state)  # first: whatever changes meanwhile, the walk below still sees
            since = None if whole else watermark - OVERLAP
            stable = self._walk(since=since, reconcile=whole)
            step = self._clock_step()
            if since is not None and step:
                # The API's clock went back: changes since the last sync carry stamps up to `step` older
                # than the watermark. Walk again from that far back.
                self.result.clock_step_seconds = step.total_seconds()
                stable = self._walk(since=since - step, reconcile=False) and stable
                mark = None if mark is None else mark - step
            if whole and stable and self.mode == "full" and entity.has_detail:
                self._queue_full_read()
            self._read_details()
            reconciled = whole and stable and self.result.refused_reconcile is None
            mark, stable = self._confirm(mark, stable)
            if not whole and entity.has_detail:
                self._sweep_documents(started_at, state)
            if self.mode != "incremental" and self.result.refused_reconcile is None:
                # Last: the API's own Total against the live rows; a mismatch (a record deleted or created
                # after the reconciling walk) means walking the whole list again.
                for _ in range(MAX_RECONCILES):
                    total = api_total(self.client, entity)
                    self.result.list_calls += 1
                    if total is None or total == store.live_count(conn, self.instance, entity):
                        break
                    reconciled = self._walk(since=None, reconcile=True) and self.result.refused_reconcile is None
                    stable = reconciled and stable
                    self._read_details()
                    mark, stable = self._confirm(mark, stable)
                else:
                    reconciled = False
            advance = stable and not self._failed and store.pending_count(conn, self.instance, entity) == 0
        if self.result.refused_reconcile is None and not reconciled:
            # A refusal stands until a reconcile of this entity succeeds.
            self.result.refused_reconcile = state.last_result.get("refused_reconcile")
        self._finish(state, advance, reconciled)
        if self._failed:
            raise Cin7ServerError(
                f"{len(self._failed)} detail read(s) failed after their retries (last: {self._last_error}); "
                "everything read was stored, the rest stays queued for the next run and the watermark did not move",
                instance=self.instance, endpoint=entity.detail_path or entity.path)
        return self.result

    def _finish(self, state: store.SyncState, advance: bool, reconciled: bool) -> None:
        conn, entity = self.conn, self.entity
        bound = self._bound()
        self.result.unchanged = store.unchanged_count(conn)
        self.result.reconciled = reconciled
        self.result.future_stamped, newest = store.stamped_after(conn, self.instance, entity, bound)
        coverage = store.verification_coverage(conn, self.instance, entity, self.rules.verify_period)
        # A since-less list without details is read whole every run: every row is confirmed each time.
        whole_every_run = not entity.incremental and not entity.has_detail
        self.result.live_rows = coverage.live
        self.result.verified_share = 1.0 if whole_every_run else round(coverage.share, 4)
        if coverage.oldest_verified_age is not None and not whole_every_run:
            self.result.oldest_verified_hours = round(coverage.oldest_verified_age.total_seconds() / 3600, 2)
        self._take_client_stats()
        counts = self._result_counts()
        if newest is not None:
            counts["future_newest"] = newest.isoformat()
        with conn.transaction():
            state = store.save_state(conn, state, advance_watermark=advance, full_reconcile=reconciled,
                                     mode=self.result.mode, result=counts, bound=bound)
        self.result.watermark = state.watermark

    def _confirm(self, mark: datetime | None, stable: bool) -> tuple[datetime | None, bool]:
        """Confirming passes while the last pass suggests records moved under it."""
        while self.needs_confirm and self.result.passes < MAX_PASSES:
            self.needs_confirm = False
            if mark is None:  # nothing was stored before the first pass: fall back to the overlap
                latest = store.max_modified(self.conn, self.instance, self.entity, upto=self._bound())
                mark = latest - OVERLAP if latest else None
            since, mark = mark, store.max_modified(self.conn, self.instance, self.entity, upto=self._bound())
            stable = self._walk(since=since, reconcile=since is None) and stable
            self._read_details()
        return mark, stable

    def _result_counts(self) -> dict[str, Any]:
        r = self.result
        counts: dict[str, Any] = {
            "inserted": r.inserted, "updated": r.updated, "unchanged": r.unchanged, "deleted": r.deleted,
            "api_calls": self.client.stats.calls - self._calls_before, "detail_calls": r.detail_calls,
            "list_calls": r.list_calls, "stable": r.stable, "not_found": r.not_found,
            "failed_details": len(self._failed), "future_stamped": r.future_stamped, "repaired": r.repaired,
            "clock_step_seconds": r.clock_step_seconds, "verified_share": r.verified_share,
        }
        if r.refused_reconcile:
            counts["refused_reconcile"] = r.refused_reconcile
        offset = self.client.server_offset if self.client.server_offset is not None else self._previous_offset
        if offset is not None:
            counts["api_clock_offset_seconds"] = round(offset.total_seconds(), 3)
        return counts

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
            progress = _Progress(f"{self.instance}/{entity.name}", "list pages walked", None)
            for page in self.client.walk_pages(entity.path, entity.list_key, self._list_params(since),
                                               page_size=entity.page_size):
                self.result.list_calls += 1
                pages += 1
                if page.total is not None:
                    progress.total = max(1, math.ceil(page.total / entity.page_size))
                progress.done(pages)
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
            self._reconcile()
        return stable

    def _reconcile(self) -> None:
        """Mark what a complete, stable walk of the whole list did not list deleted, unless that is more than
        the allowed share of the live rows: an empty or short answer is far likelier than a mass deletion."""
        conn, entity = self.conn, self.entity
        with conn.transaction():
            gone = store.count_unlisted(conn, self.instance, entity)
            live = store.live_count(conn, self.instance, entity)
            if gone > max(1.0, self.rules.max_delete_share * live) and not self.rules.accept_deletions:
                self.result.refused_reconcile = {"would_delete": gone, "live": live,
                                                 "max_share": self.rules.max_delete_share}
                return
            self.result.deleted += store.mark_unlisted_deleted(conn, self.instance, entity)

    def _take_page(self, rows: list[dict[str, Any]], *, verified: bool = False) -> None:
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
            self._count(store.upsert_records(conn, self.instance, entity, staged, verified=verified))

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

    def _queue_full_read(self) -> None:
        with self.conn.transaction():
            store.queue_everything_listed(self.conn, self.instance, self.entity)
        self._repairing = True

    def _read_details(self) -> None:
        """Read every queued document, committing each small batch before the next read can fail: a failure
        loses nothing already read. A read that fails after its retries stays queued (the watermark will not
        move); several failing in a row mean the API is down, and the run stops there."""
        entity, conn = self.entity, self.conn
        if not entity.has_detail:
            return
        after, failed_in_a_row = "", 0
        read = 0
        progress = _Progress(f"{self.instance}/{entity.name}", "documents fetched",
                             store.pending_count(conn, self.instance, entity) - len(self._failed))
        while True:
            batch = store.next_pending(conn, self.instance, entity, DETAIL_BATCH, after=after, skip=self._failed)
            if not batch:
                return
            staged: list[StagedRecord] = []
            done: list[str] = []
            try:
                for pending in batch:
                    after = pending.id
                    try:
                        doc = self.client.get(entity.detail_path, {entity.detail_id_param: pending.id})
                    except Cin7RequestError as exc:
                        self.result.detail_calls += 1
                        if not _NOT_FOUND.search(str(exc)):
                            raise
                        # Deleted since it was listed, or an answer we cannot trust: either way not a reason
                        # to delete. The next full reconcile decides; until then the cached row stays.
                        self.result.not_found += 1
                        done.append(pending.id)
                        continue
                    except (Cin7ServerError, Cin7ThrottledError, Cin7ResponseError) as exc:
                        self.result.detail_calls += 1
                        self._failed.append(pending.id)
                        self._last_error = exc
                        failed_in_a_row += 1
                        if failed_in_a_row >= MAX_FAILED_IN_A_ROW:
                            raise
                        continue
                    self.result.detail_calls += 1
                    failed_in_a_row = 0
                    read += 1
                    progress.done(read)
                    if not isinstance(doc, dict):
                        self._failed.append(pending.id)
                        self._last_error = Cin7ResponseError("expected a document object",
                                                             instance=self.instance, endpoint=entity.detail_path)
                        continue
                    modified = entity.payload_modified(doc)
                    stamp = _parse_stamp(modified)
                    if pending.list_modified and stamp and stamp > pending.list_modified:
                        self.needs_confirm = True  # edited since it was listed: others may have been too
                    staged.append(StagedRecord.of(pending.id, doc, modified, pending.list_hash))
                    done.append(pending.id)
            finally:
                self._store_details(staged, done)

    def _store_details(self, staged: list[StagedRecord], done: list[str]) -> None:
        if not done:
            return
        with self.conn.transaction():
            counts = store.upsert_records(self.conn, self.instance, self.entity, staged, verified=True)
            self._count(counts)
            if self._repairing:
                self.result.repaired += counts.updated
            store.clear_pending(self.conn, self.instance, self.entity, done)

    # -- sweep and reconcile ---------------------------------------------------------------------------

    def _rolling_share(self, state: store.SyncState) -> float:
        """The share of the live rows to re-read now so that every row is re-read within the verification
        period at this cadence (the time since the last sync; at most all of them)."""
        if state.last_sync_at is None:
            return 0.0
        elapsed = self.conn.execute("SELECT now() - %s::timestamptz", (state.last_sync_at,)).fetchone()[0]
        return min(1.0, SWEEP_MARGIN * max(elapsed, timedelta(0)) / self.rules.verify_period)

    def _sweep_documents(self, started_at: datetime, state: store.SyncState) -> None:
        spent = self.client.stats.calls - self._calls_before
        if self.sweep is not None:
            count = self.sweep
        else:
            live = store.live_count(self.conn, self.instance, self.entity)
            count = max(1, math.ceil(SWEEP_SHARE * spent), math.ceil(self._rolling_share(state) * live))
        with self.conn.transaction():
            queued = store.queue_least_recently_verified(self.conn, self.instance, self.entity, count, started_at)
        self.result.swept += queued
        self._read_details()

    def _sweep_pages(self, state: store.SyncState) -> None:
        """Master data: verify the next page(s) of the whole list, round-robin over runs."""
        entity = self.entity
        if self.sweep is not None:
            count = self.sweep
        else:
            live = store.live_count(self.conn, self.instance, entity)
            count = max(entity.page_size, math.ceil(self._rolling_share(state) * live))
        if count <= 0 or not entity.paged:
            return
        for _ in range(math.ceil(count / entity.page_size)):
            number = state.sweep_position + 1
            page = self.client.get_page(entity.path, entity.list_key, self._list_params(None), page=number,
                                        page_size=entity.page_size)
            self.result.list_calls += 1
            self._take_page(page.records, verified=True)
            self.result.swept += len(page.records)
            last_page = math.ceil((page.total or 0) / entity.page_size)
            state.sweep_position = number if number < last_page else 0


def estimate_full_read(client: Cin7Client, entity: Entity) -> FullReadEstimate:
    """One call for the API's `Total`; a full read lists every page and reads every document once."""
    total = api_total(client, entity)
    if entity.kind == "account" or not entity.paged:
        return FullReadEstimate(total, 1, 0)
    pages = max(1, math.ceil((total or 0) / entity.page_size))
    return FullReadEstimate(total, pages + 1, (total or 0) if entity.has_detail else 0)


def sync_entity(
    database_url: str,
    client: Cin7Client,
    instance: str,
    entity: Entity,
    *,
    mode: str = "incremental",
    sweep: int | None = None,
    wait_for_lock: bool = True,
    rules: SyncRules | None = None,
    max_calls: int | None = None,
    estimate: FullReadEstimate | None = None,
) -> SyncResult:
    """Bring one (instance, entity) up to date in `erp_cache` (see the module docstring).

    `max_calls` refuses a full read estimated above it (`Cin7BudgetError`) before it spends anything else; a
    caller that already showed the `estimate` passes it, so the Total is not asked for twice.
    A lost database connection (a restart) is reconnected once; the queue in PostgreSQL resumes the work."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    rules = rules or SyncRules()
    if mode == "full" and max_calls is not None:
        estimate = estimate or estimate_full_read(client, entity)
        if estimate.calls > max_calls:
            raise Cin7BudgetError(
                f"full read refused: {estimate.describe()} is over the budget of {max_calls} calls; raise "
                "cache.full_read_max_calls or run it in a quieter window", instance=instance, endpoint=entity.path)
    started = time.perf_counter()
    stats = client.stats
    before = (stats.retries, stats.throttled, stats.seconds_waited)
    for attempt in (1, 2):
        try:
            result = _sync_once(database_url, client, instance, entity, mode, sweep, wait_for_lock, rules)
            break
        except psycopg.OperationalError:
            if attempt == 2:
                raise
            time.sleep(1.0)  # the server restarting: give it a moment, then resume from the queue
    result.retries = stats.retries - before[0]
    result.throttled = stats.throttled - before[1]
    result.seconds_waited = stats.seconds_waited - before[2]
    result.seconds = time.perf_counter() - started
    return result


def _sync_once(database_url: str, client: Cin7Client, instance: str, entity: Entity, mode: str,
               sweep: int | None, wait_for_lock: bool, rules: SyncRules) -> SyncResult:
    conn = store.connect(database_url)
    try:
        store.create_cache_schema(conn)
        key = _lock_key(instance, entity)
        if wait_for_lock:
            conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (key,))
        elif not conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (key,)).fetchone()[0]:
            state = store.load_state(conn, instance, entity)
            return SyncResult(instance, entity.name, mode, watermark=state.watermark, skipped_locked=True)
        try:
            return _EntitySync(conn, client, instance, entity, mode, sweep, rules).run()
        finally:
            if not conn.closed and not conn.broken:
                conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))
    finally:
        conn.close()


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
