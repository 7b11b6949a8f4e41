"""Network cameras (RTSP, RTSPS, HTTP/MJPEG, ...) through OpenCV's FFmpeg backend.

Why OpenCV and not PyAV or an ``ffmpeg`` subprocess: it decoded a 1080p H.264
camera with the least CPU of the three on the 2-core machine and is already a
base dependency (docs/edge.md has the numbers and benchmarks/edge_decode.py
the script). Its one drawback is that FFmpeg demuxer options (transport,
low-delay flags) can only be passed through the process-wide environment
variable OPENCV_FFMPEG_CAPTURE_OPTIONS, which OpenCV reads when a capture is
opened; opens are therefore serialised under a lock so that each camera gets
its own options.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from anjeon.protocol.secrets import mask

from .rtsp_probe import diagnose
from .sources import SourceError

_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_open_lock = threading.Lock()


@dataclass(frozen=True)
class StreamOptions:
    transport: str = "tcp"  # tcp survives NAT, firewalls and packet loss; udp has less delay on a clean LAN
    open_timeout: float = 5.0  # seconds to connect and get the first frame
    read_timeout: float = 5.0  # seconds without data before a read gives up (the frozen-stream watchdog)

    def ffmpeg_options(self, scheme: str) -> str:
        # nobuffer + low_delay: hand each frame on as soon as it is decoded instead of filling a buffer first.
        options = ["fflags;nobuffer", "flags;low_delay"]
        if scheme in ("rtsp", "rtsps"):
            options.append(f"rtsp_transport;{self.transport}")
        return "|".join(options)


def quiet_native_logs() -> None:
    """Silence FFmpeg's and OpenCV's own stderr lines, which repeat on every retry.

    The capture thread logs each failure once, with a clearer reason (rtsp_probe).
    Operators who want FFmpeg's words back set OPENCV_FFMPEG_LOGLEVEL=32 and OPENCV_LOG_LEVEL=INFO.
    """
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET; read when FFmpeg is first used
    if "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


class NetworkSource:
    """A live stream: read as fast as it delivers; any failure is an outage for the capture thread to retry."""

    live = True
    fps = 0.0

    def __init__(self, url: str, options: StreamOptions) -> None:
        self.url, self.options = url, options
        self.scheme = url.split("://", 1)[0].lower()
        self._cap: cv2.VideoCapture | None = None

    def open(self) -> None:
        self.close()
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(self.options.open_timeout * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(self.options.read_timeout * 1000),
        ]
        try:
            with _open_lock:
                saved = os.environ.get(_OPTIONS_ENV)
                os.environ[_OPTIONS_ENV] = self.options.ffmpeg_options(self.scheme)
                try:
                    cap = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, params)
                finally:
                    if saved is None:
                        os.environ.pop(_OPTIONS_ENV, None)
                    else:
                        os.environ[_OPTIONS_ENV] = saved
        except Exception as exc:  # cv2.error texts may quote the URL: never let them out unmasked
            raise SourceError(f"cannot open {self.describe()}: {mask(str(exc))}") from None
        if not cap.isOpened():
            cap.release()
            raise SourceError(
                f"cannot open {self.describe()}: {diagnose(self.url, self.options.open_timeout)}"
            )
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self._cap = cap

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            return None
        try:
            ok, frame = self._cap.read()
        except Exception as exc:
            raise SourceError(f"reading {self.describe()} failed: {mask(str(exc))}") from None
        return frame if ok else None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def describe(self) -> str:
        return mask(self.url)
