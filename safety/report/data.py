"""What a report counts, read from the event store (read-only): the numbers behind every chart and table.

Incidents are events that *started* in [since, until). Response time is the
acknowledgement's `response` (alarm start to acknowledgement); the
false-alarm rate of a rule is its events marked false alarm over all its
events in the range. Foot points (the heatmap) are those the clip encoder
recorded while the incident lasted (cameras with clips off have none).
"""

from __future__ import annotations

import sqlite3
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

LONGEST = 5  # incidents listed with their snapshots
TOP_ZONES = 10


@dataclass
class RuleFigures:
    camera: str
    rule: str
    type: str
    incidents: int = 0
    acknowledged: int = 0
    false_alarms: int = 0
    resolved: int = 0

    @property
    def false_alarm_rate(self) -> float:
        return self.false_alarms / self.incidents if self.incidents else 0.0


@dataclass
class ReportData:
    since: float
    until: float
    cameras: tuple[str, ...]  # the filter ("" = all)
    total: int = 0
    per_day: dict[str, int] = field(
        default_factory=dict
    )  # YYYY-MM-DD (local) -> incidents, every day of the range
    per_hour: list[int] = field(default_factory=lambda: [0] * 24)  # local hour of day
    per_day_rule: dict[str, dict[str, int]] = field(default_factory=dict)  # rule type -> day -> incidents
    rules: list[RuleFigures] = field(default_factory=list)  # per camera and rule
    zones: list[tuple[str, str, int]] = field(default_factory=list)  # (camera, zone, incidents), most first
    response_mean: float | None = None
    response_worst: float | None = None
    response_count: int = 0
    false_alarm_by_rule: dict[str, tuple[int, int]] = field(
        default_factory=dict
    )  # rule -> (false alarms, all)
    longest: list[dict[str, Any]] = field(default_factory=list)
    points: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # camera -> feet (x, y), 0..1
    backgrounds: dict[str, str] = field(default_factory=dict)  # camera -> newest snapshot path in range
    made: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for r, fig in zip(d["rules"], self.rules):
            r["false_alarm_rate"] = round(fig.false_alarm_rate, 4)
        d["points"] = {cam: len(pts) for cam, pts in self.points.items()}  # counts only: the JSON stays small
        return d


def _day(t: float) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(t))


def _days(since: float, until: float) -> list[str]:
    out: list[str] = []
    t = since
    while t < until and len(out) < 3700:
        d = _day(t)
        if not out or out[-1] != d:
            out.append(d)
        t += 3600  # by the hour: robust to daylight-saving days of 23 or 25 hours
    return out


def collect(store_path: str | Path, since: float, until: float, cameras: tuple[str, ...] = ()) -> ReportData:
    """Every figure of the report for events that started in [since, until) on these cameras (all if empty)."""
    con = sqlite3.connect(f"file:{Path(store_path)}?mode=ro", uri=True, timeout=10.0)
    con.row_factory = sqlite3.Row
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        where = "e.started >= ? AND e.started < ?"
        args: list[float | str] = [since, until]
        if cameras:
            where += f" AND e.camera IN ({','.join('?' * len(cameras))})"
            args += list(cameras)
        acks = "LEFT JOIN acks a ON a.event = e.id" if "acks" in tables else ""
        ack_cols = (
            ", a.response AS response, a.outcome AS outcome, a.who AS who"
            if acks
            else ", NULL AS response, NULL AS outcome, NULL AS who"
        )
        rows = con.execute(
            f"SELECT e.*{ack_cols} FROM events e {acks} WHERE {where} ORDER BY e.started", args
        ).fetchall()
        data = ReportData(since, until, tuple(cameras), total=len(rows))
        data.per_day = {d: 0 for d in _days(since, until)}
        figures: dict[tuple[str, str], RuleFigures] = {}
        zones: Counter[tuple[str, str]] = Counter()
        by_type: dict[str, Counter[str]] = defaultdict(Counter)
        responses: list[float] = []
        for r in rows:
            day = _day(r["started"])
            data.per_day[day] = data.per_day.get(day, 0) + 1
            data.per_hour[time.localtime(r["started"]).tm_hour] += 1
            by_type[r["type"]][day] += 1
            fig = figures.setdefault((r["camera"], r["rule"]), RuleFigures(r["camera"], r["rule"], r["type"]))
            fig.incidents += 1
            if r["who"] is not None:
                fig.acknowledged += 1
                if r["response"] is not None:
                    responses.append(float(r["response"]))
            fig.false_alarms += r["outcome"] == "false_alarm"
            fig.resolved += r["outcome"] == "resolved"
            if r["zone"]:
                zones[(r["camera"], r["zone"])] += 1
        data.per_day_rule = {k: dict(v) for k, v in sorted(by_type.items())}
        data.rules = sorted(figures.values(), key=lambda f: (f.camera, f.rule))
        data.zones = [(cam, zone, n) for (cam, zone), n in zones.most_common(TOP_ZONES)]
        if responses:
            data.response_mean, data.response_worst = statistics.fmean(responses), max(responses)
            data.response_count = len(responses)
        fa: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for f in data.rules:
            fa[f.rule][0] += f.false_alarms
            fa[f.rule][1] += f.incidents
        data.false_alarm_by_rule = {k: (v[0], v[1]) for k, v in sorted(fa.items())}
        longest = sorted(rows, key=lambda r: -(r["duration"] or 0.0))[:LONGEST]
        data.longest = [
            {
                k: r[k]
                for k in (
                    "id",
                    "camera",
                    "rule",
                    "type",
                    "zone",
                    "started",
                    "ended",
                    "duration",
                    "peak",
                    "snapshot",
                    "outcome",
                )
            }
            for r in longest
        ]
        for r in reversed(rows):  # the newest snapshot of each camera is the heatmap's background
            if r["snapshot"] and r["camera"] not in data.backgrounds and Path(r["snapshot"]).is_file():
                data.backgrounds[r["camera"]] = r["snapshot"]
        if "points" in tables:
            pts = con.execute(
                f"SELECT e.camera, p.x, p.y FROM points p JOIN events e ON e.id = p.event WHERE {where}", args
            ).fetchall()
            for cam, x, y in pts:
                data.points.setdefault(cam, []).append((x, y))
        return data
    finally:
        con.close()
