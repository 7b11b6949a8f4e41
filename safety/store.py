"""The event store: SQLite in WAL mode, one row per event, upserted at each transition.

WAL lets `anjeon events` (another process) read while the service writes.
Every transition is committed before it is published or alerted, so a crash
loses nothing that anyone was told about; events still open when the service
stops are picked up again at start (``open_events``) instead of duplicated.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .incident import Event

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    camera TEXT NOT NULL,
    rule TEXT NOT NULL,
    type TEXT NOT NULL,
    zone TEXT, line TEXT, severity TEXT,
    state TEXT NOT NULL,              -- open | ended
    started REAL NOT NULL, since REAL, updated REAL, ended REAL, duration REAL,
    peak INTEGER, count INTEGER, tracks TEXT,  -- JSON list of track ids
    run TEXT, seq INTEGER, snapshot TEXT
);
CREATE INDEX IF NOT EXISTS events_started ON events (started);
CREATE INDEX IF NOT EXISTS events_camera ON events (camera, started);
"""
COLUMNS = ("id", "camera", "rule", "type", "zone", "line", "severity", "state", "started", "since", "updated",
           "ended", "duration", "peak", "count", "tracks", "run", "seq", "snapshot")
MAX_LIMIT = 10000


@dataclass(frozen=True)
class Query:
    camera: str = ""
    rule: str = ""  # a rule name or a rule type
    since: float | None = None
    until: float | None = None
    state: str = ""  # open | ended | "" (both)
    limit: int = 100

    @classmethod
    def from_map(cls, m: dict[str, Any]) -> "Query":
        def num(key: str) -> float | None:
            v = m.get(key)
            return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

        limit = m.get("limit", 100)
        return cls(camera=str(m.get("camera") or ""), rule=str(m.get("rule") or ""), since=num("since"),
                   until=num("until"), state=str(m.get("state") or ""),
                   limit=max(1, min(MAX_LIMIT, limit if isinstance(limit, int) else 100)))


class EventStore:
    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly:
            if not self.path.exists():
                raise FileNotFoundError(f"no event store at {self.path}")
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5.0)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=5.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
            self._db.executescript(SCHEMA)
        self._db.row_factory = sqlite3.Row

    def save(self, event: Event) -> None:
        d = event.to_dict()
        d["tracks"] = json.dumps(d["tracks"])
        placeholders = ", ".join("?" for _ in COLUMNS)
        updates = ", ".join(f"{c}=excluded.{c}" for c in COLUMNS if c != "id")
        self._db.execute(f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({placeholders}) "
                         f"ON CONFLICT(id) DO UPDATE SET {updates}", [d[c] for c in COLUMNS])
        self._db.commit()

    def query(self, q: Query) -> list[dict[str, Any]]:
        where, args = [], []
        if q.camera:
            where.append("camera = ?"), args.append(q.camera)
        if q.rule:
            where.append("(rule = ? OR type = ?)"), args.extend([q.rule, q.rule])
        if q.since is not None:
            where.append("COALESCE(ended, updated) >= ?"), args.append(q.since)
        if q.until is not None:
            where.append("started <= ?"), args.append(q.until)
        if q.state:
            where.append("state = ?"), args.append(q.state)
        sql = "SELECT * FROM events" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY started DESC LIMIT ?"
        rows = self._db.execute(sql, [*args, q.limit]).fetchall()
        out = []
        for row in rows:
            d = dict(row)
            d["tracks"] = json.loads(d["tracks"] or "[]")
            out.append(d)
        return out

    def open_events(self) -> list[Event]:
        return [Event.from_dict(d) for d in self.query(Query(state="open", limit=MAX_LIMIT))]

    def close(self) -> None:
        self._db.close()
