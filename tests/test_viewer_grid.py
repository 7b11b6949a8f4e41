"""A console for many cameras: a paged grid that takes pictures only of the cameras on screen.

Real broker, `--model null` workers, 24 synthetic cameras (anjeon.loadtest, registered as an edge),
the real viewer and Chromium. The browser's WebSocket is watched frame by frame: pictures arrive
only for the tiles of the page shown; the camera list (search, health filter) and the alarms cover
every camera.
"""

from __future__ import annotations

import json
import struct
import time

import pytest
from conftest import System, wait_for
from test_viewer_hostile import Forger, Viewer, browser, shot  # noqa: F401  (browser: a fixture)

CAMERAS = 24


@pytest.fixture(scope="module")
def grid(tmp_path_factory, request):
    from anjeon.loadtest.cameras import SyntheticCameras, make_pool
    from anjeon.protocol.endpoints import BrokerAddress

    tmp = tmp_path_factory.mktemp("grid")
    system = System(tmp)
    failed_before = request.session.testsfailed
    system.broker()
    system.worker("w1", "null")
    cams = SyntheticCameras(
        BrokerAddress("127.0.0.1", system.base), CAMERAS, 2.0, make_pool(160, 90, frames=4), prefix="cam"
    ).start()
    viewer = Viewer(system, "viewer-grid")
    forger = Forger(system)
    wait_for(
        lambda: sum(c["online"] for c in viewer.json("/api/cameras")) == CAMERAS,
        90,
        "every camera online",
        interval=0.5,
    )
    try:
        yield viewer, forger
    finally:
        if request.session.testsfailed > failed_before:
            print(system.logs())
        cams.stop()
        forger.close()
        system.close()


def pictures_of(frames: list[bytes]) -> set[str]:
    out = set()
    for f in frames:
        n = struct.unpack(">I", f[:4])[0]
        out.add(json.loads(f[4 : 4 + n])["camera"])
    return out


def test_the_grid_takes_pictures_of_the_page_on_screen_only(grid, browser):
    viewer, forger = grid
    page = browser.new_page(viewport={"width": 1400, "height": 860}, locale="en-US")
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    binary: list[bytes] = []
    page.on(
        "websocket",
        lambda ws: ws.on("framereceived", lambda f: binary.append(f) if isinstance(f, bytes) else None),
    )
    page.goto(viewer.url + "/#/live")
    page.select_option("#page-size", "4")
    tiles = lambda: page.eval_on_selector_all("#grid .tile", "els => els.map(e => e.dataset.camera)")  # noqa
    wait_for(lambda: tiles() == ["cam00", "cam01", "cam02", "cam03"], 30, "page 1 of 4 tiles")
    wait_for(
        lambda: all(
            page.evaluate(f"() => document.querySelector(\"#grid .tile[data-camera='{c}']\").dataset.seq")
            for c in tiles()
        ),
        30,
        "every tile painted",
    )
    time.sleep(1.0)  # frames sent before the page size changed are in flight
    binary.clear()
    page.wait_for_timeout(3000)
    assert pictures_of(binary) == {"cam00", "cam01", "cam02", "cam03"}  # 20 other cameras: metadata only
    assert page.locator("#cam-items li").count() == CAMERAS
    page.click("#page-next")
    wait_for(lambda: tiles() == ["cam04", "cam05", "cam06", "cam07"], 30, "page 2")
    time.sleep(1.0)
    binary.clear()
    page.wait_for_timeout(3000)
    assert pictures_of(binary) == {"cam04", "cam05", "cam06", "cam07"}
    assert "2 / 6" in page.inner_text("#page-info")
    # Search and health filters choose what the grid pages through.
    page.fill("#cam-search", "cam1")
    wait_for(lambda: page.locator("#cam-items li").count() == 10, 10, "cam10..cam19 listed")
    wait_for(lambda: tiles() == ["cam10", "cam11", "cam12", "cam13"], 10, "the first page of the search")
    page.fill("#cam-search", "")
    page.select_option("#page-size", "16")
    k = 0

    def alarmed() -> bool:
        nonlocal k
        k += 1
        forger.event(f"grid-alarm-{k}", "cam22", transition="start")
        return page.locator("#alarm-list li[data-camera='cam22']").count() > 0

    wait_for(alarmed, 30, "an alarm from a camera off the page", interval=0.5)  # alarms from every camera
    page.select_option("#cam-health", "alarm")
    wait_for(lambda: tiles() == ["cam22"], 10, "the alarm filter")
    page.select_option("#cam-health", "all")
    wait_for(lambda: len(tiles()) == 16, 10, "16 tiles")
    wait_for(
        lambda: page.evaluate(
            "() => [...document.querySelectorAll('#grid .tile')].every(t => t.dataset.seq)"
        ),
        30,
        "16 tiles painted",
    )
    shot(page, "grid-16-en")
    assert not errors, errors
    page.close()
