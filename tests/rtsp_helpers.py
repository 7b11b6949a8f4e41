"""A real RTSP server process for the tests (tests/rtsp_server.py under the system python3).

The server comes from Debian's packages (deploy/test-packages.txt, installed by
scripts/test-deps.sh). When it cannot start, tests FAIL with the reason: a
missing server must never look like a passing suite.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
SERVER = HERE / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"
READY_TIMEOUT = 30.0  # GStreamer's first start scans its plugins: slow on a loaded 2-core machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_clip(path: Path, frames: int = 100, fps: int = 10) -> Path:
    """A short clip of moving shapes, for machines without ../shared/samples/vtest.avi (media is never committed)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 480))
    for i in range(frames):
        image = np.full((480, 640, 3), 90, np.uint8)
        cv2.rectangle(image, (10 + 5 * i % 500, 100), (110 + 5 * i % 500, 300), (30, 160, 220), -1)
        writer.write(image)
    writer.release()
    return path


class RtspServer:
    """One GStreamer RTSP server on 127.0.0.1; can be killed, restarted on the same port, frozen and thawed."""

    def __init__(
        self,
        log_dir: Path,
        video: Path,
        user: str = "",
        password: str = "",
        name: str = "rtsp",
        extra: tuple[str, ...] = (),
    ) -> None:
        self.video, self.user, self.password, self.extra = video, user, password, extra
        self.port = free_port()
        self.log = log_dir / f"{name}.log"
        self.popen: subprocess.Popen | None = None

    def url(self, user: str | None = None, password: str | None = None, path: str = "/cam") -> str:
        user = self.user if user is None else user
        password = self.password if password is None else password
        auth = f"{user}:{password}@" if user else ""
        return f"rtsp://{auth}127.0.0.1:{self.port}{path}"

    def start(self) -> RtspServer:
        # An .mp4 is taken to hold H.264 already and is served without re-encoding (benchmarks).
        flag = "--h264" if self.video.suffix == ".mp4" else "--video"
        args = [SYSTEM_PYTHON, str(SERVER), "--port", str(self.port), flag, str(self.video), *self.extra]
        if self.user:
            args += ["--user", self.user, "--password", self.password]
        before = self.output().count("ready rtsp://")  # the log is appended to across restarts
        with open(self.log, "ab") as log:
            self.popen = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.output().count("ready rtsp://") > before:
                return self
            if self.popen.poll() is not None:
                break
            time.sleep(0.1)
        output = self.log.read_text(errors="replace")[-3000:]
        self.kill()
        raise AssertionError(
            f"the RTSP server did not start (are the packages of deploy/test-packages.txt "
            f"installed? run scripts/test-deps.sh):\n{output}"
        )

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGCONT)  # a frozen server must be able to die
            self.popen.kill()
            self.popen.wait(10)

    def freeze(self) -> None:
        """Stop the process: connections stay open and nothing flows, like a hung camera."""
        assert self.popen is not None
        self.popen.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.popen is not None
        self.popen.send_signal(signal.SIGCONT)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
