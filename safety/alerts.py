"""Alert sinks: the log, a webhook (JSON POST), MQTT. Each sink runs on its own thread.

The pipeline only ever puts an alert on a sink's bounded queue (never
blocks): a webhook that hangs or answers 500 delays nothing but its own
later alerts, is retried with doubling backoff a bounded number of times,
and a full queue drops its oldest alert (counted). Alerts are handed over
only after the event and its snapshot are stored, and carry the event id and
the snapshot path.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any, Protocol

from anjeon.config.safety import AlertSpec
from anjeon.protocol.secrets import redact_url
from anjeon.protocol.stats import DropCounter

if TYPE_CHECKING:  # paho is imported when an MQTT sink is configured
    from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger("anjeon.safety.alerts")

QUEUE_LENGTH = 256  # alerts waiting per sink; beyond it the oldest is dropped
MAX_BACKOFF = 30.0


class Delivery(Protocol):
    name: str

    def deliver(self, alert: dict[str, Any]) -> None: ...  # raises on failure

    def close(self) -> None: ...


class LogDelivery:
    name = "log"

    def deliver(self, alert: dict[str, Any]) -> None:
        e = alert["event"]
        log.warning(
            "ALERT %s %s %s on %s (tracks %s, peak %s, %.1f s) snapshot %s",
            alert["transition"],
            e["type"],
            e["id"],
            e["camera"],
            e["tracks"],
            e["peak"],
            e["duration"],
            e["snapshot"] or "-",
        )

    def close(self) -> None:
        pass


class WebhookDelivery:
    def __init__(self, spec: AlertSpec) -> None:
        # A webhook URL is a secret as a whole (its path or query is often the token): show only the host.
        self.name, self._spec = f"webhook {redact_url(spec.url)}", spec

    def deliver(self, alert: dict[str, Any]) -> None:
        request = urllib.request.Request(
            self._spec.url,
            data=json.dumps(alert).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "anjeon-safety"},
        )
        with urllib.request.urlopen(request, timeout=self._spec.timeout) as response:
            if not 200 <= response.status < 300:
                raise RuntimeError(f"HTTP {response.status}")

    def close(self) -> None:
        pass


class MqttDelivery:
    """Publishes to TOPIC/CAMERA with QoS 1; paho's own thread keeps the connection and reconnects.

    With ``username`` the broker login is sent (over TLS too when ``tls``: a password on a plain
    connection crosses the network readable); ``ca_file`` names the CA that signed the broker's
    certificate, else the system's CAs are trusted. The host name is always verified.
    """

    def __init__(self, spec: AlertSpec) -> None:
        import paho.mqtt.client as mqtt

        self.name, self._spec = f"mqtt{'s' if spec.tls else ''} {spec.host}:{spec.port}", spec
        self._refused = ""  # why the broker last refused us (bad login, ...), for the failure message
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"anjeon-safety-{id(self):x}")
        if spec.username:
            self._client.username_pw_set(spec.username, spec.password or None)
        elif spec.password:
            log.warning("%s: a password without a username is not sent", self.name)
        if spec.tls:
            self._client.tls_set(ca_certs=spec.ca_file or None)
        elif spec.username:
            log.warning(
                "%s: SECURITY: the MQTT password goes over the network unencrypted; set tls: true", self.name
            )
        self._client.on_connect = self._on_connect
        self._client.reconnect_delay_set(1, 30)
        self._client.connect_async(spec.host, spec.port, keepalive=30)
        self._client.loop_start()

    def _on_connect(
        self,
        _client: object,
        _userdata: object,
        _flags: object,
        reason: ReasonCode,
        _properties: object = None,
    ) -> None:
        self._refused = "" if not reason.is_failure else str(reason)

    def deliver(self, alert: dict[str, Any]) -> None:
        if not self._client.is_connected():
            raise RuntimeError(
                f"not connected to the MQTT broker{f' ({self._refused})' if self._refused else ''}"
            )
        info = self._client.publish(
            f"{self._spec.topic}/{alert['event']['camera']}", json.dumps(alert), qos=1
        )
        info.wait_for_publish(timeout=self._spec.timeout)
        if not info.is_published():
            raise RuntimeError("the MQTT broker did not acknowledge")

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def build_delivery(spec: AlertSpec) -> Delivery:
    if spec.type == "webhook":
        return WebhookDelivery(spec)
    if spec.type == "mqtt":
        return MqttDelivery(spec)
    return LogDelivery()


class Sink:
    """One delivery, its queue and its thread; retries with backoff, bounded by ``spec.retries``."""

    def __init__(self, spec: AlertSpec, delivery: Delivery, drops: DropCounter) -> None:
        self.spec, self.delivery, self._drops = spec, delivery, drops
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(QUEUE_LENGTH)
        self._stop = threading.Event()
        self.sent = self.failed = 0
        self._thread = threading.Thread(target=self._run, name=f"alert-{spec.type}", daemon=True)
        self._thread.start()

    def offer(self, alert: dict[str, Any]) -> None:
        if alert["transition"] not in self.spec.on:
            return
        while True:
            try:
                self._queue.put_nowait(alert)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self._drops.drop(
                        "alert_queue_full", f"{self.delivery.name} is behind; dropped its oldest alert"
                    )
                except queue.Empty:
                    pass

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                alert = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if alert is not None:
                self._send(alert)

    def _send(self, alert: dict[str, Any]) -> None:
        delay = self.spec.backoff
        for attempt in range(self.spec.retries + 1):
            try:
                self.delivery.deliver(alert)
                self.sent += 1
                return
            except (
                Exception
            ) as exc:  # any failure of a sink is retried, logged, and never reaches the pipeline
                last = f"{type(exc).__name__}: {exc}"
            if attempt < self.spec.retries and self._stop.wait(delay):
                break
            delay = min(delay * 2, MAX_BACKOFF)
        self.failed += 1
        self._drops.drop(
            "alert_failed", f"{self.delivery.name}: {last} (after {self.spec.retries + 1} attempts)"
        )

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        self.delivery.close()


class Alerts:
    def __init__(self, specs: tuple[AlertSpec, ...], drops: DropCounter) -> None:
        self.sinks = [Sink(spec, build_delivery(spec), drops) for spec in specs]

    def send(self, transition: str, event: dict[str, Any]) -> None:
        alert = {"v": 1, "kind": "alert", "transition": transition, "event": event}
        for sink in self.sinks:
            sink.offer(alert)

    def stats(self) -> dict[str, dict[str, int]]:
        return {s.delivery.name: {"sent": s.sent, "failed": s.failed} for s in self.sinks}

    def stop(self) -> None:
        for sink in self.sinks:
            sink.stop()
