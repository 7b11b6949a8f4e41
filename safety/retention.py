"""Retention: evidence is deleted by age and under a disk cap, oldest first, so the disk never fills.

Checked at start and every ``check_minutes`` on its own thread with its own
SQLite connection. Order of deletion under the cap: the oldest clips first,
then the oldest snapshots, then event rows, but never the rows of the last
``keep_events_days`` (the record of what happened outlives its pictures).
Age limits apply separately (`clips_days`, `snapshots_days`, `events_days`).
Every deletion is logged (one line per check) and counted; the figures are
what the history socket's `storage_query` answers (the console's System page).

A write that fails because the disk is full never stops the rules or the
alerts (safety/service.py catches it, counts it as `store_failed` and
reports it here as ``write_errors``/``last_error``); storage resumes by
itself when space returns, since every transition upserts the whole event.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from anjeon.config.evidence import RetentionSpec

from .store import ClipRecord, EventStore

log = logging.getLogger("anjeon.safety.retention")

DAY = 86400.0
BATCH = 200  # rows looked at per deletion round
FILES = {  # what retention deletes before event rows, oldest event first (never an open event's)
    "clips": "SELECT c.event, c.path FROM clips c JOIN events e ON e.id = c.event WHERE c.state = 'ready'",
    "snapshots": "SELECT e.id, e.snapshot FROM events e WHERE e.snapshot != '' AND e.state = 'ended'",
}


def tree_bytes(folder: Path) -> int:
    total = 0
    try:
        with os.scandir(folder) as it:
            for entry in it:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        total += tree_bytes(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
                except OSError:  # deleted while we looked
                    continue
    except OSError:
        return total
    return total


def store_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())


@dataclass
class Deleted:
    clips: int = 0
    snapshots: int = 0
    events: int = 0
    bytes: int = 0


@dataclass
class StorageReport:
    bytes: dict[str, int] = field(default_factory=lambda: {"events": 0, "snapshots": 0, "clips": 0})
    disk: dict[str, int] = field(default_factory=lambda: {"total": 0, "free": 0})
    oldest: float | None = None
    newest: float | None = None
    days: float = 0.0
    events: int = 0
    deleted: dict[str, int] = field(default_factory=lambda: asdict(Deleted()))
    write_errors: int = 0
    last_error: str = ""
    last_error_at: float | None = None
    checked: float | None = None
    limits: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Retention:
    def __init__(self, spec: RetentionSpec, store_path: Path, snapshot_dir: Path, clip_dir: Path) -> None:
        self.spec, self.store_path = spec, Path(store_path)
        self.snapshot_dir, self.clip_dir = Path(snapshot_dir), Path(clip_dir)
        self.total = Deleted()
        self._report = StorageReport(limits=asdict(spec))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- failures reported by the writers (any thread) -----------------------------------------
    def write_failed(self, what: str, exc: BaseException | str) -> None:
        with self._lock:
            self._report.write_errors += 1
            self._report.last_error = f"{what}: {exc}"[:300]
            self._report.last_error_at = time.time()

    def report(self) -> dict[str, Any]:
        with self._lock:
            return self._report.to_dict()

    # ---- the thread ----------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="retention", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        store = None
        while not self._stop.is_set():
            try:
                if store is None:
                    store = EventStore(self.store_path)
                self.check(store)
            except (sqlite3.Error, OSError) as exc:  # a full or broken disk: try again at the next check
                log.warning("retention check failed: %s", exc)
                self.write_failed("retention", exc)
            self._stop.wait(self.spec.check_minutes * 60)
        if store is not None:
            store.close()

    # ---- one check -------------------------------------------------------------------------------
    def check(self, store: EventStore, now: float | None = None) -> Deleted:
        now = time.time() if now is None else now
        s, done = self.spec, Deleted()
        if s.clips_days:
            self._delete_files(store, done, "clips", older=now - s.clips_days * DAY)
        if s.snapshots_days:
            self._delete_files(store, done, "snapshots", older=now - s.snapshots_days * DAY)
        if s.events_days:
            self._delete_events(store, done, older=now - s.events_days * DAY)
        excess = self._excess()
        for kind in ("clips", "snapshots"):  # the oldest clips first, then snapshots
            if excess > 0:
                excess -= self._delete_files(store, done, kind, budget=excess)
        if excess > 0:
            self._delete_events(store, done, older=now - s.keep_events_days * DAY, budget=excess)
        for key in ("clips", "snapshots", "events", "bytes"):
            setattr(self.total, key, getattr(self.total, key) + getattr(done, key))
        if done.clips or done.snapshots or done.events:
            # Deletions grow the write-ahead log; fold it back so the store's own size counts what is kept.
            store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            log.info(
                "retention deleted %d clip(s), %d snapshot(s), %d event row(s), %.1f MB (totals %d/%d/%d)",
                done.clips,
                done.snapshots,
                done.events,
                done.bytes / 1e6,
                self.total.clips,
                self.total.snapshots,
                self.total.events,
            )
        self._measure(store, now)
        return done

    def used(self) -> dict[str, int]:
        return {
            "events": store_bytes(self.store_path),
            "snapshots": tree_bytes(self.snapshot_dir),
            "clips": tree_bytes(self.clip_dir),
        }

    def _excess(self) -> int:
        """Bytes to free to meet the caps (0 when within them)."""
        s, excess = self.spec, 0
        if s.max_disk_gb:
            excess = max(excess, sum(self.used().values()) - int(s.max_disk_gb * 1e9))
        if s.max_disk_percent:
            disk = shutil.disk_usage(self.store_path.parent)
            excess = max(excess, (disk.total - disk.free) - int(disk.total * s.max_disk_percent / 100))
        return excess

    def _delete_files(
        self, store: EventStore, done: Deleted, kind: str, older: float | None = None, budget: int = 0
    ) -> int:
        """The oldest clips or snapshots: all older than ``older``, or until ``budget`` bytes are freed."""
        freed = 0
        while older is not None or freed < budget:
            sql = (
                FILES[kind]
                + (" AND e.started < ?" if older is not None else "")
                + " ORDER BY e.started LIMIT ?"
            )
            rows = store.db.execute(sql, ([older] if older is not None else []) + [BATCH]).fetchall()
            if not rows:
                break
            for event, path in rows:
                freed += _unlink(path)
                if kind == "clips":
                    store.set_clip(ClipRecord(event, "deleted", "", error="deleted by retention"))
                else:
                    store.db.execute("UPDATE events SET snapshot = '' WHERE id = ?", (event,))
                setattr(done, kind, getattr(done, kind) + 1)
                if older is None and freed >= budget:
                    break
            store.db.commit()
        done.bytes += freed
        return freed

    def _delete_events(self, store: EventStore, done: Deleted, older: float, budget: int = 0) -> int:
        """Event rows that started before ``older`` (with their files); under a cap, only until ``budget``."""
        freed = 0
        before = store_bytes(self.store_path)
        while budget == 0 or freed < budget:
            rows = store.db.execute(
                "SELECT e.id, e.snapshot, c.path FROM events e LEFT JOIN clips c ON c.event = e.id "
                "WHERE e.started < ? AND e.state = 'ended' ORDER BY e.started LIMIT ?",
                (older, BATCH),
            ).fetchall()
            if not rows:
                break
            ids = [r[0] for r in rows]
            for _, snapshot, clip in rows:
                freed += _unlink(snapshot) + _unlink(clip)
            marks = ",".join("?" * len(ids))
            for table, key in (("acks", "event"), ("clips", "event"), ("points", "event"), ("events", "id")):
                store.db.execute(f"DELETE FROM {table} WHERE {key} IN ({marks})", ids)
            store.db.commit()
            done.events += len(ids)
            freed += max(
                0, before - store_bytes(self.store_path)
            )  # pages are reused, so the file rarely shrinks
            if budget and len(ids) < BATCH:
                break
        done.bytes += freed
        return freed

    def _measure(self, store: EventStore, now: float) -> None:
        used = self.used()
        disk = shutil.disk_usage(self.store_path.parent)
        oldest, newest, n = store.db.execute(
            "SELECT MIN(started), MAX(started), COUNT(*) FROM events"
        ).fetchone()
        with self._lock:
            r = self._report
            r.bytes, r.disk = used, {"total": disk.total, "free": disk.free}
            r.oldest, r.newest, r.events = oldest, newest, int(n)
            r.days = round((now - oldest) / DAY, 2) if oldest is not None else 0.0
            r.deleted, r.checked = asdict(self.total), now


def _unlink(path: str | None) -> int:
    if not path:
        return 0
    p = Path(path)
    try:
        size = p.stat().st_size
        p.unlink()
        return size
    except OSError:  # already gone: nothing freed, nothing to fail over
        return 0
