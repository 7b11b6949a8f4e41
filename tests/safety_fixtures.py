"""Helpers for the safety tests: site configs, the event store, an event subscriber."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgpack
from conftest import ROOT, System, free_base_port

# The zone most tests use: the picture's upper middle.
PIT = "[[0.2, 0.1], [0.8, 0.1], [0.8, 0.6], [0.2, 0.6]]"


def pit_intrusion(options: str = "") -> str:
    """A camera body for ``write_config``: zone ``pit`` and one intrusion rule (``options``: more of its keys)."""
    return f"zones:\n  pit: {PIT}\nrules:\n  - {{type: intrusion, zone: pit{', ' + options if options else ''}}}\n"


def write_config(path: Path, camera: str, body: str, store: Path) -> Path:
    """A site config with a safety section for one camera; ``body`` is the camera's zones/lines/rules YAML."""
    indented = "\n".join("      " + line for line in body.strip("\n").splitlines())
    path.write_text(f"safety:\n  store: {store}\n  cameras:\n    {camera}:\n{indented}\n", encoding="utf-8")
    return path


def start_safety(system: System, name: str, config: Path, history_port: int | None = None, extra: tuple = ()):
    port = history_port or free_base_port()
    proc = system.start(
        name,
        "safety",
        "--broker",
        system.broker_url,
        "--config",
        str(config),
        "--history-bind",
        f"tcp://127.0.0.1:{port}",
        "--name",
        name,
        *extra,
    )
    return proc, port


def start_console(system: System, history_port: int, folder: Path) -> tuple[Any, int]:
    """`anjeon viewer` on a free port, asking this safety service's history socket: (process, its port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = system.start(
        "viewer",
        "viewer",
        "--broker",
        system.broker_url,
        "--port",
        str(port),
        "--history",
        f"tcp://127.0.0.1:{history_port}",
        "--acks",
        str(folder / "acks.jsonl"),
    )
    return proc, port


def stored_events(db: Path) -> list[dict]:
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM events ORDER BY started")]
    except sqlite3.OperationalError:  # the service has not created the table yet
        return []
    finally:
        con.close()


def anjeon_cli(
    *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`anjeon ARGS...` run to its end, its output as text."""
    return subprocess.run(
        [sys.executable, "-m", "anjeon", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )


def events_cli(*args: str) -> subprocess.CompletedProcess:
    return anjeon_cli("events", *args)


def decode_event(frames: list[bytes]) -> dict:
    return msgpack.unpackb(frames[1])


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]
