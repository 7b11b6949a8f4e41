"""Who is alive: every process's heartbeats, keyed by its process id, bounded in size.

A process id belongs to the control connection (ROUTER routing id) that
announced it while that peer is online: another connection using the same id
is refused (``proc_conflict``), so nobody can overwrite a live peer's figures
or say goodbye for it. A peer that reconnects gets a new routing id and is
accepted again once its old entry went offline (3 s without beats).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from anjeon.protocol.heartbeat import HEARTBEAT_INTERVAL, HEARTBEAT_LIVENESS

# An offline peer stays listed (as offline) this long, so an operator sees what went away.
FORGET_AFTER = 600.0
DEFAULT_MAX_PEERS = 1024


@dataclass
class Peer:
    proc: str
    role: str
    name: str
    last_seen: float  # broker's monotonic clock
    info: dict[str, Any] = field(default_factory=dict)  # checked by protocol.messages for its role
    online: bool = True
    stopped: bool = False  # said goodbye: stopped cleanly
    ident: bytes = b""


class BeatOutcome:
    OK = "ok"
    NEW = "new"  # new, or back online
    CONFLICT = "proc_conflict"
    FULL = "peer_cap"


class Registry:
    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = HEARTBEAT_INTERVAL * HEARTBEAT_LIVENESS,
        max_peers: int = DEFAULT_MAX_PEERS,
    ) -> None:
        self._clock, self.timeout, self.max_peers = clock, timeout, max_peers
        self.peers: dict[str, Peer] = {}

    def beat(self, proc: str, role: str, name: str, info: dict[str, Any], ident: bytes = b"") -> str:
        """Record a heartbeat: NEW when the peer is new or comes back online, else OK, CONFLICT or FULL."""
        now = self._clock()
        peer = self.peers.get(proc)
        if peer is None:
            if len(self.peers) >= self.max_peers and not self._make_room():
                return BeatOutcome.FULL
            self.peers[proc] = Peer(proc, role, name, now, info, ident=ident)
            return BeatOutcome.NEW
        if peer.online and peer.ident != ident:
            return BeatOutcome.CONFLICT
        came_back = not peer.online
        peer.last_seen, peer.info, peer.online, peer.role, peer.name = now, info, True, role, name
        peer.ident, peer.stopped = ident, False
        return BeatOutcome.NEW if came_back else BeatOutcome.OK

    def goodbye(self, proc: str, ident: bytes = b"") -> Peer | None:
        """A peer stopping cleanly: offline at once. None when unknown or said by another connection."""
        peer = self.peers.get(proc)
        if peer is None or peer.ident != ident or not peer.online:
            return None
        peer.online, peer.stopped = False, True
        return peer

    def _make_room(self) -> bool:
        """Forget the offline peer silent longest, if any (online peers are never pushed out)."""
        offline = [p for p in self.peers.values() if not p.online]
        if not offline:
            return False
        del self.peers[min(offline, key=lambda p: p.last_seen).proc]
        return True

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
