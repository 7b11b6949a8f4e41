"""Where pictures come from: webcams, URLs (RTSP/HTTP), video files, stills, folders, a synthetic scene.

Every source has the same small interface (open, read, close), so the capture
thread does not care what is behind it. ``parse_source`` turns the text a user
wrote after ``--camera NAME=`` into a source.
"""

from __future__ import annotations

import glob
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np

from anjeon.protocol.secrets import mask

if TYPE_CHECKING:
    from .stream import StreamOptions

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
# One masking function for the whole project (protocol/secrets.py); mask_url is its old name here.
mask_url = mask


class SourceError(RuntimeError):
    """A source that cannot be opened or read; the message is safe to show (no passwords)."""


class Source(Protocol):
    live: bool  # a live source is read as fast as it delivers; others are paced
    fps: float  # native rate of a paced source

    def open(self) -> None: ...
    def read(self) -> np.ndarray | None: ...  # None: end of stream or lost
    def close(self) -> None: ...
    def describe(self) -> str: ...


class VideoSource:
    """OpenCV's VideoCapture: webcams and video files (network streams: stream.NetworkSource)."""

    def __init__(self, target: str | int, live: bool, loop: bool = False) -> None:
        self.target, self.live, self.loop = target, live, loop
        self.fps = 10.0
        self._cap: cv2.VideoCapture | None = None

    def open(self) -> None:
        self.close()
        try:
            cap = cv2.VideoCapture(self.target)
        except Exception as exc:  # cv2.error: keep it a SourceError so the capture thread retries
            raise SourceError(f"cannot open {self.describe()}: {mask(str(exc))}") from None
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open {self.describe()}")
        if self.live:
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        native = cap.get(cv2.CAP_PROP_FPS)
        self.fps = native if 0 < native <= 240 else 10.0
        self._cap = cap

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            return None
        ok, frame = self._cap.read()
        if not ok and self.loop and not self.live:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._cap.read()
        return frame if ok else None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def describe(self) -> str:
        return mask(str(self.target)) if isinstance(self.target, str) else f"webcam {self.target}"


class StillSource:
    """One image file shown over and over, or the images of a folder in name order."""

    live = False

    def __init__(self, paths: list[str], fps: float, loop: bool = True, label: str = "") -> None:
        self.paths, self.fps, self.loop, self._label = paths, fps, loop, label or (paths[0] if paths else "")
        self._images: list[np.ndarray] = []
        self._index = 0

    def open(self) -> None:
        if not self.paths:
            raise SourceError(f"no images in {self._label}")
        images: list[np.ndarray] = []
        if len(self.paths) == 1:  # one still image: read once, sent again at --fps
            image = cv2.imread(self.paths[0], cv2.IMREAD_COLOR)
            if image is None:
                raise SourceError(f"cannot read image {self._label}")
            images.append(image)
        self._images, self._index = images, 0

    def read(self) -> np.ndarray | None:
        if len(self.paths) == 1:
            return self._images[0]
        # A folder is read lazily, one file per frame, so large folders cost no memory.
        for _ in range(len(self.paths)):
            if self._index >= len(self.paths):
                if not self.loop:
                    return None
                self._index = 0
            image = cv2.imread(self.paths[self._index], cv2.IMREAD_COLOR)
            self._index += 1
            if image is not None:
                return image
        return None

    def close(self) -> None:
        self._images = []

    def describe(self) -> str:
        return self._label


def parse_source(spec: str, fps: float, loop: bool, options: StreamOptions | None = None) -> Source:
    """Turn ``--camera NAME=SPEC``'s SPEC into a source; raise SourceError with a clear sentence."""
    from .stream import NetworkSource, StreamOptions

    spec = spec.strip()
    if not spec:
        raise SourceError("empty camera source")
    if spec == "synthetic" or spec.startswith("synthetic:"):
        from anjeon.protocol.synthetic import SyntheticSource

        return SyntheticSource(fps=fps)
    if spec.isdigit():
        return VideoSource(int(spec), live=True)
    if re.match(r"^/dev/video\d+$", spec):
        return VideoSource(spec, live=True)
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", spec):
        scheme = spec.split("://", 1)[0].lower()
        if scheme not in ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "file"):
            raise SourceError(f"unsupported URL scheme '{scheme}' in {mask(spec)}")
        if scheme == "file":
            return VideoSource(spec, live=False, loop=loop)
        return NetworkSource(spec, options or StreamOptions())
    path = Path(spec).expanduser()
    if path.is_dir():
        files = sorted(
            p for p in glob.glob(os.path.join(path, "*")) if Path(p).suffix.lower() in IMAGE_SUFFIXES
        )
        return StillSource(files, fps=fps, loop=loop, label=f"folder {path}")
    if not path.exists():
        raise SourceError(
            f"{path} does not exist (expected a webcam index, /dev/videoN, a URL, a video or image "
            f"file, a folder of images, or 'synthetic')"
        )
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return StillSource([str(path)], fps=fps)
    return VideoSource(str(path), live=False, loop=loop)


@dataclass
class Pacer:
    """Real-time pacing for files and synthetic sources: frame n is due at start + n / fps."""

    fps: float
    start: float = 0.0
    n: int = 0

    def wait(self, stop_wait: Callable[[float], object]) -> None:
        if self.n == 0:
            self.start = time.monotonic()
        due = self.start + self.n / max(self.fps, 0.1)
        delay = due - time.monotonic()
        if delay > 0:
            stop_wait(delay)
        elif delay < -1.0:
            self.start, self.n = time.monotonic(), 0  # fell far behind (a pause): restart the clock
        self.n += 1
