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
import pytest

from conftest import ultralytics_asset, wait_for
from safety_fixtures import start_safety, stored_events

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def helmet_cache(tmp_path_factory) -> Path:
    """A fresh cache per run, so every run converts the shipped checkpoint from scratch once."""
    return tmp_path_factory.mktemp("anjeon-cache")


@pytest.fixture
def cache_env(helmet_cache, monkeypatch) -> Path:
    monkeypatch.setenv("ANJEON_CACHE", str(helmet_cache))  # the worker processes inherit it
    return helmet_cache


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
        q_h, k_h, v_h = qkv[:, 3 * h * hd:(3 * h + 1) * hd], qkv[:, (3 * h + 1) * hd:(3 * h + 2) * hd], \
            qkv[:, (3 * h + 2) * hd:(3 * h + 3) * hd]
        torch.testing.assert_close(q_h, qk[:, h * hd:(h + 1) * hd], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(k_h, qk[:, dim + h * hd:dim + (h + 1) * hd], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(v_h, v[:, h * hd:(h + 1) * hd], atol=1e-5, rtol=1e-4)
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


def test_person_and_helmet_together_with_a_class_map(cache_env):
    from anjeon.inference.models import load_detectors

    multi = load_detectors(["person", "helmet"], "cpu", 2, {"Without Helmet": "bare_head"})
    assert multi.name == "person+helmet"
    (dets,) = multi.predict([cv2.imread(ultralytics_asset("bus.jpg"))])
    by_cls = {}
    for d in dets:
        by_cls.setdefault(d.cls, []).append(d)
    assert len(by_cls["person"]) >= 4 and {d.label for d in by_cls["person"]} <= {"Normal", "Fall"}
    assert len(by_cls["bare_head"]) >= 1 and {d.label for d in by_cls["bare_head"]} == {"Without Helmet"}, dets


HELMET_RULES = """\
zones:
  site: [[0, 0], [1, 0], [1, 1], [0, 1]]
rules:
  - {type: helmet, zone: site, min_duration: 1.0, end_after: 5.0}
"""


def test_helmet_event_through_the_pipeline(system, cache_env, tmp_path):
    db = tmp_path / "events.db"
    config = tmp_path / "site.yaml"
    rules = "".join("      " + line for line in HELMET_RULES.splitlines(keepends=True))
    body = "".join(f"    {cam}:\n{rules}" for cam in ("bus", "zidane"))
    config.write_text(f"safety:\n  store: {db}\n  cameras:\n{body}", encoding="utf-8")
    system.broker()
    worker = system.worker("w1", "person", "--model", "helmet", "--device", "cpu")
    start_safety(system, "safety", config)
    sub = system.subscriber(b"res/")
    system.edge("edge", f"bus={ultralytics_asset('bus.jpg')}", f"zidane={ultralytics_asset('zidane.jpg')}",
                fps=2)

    def helmet_events() -> list[dict]:
        assert worker.alive, worker.output()
        return [e for e in stored_events(db) if e["type"] == "helmet"]

    events = wait_for(helmet_events, 150, "a helmet event on bus.jpg", interval=0.5)
    # Results carry both models' detections in one message.
    results = sub.results(6, timeout=60)
    assert {r["model"] for r in results} == {"person+helmet"}
    bus = next(r for r in results if r["camera"] == "bus")
    classes = {(d["class"], d.get("label")) for d in bus["detections"]}
    assert ("head", "Without Helmet") in classes and ("person", "Normal") in classes, bus["detections"]
    # Let zidane.jpg go through the rule for a while: its one bare head is ambiguous and raises nothing.
    sub.results(8, timeout=90, where=lambda r: r["camera"] == "zidane")
    events = helmet_events()
    assert [e["camera"] for e in events] == ["bus"], events
    (event,) = events
    assert event["peak"] == 1 and event["state"] == "open" and event["snapshot"], event
