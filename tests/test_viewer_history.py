"""The console's history at any size: the real safety service over a store of 1,500 events, the real viewer.

Before, the history page asked the safety service for 500 events at once: an answer of more than about
220 events passes the bus's 64 KiB header limit, so on any site with a few days of events the page
answered 502, and the CSV export (1,000 by default) failed the same way. Now the page is paged
(newest first, by cursor) and the export streams every matching event, page by page.
"""

from __future__ import annotations

import csv
import io
import json
import time
import urllib.parse

import pytest
from conftest import System, wait_for
from safety_fixtures import start_safety, write_config
from test_viewer_hostile import Viewer, browser, get, shot  # noqa: F401  (browser: a fixture)

EVENTS = 1500
RULES = """
zones:
  pit: [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]
rules:
  - {type: intrusion, zone: pit}
"""


def fill_store(path, n: int) -> list[str]:
    """n ended events in the store, one every 10 s over the last hours, on two cameras; ids newest first."""
    from anjeon.safety.incident import Event
    from anjeon.safety.store import EventStore

    store = EventStore(path)
    now = time.time() - 60
    ids = []
    for i in range(n):
        started = now - 10 * i
        ev = Event(
            id=f"{i:016x}",
            camera="gate" if i % 3 else "yard",
            rule="intrusion-pit",
            type="intrusion",
            zone="pit",
            line="",
            severity="warning",
            started=started,
            since=started - 1,
            updated=started + 5,
            ended=started + 5,
            peak=1 + i % 4,
            count=1,
            tracks=list(range(i % 7)),
            run="r",
            seq=i,
        )
        store.save(ev)
        ids.append(ev.id)
    store.close()
    return ids


@pytest.fixture(scope="module")
def history(tmp_path_factory, request):
    tmp = tmp_path_factory.mktemp("history")
    system = System(tmp)
    failed_before = request.session.testsfailed
    ids = fill_store(tmp / "events.db", EVENTS)
    config = write_config(tmp / "site.yaml", "gate", RULES, tmp / "events.db")
    system.broker()
    _, port = start_safety(system, "safety", config)
    viewer = Viewer(system, "viewer-history", "--history", f"tcp://127.0.0.1:{port}")
    wait_for(lambda: get(viewer.url + "/api/events?limit=1")[0] == 200, 60, "the history answering")
    try:
        yield viewer, ids
    finally:
        if request.session.testsfailed > failed_before:
            print(system.logs())
        system.close()


def test_pages_walk_every_event_newest_first_without_repeats(history):
    viewer, ids = history
    seen, cursor, pages = [], "", 0
    while True:
        q = {
            "limit": 200,
            **({"cursor": cursor} if cursor else {}),
            **({"total": "true"} if not pages else {}),
        }
        status, _, body = get(f"{viewer.url}/api/events/page?{urllib.parse.urlencode(q)}")
        assert status == 200, body
        page = json.loads(body)
        if not pages and page["total"] is not None:
            assert page["total"] == EVENTS
        seen += [e["id"] for e in page["events"]]
        pages += 1
        cursor = page["next"]
        if not cursor:
            break
        assert pages < 100
    assert seen == ids  # every one, once, newest first
    # The list endpoint pages the same way, the cursor in a header; a filter applies to every page.
    status, headers, body = get(f"{viewer.url}/api/events?camera=yard&limit=100")
    rows = json.loads(body)
    assert status == 200 and len(rows) == 100 and {r["camera"] for r in rows} == {"yard"}
    assert headers.get("x-next-cursor")
    assert get(f"{viewer.url}/api/events/page?cursor=forged")[0] == 422


def test_csv_streams_every_matching_event(history):
    viewer, ids = history
    status, headers, body = get(f"{viewer.url}/api/events.csv")
    assert status == 200 and "attachment" in headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert [r["id"] for r in rows] == ids
    status, _, body = get(f"{viewer.url}/api/events.csv?camera=gate")
    assert len(list(csv.DictReader(io.StringIO(body.decode())))) == sum(1 for i in range(EVENTS) if i % 3)


def test_history_page_in_the_browser_is_paged(history, browser):
    viewer, ids = history
    page = browser.new_page(viewport={"width": 1400, "height": 860}, locale="en-US")
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(viewer.url + "/#/history")
    page.locator(f"#history-table tr[data-event='{ids[0]}']").wait_for(timeout=30_000)
    assert page.locator("#history-table tbody tr").count() == 50
    wait_for(
        lambda: (
            f"/ {EVENTS}" in page.inner_text("#history-note") or "1-50" in page.inner_text("#history-note")
        ),
        10,
        "the page's range",
    )
    page.click("#history-older")
    page.locator(f"#history-table tr[data-event='{ids[50]}']").wait_for(timeout=30_000)
    assert page.locator(f"#history-table tr[data-event='{ids[49]}']").count() == 0
    shot(page, "history-paged-en")
    page.click("#history-newer")
    page.locator(f"#history-table tr[data-event='{ids[0]}']").wait_for(timeout=30_000)
    assert not errors, errors
    page.close()
