"""Who is alive: every process's heartbeats, keyed by its process id."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from anjeon.protocol.heartbeat import HEARTBEAT_INTERVAL, HEARTBEAT_LIVENESS

# An offline peer stays listed (as offline) this long, so an operator sees what went away.
FORGET_AFTER = 600.0


@dataclass
class Peer:
    proc: str
    role: str
    name: str
    first_seen: float
    last_seen: float  # broker's monotonic clock
    info: dict[str, Any] = field(default_factory=dict)
    online: bool = True
    beats: int = 0  # heartbeats received (a metric)


class Registry:
    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 timeout: float = HEARTBEAT_INTERVAL * HEARTBEAT_LIVENESS) -> None:
        self._clock, self.timeout = clock, timeout
        self.peers: dict[str, Peer] = {}

    def beat(self, proc: str, role: str, name: str, info: dict[str, Any]) -> bool:
        """Record a heartbeat; True when the peer is new or comes back online."""
        now = self._clock()
        peer = self.peers.get(proc)
        if peer is None:
            self.peers[proc] = Peer(proc, role, name, now, now, info)
            return True
        came_back = not peer.online
        peer.beats += 1
        peer.last_seen, peer.info, peer.online, peer.role, peer.name = now, info, True, role, name
        return came_back

    def sweep(self) -> list[Peer]:
        """Mark peers silent for longer than the timeout offline; return those newly offline."""
        now = self._clock()
        gone = []
        for proc, peer in list(self.peers.items()):
            silent = now - peer.last_seen
            if peer.online and silent > self.timeout:
                peer.online = False
                gone.append(peer)
            elif not peer.online and silent > FORGET_AFTER:
                del self.peers[proc]
        return gone

    def by_role(self, role: str) -> list[Peer]:
        return [p for p in self.peers.values() if p.role == role]

    def silence(self, peer: Peer) -> float:
        return self._clock() - peer.last_seen
