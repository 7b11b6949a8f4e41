"""Options several commands share, declared once: --broker, --name, and flags built from settings dataclasses.

A settings dataclass of anjeon.config (a camera, the broker) is the one
definition of its defaults, types and ranges; a table of ``Flag`` rows here
adds only what the command line needs (the flag names and the help). The same
table makes the click options of a command and the argv `anjeon up` gives a
child process, so the two cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click

from anjeon.config import ConfigError, SiteConfig, load_site_config
from anjeon.config.schema import field_default
from anjeon.config.workers import parse_batch
from anjeon.protocol.endpoints import DEFAULT_BASE_PORT, AddressError, BrokerAddress, check_base_port

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_BROKER = f"tcp://127.0.0.1:{DEFAULT_BASE_PORT}"


def parse_broker(_ctx: click.Context | None, _param: click.Parameter | None, value: str) -> BrokerAddress:
    try:
        return BrokerAddress.parse(value)
    except AddressError as exc:
        raise click.BadParameter(str(exc)) from None


def check_port(_ctx: click.Context | None, _param: click.Parameter | None, value: int) -> int:
    try:
        check_base_port(value)
    except AddressError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def check_batch(_ctx: click.Context | None, _param: click.Parameter | None, value: Any) -> int | str:
    try:
        return parse_batch(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


SPANS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str, end_of_day: bool = False) -> float:
    """Unix seconds, an ISO date or time (local), or a span back from now (30s, 10m, 2h, 1d); else ValueError.

    ``end_of_day``: a plain date means the end of that day (an inclusive --until 2026-11-30).
    """
    text = text.strip()
    if text[-1:] in SPANS and text[:-1].replace(".", "", 1).isdigit():
        return time.time() - float(text[:-1]) * SPANS[text[-1]]
    try:
        return float(text)
    except ValueError:
        pass
    moment = datetime.fromisoformat(text)
    if end_of_day and len(text) == 10:
        moment += timedelta(days=1)
    return moment.timestamp()


def time_callback(
    message: str, end_of_day: bool = False
) -> Callable[[click.Context, click.Parameter, str | None], float | None]:
    """A click callback for a time option; ``message`` (with {value}) says what the user may give."""

    def parse(_ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
        if value is None:
            return None
        try:
            return parse_time(value, end_of_day)
        except ValueError:
            raise click.BadParameter(message.format(value=value), param=param) from None

    return parse


def broker_option(
    help: str = "Where the broker runs; BASEPORT is the first of its five ports.",
) -> Callable[[F], F]:
    """--broker tcp://HOST[:BASEPORT], parsed into a BrokerAddress."""
    return click.option(
        "--broker",
        "broker",
        default=DEFAULT_BROKER,
        callback=parse_broker,
        metavar="tcp://HOST[:BASEPORT]",
        help=help,
    )


def load_site(path: str | Path) -> SiteConfig:
    """The site config at ``path``, or the command fails with its file:line: field: error."""
    try:
        return load_site_config(path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def brokers_option(help: str, envvar: str) -> Callable[[F], F]:
    """--broker, repeatable: a tuple of distinct BrokerAddresses.

    ``envvar``: the variable a single --broker would read (ANJEON_<CMD>_BROKER), so deployments keep theirs;
    it may hold several addresses separated by spaces.
    """

    def parse(
        ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
    ) -> tuple[BrokerAddress, ...]:
        brokers = tuple(parse_broker(ctx, param, value) for value in values)
        twice = sorted({str(b) for b in brokers if brokers.count(b) > 1})
        if twice:
            raise click.BadParameter(f"broker {', '.join(twice)} is given twice")
        return brokers

    return click.option(
        "--broker",
        "brokers",
        multiple=True,
        default=(DEFAULT_BROKER,),
        callback=parse,
        metavar="tcp://HOST[:BASEPORT]",
        envvar=envvar,
        help=help,
    )


def name_option(help: str = "Name shown in status and watch (default: ROLE@HOST:PID).") -> Callable[[F], F]:
    return click.option("--name", default="", help=help)


@dataclass(frozen=True)
class Flag:
    """One settings field on the command line: its flag names and help (type, range, default: the field's)."""

    field: str
    names: tuple[str, ...]
    help: str
    invert: bool = False  # a flag that turns the (default true) setting off: --fast sets realtime false
    callback: Callable[[click.Context | None, click.Parameter | None, Any], Any] | None = None
    metavar: str | None = None

    @property
    def param(self) -> str:
        return self.names[0].lstrip("-").replace("-", "_") if self.invert else self.field


def _whole(x: float | None) -> float | None:
    """120.0 -> 120, so the help shows the range as it always did."""
    return int(x) if isinstance(x, float) and x.is_integer() else x


def flag_options(cls: type, flags: Iterable[Flag]) -> Callable[[F], F]:
    """The click options of ``flags``, typed, bounded and defaulted by the fields of ``cls``."""
    fields = {f.name: f for f in dataclasses.fields(cls)}

    def decorate(command: F) -> F:
        for flag in reversed(tuple(flags)):  # decorators apply bottom-up: keep the table's order in --help
            f = fields[flag.field]
            default, meta = field_default(f), f.metadata
            extra: dict[str, Any] = {"metavar": flag.metavar} if flag.metavar else {}
            if flag.callback is not None:
                extra["callback"] = flag.callback
            elif isinstance(default, bool):
                extra["is_flag"] = True
                default = False if flag.invert else default
            elif meta.get("choices"):
                extra["type"] = click.Choice(list(meta["choices"]))
            elif isinstance(default, int):
                extra["type"] = click.IntRange(meta.get("min"), meta.get("max"))
            elif isinstance(default, float):
                extra["type"] = click.FloatRange(_whole(meta.get("min")), _whole(meta.get("max")))
            option = click.option(*flag.names, flag.param, default=default, help=flag.help, **extra)
            command = option(command)
        return command

    return decorate


def flag_values(flags: Iterable[Flag], given: Mapping[str, Any]) -> dict[str, Any]:
    """The settings fields from the parsed options of ``flags`` (inverted flags turned back)."""
    return {f.field: (not given[f.param]) if f.invert else given[f.param] for f in flags}


def flag_argv(settings: Any, flags: Iterable[Flag]) -> list[str]:
    """The command-line arguments that give a child process these settings."""
    argv: list[str] = []
    for flag in flags:
        value = getattr(settings, flag.field)
        if isinstance(value, bool):
            argv += [flag.names[0]] if value != flag.invert else []
        else:
            argv += [flag.names[0], str(value)]
    return argv


CAMERA_FLAGS = (
    Flag("fps", ("--fps",), "Frames sent per second per camera, at most."),
    Flag(
        "width",
        ("--width", "--resize"),
        "Resize frames to this width before sending, e.g. the model's input size, to save bandwidth "
        "(0: keep the camera's size).",
    ),
    Flag("quality", ("--quality",), "JPEG quality."),
    Flag("loop", ("--loop",), "Replay video files and image folders forever."),
    Flag(
        "realtime",
        ("--fast",),
        "Read video files and image folders as fast as they decode instead of in real time (benchmarks).",
        invert=True,
    ),
    Flag(
        "transport",
        ("--transport",),
        "RTSP transport: tcp survives NAT, firewalls and packet loss; udp has less delay on a clean LAN.",
    ),
    Flag(
        "stall_timeout",
        ("--stall-timeout",),
        "Seconds without a frame before a live camera counts as lost (frozen) and is reopened.",
    ),
)

BROKER_FLAGS = (
    Flag("bind", ("--bind",), "Interface to listen on ('*' = all; 127.0.0.1 = this machine only)."),
    Flag(
        "base_port",
        ("--base-port",),
        "First of five consecutive ports: frames-in, frames-out, results-in, results-out, control.",
        callback=check_port,
    ),
    Flag(
        "max_age",
        ("--max-age",),
        "Seconds a frame may wait in the broker for a free worker before it is dropped.",
    ),
    Flag(
        "max_frame_bytes",
        ("--max-frame-bytes",),
        "Largest JPEG accepted from an edge; larger ones are dropped and counted.",
    ),
    Flag(
        "max_credit",
        ("--max-credit",),
        "Most frames one worker may hold at once, whatever it announces (raise for big GPU batches).",
    ),
    Flag(
        "max_cameras",
        ("--max-cameras",),
        "Most cameras tracked; a new one beyond it replaces one silent for a while, else is dropped.",
    ),
    Flag("max_peers", ("--max-peers",), "Most processes (edges, workers, subscribers) in the registry."),
    Flag(
        "unclaimed_fps",
        ("--unclaimed-fps",),
        "Frames/s, all together, taken from cameras that no online edge reports in its heartbeat.",
    ),
)

# `anjeon worker`'s options that are also settings of the site config's workers: section (two groups in --help).
WORKER_DEVICE_FLAGS = (
    Flag("device", ("--device",), "auto (CUDA when present), cpu, cuda:0, ..."),
    Flag(
        "batch",
        ("--batch",),
        "Largest batch: the worker takes the frames waiting for it, up to this many, without waiting "
        "for more (auto: the measured default of the device, docs/benchmarks.md).",
        callback=check_batch,
        metavar="N|auto",
    ),
)
WORKER_RUN_FLAGS = (
    Flag(
        "max_age", ("--max-age",), "Drop frames that waited longer than this (seconds) before decoding them."
    ),
    Flag("threads", ("--threads",), "Torch CPU threads (0: all cores this process may use)."),
    Flag("render", ("--render",), "Also publish a JPEG with the boxes drawn (topic ann/CAMERA/)."),
)
