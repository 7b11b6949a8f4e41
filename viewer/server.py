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
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator

import zmq

from anjeon.protocol import metrics, wire
from anjeon.protocol.endpoints import BrokerAddress
from anjeon.protocol.heartbeat import HeartbeatClient, default_name

from .app import create_app
from .auth import Auth
from .bus import Bus, history_endpoint
from .live import Hub
from .state import ConsoleState

log = logging.getLogger("anjeon.viewer")


@dataclass
class ViewerConfig:
    broker: BrokerAddress
    port: int = 8080
    bind: str = "127.0.0.1"
    history: str = ""  # the safety service's history endpoint; default tcp://BROKERHOST:BASEPORT+5
    config_path: Path | None = None  # site YAML: zone outlines, and the zone editor writes it
    users: dict[str, str] | None = None  # None: no login (loopback only)
    acks_path: Path | None = None
    name: str = ""
    metrics_port: int = 0  # Prometheus /metrics (0: off; protocol/metrics.py)
    metrics_host: str = "127.0.0.1"


def build(config: ViewerConfig):
    state = ConsoleState(config.acks_path)
    hub = Hub(state)
    bus = Bus(config.broker, state, hub, history_endpoint(config.broker, config.history))
    auth = Auth(config.users) if config.users is not None else None
    proc = wire.new_id()
    heartbeat = HeartbeatClient(zmq.Context.instance(), config.broker, proc, "viewer",
                                config.name or default_name("viewer"),
                                lambda: {"drops": bus.stats.drops.snapshot(), "results": bus.stats.results.count,
                                         **hub.stats()}, log)
    metrics.start_metrics(config.metrics_port, config.metrics_host, "viewer", metrics.ViewerCollector(state, hub, bus),
                          metrics.HeartbeatCollector("viewer", heartbeat))

    @contextlib.asynccontextmanager
    async def lifespan(_app) -> AsyncIterator[None]:
        task = asyncio.create_task(bus.run(), name="bus")
        seed = asyncio.create_task(bus.seed_alarms(), name="seed-alarms")
        heartbeat.start()
        log.info("viewer %s: broker %s, history %s, http://%s:%d/%s", proc, config.broker, bus.history,
                 config.bind, config.port, " (login required)" if auth else "")
        try:
            yield
        finally:
            for t in (task, seed):
                t.cancel()
            await asyncio.gather(task, seed, return_exceptions=True)
            heartbeat.stop()
            bus.close()

    return create_app(state, hub, bus, auth, config.config_path, lifespan)


def serve(config: ViewerConfig) -> None:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(build(config), host=config.bind, port=config.port, log_level="warning",
                                           ws_max_size=64 * 1024, lifespan="on"))
    server.run()
    if not server.started:
        raise RuntimeError(f"could not serve on {config.bind}:{config.port} (is the port in use?)")
