"""The edge against a real RTSP server (GStreamer's, from Debian) on loopback.

Outages are real: the server process is killed and restarted, frozen with
SIGSTOP (connections stay open, nothing flows), started late, or asks for a
password. No timing is asserted; every wait is bounded and generous.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SAMPLE
from rtsp_helpers import RtspServer, make_clip

PASSWORD = "s3cr3t-pw"


@pytest.fixture(scope="session")
def clip(tmp_path_factory) -> Path:
    return SAMPLE if SAMPLE.exists() else make_clip(tmp_path_factory.mktemp("clip") / "clip.avi")


@pytest.fixture
def servers(tmp_path, system, clip):
    started: list[RtspServer] = []

    def make(name: str = "rtsp", user: str = "", password: str = "", start: bool = True) -> RtspServer:
        server = RtspServer(tmp_path, clip, user, password, name)
        started.append(server)
        return server.start() if start else server

    yield make
    for server in started:
        server.kill()
        system.procs and print(f"----- {server.log.name} -----\n{server.output()[-2000:]}")


def camera(sub, cam: str) -> dict:
    return sub.status.get("cameras", {}).get(cam, {})


def wait_state(sub, cam: str, state: str, timeout: float, error: str = "") -> dict:
    return sub.status_where(
        lambda s: (
            (c := s.get("cameras", {}).get(cam, {})).get("state") == state
            and error in c.get("error", "")
            and c
        ),
        timeout,
        f"camera {cam} {state} {error!r}",
    )


@pytest.mark.model
def test_rtsp_stream_is_detected_and_survives_a_server_restart(system, servers):
    server = servers()
    system.broker()
    system.worker("w1", "person")
    edge = system.edge("edge1", f"gate={server.url()}", fps=5, extra=("--stall-timeout", "5"))
    sub = system.subscriber()
    results = sub.results(3, timeout=120, where=lambda r: r["camera"] == "gate")
    assert any(d["class"] == "person" for r in results for d in r["detections"]), results
    # The camera dies mid-stream...
    server.kill()
    down = wait_state(sub, "gate", "reconnecting", timeout=30)
    assert down["error"]
    # ...and comes back on the same address: the edge finds it by itself.
    server.start()
    wait_state(sub, "gate", "streaming", timeout=60)
    after = sub.results(3, timeout=60, where=lambda r: r["camera"] == "gate")
    assert after[-1]["seq"] > results[-1]["seq"]  # same edge run, new frames
    assert edge.alive
    assert "reconnected" in edge.output()


def test_frozen_stream_trips_the_watchdog_and_recovers(system, servers):
    server = servers()
    system.broker()
    system.worker("w1", "null")
    edge = system.edge("edge1", f"gate={server.url()}", fps=5, extra=("--stall-timeout", "3"))
    sub = system.subscriber()
    sub.results(2, timeout=60, where=lambda r: r["camera"] == "gate")
    server.freeze()  # the connection stays open, nothing arrives
    frozen = wait_state(sub, "gate", "reconnecting", timeout=40)
    assert frozen["error"], frozen
    server.thaw()
    wait_state(sub, "gate", "streaming", timeout=90)
    sub.results(2, timeout=60, where=lambda r: r["camera"] == "gate")
    assert edge.alive
    assert "frozen stream" in edge.output()


def test_bad_cameras_get_clear_errors_while_the_good_one_streams(system, servers):
    server = servers(user="admin", password=PASSWORD)
    nobody = servers(name="nobody", start=False)  # a port where nothing listens
    system.broker()
    system.worker("w1", "null")
    cams = {
        "good": server.url(),
        "badpw": server.url(password="wrong-" + PASSWORD),
        "nopw": server.url(user=""),
        "badpath": server.url(path="/nosuchstream"),
        "dead": nobody.url(),
    }
    edge = system.edge("edge1", *(f"{k}={v}" for k, v in cams.items()), fps=5)
    sub = system.subscriber()
    sub.results(2, timeout=60, where=lambda r: r["camera"] == "good")
    expected = {
        "badpw": "refused the user name or password",
        "nopw": "requires a user name and password",
        "badpath": "no stream at '/nosuchstream'",
        "dead": "nothing listens at 127.0.0.1",
    }
    for cam, words in expected.items():
        status = wait_state(sub, cam, "error", timeout=60, error=words)
        assert "***@" in status["source"] or cam in ("nopw", "dead"), status
    wait_state(sub, "good", "streaming", timeout=10)
    assert edge.alive
    log = edge.output()
    for cam in expected:
        assert f"camera {cam}:" in log  # every error names its camera
    assert PASSWORD not in log, "a password leaked into the edge's log"
    assert PASSWORD not in str(sub.status), "a password leaked into the broker's status"


def test_cameras_that_come_up_after_the_edge_over_tcp_and_udp(system, servers):
    tcp_server = servers("late-tcp", start=False)
    udp_server = servers("late-udp", start=False)
    system.broker()
    system.worker("w1", "null")
    edge = system.edge("edge1", f"late={tcp_server.url()}", f"lateudp={udp_server.url()}", fps=5)
    udp_edge = system.edge("edge2", f"udp={udp_server.url()}", fps=5, extra=("--transport", "udp"))
    sub = system.subscriber()
    wait_state(sub, "late", "error", timeout=30, error="nothing listens")
    tcp_server.start()
    udp_server.start()
    for cam in ("late", "lateudp", "udp"):
        sub.results(2, timeout=90, where=lambda r, cam=cam: r["camera"] == cam)
    assert edge.alive and udp_edge.alive
