"""Zones and lines in normalized image coordinates, and where a box stands.

Config geometry is normalized (0..1) so it survives resolution changes; boxes
arrive in pixels of the frame as sent, so every test scales the box to the
frame first. A person "is" where their feet are (bottom centre of the box):
a zone on the ground is entered by feet, not by a raised arm.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from anjeon.config.geometry import Point


def anchors(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bottom-centre of each pixel box (N x 4 xyxy), normalized: N x 2."""
    if len(boxes) == 0:
        return np.zeros((0, 2))
    x = (boxes[:, 0] + boxes[:, 2]) / 2.0 / max(width, 1)
    y = boxes[:, 3] / max(height, 1)
    return np.stack([x, y], axis=1)


@dataclass(frozen=True)
class Zone:
    """A named polygon; ``contains(points) -> mask`` is its one verb (ray casting, vectorized)."""

    name: str
    points: tuple[Point, ...]

    @functools.cached_property
    def _edges(self) -> tuple[np.ndarray, ...]:
        poly = np.asarray(self.points, float)
        x1, y1 = poly[:, 0], poly[:, 1]
        return x1, y1, np.roll(x1, -1), np.roll(y1, -1)  # computed once: the rules test every result

    def contains(self, pts: np.ndarray) -> np.ndarray:
        if len(pts) == 0:
            return np.zeros(0, bool)
        x, y = pts[:, 0:1], pts[:, 1:2]  # N x 1 against the M edges
        x1, y1, x2, y2 = self._edges
        straddles = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        hits = straddles & (x < x_at)
        odd: np.ndarray = hits.sum(axis=1) % 2 == 1  # an odd number of edges to the right: inside
        return odd

    def pixels(self, width: int, height: int) -> np.ndarray:
        return np.array([[round(x * width), round(y * height)] for x, y in self.points], np.int32)


@dataclass(frozen=True)
class Line:
    """A directed segment; ``side(points)`` is +1 right of it (looking from a to b), -1 left, 0 on it.

    Image y grows downwards, so "right" is computed in that frame: for a line
    from (0, .5) to (1, .5), the lower half of the picture is on the right.
    """

    name: str
    a: Point
    b: Point
    restricted: str = "right"

    def side(self, pts: np.ndarray) -> np.ndarray:
        if len(pts) == 0:
            return np.zeros(0, int)
        (ax, ay), (bx, by) = self.a, self.b
        cross = (bx - ax) * (pts[:, 1] - ay) - (by - ay) * (pts[:, 0] - ax)
        sides: np.ndarray = np.sign(cross).astype(int)  # > 0: right in image coordinates (y down)
        return sides

    def within_span(self, pts: np.ndarray) -> np.ndarray:
        """Whether each point projects onto the segment (a crossing beyond its ends is no crossing)."""
        a, b = np.asarray(self.a), np.asarray(self.b)
        d = b - a
        t = ((pts - a) @ d) / float(d @ d)
        on_segment: np.ndarray = (t >= 0.0) & (t <= 1.0)
        return on_segment

    @property
    def restricted_sign(self) -> int:
        return 1 if self.restricted == "right" else -1

    def pixels(self, width: int, height: int) -> tuple[tuple[int, int], tuple[int, int]]:
        return (
            (round(self.a[0] * width), round(self.a[1] * height)),
            (round(self.b[0] * width), round(self.b[1] * height)),
        )
