"""CURVE with rights per role, against real processes: a broker, edge, worker and safety service started with
`anjeon --keys DIR`, and hostile clients on every socket: no key, a key nobody listed, and listed keys of the
wrong role. Each negative is judged against a positive control sent the same way at the same time (so a
"got nothing" means refused, not "too slow"), and every wait is bounded.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import msgpack
import pytest
import zmq
import zmq.auth
from conftest import ROOT, free_base_port, wait_for
from safety_fixtures import write_config

from anjeon.protocol import security, wire
from anjeon.protocol.endpoints import CONTROL, FRAMES_IN, FRAMES_OUT, OFFSETS, RESULTS_IN, RESULTS_OUT

WAIT = 60.0  # generous bound for anything on a loaded 2-core machine


def anjeon(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "anjeon", *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


@pytest.fixture
def keys(tmp_path) -> Path:
    folder = tmp_path / "keys"
    run = anjeon("keys", "init", str(folder))
    assert run.returncode == 0, run.stderr
    # Keys nobody listed, made the same way as real ones.
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    zmq.auth.create_certificates(stranger, "stranger")
    return folder


def pair(folder: Path, name: str) -> tuple[bytes, bytes]:
    return zmq.auth.load_certificate(folder / f"{name}.key_secret")


class Client:
    """Test-side sockets as a given key (or none) would open them."""

    def __init__(self, ctx: zmq.Context, base: int, keys: Path) -> None:
        self.ctx, self.base, self.keys = ctx, base, keys
        self.server = zmq.auth.load_certificate(keys / "broker.key")[0]

    def socket(
        self, kind: int, where: str, key: str | None, port: int | None = None, server: bytes | None = None
    ) -> zmq.Socket:
        sock = self.ctx.socket(kind)
        sock.linger = 0
        if key is not None:
            folder = self.keys.parent / "stranger" if key == "stranger" else self.keys
            public, secret = pair(folder, key)
            sock.curve_publickey, sock.curve_secretkey = public, secret
            sock.curve_serverkey = server or self.server
        sock.connect(f"tcp://127.0.0.1:{port or self.base + OFFSETS[where]}")
        return sock

    def sub(self, key: str | None, *topics: bytes) -> zmq.Socket:
        sock = self.socket(zmq.SUB, RESULTS_OUT, key)
        for t in topics or (b"",):
            sock.subscribe(t)
        return sock


def drain(sock: zmq.Socket) -> list[list[bytes]]:
    out = []
    while sock.poll(0):
        out.append(sock.recv_multipart())
    return out


def recv_until(sock: zmq.Socket, predicate, timeout: float, what: str) -> list[list[bytes]]:
    """Receive until a message satisfies ``predicate``; returns everything received."""
    seen: list[list[bytes]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sock.poll(100):
            frames = sock.recv_multipart()
            seen.append(frames)
            if predicate(frames):
                return seen
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def frame_message(camera: str, jpeg: bytes, seq: int) -> list[bytes]:
    header = wire.FrameHeader(
        camera=camera,
        run="r" * 8,
        seq=seq,
        t_capture=time.time(),
        width=810,
        height=1080,
        size=len(jpeg),
        edge="e" * 8,
        ts={},
    )
    return [header.to_wire(), jpeg]


def send_quietly(sock: zmq.Socket, frames: list[bytes]) -> None:
    try:
        sock.send_multipart(frames, zmq.NOBLOCK)
    except zmq.Again:
        pass  # a refused handshake leaves nothing connected: exactly what is being tested


def status_of(frames_list: list[list[bytes]]) -> list[dict]:
    return [msgpack.unpackb(f[1]) for f in frames_list if f[0] == wire.STATUS_TOPIC]


@pytest.fixture
def secured(system, keys, bus_jpg):
    """A keyed broker, edge (camera gate) and null worker; returns (system, keys, client)."""
    k = str(keys)
    system.start("broker", "--keys", k, "broker", "--bind", "127.0.0.1", "--base-port", str(system.base))
    system.start(
        "worker", "--keys", k, "worker", "--broker", system.broker_url, "--model", "null", "--name", "w1"
    )
    system.start(
        "edge",
        "--keys",
        k,
        "edge",
        "--broker",
        system.broker_url,
        "--camera",
        f"gate={bus_jpg}",
        "--fps",
        "5",
        "--name",
        "e1",
    )
    client = Client(system.ctx, system.base, keys)
    return system, keys, client


def test_right_keys_work_end_to_end_and_nobody_else_sees_anything(secured):
    system, _, client = secured
    outsiders = {key: client.sub(key) for key in (None, "stranger", "edge", "worker")}
    good = client.sub("subscriber", b"res/", b"status/")  # connected with the outsiders: same chances
    seen = recv_until(
        good, lambda f: f[0] == b"res/gate/", WAIT, "a result of camera gate for the subscriber key"
    )
    # Two more status snapshots after the first result: an admitted socket would have had many messages by now.
    for _ in range(2):
        recv_until(good, lambda f: f[0] == wire.STATUS_TOPIC, WAIT, "status")
    for key, sock in outsiders.items():
        assert drain(sock) == [], f"a subscriber with key {key} received data"
    result = msgpack.unpackb(next(f for f in seen if f[0] == b"res/gate/")[1])
    assert result["camera"] == "gate" and result["worker"]


def test_nobody_without_the_right_role_injects_anything(secured, bus_jpg):
    system, keys, client = secured
    jpeg = Path(bus_jpg).read_bytes()
    good = client.sub("subscriber", b"res/", b"evt/", b"status/", b"trk/")
    recv_until(good, lambda f: f[0] == b"res/gate/", WAIT, "the pipeline running")

    pushers = {
        key: client.socket(zmq.PUSH, FRAMES_IN, key)
        for key in (None, "stranger", "subscriber", "worker", "safety")
    }
    publishers = {
        key: client.socket(zmq.PUB, RESULTS_IN, key)
        for key in (None, "stranger", "subscriber", "edge", "worker", "safety")
    }
    beats = {key: client.socket(zmq.DEALER, CONTROL, key) for key in (None, "stranger", "subscriber", "edge")}
    dealers = {
        key: client.socket(zmq.DEALER, FRAMES_OUT, key) for key in (None, "stranger", "subscriber", "edge")
    }
    control_edge = client.socket(zmq.PUSH, FRAMES_IN, "edge")
    control_viewer = client.socket(zmq.DEALER, CONTROL, "subscriber")

    forged: list[list[bytes]] = []
    got_evt = got_trk = got_res = got_frames = False
    seq = 0
    deadline = time.monotonic() + WAIT
    while not (got_evt and got_trk and got_res and got_frames):
        assert time.monotonic() < deadline, "the positive controls never arrived"
        seq += 1
        for key, sock in pushers.items():
            send_quietly(sock, frame_message(f"forged-{key or 'none'}", jpeg, seq))
        send_quietly(control_edge, frame_message("ctl", jpeg, seq))
        for key, sock in publishers.items():
            tag = f"forged by {key}".encode()
            send_quietly(sock, [b"status/", wire.pack({"v": 1, "kind": "status", "forged": tag})])
            if key != "worker":
                send_quietly(sock, [b"res/gate/", tag])
            if key != "safety":
                send_quietly(sock, [b"evt/gate/", tag])
                send_quietly(sock, [b"trk/gate/", tag])
        send_quietly(publishers["safety"], [b"evt/ctl/", b"control"])
        send_quietly(publishers["safety"], [b"trk/ctl/", b"control"])
        send_quietly(publishers["worker"], [b"res/ctl-pub/", b"control"])
        for key, sock in beats.items():
            send_quietly(sock, [wire.heartbeat(f"p-{key}", "worker", f"fake-worker-{key}", {})])
        send_quietly(control_viewer, [wire.heartbeat("p-viewer", "viewer", "ok-viewer", {})])
        for key, sock in dealers.items():
            send_quietly(sock, [wire.ready(f"rogue-{key}", 8)])
        while good.poll(50):
            frames = good.recv_multipart()
            got_evt |= frames[0] == b"evt/ctl/"
            got_trk |= frames[0] == b"trk/ctl/"
            got_res |= frames[0] == b"res/ctl-pub/"
            got_frames |= frames[0] == b"res/ctl/"  # the edge-keyed control camera went through the worker
            if any(b"forged" in part for part in frames[1:]) or frames[0].startswith(b"res/forged"):
                forged.append(frames)

    # The status names the control camera and the control viewer, but nothing forged.
    status = status_of(
        recv_until(
            good,
            lambda f: (
                f[0] == wire.STATUS_TOPIC and "ok-viewer" in str(msgpack.unpackb(f[1]).get("subscribers"))
            ),
            WAIT,
            "the control heartbeat in the status",
        )
    )[-1]
    assert not forged, forged[:3]
    assert "ctl" in status["cameras"]
    assert not [c for c in status["cameras"] if c.startswith("forged")]
    assert all(not w["name"].startswith("fake-worker") for w in status["workers"].values())
    assert [w["name"] for w in status["workers"].values()] == ["w1"]
    assert all(not e["name"].startswith("fake-worker") for e in status["edges"].values())
    assert status["drops"].get("forbidden", 0) > 0  # keyed but wrong role: refused per message and counted
    assert status["security"]["curve"] is True and status["security"]["denied"] > 0
    for key, sock in dealers.items():
        assert drain(sock) == [], f"a frames-out DEALER with key {key} was given frames"


def test_history_socket_answers_only_subscriber_keys(system, keys, tmp_path):
    k = str(keys)
    config = write_config(
        tmp_path / "site.yaml",
        "gate",
        "zones:\n  pit: [[0.2, 0.1], [0.8, 0.1], [0.8, 0.6], [0.2, 0.6]]\n"
        "rules:\n  - {type: intrusion, zone: pit}",
        tmp_path / "events.db",
    )
    port = free_base_port()
    system.start("broker", "--keys", k, "broker", "--bind", "127.0.0.1", "--base-port", str(system.base))
    safety = system.start(
        "safety",
        "--keys",
        k,
        "safety",
        "--broker",
        system.broker_url,
        "--config",
        str(config),
        "--history-bind",
        f"tcp://127.0.0.1:{port}",
        "--name",
        "s1",
    )
    wait_for(lambda: "history on" in safety.output() or not safety.alive, WAIT, "the safety service")
    assert safety.alive, safety.output()
    client = Client(system.ctx, system.base, keys)
    history_key = zmq.auth.load_certificate(keys / "safety.key")[0]
    query = wire.pack({"v": 1, "kind": "events_query", "limit": 5})
    outsiders = {
        key: client.socket(zmq.DEALER, "", key, port=port, server=history_key)
        for key in (None, "stranger", "edge", "worker")
    }
    for sock in outsiders.values():
        send_quietly(sock, [query])
    good = client.socket(zmq.DEALER, "", "subscriber", port=port, server=history_key)
    good.send(query)
    assert good.poll(WAIT * 1000), "no answer for the subscriber key"
    answer = msgpack.unpackb(good.recv_multipart()[-1])
    assert answer["kind"] == "events"
    for key, sock in outsiders.items():
        assert not sock.poll(1000), f"the history socket answered key {key}"
    # The CLI takes the same folder and gets its answer as a subscriber.
    run = anjeon("--keys", k, "events", "--history", f"tcp://127.0.0.1:{port}", "--json")
    assert run.returncode == 0, run.stderr
    run = anjeon("events", "--history", f"tcp://127.0.0.1:{port}", "--json")  # no keys: refused (timeout)
    assert run.returncode != 0


def test_allowlist_changes_apply_without_restart_and_a_bad_line_admits_nobody(system, keys):
    k = str(keys)
    broker = system.start(
        "broker", "--keys", k, "broker", "--bind", "127.0.0.1", "--base-port", str(system.base)
    )
    wait_for(lambda: "CURVE on" in broker.output() or not broker.alive, WAIT, "the broker")
    client = Client(system.ctx, system.base, keys)

    def reloads() -> int:
        return broker.output().count("reloaded")

    # A key added while the broker runs is admitted.
    before = reloads()
    assert anjeon("keys", "add", k, "late", "--role", "subscriber").returncode == 0
    wait_for(lambda: reloads() > before, WAIT, "the broker to reload the allowlist")
    late = client.sub("late", b"status/")
    recv_until(late, lambda f: f[0] == wire.STATUS_TOPIC, WAIT, "status for the key added at run time")

    # A revoked key: its messages on a connection made before are refused from the reload on.
    before = reloads()
    assert anjeon("keys", "add", k, "pub2", "--role", "safety").returncode == 0
    # libzmq never retries a connection refused at the handshake, so connect only once the key is listed.
    wait_for(lambda: reloads() > before, WAIT, "the broker to reload the allowlist")
    good = client.sub("subscriber", b"evt/")
    pub2 = client.socket(zmq.PUB, RESULTS_IN, "pub2")
    control = client.socket(zmq.PUB, RESULTS_IN, "safety")
    deadline = time.monotonic() + WAIT
    while True:
        assert time.monotonic() < deadline, "pub2 was never admitted"
        send_quietly(pub2, [b"evt/x/", b"before"])
        if good.poll(100) and good.recv_multipart()[1] == b"before":
            break
    before = reloads()
    assert anjeon("keys", "revoke", k, "pub2").returncode == 0
    wait_for(lambda: reloads() > before, WAIT, "the broker to reload after the revocation")
    drain(good)
    seen: list[bytes] = []
    deadline = time.monotonic() + WAIT
    while b"control" not in seen[-20:] or seen.count(b"control") < 5:
        assert time.monotonic() < deadline, "the control publisher never got through"
        send_quietly(pub2, [b"evt/x/", b"after"])
        send_quietly(control, [b"evt/x/", b"control"])
        while good.poll(50):
            seen.append(good.recv_multipart()[1])
    assert b"after" not in seen
    assert not (keys / "pub2.key_secret").exists()  # revoke also removes the master copy of the pair

    # A revoked subscriber already connected stops receiving too: the broker drops results-out's connections
    # (honest clients reconnect by themselves; the revoked one fails the handshake).
    before = reloads()
    assert anjeon("keys", "add", k, "sub2", "--role", "subscriber").returncode == 0
    wait_for(lambda: reloads() > before, WAIT, "the broker to reload the allowlist")
    sub2 = client.sub("sub2", b"status/")
    recv_until(sub2, lambda f: f[0] == wire.STATUS_TOPIC, WAIT, "status for sub2")
    cuts = broker.output().count("dropped every connection")
    assert anjeon("keys", "revoke", k, "sub2").returncode == 0
    wait_for(
        lambda: broker.output().count("dropped every connection") > cuts,
        WAIT,
        "results-out's connections cut",
    )
    watcher = client.sub("subscriber", b"status/")
    recv_until(watcher, lambda f: f[0] == wire.STATUS_TOPIC, WAIT, "status after the cut")
    drain(sub2)  # what was under way before the cut
    for _ in range(2):
        recv_until(watcher, lambda f: f[0] == wire.STATUS_TOPIC, WAIT, "more status")
    assert drain(sub2) == [], "a revoked subscriber kept receiving"

    # A broken line refuses that key (loudly) and keeps the valid ones; nothing falls back to "allow any".
    allowlist = keys / security.ALLOWLIST
    lines = allowlist.read_text().splitlines()
    late_line = next(line for line in lines if line.split()[1:2] == ["late"])
    before = reloads()
    allowlist.write_text(
        "\n".join(
            line if line != late_line else late_line.replace("subscriber", "subscribr") for line in lines
        )
        + "\n"
    )
    wait_for(lambda: reloads() > before, WAIT, "the broker to reload the broken allowlist")
    assert "allowlist line refused" in broker.output()
    late2 = client.sub("late", b"status/")
    fine = client.sub("subscriber", b"status/")
    recv_until(fine, lambda f: f[0] == wire.STATUS_TOPIC, WAIT, "status for a valid key")
    recv_until(fine, lambda f: f[0] == wire.STATUS_TOPIC, WAIT, "a second status")
    assert drain(late2) == []
    # A missing allowlist admits nobody new.
    before = reloads()
    allowlist.unlink()
    wait_for(lambda: reloads() > before, WAIT, "the broker to notice the allowlist is gone")
    assert "admitting NOBODY" in broker.output()
    nobody = client.sub("subscriber", b"status/")
    recv_until(fine, lambda f: f[0] == wire.STATUS_TOPIC, WAIT, "status on the connection made before")
    recv_until(fine, lambda f: f[0] == wire.STATUS_TOPIC, WAIT, "another status")
    assert drain(nobody) == []
    assert broker.alive


def test_missing_keys_fail_clearly_and_plaintext_on_open_addresses_warns(tmp_path, keys, caplog):
    run = anjeon("--keys", str(keys), "--key", "nosuch", "worker", "--model", "null")
    assert run.returncode != 0 and "nosuch.key_secret" in run.stderr and "Traceback" not in run.stderr
    run = anjeon("--keys", str(tmp_path / "absent"), "edge", "--camera", "a=synthetic")
    assert run.returncode != 0 and "does not exist" in run.stderr
    (keys / security.ALLOWLIST).rename(tmp_path / "away.txt")  # a keyed broker without allowlist never starts
    run = anjeon("--keys", str(keys), "broker", "--bind", "127.0.0.1", "--base-port", str(free_base_port()))
    assert run.returncode != 0 and "cannot read the allowlist" in run.stderr and "Traceback" not in run.stderr
    ctx = zmq.Context()
    try:
        with caplog.at_level("WARNING", logger="anjeon.security"):
            security.Guard(ctx, None, "127.0.0.1", "lab broker").stop()
            assert "SECURITY WARNING" not in caplog.text
            security.Guard(ctx, None, "*", "site broker").stop()
            assert "SECURITY WARNING" in caplog.text and "WITHOUT keys" in caplog.text
    finally:
        ctx.term()


@pytest.mark.parametrize(
    "text, admitted, refused",
    [
        ("", 0, 0),
        ("# only a comment\n\n", 0, 0),
        ("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7 gate edge\n", 1, 0),
        ("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7 gate edge,subscriber\n", 1, 0),
        ("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7 gate admin\n", 0, 1),  # unknown role
        ("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7 gate\n", 0, 1),  # no role
        ("short gate edge\n", 0, 1),
        ("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7 ga/te edge\n", 0, 1),
        (
            "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7 a edge\nrq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7 b worker\n",
            0,
            1,
        ),
        ("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7 a edge extra\n", 0, 1),
    ],
)
def test_allowlist_lines(text, admitted, refused):
    allowlist = security.parse_allowlist(text)
    assert len(allowlist.entries) == admitted and len(allowlist.errors) == refused


def test_watch_and_console_take_the_subscriber_key(secured, tmp_path):
    """The subscriber clients as a user runs them: `anjeon --keys DIR watch` and the web console."""
    import json
    import urllib.request

    system, keys, _ = secured
    k = str(keys)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "anjeon",
            "--keys",
            k,
            "watch",
            "--broker",
            system.broker_url,
            "--json",
            "--count",
            "3",
            "--duration",
            str(WAIT),
        ],
        capture_output=True,
        text=True,
        timeout=WAIT + 30,
        cwd=ROOT,
    )
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert run.returncode == 0 and len(lines) == 3 and {r["camera"] for r in lines} == {"gate"}, run.stderr
    port = free_base_port()
    viewer = system.start(
        "viewer",
        "--keys",
        k,
        "viewer",
        "--broker",
        system.broker_url,
        "--port",
        str(port),
        "--acks",
        str(tmp_path / "acks.jsonl"),
    )

    def cameras() -> dict:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/cameras", timeout=5) as answer:
                return json.loads(answer.read())
        except OSError:
            return {}

    got = wait_for(
        lambda: "gate" in json.dumps(cameras()) or not viewer.alive, WAIT, "the console to see gate"
    )
    assert viewer.alive and got, viewer.output()
