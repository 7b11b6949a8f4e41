"""Two minutes of the soak (benchmarks/soak.py): the whole system as `anjeon up` runs it, nothing grows.

The 30-minute run and its plot are in docs/benchmarks.md (Soak). Here a `null`
worker keeps the machine free for the rest of the suite; the edge, broker,
safety rules, console and supervisor are the real ones.
"""

from __future__ import annotations

from conftest import SAMPLE

from benchmarks import soak


def test_two_minutes_of_the_whole_system_show_no_growth(tmp_path):
    source = str(SAMPLE) if SAMPLE.exists() else "synthetic"
    report = soak.run(minutes=2.0, model="null", fps=5.0, interval=10.0, out=tmp_path, source=source)
    log = (tmp_path / "up.log").read_text(errors="replace")[-3000:]
    names = set(report["verdict"])
    assert {"broker", "worker-1", "edge-soak", "safety", "viewer"} <= names, (names, log)
    assert len(report["samples"]) >= 10, log
    assert report["fps"]["median"] >= 1.0, (report["fps"], log)  # results kept flowing all along
    grew = {n: r for n, r in report["verdict"].items() if not r["no_growth"]}
    assert not grew, grew
