"""The `anjeon` command: one click group, one subcommand per role.

Commands only turn flags into a config object and hand it to the role's
service; every flag also reads an environment variable ANJEON_<CMD>_<FLAG>
(e.g. ANJEON_WORKER_MODEL). Heavy imports (torch) happen inside commands.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from anjeon import __version__
from anjeon.config import SiteConfig
from anjeon.config.camera import CameraConfig
from anjeon.config.site import BrokerSection
from anjeon.config.workers import WorkersSection
from anjeon.protocol.endpoints import DEFAULT_BASE_PORT, BrokerAddress
from anjeon.protocol.logs import FORMATS
from anjeon.protocol.wire import ProtocolError, check_camera_id
from anjeon.runtime import available_cores, run_until_signal, setup_logging

from .cli_keys import hand_keys_to_children, keys, use_process_keys
from .cli_loadtest import loadtest
from .cli_observe import metrics_options, start_metrics
from .cli_options import (
    BROKER_FLAGS,
    CAMERA_FLAGS,
    WORKER_DEVICE_FLAGS,
    WORKER_RUN_FLAGS,
    broker_option,
    brokers_option,
    check_port,
    flag_options,
    flag_values,
    load_site,
    name_option,
)
from .cli_report import report
from .cli_safety import ack, events, safety
from .cli_viewer import viewer, viewer_available

CONTEXT = {
    "auto_envvar_prefix": "ANJEON",
    "show_default": True,
    "help_option_names": ["-h", "--help"],
    "max_content_width": 100,
}


def _cameras(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> list[tuple[str, str]]:
    cameras, seen = [], set()
    for text in values:
        name, sep, spec = text.partition("=")
        if not sep or not spec:
            raise click.BadParameter(
                f"'{text}' should be NAME=SOURCE, e.g. gate=rtsp://10.0.0.7/stream or yard=0"
            )
        try:
            check_camera_id(name)
        except ProtocolError as exc:
            raise click.BadParameter(str(exc)) from None
        if name in seen:
            raise click.BadParameter(f"camera '{name}' is given twice")
        seen.add(name)
        cameras.append((name, spec))
    return cameras


@click.group(context_settings=CONTEXT)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    help="How much to log (to stderr).",
)
@click.option(
    "--log-format",
    type=click.Choice(FORMATS),
    default="text",
    help="text for people; json: one object per line (time, level, process, role, camera, event...).",
)
@click.option(
    "--keys",
    "keys_dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="ANJEON_KEYS",
    help="CURVE key folder (anjeon keys init; docs/security.md). Without it the bus is plaintext.",
)
@click.option(
    "--key",
    "key_name",
    default="",
    envvar="ANJEON_KEY",
    help="Key pair of --keys this process uses [by command: broker, edge, worker, safety, subscriber].",
)
@click.version_option(__version__, prog_name="anjeon")
@click.pass_context
def main(ctx: click.Context, log_level: str, log_format: str, keys_dir: Path | None, key_name: str) -> None:
    """anjeon (안전): cameras stream to a pool of inference workers through one broker;
    any number of watchers see the results live.

    \b
    One machine, everything:   anjeon up --camera demo=clip.mp4 --loop --watch
    Across machines:           anjeon broker                       (central host)
                               anjeon worker --broker tcp://HOST   (each GPU host)
                               anjeon edge --broker tcp://HOST --camera gate=rtsp://...
                               anjeon watch --broker tcp://HOST    (anywhere)
    """
    setup_logging(log_level, log_format, ctx.invoked_subcommand or "")
    use_process_keys(ctx.invoked_subcommand, keys_dir, key_name)


@main.command()
@flag_options(BrokerSection, BROKER_FLAGS)
@metrics_options
def broker(**given: Any) -> None:
    """Run the broker: the one process everything else connects to."""
    from anjeon.broker.server import BindError, Broker, BrokerConfig
    from anjeon.protocol.security import SecurityError

    settings = flag_values(BROKER_FLAGS, given)
    server = Broker(BrokerConfig(**settings, max_pending=settings["max_cameras"]))
    try:
        server.bind()
    except (BindError, SecurityError) as exc:  # SecurityError: no allowlist in the --keys folder
        raise click.ClickException(str(exc)) from None
    start_metrics("broker", server)
    run_until_signal(server.serve)


@main.command()
@broker_option()
@click.option(
    "--camera",
    "cameras",
    multiple=True,
    callback=_cameras,
    metavar="NAME=SOURCE",
    help="A camera to stream (repeatable). SOURCE: webcam index (0), /dev/videoN, rtsp://..., http://..., "
    "a video file, an image file, a folder of images, or 'synthetic'. The options below apply "
    "to these cameras; --config cameras keep their own settings.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also stream the cameras of this site config, each with its own settings (fps, width, quality, "
    "transport, ...).",
)
@flag_options(CameraConfig, CAMERA_FLAGS)
@name_option()
@metrics_options
def edge(
    broker: BrokerAddress,
    cameras: list[tuple[str, str]],
    config_path: Path | None,
    name: str,
    **camera_flags: Any,
) -> None:
    """Capture cameras and stream their newest frames to the broker."""
    from anjeon.edge.service import Edge, EdgeConfig
    from anjeon.protocol.secrets import resolve_source

    settings = flag_values(CAMERA_FLAGS, camera_flags)
    configs = _site_cameras(config_path) if config_path else []
    for cam, spec in cameras:
        if any(c.id == cam for c in configs):
            raise click.BadParameter(f"camera '{cam}' is also in {config_path}", param_hint="--camera")
        try:
            spec = resolve_source(spec)  # env:VAR keeps a camera password out of argv (anjeon up does this)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--camera") from None
        configs.append(CameraConfig(cam, spec, **settings))
    if not configs:
        raise click.UsageError(
            "no cameras: give --camera NAME=SOURCE or --config SITE.yaml with a cameras: section"
        )
    service = Edge(EdgeConfig(broker=broker, cameras=configs, name=name))
    start_metrics("edge", service)
    run_until_signal(service.serve)


def _site_cameras(path: Path) -> list[CameraConfig]:
    """The cameras of a site config, each with its own settings."""
    try:
        return list(load_site(path).cameras.values())
    except ImportError:
        raise click.ClickException("--config needs PyYAML on this host: pip install pyyaml") from None


@main.command()
@brokers_option(
    help="Where the broker runs; BASEPORT is the first of its five ports. Repeatable: one worker serves "
    "several brokers (one per site or camera group), each with its own credit, heartbeats and results; "
    "losing one does not stall the others.",
    envvar="ANJEON_WORKER_BROKER",
)
@click.option(
    "--model",
    "models",
    default=("person",),
    multiple=True,
    help="Built-in model ('person': offline YOLOv8s person detector; 'helmet': head boxes labelled "
    "With/Without Helmet; 'null': decode only) or a path to any model ultralytics loads "
    "(.pt, .onnx, ...). Repeatable: every model runs on every frame, detections published together.",
)
@click.option(
    "--class-map",
    "class_map",
    multiple=True,
    metavar="CLASS=LABEL[,LABEL...]",
    help="Publish these model labels as this anjeon class (repeatable), e.g. person=Normal,Fall "
    "for a model of your own; safety's rules read the classes 'person' and 'head'.",
)
@flag_options(WorkersSection, WORKER_DEVICE_FLAGS)
@click.option(
    "--batch-wait-ms",
    default=0.0,
    type=click.FloatRange(0, 1000),
    help="Wait up to this long for a batch to fill (0: never; a few ms can help a GPU).",
)
@click.option(
    "--engine",
    type=click.Choice(["auto", "torch", "tensorrt", "onnxruntime"]),
    default="auto",
    help="Runtime: auto = TensorRT or ONNX Runtime (CUDA) on a GPU when installed, else PyTorch; "
    "engines are built once and cached by model hash, GPU and versions.",
)
@click.option("--fp16/--no-fp16", "half", default=None, help="Half precision [on for CUDA, off on a CPU].")
@click.option(
    "--decode",
    "decode",
    type=click.Choice(["cpu", "gpu"]),
    default="cpu",
    help="JPEG decode: cpu (OpenCV) or gpu (torchvision decode_jpeg on CUDA; falls back to the CPU).",
)
@click.option(
    "--engine-cache",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of built engines [ANJEON_ENGINE_CACHE or ~/.cache/anjeon/engines].",
)
@click.option(
    "--credit",
    default=0,
    type=click.IntRange(0, 1024),
    help="Frames the broker may have in flight to this worker (0: the batch size). Raise it only "
    "when the network round trip is long next to one inference.",
)
@flag_options(WorkersSection, WORKER_RUN_FLAGS)
@click.option(
    "--max-megapixels",
    type=click.FloatRange(0.01, 1000),
    default=None,
    help="Refuse JPEGs that declare more pixels than this, before decoding [ANJEON_MAX_MEGAPIXELS or 40].",
)
@name_option()
@metrics_options
def worker(
    brokers: tuple[BrokerAddress, ...],
    models: tuple[str, ...],
    class_map: tuple[str, ...],
    device: str,
    batch: int | str,
    batch_wait_ms: float,
    engine: str,
    half: bool | None,
    decode: str,
    engine_cache: Path | None,
    credit: int,
    max_age: float,
    threads: int,
    render: bool,
    max_megapixels: float | None,
    name: str,
) -> None:
    """Run detection on frames from the broker and publish the results."""
    from anjeon.inference.batching import resolve_batch
    from anjeon.inference.models import EngineOptions, ModelError, load_detectors, parse_class_map
    from anjeon.inference.worker import Worker, WorkerConfig

    threads = threads or available_cores()
    try:
        # A built engine must take the largest batch; auto is sized for a GPU here and resolved below.
        largest = batch if isinstance(batch, int) else 32
        detector = load_detectors(
            models,
            device,
            threads,
            parse_class_map(class_map),
            EngineOptions(engine, half, largest, engine_cache),
        )
    except ModelError as exc:
        raise click.ClickException(str(exc)) from None
    config = WorkerConfig(
        brokers=brokers,
        batch=resolve_batch(batch, detector.device),
        batch_wait=batch_wait_ms / 1000.0,
        credit=credit,
        gpu_decode=decode == "gpu",
        max_age=max_age,
        threads=threads,
        render=render,
        name=name,
        max_megapixels=max_megapixels,
    )
    service = Worker(config, detector)
    start_metrics("worker", service)
    run_until_signal(service.serve)


@main.command()
@broker_option()
@click.option("--camera", "cameras", multiple=True, metavar="NAME", help="Only these cameras (repeatable).")
@click.option(
    "--json",
    "json_lines",
    is_flag=True,
    help="Print one JSON object per result (camera, seq, t_capture, ts, latency_ms, detections) "
    "instead of the table.",
)
@click.option(
    "--record",
    type=click.Path(file_okay=False, path_type=Path),
    help="Save each result's frame with its boxes drawn as DIR/CAMERA/RUN-SEQ.jpg.",
)
@click.option(
    "--record-limit",
    default=10000,
    type=click.IntRange(1),
    help="Stop saving after this many JPEGs, so a forgotten --record cannot fill the disk.",
)
@click.option(
    "--duration", default=0.0, type=click.FloatRange(0), help="Exit after this many seconds (0: never)."
)
@click.option("--count", default=0, type=click.IntRange(0), help="Exit after this many results (0: never).")
@click.option(
    "--sort",
    type=click.Choice(["name", "state", "fps", "latency", "drops"]),
    default="name",
    help="Order of the camera rows: fps and latency put the slowest first, state the problems first.",
)
@click.option("--match", default="", metavar="PATTERN", help="Only cameras whose name matches ('gate-*').")
@click.option("--problems", is_flag=True, help="Only cameras not streaming, with drops or without results.")
@click.option(
    "--limit", default=40, type=click.IntRange(0), help="Camera rows at most (0: all); the rest is counted."
)
@name_option()
def watch(
    broker: BrokerAddress,
    cameras: tuple[str, ...],
    json_lines: bool,
    record: Path | None,
    record_limit: int,
    duration: float,
    count: int,
    sort: str,
    match: str,
    problems: bool,
    limit: int,
    name: str,
) -> None:
    """Show live results: a table per camera and worker, or JSON lines."""
    from anjeon.viewer.watch import TableOptions, Watch, WatchConfig

    for cam in cameras:
        try:
            check_camera_id(cam)
        except ProtocolError as exc:
            raise click.BadParameter(str(exc), param_hint="--camera") from None
    config = WatchConfig(
        broker=broker,
        cameras=cameras,
        json_lines=json_lines,
        record=record,
        record_limit=record_limit,
        duration=duration,
        count=count,
        name=name,
        table=TableOptions(sort, match, problems, limit),
    )
    run_until_signal(Watch(config).serve)


@main.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Site config YAML (broker, workers, cameras); flags below override it.",
)
@click.option(
    "--camera",
    "cameras",
    multiple=True,
    callback=_cameras,
    metavar="NAME=SOURCE",
    help="A camera (repeatable), added to those of the config.",
)
@click.option("--workers", type=click.IntRange(0, 64), help="Worker processes to start here [config or 1].")
@click.option(
    "--model", "models", multiple=True, help="Model for the workers, repeatable [config or person]."
)
@click.option("--device", help="Device for the workers [config or auto].")
@click.option("--batch", type=click.IntRange(1, 256), help="Largest batch of the workers [config or auto].")
@click.option("--base-port", type=int, help=f"Broker base port [config or {DEFAULT_BASE_PORT}].")
@click.option("--bind", help="Broker bind address [config or *].")
@click.option(
    "--fps",
    type=click.FloatRange(0.1, 120),
    help=f"Send rate cap for --camera cameras [{CameraConfig.fps:g}].",
)
@click.option("--loop", is_flag=True, help="Replay --camera video files forever.")
@click.option(
    "--watch/--no-watch",
    "with_watch",
    default=False,
    help="Show the live table here; the services then log to --log-dir.",
)
@click.option(
    "--log-dir",
    default="logs",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where services log when --watch owns the terminal.",
)
@click.option(
    "--metrics-port",
    "metrics_port",
    default=0,
    type=click.IntRange(0, 65000),
    help="Serve Prometheus metrics from every service, on consecutive ports from this one (0: off).",
)
@click.option(
    "--viewer-port",
    default=8080,
    type=click.IntRange(0, 65535),
    help="Serve the web console on http://127.0.0.1:PORT/ (0: do not start it).",
)
def up(
    config_path: Path | None,
    cameras: list[tuple[str, str]],
    workers: int | None,
    models: tuple[str, ...],
    device: str | None,
    batch: int | None,
    base_port: int | None,
    bind: str | None,
    fps: float | None,
    loop: bool,
    with_watch: bool,
    log_dir: Path,
    viewer_port: int,
    metrics_port: int,
) -> None:
    """Start broker, workers and edges on this machine; Ctrl-C or SIGTERM stops them all."""
    from anjeon.runtime.supervisor import Supervisor

    from .upspec import build_specs

    site = load_site(config_path) if config_path else SiteConfig()
    hand_keys_to_children(site.security.keys, config_path)  # by environment, never argv
    # The flags override the file's settings; what is not given keeps the file's (or the default).
    worker_flags: dict[str, Any] = {
        "count": workers,
        "model": tuple(models) or None,
        "device": device,
        "batch": batch,
    }
    site.workers = replace(site.workers, **{k: v for k, v in worker_flags.items() if v is not None})
    broker_flags: dict[str, Any] = {
        "base_port": None if base_port is None else check_port(None, None, base_port),
        "bind": bind,
    }
    site.broker = replace(site.broker, **{k: v for k, v in broker_flags.items() if v is not None})
    for cam, spec in cameras:
        site.cameras[cam] = CameraConfig(cam, spec, loop=loop)
        if fps is not None:
            site.cameras[cam].fps = fps
    if not site.cameras:
        click.echo("note: no cameras configured; add --camera NAME=SOURCE or a cameras: section", err=True)
    if viewer_port and not viewer_available():
        click.echo(
            "note: not starting the web console: pip install 'anjeon[viewer]' (make venv) to get it", err=True
        )
        viewer_port = 0
    specs = build_specs(site, available_cores(), with_watch, viewer_port, str(config_path or ""))
    if metrics_port:
        from .upspec import assign_metrics_ports

        for service, port in assign_metrics_ports(specs, metrics_port).items():
            click.echo(f"metrics: {service} http://127.0.0.1:{port}/metrics", err=True)
    if viewer_port:
        click.echo(f"web console: http://127.0.0.1:{viewer_port}/", err=True)
    code = 0

    def serve(stop: threading.Event) -> None:
        nonlocal code
        code = Supervisor(specs, log_dir if with_watch else None).serve(stop)

    run_until_signal(serve)
    sys.exit(code)


@main.group()
def config() -> None:
    """Site config tools."""


@config.command("validate")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def config_validate(path: Path) -> None:
    """Check a site config without starting anything."""
    site = load_site(path)
    click.echo(f"{path}: OK ({len(site.cameras)} camera(s), {site.workers.count} worker(s))")


# The other commands live in their own modules (they import nothing from this one).
for command in (loadtest, safety, events, ack, report, keys, viewer):
    main.add_command(command)
