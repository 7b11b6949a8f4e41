"""One result of one camera as the rules see it: tracked people and (optionally) heads.

Built from a wire Result (``from_result``) and then given track ids by the
tracker; unit tests build them directly. Columns are numpy arrays in the
supervision style: one row per person.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from anjeon.protocol.wire import Result

PERSON = "person"
HEAD = "head"  # class of the helmet model's head boxes (labels "With Helmet" / "Without Helmet")
NO_HELMET_LABELS = frozenset({"Without Helmet", "no_helmet", "head"})  # a bare head, by model label


@dataclass(frozen=True)
class Observation:
    camera: str
    run: str
    seq: int
    t: float  # capture time (the edge's clock: one clock per camera, so durations are consistent)
    width: int
    height: int
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))  # people, pixels xyxy
    labels: tuple[str, ...] = ()  # the model's label per person ("Normal", "Fall", "person")
    confidence: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, int))  # track id, -1: not confirmed yet
    heads: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    head_labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.boxes)
        if not (len(self.labels) == len(self.confidence) == n and len(self.heads) == len(self.head_labels)):
            raise ValueError("observation columns differ in length")
        if len(self.ids) != n:  # untracked yet: every row unconfirmed
            object.__setattr__(self, "ids", np.full(n, -1, int))

    @classmethod
    def from_result(cls, result: Result) -> Observation:
        f = result.frame
        people = [d for d in result.detections if d.cls == PERSON]
        heads = [d for d in result.detections if d.cls == HEAD]
        return cls(
            camera=f.camera,
            run=f.run,
            seq=f.seq,
            t=f.t_capture,
            width=f.width,
            height=f.height,
            boxes=np.array([d.box for d in people], float).reshape(-1, 4),
            labels=tuple(d.label or d.cls for d in people),
            confidence=np.array([d.confidence for d in people], float),
            heads=np.array([d.box for d in heads], float).reshape(-1, 4),
            head_labels=tuple(d.label or d.cls for d in heads),
        )

    def with_tracks(
        self, boxes: np.ndarray, labels: tuple[str, ...], confidence: np.ndarray, ids: np.ndarray
    ) -> Observation:
        return replace(self, boxes=boxes, labels=labels, confidence=confidence, ids=ids)

    @property
    def confirmed(self) -> np.ndarray:
        return self.ids >= 0
