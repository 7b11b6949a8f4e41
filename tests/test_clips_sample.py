"""Clips on the real pipeline: the sample video through a real edge, the broker, the default model on a CPU
worker and `anjeon safety`. Every intrusion event that ended gets a clip that is ready, H.264, and covers its
pre-roll to its post-roll (at whatever rate the worker delivered: the clip shows what the rules saw).
"""

from __future__ import annotations

import sqlite3
import time

import pytest
from conftest import SAMPLE, wait_for
from safety_fixtures import start_safety, stored_events, write_config

# POST longer than end_after (3 s) plus a result interval: frames up to the result that ended the event
# are already in the clip when the end is decided.
PRE, POST = 3.0, 6.0
MAX = 60.0  # people walk the looped sample for minutes: long events are capped (the cap is checked too)
RULES = """
zones:
  walkway: [[0.42, 0.32], [0.78, 0.32], [0.78, 0.66], [0.42, 0.66]]
rules:
  - {type: intrusion, zone: walkway, min_duration: 1.0, end_after: 3.0}
"""


def clips(db) -> dict[str, dict]:
    if not db.exists():
        return {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        rows = con.execute("SELECT event, state, path, start, end, frames, error FROM clips").fetchall()
    except sqlite3.OperationalError:
        return {}
    finally:
        con.close()
    return {r[0]: dict(zip(("event", "state", "path", "start", "end", "frames", "error"), r)) for r in rows}


@pytest.mark.model
@pytest.mark.slow  # make test-slow: a worker stall of ~10 s closes a clip early (quiet camera), so not in make test
@pytest.mark.timeout(900)  # the model loads slowly on a loaded 2-core machine (2 min seen)
def test_every_ended_event_on_the_sample_video_has_a_clip_from_pre_to_post_roll(system, tmp_path):
    import av

    assert SAMPLE.exists(), f"the sample video {SAMPLE} is missing (see README.md)"
    db = tmp_path / "events.db"
    config = write_config(tmp_path / "site.yaml", "walk", RULES, db)
    with open(config, "a") as f:
        f.write(f"  clips: {{pre: {PRE}, post: {POST}, max: {MAX}, fps: 5}}\n")
    system.broker()
    system.worker("w1", "person", "--device", "cpu")
    start_safety(system, "safety", config)
    time.sleep(1.0)
    system.edge("edge", f"walk={SAMPLE}", fps=5, extra=("--loop",))

    def finished() -> list[dict]:
        ended = [e for e in stored_events(db) if e["state"] == "ended"]
        if len(ended) < 2:
            return []
        done = clips(db)
        return (
            ended
            if len(ended) >= 2
            and all(done.get(e["id"], {}).get("state") not in (None, "recording") for e in ended[:2])
            else []
        )

    ended = wait_for(finished, 700, "two ended intrusions with finished clips")[:2]
    done = clips(db)
    for ev in ended:
        clip = done[ev["id"]]
        assert clip["state"] == "ready", clip
        assert clip["start"] == pytest.approx(ev["started"] - PRE, abs=1e-3)
        # The last frame of the clip is within a couple of results of the end of the post-roll, or of the
        # cap for a long event; "a couple" is measured: the clip's mean gap between frames (results arrive
        # slower on a busy CPU).
        until = min(ev["ended"] + POST, clip["start"] + MAX)
        gap = (clip["end"] - clip["start"]) / max(clip["frames"] - 1, 1)
        assert until - 2.5 - gap <= clip["end"] <= until + 0.01, (clip, ev, gap)
        with av.open(clip["path"]) as c:
            stream = c.streams.video[0]
            frames = list(c.decode(stream))
        assert stream.codec_context.name == "h264" and len(frames) == clip["frames"] >= 3
        span = float(frames[-1].time - frames[0].time)  # the stream's times are the capture times, shifted
        first = clip["end"] - span  # capture time of the clip's first frame: the pre-roll is there
        assert clip["start"] - 0.01 <= first <= clip["start"] + 2.5 + gap, (first, clip)
        print(f"event {ev['id']}: {ev['duration']:.1f} s, clip {len(frames)} frames over {span:.1f} s")
