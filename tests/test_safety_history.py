"""The history socket of a real `anjeon safety` process over a store of 50,000 events: paged newest first,
every answer under the wire's header limit, loopback by default, acknowledgements stored with the event.

The store is filled by the test (one transaction) before the service starts; the service then serves
it exactly as it would a store it wrote itself.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import msgpack
import pytest
import zmq
from conftest import ROOT, free_base_port, wait_for
from safety_fixtures import anjeon_cli, pit_intrusion, write_config

from anjeon.protocol import wire
from anjeon.safety.store import COLUMNS, EventStore

N_EVENTS = 50_000
T0 = 1_790_000_000.0


def fill_store(db: Path, n: int) -> list[str]:
    """n ended events on two cameras, one every 7 s, a few with the same start time; ids newest first."""
    EventStore(db).close()  # the schema, as the service makes it
    con = sqlite3.connect(db)
    rows, ids = [], []
    for i in range(n):
        eid = uuid.uuid4().hex[:16]
        started = T0 + (i // 2) * 7.0  # pairs share a start time: the cursor must order by id within it
        tracks = (
            list(range(5000)) if i == n // 2 else [i % 50]
        )  # one crowd with 5000 ids: too big for one page
        d = {
            "id": eid,
            "camera": "gate" if i % 3 else "yard",
            "rule": "intrusion-pit",
            "type": "intrusion",
            "zone": "pit",
            "line": "",
            "severity": "warning",
            "state": "ended",
            "started": started,
            "since": started - 1,
            "updated": started + 3,
            "ended": started + 3,
            "duration": 3.0,
            "peak": 1,
            "count": 1,
            "tracks": json.dumps(tracks),
            "run": "r",
            "seq": i,
            "snapshot": "",
        }
        rows.append([d[c] for c in COLUMNS])
        ids.append((started, eid))
    con.executemany(
        f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})", rows
    )
    con.commit()
    con.close()
    return [eid for _, eid in sorted(ids, reverse=True)]


def ask(sock: zmq.Socket, message: dict, timeout: float = 30.0) -> tuple[dict, int]:
    sock.send(msgpack.packb({"v": 1, **message}))
    assert sock.poll(timeout * 1000), f"no answer to {message}"
    frames = sock.recv_multipart()
    return msgpack.unpackb(frames[0]), len(frames[0])


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("history")
    db = tmp / "events.db"
    ids = fill_store(db, N_EVENTS)
    config = write_config(
        tmp / "site.yaml",
        "gate",
        pit_intrusion(),
        db,
    )
    base = free_base_port()
    log = open(tmp / "safety.log", "wb")
    # No --history-bind: the default address (loopback, base port + 5) is what is under test.
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "anjeon",
            "safety",
            "--broker",
            f"tcp://127.0.0.1:{base}",
            "--config",
            str(config),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    ctx = zmq.Context()
    endpoint = f"tcp://127.0.0.1:{base + 5}"
    try:
        wait_for(
            lambda: (
                "history on" in (tmp / "safety.log").read_text(errors="replace") or proc.poll() is not None
            ),
            120,
            "the safety service to start",
        )
        assert proc.poll() is None, (tmp / "safety.log").read_text()
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        yield {
            "sock": sock,
            "ids": ids,
            "db": db,
            "port": base + 5,
            "endpoint": endpoint,
            "proc": proc,
            "log": tmp / "safety.log",
        }
        sock.close(0)
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
        ctx.destroy(linger=0)


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on ``port``, from /proc/net/tcp (and tcp6)."""
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, hexport = local.rsplit(":", 1)
            if state == "0A" and int(hexport, 16) == port:
                out.add(addr)
    return out


def test_history_binds_loopback_by_default(service):
    assert listening_addresses(service["port"]) == {"0100007F"}  # 127.0.0.1, and nothing else


def test_every_event_once_newest_first_each_answer_under_the_limit(service):
    sock, got, sizes, cursor, pages = service["sock"], [], [], None, 0
    truncated = []
    while True:
        answer, size = ask(
            sock, {"kind": "events_query", "limit": 1000, **({"cursor": cursor} if cursor else {})}
        )
        assert answer["kind"] == "events", answer
        sizes.append(size)
        got += [e["id"] for e in answer["events"]]
        truncated += [e for e in answer["events"] if e.get("tracks_truncated")]
        pages += 1
        cursor = answer["next"]
        if not cursor:
            break
        assert pages < 2000
    assert len(got) == N_EVENTS and len(set(got)) == N_EVENTS
    assert got == service["ids"]  # (started, id) descending: stable, nothing skipped or repeated
    assert max(sizes) <= wire.MAX_HEADER_BYTES
    assert len(truncated) == 1 and len(truncated[0]["tracks"]) == 1000
    print(f"{pages} pages, largest answer {max(sizes)} B")


def test_filters_total_and_bad_fields(service):
    sock = service["sock"]
    answer, _ = ask(sock, {"kind": "events_query", "camera": "yard", "limit": 5, "total": True})
    assert answer["total"] == len(range(0, N_EVENTS, 3)) and len(answer["events"]) == 5
    assert {e["camera"] for e in answer["events"]} == {"yard"}
    for bad in (
        {"limit": "x"},
        {"since": "yesterday"},
        {"cursor": "c1:nan:x"},
        {"cursor": "forged"},
        {"state": "gone"},
        {"camera": ["a"]},
        {"total": 1},
    ):
        answer, _ = ask(sock, {"kind": "events_query", **bad})
        assert answer["kind"] == "error", bad
    sock.send(b"\xc1 not msgpack")
    assert sock.poll(10_000)
    assert msgpack.unpackb(sock.recv_multipart()[0])["kind"] == "error"
    assert service["proc"].poll() is None  # bad input never stops the service


def test_ack_false_alarm_stored_with_response_time_and_exported(service, tmp_path):
    sock, newest = service["sock"], service["ids"][0]
    answer, _ = ask(sock, {"kind": "ack", "event": newest, "by": "kim", "note": "checked on site"})
    assert answer["kind"] == "acked"
    ack = answer["event"]["ack"]
    assert ack["by"] == "kim" and ack["note"] == "checked on site" and ack["response"] > 0
    assert ack["response"] == pytest.approx(ack["at"] - answer["event"]["started"], abs=0.01)
    # The second acknowledgement is not recorded as a new one; it sets the outcome.
    answer, _ = ask(sock, {"kind": "ack", "event": newest, "by": "lee", "outcome": "false_alarm"})
    assert answer["kind"] == "error" and "reason" in answer["error"]
    answer, _ = ask(
        sock, {"kind": "ack", "event": newest, "by": "lee", "outcome": "false_alarm", "reason": "a shadow"}
    )
    ack2 = answer["event"]["ack"]
    assert (ack2["by"], ack2["at"], ack2["outcome"], ack2["reason"], ack2["outcome_by"]) == (
        "kim",
        ack["at"],
        "false_alarm",
        "a shadow",
        "lee",
    )
    answer, _ = ask(sock, {"kind": "ack", "event": "nope", "by": "kim"})
    assert answer["kind"] == "error"
    # `anjeon ack` and `anjeon events` (JSON and CSV), over the socket and from the file.
    second = service["ids"][1]
    run = anjeon_cli("ack", second, "--history", service["endpoint"], "--by", "park", "--resolved")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["ack"]["outcome"] == "resolved"
    for source in (["--history", service["endpoint"]], ["--db", str(service["db"])]):
        run = anjeon_cli("events", *source, "--limit", "2", "--json")
        assert run.returncode == 0, run.stderr
        rows = [json.loads(line) for line in run.stdout.splitlines()]
        assert [r["id"] for r in rows] == [newest, second]
        assert rows[0]["ack"]["reason"] == "a shadow" and rows[1]["ack"]["by"] == "park"
    run = anjeon_cli("events", "--db", str(service["db"]), "--limit", "3", "--csv")
    table = list(csv.DictReader(io.StringIO(run.stdout)))
    assert (
        table[0]["outcome"] == "false_alarm"
        and table[0]["ack_by"] == "kim"
        and float(table[0]["response_s"]) > 0
    )
    assert table[2]["ack_by"] == ""


def test_cli_streams_every_event_through_the_socket(service):
    run = anjeon_cli(
        "events", "--history", service["endpoint"], "--limit", str(N_EVENTS + 10), "--csv", timeout=300
    )
    assert run.returncode == 0, run.stderr
    rows = list(csv.reader(io.StringIO(run.stdout)))
    assert len(rows) == N_EVENTS + 1
    assert service["proc"].poll() is None
