"""Event history for the console: pages of the safety service's history, newest first, and the CSV export.

The safety service pages its answers (docs/protocol.md, ``cursor``/``next``),
so no page is ever too big for the bus and the CSV export reads every
matching event page by page while it streams. The console's cursor is
opaque to the browser: ``c<service cursor>``; against an older safety service
that only knows ``until`` it is ``u<started>:<ids at that start>`` (events
sharing the boundary's start time are skipped by id, so none repeats).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from anjeon.protocol.client import Event, HistoryPage
from anjeon.protocol.messages import EXPORT_COLUMNS, export_fields

CSV_COLUMNS = EXPORT_COLUMNS  # with the acknowledgement, response time, outcome and clip (as `anjeon events`)
CSV_PAGE = 500  # events per history query while exporting (the service also cuts pages by size)

Query = Callable[[dict[str, Any]], Awaitable[HistoryPage]]  # Bus.query_history


class CursorError(ValueError):
    """A cursor this console did not make."""


@dataclass
class Page:
    events: list[Event]
    next: str | None
    total: int | None = None


def _fallback_cursor(events: list[Event]) -> str | None:
    if not events:
        return None
    last = events[-1].started
    ids = [e.id for e in events if e.started == last]
    return "u" + json.dumps([last, ids], separators=(",", ":"))


def _decode(cursor: str) -> tuple[str, Any]:
    if cursor.startswith("c") and len(cursor) <= 1024:
        return "c", cursor[1:]
    if cursor.startswith("u") and len(cursor) <= 64 * 1024:
        try:
            until, ids = json.loads(cursor[1:])
            if (
                isinstance(until, (int, float))
                and isinstance(ids, list)
                and all(isinstance(i, str) for i in ids)
            ):
                return "u", (float(until), set(ids))
        except (ValueError, TypeError):
            pass
    raise CursorError("not a cursor of this console's history (send back the `next` you were given)")


async def page(
    query: Query, filters: dict[str, Any], limit: int, cursor: str = "", total: bool = False
) -> Page:
    """One page of events matching ``filters`` (camera, rule, since, until, state), newest first."""
    q: dict[str, Any] = {**filters, "limit": limit}
    if total:
        q["total"] = True
    skip: set[str] = set()
    if cursor:
        kind, value = _decode(cursor)
        if kind == "c":
            q["cursor"] = value
        else:
            until, skip = value
            q["until"] = min(until, q.get("until", until))
            q["limit"] = min(1000, limit + len(skip))
    got = await query(q)
    events = [e for e in got.events if e.id not in skip][:limit]
    if got.paged:
        return Page(events, "c" + got.next if got.next else None, got.total)
    more = len(got.events) >= q["limit"]  # an older service: a full page means there may be more
    return Page(events, _fallback_cursor(events) if more and events else None, got.total)


async def all_events(query: Query, filters: dict[str, Any]) -> AsyncIterator[list[Event]]:
    """Every matching event, newest first, a page at a time."""
    cursor = ""
    while True:
        got = await page(query, filters, CSV_PAGE, cursor)
        if got.events:
            yield got.events
        if not got.next or not got.events:
            return
        cursor = got.next


def csv_row(event: dict[str, Any]) -> list[Any]:
    flat = export_fields(event)
    return [_cell(flat[c]) for c in CSV_COLUMNS]


def _cell(value: Any) -> Any:
    """A value as a spreadsheet should see it: text that would start a formula is quoted (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def csv_text(rows: list[list[Any]], header: bool = False) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    if header:
        writer.writerow(CSV_COLUMNS)
    writer.writerows(rows)
    return buf.getvalue()
