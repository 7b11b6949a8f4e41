"""A client refused at the CURVE handshake exits (status 75) so its service manager restarts it; once its key
is listed, the restarted process is admitted. libzmq itself never retries a refused handshake.

Real processes on real sockets: a keyed broker, edges and a watcher started with `anjeon --keys DIR`, once
directly (as systemd would restart them) and once under `anjeon up`; plus the per-socket watch in-process
(one thread per socket, gone when the socket closes, nothing for plaintext). The exit delay is shortened
through ANJEON_REFUSED_EXIT_DELAY. Every wait is bounded; nothing is judged by how long it took.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import msgpack
import pytest
import zmq
import zmq.auth
from conftest import ROOT, free_base_port, wait_for

from anjeon.protocol import security, wire
from anjeon.protocol.endpoints import FRAMES_IN, OFFSETS, RESULTS_OUT

WAIT = 60.0  # generous bound for anything on a loaded 2-core machine
DELAY = "0.5"  # ANJEON_REFUSED_EXIT_DELAY for the processes under test


def anjeon(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "anjeon", *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


@pytest.fixture
def keys(tmp_path) -> Path:
    folder = tmp_path / "keys"
    run = anjeon("keys", "init", str(folder))
    assert run.returncode == 0, run.stderr
    return folder


def unlisted_pair(folder: Path, name: str) -> None:
    """A key pair in the folder, made like a real one, whose public key the allowlist does not (yet) hold."""
    _, secret_file = zmq.auth.create_certificates(folder, name)
    os.chmod(secret_file, 0o600)


def set_listed(folder: Path, name: str, role: str, listed: bool) -> None:
    """Add or remove NAME's line, replacing the file in one rename as `anjeon keys` does."""
    allowlist = folder / security.ALLOWLIST
    lines = [line for line in allowlist.read_text().splitlines() if line.split()[1:2] != [name]]
    if listed:
        lines.append(security.format_allowlist_line(security.load_public(folder, name), name, [role]))
    tmp = folder / ".allowlist.new"
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, allowlist)


class StatusReader:
    """The broker's status as a listed subscriber key sees it."""

    def __init__(self, ctx: zmq.Context, base: int, folder: Path) -> None:
        self.sock = ctx.socket(zmq.SUB)
        self.sock.linger = 0
        self.sock.curve_publickey, self.sock.curve_secretkey = zmq.auth.load_certificate(
            folder / "subscriber.key_secret"
        )
        self.sock.curve_serverkey = zmq.auth.load_certificate(folder / "broker.key")[0]
        self.sock.subscribe(wire.STATUS_TOPIC)
        self.sock.connect(f"tcp://127.0.0.1:{base + OFFSETS[RESULTS_OUT]}")

    def next(self, timeout: float = WAIT) -> dict:
        if not self.sock.poll(timeout * 1000):
            raise AssertionError(f"no status within {timeout:.0f} s")
        return msgpack.unpackb(self.sock.recv_multipart()[1])

    def until(self, predicate, what: str) -> dict:
        for _ in range(int(WAIT)):  # status comes about once a second: bounded by count, and each by WAIT
            status = self.next()
            if predicate(status):
                return status
        raise AssertionError(f"no status with {what}")


def camera_seen(status: dict, camera: str) -> bool:
    return camera in status.get("cameras", {})


def test_a_refused_client_exits_to_be_restarted_and_is_admitted_once_listed(
    system, keys, bus_jpg, monkeypatch
):
    monkeypatch.setenv(security.REFUSED_DELAY_ENV, DELAY)  # inherited by every process started below
    k = str(keys)
    unlisted_pair(keys, "late-edge")
    unlisted_pair(keys, "late-sub")
    unlisted_pair(keys, "late-viewer")
    broker = system.start(
        "broker", "--keys", k, "broker", "--bind", "127.0.0.1", "--base-port", str(system.base)
    )
    wait_for(lambda: "CURVE on" in broker.output() or not broker.alive, WAIT, "the broker")

    def edge(name: str, key: str, camera: str):
        return system.start(
            name,
            "--keys",
            k,
            "--key",
            key,
            "edge",
            "--broker",
            system.broker_url,
            "--camera",
            f"{camera}={bus_jpg}",
            "--fps",
            "5",
            "--name",
            name,
        )

    control = edge("control", "edge", "ok")  # listed: started with the refused ones, must keep running
    late = edge("late", "late-edge", "late")
    watcher = system.start(
        "watch", "--keys", k, "--key", "late-sub", "watch", "--broker", system.broker_url, "--duration", "600"
    )
    # The console serves under uvicorn, which handles its signals: the refusal reaches it as a SIGTERM.
    console = system.start(
        "console",
        "--keys",
        k,
        "--key",
        "late-viewer",
        "viewer",
        "--broker",
        system.broker_url,
        "--port",
        str(free_base_port()),
        "--acks",
        str(keys.parent / "acks.jsonl"),
    )
    status = StatusReader(system.ctx, system.base, keys)

    wait_for(
        lambda: not late.alive and not watcher.alive and not console.alive,
        WAIT,
        "the refused edge, watcher and console to exit",
    )
    for proc, key in ((late, "late-edge"), (watcher, "late-sub"), (console, "late-viewer")):
        out = proc.output()
        assert proc.popen.returncode == security.REFUSED_EXIT_STATUS, out
        assert f"the broker refused key '{key}' at the handshake on tcp://127.0.0.1:" in out, out
        assert f"exiting in {DELAY} s" in out and "exiting with status 75" in out, out
        assert "Traceback" not in out, out
        secret = zmq.auth.load_certificate(keys / f"{key}.key_secret")[1].decode()
        assert secret not in out  # the line names the key, never its secret
    # The listed edge, refused nowhere, streams on after the refused ones' delay has passed.
    status.until(lambda s: camera_seen(s, "ok"), "the listed edge's camera in the status")
    assert control.alive and "refused" not in control.output(), control.output()

    # The operator lists the key; a restart (what systemd or `anjeon up` does) is admitted.
    reloads = broker.output().count("reloaded")
    set_listed(keys, "late-edge", "edge", listed=True)
    wait_for(lambda: broker.output().count("reloaded") > reloads, WAIT, "the broker to reload the allowlist")
    again = edge("late-again", "late-edge", "late")
    status.until(lambda s: camera_seen(s, "late"), "the restarted edge's camera in the status")
    assert again.alive and "refused" not in again.output(), again.output()
    assert control.alive


def test_anjeon_up_restarts_a_refused_edge_until_its_key_is_listed(tmp_path, keys, bus_jpg, monkeypatch):
    monkeypatch.setenv(security.REFUSED_DELAY_ENV, DELAY)
    base = free_base_port()
    site = tmp_path / "site.yaml"
    site.write_text(f"""\
broker:
  bind: 127.0.0.1
  base_port: {base}
workers:
  count: 0
cameras:
  gate:
    source: {bus_jpg}
    fps: 5
security:
  keys: {keys.name}
""")
    set_listed(keys, "edge", "edge", listed=False)  # the edge child's key (`edge`) is not admitted yet
    log_path = tmp_path / "up.log"
    with open(log_path, "wb") as log_file:
        up = subprocess.Popen(
            [sys.executable, "-m", "anjeon", "up", "--config", str(site), "--viewer-port", "0"],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
    ctx = zmq.Context()
    try:

        def output() -> str:
            return log_path.read_text(errors="replace")

        refused = "edge-gate exited with code 75 (the broker refused its key at the handshake"
        wait_for(lambda: refused in output() or up.poll() is not None, WAIT, "up to see the edge refused")
        assert up.poll() is None, output()
        reloads = output().count("reloaded")
        set_listed(keys, "edge", "edge", listed=True)
        wait_for(lambda: output().count("reloaded") > reloads, WAIT, "the broker to reload the allowlist")
        status = StatusReader(ctx, base, keys)
        status.until(lambda s: camera_seen(s, "gate"), "the restarted edge's camera in the status")
        assert up.poll() is None, output()
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            code = up.wait(30)
        except subprocess.TimeoutExpired:
            up.kill()
            code = up.wait()
        ctx.destroy(linger=0)
    assert code == 0, output()


def watch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("handshake-watch-")]


class CurveServer:
    """A PULL socket guarded like the broker's frames-in, in this process; only the key `edge` is listed."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir()
        for name in ("broker", "edge", "stranger"):
            _, secret_file = zmq.auth.create_certificates(folder, name)
            os.chmod(secret_file, 0o600)
        line = security.format_allowlist_line(security.load_public(folder, "edge"), "edge", ["edge"])
        (folder / security.ALLOWLIST).write_text(line + "\n")
        self.folder = folder
        self.keys = {n: security.Keyring(folder, security.load_pair(folder, n)) for n in ("edge", "stranger")}
        self.ctx = zmq.Context()
        self.guard = security.Guard(
            self.ctx,
            security.Keyring(folder, security.load_pair(folder, "broker")),
            "127.0.0.1",
            "test broker",
        )
        self.pull = self.guard.secure(self.ctx.socket(zmq.PULL), FRAMES_IN)
        self.pull.linger = 0
        self.endpoint = f"tcp://127.0.0.1:{self.pull.bind_to_random_port('tcp://127.0.0.1')}"

    def close(self) -> None:
        self.pull.close(0)
        self.guard.stop()
        term = threading.Thread(target=self.ctx.term, daemon=True)  # must not hang on a watch's PAIR
        term.start()
        term.join(WAIT)
        assert not term.is_alive(), "the context could not terminate"


@pytest.fixture
def server(tmp_path):
    srv = CurveServer(tmp_path / "keys")
    yield srv
    srv.close()


def test_one_watch_per_socket_gone_with_it_and_an_exit_only_while_refused(server, caplog, monkeypatch):
    """In-process, against a real CURVE server: the handler of a service is called only while a connection
    stands refused when the delay runs out; the watch threads end with their sockets; plaintext has none."""
    monkeypatch.setenv(security.REFUSED_DELAY_ENV, "0.2")
    calls: list[int] = []
    endpoint = server.endpoint
    sockets: list[zmq.Socket] = []

    def client(key: str | None) -> zmq.Socket:
        sock = server.ctx.socket(zmq.PUSH)
        sock.linger = 0
        security.connect(sock, endpoint, keys=server.keys[key] if key else None)
        sockets.append(sock)
        return sock

    def lines(text: str) -> int:
        return sum(text in r.getMessage() for r in caplog.records)

    try:
        with caplog.at_level(logging.DEBUG, logger="anjeon.security"):
            before = len(watch_threads())
            client(None)  # plaintext: no watch at all (the server refuses it, unseen by the client)
            assert len(watch_threads()) == before
            listed = client("edge")
            security.connect(listed, endpoint.replace("127.0.0.1", "localhost"), keys=server.keys["edge"])
            assert len(watch_threads()) == before + 1  # one watch per socket, whatever it connects to
            listed.send(b"hello")
            assert server.pull.poll(WAIT * 1000) and server.pull.recv() == b"hello"

            # Not armed (a library user): the refusal is logged, nothing else.
            lonely = client("stranger")
            wait_for(lambda: lines("does not retry") == 1, WAIT, "the refusal logged")
            lonely.close()

            # Armed: a refused socket closed before the delay runs out stands refused no more.
            security.on_refusal(calls.append)
            closed = client("stranger")
            wait_for(lambda: lines("exiting in 0.2 s") == 1, WAIT, "the countdown to start")
            closed.close()
            wait_for(lambda: lines("not exiting") == 1, WAIT, "the countdown to run out")
            assert calls == []

            # Refused while nobody was armed, then armed: counted down from then, and the handler is called.
            security.on_refusal(None)
            stuck = client("stranger")
            wait_for(lambda: lines("does not retry") == 2, WAIT, "the second refusal logged")
            security.on_refusal(calls.append)
            wait_for(lambda: calls, WAIT, "the handler to be called")
            assert calls == [security.REFUSED_EXIT_STATUS] and lines("exiting in 0.2 s") == 2
            assert lines(f"key 'stranger' still refused on {endpoint}") == 1
            assert lines("refused key 'edge'") == 0 and not stuck.closed
    finally:
        security.on_refusal(None)
        for sock in sockets:
            sock.close(0)
        wait_for(lambda: not watch_threads(), WAIT, "every watch thread to end with its socket")


# A process that handles SIGTERM itself, as uvicorn does for the web console, inside exit_when_refused.
SIGTERM_SERVER = """
import signal, sys, threading
import zmq
from anjeon.protocol import security
from anjeon.runtime import exit_when_refused, setup_logging

setup_logging("info")
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
security.use_keys(sys.argv[1], sys.argv[2])
with exit_when_refused():
    sock = zmq.Context.instance().socket(zmq.PUSH)
    sock.linger = 0
    security.connect(sock, sys.argv[3])
    while not stop.wait(0.05):
        try:
            sock.send(b"hello", zmq.NOBLOCK)
        except zmq.Again:
            pass  # not connected (or refused)
    print("stopped cleanly", flush=True)
    sock.close()
"""


@pytest.mark.parametrize("key, status", [("stranger", security.REFUSED_EXIT_STATUS), ("edge", None)])
def test_exit_when_refused_stops_a_process_through_its_own_sigterm(server, monkeypatch, key, status):
    monkeypatch.setenv(security.REFUSED_DELAY_ENV, "0.2")
    proc = subprocess.Popen(
        [sys.executable, "-c", SIGTERM_SERVER, str(server.folder), key, server.endpoint],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    try:
        if status is None:  # listed: admitted (its frames arrive), then it runs until told to stop
            assert server.pull.poll(WAIT * 1000) and server.pull.recv() == b"hello"
            proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "stopped cleanly" in out, out
    assert proc.returncode == (status or 0), out
    assert ("still refused" in out) == (status is not None), out


def test_a_keyed_client_of_a_broker_without_keys_exits_the_same_way(system, keys, monkeypatch):
    monkeypatch.setenv(security.REFUSED_DELAY_ENV, DELAY)
    system.broker()  # plaintext: the CURVE client's handshake fails (mechanism mismatch), never retried
    edge = system.start(
        "edge", "--keys", str(keys), "edge", "--broker", system.broker_url, "--camera", "a=synthetic"
    )
    wait_for(lambda: not edge.alive, WAIT, "the keyed edge to exit")
    out = edge.output()
    assert edge.popen.returncode == security.REFUSED_EXIT_STATUS, out
    assert "the CURVE handshake with key 'edge' failed" in out and "zmtp_mechanism_mismatch" in out, out
