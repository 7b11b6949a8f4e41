"""`anjeon up`: one site config starts everything; SIGTERM stops everything."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT, Subscriber, free_base_port, wait_for


def processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline and int(entry.name) != os.getpid():
                pids.append(int(entry.name))
    return pids


def test_up_runs_a_site_and_stops_it_cleanly(tmp_path, bus_jpg, system):
    base = free_base_port()
    site = tmp_path / "site.yaml"
    site.write_text(f"""\
broker:
  bind: 127.0.0.1
  base_port: {base}
workers:
  count: 2
  model: "null"
cameras:
  gate:
    source: {bus_jpg}
    fps: 5
  yard: synthetic
safety:
  store: {tmp_path / "events.db"}
  cameras:
    gate:
      zones:
        all: [[0, 0], [1, 0], [1, 1], [0, 1]]
      rules:
        - {{type: intrusion, zone: all}}
""")
    log = open(tmp_path / "up.log", "wb")
    up = subprocess.Popen(
        [sys.executable, "-m", "anjeon", "up", "--config", str(site), "--viewer-port", "0"],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    try:
        sub = Subscriber(system.ctx, base + 3, ())
        results = sub.results(20, timeout=90)
        assert {r["camera"] for r in results} == {"gate", "yard"}
        sub.status_where(
            lambda s: len([w for w in s["workers"].values() if w["online"]]) == 2, 30, "2 workers"
        )
        # The config has a safety section, so `up` runs the safety service too.
        sub.status_where(
            lambda s: [p for p in s["subscribers"].values() if p["role"] == "safety" and p["online"]],
            60,
            "the safety service online",
        )
        children = processes_mentioning(f"127.0.0.1:{base}")
        assert len(children) >= 4  # 2 workers, 2 edges (the broker is given --base-port)
        up.send_signal(signal.SIGTERM)
        assert up.wait(30) == 0
        wait_for(lambda: not processes_mentioning(str(base)), 10, "every child to exit")
    finally:
        if up.poll() is None:
            up.kill()
        log.close()
    text = (tmp_path / "up.log").read_text()
    assert "stopped 6 service(s)" in text and "had to be killed" not in text, text


def test_up_restarts_a_service_that_dies(tmp_path, bus_jpg, system):
    base = free_base_port()
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "anjeon",
            "up",
            "--bind",
            "127.0.0.1",
            "--base-port",
            str(base),
            "--model",
            "null",
            "--camera",
            f"gate={bus_jpg}",
            "--viewer-port",
            "0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    try:
        sub = Subscriber(system.ctx, base + 3, ())
        sub.results(3, timeout=90)
        (worker_pid,) = [
            p
            for p in processes_mentioning(f"127.0.0.1:{base}")
            if b"worker" in Path(f"/proc/{p}/cmdline").read_bytes()
        ]
        os.kill(worker_pid, signal.SIGKILL)
        killed = time.time()
        sub.results(3, timeout=60, where=lambda r: r["_received"] > killed + 1)
    finally:
        up.send_signal(signal.SIGTERM)
        assert up.wait(30) == 0
