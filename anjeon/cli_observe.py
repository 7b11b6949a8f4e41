"""The observability flags every service command shares: --metrics-port and --metrics-host.

They are stored on the click context instead of being passed as parameters, so
registering them on a command is one decorator line and starting the endpoint
one call, whatever the command's own signature.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from anjeon.protocol import metrics

_KEY = "anjeon.metrics"
F = TypeVar("F", bound=Callable[..., Any])


def _store(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    ctx.meta.setdefault(_KEY, {})[param.name] = value
    return value


def metrics_options(f: F) -> F:
    f = click.option(
        "--metrics-host",
        default="127.0.0.1",
        expose_value=False,
        callback=_store,
        help="Interface for --metrics-port ('0.0.0.0' for a Prometheus on another host).",
    )(f)
    return click.option(
        "--metrics-port",
        default=0,
        type=click.IntRange(0, 65535),
        expose_value=False,
        callback=_store,
        help="Serve Prometheus metrics on http://HOST:PORT/metrics (0: off).",
    )(f)


def metrics_flags() -> tuple[int, str]:
    """(port, host) given to the running command."""
    given = click.get_current_context().meta.get(_KEY, {})
    return int(given.get("metrics_port") or 0), str(given.get("metrics_host") or "127.0.0.1")


def start_metrics(role: str, service: Any) -> None:
    """Serve the metrics of ``service`` (a Broker, Edge, Worker or SafetyService) if --metrics-port was given."""
    port, host = metrics_flags()
    collectors = {
        "broker": metrics.BrokerCollector,
        "edge": metrics.EdgeCollector,
        "worker": metrics.WorkerCollector,
        "safety": metrics.SafetyCollector,
    }
    found = [collectors[role](service)]
    if getattr(service, "heartbeat", None) is not None:
        found.append(metrics.HeartbeatCollector(role, service.heartbeat))
    try:
        metrics.start_metrics(port, host, role, *found)
    except metrics.MetricsError as exc:
        raise click.ClickException(str(exc)) from None
