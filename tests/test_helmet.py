"""The helmet model: converted in code (cached), run beside the person model, and the helmet rule end to end.

What the real model says on ultralytics' bundled images (2-core CPU, conf 0.25):
- bus.jpg: two bare heads ("Without Helmet", ~0.8), on the man in the middle
  and on the man at the left, whose box overlaps the half-visible person at
  the left edge; that head lies in the upper part of both of their boxes, so
  safety leaves it unmatched (one-to-one matching). One helmet event: the
  middle man.
- zidane.jpg: one bare head (~0.6), the man on the right; the other man's
  box spans the frame and contains it too, so it is ambiguous and raises
  nothing. (docs/safety.md, "Helmets")
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import ultralytics_asset, wait_for
from safety_fixtures import start_safety, stored_events, write_config

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def helmet_cache(tmp_path_factory) -> Path:
    """A fresh cache per run, so every run converts the shipped checkpoint from scratch once."""
    return tmp_path_factory.mktemp("anjeon-cache")


@pytest.fixture(scope="module")
def cache_env(helmet_cache) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ANJEON_CACHE", str(helmet_cache))  # the worker processes inherit it
        yield helmet_cache


@pytest.fixture(scope="module")
def person_and_helmet(cache_env):
    from anjeon.inference.models import load_detectors

    return load_detectors(["person", "helmet"], "cpu", 2)


def shipped_weights() -> Path:
    import importlib.util

    from anjeon.inference.models import BUILTIN

    builtin = BUILTIN["helmet"]
    package = importlib.util.find_spec(builtin.package)
    assert package is not None, f"{builtin.pip_name} is missing: run `make venv`"
    return Path(list(package.submodule_search_locations)[0]) / builtin.weights


def test_fused_qkv_computes_the_forks_qk_and_v_channels_per_head():
    import torch
    from ultralytics.nn.tasks import load_checkpoint

    from anjeon.inference.convert_helmet import convert_model, fuse_qk_v

    model, _ = load_checkpoint(str(shipped_weights()))
    blocks = [m for m in model.modules() if type(m).__name__ == "AAttn"]
    assert len(blocks) == 8 and all(hasattr(b, "qk") and not hasattr(b, "qkv") for b in blocks)
    attn = copy.deepcopy(blocks[0]).eval()
    x = torch.randn(1, attn.v.conv.in_channels, 6, 6)
    with torch.no_grad():
        qk, v = attn.qk(x), attn.v(x)
        fuse_qk_v(attn)
        qkv = attn.qkv(x)
    dim, hd = v.shape[1], attn.head_dim
    for h in range(attn.num_heads):
        q_h, k_h, v_h = (
            qkv[:, 3 * h * hd : (3 * h + 1) * hd],
            qkv[:, (3 * h + 1) * hd : (3 * h + 2) * hd],
            qkv[:, (3 * h + 2) * hd : (3 * h + 3) * hd],
        )
        torch.testing.assert_close(q_h, qk[:, h * hd : (h + 1) * hd], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(k_h, qk[:, dim + h * hd : dim + (h + 1) * hd], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(v_h, v[:, h * hd : (h + 1) * hd], atol=1e-5, rtol=1e-4)
    assert not hasattr(attn, "qk") and not hasattr(attn, "v")
    assert convert_model(model) == 8 and convert_model(model) == 0  # every block once, then nothing left


def test_helmet_model_converts_once_and_finds_heads_on_zidane(cache_env, caplog):
    from anjeon.inference.models import load_detector

    caplog.set_level(logging.INFO, logger="anjeon.worker")
    detector = load_detector("helmet", "cpu", 2)
    converted = list(cache_env.glob("helmet-*.pt"))
    assert len(converted) == 1 and "converted 8 attention blocks" in caplog.text
    (dets,) = detector.predict([cv2.imread(ultralytics_asset("zidane.jpg"))])
    heads = [d for d in dets if d.cls == "head"]
    assert heads and {d.label for d in heads} <= {"With Helmet", "Without Helmet"}, dets
    # Right man's head: the upper middle of the right half of the 1280x720 frame.
    x1, y1, x2, y2 = max(heads, key=lambda d: d.confidence).box
    assert 640 < (x1 + x2) / 2 < 1280 and (y1 + y2) / 2 < 360 and (x2 - x1) < 400, heads

    caplog.clear()
    mtime = converted[0].stat().st_mtime_ns
    load_detector("helmet", "cpu", 2)  # second load: from the cache, no conversion
    assert "converted" not in caplog.text and converted[0].stat().st_mtime_ns == mtime
    assert list(cache_env.glob("helmet-*.pt")) == converted and not list(cache_env.glob(".*tmp"))


def test_person_and_helmet_publish_together(person_and_helmet):
    assert person_and_helmet.name == "person+helmet"
    (dets,) = person_and_helmet.predict([cv2.imread(ultralytics_asset("bus.jpg"))])
    people = [d for d in dets if d.cls == "person"]
    heads = [d for d in dets if d.cls == "head"]
    assert len(people) >= 4 and {d.label for d in people} <= {"Normal", "Fall"}, dets
    assert len(heads) >= 1 and {d.label for d in heads} == {"Without Helmet"}, dets


def test_a_class_map_renames_a_models_labels(cache_env):
    from anjeon.inference.models import load_detector

    helmet = load_detector("helmet", "cpu", 2, {"Without Helmet": "bare_head"})
    (dets,) = helmet.predict([cv2.imread(ultralytics_asset("bus.jpg"))])
    assert dets and {(d.cls, d.label) for d in dets} == {("bare_head", "Without Helmet")}, dets


@pytest.mark.parametrize(
    "image, matched_people",
    [
        ("bus.jpg", 1),  # two bare heads; the left man's also lies in the edge person's box: unmatched
        ("zidane.jpg", 0),  # one bare head (right man), inside the other man's frame-wide box too: unmatched
    ],
)
def test_what_safety_matches_on_the_bundled_images(person_and_helmet, image, matched_people):
    from anjeon.safety.heads import match_heads

    (dets,) = person_and_helmet.predict([cv2.imread(ultralytics_asset(image))])
    people = np.array([d.box for d in dets if d.cls == "person"]).reshape(-1, 4)
    heads = [d for d in dets if d.cls == "head"]
    assert heads and all(d.label == "Without Helmet" for d in heads), dets
    assert len(match_heads(people, np.array([d.box for d in heads]))) == matched_people, dets


HELMET_RULES = """\
zones:
  site: [[0, 0], [1, 0], [1, 1], [0, 1]]
rules:
  - {type: helmet, zone: site, min_duration: 1.0, end_after: 5.0}
"""


def test_helmet_event_through_the_pipeline(system, cache_env, tmp_path):
    db = tmp_path / "events.db"
    config = write_config(tmp_path / "site.yaml", "bus", HELMET_RULES, db)
    system.broker()
    worker = system.worker("w1", "person", "--model", "helmet", "--device", "cpu")
    start_safety(system, "safety", config)
    sub = system.subscriber(b"res/")
    status = system.subscriber(b"status/")
    system.edge("edge", f"bus={ultralytics_asset('bus.jpg')}", fps=2)

    def helmet_events() -> list[dict]:
        assert worker.alive, worker.output()
        return [e for e in stored_events(db) if e["type"] == "helmet"]

    # Results carry both models' detections in one message.
    (result,) = sub.results(1, timeout=120)
    assert result["model"] == "person+helmet"
    classes = {(d["class"], d.get("label")) for d in result["detections"]}
    assert ("head", "Without Helmet") in classes and ("person", "Normal") in classes, result["detections"]
    # The tracker keeps an id across gaps of up to 2 s: a worker slower than that per frame
    # (a badly overloaded host) confirms no track and the wait below times out.
    try:
        wait_for(helmet_events, 120, "a helmet event on bus.jpg", interval=0.5)
    except AssertionError as exc:
        status.recv(3.0)
        raise AssertionError(f"{exc}; worker status: {status.status.get('workers')}") from None
    sub.results(4, timeout=60)  # a few more frames: the left man's head must stay unmatched
    (event,) = helmet_events()
    assert (
        event["camera"] == "bus" and event["peak"] == 1 and event["state"] == "open" and event["snapshot"]
    ), event
