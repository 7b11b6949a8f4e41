"""--log-format json (one object per line, structured fields as keys) and the rate limit on repeated warnings."""

from __future__ import annotations

import io
import json
import logging

from conftest import wait_for

from anjeon.protocol import logs


def test_json_lines_from_real_processes_carry_role_process_and_camera(system):
    system.start(
        "broker", "--log-format", "json", "broker", "--bind", "127.0.0.1", "--base-port", str(system.base)
    )
    edge = system.start(
        "edge",
        "--log-format",
        "json",
        "edge",
        "--broker",
        system.broker_url,
        "--camera",
        "gate=/nonexistent/clip.avi",
        "--name",
        "edge-gate",
    )

    def camera_line():
        lines = [json.loads(line) for line in edge.output().splitlines() if line.strip()]
        return [x for x in lines if x.get("camera") == "gate"]

    (line, *_) = wait_for(camera_line, 60, "the edge's camera state line")
    assert line["role"] == "edge" and line["level"] == "warning" and line["state"] == "error"
    assert line["process"].startswith("edge@") and line["time"].endswith("Z")
    assert "does not exist" in line["message"]

    # The broker answered the edge: both run their loops (and handle SIGTERM) now.
    def connected():
        return [x for x in map(json.loads, edge.output().splitlines()) if x["message"].endswith("connected")]

    wait_for(connected, 60, "the edge to connect")
    for proc in system.procs:
        assert proc.stop() == 0
        for text in proc.output().splitlines():  # every line is one JSON object, even at shutdown
            assert isinstance(json.loads(text), dict), text


def test_repeated_warnings_are_held_back_and_counted_state_changes_never():
    clock = [0.0]
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.JsonFormatter("worker", "w1"))
    handler.addFilter(logs.RepeatFilter(window=60.0, clock=lambda: clock[0]))
    log = logging.getLogger("anjeon.test.repeat")
    log.propagate = False
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        for _ in range(5):
            log.warning("model failed on camera %s", "gate", extra=logs.fields(camera="gate"))
        log.warning("model failed on camera %s", "yard")  # other words: written
        for _ in range(3):
            log.info("camera %s streaming", "gate")  # state changes are never held back
        clock[0] = 61.0
        log.warning("model failed on camera %s", "gate")
    finally:
        log.removeHandler(handler)
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [x["message"] for x in lines] == ["model failed on camera gate", "model failed on camera yard"] + [
        "camera gate streaming"
    ] * 3 + ["model failed on camera gate"]
    assert lines[0]["camera"] == "gate" and "repeated" not in lines[0]
    assert lines[-1]["repeated"] == 4


def test_text_lines_say_how_many_were_held_back():
    record = logging.LogRecord("anjeon.x", logging.WARNING, __file__, 1, "lost %s", ("cam",), None)
    record.repeated = 7
    assert logs.TextFormatter().format(record).endswith("lost cam (and 7 more like it in the last 60 s)")
