"""The event store: SQLite in WAL mode, one row per event, upserted at each transition.

WAL lets readers (the history thread, `anjeon events`, reports) read while the
service writes. Every transition is committed before it is published or
alerted, so a crash loses nothing that anyone was told about; events still
open when the service stops are picked up again at start (``open_events``)
instead of duplicated.

Who writes what, each on its own connection (SQLite serialises the writers):
the rules thread the ``events`` rows, the history thread the ``acks`` rows
(acknowledgement, outcome, response time), the clip encoder the ``clips``
rows, retention deletions. Acks and clips live in their own tables so the
rules thread's upsert of a whole event row can never overwrite them.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anjeon.protocol.messages import EVENT_MAP

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
CREATE INDEX IF NOT EXISTS events_page ON events (started, id);
CREATE TABLE IF NOT EXISTS acks (
    event TEXT PRIMARY KEY,
    who TEXT NOT NULL, at REAL NOT NULL, note TEXT NOT NULL DEFAULT '',
    response REAL,                    -- seconds from the event's start to the acknowledgement
    outcome TEXT NOT NULL DEFAULT '', -- '' | false_alarm | resolved
    reason TEXT NOT NULL DEFAULT '', outcome_by TEXT NOT NULL DEFAULT '', outcome_at REAL
);
CREATE TABLE IF NOT EXISTS clips (
    event TEXT PRIMARY KEY,
    state TEXT NOT NULL,              -- recording | ready | failed | deleted
    path TEXT NOT NULL DEFAULT '', start REAL, end REAL,
    frames INTEGER NOT NULL DEFAULT 0, dropped INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS points (   -- where the event's offenders stood (feet, 0..1), sampled by the clip encoder
    event TEXT NOT NULL, t REAL NOT NULL, x REAL NOT NULL, y REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS points_event ON points (event);
"""
# The events table holds the event map of the wire (docs/protocol.md), field for field and in its order.
COLUMNS = tuple(f.name for f in EVENT_MAP.fields)
MAX_LIMIT = 1000  # events per page; more come with the page's cursor
OUTCOMES = ("", "false_alarm", "resolved")
CLIP_STATES = ("recording", "ready", "failed", "deleted")
MAX_TEXT = 500  # a note or a reason
MAX_WHO = 64


class QueryError(ValueError):
    """A query or acknowledgement with a wrong field; the message says which."""


def _num(m: dict[str, Any], key: str) -> float | None:
    v = m.get(key)
    if v is None:
        return None
    if not isinstance(v, (int, float)) or isinstance(v, bool) or v != v:
        raise QueryError(f"{key} must be a number (unix seconds), got {v!r:.40}")
    return float(v)


def _text(m: dict[str, Any], key: str, limit: int = 64) -> str:
    v = m.get(key)
    if v is None:
        return ""
    if not isinstance(v, str) or len(v) > limit:
        raise QueryError(f"{key} must be text of at most {limit} characters")
    return v


def encode_cursor(started: float, event_id: str) -> str:
    return f"c1:{started!r}:{event_id}"


def decode_cursor(text: str) -> tuple[float, str]:
    parts = text.split(":", 2)
    try:
        if len(parts) != 3 or parts[0] != "c1" or not parts[2] or len(parts[2]) > 64:
            raise ValueError
        started = float(parts[1])
        if started != started:
            raise ValueError
    except ValueError:
        raise QueryError(f"cursor {text[:40]!r} is not one this service handed out") from None
    return started, parts[2]


@dataclass(frozen=True)
class Query:
    camera: str = ""
    rule: str = ""  # a rule name or a rule type
    id: str = ""
    since: float | None = None
    until: float | None = None
    state: str = ""  # open | ended | "" (both)
    limit: int = 100
    cursor: tuple[float, str] | None = None  # (started, id) of the last event of the previous page
    total: bool = False

    @classmethod
    def from_map(cls, m: dict[str, Any]) -> Query:
        """Every field checked; a wrong type raises QueryError (answered as an error, never guessed at)."""
        limit = m.get("limit", 100)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise QueryError(f"limit must be a positive integer, got {limit!r:.40}")
        state = _text(m, "state")
        if state not in ("", "open", "ended"):
            raise QueryError(f"state must be open, ended or empty, got {state!r}")
        cursor = _text(m, "cursor", 120)
        total = m.get("total", False)
        if not isinstance(total, bool):
            raise QueryError("total must be true or false")
        return cls(
            camera=_text(m, "camera"),
            rule=_text(m, "rule"),
            id=_text(m, "id"),
            since=_num(m, "since"),
            until=_num(m, "until"),
            state=state,
            limit=min(MAX_LIMIT, limit),
            cursor=decode_cursor(cursor) if cursor else None,
            total=total,
        )

    def where(self) -> tuple[str, list[Any]]:
        """The filter (without the cursor) as SQL over `events e`."""
        where: list[str] = []
        args: list[Any] = []

        def add(clause: str, *values: Any) -> None:
            where.append(clause)
            args.extend(values)

        if self.camera:
            add("e.camera = ?", self.camera)
        if self.rule:
            add("(e.rule = ? OR e.type = ?)", self.rule, self.rule)
        if self.id:
            add("e.id = ?", self.id)
        if self.since is not None:
            add("COALESCE(e.ended, e.updated) >= ?", self.since)
        if self.until is not None:
            add("e.started <= ?", self.until)
        if self.state:
            add("e.state = ?", self.state)
        return " AND ".join(where), args


@dataclass(frozen=True)
class Ack:
    event: str
    by: str
    note: str = ""
    outcome: str = ""  # "" | false_alarm | resolved
    reason: str = ""

    @classmethod
    def from_map(cls, m: dict[str, Any]) -> Ack:
        event, by = _text(m, "event"), _text(m, "by", MAX_WHO).strip()
        if not event:
            raise QueryError("an ack names its event")
        if not by:
            raise QueryError("an ack says who acknowledges (by)")
        outcome = _text(m, "outcome")
        if outcome not in OUTCOMES:
            raise QueryError(f"outcome must be false_alarm, resolved or empty, got {outcome!r}")
        reason = _text(m, "reason", MAX_TEXT).strip()
        if outcome == "false_alarm" and not reason:
            raise QueryError("a false alarm needs a reason")
        return cls(event, by, _text(m, "note", MAX_TEXT).strip(), outcome, reason)


@dataclass(frozen=True)
class ClipRecord:
    event: str
    state: str
    path: str = ""
    start: float | None = None
    end: float | None = None
    frames: int = 0
    dropped: int = 0
    bytes: int = 0
    error: str = ""


_SELECT = (
    "SELECT e.*, a.who AS a_who, a.at AS a_at, a.note AS a_note, a.response AS a_response, "
    "a.outcome AS a_outcome, a.reason AS a_reason, a.outcome_by AS a_outcome_by, a.outcome_at AS a_outcome_at, "
    "c.state AS c_state, c.path AS c_path, c.start AS c_start, c.end AS c_end, c.frames AS c_frames, "
    "c.dropped AS c_dropped, c.bytes AS c_bytes, c.error AS c_error "
    "FROM events e LEFT JOIN acks a ON a.event = e.id LEFT JOIN clips c ON c.event = e.id"
)


def _row(row: sqlite3.Row) -> dict[str, Any]:
    d = {c: row[c] for c in COLUMNS}
    d["tracks"] = json.loads(d["tracks"] or "[]")
    d["ack"] = (
        None
        if row["a_who"] is None
        else {
            "by": row["a_who"],
            "at": row["a_at"],
            "note": row["a_note"],
            "response": row["a_response"],
            "outcome": row["a_outcome"],
            "reason": row["a_reason"],
            "outcome_by": row["a_outcome_by"],
            "outcome_at": row["a_outcome_at"],
        }
    )
    d["clip"] = (
        None
        if row["c_state"] is None
        else {
            "state": row["c_state"],
            "path": row["c_path"],
            "start": row["c_start"],
            "end": row["c_end"],
            "frames": row["c_frames"],
            "dropped": row["c_dropped"],
            "bytes": row["c_bytes"],
            "error": row["c_error"],
        }
    )
    return d


class EventStore:
    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly:
            if not self.path.exists():
                raise FileNotFoundError(f"no event store at {self.path}")
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5.0)
            tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not {"events", "acks", "clips"} <= tables:
                raise FileNotFoundError(
                    f"{self.path} is not an event store of this version (start `anjeon safety` "
                    "on it once to upgrade it)"
                )
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=5.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
            self._db.executescript(SCHEMA)
        self._db.row_factory = sqlite3.Row

    # ---- the rules thread ---------------------------------------------------------------
    def save(self, event: Event) -> None:
        d = event.to_dict()
        d["tracks"] = json.dumps(d["tracks"])
        placeholders = ", ".join("?" for _ in COLUMNS)
        updates = ", ".join(f"{c}=excluded.{c}" for c in COLUMNS if c != "id")
        self._db.execute(
            f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({placeholders}) "
            f"ON CONFLICT(id) DO UPDATE SET {updates}",
            [d[c] for c in COLUMNS],
        )
        self._db.commit()

    def open_events(self) -> list[Event]:
        rows = self._db.execute("SELECT * FROM events WHERE state = 'open'").fetchall()
        return [Event.from_dict({**dict(r), "tracks": json.loads(r["tracks"] or "[]")}) for r in rows]

    # ---- readers --------------------------------------------------------------------------
    def page(self, q: Query) -> tuple[list[dict[str, Any]], bool]:
        """Up to ``q.limit`` events after ``q.cursor``, newest first, and whether more follow."""
        where, args = q.where()
        if q.cursor is not None:
            where = " AND ".join(filter(None, [where, "(e.started < ? OR (e.started = ? AND e.id < ?))"]))
            args += [q.cursor[0], q.cursor[0], q.cursor[1]]
        sql = _SELECT + (f" WHERE {where}" if where else "") + " ORDER BY e.started DESC, e.id DESC LIMIT ?"
        rows = self._db.execute(sql, [*args, q.limit + 1]).fetchall()
        return [_row(r) for r in rows[: q.limit]], len(rows) > q.limit

    def query(self, q: Query) -> list[dict[str, Any]]:
        return self.page(q)[0]

    def iterate(self, q: Query) -> Iterator[dict[str, Any]]:
        """Every matching event, newest first, a page at a time (reports, CSV of any size)."""
        q = Query(**{**q.__dict__, "limit": MAX_LIMIT})
        while True:
            rows, more = self.page(q)
            yield from rows
            if not more or not rows:
                return
            q = Query(**{**q.__dict__, "cursor": (rows[-1]["started"], rows[-1]["id"])})

    def count(self, q: Query) -> int:
        where, args = q.where()
        return int(
            self._db.execute(
                "SELECT COUNT(*) FROM events e" + (f" WHERE {where}" if where else ""), args
            ).fetchone()[0]
        )

    def get(self, event_id: str) -> dict[str, Any] | None:
        rows = self.query(Query(id=event_id, limit=1))
        return rows[0] if rows else None

    # ---- acknowledgements (the history thread's own connection) ----------------------------
    def acknowledge(self, ack: Ack, at: float | None = None) -> dict[str, Any]:
        """Record the first acknowledgement (who, when, note, response time); later acks only set the outcome.

        Raises KeyError for an unknown event."""
        at = time.time() if at is None else at
        row = self._db.execute("SELECT started FROM events WHERE id = ?", (ack.event,)).fetchone()
        if row is None:
            raise KeyError(ack.event)
        self._db.execute(
            "INSERT INTO acks (event, who, at, note, response) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(event) DO NOTHING",
            (ack.event, ack.by, at, ack.note, round(max(0.0, at - float(row["started"])), 3)),
        )
        if ack.outcome:
            self._db.execute(
                "UPDATE acks SET outcome = ?, reason = ?, outcome_by = ?, outcome_at = ? WHERE event = ?",
                (ack.outcome, ack.reason, ack.by, at, ack.event),
            )
        self._db.commit()
        return self.get(ack.event) or {}

    # ---- clips (the clip encoder's own connection) ----------------------------------------
    def set_clip(self, clip: ClipRecord) -> None:
        if clip.state not in CLIP_STATES:
            raise ValueError(f"clip state {clip.state!r}")
        self._db.execute(
            "INSERT INTO clips (event, state, path, start, end, frames, dropped, bytes, error) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(event) DO UPDATE SET state=excluded.state, "
            "path=excluded.path, start=excluded.start, end=excluded.end, frames=excluded.frames, "
            "dropped=excluded.dropped, bytes=excluded.bytes, error=excluded.error",
            (
                clip.event,
                clip.state,
                clip.path,
                clip.start,
                clip.end,
                clip.frames,
                clip.dropped,
                clip.bytes,
                clip.error[:MAX_TEXT],
            ),
        )
        self._db.commit()

    def add_points(self, event_id: str, points: list[tuple[float, float, float]]) -> None:
        """(t, x, y) foot points of the event's offenders, normalized to the frame (for the report's heatmap)."""
        self._db.executemany(
            "INSERT INTO points (event, t, x, y) VALUES (?, ?, ?, ?)",
            [(event_id, t, x, y) for t, x, y in points],
        )
        self._db.commit()

    def clip_of(self, event_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT * FROM clips WHERE event = ?", (event_id,)).fetchone()
        return dict(row) if row else None

    @property
    def db(self) -> sqlite3.Connection:
        """The connection, for retention's deletions and reports' aggregate queries."""
        return self._db

    def close(self) -> None:
        self._db.close()
