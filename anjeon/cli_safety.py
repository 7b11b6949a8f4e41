"""`anjeon safety` (the rules service), `anjeon events` (stored events: list, filter, JSON, CSV) and `anjeon ack`."""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import click

from anjeon.protocol.endpoints import BrokerAddress
from anjeon.runtime import run_until_signal

from .cli_observe import metrics_options, start_metrics
from .cli_options import broker_option, name_option, time_callback

_WHEN = time_callback(
    "'{value}' is not a time: use unix seconds, 2026-11-25T07:00, or 30s/10m/2h/1d back from now"
)


@click.command()
@broker_option(help="Where the broker runs.")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Site config YAML with a safety: section (zones, lines, rules, store, alerts).",
)
@click.option("--store", help="SQLite event store [config's safety.store, else data/events.db].")
@click.option(
    "--history-bind",
    default="",
    metavar="tcp://IFACE:PORT",
    help="Where to answer history queries, acks and clips [tcp://127.0.0.1:BASEPORT+5: loopback; give tcp://0.0.0.0:PORT (with keys) for a console on another host].",
)
@name_option(help="Name shown in status (default: safety@HOST:PID).")
@metrics_options
def safety(broker: BrokerAddress, config_path: Path, store: str | None, history_bind: str, name: str) -> None:
    """Run the safety rules on live detections: events, snapshots, alerts."""
    from .cli_options import load_site

    site = load_site(config_path)
    if site.safety is None or not site.safety.cameras:
        raise click.ClickException(
            f"{config_path}: no safety: section with cameras and rules; see docs/safety.md"
        )
    if store:
        site.safety.store = store
    from anjeon.safety.service import SafetyService, SafetyServiceConfig
    from anjeon.safety.tracker import TrackerMissing

    try:
        service = SafetyService(
            SafetyServiceConfig(
                broker=broker,
                safety=site.safety,
                history_bind=history_bind,
                name=name,
                config_path=config_path,
            )
        )
    except TrackerMissing as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot open the event store {site.safety.store}: {exc}") from None
    try:
        start_metrics("safety", service)
        run_until_signal(service.serve)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None


def _rows(db: Path, history: str | None, query: dict[str, Any], limit: int) -> Iterator[dict[str, Any]]:
    """Matching events newest first, page by page (any number, never all in memory)."""
    source: Iterable[dict[str, Any]]
    if history:
        from anjeon.protocol.client import History

        events = History(history).events({**query, "limit": min(limit, 1000)})
        source = (event.to_dict() for event in events)
    else:
        from anjeon.safety.store import EventStore, Query, QueryError

        try:
            store = EventStore(db, readonly=True)
            source = store.iterate(Query.from_map({k: v for k, v in query.items() if v is not None}))
        except QueryError as exc:
            raise click.ClickException(str(exc)) from None
    for n, row in enumerate(source):
        if n >= limit:
            return
        yield row


@click.command()
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default="data/events.db",
    help="The SQLite event store to read.",
)
@click.option(
    "--history", metavar="tcp://HOST:PORT", help="Ask a running safety service instead of reading --db."
)
@click.option("--camera", default="", help="Only this camera.")
@click.option("--rule", default="", help="Only this rule name or type (intrusion, helmet, fall, ...).")
@click.option(
    "--since", callback=_WHEN, help="Events active at or after this time (unix s, ISO, or 10m/2h/1d ago)."
)
@click.option("--until", callback=_WHEN, help="Events started at or before this time.")
@click.option(
    "--state", type=click.Choice(["", "open", "ended"]), default="", help="Only open or ended events."
)
@click.option(
    "--limit", default=100, type=click.IntRange(1, 100_000_000), help="Newest this many (paged: any number)."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (with ack and clip).")
@click.option(
    "--csv", "as_csv", is_flag=True, help="CSV with a header row (ack, response time, outcome, clip)."
)
def events(
    db: Path,
    history: str | None,
    camera: str,
    rule: str,
    since: float | None,
    until: float | None,
    state: str,
    limit: int,
    as_json: bool,
    as_csv: bool,
) -> None:
    """List stored safety events, newest first."""
    import sqlite3

    from anjeon.protocol.wire import ProtocolError

    query = {"camera": camera, "rule": rule, "since": since, "until": until, "state": state}
    n = 0
    from anjeon.protocol.messages import EXPORT_COLUMNS, export_fields

    writer = csv.writer(sys.stdout) if as_csv else None
    if writer is not None:
        writer.writerow(EXPORT_COLUMNS)
    elif not as_json:
        click.echo(
            f"{'STARTED':19}  {'CAMERA':12} {'RULE':22} {'STATE':6} {'DUR s':>7} {'PEAK':>4}  "
            f"{'ACK':16} {'CLIP':9} TRACKS  ID"
        )
    try:
        for row in _rows(db, history, query, limit):
            n += 1
            if as_json:
                click.echo(json.dumps(row, ensure_ascii=False))
            elif writer is not None:
                writer.writerow(list(export_fields(row).values()))
            else:
                click.echo(_line(row))
    except (TimeoutError, RuntimeError, ProtocolError) as exc:
        raise click.ClickException(str(exc)) from None
    except (FileNotFoundError, sqlite3.Error) as exc:
        raise click.ClickException(f"cannot read events from {db}: {exc}") from None
    if not as_json and not as_csv:
        click.echo(f"({n} event(s))", err=True)


def _line(row: dict[str, Any]) -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["started"]))
    ack = row.get("ack")
    acked = "-"
    if ack:
        acked = f"{ack['by'][:8]} {ack['response']:.0f}s" + (
            {"false_alarm": " FA", "resolved": " ok"}.get(ack.get("outcome") or "", "")
        )
    clip = (row.get("clip") or {}).get("state", "-")
    return (
        f"{started:19}  {row['camera']:12} {row['rule']:22} {row['state']:6} {row['duration']:7.1f} "
        f"{row['peak']:4d}  {acked:16} {clip:9} {','.join(map(str, row['tracks'])) or '-'}  {row['id']}"
    )


@click.command()
@click.argument("event_id")
@click.option("--history", required=True, metavar="tcp://HOST:PORT", help="The running safety service.")
@click.option("--by", required=True, help="Who acknowledges (recorded with the time and the response time).")
@click.option("--note", default="", help="A note kept with the acknowledgement.")
@click.option(
    "--false-alarm", "false_alarm", metavar="REASON", default="", help="Mark it a false alarm, saying why."
)
@click.option("--resolved", is_flag=True, help="Mark it resolved.")
def ack(event_id: str, history: str, by: str, note: str, false_alarm: str, resolved: bool) -> None:
    """Acknowledge a stored event (first ack is recorded); mark it a false alarm or resolved."""
    from anjeon.protocol.client import History
    from anjeon.protocol.wire import ProtocolError

    if false_alarm and resolved:
        raise click.UsageError("an event is either a false alarm or resolved, not both")
    outcome = "false_alarm" if false_alarm else "resolved" if resolved else ""
    try:
        event = History(history).ack(event_id, by, note, outcome, false_alarm).to_dict()
    except (TimeoutError, RuntimeError, ProtocolError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(event, ensure_ascii=False))
