"""`anjeon report` on a known set of events: the counts are the events' own, and it renders in both languages.

The store is written with the service's own EventStore (events, acknowledgements with response times and
outcomes, foot points, real snapshot JPEGs); the report runs as the real command; the PDF's text is read back
with poppler's pdftotext, its fonts with pdffonts, and its pages are rendered with pdftoppm.
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
from evidence_fixtures import ended_event
from safety_fixtures import anjeon_cli

from anjeon.safety.store import Ack, EventStore

DAY0 = datetime(2026, 11, 2, 0, 0).timestamp()  # local midnight, a Monday


def build_store(tmp: Path) -> tuple[Path, dict]:
    """Three days, two cameras: 6 intrusions on gate (2 false alarms), 3 helmet events on yard, 1 outside."""
    store = EventStore(tmp / "events.db")
    plan = [  # (day, hour, camera, type, zone, duration, response or None, outcome)
        (0, 8, "gate", "intrusion", "pit", 30, 12.0, ""),
        (0, 8, "gate", "intrusion", "pit", 5, 40.0, "false_alarm"),
        (0, 14, "gate", "intrusion", "pit", 300, 90.0, "resolved"),
        (1, 9, "gate", "intrusion", "pit", 8, None, ""),
        (1, 9, "gate", "intrusion", "pit", 12, 20.0, "false_alarm"),
        (2, 17, "gate", "intrusion", "pit", 60, 5.0, ""),
        (0, 10, "yard", "helmet", "scaffold", 20, 30.0, ""),
        (1, 10, "yard", "helmet", "scaffold", 25, None, ""),
        (2, 11, "yard", "helmet", "scaffold", 600, 300.0, "resolved"),
        (5, 12, "gate", "intrusion", "pit", 10, 1.0, ""),  # outside the report's range
    ]
    frame = np.full((360, 480, 3), 90, np.uint8)
    cv2.putText(frame, "gate", (20, 60), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
    for i, (day, hour, cam, kind, zone, dur, response, outcome) in enumerate(plan):
        started = DAY0 + day * 86400 + hour * 3600 + i * 60
        ev = ended_event(started, dur, cam, kind, zone, peak=1 + i % 3, count=1, tracks=[i])
        snap = tmp / "snapshots" / cam / f"{ev.id}.jpg"
        snap.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(snap), frame)
        ev.snapshot = str(snap)
        store.save(ev)
        if response is not None:
            store.acknowledge(
                Ack(ev.id, "kim", "", outcome, "shadow" if outcome == "false_alarm" else ""),
                at=started + response,
            )
        store.add_points(ev.id, [(started + k, 0.3 + 0.01 * k, 0.7) for k in range(10)])
    store.close()
    return tmp / "events.db", {
        "total": 9,
        "gate": 6,
        "yard": 3,
        "fa_gate": 2,
        "responses": [12, 40, 90, 20, 5, 30, 300],
        "per_day": [4, 4, 2 + 0],
        "longest": 600.0,
    }


def report(db: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return anjeon_cli(
        "report",
        "--db",
        str(db),
        "--since",
        "2026-11-02",
        "--until",
        "2026-11-04",
        "--out",
        str(out),
        "--json",
        *extra,
        timeout=240,
    )


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    db, want = build_store(tmp)
    return tmp, db, want


def test_counts_are_the_events_own(known):
    tmp, db, want = known
    run = report(db, tmp / "r.html", "--format", "html", "--lang", "en")
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["total"] == want["total"]
    assert list(data["per_day"].values()) == [4, 3, 2]
    assert sum(data["per_hour"]) == want["total"] and data["per_hour"][8] == 2 and data["per_hour"][9] == 2
    rules = {(r["camera"], r["rule"]): r for r in data["rules"]}
    gate = rules[("gate", "intrusion-pit")]
    assert (gate["incidents"], gate["acknowledged"], gate["false_alarms"], gate["resolved"]) == (6, 5, 2, 1)
    assert gate["false_alarm_rate"] == pytest.approx(2 / 6, abs=1e-3)
    assert rules[("yard", "helmet-scaffold")]["incidents"] == 3
    assert data["response_mean"] == pytest.approx(sum(want["responses"]) / 7, abs=0.01)
    assert data["response_worst"] == pytest.approx(300.0, abs=0.01)
    assert data["zones"][0] == ["gate", "pit", 6]
    assert data["longest"][0]["duration"] == pytest.approx(600.0) and data["longest"][0]["camera"] == "yard"
    assert data["points"] == {"gate": 60, "yard": 30}
    # One camera only.
    run = report(db, tmp / "g.html", "--format", "html", "--camera", "yard")
    assert json.loads(run.stdout)["total"] == 3
    page = (tmp / "r.html").read_text(encoding="utf-8")
    assert "Safety incident report" in page and page.count("data:image/png;base64") >= 5


@pytest.mark.parametrize(
    "lang, title, word",
    [("ko", "안전 사고 보고서", "오경보"), ("en", "Safety incident report", "False alarms")],
)
def test_pdf_renders_in_both_languages_with_the_font_embedded(known, lang, title, word):
    tmp, db, _ = known
    out = tmp / f"report-{lang}.pdf"
    run = report(db, out, "--lang", lang)
    assert run.returncode == 0, run.stderr
    assert out.read_bytes().startswith(b"%PDF")
    text = subprocess.run(
        ["pdftotext", "-layout", str(out), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert title in text and word in text
    if lang == "ko":
        assert "위험구역 침입" in text and "안전모 미착용" in text
    fonts = subprocess.run(["pdffonts", str(out)], capture_output=True, text=True, check=True).stdout
    assert "NanumGothic" in fonts and " yes " in fonts  # embedded
    pages = tmp / f"pages-{lang}"
    pages.mkdir(exist_ok=True)
    subprocess.run(["pdftoppm", "-r", "50", "-png", str(out), str(pages / "page")], check=True)
    pngs = sorted(pages.glob("*.png"))
    assert len(pngs) >= 4  # summary, charts, longest incidents, heatmaps
    for png in pngs:
        image = cv2.imread(str(png))
        assert image is not None and image.std() > 5  # not a blank page


def test_console_reports_page_shows_the_same_figures_and_serves_the_pdf(system, tmp_path):
    import urllib.request

    import playwright.sync_api as playwright
    from conftest import wait_for
    from safety_fixtures import pit_intrusion, start_console, start_safety, write_config

    db, want = build_store(tmp_path)
    config = write_config(
        tmp_path / "site.yaml",
        "gate",
        pit_intrusion(),
        db,
    )
    system.broker()
    safety, history_port = start_safety(system, "safety", config)
    _, port = start_console(system, history_port, tmp_path)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            with urllib.request.urlopen(url + "/api/me", timeout=5):
                return True
        except OSError:
            return False

    wait_for(up, 60, "the console")
    wait_for(lambda: "history on" in safety.output(), 60, "the safety service")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url + "/#/reports", wait_until="domcontentloaded", timeout=60_000)
            page.fill("#report-form input[name=since]", "2026-11-02")
            page.fill("#report-form input[name=until]", "2026-11-04")
            page.click("#report-form button[type=submit]")
            page.wait_for_function(
                "() => document.querySelector('#report-total')?.textContent === '9'", timeout=180_000
            )
            charts = page.eval_on_selector_all(
                "img.chart", "els => els.map(e => [e.dataset.chart, e.naturalWidth])"
            )
            names = {n for n, width in charts if width > 100}
            assert {"days", "hours", "rules", "heatmap:gate", "heatmap:yard"} <= names, charts
            href = page.get_attribute("#report-pdf", "href")
            assert not errors, errors
        finally:
            browser.close()
    with urllib.request.urlopen(url + href, timeout=300) as resp:
        pdf = resp.read()
    assert pdf.startswith(b"%PDF") and "attachment" in resp.headers["Content-Disposition"]
    out = tmp_path / "console.pdf"
    out.write_bytes(pdf)
    text = subprocess.run(["pdftotext", str(out), "-"], capture_output=True, text=True, check=True).stdout
    assert "안전 사고 보고서" in text or "Safety incident report" in text
