"""Scheduled reports: daily (yesterday) and weekly (the 7 days before), sent by webhook and e-mail with the PDF.

The schedule runs on its own thread in `anjeon safety` (it reads the store,
never the rules' state). E-mail is SMTP with STARTTLS and login (the
password comes from the environment variable named in the config, never
from the file); the webhook gets a multipart/form-data POST with the PDF
and the figures as JSON. A failed delivery is retried with doubling
backoff a few times, then logged and counted; it never touches the rules.
`anjeon report --send daily|weekly --config SITE.yaml` sends one now.
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
import ssl
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from anjeon.config.evidence import WEEKDAYS, EmailSpec, ReportSpec

from . import make_report
from .words import words

log = logging.getLogger("anjeon.safety.reports")


@dataclass(frozen=True)
class Due:
    kind: str  # daily | weekly
    at: float  # when to make it
    since: float
    until: float


def _at(day: datetime, hhmm: str) -> datetime:
    h, m = (int(x) for x in hhmm.split(":"))
    return day.replace(hour=h, minute=m, second=0, microsecond=0)


def next_due(spec: ReportSpec, now: float) -> list[Due]:
    """The next daily and weekly runs after ``now`` (local time), with the period each one covers."""
    out = []
    today = datetime.fromtimestamp(now).replace(hour=0, minute=0, second=0, microsecond=0)
    if spec.daily:
        at = _at(today, spec.daily)
        if at.timestamp() <= now:
            at = _at(today + timedelta(days=1), spec.daily)
        midnight = at.replace(hour=0, minute=0)
        out.append(
            Due("daily", at.timestamp(), (midnight - timedelta(days=1)).timestamp(), midnight.timestamp())
        )
    if spec.weekly:
        day, _, hhmm = spec.weekly.partition(" ")
        ahead = (WEEKDAYS.index(day) - today.weekday()) % 7
        at = _at(today + timedelta(days=ahead), hhmm)
        if at.timestamp() <= now:
            at += timedelta(days=7)
        midnight = at.replace(hour=0, minute=0)
        out.append(
            Due("weekly", at.timestamp(), (midnight - timedelta(days=7)).timestamp(), midnight.timestamp())
        )
    return sorted(out, key=lambda d: d.at)


def period_of(kind: str, now: float) -> tuple[float, float]:
    """The period a report sent now covers: yesterday (daily) or the 7 days before today (weekly)."""
    midnight = datetime.fromtimestamp(now).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - timedelta(days=1 if kind == "daily" else 7)).timestamp(), midnight.timestamp()


def _subject(kind: str, lang: str, since: float, until: float) -> str:
    w = words(lang)
    span = time.strftime("%Y-%m-%d", time.localtime(since))
    if kind == "weekly":
        span += " – " + time.strftime("%Y-%m-%d", time.localtime(until - 60))
    return f"[anjeon] {w['title']} {span}"


def send_email(spec: EmailSpec, subject: str, text: str, pdf: Path) -> None:
    msg = EmailMessage()
    msg["Subject"], msg["From"], msg["To"] = subject, spec.sender, ", ".join(spec.to)
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@anjeon>"
    msg.set_content(text)
    msg.add_attachment(pdf.read_bytes(), maintype="application", subtype="pdf", filename=pdf.name)
    context = ssl.create_default_context(cafile=spec.ca_file or None)
    with smtplib.SMTP(spec.host, spec.port, timeout=spec.timeout) as smtp:
        smtp.ehlo()
        if spec.starttls:
            smtp.starttls(context=context)
            smtp.ehlo()
        if spec.user:
            password = os.environ.get(spec.password_env, "") if spec.password_env else ""
            if not password:
                raise RuntimeError(f"no SMTP password in ${spec.password_env or '(password_env not set)'}")
            smtp.login(spec.user, password)
        smtp.send_message(msg)


def send_webhook(url: str, figures: dict[str, Any], pdf: Path, timeout: float = 30.0) -> None:
    boundary = uuid.uuid4().hex
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="figures"\r\nContent-Type: application/json'
        f"\r\n\r\n{json.dumps(figures, ensure_ascii=False)}\r\n--{boundary}\r\nContent-Disposition: form-data; "
        f'name="report"; filename="{pdf.name}"\r\nContent-Type: application/pdf\r\n\r\n'
    ).encode()
    body += pdf.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}", "User-Agent": "anjeon-safety"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if not 200 <= response.status < 300:
            raise RuntimeError(f"HTTP {response.status}")


@dataclass
class DeliveryStats:
    made: int = 0
    sent: int = 0
    failed: int = 0
    last_error: str = ""
    next: dict[str, float] = field(default_factory=dict)


def _retry(what: str, fn: Callable[[], object], spec: ReportSpec, stop: threading.Event | None) -> str:
    """'' on success, else the last error after ``spec.attempts`` tries (``spec.backoff`` s apart, doubling)."""
    delay, last = spec.backoff, ""
    for attempt in range(spec.attempts):
        try:
            fn()
            return ""
        except Exception as exc:  # any failure of a delivery is retried and reported, never raised
            last = f"{what}: {type(exc).__name__}: {exc}"
            log.warning("report delivery failed (attempt %d of %d): %s", attempt + 1, spec.attempts, last)
        if attempt + 1 < spec.attempts:
            if stop is not None:
                if stop.wait(delay):
                    break
            else:
                time.sleep(delay)
        delay *= 2
    return last


def deliver(
    spec: ReportSpec,
    store: Path,
    folder: Path,
    kind: str,
    since: float,
    until: float,
    stats: DeliveryStats | None = None,
    stop: threading.Event | None = None,
) -> tuple[Path, list[str]]:
    """Make the PDF and send it everywhere configured; (pdf, errors)."""
    stats = stats or DeliveryStats()
    name = f"anjeon-{kind}-{time.strftime('%Y%m%d', time.localtime(since))}-{spec.lang}.pdf"
    pdf = folder / name
    data = make_report(store, since, until, (), spec.lang, "pdf", pdf)
    stats.made += 1
    figures = data.to_dict()
    subject = _subject(kind, spec.lang, since, until)
    text = (
        f"{subject}\n\n{words(spec.lang)['total']}: {data.total}\n"
        f"{words(spec.lang)['response_mean']}: {figures['response_mean'] or '-'}\n"
    )
    errors: list[str] = []
    targets: list[tuple[str, Callable[[], object]]] = []
    if spec.email is not None:
        email = spec.email
        targets.append(("e-mail", lambda: send_email(email, subject, text, pdf)))
    if spec.webhook:
        targets.append(("webhook", lambda: send_webhook(spec.webhook, {"kind": kind, **figures}, pdf)))
    for what, fn in targets:
        error = _retry(what, fn, spec, stop)
        if error:
            errors.append(error)
            stats.failed += 1
            stats.last_error = error
        else:
            stats.sent += 1
    log.info(
        "%s report %s: %d incident(s), sent to %d of %d target(s)",
        kind,
        pdf,
        data.total,
        len(targets) - len(errors),
        len(targets),
    )
    return pdf, errors


class ReportScheduler:
    """Wakes at each due time and delivers; its own thread, stopped with the service."""

    def __init__(self, spec: ReportSpec, store: Path, folder: Path) -> None:
        self.spec, self.store, self.folder = spec, Path(store), Path(folder)
        self.stats = DeliveryStats()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reports", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            due = next_due(self.spec, time.time())
            if not due:
                return
            self.stats.next = {d.kind: d.at for d in due}
            first = due[0]
            if self._stop.wait(max(0.0, first.at - time.time())):
                return
            try:
                deliver(
                    self.spec,
                    self.store,
                    self.folder,
                    first.kind,
                    first.since,
                    first.until,
                    self.stats,
                    self._stop,
                )
            except Exception as exc:  # a report that cannot be made (store, disk) waits for the next run
                self.stats.failed += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("the %s report could not be made: %s", first.kind, exc)
