"""`anjeon loadtest`: offer synthetic cameras to a system and measure what comes back."""

from __future__ import annotations

import json
import re
import sys
import threading
from pathlib import Path
from typing import Any

import click

from anjeon.protocol.endpoints import BrokerAddress, free_base_port
from anjeon.runtime import available_cores, run_until_signal

from .cli_options import broker_option, check_batch

DETECTORS = {"null": "null", "yolo": "person"}


def _resolution(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d{2,5})x(\d{2,5})", value.strip())
    if not m:
        raise click.BadParameter(f"'{value}' should be WIDTHxHEIGHT, e.g. 1280x720")
    return int(m[1]), int(m[2])


@click.command()
@broker_option(help="The system to load (ignored with --spawn).")
@click.option("--cameras", default=4, type=click.IntRange(1, 512), help="Synthetic cameras.")
@click.option("--fps", default=10.0, type=click.FloatRange(0.1, 10000), help="Frames per second per camera.")
@click.option("--resolution", default="1280x720", callback=_resolution, help="Frame size, WIDTHxHEIGHT.")
@click.option("--quality", default=80, type=click.IntRange(10, 100), help="JPEG quality.")
@click.option(
    "--duration",
    default=30.0,
    type=click.FloatRange(1, 86400),
    help="Seconds to measure (after a 3 s warm-up).",
)
@click.option(
    "--ramp",
    is_flag=True,
    help="Raise the load step by step until the SLO breaks; report the sustainable fps.",
)
@click.option(
    "--ramp-start",
    default=1.0,
    type=click.FloatRange(0.1, 10000),
    help="Frames per second per camera of the first --ramp step; each step multiplies it by 1.5.",
)
@click.option("--slo-ms", default=500.0, type=click.FloatRange(1), help="Latency target (p95) for --ramp.")
@click.option("--step-seconds", default=10.0, type=click.FloatRange(2), help="Length of each --ramp step.")
@click.option("--spawn", is_flag=True, help="Start a private broker and --workers workers on this machine.")
@click.option("--workers", default=1, type=click.IntRange(1, 64), help="Workers to start with --spawn.")
@click.option(
    "--detector",
    type=click.Choice(sorted(DETECTORS)),
    default="null",
    help="With --spawn: yolo = the default person model, null = decode only (measures the pipeline).",
)
@click.option(
    "--batch",
    default="auto",
    callback=check_batch,
    help="Worker batch size with --spawn (auto: the device's default).",
)
@click.option(
    "--threads",
    default=0,
    type=click.IntRange(0, 256),
    help="Torch threads per spawned worker (0: split the cores).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report as JSON (schema anjeon.loadtest/1, docs/loadtest.md); '-' for stdout.",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a PNG of latency and throughput over time.",
)
def loadtest(
    broker: BrokerAddress,
    cameras: int,
    fps: float,
    resolution: tuple[int, int],
    quality: int,
    duration: float,
    ramp: bool,
    ramp_start: float,
    slo_ms: float,
    step_seconds: float,
    spawn: bool,
    workers: int,
    detector: str,
    batch: int | str,
    threads: int,
    json_path: Path | None,
    plot_path: Path | None,
) -> None:
    """Offer N synthetic cameras (real JPEGs) and measure freshness, throughput and costs.

    \b
    Against a running system:   anjeon loadtest --broker tcp://HOST --cameras 16 --fps 15
    Self-contained:             anjeon loadtest --spawn --workers 2 --detector yolo --ramp
    """
    from anjeon.loadtest.report import plot, render_table
    from anjeon.loadtest.runner import LoadTestConfig, Run, spawned_system, wait_for_workers

    address = BrokerAddress("127.0.0.1", free_base_port()) if spawn else broker
    config = LoadTestConfig(
        broker=address,
        cameras=cameras,
        fps=fps,
        width=resolution[0],
        height=resolution[1],
        quality=quality,
        duration=duration,
        ramp=ramp,
        ramp_start=ramp_start,
        slo_ms=slo_ms,
        step_seconds=step_seconds,
        spawn=spawn,
        workers=workers,
        model=DETECTORS[detector],
        batch=batch,
        threads=threads,
    )
    result: dict[str, Any] = {}

    def serve(stop: threading.Event) -> None:
        shutdown = None
        try:
            if spawn:
                _, shutdown = spawned_system(config, Path("logs/loadtest"), available_cores())
                click.echo(f"waiting for {workers} worker(s) on {address} ...", err=True)
                if not wait_for_workers(address, workers, 180, stop):
                    raise click.ClickException(
                        "the spawned workers did not come up within 180 s; see logs/loadtest/"
                    )
            result.update(Run(config, stop).execute())
        finally:
            if shutdown:
                shutdown()

    run_until_signal(serve)
    if not result:
        return
    click.echo(render_table(result))
    if json_path is not None:
        text = json.dumps(result, indent=2)
        if str(json_path) == "-":
            sys.stdout.write(text + "\n")
        else:
            json_path.write_text(text + "\n")
            click.echo(f"wrote {json_path}", err=True)
    if plot_path is not None:
        try:
            plot(result, str(plot_path))
        except RuntimeError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"wrote {plot_path}", err=True)
