"""`anjeon viewer`: wire the bus, the state, the live hub and the web app together, and run uvicorn.

The click command only builds a ViewerConfig; this module owns the life of the
process: startup (bus task, heartbeats as role "viewer", open alarms fetched
from the safety service), serving, and shutdown (tasks cancelled, sockets
closed) when uvicorn handles Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import zmq
from fastapi import FastAPI

from anjeon.protocol import metrics, wire
from anjeon.protocol.endpoints import BrokerAddress
from anjeon.protocol.heartbeat import HeartbeatClient, default_name

from .app import create_app
from .auth import Auth
from .bus import Bus, history_endpoint
from .context import WebOptions
from .guard import Proxies
from .live import Hub
from .state import ConsoleState, Limits

log = logging.getLogger("anjeon.viewer")


@dataclass
class ViewerConfig:
    broker: BrokerAddress
    port: int = 8080
    bind: str = "127.0.0.1"
    history: str = ""  # the safety service's history endpoint; default tcp://BROKERHOST:BASEPORT+5
    config_path: Path | None = None  # site YAML: zone outlines, and the zone editor writes it
    users_path: Path | None = None  # None: no login (loopback only); re-read when it changes
    acks_path: Path | None = None
    name: str = ""
    metrics_port: int = 0  # Prometheus /metrics (0: off; protocol/metrics.py)
    metrics_host: str = "127.0.0.1"
    limits: Limits = field(default_factory=Limits)
    tls_cert: Path | None = None  # serve https with this certificate (and tls_key)
    tls_key: Path | None = None
    behind_tls_proxy: bool = False  # a TLS proxy in front: cookies are Secure though this hop is http
    allowed_hosts: tuple[str, ...] = ()
    snapshots: Path | None = None  # the safety service's snapshot folder, when readable here
    # Reverse proxies (IPs or networks) whose X-Forwarded-For names the client for the login throttle.
    trusted_proxies: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        Proxies(self.trusted_proxies)  # a bad address is a ValueError now, not at the first login

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None or self.behind_tls_proxy


def snapshot_folder(config: ViewerConfig) -> Path | None:
    """--snapshots, else the folder the site config's safety section names (as the safety service derives it)."""
    if config.snapshots is not None or config.config_path is None:
        return config.snapshots
    from anjeon.config import ConfigError, load_site_config

    try:
        safety = load_site_config(config.config_path).safety
    except ConfigError:
        return None
    if safety is None:
        return None
    return Path(safety.snapshots) if safety.snapshots else Path(safety.store).parent / "snapshots"


def build(config: ViewerConfig) -> FastAPI:
    state = ConsoleState(config.acks_path, config.limits)
    hub = Hub(state)
    bus = Bus(config.broker, state, hub, history_endpoint(config.broker, config.history))
    auth = Auth.from_file(config.users_path) if config.users_path is not None else None
    proc = wire.new_id()
    heartbeat = HeartbeatClient(
        zmq.Context.instance(),
        config.broker,
        proc,
        "viewer",
        config.name or default_name("viewer"),
        lambda: {"drops": bus.stats.drops.snapshot(), "results": bus.stats.results.count, **hub.stats()},
        log,
    )
    metrics.start_metrics(
        config.metrics_port,
        config.metrics_host,
        "viewer",
        metrics.ViewerCollector(state, hub, bus),
        metrics.HeartbeatCollector("viewer", heartbeat),
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(bus.run(), name="bus")
        seed = asyncio.create_task(bus.seed_alarms(), name="seed-alarms")
        heartbeat.start()
        log.info(
            "viewer %s: broker %s, history %s, http://%s:%d/%s",
            proc,
            config.broker,
            bus.history,
            config.bind,
            config.port,
            " (login required)" if auth else "",
        )
        try:
            yield
        finally:
            for t in (task, seed):
                t.cancel()
            await asyncio.gather(task, seed, return_exceptions=True)
            heartbeat.stop()
            bus.close()

    options = WebOptions(
        tls=config.tls,
        allowed_hosts=set(config.allowed_hosts),
        snapshots=snapshot_folder(config),
        proxies=Proxies(config.trusted_proxies),
    )
    return create_app(state, hub, bus, auth, config.config_path, lifespan, options)


def serve(config: ViewerConfig) -> None:
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(
            build(config),
            host=config.bind,
            port=config.port,
            log_level="warning",
            ws_max_size=64 * 1024,
            lifespan="on",
            proxy_headers=False,  # X-Forwarded-For only from --trusted-proxy, for the throttle (routes/access.py)
            ssl_certfile=str(config.tls_cert) if config.tls_cert else None,
            ssl_keyfile=str(config.tls_key) if config.tls_key else None,
        )
    )
    server.run()
    if not server.started:
        raise RuntimeError(f"could not serve on {config.bind}:{config.port} (is the port in use?)")
