"""Synthetic camera frames: real people moving across a plain yard, needing nothing on disk.

Used by the edge's ``synthetic`` source and by the load test's cameras (so
both offer the same pictures). The people are ultralytics' bundled ``bus.jpg`` and ``zidane.jpg`` (present
wherever the worker stack is installed), scaled and slid across a 1280x720
canvas, so a real detector finds real people in it. Without them the scene is
moving boxes, and the edge says that nothing in it will be detected.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger("anjeon.edge")

WIDTH, HEIGHT = 1280, 720


def ultralytics_asset(name: str) -> Path | None:
    """Path of an image bundled in the ultralytics wheel, without importing ultralytics."""
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "assets" / name
    return path if path.exists() else None


class SyntheticSource:
    live = False

    def __init__(self, fps: float = 10.0) -> None:
        self.fps = fps
        self._sprites: list[np.ndarray] = []
        self._background: np.ndarray = np.zeros((HEIGHT, WIDTH, 3), np.uint8)  # BGR, height x width x 3
        self._t = 0

    def open(self) -> None:
        # A sandy yard under a grey sky, so JPEG sizes and decode costs are realistic.
        self._background[:] = (150, 170, 180)
        self._background[HEIGHT // 3 :] = (90, 130, 160)
        noise = np.random.default_rng(0).integers(0, 24, (HEIGHT, WIDTH, 1), dtype=np.uint8)
        self._background = cv2.add(self._background, np.repeat(noise, 3, axis=2))
        self._sprites = []
        for name, height in (("bus.jpg", 540), ("zidane.jpg", 300)):
            path = ultralytics_asset(name)
            image = cv2.imread(str(path)) if path else None
            if image is not None:
                scale = height / image.shape[0]
                self._sprites.append(
                    cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                )
        if not self._sprites:
            log.warning(
                "synthetic scene: ultralytics' sample images are not installed, so the scene shows "
                "moving boxes only and no people will be detected"
            )
            self._sprites = [np.full((200, 80, 3), c, np.uint8) for c in ((40, 40, 200), (200, 60, 40))]
        self._t = 0

    def read(self) -> np.ndarray:
        frame: np.ndarray = self._background.copy()
        for i, sprite in enumerate(self._sprites):
            h, w = sprite.shape[:2]
            span = max(1, WIDTH - w)
            # Each sprite walks back and forth at its own speed.
            pos = (self._t * (6 + 5 * i) + i * span // 2) % (2 * span)
            x = pos if pos < span else 2 * span - pos
            y = HEIGHT - h - 20 * i
            frame[y : y + h, x : x + w] = sprite
        self._t += 1
        return frame

    def close(self) -> None:
        self._sprites = []

    def describe(self) -> str:
        return "synthetic scene"
