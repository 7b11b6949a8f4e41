"""Rule evaluation cost per result at N tracked people, on one camera with every rule type.

Run: .venv/bin/python benchmarks/safety_rules.py [--people 50] [--results 2000]
Prints µs per result for the rules alone (ids given) and with ByteTrack tracking.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from anjeon.config.safety import CameraRules, LineSpec, RuleSpec
from anjeon.safety.engine import CameraEngine
from anjeon.safety.observation import Observation

W, H = 1280, 720
ZONE = ((0.1, 0.2), (0.7, 0.2), (0.8, 0.9), (0.1, 0.9))


def rules() -> CameraRules:
    specs = (
        RuleSpec("intrusion", name="i", zone="z", min_duration=1),
        RuleSpec("dwell", name="d", zone="z", min_duration=30),
        RuleSpec("crowding", name="c", zone="z", max_people=20),
        RuleSpec("helmet", name="h", zone="z"),
        RuleSpec("fall", name="f"),
        RuleSpec("line_crossing", name="x", line="l"),
    )
    return CameraRules(zones={"z": ZONE}, lines={"l": LineSpec(((0.5, 0.0), (0.5, 1.0)))}, rules=specs)


def stream(people: int, results: int, rng: np.random.Generator) -> list[Observation]:
    pos = rng.uniform([0, 0.2], [1, 1], (people, 2))
    vel = rng.normal(0, 0.005, (people, 2))
    out = []
    for k in range(results):
        pos = np.clip(pos + vel, 0.01, 0.99)
        boxes = np.stack([pos[:, 0] * W - 20, pos[:, 1] * H - 100, pos[:, 0] * W + 20, pos[:, 1] * H], 1)
        heads = np.stack([boxes[:, 0] + 10, boxes[:, 1], boxes[:, 2] - 10, boxes[:, 1] + 20], 1)
        out.append(
            Observation(
                "cam",
                "r",
                k,
                k / 10,
                W,
                H,
                boxes=boxes,
                labels=("Normal",) * people,
                confidence=np.full(people, 0.8),
                ids=np.arange(people),
                heads=heads,
                head_labels=("With Helmet",) * people,
            )
        )
    return out


def measure(engine: CameraEngine, observations: list[Observation]) -> float:
    for o in observations[:50]:  # warm up
        engine.process(o)
    start = time.perf_counter()
    for o in observations[50:]:
        engine.process(o)
    return (time.perf_counter() - start) / (len(observations) - 50) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--people", type=int, default=50)
    ap.add_argument("--results", type=int, default=2000)
    args = ap.parse_args()
    obs = stream(args.people, args.results, np.random.default_rng(0))
    rules_only = measure(CameraEngine("cam", rules()), obs)
    from anjeon.safety.tracker import PersonTracker

    untracked = [
        Observation(
            o.camera,
            o.run,
            o.seq,
            o.t,
            W,
            H,
            boxes=o.boxes,
            labels=o.labels,
            confidence=o.confidence,
            heads=o.heads,
            head_labels=o.head_labels,
        )
        for o in obs
    ]
    with_tracker = measure(CameraEngine("cam", rules(), PersonTracker().update), untracked)
    print(
        f"{args.people} people, 6 rules: rules {rules_only:.0f} µs/result; with ByteTrack {with_tracker:.0f} µs/result"
    )


if __name__ == "__main__":
    main()
