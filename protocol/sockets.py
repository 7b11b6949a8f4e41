"""Socket defaults shared by every role, and what a socket error means (``closed``, ``count_error``)."""

from __future__ import annotations

import errno
from typing import Any, TypeVar

import zmq

from .stats import DropCounter
from .wire import SOCKET_MAX_MESSAGE_BYTES

S = TypeVar("S", bound="zmq.Socket[Any]")  # a sync or asyncio socket: configure returns the same type

PEER_PING_MS = 1000
PEER_TIMEOUT_MS = 3000  # like the application heartbeat: 3 missed beats


def configure(
    sock: S,
    *,
    sndhwm: int | None = None,
    rcvhwm: int | None = None,
    immediate: bool = False,
    peer_heartbeat: bool = False,
) -> S:
    """Apply the options every anjeon socket wants.

    linger 0: a closing process never waits for a broker that is gone.
    TCP keepalive: half-open connections on flaky site networks get noticed.
    immediate: queue nothing for a peer that is not connected (so frames are
    dropped and counted at the edge instead of piling up for a dead broker).
    """
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
    sock.setsockopt(zmq.TCP_KEEPALIVE_IDLE, 30)
    sock.setsockopt(zmq.TCP_KEEPALIVE_INTVL, 10)
    sock.setsockopt(zmq.RECONNECT_IVL, 200)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
    if peer_heartbeat:
        # ZMTP heartbeats (answered by libzmq's own thread, so a busy process still answers): a peer that
        # stops answering (cut network, stopped process) is disconnected after PEER_TIMEOUT and what was
        # queued for it is dropped, instead of arriving stale when the link comes back (tests/test_faults*.py).
        # Only on the edge's PUSH and the broker's PULL (a cut link must drop what it queued) and XPUB (a frozen
        # subscriber is cut off after PEER_TIMEOUT, so its queue of pictures is freed). Not on the clients'
        # SUB sockets: on a connecting socket whose receive queue is full, libzmq cannot read the peer's
        # PINGs, kills the connection itself and can then abort the process on reconnect ("Assertion
        # failed: _input_stopped", libzmq issues #3937 and #4767); nor on the worker's DEALER, where a
        # stalled CPU would drop a healthy worker's connection (its liveness is the application heartbeat).
        sock.setsockopt(zmq.HEARTBEAT_IVL, PEER_PING_MS)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, PEER_TIMEOUT_MS)
    if sndhwm is not None:
        sock.setsockopt(zmq.SNDHWM, sndhwm)
    if rcvhwm is not None:
        sock.setsockopt(zmq.RCVHWM, rcvhwm)
    if immediate:
        sock.setsockopt(zmq.IMMEDIATE, 1)
    if sock.type in (zmq.PULL, zmq.ROUTER, zmq.SUB, zmq.XSUB, zmq.XPUB, zmq.DEALER):
        # A hard ceiling only; the real limits are enforced by the application.
        sock.setsockopt(zmq.MAXMSGSIZE, SOCKET_MAX_MESSAGE_BYTES)
    return sock


CLEAN_EXIT_ERRNOS = (zmq.ETERM, zmq.ENOTSOCK)


def closed(exc: zmq.ZMQError) -> bool:
    """True when ``exc`` says the context or the socket is closed: the one clean way out of a socket loop."""
    return exc.errno in CLEAN_EXIT_ERRNOS


def error_reason(exc: zmq.ZMQError) -> str:
    """The counter key of a socket error: ``zmq_`` and its errno's name (``zmq_EHOSTUNREACH``)."""
    name = errno.errorcode.get(exc.errno or 0) or next(
        (n for n in ("EFSM", "ENOCOMPATPROTO", "EMTHREAD") if getattr(zmq, n, None) == exc.errno),
        str(exc.errno),
    )
    return f"zmq_{name}"


def count_error(drops: DropCounter, exc: zmq.ZMQError, what: str) -> bool:
    """``closed(exc)``; and when it is not a clean exit, count it under ``error_reason`` (logged once per
    kind by the counter) so that no socket error passes silently."""
    if closed(exc):
        return True
    drops.drop(error_reason(exc), f"{what}: {exc.strerror or exc}")
    return False
