"""What every router of the console is built from: the state, the live hub, the bus, logins, options."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .auth import Auth
from .bus import Bus
from .guard import Proxies
from .live import Hub
from .state import ConsoleState


@dataclass
class WebOptions:
    """How the console is reached: TLS (own or a proxy's), allowed host names, proxies, the snapshot folder."""

    # Served over https (--tls-cert) or behind a TLS proxy (--behind-tls-proxy): Secure cookies.
    tls: bool = False
    allowed_hosts: set[str] = field(default_factory=set)
    snapshots: Path | None = None  # the safety service's snapshot folder when readable on this host
    # Reverse proxies whose X-Forwarded-For names the client for the login throttle (--trusted-proxy).
    proxies: Proxies = field(default_factory=Proxies)


@dataclass
class Console:
    """One console process's parts, as the routers (viewer/console/routes/) use them."""

    state: ConsoleState
    hub: Hub
    bus: Bus
    auth: Auth | None  # None: no users file, no login (loopback only)
    config_path: Path | None  # the site YAML the zone editor reads and writes
    options: WebOptions
