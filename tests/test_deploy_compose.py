"""The container deployment for real (`make deploy-test`; marked `deploy`, not in the default run: it builds an
image and runs a whole stack, minutes on a small machine).

It builds the base image from deploy/docker/Containerfile (on the local base that deploy/docker/local-base.sh
makes, since these machines reach no registry), starts deploy/compose.yaml with podman-compose (broker,
safety, console, a `--model null` worker, an edge streaming the sample), and checks from the host, on
127.0.0.1 only: results flow for the sample camera (a real `anjeon watch`); a scripted worker's detections of
a person in a zone become a safety event in the store on the volume and in the console's history; the
console answers with a login; the containers report healthy; `down` stops each process cleanly (exit 0 on
SIGTERM, not killed). Times are printed (pytest -s) for docs/deploy.md.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import pytest
from conftest import SAMPLE, wait_for

from anjeon.protocol.endpoints import free_base_port

# An image build and a whole stack on a small shared machine: minutes, not the suite's 300 s per test.
pytestmark = [pytest.mark.deploy, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "deploy" / "docker"
IMAGE = os.environ.get("ANJEON_TEST_IMAGE", "localhost/anjeon:deploy-test")
BASE_IMAGE = os.environ.get("ANJEON_TEST_BASE_IMAGE", "localhost/debian-base:bookworm")
CA_BUNDLE = Path(os.environ.get("ANJEON_TEST_CA", "/etc/ssl/certs/ca-certificates.crt"))
PROJECT = "anjeon-deploy-test"
SERVICES = ("broker", "safety", "viewer", "worker", "edge")
USER, PASSWORD = "operator", "deploy-test-password"
ANJEON = Path(sys.executable).with_name("anjeon")
COMPOSE = Path(sys.executable).with_name("podman-compose")
# A podman query waits for the storage lock, which another build on the machine may hold for minutes.
PODMAN_QUERY = 600


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env() -> dict[str, str]:
    return dict(
        os.environ, CONTAINERS_CONF=os.environ.get("CONTAINERS_CONF", str(DOCKER / "containers.conf"))
    )


def _run(
    args: list[str], timeout: float, env: dict[str, str] | None = None, check: bool = True, cwd: Path = ROOT
) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env or _env(), cwd=cwd)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} -> {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def _timed(what: str, start: float) -> None:
    print(f"\n[deploy-test] {what}: {time.monotonic() - start:.1f} s", flush=True)


@pytest.fixture(scope="module")
def image() -> str:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed: make deploy-test installs it (deploy/docker/local-base.sh)")
    if _run(["podman", "image", "exists", BASE_IMAGE], PODMAN_QUERY, check=False).returncode != 0:
        pytest.skip(
            f"base image {BASE_IMAGE} is missing: make deploy-test builds it (deploy/docker/local-base.sh)"
        )
    start = time.monotonic()
    args = [
        "podman",
        "build",
        "--format",
        "docker",
        "--build-arg",
        f"BASE_IMAGE={BASE_IMAGE}",
        "-f",
        str(DOCKER / "Containerfile"),
        "-t",
        IMAGE,
    ]
    if CA_BUNDLE.exists():  # pip behind this machine's TLS-inspecting proxy needs its CA
        args += ["--secret", f"id=ca,src={CA_BUNDLE}"]
    _run(args + ["."], 1800)
    _timed("image build (cached layers are reused)", start)
    size = _run(["podman", "image", "inspect", IMAGE, "--format", "{{.Size}}"], PODMAN_QUERY).stdout.strip()
    print(f"[deploy-test] image {IMAGE}: {int(size) / 1e6:.0f} MB", flush=True)
    return IMAGE


def test_image_runs_unprivileged_with_a_health_check_and_stop_signal(image):
    info = json.loads(_run(["podman", "image", "inspect", image], PODMAN_QUERY).stdout)[0]
    config = info["Config"]
    assert config["User"] == "10001:10001"
    assert config["StopSignal"] == "SIGTERM"
    health = info.get("Healthcheck") or config.get("Healthcheck")  # podman shows it beside Config
    assert health and "healthcheck.py" in " ".join(health["Test"])
    out = _run(["podman", "run", "--rm", image, "--version"], PODMAN_QUERY).stdout
    assert "anjeon" in out
    # No torch in the base image: the camera and console hosts' install stays small.
    probe = _run(
        [
            "podman",
            "run",
            "--rm",
            "--entrypoint",
            "/opt/anjeon/bin/python",
            image,
            "-c",
            "import importlib.util as u; print(u.find_spec('torch') is None, u.find_spec('cv2') is not None)",
        ],
        PODMAN_QUERY,
    ).stdout.split()
    assert probe == ["True", "True"]


class Stack:
    """deploy/compose.yaml under podman-compose, its host side in a temporary folder."""

    def __init__(self, image: str, site_dir: Path, console_port: int, broker_port: int) -> None:
        self.site_dir, self.console_port, self.broker_port = site_dir, console_port, broker_port
        self.env = dict(
            _env(),
            ANJEON_IMAGE=image,
            ANJEON_WORKER_IMAGE=image,
            ANJEON_MODEL="null",
            ANJEON_SITE_DIR=str(site_dir),
            ANJEON_SAMPLES=str(SAMPLE.parent),
            ANJEON_CONSOLE_PORT=str(console_port),
            ANJEON_BROKER_PORTS=f"{broker_port}-{broker_port + 4}",
        )

    def compose(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        return _run(
            [str(COMPOSE), "-p", PROJECT, "-f", str(ROOT / "deploy" / "compose.yaml"), *args],
            timeout,
            env=self.env,
            check=check,
        )

    def container(self, service: str) -> str:
        return f"{PROJECT}_{service}_1"

    def podman(
        self, *args: str, timeout: float = PODMAN_QUERY, check: bool = True
    ) -> subprocess.CompletedProcess:
        return _run(["podman", *args], timeout, env=self.env, check=check)

    def logs(self) -> str:
        return "\n".join(
            f"--- {s}\n{self.podman('logs', '--tail', '40', self.container(s), check=False).stderr}"
            for s in SERVICES
        )


def _site_dir(tmp_path: Path) -> Path:
    from anjeon.viewer.console.auth import add_user

    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(ROOT / "deploy" / "compose" / "site.yaml", site / "site.yaml")
    add_user(site / "users", USER, PASSWORD)
    for path in (site, site / "site.yaml", site / "users"):  # the containers' user owns the site folder
        os.chown(path, 10001, 10001)
    return site


@pytest.fixture(scope="module")
def stack(image, tmp_path_factory):
    if not COMPOSE.exists():
        pytest.skip("podman-compose is not installed: pip install -e '.[test]'")
    if not SAMPLE.exists():
        pytest.skip(f"the sample video {SAMPLE} is missing")
    site = _site_dir(tmp_path_factory.mktemp("compose"))
    s = Stack(image, site, console_port=_free_port(), broker_port=free_base_port())
    s.compose("down", "-v", check=False)  # a stack left over from an interrupted run
    start = time.monotonic()
    s.compose("up", "-d", timeout=600)
    _timed("compose up", start)
    try:
        yield s
    finally:
        if os.environ.get("ANJEON_KEEP_STACK") != "1":
            s.compose("down", "-v", timeout=300, check=False)


def _watch(stack: Stack, count: int, timeout: float) -> list[dict]:
    out = _run(
        [
            str(ANJEON),
            "watch",
            "--broker",
            f"tcp://127.0.0.1:{stack.broker_port}",
            "--json",
            "--count",
            str(count),
            "--duration",
            str(timeout),
        ],
        timeout + 30,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_results_flow_from_the_sample_camera(stack):
    start = time.monotonic()
    try:
        results = _watch(stack, count=10, timeout=180)
    except AssertionError:
        print(stack.logs())
        raise
    _timed("first 10 results of the sample camera", start)
    assert len(results) == 10, stack.logs()
    assert {r["camera"] for r in results} == {"demo"} and {r["model"] for r in results} == {"null"}
    assert all(r["width"] == 768 and r["height"] == 576 for r in results)


def _scripted_results(port: int, seconds: float) -> int:
    """Act as a worker that sees one person standing in the yard: results on the broker's results-in."""
    import cv2
    import numpy as np
    import zmq

    from anjeon.protocol import wire

    jpeg = cv2.imencode(".jpg", np.full((480, 640, 3), 90, np.uint8))[1].tobytes()
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.connect(f"tcp://127.0.0.1:{port + 2}")
    run, sent, deadline = wire.new_id(), 0, time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            frame = wire.FrameHeader(
                camera="yard",
                run=run,
                seq=sent,
                t_capture=time.time(),
                width=640,
                height=480,
                size=len(jpeg),
                edge="scripted",
            )
            body = wire.Result(
                frame=frame,
                worker="scripted",
                model="scripted",
                detections=[wire.Detection("person", 0.9, [280.0, 160.0, 360.0, 400.0])],
            ).to_wire()
            pub.send_multipart([wire.topic(wire.RESULT_PREFIX, "yard"), body])
            pub.send_multipart([wire.topic(wire.IMAGE_PREFIX, "yard"), body, jpeg])
            sent += 1
            time.sleep(0.2)
    finally:
        pub.close()
    return sent


def _stored_events(stack: Stack, camera: str) -> list[dict]:
    out = stack.podman(
        "exec",
        stack.container("safety"),
        "anjeon",
        "events",
        "--db",
        "/var/lib/anjeon/events.db",
        "--camera",
        camera,
        "--json",
        check=False,
    )
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def test_a_person_in_a_zone_becomes_a_stored_event(stack):
    start = time.monotonic()
    events: list[dict] = []
    # The safety service may still be starting (its imports took ~50 s on a loaded VM) and the first results
    # may go before the bus has its subscription: publish in rounds until one is stored, for a bounded time.
    deadline = time.monotonic() + 300
    while not events and time.monotonic() < deadline:
        _scripted_results(stack.broker_port, 8.0)
        events = _stored_events(stack, "yard")
    _timed("scripted person -> stored event", start)
    assert events, stack.logs()
    assert events[0]["rule"].startswith("intrusion") or events[0]["type"] == "intrusion"
    assert events[0]["zone"] == "all"


def _console(stack: Stack):
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    base = f"http://127.0.0.1:{stack.console_port}"
    return opener, base


def test_the_console_answers_behind_a_login_with_the_stored_event(stack):
    opener, base = _console(stack)

    def page(path: str) -> tuple[int, str]:
        try:
            with opener.open(base + path, timeout=10) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:
            return 0, ""

    wait_for(lambda: page("/api/me")[0] in (200, 401), 120, "the console to answer")
    assert page("/api/cameras")[0] == 401  # served to the network only with a login
    request = urllib.request.Request(
        base + "/api/login",
        data=json.dumps({"user": USER, "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with opener.open(request, timeout=30) as answer:
        assert json.loads(answer.read())["auth"] is True
    cameras = wait_for(
        lambda: [
            c
            for c in json.loads(page("/api/cameras")[1] or "[]")
            if c.get("camera") == "demo" or c.get("id") == "demo"
        ],
        60,
        "the sample camera in the console",
    )
    assert cameras
    if not _stored_events(stack, "yard"):
        _scripted_results(stack.broker_port, 8.0)
    events = wait_for(
        lambda: json.loads(page("/api/events?camera=yard")[1] or "[]"),
        60,
        "the stored event through the console's history",
    )
    assert events[0]["camera"] == "yard"


def test_every_container_reports_healthy(stack):
    """As the runtime judges it: unhealthy only after the image's 3 retries fail (a loaded 2-core VM can miss
    one check's timeout)."""
    for service in SERVICES:
        results = []
        for _ in range(3):
            results.append(
                stack.podman("healthcheck", "run", stack.container(service), check=False, timeout=180)
            )
            if results[-1].returncode == 0:
                break
        assert results[-1].returncode == 0, (
            f"{service}: {[r.stdout + r.stderr for r in results]}\n{stack.logs()}"
        )


def test_console_and_broker_listen_on_loopback_only(stack):
    ports = (
        stack.podman("port", stack.container("viewer")).stdout
        + stack.podman("port", stack.container("broker")).stdout
    )
    published = [line.split("->")[1].strip() for line in ports.splitlines() if "->" in line]
    assert published and all(p.startswith("127.0.0.1:") for p in published), ports


def test_down_stops_every_process_cleanly(stack):
    start = time.monotonic()
    stack.compose("stop", timeout=300)
    _timed("compose stop", start)
    for service in SERVICES:
        code = stack.podman(
            "inspect", stack.container(service), "--format", "{{.State.ExitCode}}"
        ).stdout.strip()
        # 0: it ran its own shutdown on SIGTERM; 137 would mean the runtime had to kill it.
        assert code == "0", f"{service} exited {code}\n{stack.logs()}"
