"""What a sync of one (instance, entity) is told (`SyncRules`) and what it reports (`SyncResult`), and what a
full read would cost (`FullReadEstimate`): the plain data around the engine in `sync.py`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any


@dataclass
class SyncResult:
    instance: str
    entity: str
    mode: str  # what was done: "incremental", "initial", "reconcile" (whole list + deletions) or "full" (and details)
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
    not_found: int = 0  # detail reads answered "not found": left for a full reconcile, never marked deleted
    failed_details: int = 0  # detail reads that failed after their retries: kept queued for the next run
    refused_reconcile: dict[str, Any] | None = None  # a reconcile that would have deleted too much
    future_stamped: int = 0  # live rows stamped after the API's clock plus the allowed skew (flagged)
    clock_step_seconds: float = 0.0  # how far the API's clock stepped back since the last sync (overlap widened)
    repaired: int = 0  # full mode: documents whose re-read differed from the cache
    live_rows: int = 0  # live rows of the entity for the instance after the sync
    verified_share: float | None = None  # live rows re-read within the verification period
    oldest_verified_hours: float | None = None

    @property
    def changed(self) -> int:
        return self.inserted + self.updated + self.deleted

    def as_metadata(self) -> dict[str, Any]:
        data = asdict(self)
        data["watermark"] = self.watermark.isoformat() if self.watermark else None
        data["seconds_waited"] = round(self.seconds_waited, 2)
        data["seconds"] = round(self.seconds, 2)
        data["changed"] = self.changed
        if data["refused_reconcile"] is None:
            data.pop("refused_reconcile")
        return data

    def summary(self) -> str:
        if self.skipped_locked:
            return f"{self.instance}/{self.entity}: skipped (another sync holds the lock)"
        return (
            f"{self.instance}/{self.entity} [{self.mode}]: +{self.inserted} ~{self.updated} ={self.unchanged} "
            f"-{self.deleted}; {self.api_calls} calls ({self.list_calls} list, {self.detail_calls} detail, "
            f"{self.retries} retries, {self.throttled} throttled), waited {self.seconds_waited:.1f}s, "
            f"{self.seconds:.1f}s, watermark {self.watermark.isoformat() if self.watermark else '-'}"
            + "".join(f"; {note}" for note in self.notes())
        )

    def notes(self) -> list[str]:
        """What a person should know beyond the counts."""
        notes = []
        if self.repaired:
            notes.append(f"{self.repaired} document(s) repaired by the full read")
        if self.not_found:
            notes.append(f"{self.not_found} detail read(s) answered not found (left for the full reconcile)")
        if self.future_stamped:
            notes.append(f"{self.future_stamped} record(s) stamped ahead of the API's clock (not the watermark)")
        if self.clock_step_seconds:
            notes.append(f"the API's clock stepped back {self.clock_step_seconds:.0f} s (overlap widened)")
        if self.refused_reconcile:
            notes.append(f"reconcile refused ({self.refused_reconcile['would_delete']} of "
                         f"{self.refused_reconcile['live']} rows would have been deleted)")
        return notes


@dataclass(frozen=True)
class SyncRules:
    """The cache's guards (config `cache:`), as the engine uses them."""

    max_delete_share: float = 0.2
    verify_period: timedelta = timedelta(days=7)
    clock_skew: timedelta = timedelta(minutes=10)
    accept_deletions: bool = False  # an operator confirmed a mass deletion is real

    @classmethod
    def from_config(cls, cache: Any, *, accept_deletions: bool = False) -> SyncRules:
        return cls(cache.max_delete_share, timedelta(days=cache.verify_every_days),
                   timedelta(minutes=cache.clock_skew_minutes), accept_deletions)


@dataclass(frozen=True)
class FullReadEstimate:
    """What `--mode full` will cost, before it runs."""

    records: int | None
    list_calls: int
    detail_calls: int

    @property
    def calls(self) -> int:
        return self.list_calls + self.detail_calls

    def describe(self, calls_per_minute: int | None = None) -> str:
        text = (f"about {self.calls} calls ({self.list_calls} list, {self.detail_calls} detail) for "
                f"{'?' if self.records is None else self.records} records")
        if calls_per_minute:
            text += f", {self.calls / calls_per_minute:.0f} min at {calls_per_minute} calls/min"
        return text
