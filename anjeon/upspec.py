"""Turn a site config into the list of processes `anjeon up` runs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from anjeon.config import SiteConfig
from anjeon.protocol.secrets import ENV_PREFIX
from anjeon.runtime.supervisor import ServiceSpec

from .cli_options import BROKER_FLAGS, CAMERA_FLAGS, WORKER_DEVICE_FLAGS, WORKER_RUN_FLAGS, flag_argv

SOURCE_ENV = "ANJEON_CAMERA_SOURCE"  # an edge child's camera source (see protocol/secrets.resolve_source)


def _repeated(flag: str, values: Iterable[str]) -> list[str]:
    return [arg for value in values for arg in (flag, value)]


def build_specs(
    site: SiteConfig, cores: int, with_watch: bool, viewer_port: int = 0, config_path: str = ""
) -> list[ServiceSpec]:
    b, w = site.broker, site.workers
    connect_host = "127.0.0.1" if b.bind in ("*", "0.0.0.0", "") else b.bind
    address = f"tcp://{connect_host}:{b.base_port}"
    specs = [ServiceSpec("broker", ["broker", *flag_argv(b, BROKER_FLAGS)])]
    # Co-located workers must split the cores: two workers with all threads each
    # are several times slower together than one.
    threads = w.threads or max(1, cores // max(1, w.count))
    for i in range(w.count):
        argv = [
            "worker",
            "--broker",
            address,
            *_repeated("--model", w.model),
            *flag_argv(replace(w, threads=threads), WORKER_DEVICE_FLAGS + WORKER_RUN_FLAGS),
            "--name",
            f"worker-{i + 1}",
            *_repeated("--class-map", [f"{cls}={','.join(labels)}" for cls, labels in w.classes.items()]),
        ]
        specs.append(ServiceSpec(f"worker-{i + 1}", argv))
    # One edge process per camera: a camera that hangs its decoder cannot stall the others.
    for cam_id, cam in site.cameras.items():
        # The source goes by environment: an RTSP URL carries a password, and argv is public (ps, /proc).
        argv = ["edge", "--broker", address, "--camera", f"{cam_id}={ENV_PREFIX}{SOURCE_ENV}"]
        argv += [*flag_argv(cam, CAMERA_FLAGS), "--name", f"edge-{cam_id}"]
        specs.append(ServiceSpec(f"edge-{cam_id}", argv, env={SOURCE_ENV: cam.source}))
    if site.safety is not None and config_path:  # rules and events for the cameras the config describes
        specs.append(ServiceSpec("safety", ["safety", "--broker", address, "--config", config_path]))
    if viewer_port:  # the web console on loopback; its --config gives it the zones to draw and edit
        argv = ["viewer", "--broker", address, "--port", str(viewer_port)]
        specs.append(ServiceSpec("viewer", argv + (["--config", config_path] if config_path else [])))
    if with_watch:
        specs.append(ServiceSpec("watch", ["watch", "--broker", address], foreground=True))
    return specs


def assign_metrics_ports(specs: list[ServiceSpec], first_port: int) -> dict[str, int]:
    """Give every service but the foreground watcher its own --metrics-port, in order from ``first_port``."""
    ports: dict[str, int] = {}
    for spec in (s for s in specs if not s.foreground):
        ports[spec.name] = first_port + len(ports)
        spec.argv += ["--metrics-port", str(ports[spec.name])]
    return ports
