"""Alert sinks against real servers: a local HTTP receiver (one that answers 500 twice, one that hangs)
and a real mosquitto; the safety service runs as a real process behind a real broker.

The detections are published by the test itself on the results bus (a scripted
person walking into a zone, on a real JPEG), so the events are known exactly
without loading a model.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import zmq
from conftest import free_base_port, wait_for
from safety_fixtures import pit_intrusion, start_safety, stored_events, write_config

from anjeon.protocol import wire


class Receiver:
    """An HTTP server recording JSON POSTs; ``fail_first`` answers 500, ``hang`` never answers in time."""

    def __init__(self, fail_first: int = 0, hang: float = 0.0) -> None:
        self.alerts: list[dict] = []
        self.attempts = 0
        self.snapshot_existed: list[bool] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.attempts += 1
                if hang:
                    time.sleep(hang)
                if outer.attempts <= fail_first:
                    self.send_response(500)
                    self.end_headers()
                    return
                outer.snapshot_existed.append(os.path.exists(body["event"]["snapshot"]))
                outer.alerts.append(body)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def mosquitto(tmp_path):
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    assert os.path.exists(binary), (
        "mosquitto is missing: scripts/test-deps.sh installs it (deploy/test-packages.txt)"
    )
    port = free_base_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    log = open(tmp_path / "mosquitto.log", "wb")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    import socket

    def listening() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    wait_for(listening, 20, "mosquitto to listen")
    yield port
    proc.terminate()
    proc.wait(10)
    log.close()


def mqtt_collector(port: int) -> tuple[list[dict], object]:
    import paho.mqtt.client as mqtt

    got: list[dict] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, *_: c.subscribe("site/events/#", qos=1)
    client.on_message = lambda _c, _u, msg: got.append(json.loads(msg.payload))
    client.connect("127.0.0.1", port)
    client.loop_start()
    return got, client


def scripted_results(system, camera: str, jpeg: bytes, stop: threading.Event) -> None:
    """Publish img/CAM/ results at 10/s: a person standing inside the zone for 3 s, then outside."""
    pub = system.ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.connect(f"tcp://127.0.0.1:{system.base + 2}")
    t0 = time.time()
    seq = 0
    try:
        while not stop.is_set() and seq < 600:
            now = time.time()
            inside = now - t0 < 4.0  # in the zone from the start for 4 s, then gone
            x = 300 if inside else 20
            box = [x, 200, x + 60, 400]
            header = wire.FrameHeader(
                camera=camera, run="run1", seq=seq, t_capture=now, width=810, height=1080, size=len(jpeg)
            )
            result = wire.Result(header, "test", "script", [wire.Detection("person", 0.9, box, "Normal")])
            pub.send_multipart([wire.topic(wire.IMAGE_PREFIX, camera), result.to_wire(), jpeg])
            seq += 1
            stop.wait(0.1)
    finally:
        pub.close(0)


def test_alerts_after_snapshot_webhook_retries_and_hang_mqtt(system, tmp_path, mosquitto, bus_jpg):
    flaky, hanging = Receiver(fail_first=2), Receiver(hang=30.0)
    db = tmp_path / "events.db"
    config = write_config(
        tmp_path / "site.yaml",
        "yard",
        pit_intrusion("min_duration: 0.5, end_after: 1.0"),
        db,
    )
    with open(config, "a") as f:
        f.write(f"""  alerts:
    - {{type: log}}
    - {{type: webhook, url: "{hanging.url}", timeout: 1, retries: 1, backoff: 0.2}}
    - {{type: webhook, url: "{flaky.url}", timeout: 5, retries: 4, backoff: 0.2}}
    - {{type: mqtt, host: 127.0.0.1, port: {mosquitto}, topic: site/events}}
""")
    got_mqtt, client = mqtt_collector(mosquitto)
    system.broker()
    safety, _ = start_safety(system, "safety", config)
    wait_for(lambda: "history on" in safety.output(), 60, "the safety service to start")
    time.sleep(1.0)  # subscriptions reach the broker
    stop = threading.Event()
    jpeg = open(bus_jpg, "rb").read()
    feeder = threading.Thread(target=scripted_results, args=(system, "yard", jpeg, stop), daemon=True)
    feeder.start()
    try:
        wait_for(lambda: [e for e in stored_events(db) if e["state"] == "ended"], 60, "the event to end")
        (event,) = stored_events(db)
        wait_for(
            lambda: len(flaky.alerts) >= 2, 60, "the flaky webhook's start and end alerts, after retries"
        )
        wait_for(lambda: len(got_mqtt) >= 2, 60, "the MQTT start and end alerts")
    finally:
        stop.set()
        feeder.join(5)
        client.loop_stop()
        flaky.close()
    assert [a["transition"] for a in flaky.alerts] == ["start", "end"]
    assert flaky.attempts >= 4  # two 500s were retried
    assert all(a["event"]["id"] == event["id"] for a in flaky.alerts + got_mqtt)
    assert all(flaky.snapshot_existed), "an alert arrived before its snapshot was stored"
    assert (
        flaky.alerts[0]["event"]["snapshot"] == event["snapshot"]
        and os.path.getsize(event["snapshot"]) > 1000
    )
    assert {m["transition"] for m in got_mqtt} == {"start", "end"}
    # The hanging webhook delayed nothing: the event ended and the other sinks delivered while it hung.
    assert hanging.alerts == [] and hanging.attempts >= 1
    out = safety.output()
    assert "ALERT start intrusion" in out and "ALERT end intrusion" in out
    assert safety.alive
    hanging.close()
