"""Fixtures for tests that run anjeon as real processes on loopback.

Every process is started with `python -m anjeon`, logs to a file under the
test's tmp dir (printed on failure), and is killed at teardown. Every wait is
bounded in time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import msgpack
import pytest
import zmq

from anjeon.protocol.endpoints import free_base_port  # noqa: F401  (used by tests via conftest)

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "samples" / "vtest.avi"

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", str(ROOT / ".cache" / "ultralytics"))


def ultralytics_asset(name: str) -> str:
    import importlib.util

    spec = importlib.util.find_spec("ultralytics")
    return str(Path(list(spec.submodule_search_locations)[0]) / "assets" / name)


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Process:
    def __init__(self, name: str, args: list[str], log_dir: Path) -> None:
        self.name, self.args = name, args
        self.log = log_dir / f"{name}.log"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._log_file = open(self.log, "wb")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "anjeon", *args],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=ROOT,
        )

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        if self.alive:
            self.popen.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int:
        self.signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait()

    def kill(self) -> None:
        if self.alive:
            self.popen.kill()
            self.popen.wait()

    def close(self) -> None:
        self.kill()
        self._log_file.close()


class System:
    """Starts anjeon processes against one broker address and cleans them up."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.base = free_base_port()
        self.broker_url = f"tcp://127.0.0.1:{self.base}"
        self.procs: list[Process] = []
        self.ctx = zmq.Context()

    def start(self, name: str, *args: str) -> Process:
        proc = Process(name, list(args), self.tmp)
        self.procs.append(proc)
        return proc

    def broker(self, *extra: str) -> Process:
        return self.start(
            f"broker-{len(self.procs)}",
            "broker",
            "--bind",
            "127.0.0.1",
            "--base-port",
            str(self.base),
            *extra,
        )

    def worker(self, name: str, model: str = "null", *extra: str) -> Process:
        return self.start(
            name, "worker", "--broker", self.broker_url, "--model", model, "--name", name, *extra
        )

    def edge(self, name: str, *cameras: str, fps: float = 10, extra: tuple[str, ...] = ()) -> Process:
        cams = [a for cam in cameras for a in ("--camera", cam)]
        return self.start(
            name, "edge", "--broker", self.broker_url, "--name", name, "--fps", str(fps), *cams, *extra
        )

    def subscriber(self, *topics: bytes) -> Subscriber:
        return Subscriber(self.ctx, self.base + 3, topics)

    def socket(self, kind: int, offset: int) -> zmq.Socket:
        sock = self.ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(f"tcp://127.0.0.1:{self.base + offset}")
        return sock

    def logs(self) -> str:
        return "\n".join(f"----- {p.name} -----\n{p.output()[-4000:]}" for p in self.procs)

    def close(self) -> None:
        for p in reversed(self.procs):
            p.close()
        self.ctx.destroy(linger=0)


class Subscriber:
    """A test-side SUB on results-out that decodes what arrives."""

    def __init__(self, ctx: zmq.Context, port: int, topics: tuple[bytes, ...]) -> None:
        self.sock = ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(f"tcp://127.0.0.1:{port}")
        for t in topics or (b"res/", b"status/"):
            self.sock.setsockopt(zmq.SUBSCRIBE, t)
        self.status: dict = {}

    def recv(self, timeout: float) -> list[bytes] | None:
        if self.sock.poll(timeout * 1000):
            frames = self.sock.recv_multipart()
            if frames[0] == b"status/":
                self.status = msgpack.unpackb(frames[1])
            return frames
        return None

    def results(self, n: int, timeout: float, where: Callable[[dict], bool] = lambda r: True) -> list[dict]:
        """The next n results (decoded headers) that satisfy ``where``."""
        out: list[dict] = []
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            frames = self.recv(max(0.01, deadline - time.monotonic()))
            if frames and frames[0].startswith(b"res/"):
                try:
                    result = msgpack.unpackb(frames[1])
                    result["camera"]
                except Exception:  # garbage injected by the bad-input tests
                    continue
                result["_received"] = time.time()
                if where(result):
                    out.append(result)
        if len(out) < n:
            raise AssertionError(f"got {len(out)} of {n} results within {timeout:.0f} s")
        return out

    def status_where(self, predicate: Callable[[dict], object], timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.status:
                value = predicate(self.status)
                if value:
                    return value
            self.recv(max(0.01, min(0.5, deadline - time.monotonic())))
        raise AssertionError(
            f"timed out after {timeout:.0f} s waiting for status: {what}; last: {self.status}"
        )


@pytest.fixture
def system(tmp_path, request):
    sys_ = System(tmp_path)
    yield sys_
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        print(sys_.logs())
    sys_.close()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


@pytest.fixture(scope="session")
def bus_jpg() -> str:
    return ultralytics_asset("bus.jpg")


@pytest.fixture(scope="session")
def scene_source() -> str:
    """The shared sample video when it is there, else the synthetic scene (people from bundled images)."""
    return str(SAMPLE) if SAMPLE.exists() else "synthetic"


def worker_procs(status: dict) -> dict[str, dict]:
    return {w["name"]: w for w in status.get("workers", {}).values()}
