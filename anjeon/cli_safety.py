"""`anjeon safety` (the rules service) and `anjeon events` (stored events: list, filter, JSON, CSV)."""

from __future__ import annotations

import csv
import json
import sys
import time
from datetime import datetime
from pathlib import Path

import click

from anjeon.protocol.endpoints import DEFAULT_BASE_PORT, AddressError, BrokerAddress

from .runtime import run_until_signal


def _broker(_ctx, _param, value: str) -> BrokerAddress:
    try:
        return BrokerAddress.parse(value)
    except AddressError as exc:
        raise click.BadParameter(str(exc)) from None


def _when(_ctx, param, value: str | None) -> float | None:
    """Unix seconds, an ISO date/time (local), or a span back from now: 30s, 10m, 2h, 1d."""
    if value is None:
        return None
    text = value.strip()
    spans = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if text[-1:] in spans and text[:-1].replace(".", "", 1).isdigit():
            return time.time() - float(text[:-1]) * spans[text[-1]]
        try:
            return float(text)
        except ValueError:
            return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a time: use unix seconds, 2026-11-25T07:00, or 30s/10m/2h/1d "
                                 "back from now", param=param) from None


@click.command()
@click.option("--broker", "broker", default=f"tcp://127.0.0.1:{DEFAULT_BASE_PORT}", callback=_broker,
              metavar="tcp://HOST[:BASEPORT]", help="Where the broker runs.")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Site config YAML with a safety: section (zones, lines, rules, store, alerts).")
@click.option("--store", help="SQLite event store [config's safety.store, else data/events.db].")
@click.option("--history-bind", default="", metavar="tcp://IFACE:PORT",
              help="Where to answer history queries [tcp://*:BASEPORT+5].")
@click.option("--name", default="", help="Name shown in status (default: safety@HOST:PID).")
def safety(broker: BrokerAddress, config_path: Path, store: str | None, history_bind: str, name: str) -> None:
    """Run the safety rules on live detections: events, snapshots, alerts."""
    from .siteconfig import ConfigError, load_site_config

    try:
        site = load_site_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if site.safety is None or not site.safety.cameras:
        raise click.ClickException(f"{config_path}: no safety: section with cameras and rules; see docs/safety.md")
    if store:
        site.safety.store = store
    from anjeon.safety.service import SafetyService, SafetyServiceConfig
    from anjeon.safety.tracker import TrackerMissing

    try:
        service = SafetyService(SafetyServiceConfig(broker=broker, safety=site.safety, history_bind=history_bind,
                                                    name=name, config_path=config_path))
    except TrackerMissing as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot open the event store {site.safety.store}: {exc}") from None
    try:
        run_until_signal(service.serve)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None


CSV_COLUMNS = ("id", "camera", "rule", "type", "zone", "line", "severity", "state", "started", "ended", "duration",
               "peak", "tracks", "snapshot")


@click.command()
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default="data/events.db",
              help="The SQLite event store to read.")
@click.option("--history", metavar="tcp://HOST:PORT", help="Ask a running safety service instead of reading --db.")
@click.option("--camera", default="", help="Only this camera.")
@click.option("--rule", default="", help="Only this rule name or type (intrusion, helmet, fall, ...).")
@click.option("--since", callback=_when, help="Events active at or after this time (unix s, ISO, or 10m/2h/1d ago).")
@click.option("--until", callback=_when, help="Events started at or before this time.")
@click.option("--state", type=click.Choice(["", "open", "ended"]), default="", help="Only open or ended events.")
@click.option("--limit", default=100, type=click.IntRange(1, 10000), help="Newest this many.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header row.")
def events(db: Path, history: str | None, camera: str, rule: str, since: float | None, until: float | None, state: str,
           limit: int, as_json: bool, as_csv: bool) -> None:
    """List stored safety events, newest first."""
    query = {"camera": camera, "rule": rule, "since": since, "until": until, "state": state, "limit": limit}
    if history:
        import zmq

        from anjeon.safety.bus import query_history

        try:
            rows = query_history(zmq.Context.instance(), history, query)
        except (TimeoutError, RuntimeError) as exc:
            raise click.ClickException(str(exc)) from None
    else:
        import sqlite3

        from anjeon.safety.store import EventStore, Query

        try:
            store = EventStore(db, readonly=True)
            rows = store.query(Query.from_map(query))
            store.close()
        except (FileNotFoundError, sqlite3.Error) as exc:
            raise click.ClickException(f"cannot read events from {db}: {exc}") from None
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
    elif as_csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            writer.writerow([" ".join(map(str, row[c])) if c == "tracks" else row.get(c) for c in CSV_COLUMNS])
    else:
        click.echo(f"{'STARTED':19}  {'CAMERA':12} {'RULE':22} {'STATE':6} {'DUR s':>7} {'PEAK':>4}  TRACKS  ID")
        for row in rows:
            started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["started"]))
            click.echo(f"{started:19}  {row['camera']:12} {row['rule']:22} {row['state']:6} {row['duration']:7.1f} "
                       f"{row['peak']:4d}  {','.join(map(str, row['tracks'])) or '-'}  {row['id']}")
        click.echo(f"({len(rows)} event(s))", err=True)
