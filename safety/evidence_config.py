"""The evidence settings of the `safety:` section: clips, retention, scheduled reports.

Pure data with validation, like safety/config.py, which calls ``parse_evidence``
with its own parser (so errors name file, line and field the same way).
Nothing heavy is imported here: `anjeon config validate` stays cheap.

    safety:
      clips: {pre: 10, post: 10, max: 120, fps: 5, buffer_mb: 32}   # or `clips: false`
      cameras:
        gate: {clips: {pre: 5}, zones: ..., rules: ...}             # per camera: false or overrides
      retention: {events_days: 365, snapshots_days: 90, clips_days: 30,
                  max_disk_gb: 50, max_disk_percent: 85, keep_events_days: 90, check_minutes: 5}
      reports:
        daily: "07:00"                 # yesterday's report, every day at this local time
        weekly: "mon 07:00"            # the last 7 days
        lang: ko
        folder: data/reports
        webhook: {url: "http://10.0.0.9/reports"}
        email: {host: smtp.example.com, port: 587, starttls: true, user: anjeon, password_env: SMTP_PASSWORD,
                sender: anjeon@example.com, to: [safety@example.com]}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

CLIP_RANGES = {
    "pre": (0.0, 120.0),
    "post": (0.0, 600.0),
    "max": (1.0, 3600.0),
    "fps": (0.2, 30.0),
    "buffer_mb": (1.0, 4096.0),
}
DAYS = (0.0, 36500.0)  # 0 = keep forever
HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


@dataclass(frozen=True)
class ClipSpec:
    pre: float = 10.0  # s of pre-roll
    post: float = 10.0  # s after the event's end
    max: float = 120.0  # longest clip, pre-roll included
    fps: float = 5.0  # frames per second kept and encoded (at most: a camera sends what it sends)
    buffer_mb: float = 32.0  # the per-camera ring buffer's cap
    folder: str = ""  # default: a `clips` folder beside the store (global setting only)


@dataclass(frozen=True)
class RetentionSpec:
    events_days: float = 0.0  # event rows older than this are deleted (0: kept forever)
    snapshots_days: float = 0.0
    clips_days: float = 0.0
    max_disk_gb: float = 0.0  # evidence (store + snapshots + clips) may use at most this (0: no cap)
    max_disk_percent: float = 0.0  # ... or keep the filesystem at most this full (0: no cap)
    keep_events_days: float = 30.0  # the disk cap never deletes event rows younger than this
    check_minutes: float = 5.0


@dataclass(frozen=True)
class EmailSpec:
    host: str
    port: int = 587
    starttls: bool = True
    user: str = ""
    password_env: str = ""  # the password comes from this environment variable, never from the file
    sender: str = ""
    to: tuple[str, ...] = ()
    timeout: float = 30.0
    ca_file: str = ""  # trust this CA for STARTTLS (a site's own mail server); default: the system's CAs


@dataclass(frozen=True)
class ReportSpec:
    daily: str = ""  # HH:MM local
    weekly: str = ""  # "mon HH:MM"
    lang: str = "ko"
    folder: str = ""  # default: a `reports` folder beside the store
    webhook: str = ""  # POST the PDF here (multipart/form-data)
    email: EmailSpec | None = None


def _clips(p: Any, value: Any, path: tuple, base: ClipSpec | None, top: bool) -> ClipSpec | None:
    """`clips: false` -> None; a mapping overrides ``base`` key by key."""
    if value is False:
        return None
    if value is True or value is None:
        return base or ClipSpec()
    data = p.mapping(value, path, tuple(CLIP_RANGES) + (("folder",) if top else ()))
    out = replace(
        base or ClipSpec(),
        **{k: p.number(data[k], path + (k,), *CLIP_RANGES[k]) for k in CLIP_RANGES if k in data},
    )
    if "folder" in data:
        out = replace(out, folder=p.text(data["folder"], path + ("folder",)))
    if out.max <= out.pre:
        raise p.error(
            path + ("max",), f"max ({out.max:g} s) must be longer than the pre-roll ({out.pre:g} s)"
        )
    return out


def _retention(p: Any, value: Any, path: tuple) -> RetentionSpec:
    data = p.mapping(value, path, tuple(RetentionSpec.__dataclass_fields__))
    ranges = {"max_disk_gb": (0.0, 1e6), "max_disk_percent": (0.0, 99.0), "check_minutes": (0.1, 1440.0)}
    return RetentionSpec(**{k: p.number(v, path + (k,), *ranges.get(k, DAYS)) for k, v in data.items()})


def _email(p: Any, value: Any, path: tuple) -> EmailSpec:
    data = p.mapping(value, path, tuple(EmailSpec.__dataclass_fields__))
    if "host" not in data:
        raise p.error(path + ("host",), "an e-mail delivery needs the SMTP host")
    to = data.get("to") or []
    to = [to] if isinstance(to, str) else to
    if not isinstance(to, list) or not to or not all(isinstance(a, str) and EMAIL.match(a) for a in to):
        raise p.error(path + ("to",), "must be a list of e-mail addresses")
    sender = p.text(data.get("sender", to[0]), path + ("sender",))
    if not EMAIL.match(sender):
        raise p.error(path + ("sender",), f"{sender!r} is not an e-mail address")
    starttls = data.get("starttls", True)
    if not isinstance(starttls, bool):
        raise p.error(path + ("starttls",), "must be true or false")
    return EmailSpec(
        host=p.text(data["host"], path + ("host",)),
        port=p.number(data.get("port", 587), path + ("port",), 1, 65535, int),
        starttls=starttls,
        user=p.text(data.get("user", ""), path + ("user",)),
        password_env=p.text(data.get("password_env", ""), path + ("password_env",)),
        sender=sender,
        to=tuple(to),
        ca_file=p.text(data.get("ca_file", ""), path + ("ca_file",)),
        timeout=p.number(data.get("timeout", 30.0), path + ("timeout",), 1.0, 600.0),
    )


def _reports(p: Any, value: Any, path: tuple) -> ReportSpec:
    data = p.mapping(value, path, ("daily", "weekly", "lang", "folder", "webhook", "email"))
    daily = p.text(data.get("daily", ""), path + ("daily",))
    if daily and not HHMM.match(daily):
        raise p.error(path + ("daily",), f"daily is a local time HH:MM, got {daily!r}")
    weekly = p.text(data.get("weekly", ""), path + ("weekly",))
    if weekly:
        day, _, hhmm = weekly.partition(" ")
        if day.lower() not in WEEKDAYS or not HHMM.match(hhmm):
            raise p.error(path + ("weekly",), f"weekly is 'DAY HH:MM' with DAY one of {', '.join(WEEKDAYS)}")
    webhook = p.text(data.get("webhook", ""), path + ("webhook",))
    if webhook and not re.match(r"^https?://[^\s/]+", webhook):
        raise p.error(path + ("webhook",), f"a webhook needs an http:// or https:// url, got {webhook!r}")
    return ReportSpec(
        daily=daily,
        weekly=weekly.lower(),
        lang=p.text(data.get("lang", "ko"), path + ("lang",), choices=("ko", "en")),
        folder=p.text(data.get("folder", ""), path + ("folder",)),
        webhook=webhook,
        email=_email(p, data["email"], path + ("email",)) if data.get("email") else None,
    )


def parse_evidence(p: Any, data: dict, config: Any, path: tuple) -> None:
    """Fill ``config.clips``, ``config.camera_clips``, ``config.retention``, ``config.reports``."""
    config.clips = _clips(p, data.get("clips", True), path + ("clips",), None, top=True)
    for cam_id, value in (data.get("cameras") or {}).items():
        if isinstance(value, dict) and "clips" in value:
            base = config.clips or ClipSpec()
            config.camera_clips[cam_id] = _clips(
                p, value["clips"], path + ("cameras", str(cam_id), "clips"), base, top=False
            )
    config.retention = _retention(p, data.get("retention"), path + ("retention",))
    config.reports = _reports(p, data["reports"], path + ("reports",)) if data.get("reports") else None


def camera_clip_specs(config: Any) -> dict[str, ClipSpec | None]:
    """Each camera's clip settings: its own, else the global ones (None: no clips)."""
    return {cam: config.camera_clips.get(cam, config.clips) for cam in config.cameras}
