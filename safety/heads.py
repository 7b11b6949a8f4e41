"""Matching head boxes (helmet model) to person boxes, one to one, by position.

IoU fails when workers stand close: a head box is tiny next to a person box
and overlaps its neighbours' boxes too. A head belongs to a person when its
centre lies in the upper part of that person's box, and of exactly one
person's box; an ambiguous head (two people's upper parts) is left unmatched
rather than blamed on the wrong worker.
"""

from __future__ import annotations

import numpy as np

UPPER_FRACTION = 0.4  # heads sit in the top ~40% of a standing person's box (bent workers included)
SIDE_MARGIN = 0.1  # of the box width: head boxes of people seen from the side poke out a little


def upper_region_mask(people: np.ndarray, points: np.ndarray) -> np.ndarray:
    """M x N: whether point j lies in the upper part of person box i."""
    if len(people) == 0 or len(points) == 0:
        return np.zeros((len(people), len(points)), bool)
    x1, y1, x2, y2 = (people[:, k : k + 1] for k in range(4))
    margin = (x2 - x1) * SIDE_MARGIN
    px, py = points[:, 0][None, :], points[:, 1][None, :]
    inside: np.ndarray = (
        (px >= x1 - margin)
        & (px <= x2 + margin)
        & (py >= y1 - (y2 - y1) * 0.05)
        & (py <= y1 + (y2 - y1) * UPPER_FRACTION)
    )
    return inside


def match_heads(people: np.ndarray, heads: np.ndarray) -> dict[int, int]:
    """Person index -> head index. Each head goes to at most one person and each person gets at most one head."""
    if len(people) == 0 or len(heads) == 0:
        return {}
    centres = np.stack([(heads[:, 0] + heads[:, 2]) / 2, (heads[:, 1] + heads[:, 3]) / 2], axis=1)
    inside = upper_region_mask(people, centres)
    matches: dict[int, int] = {}
    distance: dict[int, float] = {}
    for j in np.flatnonzero(inside.sum(axis=0) == 1):  # heads in exactly one person's upper part
        i = int(np.flatnonzero(inside[:, j])[0])
        top_centre = ((people[i, 0] + people[i, 2]) / 2, people[i, 1])
        d = float(np.hypot(centres[j, 0] - top_centre[0], centres[j, 1] - top_centre[1]))
        if i not in matches or d < distance[i]:  # two heads in one box: the one nearest its top wins
            matches[i], distance[i] = int(j), d
    return matches
