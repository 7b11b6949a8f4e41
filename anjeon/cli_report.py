"""`anjeon report`: the incident report for a period, as PDF or HTML, in Korean or English."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from .cli_options import time_callback

_NOT_A_TIME = (
    "'{value}' is not a date or time: use 2026-11-01, 2026-11-01T07:00, unix seconds, or 7d/12h back from now"
)


@click.command()
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default="data/events.db",
    help="The safety service's event store (read only).",
)
@click.option(
    "--since",
    callback=time_callback(_NOT_A_TIME),
    default="7d",
    show_default=True,
    help="First day (or time) of the report.",
)
@click.option(
    "--until", callback=time_callback(_NOT_A_TIME, end_of_day=True), help="Last day (included) or time [now]."
)
@click.option("--camera", "cameras", multiple=True, help="Only these cameras (repeat the option) [all].")
@click.option("--lang", type=click.Choice(["ko", "en"]), default="ko", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["pdf", "html"]), default="pdf", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="The file to write.")
@click.option("--json", "as_json", is_flag=True, help="Also print the figures as JSON on stdout.")
@click.option(
    "--send",
    type=click.Choice(["daily", "weekly"]),
    help="Make the scheduled report of the site config's reports: section now and send it "
    "(yesterday / the 7 days before today); needs --config.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Site config (its safety.store and safety.reports) for --send.",
)
def report(
    db: Path,
    since: float,
    until: float | None,
    cameras: tuple[str, ...],
    lang: str,
    fmt: str,
    out: Path | None,
    as_json: bool,
    send: str | None,
    config_path: Path | None,
) -> None:
    """Write the incident report: per day and hour, per camera and rule, response times, false alarms,
    the longest incidents with snapshots, and where offenders stood."""
    import sqlite3

    from anjeon.safety.report import make_report

    if send:
        _send(send, config_path)
        return
    if out is None:
        raise click.UsageError("--out FILE is needed (or --send daily|weekly --config SITE.yaml)")
    until = time.time() if until is None else until
    if until <= since:
        raise click.BadParameter("--until must be after --since")
    if not db.exists():
        raise click.ClickException(f"no event store at {db}")
    try:
        data = make_report(db, since, until, cameras, lang, fmt, out)
    except sqlite3.Error as exc:
        raise click.ClickException(f"cannot read {db}: {exc}") from None
    if as_json:
        click.echo(json.dumps(data.to_dict(), ensure_ascii=False))
    click.echo(
        f"{out}: {data.total} incident(s) from {time.strftime('%Y-%m-%d %H:%M', time.localtime(since))} to "
        f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(until))}",
        err=True,
    )


def _send(kind: str, config_path: Path | None) -> None:
    from anjeon.safety.report.deliver import deliver, period_of

    from .cli_options import load_site

    if config_path is None:
        raise click.UsageError("--send needs --config SITE.yaml (its safety: reports: section)")
    site = load_site(config_path)
    if site.safety is None or site.safety.reports is None:
        raise click.ClickException(f"{config_path}: no safety: reports: section (docs/reports.md)")
    spec, store = site.safety.reports, Path(site.safety.store)
    folder = Path(spec.folder) if spec.folder else store.parent / "reports"
    since, until = period_of(kind, time.time())
    pdf, errors = deliver(spec, store, folder, kind, since, until)
    click.echo(f"{pdf}: made" + (f"; failed: {'; '.join(errors)}" if errors else "; sent"), err=True)
    if errors:
        raise SystemExit(1)
