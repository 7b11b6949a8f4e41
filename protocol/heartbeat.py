"""Heartbeats: every process beats to the broker's control socket, the broker answers.

The same counters serve both ends (the Paranoid Pirate pattern of the ZeroMQ
guide): a peer that has not been heard for HEARTBEAT_LIVENESS intervals is
offline. The broker uses it for its registry; clients use it to notice a lost
broker, say so once, and reopen their socket until it answers again.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import zmq

from . import security
from .endpoints import CONTROL, BrokerAddress
from .messages import decode_hb_ack
from .sockets import configure, count_error
from .stats import DropCounter, ProcessMeter
from .wire import ProtocolError, goodbye, heartbeat

# Seconds between beats. 0.5-5 s makes sense: beats are ~200 bytes, so a short
# interval costs nothing measurable, while a long one delays offline detection.
HEARTBEAT_INTERVAL = 1.0
# Beats missed before a peer counts as offline: 3 s at the default interval.
HEARTBEAT_LIVENESS = 3


def default_name(role: str) -> str:
    return f"{role}@{socket.gethostname()}:{os.getpid()}"


class HeartbeatClient:
    """A thread that beats for one process and tracks whether the broker answers.

    ``info`` is called once per beat and returns the role's live figures
    (cameras, rates, drops...); it must be cheap and thread-safe.
    """

    def __init__(
        self,
        ctx: zmq.Context[Any],
        address: BrokerAddress,
        proc: str,
        role: str,
        name: str,
        info: Callable[[], dict[str, Any]],
        log: logging.Logger,
        interval: float = HEARTBEAT_INTERVAL,
    ) -> None:
        self._ctx, self._address, self._proc, self._role, self._name = ctx, address, proc, role, name
        self._info, self._log, self._interval = info, log, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()
        self.broker_run: str | None = None  # instance id of the broker that last answered
        self.beats_sent = self.acks = self.reconnects = 0  # exported as metrics (protocol/metrics.py)
        self._meter = ProcessMeter()
        self.errors = DropCounter(log)  # socket errors other than a closed socket, by kind (logged once)

    @property
    def broker_online(self) -> bool:
        return self.connected.is_set()

    def start(self) -> HeartbeatClient:
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{self._role}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _open(self) -> zmq.Socket[Any]:
        sock: zmq.Socket[Any] = configure(self._ctx.socket(zmq.DEALER), sndhwm=2, rcvhwm=10, immediate=True)
        security.connect(sock, self._address.endpoint(CONTROL))
        return sock

    def _run(self) -> None:
        sock = self._open()
        started = last_ack = time.monotonic()
        warned_unreachable = False
        next_beat = started
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_beat:
                    # A beat the socket refused (not connected yet) is retried soon, not a whole interval later.
                    next_beat = now + (self._interval if self._beat(sock) else min(0.1, self._interval))
                if sock.poll(int(max(0.0, next_beat - time.monotonic()) * 1000), zmq.POLLIN):
                    while sock.poll(0, zmq.POLLIN):
                        if self._handle_ack(sock.recv_multipart()):
                            self.acks += 1
                            if not self.connected.is_set():
                                self.reconnects += self.acks > 1  # the first answer ever is no reconnect
                                self._log.info(
                                    "broker at %s %s",
                                    self._address,
                                    "answers again" if warned_unreachable else "connected",
                                )
                            last_ack = time.monotonic()
                            warned_unreachable = False
                            self.connected.set()
                silent = time.monotonic() - last_ack
                if silent > self._interval * HEARTBEAT_LIVENESS:
                    if self.connected.is_set():
                        self._log.warning(
                            "lost the broker at %s (no answer for %.0f s); retrying", self._address, silent
                        )
                        self.connected.clear()
                        warned_unreachable = True
                    elif not warned_unreachable:
                        self._log.warning(
                            "cannot reach the broker at %s; still trying (is `anjeon broker` running "
                            "there, and are ports %d-%d open?%s)",
                            self._address,
                            self._address.base_port,
                            self._address.base_port + 4,
                            security.refusal_hint(),
                        )
                        warned_unreachable = True
                    # Reopen: a TCP connection can stay half-open on a flaky network.
                    sock.close(0)
                    sock = self._open()
                    last_ack = time.monotonic() - self._interval  # next reopen one liveness period later
        finally:
            self._say_goodbye(sock)

    def _say_goodbye(self, sock: zmq.Socket[Any]) -> None:
        """On a clean stop, tell the broker at once (it shows the process stopped, not online for 3 s more)."""
        try:
            if self.connected.is_set():
                sock.send(goodbye(self._proc, self._role), zmq.NOBLOCK)
                sock.setsockopt(zmq.LINGER, 500)  # let the goodbye leave before the socket closes
        except zmq.Again:
            pass  # the broker is not taking it: it notices the silence after 3 beats instead
        except zmq.ZMQError as exc:
            count_error(self.errors, exc, "sending the goodbye")
        finally:
            sock.close()

    def _beat(self, sock: zmq.Socket[Any]) -> bool:
        try:
            info = self._info()
        except Exception:  # a reporting bug must not stop the beats
            self._log.exception("building heartbeat info failed")
            info = {}
        info["process"] = self._meter.sample()
        try:
            sock.send(heartbeat(self._proc, self._role, self._name, info), zmq.NOBLOCK)
            self.beats_sent += 1
            return True
        except zmq.Again:
            return False  # not connected: IMMEDIATE refuses to queue, which is what we want

    def _handle_ack(self, frames: list[bytes]) -> bool:
        try:
            self.broker_run = decode_hb_ack(frames[-1])
        except ProtocolError:
            return False
        return True
