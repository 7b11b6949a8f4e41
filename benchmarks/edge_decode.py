"""Glass-to-publish delay and CPU of the edge per 1080p RTSP camera, for each decode path.

    .venv/bin/python benchmarks/edge_decode.py [--seconds 15] [--paths opencv,pyav,ffmpeg]

Needs Debian's GStreamer RTSP server packages (deploy/test-packages.txt) and the
``ffmpeg`` binary (to make the clip, and as the third decode path); PyAV
(``pip install av``) for the second. Not a test: it prints numbers.

How: a 1080p H.264 clip at 25 fps is made once, each frame carrying its number
as a row of black and white squares. tests/rtsp_server.py serves it live and
writes the wall time at which each frame entered its RTP payloader ("glass",
minus the camera's own encoder). Each path runs the edge's real shape: a
capture thread that keeps only the newest decoded frame, and a sender that
at --fps takes it, JPEG-encodes it at full size and sends it on a ZeroMQ PUSH
socket. Delay = send time - the server's time for the frame number read from
the pixels; CPU = the process's (and, for the ffmpeg path, its child's) CPU
time over the run.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import zmq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from rtsp_helpers import RtspServer  # noqa: E402

from anjeon.config.camera import CameraConfig  # noqa: E402
from anjeon.edge.capture import Capture, stream_options  # noqa: E402
from anjeon.edge.service import encode  # noqa: E402
from anjeon.edge.sources import parse_source  # noqa: E402

W, H, FPS, BITS, CELL = 1920, 1080, 25, 12, 48
SAMPLE = ROOT.parent / "shared" / "samples" / "vtest.avi"


def make_clip(path: Path, seconds: int) -> Path:
    """1080p25 H.264 (as a camera sends it) with each frame's number drawn in the top-left corner."""
    source = cv2.VideoCapture(str(SAMPLE)) if SAMPLE.exists() else None
    enc = subprocess.Popen(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "bgr24",
            "-s",
            f"{W}x{H}",
            "-r",
            str(FPS),
            "-i",
            "-",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
            "-g",
            str(2 * FPS),
            "-pix_fmt",
            "yuv420p",
            str(path),
        ],
        stdin=subprocess.PIPE,
    )
    for n in range(seconds * FPS):
        ok, image = source.read() if source else (False, None)
        if not ok:
            image = np.full((576, 768, 3), (n * 3) % 255, np.uint8)
        frame = cv2.resize(image, (W, H))
        for bit in range(BITS):
            frame[:CELL, bit * CELL : (bit + 1) * CELL] = 255 if n >> bit & 1 else 0
        enc.stdin.write(frame.tobytes())
    enc.stdin.close()
    enc.wait()
    return path


def frame_number(image: np.ndarray) -> int:
    cells = image[CELL // 4 : 3 * CELL // 4]
    return sum(
        1 << bit
        for bit in range(BITS)
        if cells[:, bit * CELL + CELL // 4 : bit * CELL + 3 * CELL // 4].mean() > 128
    )


class PyAVSource:
    """PyAV: per-camera FFmpeg options passed directly (no environment variable)."""

    live, fps = True, 0.0

    def __init__(self, url: str) -> None:
        self.url, self._it, self._container = url, None, None

    def open(self) -> None:
        import av

        self._container = av.open(
            self.url,
            options={"rtsp_transport": "tcp", "fflags": "nobuffer", "flags": "low_delay"},
            timeout=(5, 5),
        )
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        self._it = self._container.decode(stream)

    def read(self):
        frame = next(self._it, None)
        return None if frame is None else frame.to_ndarray(format="bgr24")

    def close(self) -> None:
        if self._container is not None:
            self._container.close()

    def describe(self) -> str:
        return self.url


class FFmpegPipeSource:
    """An ffmpeg child process decoding to raw BGR on a pipe (the seed's approach)."""

    live, fps = True, 0.0

    def __init__(self, url: str) -> None:
        self.url, self.proc = url, None

    def open(self) -> None:
        self.proc = subprocess.Popen(
            [
                "ffmpeg",
                "-v",
                "error",
                "-rtsp_transport",
                "tcp",
                "-fflags",
                "nobuffer",
                "-flags",
                "low_delay",
                "-i",
                self.url,
                "-f",
                "rawvideo",
                "-pix_fmt",
                "bgr24",
                "-",
            ],
            stdout=subprocess.PIPE,
            bufsize=0,
        )

    def read(self):
        size = W * H * 3
        data = bytearray()
        while len(data) < size:
            chunk = self.proc.stdout.read(size - len(data))
            if not chunk:
                return None
            data += chunk
        return np.frombuffer(bytes(data), np.uint8).reshape(H, W, 3)

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()

    def describe(self) -> str:
        return self.url


def openers(url: str) -> dict[str, Callable]:
    config = CameraConfig("bench", url)
    return {
        "opencv": lambda: parse_source(url, 25, False, stream_options(config)),
        "pyav": lambda: PyAVSource(url),
        "ffmpeg": lambda: FFmpegPipeSource(url),
    }


def cpu_seconds(children: list[int]) -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    total = own.ru_utime + own.ru_stime
    for pid in children:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            pass
    return total


def stamps(path: Path) -> dict[int, float]:
    out = {}
    for line in path.read_text().splitlines():
        n, t = line.split()
        out[int(n) % (1 << BITS)] = float(t)
    return out


def run_path(name: str, clip: Path, tmp: Path, seconds: float, fps: float, width: int) -> dict:
    stamp_file = tmp / f"stamps-{name}.txt"
    server = RtspServer(tmp, clip, name=f"rtsp-{name}", extra=("--stamps", str(stamp_file))).start()
    url = server.url()
    opener = openers(url)[name]
    children: list[int] = []

    def tracked():
        source = opener()
        original = source.open

        def open_and_track():
            original()
            if isinstance(source, FFmpegPipeSource):
                children.append(source.proc.pid)

        source.open = open_and_track
        return source

    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    push = ctx.socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{port}")
    done = threading.Event()

    def drain() -> None:  # the broker's side of the socket: take everything
        while not done.is_set():
            if pull.poll(100):
                pull.recv_multipart()

    drainer = threading.Thread(target=drain, daemon=True)
    drainer.start()
    capture = Capture(CameraConfig("bench", url, fps=fps, width=width), opener=tracked).start()
    try:
        deadline = time.monotonic() + 30
        while capture.latest() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(3.0)  # past the burst of frames buffered while the stream opened
        cpu0, wall0, captured0 = cpu_seconds(children), time.monotonic(), capture.captured
        delays, edge_delays, last = [], [], 0
        while time.monotonic() - wall0 < seconds:
            frame = capture.latest()
            if frame is not None and frame.number != last:
                last = frame.number
                number = frame_number(frame.image)
                jpeg, _, _ = encode(frame.image, capture.config)
                push.send_multipart([b"h", jpeg])
                sent = time.time()
                glass = stamps(stamp_file).get(number)
                if glass is not None:
                    delays.append((sent - glass) * 1000)
                edge_delays.append((sent - frame.t_capture) * 1000)
            time.sleep(1.0 / fps)
        wall = time.monotonic() - wall0
        cpu = cpu_seconds(children) - cpu0
        captured = capture.captured - captured0
    finally:
        capture.stop()
        server.kill()
        done.set()
        drainer.join(2)
        ctx.destroy(linger=0)
    return {
        "path": name,
        "capture_fps": captured / wall,
        "cpu_pct": 100 * cpu / wall,
        "glass_p50": statistics.median(delays) if delays else float("nan"),
        "glass_p95": sorted(delays)[int(0.95 * len(delays))] if delays else float("nan"),
        "edge_p50": statistics.median(edge_delays),
        "samples": len(delays),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="measuring time per path")
    parser.add_argument("--paths", default="opencv,pyav,ffmpeg")
    parser.add_argument("--fps", type=float, default=10.0, help="the edge's send rate cap")
    parser.add_argument("--width", type=int, default=0, help="resize before JPEG (0: send 1080p)")
    parser.add_argument("--work", type=Path, default=ROOT / ".cache" / "bench-edge")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    clip = args.work / "clip1080.mp4"
    if not clip.exists():
        make_clip(clip, int(args.seconds) + 15)
    print(
        f"1080p{FPS} H.264 over RTSP/TCP on loopback, edge sends {args.fps:g} fps "
        f"{'at ' + str(args.width) + ' px wide' if args.width else 'at 1920x1080'}, JPEG q80"
    )
    print(
        f"{'path':<8}{'capture fps':>12}{'CPU %':>8}{'glass→publish p50 ms':>22}{'p95 ms':>8}"
        f"{'capture→publish p50 ms':>24}"
    )
    for name in args.paths.split(","):
        r = run_path(name, clip, args.work, args.seconds, args.fps, args.width)
        print(
            f"{r['path']:<8}{r['capture_fps']:>12.1f}{r['cpu_pct']:>8.0f}{r['glass_p50']:>22.0f}"
            f"{r['glass_p95']:>8.0f}{r['edge_p50']:>24.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
