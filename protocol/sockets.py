"""Socket defaults shared by every role."""

from __future__ import annotations

import zmq

from .wire import SOCKET_MAX_MESSAGE_BYTES


def configure(sock: zmq.Socket, *, sndhwm: int | None = None, rcvhwm: int | None = None,
              immediate: bool = False) -> zmq.Socket:
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
    if sndhwm is not None:
        sock.setsockopt(zmq.SNDHWM, sndhwm)
    if rcvhwm is not None:
        sock.setsockopt(zmq.RCVHWM, rcvhwm)
    if immediate:
        sock.setsockopt(zmq.IMMEDIATE, 1)
    if sock.socket_type in (zmq.PULL, zmq.ROUTER, zmq.SUB, zmq.XSUB, zmq.XPUB, zmq.DEALER):
        # A hard ceiling only; the real limits are enforced by the application.
        sock.setsockopt(zmq.MAXMSGSIZE, SOCKET_MAX_MESSAGE_BYTES)
    return sock
